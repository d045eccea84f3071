"""Chainsocket ABI 0 (Extism 0.x plug-ins) on cspm's runtime, with the WAT plug-ins tests/wat/abi0_*.wat:
detection, the import rewrite, request translation both ways, the original host's "None", the 0.x
handle ownership (nothing the plug-in lends is freed by the host; memory stable over 10,000 calls),
vars and logs, secret placeholders through real loopback servers, and failing calls."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cspm.errors import PluginError, RunFailed
from cspm.planner import load_app
from cspm.runtime import abi0, compiler
from cspm.runtime.engine import Runtime
from cspm.verify.wasm import ABI0_IMPORTS, read_interface
from tests.conftest import PLUGINS, ROOT, conformance_wasm, plugin_wasm, write_app
from tests.scripted import ScriptedServer, openai_chat

RUST = conformance_wasm("rust")  # an ABI 1 plug-in: llm "echo: <last message>", tool echoes, agent calls
KB_DATA = Path(__file__).resolve().parents[1] / "data" / "kb"
KEY = "sk-abi0-test-5d1e"


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    plugin_wasm("kb")
    plugin_wasm("openai-chat")


def run(path: Path, text: str, entry: str | None = None) -> str:
    with load_app(path) as rt:
        return rt.run(text, entry=entry).output


# ---- detection and the rewrite --------------------------------------------------------------------


def sections(wasm: bytes) -> list[tuple[int, bytes]]:
    """(id, body) of each section, read independently of cspm's reader."""
    out, pos = [], 8
    while pos < len(wasm):
        section_id, pos = wasm[pos], pos + 1
        size = shift = 0
        while True:
            byte, pos = wasm[pos], pos + 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        out.append((section_id, wasm[pos:pos + size]))
        pos += size
    return out


def test_abi0_modules_are_detected_and_have_no_problems(wat_dir: Path) -> None:
    for name in ("abi0_agent", "abi0_echo", "abi0_kernel"):
        interface = read_interface((wat_dir / f"{name}.wasm").read_bytes())
        assert interface.abi0, name
        assert interface.problems() == [], name
        assert {m for m, _, _ in interface.imports} == {"env"}
    assert not read_interface(RUST.read_bytes()).abi0


def test_rewrite_maps_every_import_and_keeps_everything_else(wat_dir: Path) -> None:
    wasm = (wat_dir / "abi0_kernel.wasm").read_bytes()
    new = abi0.rewrite(wasm)
    before, after = read_interface(wasm), read_interface(new)
    assert [kind for _, _, kind in after.imports] == [kind for _, _, kind in before.imports]
    mapped = [(m, n) for m, n, _ in after.imports]
    assert ("extism:host/env", "alloc") in mapped and ("extism:host/env", "memory_bytes") in mapped
    assert ("extism:host/user", "cs0_config_get") in mapped and ("extism:host/user", "cs0_http_request") in mapped
    assert not after.abi0 and after.exports == before.exports
    old_sections, new_sections = sections(wasm), sections(new)
    assert [i for i, _ in old_sections] == [i for i, _ in new_sections]
    assert [b for i, b in old_sections if i != 2] == [b for i, b in new_sections if i != 2]  # only imports change
    # every 0.x name cspm accepts is mapped, to the kernel or to a host function cspm registers
    assert set(ABI0_IMPORTS) == set(abi0.KERNEL) | set(abi0.HOST)
    assert {f.name for f in abi0.FUNCTIONS} == set(abi0.HOST.values())


def test_rewritten_once_per_digest_and_compiled_under_its_own_key(tmp_path: Path, wat_dir: Path) -> None:
    app = write_app(tmp_path, f"entry: t\ntools:\n  - {{name: t, plugin_name: {wat_dir / 'abi0_echo.wasm'}}}\n")
    with load_app(app) as rt:
        digest = rt.nodes["t"].component.module.digest
        assert rt.run("hi").output == "t heard: hi"
    first = abi0._rewritten[digest]
    with load_app(app) as rt:
        assert rt.run("again").output == "t heard: again"
    assert abi0._rewritten[digest] is first  # not rewritten again
    assert any(key[0] == digest and key[1] == abi0.VARIANT for key in compiler._compiled)


def test_an_abi1_app_never_imports_the_abi0_code(tmp_path: Path) -> None:
    app = write_app(tmp_path, f"entry: t\ntools:\n  - {{name: t, plugin_name: {RUST}}}\n")
    code = ("import sys; from cspm.planner import load_app\n"
            f"with load_app({str(app)!r}) as rt: out = rt.run('x').output\n"
            "print(out, 'cspm.runtime.abi0' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.stdout.split() == ["x", "False"], result.stderr


# ---- request translation --------------------------------------------------------------------------


def agent_app(tmp_path: Path, config: dict[str, str], *, tools: str = "", llms: str = "", agents: str = "",
              declared: dict[str, list[str]] | None = None, wat_dir: Path) -> Path:
    calls = "".join(f"    {k}: {v}\n" for k, v in (declared or {}).items())
    return write_app(tmp_path, f"""entry: old
llms:
  - {{name: llm, plugin_name: {RUST}, config: {{kind: llm}}}}
{llms}tools:
  - {{name: kb, plugin_name: {PLUGINS / 'kb'}, config: {{file: /kb/list/people.json}},
     grant: {{paths: {{{KB_DATA}: /kb}}}}}}
{tools}agents:
  - name: old
    plugin_name: {wat_dir / 'abi0_agent.wasm'}
    prompt: You are "terse".
    config: {json.dumps(config)}
{calls}{agents}""")


def test_abi0_agent_on_abi1_tool_and_llm(tmp_path: Path, wat_dir: Path) -> None:
    """AgentReq in, ToolReq to the Go kb tool, LLMReq to the Rust llm, their ActionReps back."""
    app = agent_app(tmp_path, {"llm_name": "llm", "tool_name": "kb"},
                    declared={"llms": "[llm]", "tools": "[kb]"}, wat_dir=wat_dir)
    with load_app(app) as rt:
        result = rt.run("Alan Turing born")
        assert result.output == "echo: Alan Turing — born: 1912"
        assert result.finish_reason == "final_answer"
        assert [(c.name, c.kind) for c in result.trace.children] == [("kb", "tool"), ("llm", "llm")]
        assert result.trace.children[0].input == "Alan Turing born"


def test_llmreq_becomes_system_and_user_messages_with_stop(tmp_path: Path, wat_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The LLMReq as an ABI 1 call_llm, seen where it ends: the request openai-chat sends."""
    server = ScriptedServer()
    try:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
        server.reply(openai_chat("Arr, aye."))
        gpt = (f"  - {{name: gpt, plugin_name: {PLUGINS / 'openai-chat' / 'build' / 'openai-chat.wasm'}, "
               f"config: {{base_url: {server.url}/v1}}, grant: {{hosts: [\"{server.url}\"]}}, "
               f"secrets: {{api_key: env:OPENAI_API_KEY}}}}\n")
        app = agent_app(tmp_path, {"llm_name": "gpt"}, llms=gpt, declared={"llms": "[gpt]"}, wat_dir=wat_dir)
        assert run(app, "Ahoy?") == "Arr, aye."
        body = server.seen[0].json
        assert body["messages"] == [{"role": "system", "content": 'You are "terse".'},
                                    {"role": "user", "content": "Ahoy?"}]
        assert body["stop"] == ["\nObservation:"]
    finally:
        server.close()


def test_abi0_agent_calls_an_abi0_tool_and_agent(tmp_path: Path, wat_dir: Path) -> None:
    echo = wat_dir / "abi0_echo.wasm"
    app = agent_app(tmp_path, {"llm_name": "llm", "tool_name": "old_tool", "agent_name": "old_agent"},
                    tools=f"  - {{name: old_tool, plugin_name: {echo}}}\n",
                    agents=f"  - {{name: old_agent, plugin_name: {echo}}}\n",
                    declared={"llms": "[llm]", "tools": "[old_tool]", "agents": "[old_agent]"}, wat_dir=wat_dir)
    assert run(app, "q") == "old_agent heard: echo: old_tool heard: q"
    # text with quotes, a backslash, newlines, control characters and UTF-8 goes through every hop intact
    tricky = 'say "hi"\\ \n\ttab \x01 é 💡'
    assert run(app, tricky) == f"old_agent heard: echo: old_tool heard: {tricky}"


def test_abi1_agent_calls_abi0_tool_llm_and_agent(tmp_path: Path, wat_dir: Path) -> None:
    """The conformance agent (ABI 1) calls its first tool, llm or agent: each an ABI 0 plug-in that
    receives ToolReq, LLMReq or AgentReq and answers raw text, which becomes the ABI 1 answer."""
    echo = wat_dir / "abi0_echo.wasm"
    app = write_app(tmp_path, f"""entry: a_tool
tools: [{{name: old_tool, plugin_name: {echo}}}]
llms: [{{name: old_llm, plugin_name: {echo}}}]
agents:
  - {{name: old_agent, plugin_name: {echo}}}
  - {{name: a_tool, plugin_name: {RUST}, config: {{kind: agent}}, tools: [old_tool]}}
  - {{name: a_llm, plugin_name: {RUST}, prompt: "be brief", config: {{kind: agent}}, llms: [old_llm]}}
  - {{name: a_agent, plugin_name: {RUST}, config: {{kind: agent}}, agents: [old_agent]}}
""")
    with load_app(app) as rt:
        assert rt.run("hi", entry="a_tool").output == "old_tool heard: hi"
        assert rt.run("hi", entry="a_llm").output == "old_llm heard: hi | system: be brief"
        assert rt.run("hi", entry="a_agent").output == "old_agent heard: hi"
        llm = rt.run_message("old_llm", {"messages": [
            {"role": "system", "content": "S"}, {"role": "user", "content": "u1"},
            {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"}]})
        assert llm.output == "old_llm heard: u2 | system: S\n\nUser: u1\nAssistant: a1"
        assert llm.response["finish_reason"] == "stop"
        tool = rt.run_message("old_tool", {"arguments": {"q": 1}})
        assert tool.response == {"output": 'old_tool heard: {"q": 1}', "is_error": False}


def test_unknown_or_undeclared_name_answers_none(tmp_path: Path, wat_dir: Path) -> None:
    """The original host answered `{"output": "None"}` for a name it did not have; cspm also for a
    name the agent did not declare, and says why in the agent's log."""
    for tool in ("nosuch", "kb"):  # kb exists but is not declared by this agent
        app = agent_app(tmp_path, {"llm_name": "llm", "tool_name": tool}, declared={"llms": "[llm]"},
                        wat_dir=wat_dir)
        with load_app(app) as rt:
            assert rt.run("x").output == "echo: None"
            warned = [line.message for line in rt.nodes["old"].logs if line.level == "warn"]
        assert len(warned) == 1 and warned[0].startswith("call_tool: not_declared: ")
        assert f"did not declare tool `{tool}`" in warned[0]


def test_a_call_cycle_is_refused_by_the_engine_and_answers_none(tmp_path: Path, wat_dir: Path) -> None:
    """The agent hands its llm's answer to the agent `agent_name` names: itself. The engine's cycle
    check refuses it as it refuses any ABI 1 cycle, and the agent gets "None"."""
    app = agent_app(tmp_path, {"llm_name": "llm", "agent_name": "old"},
                    declared={"llms": "[llm]", "agents": "[old]"}, wat_dir=wat_dir)
    with load_app(app) as rt:
        assert rt.run("x").output == "None"
        warned = [line.message for line in rt.nodes["old"].logs if line.level == "warn"]
    assert warned == ['call_agent: cycle: call cycle: old -> old (answered {"output": "None"}, as the '
                      'original host did)']


# ---- the kernel: config, vars, logs, ownership ---------------------------------------------------


@pytest.fixture
def kernel(tmp_path: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("ABI0_KEY", KEY)
    app = write_app(tmp_path, f"""entry: k
tools:
  - name: k
    plugin_name: {wat_dir / 'abi0_kernel.wasm'}
    config: {{color: blue}}
    secrets: {{apikey: {{from: env:ABI0_KEY, header: X-Not-Used}}}}
""")
    with load_app(app) as rt:
        yield rt


def test_config_get_answers_config_name_and_a_placeholder(kernel: Runtime) -> None:
    assert kernel.call_export("k", "config", b"color") == b"blue"
    assert kernel.call_export("k", "config", b"name") == b"k"  # the component's name, as the original host
    assert kernel.call_export("k", "config", b"nothing") == b"<none>"
    placeholder = kernel.call_export("k", "config", b"apikey").decode()
    assert placeholder.startswith("cspm-secret-apikey-") and KEY not in placeholder


def test_vars_persist_per_instance_and_start_over_after_a_failure(kernel: Runtime) -> None:
    assert [kernel.call_export("k", "count", b"") for _ in range(3)] == [b"1", b"2", b"3"]
    with pytest.raises(PluginError, match=r"tool `k` crashed \(wasm trap\)"):
        kernel.call_export("k", "trap", b"")
    assert kernel.call_export("k", "count", b"") == b"1"


def test_logs_at_each_level_and_no_handle_freed_by_the_host(kernel: Runtime) -> None:
    assert kernel.call_export("k", "log", b"") == b"logged"  # it fails if the host freed a lent handle
    assert [(x.level, x.message) for x in kernel.nodes["k"].logs] == [
        ("info", "an info line"), ("warn", "a warn line!"), ("error", "error line!!")]  # debug: as Extism's


def test_memory_is_stable_over_10000_calls(kernel: Runtime) -> None:
    """Within one call, 10,000 rounds of config_get, var_set, var_get and log_debug (the plug-in frees
    every handle, as the PDK does) leave the kernel's memory as 100 rounds do: the host neither leaks
    what it hands over nor frees what it was lent (the plug-in checks each handle after each call);
    over 10,000 calls, the vars and the plug-in's memory stay the same size."""
    small = int(kernel.call_export("k", "loop", b"100"))
    assert int(kernel.call_export("k", "loop", b"10000")) == small
    state = kernel.nodes["k"].abi0
    assert state is not None
    kernel.call_export("k", "count", b"")
    held = state.var_bytes
    for _ in range(10_000):
        kernel.call_export("k", "count", b"")
    assert state.var_bytes == held and len(state.vars) == 2  # "count", and "name" of `loop`
    assert int(kernel.call_export("k", "count", b"")) == 10_002
    assert int(kernel.call_export("k", "loop", b"1")) == small


# ---- HTTP and secret placeholders ----------------------------------------------------------------


def http_app(tmp_path: Path, wat_dir: Path, granted: list[str], bound: list[str]) -> Path:
    return write_app(tmp_path, f"""entry: k
tools:
  - name: k
    plugin_name: {wat_dir / 'abi0_kernel.wasm'}
    secrets: {{apikey: {{from: env:ABI0_KEY, header: X-Not-Used, hosts: {json.dumps(bound)}}}}}
    grant: {{hosts: {json.dumps(granted)}}}
""")


def test_placeholder_is_swapped_for_the_bound_host_and_redacted_back(
        tmp_path: Path, wat_dir: Path, echo_server: tuple[str, list[dict[str, Any]]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABI0_KEY", KEY)
    url, seen = echo_server
    with load_app(http_app(tmp_path, wat_dir, [url], [url])) as rt:
        placeholder = rt.call_export("k", "config", b"apikey").decode()
        answer = rt.call_export("k", "http", f"{url}/v1/chat".encode()).decode()
    sent = seen[-1]
    assert sent["method"] == "POST" and sent["path"] == "/v1/chat"
    assert sent["headers"]["Authorization"] == f"Bearer {KEY}"  # the plug-in built it with the placeholder
    assert json.loads(sent["body"]) == {"key": KEY}
    assert placeholder not in json.dumps(sent)
    # the echo server sent the key back, in the body and in the headers it saw: all redacted
    status, _, body = answer.partition(" ")
    assert status == "200" and KEY not in answer and placeholder not in answer
    echoed = json.loads(body)
    assert echoed["headers"]["Authorization"] == "Bearer [redacted]"
    assert json.loads(echoed["body"]) == {"key": "[redacted]"}


def test_placeholder_is_not_swapped_for_another_host(tmp_path: Path, wat_dir: Path,
                                                      echo_server: tuple[str, list[dict[str, Any]]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Both origins are granted, the secret is bound to one: a request to the other that carries the
    placeholder is refused before anything is sent, and the plug-in gets 0 (status 0), as 0.x did."""
    monkeypatch.setenv("ABI0_KEY", KEY)
    url, seen = echo_server
    other = url.replace("127.0.0.1", "localhost")
    with load_app(http_app(tmp_path, wat_dir, [url, other], [url])) as rt:
        assert rt.call_export("k", "http", f"{other}/steal".encode()) == b"failed 0"
        warned = [x.message for x in rt.nodes["k"].logs if x.level == "warn"]
    assert seen == []
    assert len(warned) == 1 and "not_granted" in warned[0] and "secret `apikey` is not bound to localhost" in warned[0]
    assert KEY not in warned[0]


def test_http_transport_failure_and_ungranted_host_answer_0(tmp_path: Path, wat_dir: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABI0_KEY", KEY)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with load_app(http_app(tmp_path, wat_dir, [closed], [closed])) as rt:
        assert rt.call_export("k", "http", f"{closed}/x".encode()) == b"failed 0"
        assert rt.call_export("k", "http", b"http://127.0.0.2:9/x") == b"failed 0"
        warned = [x.message for x in rt.nodes["k"].logs if x.level == "warn"]
    assert "http_error" in warned[0] and "not_granted" in warned[1]


def test_a_failure_after_a_refused_request_names_it(tmp_path: Path, wat_dir: Path,
                                                    echo_server: tuple[str, list[dict[str, Any]]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An original plug-in fails on the empty body it gets after a refusal: the error says why."""
    monkeypatch.setenv("ABI0_KEY", KEY)
    url, seen = echo_server
    with load_app(http_app(tmp_path, wat_dir, [url], [url])) as rt:
        assert json.loads(rt.call_export("k", "get", f"{url}/ok".encode()))["method"] == "GET"
        with pytest.raises(PluginError) as failed:
            rt.call_export("k", "get", b"https://example.com/")
    assert str(failed.value).startswith("tool `k` crashed (wasm trap): ")
    assert str(failed.value).endswith("(after a refused host request: extism_http_request: not_granted: host "
                                      "example.com is not granted to this plug-in over https (granted: "
                                      f"{url}))")
    assert len(seen) == 1


# ---- failing calls --------------------------------------------------------------------------------


def test_abi0_call_that_traps_or_fails(tmp_path: Path, wat_dir: Path) -> None:
    app = write_app(tmp_path, f"entry: t\ntools:\n  - {{name: t, plugin_name: {wat_dir / 'abi0_echo.wasm'}}}\n")
    with load_app(app) as rt:
        with pytest.raises(RunFailed, match=r"tool `t` crashed \(wasm trap\)"):
            rt.run("trap")
        # the 0.3 PDK frees its error message right after error_set: cspm read it at error_set
        with pytest.raises(RunFailed, match="tool `t` failed: the echo failed on purpose"):
            rt.run("fail")
        assert rt.run("fine").output == "t heard: fine"


def test_abi1_agent_sees_an_abi0_failure_as_callee_failed(tmp_path: Path, wat_dir: Path) -> None:
    app = write_app(tmp_path, f"""entry: a
tools: [{{name: old, plugin_name: {wat_dir / 'abi0_echo.wasm'}}}]
agents: [{{name: a, plugin_name: {RUST}, config: {{kind: agent}}, tools: [old]}}]
""")
    with load_app(app) as rt:
        result = rt.run("fail")
    assert result.finish_reason == "error"
    assert result.output == "error: tool `old` failed: the echo failed on purpose"


# ---- offline: an ABI 0 agent on kb and llm-local ----------------------------------------------------


def test_abi0_agent_runs_offline_on_kb_and_llm_local(tmp_path: Path, wat_dir: Path) -> None:
    """The original agent shape on the offline components: kb (Go, ABI 1) answers its tool call and
    llm-local (C, ABI 1, a tiny random model at temperature 0) its LLMReq. What the agent returns is
    exactly what llm-local answers to the ABI 1 request the LLMReq stands for."""
    from tests import llm_reference

    plugin_wasm("llm-local")
    models = tmp_path / "models"
    models.mkdir()
    llm_reference.make_model(models / "tiny.gguf", llm_reference.QT.Q8_0)
    local = (f"  - name: local\n    plugin_name: {PLUGINS / 'llm-local'}\n"
             f"    config: {{model: /models/tiny.gguf, temperature: 0, max_tokens: 12}}\n"
             f"    grant: {{paths: {{{models}: /models}}}}\n")
    app = agent_app(tmp_path, {"llm_name": "local", "tool_name": "kb"}, llms=local,
                    declared={"llms": "[local]", "tools": "[kb]"}, wat_dir=wat_dir)
    with load_app(app) as rt:
        result = rt.run("Alan Turing born")
        assert [(c.name, c.kind) for c in result.trace.children] == [("kb", "tool"), ("local", "llm")]
        direct = rt.run_message("local", {"messages": [
            {"role": "system", "content": 'You are "terse".'},
            {"role": "user", "content": "Alan Turing — born: 1912"}], "stop": ["\nObservation:"]})
    assert result.output == direct.output and result.output and result.finish_reason == "final_answer"
    # and from `cspm run`, offline, as a user runs it: the same answer
    done = subprocess.run([sys.executable, "-m", "cspm", "run", str(app), "--input", "Alan Turing born", "--json",
                           "--offline"], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "CSPM_CACHE_DIR": str(tmp_path / "cache"),
                               "CSPM_CONFIG_DIR": str(tmp_path / "config"), "CSPM_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["output"] == direct.output


def test_a_package_is_never_abi0_index_build_refuses_one(wat_dir: Path, tmp_path: Path) -> None:
    """A local app may run an Extism 0.x module; a registry package is ABI 1, so `cspm index build` (the
    check publishing and installing share) refuses one, saying why and what to do."""
    folder = tmp_path / "plugins" / "old-tool"
    (folder / "build").mkdir(parents=True)
    (folder / "build" / "old.wasm").write_bytes((wat_dir / "abi0_echo.wasm").read_bytes())
    (folder / "plugin.yaml").write_text("name: acme/old-tool\nversion: 1.0.0\nkind: tool\ndescription: echo\n"
                                        "abi: 1\nwasm: build/old.wasm\n")
    result = subprocess.run([sys.executable, "-m", "cspm", "index", "build", str(tmp_path / "plugins"), "--out",
                             str(tmp_path / "index"), "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode != 0
    assert "built for Extism 0.x (Chainsocket ABI 0)" in result.stdout + result.stderr
    assert "rebuild it with a current Extism PDK" in result.stdout + result.stderr
    assert not (tmp_path / "index" / "index" / "acme" / "old-tool").exists()


def test_a_malformed_original_request_answers_none_and_says_why(tmp_path: Path, wat_dir: Path) -> None:
    """The agent splices its config's `tool_name` into the ToolReq unescaped, as a careless plug-in
    would: a quote there makes the request text that is not JSON. The host answers the original
    host's "None" (the agent goes on) and logs why; nothing is routed."""
    app = agent_app(tmp_path, {"llm_name": "llm", "tool_name": 'kb"'},
                    declared={"llms": "[llm]", "tools": "[kb]"}, wat_dir=wat_dir)
    with load_app(app) as rt:
        result = rt.run("Alan Turing born")
        warned = [line.message for line in rt.nodes["old"].logs if line.level == "warn"]
    assert [c.kind for c in result.trace.children] == ["llm"]  # no tool call was made
    assert result.output == "echo: None"  # the agent took "None" for the tool's answer and went on
    assert len(warned) == 1 and "call_tool" in warned[0] and '{"output": "None"}' in warned[0], warned


def test_an_abi0_agent_is_stopped_at_its_deadline_with_its_callee(tmp_path: Path, wat_dir: Path) -> None:
    """The agent's ToolReq goes to a tool that never returns: the agent's time limit (500 ms) stops the
    tool, well before the tool's own limit, and says so (the agent gets "None" and may answer in time
    or be stopped itself)."""
    import time

    app = write_app(tmp_path, f"""entry: old
llms:
  - {{name: llm, plugin_name: {RUST}, config: {{kind: llm}}}}
tools:
  - {{name: spin, plugin_name: {wat_dir / 'spin.wasm'}, grant: {{timeout_ms: 30000}}}}
agents:
  - name: old
    plugin_name: {wat_dir / 'abi0_agent.wasm'}
    config: {{llm_name: llm, tool_name: spin}}
    llms: [llm]
    tools: [spin]
    grant: {{timeout_ms: 500}}
""")
    with load_app(app) as rt:
        started = time.monotonic()
        try:
            result = rt.run("Alan Turing born")
        except RunFailed as exc:  # the agent's own limit ran out before it could answer
            said = str(exc)
        else:  # or it took "None" for the tool and answered in time: the tool's stop is in the trace
            said = " ".join(str(c.error) for c in result.trace.children if c.name == "spin")
        elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed  # the tool's own limit is 30 s
    assert "tool `spin` was stopped: the call's time limit (500 ms of agent `old`) ran out" in said, said
