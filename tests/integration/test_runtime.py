"""The host's limits and refusals with real plug-ins: bad modules, timeouts, memory, cycles, depth."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from cspm.errors import CspmError, PluginError
from cspm.planner import load_app
from cspm.runtime.engine import MAX_DEPTH
from tests.conftest import LANGUAGES, conformance_wasm, write_app

TOOL_APP = """
entry: t
tools:
  - name: t
    description: under test
    plugin_name: {wasm}
    grant: {grant}
"""


def tool_app(tmp_path: Path, wasm: Path | str, grant: str = "{}") -> Path:
    return write_app(tmp_path, TOOL_APP.format(wasm=wasm, grant=grant))


def test_missing_plugin_file_names_file_line_and_fix(tmp_path: Path) -> None:
    with pytest.raises(PluginError) as info:
        load_app(tool_app(tmp_path, "nowhere/missing.wasm"))
    assert f"{tmp_path / 'app.yaml'}:4: tool `t`" in str(info.value)
    assert "missing.wasm does not exist" in str(info.value) and "build" in (info.value.hint or "")


def test_not_wasm(tmp_path: Path) -> None:
    (tmp_path / "x.wasm").write_text("hello")
    with pytest.raises(PluginError, match="not a usable wasm module: not a WebAssembly module"):
        load_app(tool_app(tmp_path, "x.wasm"))


def test_missing_call_export(tmp_path: Path, wat_dir: Path) -> None:
    with pytest.raises(PluginError, match="does not export a function `call`"):
        load_app(tool_app(tmp_path, wat_dir / "nocall.wasm"))


def test_unknown_host_import(tmp_path: Path, wat_dir: Path) -> None:
    with pytest.raises(PluginError, match="imports `launch_missiles`"):
        load_app(tool_app(tmp_path, wat_dir / "badimport.wasm"))


def test_wasm_that_does_not_compile(tmp_path: Path, wat_dir: Path) -> None:
    data = bytearray((wat_dir / "spin.wasm").read_bytes())
    code = data.rfind(b"\x0b")  # corrupt the function body's `end`
    data[code] = 0xFF
    (tmp_path / "broken.wasm").write_bytes(bytes(data))
    with pytest.raises(PluginError, match="could not be compiled"):
        load_app(tool_app(tmp_path, "broken.wasm"))


def test_timeout_stops_a_spinning_plugin(tmp_path: Path, wat_dir: Path) -> None:
    with load_app(tool_app(tmp_path, wat_dir / "spin.wasm", "{timeout_ms: 200}")) as rt, \
            pytest.raises(PluginError, match=r"tool `t` timed out after 200 ms"):
        rt.run("x")


def test_memory_limit_stops_a_hog(tmp_path: Path, wat_dir: Path) -> None:
    with load_app(tool_app(tmp_path, wat_dir / "hog.wasm", "{memory_pages: 32}")) as rt, \
            pytest.raises(PluginError, match=r"ran out of memory \(limit 32 pages"):
        rt.run("x")


def test_initial_memory_over_the_grant_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="memory pages at start"):
        load_app(tool_app(tmp_path, conformance_wasm("go"), "{memory_pages: 2}"))


def test_plugin_recovers_after_a_trap(tmp_path: Path) -> None:
    """A timed-out instance is replaced, so the next request works (Go cannot resume after a trap)."""
    wasm = conformance_wasm("go")
    app = write_app(tmp_path, f"""
entry: a
tools:
  - {{name: t, description: d, plugin_name: {wasm}, grant: {{hosts: ["127.0.0.1"]}}}}
agents:
  - {{name: a, description: d, plugin_name: {wasm}, config: {{kind: agent}}, tools: [t]}}
""")
    with load_app(app) as rt:
        assert rt.run("first").output == "first"
        assert rt.call_export("a", "count", b"") == b"1"
        assert rt.run("again").output == "again"


def test_logs_are_shown_for_plugins(tmp_path: Path, wat_dir: Path) -> None:
    with load_app(tool_app(tmp_path, wat_dir / "logger.wasm")) as rt:
        with pytest.raises(PluginError, match="invalid JSON"):
            rt.run("a line from wasm")
        assert [(x.level, x.message) for x in rt.nodes["t"].logs] == [("info", '{"input": "a line from wasm"}')]


def chain_app(tmp_path: Path, wasm: Path, links: list[tuple[str, str]]) -> Path:
    """Agents a0..aN where each declares the next one as its sub-agent."""
    names = sorted({n for link in links for n in link})
    declared = {a: [b for x, b in links if x == a] for a in names}
    agents = "\n".join(
        f"  - {{name: {n}, description: d, plugin_name: {wasm}, config: {{kind: agent}}, agents: {declared[n]}}}"
        for n in names)
    return write_app(tmp_path, f"entry: {links[0][0]}\nagents:\n{agents}\n")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_agent_cycle_is_an_error(tmp_path: Path, lang: str) -> None:
    app = chain_app(tmp_path, conformance_wasm(lang), [("a", "b"), ("b", "a")])
    with load_app(app) as rt:
        result = rt.run("loop?")
    assert result.finish_reason == "error"
    assert "call cycle: a -> b -> a" in result.output
    assert result.trace.children[0].name == "b"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_agent_depth_limit(tmp_path: Path, lang: str) -> None:
    names = [f"a{i}" for i in range(MAX_DEPTH + 2)]
    app = chain_app(tmp_path, conformance_wasm(lang), list(itertools.pairwise(names)))
    with load_app(app) as rt:
        result = rt.run("deep")
    assert result.finish_reason == "error" and f"call depth over {MAX_DEPTH}" in result.output
    shallow = chain_app(tmp_path, conformance_wasm(lang), list(itertools.pairwise(names[:4])))
    with load_app(shallow) as rt:
        assert rt.run("fine").output == "fine"


def test_secret_from_missing_env_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CSPM_TEST_MISSING", raising=False)
    app = write_app(tmp_path, f"""
entry: t
tools:
  - {{name: t, description: d, plugin_name: {conformance_wasm("c")}, secrets: {{key: "env:CSPM_TEST_MISSING"}}}}
""")
    with pytest.raises(CspmError, match="environment variable CSPM_TEST_MISSING is not set") as info:
        load_app(app)
    assert "export CSPM_TEST_MISSING" in (info.value.hint or "")


def test_read_only_path_grant(tmp_path: Path) -> None:
    """`paths` mounts a host folder read-only into a WASI plug-in; a missing folder is refused."""
    app = tool_app(tmp_path, conformance_wasm("go"), "{paths: {data: /data}}")
    with pytest.raises(PluginError, match="is not a directory"):
        load_app(app)
    (tmp_path / "data").mkdir()
    with load_app(app) as rt:
        assert rt.run("x").output == "x"


def test_compiled_once_per_module(tmp_path: Path) -> None:
    from cspm.runtime import compiler

    wasm = conformance_wasm("zig")
    copy = tmp_path / "copy.wasm"
    shutil.copy(wasm, copy)
    app = write_app(tmp_path, f"""
entry: a
tools:
  - {{name: t1, description: d, plugin_name: {wasm}}}
  - {{name: t2, description: d, plugin_name: {copy}}}
agents:
  - {{name: a, description: d, plugin_name: {wasm}, config: {{kind: agent}}, tools: [t1, t2]}}
""")
    compiler.forget()
    rt = load_app(app)
    try:
        assert len(compiler._compiled) == 1  # same bytes and limits: one compile for three plug-ins
        assert json.loads(json.dumps(rt.run("x").response)) == {"output": "x", "finish_reason": "final_answer"}
    finally:
        rt.close()


def test_malformed_answer_of_a_callee_reaches_the_caller_as_json(tmp_path: Path, wat_dir: Path) -> None:
    """A tool that answers garbage does not crash its agent: the agent gets `callee_failed`."""
    app = write_app(tmp_path, f"""
entry: a
tools:
  - {{name: t, description: d, plugin_name: {wat_dir / 'logger.wasm'}}}
agents:
  - {{name: a, description: d, plugin_name: {conformance_wasm('c')}, config: {{kind: agent}}, tools: [t]}}
""")
    with load_app(app) as rt:
        result = rt.run("hi")
    assert result.finish_reason == "error"
    assert result.output.startswith("error: tool `t` returned invalid JSON")
    assert result.trace.children[0].error.startswith("tool `t` returned invalid JSON")
