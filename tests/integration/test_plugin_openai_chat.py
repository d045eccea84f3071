"""plugins/openai-chat against a scripted OpenAI-compatible server: what it sends, what it reads back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cspm.errors import FormatError
from cspm.planner import load_app
from cspm.runtime import engine
from cspm.runtime.trace import Span
from tests.conftest import PLUGINS, ROOT, plugin_wasm, write_app
from tests.scripted import ScriptedServer, openai_chat, openai_error, openai_stream

FOLDER = PLUGINS / "openai-chat"
KEY = "sk-test-123"


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    plugin_wasm("openai-chat")


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    """One server for the module: closing one costs 0.5 s (serve_forever's poll interval)."""
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture
def srv(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> ScriptedServer:
    """The module's server with nothing queued or seen, and the key in the environment."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.replies.clear()
    server.seen.clear()
    return server


def app(tmp_path: Path, srv: ScriptedServer, config: str = "", *, secret: bool = True,
        base: str = "/v1", grant: str | None = None, bare: bool = False, origin: str | None = None) -> Path:
    """An app whose single llm is the plug-in folder (`bare`: its .wasm alone, no manifest checks),
    pointed at the scripted server (or at `origin`)."""
    lines = [f"base_url: {origin or srv.url}{base}"] + ([config] if config else [])
    plugin = FOLDER / "build" / "openai-chat.wasm" if bare else FOLDER
    text = (f"entry: gpt\nllms:\n  - name: gpt\n    plugin_name: {plugin}\n"
            f"    config: {{{', '.join(lines)}}}\n"
            f"    grant: {{hosts: [\"{grant or srv.url}\"]}}\n")
    if secret:
        text += "    secrets: {api_key: env:OPENAI_API_KEY}\n"
    return write_app(tmp_path, text)


def ask(path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """Send a full llm request to the entry, as an agent's call_llm would."""
    with load_app(path) as rt:
        response, _ = rt.invoke(rt.nodes["gpt"], payload, None, Span("gpt", "llm"), rt.session)
    return response


def user(text: str = "hi") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def test_plain_completion_sends_documented_request(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_chat("Hello there", prompt_tokens=12, completion_tokens=3))
    with load_app(app(tmp_path, srv)) as rt:
        result = rt.run("hi")
    assert (result.output, result.finish_reason) == ("Hello there", "stop")
    assert result.response["usage"] == {"input_tokens": 12, "output_tokens": 3}
    assert "error" not in result.response
    seen = srv.seen[0]
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.headers["content-type"] == "application/json"
    # only what the request or config set: no temperature/max_tokens/stop/tools defaults invented
    assert seen.json == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_keyless_server_gets_no_authorization(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_chat("ok"))
    assert ask(app(tmp_path, srv, secret=False), user())["content"] == "ok"
    assert "authorization" not in srv.seen[0].headers


def test_base_url_with_prefix_and_trailing_slash(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_chat("ok"))
    assert ask(app(tmp_path, srv, base="/proxy/openai/v1/"), user())["finish_reason"] == "stop"
    assert srv.seen[0].path == "/proxy/openai/v1/chat/completions"


def test_config_defaults_fill_request_fields(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_chat("ok"))
    ask(app(tmp_path, srv, "model: llama3, temperature: 0.2, max_tokens: 64, stop: ['END', '###']"), user())
    body = srv.seen[0].json
    assert (body["model"], body["temperature"], body["max_tokens"], body["stop"]) == ("llama3", 0.2, 64,
                                                                                      ["END", "###"])


def test_request_fields_override_config(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_chat("ok"))
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    ask(app(tmp_path, srv, "temperature: 0.2, max_tokens: 64, stop: [END]"),
        {"messages": messages, "temperature": 1.5, "max_tokens": 7, "stop": ["\n"], "top_p": 0.5, "seed": 3})
    body = srv.seen[0].json
    assert body["messages"] == messages
    assert (body["temperature"], body["max_tokens"], body["stop"], body["top_p"], body["seed"]) == (
        1.5, 7, ["\n"], 0.5, 3)


def test_null_content_and_missing_usage(tmp_path: Path, srv: ScriptedServer) -> None:
    reply = openai_chat(None)
    del reply["usage"]
    srv.reply(reply)
    response = ask(app(tmp_path, srv), user())
    assert response == {"content": "", "finish_reason": "stop", "usage": {"input_tokens": 0, "output_tokens": 0}}


@pytest.mark.parametrize(("finish", "expect"), [("stop", "stop"), ("length", "length"), ("tool_calls", "tool_calls"),
                                                ("function_call", "tool_calls"), (None, "stop")])
def test_finish_reason_mapping(tmp_path: Path, srv: ScriptedServer, finish: str | None, expect: str) -> None:
    srv.reply(openai_chat("text", finish_reason=finish))  # type: ignore[arg-type]
    assert ask(app(tmp_path, srv), user())["finish_reason"] == expect


def test_content_filter_is_an_error(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_chat("partial", finish_reason="content_filter", prompt_tokens=4, completion_tokens=1))
    response = ask(app(tmp_path, srv), user())
    assert response["finish_reason"] == "error" and response["content"] == ""
    assert "content filter" in response["error"] and response["usage"] == {"input_tokens": 4, "output_tokens": 1}


def assert_error(response: dict[str, Any], *needles: str) -> None:
    assert response["finish_reason"] == "error" and response["content"] == ""
    assert response["usage"] == {"input_tokens": 0, "output_tokens": 0}
    for needle in needles:
        assert needle in response["error"], response["error"]


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_name_the_secret(tmp_path: Path, srv: ScriptedServer, status: int) -> None:
    srv.reply(openai_error("Incorrect API key provided: sk-te***123."), status=status)
    assert_error(ask(app(tmp_path, srv), user()), f"HTTP {status}", "missing or wrong", "api_key",
                 "Incorrect API key provided")


def test_not_found_names_model_and_base_url(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_error("The model `gpt-9` does not exist", code="model_not_found"), status=404)
    assert_error(ask(app(tmp_path, srv, "model: gpt-9"), user()), "HTTP 404", "`gpt-9`", f"{srv.url}/v1",
                 "does not exist")


def test_rate_limit_reports_retry_after(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_error("Rate limit reached for gpt-4o-mini", "requests"), status=429, headers={"Retry-After": "20"})
    srv.reply(openai_error("slow down", "requests"), status=429)
    assert_error(ask(app(tmp_path, srv), user()), "rate limited", "HTTP 429", "Retry after 20 s",
                 "Rate limit reached for gpt-4o-mini")
    second = ask(app(tmp_path, srv), user())
    assert_error(second, "rate limited", "slow down")
    assert "Retry after" not in second["error"]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(tmp_path: Path, srv: ScriptedServer, status: int) -> None:
    srv.reply(raw="<html>upstream down</html>", status=status, headers={"Content-Type": "text/html"})
    assert_error(ask(app(tmp_path, srv), user()), "server error", f"HTTP {status}", "upstream down")


def test_other_client_error_passes_the_message(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_error("'messages' must contain the word json"), status=400)
    assert_error(ask(app(tmp_path, srv), user()), "HTTP 400", "must contain the word json")


@pytest.mark.parametrize(("reply", "needles"), [
    ({"raw": "Gateway says hello"}, ("malformed response", "not JSON", "Gateway says hello")),
    ({"body": {"id": "x", "object": "chat.completion"}}, ("malformed response", "no choices", "chat.completion")),
    ({"body": {"choices": []}}, ("malformed response", "no choices")),
    ({"body": {"choices": [{"finish_reason": "stop"}]}}, ("malformed response", "without message")),
    ({"body": openai_error("overloaded", "server_error")}, ("with an error", "overloaded")),
])
def test_malformed_success_bodies(tmp_path: Path, srv: ScriptedServer, reply: dict[str, Any],
                                  needles: tuple[str, ...]) -> None:
    srv.reply(**reply)
    assert_error(ask(app(tmp_path, srv), user()), *needles)


def hinted_hosts(error: str) -> list[str]:
    """The `grant: {hosts: [...]}` a hint suggests, read as the app file would read it."""
    found = re.search(r"`grant: (\{hosts: \[.*?\]\})`", error)
    assert found, error
    return yaml.safe_load(found.group(1))["hosts"]


def test_ungranted_host_says_what_to_grant(tmp_path: Path, srv: ScriptedServer) -> None:
    """An http base_url: the hint names `http://host:port` (a bare entry means https), and that entry works."""
    response = ask(app(tmp_path, srv, grant="api.openai.com"), user())
    assert_error(response, "not granted", f'`grant: {{hosts: ["http://{srv.host}"]}}`', "a bare host means https")
    assert srv.seen == []
    [entry] = hinted_hosts(response["error"])
    srv.reply(openai_chat("granted"))
    assert ask(app(tmp_path, srv, grant=entry), user())["content"] == "granted"


def test_bare_grant_of_an_http_server_hints_http(tmp_path: Path, srv: ScriptedServer) -> None:
    """`host:port` grants https only: an http base_url on that port is refused, and the hint says `http://`."""
    response = ask(app(tmp_path, srv, grant=srv.host), user())
    assert_error(response, "over http", f"granted: https://{srv.host}", f'`grant: {{hosts: ["http://{srv.host}"]}}`')
    assert srv.seen == []


def test_ungranted_https_host_hint_is_the_bare_origin(tmp_path: Path, srv: ScriptedServer) -> None:
    """An https base_url: the hint is the bare `host:port`, which grants exactly that origin."""
    origin = f"https://{srv.host}"
    response = ask(app(tmp_path, srv, grant="api.openai.com", origin=origin), user())
    assert_error(response, "not granted", f"`grant: {{hosts: [{srv.host}]}}`, or set `base_url`")
    assert "http://" not in response["error"]
    [entry] = hinted_hosts(response["error"])
    assert entry == srv.host
    # granted, the request leaves: TLS to this plain-http server fails, but it is no longer a refusal
    assert_error(ask(app(tmp_path, srv, grant=entry, origin=origin), user()), "could not reach", f"{origin}/v1")


def test_call_time_limit_is_worded(tmp_path: Path, srv: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's `timeout` code (the call's wall-clock limit ran out in http_fetch) says which limit to raise.

    At the plug-in's own limit Extism stops it as soon as http_fetch returns (the host then says it timed
    out); here the host's clock for the call ends first, so the plug-in lives to word the answer."""
    original = engine.Frame.__init__

    def early(self: engine.Frame, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.deadline = time.monotonic() + 0.4

    monkeypatch.setattr(engine.Frame, "__init__", early)
    srv.reply(openai_chat("late"), delay=1.5)
    response = ask(app(tmp_path, srv), user())
    assert_error(response, f"the request to {srv.url}/v1/chat/completions timed out after the call's time limit",
                 "http_fetch: the call's time limit ran out", "60000 ms of llm `gpt`", "`grant: {timeout_ms: N}`")


def test_unreachable_server(tmp_path: Path, scripted: Callable[[], ScriptedServer]) -> None:
    gone = scripted()
    gone.close()
    assert_error(ask(app(tmp_path, gone, secret=False), user()), "could not reach",
                 f"{gone.url}/v1/chat/completions")


def test_cli_run_json(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_chat("Hi from the CLI", prompt_tokens=2, completion_tokens=4))
    result = subprocess.run([sys.executable, "-m", "cspm.cli.main", "run", str(app(tmp_path, srv)), "--input", "hi",
                             "--json"], capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["output"], data["finish_reason"]) == ("Hi from the CLI", "stop")
    assert srv.seen[0].json["messages"] == [{"role": "user", "content": "hi"}]
    assert srv.seen[0].headers["authorization"] == f"Bearer {KEY}"



def test_slow_server_times_out(tmp_path: Path, srv: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A network timeout with time left on the call (`http_error`; the host's cap per network operation is
    lowered here) surfaces as a timeout, not "unreachable"."""
    import cspm.runtime.http

    monkeypatch.setattr(cspm.runtime.http, "MAX_TIMEOUT_S", 0.3)
    srv.reply(openai_chat("late"), delay=1.0)
    assert_error(ask(app(tmp_path, srv), user()), "no answer from", "/v1/chat/completions in time", "timeout_ms")


# ---- native tool calling ------------------------------------------------------------------------

CALC = {"name": "calc", "description": "Evaluates arithmetic",
        "input_schema": {"type": "object", "properties": {"expr": {"type": "string"}}, "required": ["expr"]}}


def test_tool_calling_round_trip(tmp_path: Path, srv: ScriptedServer) -> None:
    path = app(tmp_path, srv)
    srv.reply(openai_chat(None, finish_reason="tool_calls",
                          tool_calls=[{"id": "call_1", "name": "calc", "arguments": {"expr": "2+2"}}]))
    first = ask(path, {**user("what is 2+2?"), "tools": [CALC, {"name": "now"}], "tool_choice": "calc"})
    assert first["finish_reason"] == "tool_calls" and first["content"] == ""
    assert first["tool_calls"] == [{"id": "call_1", "name": "calc", "arguments": {"expr": "2+2"}}]
    sent = srv.seen[0].json
    assert sent["tools"] == [
        {"type": "function", "function": {"name": "calc", "description": "Evaluates arithmetic",
                                          "parameters": CALC["input_schema"]}},
        {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "calc"}}

    srv.reply(openai_chat("2+2 is 4"))
    history = [{"role": "user", "content": "what is 2+2?"},
               {"role": "assistant", "content": "", "tool_calls": first["tool_calls"]},
               {"role": "tool", "tool_call_id": "call_1", "content": "4"}]
    second = ask(path, {"messages": history, "tools": [CALC]})
    assert (second["content"], second["finish_reason"]) == ("2+2 is 4", "stop")
    sent = srv.seen[1].json
    assert "tool_choice" not in sent
    assert sent["messages"][1:] == [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "calc", "arguments": '{"expr":"2+2"}'}}]},
        {"role": "tool", "content": "4", "tool_call_id": "call_1"},
    ]


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_tool_choice_keywords_pass_through(tmp_path: Path, srv: ScriptedServer, choice: str) -> None:
    srv.reply(openai_chat("ok"))
    ask(app(tmp_path, srv), {**user(), "tools": [CALC], "tool_choice": choice})
    assert srv.seen[0].json["tool_choice"] == choice


def test_unknown_tool_choice_is_refused_before_sending(tmp_path: Path, srv: ScriptedServer) -> None:
    assert_error(ask(app(tmp_path, srv), {**user(), "tools": [CALC], "tool_choice": "search"}),
                 "tool_choice `search`", "calc")
    assert srv.seen == []


def test_tool_calls_win_over_a_stop_finish(tmp_path: Path, srv: ScriptedServer) -> None:
    """Some compatible servers (Ollama, vLLM) answer tool calls with finish_reason `stop`."""
    srv.reply(openai_chat("", finish_reason="stop", tool_calls=[{"id": "c9", "name": "calc", "arguments": {}}]))
    response = ask(app(tmp_path, srv), {**user(), "tools": [CALC]})
    assert response["finish_reason"] == "tool_calls" and response["tool_calls"][0]["id"] == "c9"


@pytest.mark.parametrize(("arguments", "needle"), [('{"expr": "2+', "not JSON"), ('["2+2"]', "not a JSON object")])
def test_unparsable_tool_arguments_are_an_error(tmp_path: Path, srv: ScriptedServer, arguments: str,
                                                needle: str) -> None:
    reply = openai_chat(None, finish_reason="tool_calls", prompt_tokens=8, completion_tokens=2,
                        tool_calls=[{"id": "call_1", "name": "calc", "arguments": {}}])
    reply["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = arguments
    srv.reply(reply)
    response = ask(app(tmp_path, srv), {**user(), "tools": [CALC]})
    assert response["finish_reason"] == "error" and "`calc`" in response["error"] and needle in response["error"]
    assert response["usage"] == {"input_tokens": 8, "output_tokens": 2}


def test_legacy_function_call(tmp_path: Path, srv: ScriptedServer) -> None:
    reply = openai_chat(None, finish_reason="function_call")
    reply["choices"][0]["message"]["function_call"] = {"name": "calc", "arguments": '{"expr": "1"}'}
    srv.reply(reply)
    response = ask(app(tmp_path, srv), {**user(), "tools": [CALC]})
    assert response["tool_calls"] == [{"id": "call_0", "name": "calc", "arguments": {"expr": "1"}}]


# ---- config checks, extra headers, streaming ----------------------------------------------------

def test_extra_headers_are_sent(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_chat("ok"))
    ask(app(tmp_path, srv, "extra_headers: {OpenAI-Organization: org-42, X-Trace: 7}"), user())
    assert srv.seen[0].headers["openai-organization"] == "org-42" and srv.seen[0].headers["x-trace"] == "7"
    assert srv.seen[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("header", ["Authorization", "api-key", "Host", "Content-Type"])
def test_extra_headers_may_not_carry_credentials_or_framing(tmp_path: Path, srv: ScriptedServer, header: str) -> None:
    assert_error(ask(app(tmp_path, srv, f"extra_headers: {{{header}: x}}"), user()),
                 f"may not set `{header}`", "api_key")
    assert srv.seen == []


@pytest.mark.parametrize(("config", "needle"), [
    ("temperature: hot", "config `temperature` must be a number"),
    ("max_tokens: 0", "config `max_tokens` must be a positive integer"),
    ("stop: '[1, 2'", "config `stop` must be a list of strings"),
    ("extra_headers: [a]", "config `extra_headers` must be a map"),
])
def test_bad_config_is_reported(tmp_path: Path, srv: ScriptedServer, config: str, needle: str) -> None:
    """Without the manifest's type checks (a bare .wasm) the plug-in checks its config itself."""
    assert_error(ask(app(tmp_path, srv, config, bare=True), user()), needle)
    assert srv.seen == []


def test_manifest_types_config_at_load(tmp_path: Path, srv: ScriptedServer) -> None:
    with pytest.raises(FormatError, match="chainsocket/openai-chat expects number for 'temperature'"):
        load_app(app(tmp_path, srv, "temperature: hot"))
    with pytest.raises(FormatError, match="has no config key 'api_key_in_config'"):
        load_app(app(tmp_path, srv, "api_key_in_config: sk-x"))


def test_single_stop_string_in_config(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_chat("ok"))
    ask(app(tmp_path, srv, "stop: END", bare=True), user())
    assert srv.seen[0].json["stop"] == ["END"]


def stream_ask(path: Path, payload: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """`ask` with the chunks the plug-in emitted, in order."""
    chunks: list[tuple[str, str]] = []
    with load_app(path, on_chunk=lambda name, text: chunks.append((name, text))) as rt:
        response, _ = rt.invoke(rt.nodes["gpt"], payload, None, Span("gpt", "llm"), rt.session)
    return response, chunks


def test_a_server_that_does_not_stream_still_gives_the_whole_answer(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_chat("all at once"))
    response, chunks = stream_ask(app(tmp_path, srv), {**user(), "stream": True})
    assert (response["content"], response["finish_reason"]) == ("all at once", "stop")
    assert srv.seen[0].json["stream"] is True
    assert chunks == [("gpt", "all at once")]


def test_a_streamed_answer_is_emitted_in_pieces_and_returned_whole(tmp_path: Path, srv: ScriptedServer) -> None:
    pieces = ["Hel", "lo, ", "wörld ", "✓ 🦀"]
    srv.stream(openai_stream(pieces, prompt_tokens=7, completion_tokens=4), gap=0.02)
    response, chunks = stream_ask(app(tmp_path, srv), {**user(), "stream": True, "max_tokens": 9})
    assert chunks == [("gpt", p) for p in pieces]
    assert response == {"content": "Hello, wörld ✓ 🦀", "finish_reason": "stop",
                        "usage": {"input_tokens": 7, "output_tokens": 4}}
    body = srv.seen[0].json
    assert (body["stream"], body["stream_options"], body["max_tokens"]) == (True, {"include_usage": True}, 9)
    assert srv.seen[0].headers["authorization"] == f"Bearer {KEY}"


def test_chunks_reach_the_host_while_the_answer_is_still_arriving(tmp_path: Path, srv: ScriptedServer) -> None:
    seen: list[float] = []
    srv.stream(openai_stream(["a", "b", "c"]), gap=0.3)
    with load_app(app(tmp_path, srv), on_chunk=lambda name, text: seen.append(time.monotonic())) as rt:
        rt.invoke(rt.nodes["gpt"], {**user(), "stream": True}, None, Span("gpt", "llm"), rt.session)
        ended = time.monotonic()
    assert len(seen) == 3 and ended - seen[0] > 0.5  # the first piece came ~4 gaps before the end


def test_a_streamed_length_finish(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.stream(openai_stream(["a", "b"], finish_reason="length"))
    response, _ = stream_ask(app(tmp_path, srv), {**user(), "stream": True})
    assert (response["content"], response["finish_reason"]) == ("ab", "length")


def test_the_key_is_redacted_from_a_streamed_answer(tmp_path: Path, srv: ScriptedServer) -> None:
    wire = "".join(openai_stream(["your key is ", f"{KEY} ok"]))
    split = wire.index(KEY) + 4  # the key arrives split over two network pieces
    srv.stream([wire[:split], wire[split:]], gap=0.05)
    response, chunks = stream_ask(app(tmp_path, srv), {**user(), "stream": True})
    assert KEY not in json.dumps(response) and KEY not in "".join(t for _, t in chunks)
    assert response["content"] == "your key is [redacted] ok"


def test_a_stream_to_an_ungranted_host_is_refused(tmp_path: Path, srv: ScriptedServer) -> None:
    response, chunks = stream_ask(app(tmp_path, srv, grant="https://api.openai.com"), {**user(), "stream": True})
    assert_error(response, "refused to fetch", "grant")
    assert srv.seen == [] and chunks == []


def test_a_stream_cut_mid_way_is_a_clean_error(tmp_path: Path, srv: ScriptedServer) -> None:
    events = openai_stream(["first ", "second"])
    srv.stream(events[:3], cut=True)
    response, chunks = stream_ask(app(tmp_path, srv), {**user(), "stream": True})
    assert_error(response, "broke off")
    assert chunks == [("gpt", "first ")]


def test_a_stream_without_done_is_an_error(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.stream(openai_stream(["only"])[:2])  # ends cleanly, but before a finish or [DONE]
    response, _ = stream_ask(app(tmp_path, srv), {**user(), "stream": True})
    assert_error(response, "ended before it was complete")


def test_an_error_status_on_a_stream_is_worded_as_without_one(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_error("Incorrect API key provided"), status=401)
    response, chunks = stream_ask(app(tmp_path, srv), {**user(), "stream": True})
    assert_error(response, "api_key", "Incorrect API key provided")
    assert chunks == []


def test_tools_are_not_streamed(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_chat("no tools needed"))
    tools = [{"name": "calc", "description": "math", "input_schema": {"type": "object"}}]
    response, _ = stream_ask(app(tmp_path, srv), {**user(), "stream": True, "tools": tools})
    assert response["content"] == "no tools needed"
    assert "stream" not in srv.seen[0].json


def test_max_completion_tokens_for_reasoning_models(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(openai_chat("ok")).reply(openai_chat("ok"))
    ask(app(tmp_path, srv, "model: o3-mini, max_tokens_param: max_completion_tokens, max_tokens: 50"), user())
    ask(app(tmp_path, srv, "model: o3-mini, max_tokens_param: max_completion_tokens"), {**user(), "max_tokens": 9})
    assert [s.json.get("max_completion_tokens") for s in srv.seen] == [50, 9]
    assert all("max_tokens" not in s.json for s in srv.seen)
    with pytest.raises(FormatError, match="max_tokens_param"):
        load_app(app(tmp_path, srv, "max_tokens_param: max_output"))


def test_refusal_is_an_error(tmp_path: Path, srv: ScriptedServer) -> None:
    reply = openai_chat(None, prompt_tokens=6, completion_tokens=2)
    reply["choices"][0]["message"]["refusal"] = "I'm sorry, I can't help with that."
    srv.reply(reply)
    response = ask(app(tmp_path, srv), user())
    assert response["finish_reason"] == "error" and response["content"] == ""
    assert response["error"] == "the model refused to answer: I'm sorry, I can't help with that."
    assert response["usage"] == {"input_tokens": 6, "output_tokens": 2}
