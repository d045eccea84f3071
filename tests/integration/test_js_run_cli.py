"""`node hosts/js/bin/run.js BUNDLE --input …` (issue 20, point 5): a bundle runs on Node with nothing
of Python, as on the Python host: the same answer, JSON for scripts, kv in a folder, and a bundle that
does not verify refused before anything runs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, echo_chat_app
from tests.integration.test_cli import cspm

HOST = ROOT / "hosts" / "js"
RUN = HOST / "bin" / "run.js"
DEMO_QUESTION = "Who was born first, Kogail Bagrol or Stolvle Thema?"  # the README's

pytestmark = pytest.mark.skipif(shutil.which("node") is None or not (HOST / "node_modules").is_dir(),
                                reason="node or hosts/js/node_modules is absent (.ci/setup installs both)")


def node_run(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", str(RUN), str(bundle), *args], capture_output=True, text=True, timeout=300)


def bundled(app: str | Path, out: Path) -> Path:
    made = cspm("bundle", str(app), "--out", str(out))
    assert made.returncode == 0, made.stderr
    return out


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if cspm("plan", "chainsocket/self-ask-demo", "--json").returncode != 0:
        pytest.skip("the self-ask demo is not installed (.ci/setup installs it)")
    return bundled("chainsocket/self-ask-demo", tmp_path_factory.mktemp("demo") / "bundle")


def test_the_offline_demo_answers_on_node_as_on_python(demo: Path) -> None:
    python = cspm("run", str(demo), "--input", DEMO_QUESTION, "--json")
    assert python.returncode == 0, python.stderr
    on_node = node_run(demo, "--input", DEMO_QUESTION, "--json")
    assert on_node.returncode == 0, on_node.stderr
    answer = json.loads(on_node.stdout)
    assert answer["output"] == json.loads(python.stdout)["output"] == "Kogail Bagrol"
    assert answer["finish_reason"] == "final_answer" and answer["entry"] == "self_ask_agent"
    plain = node_run(demo, "--input", DEMO_QUESTION)
    assert plain.returncode == 0 and plain.stdout == "Kogail Bagrol\n"
    assert "ExperimentalWarning" not in plain.stderr  # Node's WASI warning is noise to a user


def test_a_changed_file_is_refused_before_anything_runs(demo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(demo, copy)
    mount = next((copy / "mounts").rglob("*.json"))  # the kb's data, which only a mount check reads
    mount.write_bytes(mount.read_bytes().replace(b"1872", b"1972"))
    refused = node_run(copy, "--input", DEMO_QUESTION)
    assert refused.returncode == 2
    assert "error:" in refused.stderr and "bundle.json" in refused.stderr and refused.stdout == ""


def test_kv_lives_in_the_folder_given_and_sessions_are_the_callers(tmp_path: Path) -> None:
    bundle = bundled(echo_chat_app(tmp_path), tmp_path / "bundle")
    kv = tmp_path / "kv"
    first = node_run(bundle, "--input", "one", "--session", "conv-1", "--kv-dir", str(kv), "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["output"] == "echo: one"
    assert json.loads(first.stdout)["session"] == "conv-1"
    assert any(p.is_file() and p.stat().st_size > 0 for p in kv.rglob("*"))  # the conversation was kept


def test_usage_errors_exit_2(demo: Path) -> None:
    assert node_run(demo).returncode == 2  # no --input
    wrong = subprocess.run(["node", str(RUN), "--input", "x"], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "usage:" in wrong.stderr
