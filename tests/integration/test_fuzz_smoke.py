"""The fuzz harnesses (fuzz/) run clean for a few seconds each: what CI can afford on every push.

Longer runs: `python fuzz/run.py --seconds 600` (docs/testing.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris, or cspm[test])")


def test_every_harness_runs_clean_for_a_few_seconds(tmp_path: Path) -> None:
    report = tmp_path / "fuzz.json"
    result = subprocess.run([sys.executable, str(ROOT / "fuzz" / "run.py"), "--seconds", "3", "--json", str(report)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(report.read_text())
    names = {r["harness"] for r in data["harnesses"]}
    assert names == {p.stem for p in (ROOT / "fuzz" / "harnesses").glob("*.py")} == {"formats", "specifier", "wasm"}
    for harness in data["harnesses"]:  # each really ran: seeds, then mutations
        seeds = len(list((ROOT / "fuzz" / "corpus" / harness["harness"]).iterdir()))
        assert harness["ok"] and harness["executions"] > seeds, harness
    assert data["total"] == sum(r["executions"] for r in data["harnesses"])
    assert f"total {data['total']:,} executions" in " ".join(result.stdout.split())


def test_a_crash_is_reported_and_fails_the_run(tmp_path: Path) -> None:
    """The runner itself must be able to fail: a harness that raises on its first input."""
    fuzz = tmp_path / "fuzz"
    (fuzz / "harnesses").mkdir(parents=True)
    (fuzz / "corpus" / "boom").mkdir(parents=True)
    (fuzz / "corpus" / "boom" / "seed").write_bytes(b"x")
    (fuzz / "run.py").write_text((ROOT / "fuzz" / "run.py").read_text())
    (fuzz / "harnesses" / "boom.py").write_text(
        "import sys\nimport atheris\n\n\ndef one(data):\n    if data[:1] == b'x':\n"
        "        raise KeyError('boom')\n\n\natheris.Setup(sys.argv, one)\natheris.Fuzz()\n")
    result = subprocess.run([sys.executable, str(fuzz / "run.py"), "--seconds", "5"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CRASH" in result.stdout and "KeyError: 'boom'" in result.stderr
    assert len(list((fuzz / "crashes").iterdir())) == 1
