"""A non-editable install (`pip install .` into a fresh venv, as a user gets cspm) runs the README's main
command: the bundled registry and the SDKs ship as package data, not only in a source checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.test_selfask_demo import DEMO_ANSWER, DEMO_QUESTION


@pytest.mark.timeout(900)
def test_a_wheel_install_runs_the_demo_offline_and_starts_a_plugin(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: pip builds in the tree it is given (build/, *.egg-info)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info", "node_modules", "target")
    shutil.copytree(ROOT / "cspm", source / "cspm", symlinks=True, ignore=ignore)
    shutil.copytree(ROOT / "index", source / "index")
    shutil.copytree(ROOT / "plugins" / "sdk", source / "plugins" / "sdk", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                          str(source)], capture_output=True, text=True, timeout=800)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-3000:]
    shutil.rmtree(source)  # nothing may still come from the source tree

    home = tmp_path / "home"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CSPM_")},
           **{f"CSPM_{k}_DIR": str(home / k.lower()) for k in ("CACHE", "DATA", "CONFIG")}}
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import cspm; print(cspm.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    assert where.stdout.startswith(str(venv)), where.stdout
    ran = subprocess.run([str(venv / "bin" / "cspm"), "run", "chainsocket/self-ask-demo", "--offline", "--input",
                          DEMO_QUESTION], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == DEMO_ANSWER
    made = subprocess.run([str(venv / "bin" / "cspm"), "new", "acme/wc", "--lang", "c", "--dir", "wc"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "wc" / "sdk" / "chainsocket.h").is_file() and (tmp_path / "wc" / "build.sh").is_file()
