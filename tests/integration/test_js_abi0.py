"""ABI 0 (plug-ins built for Extism 0.x, docs/abi.md §8) on the JavaScript host under Node, from the plan
`cspm plan --json` writes: the same app, the same requests, the same answers as on the Python host.
The WAT plug-ins are tests/wat/abi0_*.wat; the ABI 1 ones are the kb and Rust conformance builds.
(The Node host's own ABI 0 tests, on both of its engines, are hosts/js/test/abi0.test.js.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cspm.planner import load_app
from tests.conftest import PLUGINS, ROOT, conformance_wasm, plugin_wasm, write_app

JS = ROOT / "hosts" / "js"
NODE = shutil.which("node")
RUST = conformance_wasm("rust")
KB_DATA = ROOT / "tests" / "data" / "kb"

pytestmark = pytest.mark.skipif(NODE is None or not (JS / "node_modules").is_dir(),
                                reason="needs node and hosts/js/node_modules (run `npm ci` in hosts/js)")


def app(tmp_path: Path, wat_dir: Path, tool: str) -> Path:
    plugin_wasm("kb")
    echo = wat_dir / "abi0_echo.wasm"
    return write_app(tmp_path, f"""entry: old
llms:
  - {{name: llm, plugin_name: {RUST}, config: {{kind: llm}}}}
tools:
  - {{name: kb, plugin_name: {PLUGINS / 'kb'}, config: {{file: /kb/list/people.json}},
     grant: {{paths: {{{KB_DATA}: /kb}}}}}}
  - {{name: old_tool, plugin_name: {echo}}}
agents:
  - name: old
    plugin_name: {wat_dir / 'abi0_agent.wasm'}
    prompt: You are "terse".
    config: {{llm_name: llm, tool_name: {tool}}}
    llms: [llm]
    tools: [kb, old_tool]
  - {{name: modern, plugin_name: {RUST}, config: {{kind: agent}}, tools: [old_tool]}}
""")


def on_node(app_path: Path, text: str, entry: str) -> dict[str, object]:
    planned = subprocess.run([sys.executable, "-m", "cspm.cli.main", "plan", str(app_path), "--json"],
                             capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert planned.returncode == 0, planned.stderr[-2000:]
    plan = app_path.parent / "plan.json"
    plan.write_text(planned.stdout, encoding="utf-8")
    result = subprocess.run([str(NODE), "test/run-plan.js", str(plan), "--input", text, "--entry", entry], cwd=JS,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


@pytest.mark.parametrize(("tool", "entry", "text"), [
    ("kb", "old", "Alan Turing born"),  # ABI 0 agent -> ABI 1 tool (Go, WASI mount) and ABI 1 llm (Rust)
    ("old_tool", "old", 'say "hi"\\ \n\ttab é 💡'),  # ABI 0 agent -> ABI 0 tool -> ABI 1 llm, tricky text
    ("nosuch", "old", "x"),  # an undeclared name: {"output": "None"}, as the original host answered
    ("kb", "modern", "hi"),  # ABI 1 agent -> ABI 0 tool
])
def test_the_same_answer_on_node_as_on_python(tmp_path: Path, wat_dir: Path, tool: str, entry: str, text: str) -> None:
    path = app(tmp_path, wat_dir, tool)
    with load_app(path) as rt:
        expected = rt.run(text, entry=entry)
    answer = on_node(path, text, entry)
    assert answer["output"] == expected.output and answer["finish_reason"] == expected.finish_reason, answer
    if tool == "nosuch":
        assert answer["output"] == "echo: None"
        logs = answer["logs"]
        assert isinstance(logs, list)
        assert any(str(line).startswith("old warn: call_tool: not_declared: ") for line in logs), logs
    if tool == "kb" and entry == "old":
        assert answer["output"] == "echo: Alan Turing — born: 1912"
