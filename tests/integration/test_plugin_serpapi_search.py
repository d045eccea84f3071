"""plugins/serpapi-search against a scripted SerpAPI: the request it sends, each answer shape, each failure."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cspm.planner import load_app
from cspm.runtime import engine
from cspm.runtime.engine import Runtime
from cspm.runtime.trace import Span
from tests.conftest import PLUGINS, plugin_wasm, write_app
from tests.scripted import ScriptedServer, serpapi_search

KEY = "serp-test-key-123"

APP = """
entry: search
tools:
  - name: search
    description: web search
    plugin_name: {folder}
    config: {config}
    secrets: {{api_key: env:SERPAPI_API_KEY}}
    grant: {{hosts: [{grant}]}}
"""


@pytest.fixture(scope="module", autouse=True)
def built() -> Path:
    return plugin_wasm("serpapi-search")


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ScriptedServer]:
    """One server for the module: closing one costs 0.5 s (serve_forever's poll interval)."""
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture
def serp(shared_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    """The shared server, emptied; a test must consume every reply it queued (else it sent too few requests)."""
    monkeypatch.setenv("SERPAPI_API_KEY", KEY)
    shared_server.seen.clear()
    shared_server.replies.clear()
    yield shared_server
    assert not shared_server.replies, "replies left unconsumed"


@pytest.fixture
def app(tmp_path: Path, serp: ScriptedServer) -> Iterator[Callable[..., Runtime]]:
    """Loads the tool against `serp`; keyword arguments become its config."""
    runtimes: list[Runtime] = []

    def make(grant: str | None = None, **config: Any) -> Runtime:
        config.setdefault("base_url", serp.url)
        text = APP.format(folder=PLUGINS / "serpapi-search", config=json.dumps(config), grant=grant or serp.url)
        runtimes.append(load_app(write_app(tmp_path, text)))
        return runtimes[-1]

    yield make
    for rt in runtimes:
        rt.close()


def ask(rt: Runtime, payload: dict[str, Any]) -> dict[str, Any]:
    """One call of the tool with a full request, as an agent's call_tool would send it."""
    node = rt.nodes["search"]
    response, _ = rt.invoke(node, payload, None, Span("search", "tool"), rt.session)
    return response


def run(rt: Runtime, text: str) -> tuple[str, bool]:
    response = ask(rt, {"input": text})
    return response["output"], response["is_error"]


# ---- the request ---------------------------------------------------------------------------------

def test_request_path_parameters_and_injected_key(app: Callable[..., Runtime], serp: ScriptedServer) -> None:
    serp.reply(serpapi_search(organic=[{"title": "t", "snippet": "ok"}]))
    query = "Ada & Lovelace = café ☕ 100% #1?/+"
    output, is_error = run(app(), query)
    assert (output, is_error) == ("ok", False)
    seen = serp.seen[0]
    assert (seen.method, seen.path) == ("GET", "/search.json")
    assert seen.query["q"] == query  # decoded by the server: reserved and non-ASCII characters survived
    assert seen.query["engine"] == "google" and seen.query["hl"] == "en" and seen.query["gl"] == "us"
    assert seen.query["api_key"] == KEY  # added by the host, never by the plug-in
    assert "num" not in seen.query and "location" not in seen.query


def test_config_reaches_the_query_and_arguments_form(app: Callable[..., Runtime], serp: ScriptedServer) -> None:
    serp.reply(serpapi_search(organic=[{"snippet": "x"}]))
    rt = app(engine="google_news", hl="de", gl="ch", num=5, location="Zürich, Switzerland")
    assert ask(rt, {"arguments": {"query": "wetter morgen"}}) == {"output": "x", "is_error": False}
    q = serp.seen[0].query
    assert (q["engine"], q["hl"], q["gl"], q["num"], q["location"], q["q"]) == (
        "google_news", "de", "ch", "5", "Zürich, Switzerland", "wetter morgen")


def test_input_schema_reaches_agents(app: Callable[..., Runtime]) -> None:
    schema = app().nodes["search"].component.input_schema
    assert schema["required"] == ["query"] and schema["properties"]["query"]["type"] == "string"


def test_empty_query_is_refused_without_a_request(app: Callable[..., Runtime], serp: ScriptedServer) -> None:
    rt = app()
    for payload in ({"input": "   "}, {"arguments": {}}, {"arguments": {"query": ""}}):
        response = ask(rt, payload)
        assert response["is_error"] is True and "empty query" in response["output"]
    assert serp.seen == []


# ---- answer shapes, in priority order --------------------------------------------------------------

ORGANIC = [{"title": "First <b>hit</b>", "snippet": "first snippet"}, {"title": "Second", "snippet": "second"},
           {"title": "Third", "link": "https://example.org/3"}]


@pytest.mark.parametrize(("body", "expected"), [
    ({"answer_box": {"type": "organic_result", "answer": "1815", "snippet": "not this"}, "organic_results": ORGANIC},
     "1815"),
    ({"answer_box": {"type": "calculator_result", "result": "42"}}, "42"),
    ({"answer_box": {"snippet": "Ada was <b>born</b> in&nbsp;1815 &amp; died in 1852.\n  She wrote&#39;notes&#x27;."}},
     "Ada was born in 1815 & died in 1852. She wrote'notes'."),
    ({"answer_box": {"snippet_highlighted_words": ["December 10", "1815"]}}, "December 10, 1815"),
    ({"answer_box": {"type": "list", "title": "Steps", "list": ["Boil water", "Add <i>tea</i>"]}},
     "Steps: Boil water; Add tea"),
    ({"answer_box_list": [{"answer": "first box"}, {"answer": "second box"}]}, "first box"),
    ({"answer_box": {"type": "weather_result", "temperature": "21", "unit": "Celsius",
                     "thumbnail": "https://x/y.png"}}, "temperature: 21; unit: Celsius"),
    ({"sports_results": {"title": "Arsenal", "game_spotlight": {
        "league": "Premier League", "date": "Today, 3:00 PM",
        "teams": [{"name": "Arsenal", "score": "2"}, {"name": "Chelsea", "score": "1"}]}}, "organic_results": ORGANIC},
     "Premier League, Today, 3:00 PM: Arsenal 2 \u2013 Chelsea 1"),
    ({"shopping_results": [{"title": "Kettle A", "price": "$20"}, {"title": "Kettle B"}, {"title": "C"},
                           {"title": "D"}], "organic_results": ORGANIC}, "Kettle A ($20); Kettle B; C"),
    ({"knowledge_graph": {"title": "Ada Lovelace", "type": "English mathematician",
                          "description": "Augusta Ada King was an English mathematician."},
      "organic_results": ORGANIC},
     "Ada Lovelace (English mathematician): Augusta Ada King was an English mathematician."),
    ({"knowledge_graph": {"title": "No description"}, "organic_results": ORGANIC}, "first snippet"),
    ({"organic_results": [{"title": "only a link", "link": "https://example.org"}]}, "https://example.org"),
    ({"organic_results": [{"snippet_highlighted_words": ["a", "b"]}]}, "a, b"),
    ({"search_metadata": {"status": "Success"}, "organic_results": []}, "No good search result found"),
    ({"error": "Google hasn't returned any results for this query."}, "No good search result found"),
])
def test_answer_shapes(app: Callable[..., Runtime], serp: ScriptedServer, body: dict, expected: str) -> None:
    serp.reply(body)
    assert run(app(), "q") == (expected, False)


def test_top_n_results_as_title_snippet_lines(app: Callable[..., Runtime], serp: ScriptedServer) -> None:
    serp.reply(serpapi_search(organic=ORGANIC))
    output, is_error = run(app(results=3), "q")
    assert not is_error
    assert output == "First hit: first snippet\nSecond: second\nThird: https://example.org/3"


def test_answer_is_capped(app: Callable[..., Runtime], serp: ScriptedServer) -> None:
    serp.reply(serpapi_search(answer_box={"snippet": "word " * 1000}))
    output, _ = run(app(max_chars=50), "q")
    assert len(output) <= 50 and output.endswith("\u2026") and output.startswith("word word")
    serp.reply(serpapi_search(answer_box={"snippet": "é" * 3000}))
    output, _ = run(app(), "q")
    assert len(output) == 2000


# ---- failures -----------------------------------------------------------------------------------------

def test_error_key_is_an_error(app: Callable[..., Runtime], serp: ScriptedServer) -> None:
    serp.reply({"error": "Invalid value for parameter gl."})
    assert run(app(), "q") == ("SerpAPI error: Invalid value for parameter gl.", True)


@pytest.mark.parametrize("status", [401, 403])
def test_bad_key_names_the_secret(app: Callable[..., Runtime], serp: ScriptedServer, status: int) -> None:
    serp.reply({"error": f"Invalid API key {KEY}."}, status=status)
    output, is_error = run(app(), "q")
    assert is_error and f"HTTP {status}" in output and "`api_key`" in output and "secrets:" in output
    assert KEY not in output and "Invalid API key [redacted]" in output  # the host redacts the echoed key


def test_rate_limit_with_and_without_retry_after(app: Callable[..., Runtime], serp: ScriptedServer) -> None:
    rt = app()
    serp.reply({"error": "Your account has run out of searches."}, status=429, headers={"Retry-After": "30"})
    output, is_error = run(rt, "q")
    assert is_error and "HTTP 429" in output and "run out of searches" in output and "Retry after 30 s" in output
    serp.reply(raw="", status=429)
    output, is_error = run(rt, "q")
    assert is_error and "quota" in output and "Retry later" in output


def test_server_error_and_malformed_json(app: Callable[..., Runtime], serp: ScriptedServer) -> None:
    rt = app()
    serp.reply(raw="<html>Bad gateway</html>", status=502, headers={"Content-Type": "text/html"})
    output, is_error = run(rt, "q")
    assert is_error and "unavailable (HTTP 502" in output
    serp.reply(raw='{"organic_results": [', status=200)
    output, is_error = run(rt, "q")
    assert is_error and output.startswith("SerpAPI returned malformed JSON (")
    serp.reply(raw="[1, 2]", status=200)
    output, is_error = run(rt, "q")
    assert is_error and "not a JSON object" in output


def hinted_hosts(output: str) -> list[str]:
    """The `grant: {hosts: [...]}` a hint suggests, read as the app file would read it."""
    found = re.search(r"`grant: (\{hosts: \[.*?\]\})`", output)
    assert found, output
    return yaml.safe_load(found.group(1))["hosts"]


def test_host_not_granted_says_what_to_grant(app: Callable[..., Runtime], serp: ScriptedServer) -> None:
    """An http base_url: the hint names `http://host:port` (a bare entry means https), and that entry works."""
    output, is_error = run(app(grant="serpapi.com"), "q")
    assert is_error and "not granted" in output
    assert f'`grant: {{hosts: ["http://{serp.host}"]}}` (plain http must be written `http://`' in output
    assert serp.seen == []
    [entry] = hinted_hosts(output)
    serp.reply(serpapi_search(answer_box={"answer": "granted"}))
    assert run(app(grant=json.dumps(entry)), "q") == ("granted", False)


def test_bare_grant_of_an_http_base_url_hints_http(app: Callable[..., Runtime], serp: ScriptedServer) -> None:
    """`host:port` grants https only: an http base_url on that port is refused, and the hint says `http://`."""
    output, is_error = run(app(grant=serp.host), "q")
    assert is_error and f"over http (granted: https://{serp.host})" in output
    assert hinted_hosts(output) == [f"http://{serp.host}"]
    assert serp.seen == []


def test_https_host_not_granted_hints_the_bare_host(app: Callable[..., Runtime], serp: ScriptedServer) -> None:
    output, is_error = run(app(grant="example.org", base_url="https://SerpAPI.com/"), "q")
    assert is_error and "the host refused to fetch https://SerpAPI.com/search.json" in output
    assert output.endswith("Grant the host of base_url in the app: `grant: {hosts: [serpapi.com]}`.")


def test_call_time_limit_is_worded(app: Callable[..., Runtime], serp: ScriptedServer,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's `timeout` code (the call's wall-clock limit ran out in http_fetch) says which limit to raise.

    At the tool's own limit Extism stops it as soon as http_fetch returns (the host then says it timed
    out); here the host's clock for the call ends first, so the tool lives to word the answer."""
    original = engine.Frame.__init__

    def early(self: engine.Frame, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.deadline = time.monotonic() + 0.4

    monkeypatch.setattr(engine.Frame, "__init__", early)
    serp.reply(serpapi_search(answer_box={"answer": "late"}), delay=1.5)
    output, is_error = run(app(), "q")
    assert is_error and output.startswith("SerpAPI request timed out after the call's time limit: http_fetch: ")
    assert "30000 ms of tool `search`" in output and "`grant: {timeout_ms: N}`" in output


def test_connection_failure_is_an_error_answer(app: Callable[..., Runtime], serp: ScriptedServer) -> None:
    output, is_error = run(app(base_url="http://127.0.0.1:9", grant="http://127.0.0.1:9"), "q")
    assert is_error and output.startswith("SerpAPI request failed (http_error)")


def test_run_as_entry(app: Callable[..., Runtime], serp: ScriptedServer) -> None:
    """The whole path through `load_app(...).run`, as `cspm run --input` takes it."""
    serp.reply(serpapi_search(answer_box={"answer": "Paris"}))
    result = app().run("capital of France")
    assert result.output == "Paris"
    assert serp.seen[0].query["q"] == "capital of France"

