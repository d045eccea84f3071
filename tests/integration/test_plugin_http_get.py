"""The http-get tool (plugins/http-get, C) against a loopback site: HTML to text, JSON, text, errors."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from cspm.errors import CspmError
from cspm.planner import load_app
from cspm.runtime import engine
from cspm.runtime.engine import Runtime
from cspm.runtime.trace import Span
from tests.conftest import PLUGINS, plugin_wasm, write_app

PAGE = """<!DOCTYPE html>
<html lang="en"><head>
  <meta charset="utf-8"><title>  Caf&eacute; &amp; Co &#8212; Menu </title>
  <style>body { color: red; } .secret { display: none }</style>
  <script>var hidden = "<p>not text</p>";</script>
  <link rel="stylesheet" href="x.css">
</head>
<body>
  <noscript>Enable JavaScript</noscript>
  <nav><a href="/">Home</a> | <a href="/menu">Menu</a></nav>
  <h1>Today&#39;s   specials</h1>
  <p>Fish &amp; chips &lt;fresh&gt; for &euro;9&nbsp;only.<br>Soup &#x1F35C; too.</p>
  <ul><li>Tea</li><li>Coffee &quot;black&quot;</li></ul>
  <!-- <p>a comment</p> -->
  <script type="text/javascript">document.write("<b>nope</b>")</script>
  <table><tr><th>Item</th><th>Price</th></tr><tr><td>Cake</td><td>3</td></tr></table>
  <pre>line 1
    indented line 2</pre>
  <div>a &lt; b &unknown; c &#0;</div>
</body></html>"""

JSON_BODY = '{"name": "cspm", "tags": ["a", "b"], "nested": {"n": 1}}'
TEXT_BODY = "plain text\n  keeps   its spacing\n"
NOT_FOUND = "<html><head><title>Not here</title></head><body><h1>404</h1><p>No page at this address. " + \
    "x" * 400 + "</p></body></html>"
LARGE = "<html><body>" + "".join(f"<p>Paragraph {i}: {'é' * 50}</p>" for i in range(400)) + "</body></html>"


@dataclass
class Route:
    status: int
    body: bytes
    content_type: str | None
    headers: dict[str, str] = field(default_factory=dict)


ROUTES: dict[str, Route] = {
    "/page.html": Route(200, PAGE.encode(), "text/html; charset=utf-8"),
    "/data.json": Route(200, JSON_BODY.encode(), "application/json"),
    "/problem": Route(200, b'{"type": "about:blank"}', "application/problem+json"),
    "/plain.txt": Route(200, TEXT_BODY.encode(), "text/plain; charset=utf-8"),
    "/missing": Route(404, NOT_FOUND.encode(), "text/html"),
    "/error.json": Route(500, b'{"error": "database is down"}', "application/json"),
    "/image.png": Route(200, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "image/png"),
    "/large.html": Route(200, LARGE.encode(), "text/html; charset=utf-8"),
    "/moved": Route(301, b"", "text/html", {"Location": "https://example.org/new"}),
    "/untyped": Route(200, b"<!doctype html><html><body><p>sniffed <b>html</b></p></body></html>", None),
    "/empty": Route(200, b"", "text/html"),
    "/huge": Route(200, b"a" * (8 * 1024 * 1024 + 1), "text/plain"),
    "/no-head-end": Route(200, b"<html><head><title>T</title><p>Body without a head end</p>", "text/html"),
}


class Site(BaseHTTPRequestHandler):
    """Serves ROUTES and records every request's path and headers."""

    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = ROUTES.get(self.path.split("?")[0], Route(404, b"nothing", "text/plain"))
        if self.path == "/slow":  # answers after any call's time limit in these tests
            time.sleep(1.5)
        if self.path == "/whoami":  # echoes the credential, which the host must redact
            route = Route(200, f"you sent {self.headers.get('Authorization')}".encode(), "text/plain")
        self.send_response(route.status)
        if route.content_type:
            self.send_header("Content-Type", route.content_type)
        for key, value in route.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        self.wfile.write(route.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, list[tuple[str, dict[str, str]]]]]:
    handler = type("Handler", (Site,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", handler.seen
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def rt(site: tuple[str, list], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """`web` with the defaults, `short` with max_chars 120 and its own user agent, `closed` with no grant,
    `bare` granted the site's host:port without `http://` (so https only)."""
    plugin_wasm("http-get")
    host = site[0]
    folder = PLUGINS / "http-get"
    app = write_app(tmp_path_factory.mktemp("web"), f"""
entry: web
tools:
  - {{name: web, description: fetch, plugin_name: {folder}, grant: {{hosts: ["http://{host}"]}}}}
  - name: short
    description: fetch, briefly
    plugin_name: {folder}
    config: {{max_chars: 120, user_agent: test-agent/2}}
    grant: {{hosts: ["http://{host}"]}}
  - {{name: closed, description: no hosts, plugin_name: {folder}}}
  - {{name: bare, description: https only, plugin_name: {folder}, grant: {{hosts: ["{host}"]}}}}
""")
    with load_app(app) as runtime:
        yield runtime


def fetch(rt: Runtime, text: str, tool: str = "web") -> dict[str, Any]:
    return rt.run(text, entry=tool).response


def test_html_becomes_text_with_title_first(rt: Runtime, site: tuple[str, list]) -> None:
    out = fetch(rt, f"http://{site[0]}/page.html")
    assert out["is_error"] is False
    text = out["output"]
    assert text.startswith("Title: Café & Co — Menu\n\n")
    assert "Today's specials" in text
    assert "Fish & chips <fresh> for €9 only.\nSoup 🍜 too." in text
    assert "- Tea\n- Coffee \"black\"" in text
    assert "Item Price\nCake 3" in text
    assert "line 1\n    indented line 2" in text
    assert "a < b &unknown; c \ufffd" in text
    for hidden in ["color: red", "var hidden", "not text", "nope", "Enable JavaScript", "a comment", "x.css"]:
        assert hidden not in text
    assert "  " not in text.replace("    indented", "") and "\n\n\n" not in text


def test_user_agent_default_and_configured(rt: Runtime, site: tuple[str, list]) -> None:
    fetch(rt, f"http://{site[0]}/plain.txt")
    assert site[1][-1][1]["user-agent"] == "chainsocket-http-get/1.0"
    fetch(rt, f"http://{site[0]}/plain.txt", tool="short")
    assert site[1][-1][1]["user-agent"] == "test-agent/2"


@pytest.mark.parametrize(("path", "expected"), [
    ("/data.json", JSON_BODY), ("/problem", '{"type": "about:blank"}'), ("/plain.txt", TEXT_BODY),
    ("/untyped", "sniffed html"), ("/no-head-end", "Title: T\n\nBody without a head end"),
    ("/empty", "(the response has no text: HTTP 200)"),
])
def test_bodies_by_type(rt: Runtime, site: tuple[str, list], path: str, expected: str) -> None:
    assert fetch(rt, f"http://{site[0]}{path}") == {"output": expected, "is_error": False}


def test_arguments_form(rt: Runtime, site: tuple[str, list]) -> None:
    response, _ = rt.invoke(rt.nodes["web"], {"arguments": {"url": f"http://{site[0]}/data.json"}}, None,
                            Span("web", "tool"), rt.session)
    assert response == {"output": JSON_BODY, "is_error": False}


@pytest.mark.parametrize("wrapping", ["  {}\n", "<{}>", '"{}"', "`{}`", "'{}'", "[the page]({})", "{}."])
def test_noise_around_the_url(rt: Runtime, site: tuple[str, list], wrapping: str) -> None:
    out = fetch(rt, wrapping.format(f"http://{site[0]}/data.json"))
    assert out == {"output": JSON_BODY, "is_error": False}


def test_truncation_at_a_character_boundary(rt: Runtime, site: tuple[str, list]) -> None:
    text = fetch(rt, f"http://{site[0]}/large.html")["output"]
    body, marker = text.rsplit("\n…[truncated ", 1)
    assert len(body) == 4000 and marker.endswith(" chars]")
    full = "\n\n".join(f"Paragraph {i}: {'é' * 50}" for i in range(400))
    assert full.startswith(body) and int(marker.removesuffix(" chars]")) == len(full) - 4000
    short = fetch(rt, f"http://{site[0]}/large.html", tool="short")["output"]
    assert short.startswith(full[:120] + "\n…[truncated ") and short.endswith(f"{len(full) - 120} chars]")


def test_http_errors(rt: Runtime, site: tuple[str, list]) -> None:
    out = fetch(rt, f"http://{site[0]}/missing")
    assert out["is_error"] is True
    assert out["output"].startswith(f"HTTP 404 from {site[0]}: 404 No page at this address. xxx")
    assert out["output"].endswith("x…") and len(out["output"].split(": ", 1)[1]) == 201
    assert fetch(rt, f"http://{site[0]}/error.json") == {
        "output": f'HTTP 500 from {site[0]}: {{"error": "database is down"}}', "is_error": True}
    moved = fetch(rt, f"http://{site[0]}/moved")
    assert moved["is_error"] and "HTTP 301" in moved["output"] and "https://example.org/new" in moved["output"]


def test_binary_is_refused(rt: Runtime, site: tuple[str, list]) -> None:
    out = fetch(rt, f"http://{site[0]}/image.png")
    assert out["is_error"] is True and "image/png" in out["output"] and "only HTML, JSON and text" in out["output"]


def hinted_hosts(output: str) -> list[str]:
    """The `grant: {hosts: [...]}` a hint suggests, read as the app file would read it."""
    found = re.search(r"`grant: (\{hosts: \[.*?\]\})`", output)
    assert found, output
    return yaml.safe_load(found.group(1))["hosts"]


def test_ungranted_host_names_the_host_and_the_fix(rt: Runtime, site: tuple[str, list], tmp_path: Path) -> None:
    """An http URL: the hint names `http://host:port` (a bare entry means https), and that entry works."""
    before = len(site[1])
    out = fetch(rt, f"http://{site[0]}/data.json", tool="closed")
    assert out["is_error"] is True
    assert f"host {site[0]} is not granted" in out["output"]
    assert f'`grant: {{hosts: ["http://{site[0]}"]}}` (plain http must be written `http://`' in out["output"]
    assert len(site[1]) == before  # nothing left the sandbox
    [entry] = hinted_hosts(out["output"])
    app = write_app(tmp_path, f"""
entry: web
tools:
  - name: web
    description: fetch
    plugin_name: {PLUGINS / 'http-get'}
    grant: {{hosts: [{json.dumps(entry)}]}}
""")
    with load_app(app) as runtime:
        assert runtime.run(f"http://{site[0]}/data.json").response == {"output": JSON_BODY, "is_error": False}


def test_bare_grant_of_an_http_site_hints_http(rt: Runtime, site: tuple[str, list]) -> None:
    """`host:port` grants https only: an http URL on that port is refused, and the hint says `http://`."""
    out = fetch(rt, f"http://{site[0]}/data.json", tool="bare")
    assert out["is_error"] is True and f"over http (granted: https://{site[0]})" in out["output"]
    assert hinted_hosts(out["output"]) == [f"http://{site[0]}"]


def test_ungranted_https_url_hint_is_the_bare_host(rt: Runtime) -> None:
    out = fetch(rt, "https://Example.com:8443/x", tool="closed")
    assert out["is_error"] is True and "over https" in out["output"]
    assert out["output"].endswith("in `grant: {hosts: [example.com:8443]}`")
    assert hinted_hosts(out["output"]) == ["example.com:8443"]


def test_call_time_limit_is_worded(rt: Runtime, site: tuple[str, list], monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's `timeout` code (the call's wall-clock limit ran out in http_fetch) says which limit to raise.

    At the tool's own limit Extism stops it as soon as http_fetch returns (the host then says it timed
    out); here the host's clock for the call ends first, so the tool lives to word the answer."""
    original = engine.Frame.__init__

    def early(self: engine.Frame, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.deadline = time.monotonic() + 0.4

    monkeypatch.setattr(engine.Frame, "__init__", early)
    out = fetch(rt, f"http://{site[0]}/slow")
    assert out["is_error"] is True
    assert out["output"].startswith(f"fetching http://{site[0]}/slow timed out after the call's time limit: "
                                    "http_fetch: the call's time limit ran out")
    assert "35000 ms of tool `web`" in out["output"] and "`grant: {timeout_ms: N}`" in out["output"]


def test_connection_failure(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = write_app(tmp_path, f"""
entry: web
tools:
  - {{name: web, description: fetch, plugin_name: {PLUGINS / 'http-get'}, grant: {{hosts: ["http://127.0.0.1:{port}"]}}}}
""")
    with load_app(app) as runtime:
        out = runtime.run(f"http://127.0.0.1:{port}/").response
    assert out["is_error"] is True
    assert out["output"].startswith(f"fetching http://127.0.0.1:{port}/ failed: ConnectError")


def test_response_over_the_host_limit(rt: Runtime, site: tuple[str, list]) -> None:
    out = fetch(rt, f"http://{site[0]}/huge")
    assert out["is_error"] is True and "larger than 8388608 bytes" in out["output"] and "too large" in out["output"]


def test_bare_host_means_https(rt: Runtime) -> None:
    out = fetch(rt, "Example.com/a b", tool="closed")
    assert out["output"].startswith("cannot fetch https://Example.com/a%20b: host example.com is not granted")


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty URL"),
    ("   ", "empty URL"),
    ("<>", "empty URL"),
    ("ftp://example.com/file", "only http:// and https:// URLs can be fetched, not 'ftp://example.com/file'"),
    ("file:///etc/passwd", "only http:// and https:// URLs"),
    ("javascript:alert(1)", "only http:// and https:// URLs"),
    ("what is the weather", "not a URL"),
    ("https://", "the URL has no host"),
    ("http:///path", "the URL has no host"),
])
def test_invalid_urls(rt: Runtime, text: str, message: str) -> None:
    out = fetch(rt, text)
    assert out["is_error"] is True and message in out["output"]


def test_missing_url_argument(rt: Runtime) -> None:
    response, _ = rt.invoke(rt.nodes["web"], {"arguments": {"link": "x"}}, None, Span("web", "tool"), rt.session)
    assert response["is_error"] and '"url"' in response["output"]


def test_token_secret_is_injected_and_redacted(tmp_path: Path, site: tuple[str, list],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_GET_TOKEN", "tok-123-secret")
    app = write_app(tmp_path, f"""
entry: web
tools:
  - {{name: web, description: fetch, plugin_name: {PLUGINS / 'http-get'}, secrets: {{token: env:HTTP_GET_TOKEN}},
     grant: {{hosts: ["http://{site[0]}"]}}}}
""")
    with load_app(app) as runtime:
        out = runtime.run(f"http://{site[0]}/whoami").response
    assert site[1][-1][1]["authorization"] == "Bearer tok-123-secret"
    assert out == {"output": "you sent Bearer [redacted]", "is_error": False}


def test_config_without_plugin_yaml(tmp_path: Path, site: tuple[str, list]) -> None:
    """The folder form is checked against plugin.yaml at load; a bare .wasm is checked by the plug-in."""
    entry = """
entry: web
tools:
  - {{name: web, description: fetch, plugin_name: {plugin}, config: {config}, grant: {{hosts: ["http://{host}"]}}}}
"""
    bad = '{max_chars: "lots"}'
    with pytest.raises(CspmError, match="expects integer for 'max_chars'"):
        load_app(write_app(tmp_path, entry.format(plugin=PLUGINS / "http-get", config=bad, host=site[0])))
    wasm = plugin_wasm("http-get")
    with load_app(write_app(tmp_path, entry.format(plugin=wasm, config=bad, host=site[0]))) as runtime:
        out = runtime.run(f"http://{site[0]}/data.json").response
    assert out["is_error"] and "max_chars must be a positive integer" in out["output"]
    with load_app(write_app(tmp_path, entry.format(plugin=wasm, config="{}", host=site[0]))) as runtime:
        text = runtime.run(f"http://{site[0]}/large.html").output  # the defaults are built in
    assert site[1][-1][1]["user-agent"] == "chainsocket-http-get/1.0" and "[truncated " in text
    assert len(text.split("\n…[truncated ")[0]) == 4000
