"""plugins/anthropic against a scripted Messages API server: what it sends, what it reads back."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cspm.errors import CspmError
from cspm.planner import load_app
from cspm.runtime import engine
from cspm.runtime.trace import Span
from tests.conftest import PLUGINS, plugin_wasm, write_app
from tests.scripted import ScriptedServer, anthropic_error, anthropic_message, anthropic_stream, sse

FOLDER = PLUGINS / "anthropic"
KEY = "sk-ant-test-456"


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    plugin_wasm("anthropic")


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    """One server for the module: closing one costs 0.5 s (serve_forever's poll interval)."""
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture
def srv(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> ScriptedServer:
    """The module's server with nothing queued or seen, and the key in the environment."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    server.replies.clear()
    server.seen.clear()
    return server


def app(tmp_path: Path, srv: ScriptedServer, config: str = "", *, grant: str | None = None,
        bare: bool = False, secret: bool = True, origin: str | None = None) -> Path:
    """An app whose single llm is the plug-in folder (`bare`: its .wasm alone, no manifest checks),
    pointed at the scripted server (or at `origin`)."""
    plugin = FOLDER / "build" / "anthropic.wasm" if bare else FOLDER
    lines = [f"base_url: {origin or srv.url}"] + ([config] if config else [])
    text = (f"entry: claude\nllms:\n  - name: claude\n    plugin_name: {plugin}\n"
            f"    config: {{{', '.join(lines)}}}\n"
            f"    grant: {{hosts: [\"{grant or srv.url}\"]}}\n")
    if secret:
        text += "    secrets: {api_key: env:ANTHROPIC_API_KEY}\n"
    return write_app(tmp_path, text)


def ask(path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """Send a full llm request to the entry, as an agent's call_llm would."""
    with load_app(path) as rt:
        response, _ = rt.invoke(rt.nodes["claude"], payload, None, Span("claude", "llm"), rt.session)
    return response


def user(text: str = "hi") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def assert_error(response: dict[str, Any], *needles: str, usage: tuple[int, int] = (0, 0)) -> None:
    assert response["finish_reason"] == "error" and response["content"] == ""
    assert response["usage"] == {"input_tokens": usage[0], "output_tokens": usage[1]}
    for needle in needles:
        assert needle in response["error"], response["error"]


def test_plain_message_sends_documented_request(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(anthropic_message("Hello from Claude", input_tokens=11, output_tokens=4))
    with load_app(app(tmp_path, srv)) as rt:
        result = rt.run("hi")
    assert (result.output, result.finish_reason) == ("Hello from Claude", "stop")
    assert result.response["usage"] == {"input_tokens": 11, "output_tokens": 4}
    seen = srv.seen[0]
    assert (seen.method, seen.path) == ("POST", "/v1/messages")
    assert seen.headers["x-api-key"] == KEY and "authorization" not in seen.headers
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["content-type"] == "application/json"
    assert seen.json == {"model": "claude-haiku-4-5", "max_tokens": 1024,
                         "messages": [{"role": "user", "content": "hi"}]}


def test_required_key_is_checked_at_load(tmp_path: Path, srv: ScriptedServer) -> None:
    with pytest.raises(CspmError, match="needs the secret `api_key`"):
        load_app(app(tmp_path, srv, secret=False))


def test_bare_module_without_key_sends_none(tmp_path: Path, srv: ScriptedServer) -> None:
    """The plug-in never sets x-api-key itself: without a secret, no key header leaves."""
    srv.reply(anthropic_message("ok"))
    assert ask(app(tmp_path, srv, bare=True, secret=False), user())["content"] == "ok"
    assert "x-api-key" not in srv.seen[0].headers


def test_system_messages_joined_and_turns_merged(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(anthropic_message("ok"))
    ask(app(tmp_path, srv), {"messages": [
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": "one"},
        {"role": "user", "content": "two"}, {"role": "system", "content": "Answer in French."},
        {"role": "assistant", "content": "un"}, {"role": "assistant", "content": "deux"},
        {"role": "user", "content": ""}, {"role": "user", "content": "three"}]})
    body = srv.seen[0].json
    assert body["system"] == "You are terse.\n\nAnswer in French."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "un"}, {"type": "text", "text": "deux"}]},
        {"role": "user", "content": "three"},
    ]


def test_config_defaults_fill_request_fields(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(anthropic_message("ok"))
    ask(app(tmp_path, srv, "model: claude-sonnet-4-5, temperature: 0.3, max_tokens: 200, stop: [END], "
                           "anthropic_version: '2099-01-01'"), user())
    assert srv.seen[0].headers["anthropic-version"] == "2099-01-01"
    body = srv.seen[0].json
    assert (body["model"], body["temperature"], body["max_tokens"], body["stop_sequences"]) == (
        "claude-sonnet-4-5", 0.3, 200, ["END"])


def test_request_fields_override_config(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(anthropic_message("ok"))
    ask(app(tmp_path, srv, "temperature: 0.3, max_tokens: 200, stop: [END]"),
        {**user(), "temperature": 0.9, "max_tokens": 5, "stop": ["\n\nHuman:"], "top_p": 0.5})
    body = srv.seen[0].json
    assert (body["temperature"], body["max_tokens"], body["stop_sequences"], body["top_p"]) == (
        0.9, 5, ["\n\nHuman:"], 0.5)


def test_whitespace_stop_sequences_are_applied_locally(tmp_path: Path, srv: ScriptedServer) -> None:
    """The API refuses whitespace-only stop sequences; the plug-in cuts the text at them instead."""
    srv.reply(anthropic_message("line one\nline two END", stop_reason="max_tokens"))
    srv.reply(anthropic_message("no newline here"))
    response = ask(app(tmp_path, srv), {**user(), "stop": ["\n", "END", "  "]})
    assert (response["content"], response["finish_reason"]) == ("line one", "stop")
    assert srv.seen[0].json["stop_sequences"] == ["END"]
    response = ask(app(tmp_path, srv), {**user(), "stop": ["\n\n"]})
    assert (response["content"], response["finish_reason"]) == ("no newline here", "stop")
    assert "stop_sequences" not in srv.seen[1].json


def test_temperature_above_anthropic_range_is_capped(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(anthropic_message("ok"))
    ask(app(tmp_path, srv), {**user(), "temperature": 1.7})
    assert srv.seen[0].json["temperature"] == 1.0


def test_text_blocks_concatenated_and_cache_tokens_counted(tmp_path: Path, srv: ScriptedServer) -> None:
    reply = anthropic_message("Hello, ", input_tokens=3, output_tokens=6)
    reply["content"] += [{"type": "thinking", "thinking": "hmm", "signature": "x"}, {"type": "text", "text": "world"}]
    reply["usage"].update(cache_creation_input_tokens=100, cache_read_input_tokens=20)
    srv.reply(reply)
    response = ask(app(tmp_path, srv), user())
    assert response["content"] == "Hello, world"
    assert response["usage"] == {"input_tokens": 123, "output_tokens": 6}


@pytest.mark.parametrize(("stop", "expect"), [("end_turn", "stop"), ("stop_sequence", "stop"),
                                              ("max_tokens", "length"), ("tool_use", "tool_calls"),
                                              ("pause_turn", "stop"), (None, "stop")])
def test_stop_reason_mapping(tmp_path: Path, srv: ScriptedServer, stop: str | None, expect: str) -> None:
    srv.reply(anthropic_message("text", stop_reason=stop))  # type: ignore[arg-type]
    assert ask(app(tmp_path, srv), user())["finish_reason"] == expect


def test_refusal_is_an_error(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(anthropic_message("", stop_reason="refusal", input_tokens=9, output_tokens=0))
    assert_error(ask(app(tmp_path, srv), user()), "refused", "stop_reason refusal", usage=(9, 0))


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_name_the_secret(tmp_path: Path, srv: ScriptedServer, status: int) -> None:
    kind = "authentication_error" if status == 401 else "permission_error"
    srv.reply(anthropic_error("invalid x-api-key", kind), status=status)
    assert_error(ask(app(tmp_path, srv), user()), f"HTTP {status}", "missing, wrong", "`api_key`",
                 f"{kind}: invalid x-api-key")


def test_not_found_names_model_and_base_url(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(anthropic_error("model: claude-9", "not_found_error"), status=404)
    assert_error(ask(app(tmp_path, srv, "model: claude-9"), user()), "HTTP 404", "`claude-9`", srv.url,
                 "not_found_error: model: claude-9")


def test_rate_limit_reports_retry_after(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(anthropic_error("Number of request tokens has exceeded your rate limit", "rate_limit_error"),
              status=429, headers={"retry-after": "33"})
    assert_error(ask(app(tmp_path, srv), user()), "rate limited", "HTTP 429", "Retry after 33 s",
                 "rate_limit_error: Number of request tokens")


def test_overloaded(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(anthropic_error("Overloaded", "overloaded_error"), status=529)
    assert_error(ask(app(tmp_path, srv), user()), "overloaded (HTTP 529)", "try again later",
                 "overloaded_error: Overloaded")


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors(tmp_path: Path, srv: ScriptedServer, status: int) -> None:
    srv.reply(anthropic_error("Internal server error", "api_error"), status=status)
    assert_error(ask(app(tmp_path, srv), user()), "server error", f"HTTP {status}", "api_error: Internal")


def test_bad_request_passes_the_message(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(anthropic_error("messages: roles must alternate"), status=400)
    assert_error(ask(app(tmp_path, srv), user()), "HTTP 400", "invalid_request_error: messages: roles must alternate")


@pytest.mark.parametrize(("reply", "needles"), [
    ({"raw": "<html>gateway</html>"}, ("malformed response", "not JSON", "<html>gateway</html>")),
    ({"body": {"id": "msg_1", "type": "message", "role": "assistant"}}, ("malformed response", "no content", "msg_1")),
    ({"body": anthropic_error("Overloaded", "overloaded_error")}, ("with an error", "overloaded_error: Overloaded")),
    ({"raw": ""}, ("malformed response", "not JSON")),
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
    response = ask(app(tmp_path, srv, grant="api.anthropic.com"), user())
    assert_error(response, "not granted", f'`grant: {{hosts: ["http://{srv.host}"]}}`', "a bare host means https")
    assert srv.seen == []
    [entry] = hinted_hosts(response["error"])
    srv.reply(anthropic_message("granted"))
    assert ask(app(tmp_path, srv, grant=entry), user())["content"] == "granted"


def test_bare_grant_of_an_http_server_hints_http(tmp_path: Path, srv: ScriptedServer) -> None:
    """`host:port` grants https only: an http base_url on that port is refused, and the hint says `http://`."""
    response = ask(app(tmp_path, srv, grant=srv.host), user())
    assert_error(response, "over http", f"granted: https://{srv.host}", f'`grant: {{hosts: ["http://{srv.host}"]}}`')
    assert srv.seen == []


def test_ungranted_https_host_hint_is_the_bare_origin(tmp_path: Path, srv: ScriptedServer) -> None:
    """An https base_url: the hint is the bare `host:port`, which grants exactly that origin."""
    origin = f"https://{srv.host}"
    response = ask(app(tmp_path, srv, grant="api.anthropic.com", origin=origin), user())
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
    srv.reply(anthropic_message("late"), delay=1.5)
    response = ask(app(tmp_path, srv), user())
    assert_error(response, f"the request to {srv.url}/v1/messages timed out after the call's time limit",
                 "http_fetch: the call's time limit ran out", "60000 ms of llm `claude`", "`grant: {timeout_ms: N}`")


def test_unreachable_server(tmp_path: Path, scripted: Callable[[], ScriptedServer],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    gone = scripted()
    gone.close()
    assert_error(ask(app(tmp_path, gone), user()), "could not reach", f"{gone.url}/v1/messages")



def test_slow_server_times_out(tmp_path: Path, srv: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A network timeout with time left on the call (`http_error`; the host's cap per network operation is
    lowered here) surfaces as a timeout, not "unreachable"."""
    import cspm.runtime.http

    monkeypatch.setattr(cspm.runtime.http, "MAX_TIMEOUT_S", 0.3)
    srv.reply(anthropic_message("late"), delay=1.0)
    assert_error(ask(app(tmp_path, srv), user()), "no answer from", "/v1/messages in time", "timeout_ms")


# ---- native tool calling ------------------------------------------------------------------------

CALC = {"name": "calc", "description": "Evaluates arithmetic",
        "input_schema": {"type": "object", "properties": {"expr": {"type": "string"}}, "required": ["expr"]}}


def tool_use_reply(*calls: tuple[str, str, Any], text: str = "", **kw: Any) -> dict[str, Any]:
    reply = anthropic_message(text, stop_reason="tool_use", **kw)
    reply["content"] = ([{"type": "text", "text": text}] if text else []) + [
        {"type": "tool_use", "id": id_, "name": name, "input": args} for id_, name, args in calls]
    return reply


def test_tool_calling_round_trip(tmp_path: Path, srv: ScriptedServer) -> None:
    path = app(tmp_path, srv)
    srv.reply(tool_use_reply(("toolu_1", "calc", {"expr": "2+2"}), ("toolu_2", "calc", {"expr": "3*3"}),
                             text="Let me compute."))
    first = ask(path, {"messages": [{"role": "system", "content": "Use tools."},
                                    {"role": "user", "content": "2+2 and 3*3?"}],
                       "tools": [CALC, {"name": "now"}], "tool_choice": "calc"})
    assert first["finish_reason"] == "tool_calls" and first["content"] == "Let me compute."
    assert first["tool_calls"] == [{"id": "toolu_1", "name": "calc", "arguments": {"expr": "2+2"}},
                                   {"id": "toolu_2", "name": "calc", "arguments": {"expr": "3*3"}}]
    sent = srv.seen[0].json
    assert sent["tools"] == [CALC, {"name": "now", "input_schema": {"type": "object", "properties": {}}}]
    assert sent["tool_choice"] == {"type": "tool", "name": "calc"}

    srv.reply(anthropic_message("4 and 9"))
    history = [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "2+2 and 3*3?"},
               {"role": "assistant", "content": "Let me compute.", "tool_calls": first["tool_calls"]},
               {"role": "tool", "tool_call_id": "toolu_1", "content": "4"},
               {"role": "tool", "tool_call_id": "toolu_2", "content": "9"},
               {"role": "user", "content": "Thanks"}]
    second = ask(path, {"messages": history, "tools": [CALC]})
    assert (second["content"], second["finish_reason"]) == ("4 and 9", "stop")
    sent = srv.seen[1].json
    assert "tool_choice" not in sent and sent["system"] == "Use tools."
    assert sent["messages"] == [
        {"role": "user", "content": "2+2 and 3*3?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me compute."},
            {"type": "tool_use", "id": "toolu_1", "name": "calc", "input": {"expr": "2+2"}},
            {"type": "tool_use", "id": "toolu_2", "name": "calc", "input": {"expr": "3*3"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "4"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "9"},
            {"type": "text", "text": "Thanks"}]},
    ]


@pytest.mark.parametrize(("choice", "wire"), [("auto", {"type": "auto"}), ("required", {"type": "any"}),
                                              ("none", {"type": "none"})])
def test_tool_choice_keywords(tmp_path: Path, srv: ScriptedServer, choice: str, wire: dict[str, str]) -> None:
    srv.reply(anthropic_message("ok"))
    ask(app(tmp_path, srv), {**user(), "tools": [CALC], "tool_choice": choice})
    assert srv.seen[0].json["tool_choice"] == wire and srv.seen[0].json["tools"] == [CALC]


def test_unknown_tool_choice_is_refused_before_sending(tmp_path: Path, srv: ScriptedServer) -> None:
    assert_error(ask(app(tmp_path, srv), {**user(), "tools": [CALC], "tool_choice": "search"}),
                 "tool_choice `search`", "calc")
    assert srv.seen == []


def test_tool_message_without_id_is_refused(tmp_path: Path, srv: ScriptedServer) -> None:
    assert_error(ask(app(tmp_path, srv), {"messages": [{"role": "user", "content": "x"},
                                                       {"role": "tool", "content": "4"}]}),
                 "messages[1]", "tool_call_id")
    assert srv.seen == []


def test_tool_use_with_non_object_input_is_an_error(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(tool_use_reply(("toolu_1", "calc", "2+2"), input_tokens=7, output_tokens=3))
    assert_error(ask(app(tmp_path, srv), {**user(), "tools": [CALC]}), "`calc`", "not a JSON object",
                 usage=(7, 3))


# ---- config checks, extra headers, streaming ----------------------------------------------------

def test_extra_headers_are_sent_but_not_credentials(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(anthropic_message("ok"))
    ask(app(tmp_path, srv, "extra_headers: {anthropic-beta: tools-2099}"), user())
    assert srv.seen[0].headers["anthropic-beta"] == "tools-2099" and srv.seen[0].headers["x-api-key"] == KEY
    for header in ("x-api-key", "Authorization", "anthropic-version"):
        assert_error(ask(app(tmp_path, srv, f"extra_headers: {{{header}: x}}"), user()), f"may not set `{header}`")
    assert len(srv.seen) == 1


@pytest.mark.parametrize(("config", "needle"), [
    ("temperature: hot", "config `temperature` must be a number"),
    ("max_tokens: many", "config `max_tokens` must be a positive integer"),
    ("stop: '[1]'", "config `stop` must be a list of strings"),
])
def test_bad_config_is_reported(tmp_path: Path, srv: ScriptedServer, config: str, needle: str) -> None:
    """Without the manifest's type checks (a bare .wasm) the plug-in checks its config itself."""
    assert_error(ask(app(tmp_path, srv, config, bare=True), user()), needle)
    assert srv.seen == []


def test_only_empty_messages_is_refused(tmp_path: Path, srv: ScriptedServer) -> None:
    assert_error(ask(app(tmp_path, srv), {"messages": [{"role": "system", "content": "s"},
                                                       {"role": "user", "content": ""}]}), "nothing to send")
    assert srv.seen == []


def stream_ask(path: Path, payload: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """`ask` with the chunks the plug-in emitted, in order."""
    chunks: list[tuple[str, str]] = []
    with load_app(path, on_chunk=lambda name, text: chunks.append((name, text))) as rt:
        response, _ = rt.invoke(rt.nodes["claude"], payload, None, Span("claude", "llm"), rt.session)
    return response, chunks


def test_a_server_that_does_not_stream_still_gives_the_whole_answer(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(anthropic_message("all at once"))
    response, chunks = stream_ask(app(tmp_path, srv), {**user(), "stream": True})
    assert (response["content"], response["finish_reason"]) == ("all at once", "stop")
    assert srv.seen[0].json["stream"] is True
    assert chunks == [("claude", "all at once")]


def test_a_streamed_answer_is_emitted_in_pieces_and_returned_whole(tmp_path: Path, srv: ScriptedServer) -> None:
    pieces = ["Hel", "lo, ", "wörld ", "✓ 🦀"]
    srv.stream(anthropic_stream(pieces, input_tokens=7, output_tokens=4), gap=0.02)
    response, chunks = stream_ask(app(tmp_path, srv), {**user(), "stream": True, "max_tokens": 9})
    assert chunks == [("claude", p) for p in pieces]
    assert response == {"content": "Hello, wörld ✓ 🦀", "finish_reason": "stop",
                        "usage": {"input_tokens": 7, "output_tokens": 4}}
    body = srv.seen[0].json
    assert (body["stream"], body["max_tokens"]) == (True, 9)
    assert srv.seen[0].headers["x-api-key"] == KEY


def test_a_streamed_max_tokens_stop_is_length(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.stream(anthropic_stream(["a", "b"], stop_reason="max_tokens"))
    response, _ = stream_ask(app(tmp_path, srv), {**user(), "stream": True})
    assert (response["content"], response["finish_reason"]) == ("ab", "length")


def test_the_key_is_redacted_from_a_streamed_answer(tmp_path: Path, srv: ScriptedServer) -> None:
    wire = "".join(anthropic_stream(["your key is ", f"{KEY} ok"]))
    split = wire.index(KEY) + 4  # the key arrives split over two network pieces
    srv.stream([wire[:split], wire[split:]], gap=0.05)
    response, chunks = stream_ask(app(tmp_path, srv), {**user(), "stream": True})
    assert response["content"] == "your key is [redacted] ok"
    assert KEY not in "".join(t for _, t in chunks)


def test_a_stream_to_an_ungranted_host_is_refused(tmp_path: Path, srv: ScriptedServer) -> None:
    response, chunks = stream_ask(app(tmp_path, srv, grant="https://api.anthropic.com"), {**user(), "stream": True})
    assert_error(response, "refused to fetch", "grant")
    assert srv.seen == [] and chunks == []


def test_a_stream_cut_mid_way_is_a_clean_error(tmp_path: Path, srv: ScriptedServer) -> None:
    events = anthropic_stream(["first ", "second"])
    srv.stream(events[:5], cut=True)  # the second piece is cut: the host holds back a tail (redaction)
    response, chunks = stream_ask(app(tmp_path, srv), {**user(), "stream": True})
    assert_error(response, "broke off")
    assert chunks == [("claude", "first ")]


def test_a_stream_without_message_stop_is_an_error(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.stream(anthropic_stream(["only"])[:4])  # ends cleanly, but before message_stop
    response, _ = stream_ask(app(tmp_path, srv), {**user(), "stream": True})
    assert_error(response, "ended before it was complete")


def test_an_error_event_ends_the_stream(tmp_path: Path, srv: ScriptedServer) -> None:
    error = sse([anthropic_error("Overloaded", "overloaded_error")], event_names=True)
    events = anthropic_stream(["first "])[:4] + error
    srv.stream(events)
    response, _ = stream_ask(app(tmp_path, srv), {**user(), "stream": True})
    assert_error(response, "Overloaded")


def test_an_error_status_on_a_stream_is_worded_as_without_one(tmp_path: Path, srv: ScriptedServer) -> None:
    srv.reply(anthropic_error("invalid x-api-key", "authentication_error"), status=401)
    response, chunks = stream_ask(app(tmp_path, srv), {**user(), "stream": True})
    assert_error(response, "invalid x-api-key")
    assert chunks == []
