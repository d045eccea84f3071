"""Every SDK's conformance plug-in through the same cases on the real host (docs/sdk/conformance.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cspm import planner
from cspm.formats import app as app_format
from cspm.runtime.engine import Runtime
from tests.conftest import LANGUAGES, conformance_wasm, write_app

UNICODE = "héllo wörld ✓ 🦀 中文"


def make_app(tmp_path: Path, wasm: Path, base_url: str) -> Path:
    """The plug-in under test (`sut`) plus three more instances of it as its llm, tool and agent."""
    (tmp_path / "key.txt").write_text("s3cr3t-key-value\n")
    return write_app(tmp_path, f"""
name: conformance
entry: sut
llms:
  - {{name: echo_llm, description: an llm, plugin_name: {wasm}, config: {{kind: llm}}}}
tools:
  - {{name: echo_tool, description: a tool, plugin_name: {wasm}, config: {{kind: tool}},
     grant: {{hosts: ["{base_url}"]}}}}
agents:
  - name: sub_agent
    description: an agent with nothing to call
    plugin_name: {wasm}
    config: {{kind: agent}}
  - name: sut
    description: the plug-in under test
    plugin_name: {wasm}
    config: {{kind: agent, greeting: "{UNICODE}", numbers: [1, 2], flag: true}}
    prompt: be nice
    llms: [echo_llm]
    tools: [echo_tool]
    agents: [sub_agent]
    secrets:
      token: {{from: "file:key.txt", hosts: ["{base_url}"]}}
    grant: {{hosts: ["{base_url}"], kv: true, timeout_ms: 20000}}
""")


@pytest.fixture(params=LANGUAGES)
def lang(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def runtime(lang: str, tmp_path: Path, echo_server: tuple[str, list[dict]]) -> Any:
    chunks: list[tuple[str, str]] = []
    rt = Runtime(planner.build(app_format.load(make_app(tmp_path, conformance_wasm(lang), echo_server[0]))),
                 session="s1", on_chunk=lambda name, text: chunks.append((name, text)))
    rt.chunks = chunks  # type: ignore[attr-defined]
    yield rt
    rt.close()


def call(rt: Runtime, export: str, data: bytes | str, node: str = "sut") -> bytes:
    return rt.call_export(node, export, data.encode() if isinstance(data, str) else data)


def host(rt: Runtime, fn: str, request: dict[str, Any]) -> dict[str, Any]:
    return json.loads(call(rt, "host", json.dumps({"fn": fn, "request": request})))


@pytest.mark.parametrize("data", [b"", UNICODE.encode(), bytes(range(256)) * 4096], ids=["empty", "utf8", "1MiB"])
def test_echo(runtime: Runtime, data: bytes) -> None:
    assert call(runtime, "echo", data) == data


def test_config_values_reach_the_plugin(runtime: Runtime) -> None:
    assert call(runtime, "config_get", "greeting").decode() == UNICODE
    assert json.loads(call(runtime, "config_get", "numbers")) == [1, 2]
    assert call(runtime, "config_get", "flag") == b"true"
    assert call(runtime, "config_get", "prompt") == b"be nice"
    with pytest.raises(Exception, match="missing config key: nope"):
        call(runtime, "config_get", "nope")


def test_vars_persist_across_calls(runtime: Runtime) -> None:
    assert [call(runtime, "count", "") for _ in range(3)] == [b"1", b"2", b"3"]
    assert call(runtime, "count", "", node="echo_tool") == b"1"  # vars are per plug-in instance


def test_error_reporting(runtime: Runtime) -> None:
    with pytest.raises(Exception, match="boom é"):
        call(runtime, "fail", "boom é")


def test_logs_are_captured_per_plugin(runtime: Runtime) -> None:
    assert call(runtime, "log", "hello log") == b"logged"
    runtime.drain_logs()
    lines = [(line.level, line.message) for line in runtime.nodes["sut"].logs]
    assert ("info", "hello log") in lines and ("warn", "warn:hello log") in lines
    assert runtime.nodes["echo_tool"].logs == []


def test_call_llm(runtime: Runtime) -> None:
    req = {"name": "echo_llm", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": UNICODE}],
           "stop": ["\n"], "max_tokens": 5, "temperature": 0.5}
    assert host(runtime, "call_llm", req) == {
        "content": f"echo: {UNICODE}", "finish_reason": "stop", "usage": {"input_tokens": 2, "output_tokens": 1}}


def test_call_tool_and_agent(runtime: Runtime) -> None:
    assert host(runtime, "call_tool", {"name": "echo_tool", "input": UNICODE}) == {"output": UNICODE, "is_error": False}
    assert host(runtime, "call_agent", {"name": "sub_agent", "input": "i", "session": "other"}) == {
        "output": "i", "finish_reason": "final_answer"}


def test_undeclared_names_get_a_json_error(runtime: Runtime) -> None:
    answer = host(runtime, "call_tool", {"name": "sub_agent", "input": "x"})
    assert answer["error"]["code"] == "not_declared"
    assert "did not declare tool `sub_agent`" in answer["error"]["message"]
    assert host(runtime, "call_llm", {"name": "echo_tool", "messages": [{"role": "user", "content": "q"}]}
                )["error"]["code"] == "not_declared"


def test_http_fetch_injects_secret_and_redacts_it(runtime: Runtime, echo_server: tuple[str, list[dict]]) -> None:
    base, seen = echo_server
    answer = host(runtime, "http_fetch", {"method": "POST", "url": f"{base}/v1/x?q=1",
                                          "headers": {"X-Test": "yes", "authorization": "forged"}, "body": "B"})
    assert answer["status"] == 200
    sent = seen[-1]
    assert sent["method"] == "POST" and sent["path"] == "/v1/x?q=1" and sent["body"] == "B"
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["authorization"] == "Bearer s3cr3t-key-value" and headers["x-test"] == "yes"
    body = json.loads(answer["body"])
    assert "s3cr3t" not in answer["body"] and body["headers"]["Authorization"] == "Bearer [redacted]"


def test_http_fetch_to_an_ungranted_host_is_refused(runtime: Runtime) -> None:
    for url in ["http://example.com/", "http://127.0.0.2:1/", "file:///etc/passwd"]:
        answer = host(runtime, "http_fetch", {"method": "GET", "url": url, "headers": {}})
        assert answer["error"]["code"] == "not_granted", url


def test_kv_persists_across_restarts_and_is_scoped(runtime: Runtime, lang: str, tmp_path: Path,
                                                    echo_server: tuple[str, list[dict]]) -> None:
    value = {"n": [1, "two", None, True], "s": UNICODE}
    assert host(runtime, "kv_set", {"key": "k", "value": value}) == {}
    assert host(runtime, "kv_get", {"key": "k"}) == {"value": value}
    assert host(runtime, "kv_get", {"key": "absent"}) == {"value": None}
    runtime.close()
    app = planner.build(app_format.load(tmp_path / "app.yaml"))
    with Runtime(app, session="s1") as again:
        assert host(again, "kv_get", {"key": "k"}) == {"value": value}
    with Runtime(app, session="s2") as other_session:
        assert host(other_session, "kv_get", {"key": "k"}) == {"value": None}


def test_kv_needs_a_grant(runtime: Runtime) -> None:
    answer = json.loads(call(runtime, "host", json.dumps({"fn": "kv_get", "request": {"key": "k"}}), node="sub_agent"))
    assert answer["error"]["code"] == "not_granted"


def test_emit(runtime: Runtime) -> None:
    assert host(runtime, "emit", {"type": "chunk", "text": "tok"}) == {}
    assert host(runtime, "emit", {"type": "log", "message": "via emit"}) == {}
    assert runtime.chunks == [("sut", "tok")]  # type: ignore[attr-defined]
    assert ("info", "via emit") in [(x.level, x.message) for x in runtime.nodes["sut"].logs]


@pytest.mark.parametrize("payload", [b"call_tool\n", b"call_tool\n{not json", b'call_tool\n{"name": "echo_tool"}',
                                     b'kv_set\n{"key": "k"}', b'emit\n{"type": "explode"}', b"http_fetch\n[]"])
def test_malformed_requests_get_bad_request(runtime: Runtime, payload: bytes) -> None:
    answer = json.loads(call(runtime, "raw", payload))
    assert answer["error"]["code"] == "bad_request"


def test_call_by_kind(runtime: Runtime) -> None:
    assert runtime.run("q").output == "q"  # sut is an agent whose first tool echoes
    assert runtime.run("q", entry="echo_llm").output == "echo: q"
    tool = runtime.run(UNICODE, entry="echo_tool")
    assert tool.response == {"output": UNICODE, "is_error": False}
    assert runtime.run("z", entry="sub_agent").response == {"output": "z", "finish_reason": "final_answer"}
