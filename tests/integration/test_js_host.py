"""The JavaScript host (hosts/js) on Node: every case of conformance/abi1.json on every SDK's
conformance plug-in, through the host's own runner (hosts/js/test/conformance.js, the counterpart of
cspm/conformance.py), and the host's own tests (`npm test`). Skipped when Node or the package's
node_modules (`npm ci` in hosts/js) is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LANGUAGES, ROOT, conformance_wasm

JS = ROOT / "hosts" / "js"
NODE = shutil.which("node")
NPM = shutil.which("npm")
CASES = [case["id"] for case in json.loads((ROOT / "conformance" / "abi1.json").read_text(encoding="utf-8"))["cases"]]

pytestmark = pytest.mark.skipif(NODE is None or NPM is None or not (JS / "node_modules").is_dir(),
                                reason="needs node, npm and hosts/js/node_modules (run `npm ci` in hosts/js)")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_conformance_cases_pass_on_node(lang: str) -> None:
    wasm = conformance_wasm(lang)
    result = subprocess.run([str(NODE), "test/conformance.js", "--module", str(wasm), "--json"], cwd=JS,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 1), f"the runner could not run (exit {result.returncode}): {result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    assert [r["case"] for r in report["results"]] == CASES, "the runner must run every case, in order"
    failed = [f"{r['case']}: {r['reason']}" for r in report["results"] if not r["passed"]]
    assert not failed, "\n".join(failed)
    assert result.returncode == 0


def test_runner_fails_a_wrong_expectation(tmp_path: Path) -> None:
    """The runner can fail: a case file with a wrong expectation makes it exit 1 naming the step; a
    module that does not exist is a usage error (exit 2)."""
    doc = json.loads((ROOT / "conformance" / "abi1.json").read_text(encoding="utf-8"))
    case = next(c for c in doc["cases"] if c["id"] == "echo-utf8")
    case["steps"][0]["expect"]["output"] = {"text": "not what it echoes"}
    (tmp_path / "abi1.json").write_text(json.dumps(doc), encoding="utf-8")
    shutil.copy(ROOT / "conformance" / "cases.schema.json", tmp_path / "cases.schema.json")
    wasm = conformance_wasm("rust")
    result = subprocess.run([str(NODE), "test/conformance.js", "--module", str(wasm), "--json", "--case", "echo-utf8",
                             "--cases", str(tmp_path / "abi1.json")], cwd=JS, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stderr[-2000:]
    (only,) = json.loads(result.stdout)["results"]
    assert not only["passed"] and only["reason"].startswith("step 1 (call sut.echo): output was")
    missing = subprocess.run([str(NODE), "test/conformance.js", "--module", str(tmp_path / "nonexistent.wasm")],
                             cwd=JS, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "nonexistent.wasm" in missing.stderr


def test_the_offline_self_ask_demo_answers_on_node(tmp_path: Path) -> None:
    """The README's demo (llm-local with its model mounted through WASI, kb, calculator, self-ask)
    from its run plan, on the Node host: the same plan and modules as `cspm run`."""
    app = tmp_path / "self-ask-demo"
    shutil.copytree(ROOT / "examples" / "self-ask-demo", app)
    planned = subprocess.run([sys.executable, "-m", "cspm.cli.main", "plan", str(app / "app.yaml"), "--offline",
                              "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert planned.returncode == 0, planned.stderr[-2000:]
    (tmp_path / "plan.json").write_text(planned.stdout, encoding="utf-8")
    result = subprocess.run([str(NODE), "test/run-plan.js", str(tmp_path / "plan.json"), "--input",
                             "Who was born first, Kogail Bagrol or Stolvle Thema?"], cwd=JS, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)
    assert answer["output"] == "Kogail Bagrol" and answer["finish_reason"] == "final_answer"
    assert any("intermediate answer: Kogail Bagrol — born: 1872" in line for line in answer["logs"])


def test_npm_test_passes() -> None:
    result = subprocess.run([str(NPM), "test"], cwd=JS, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout[-6000:] + result.stderr[-3000:])
