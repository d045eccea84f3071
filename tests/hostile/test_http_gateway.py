"""The `http_fetch` gateway against a hostile loopback server and hostile plug-ins.

Each case uses real plug-ins (the C SDK's conformance plug-in, whose `raw` export hands the host any
request and returns its answer byte for byte; the http-get tool) and a real server on 127.0.0.1
that echoes URLs, redirects, sets cookies, answers malformed and trickles bytes. Nothing leaves
loopback.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus, unquote_plus

import pytest

from cspm.errors import PluginError
from cspm.formats import app as app_format
from cspm.planner import load_app
from cspm.runtime.engine import CalleeFailed, Frame, Runtime
from cspm.runtime.http import MAX_MESSAGE_CHARS, FetchRefused, HttpGateway
from cspm.runtime.trace import Span
from tests.conftest import PLUGINS, conformance_wasm, plugin_wasm, write_app
from tests.integration.test_cli import cspm

SECRET = "tok/en+1 é&=x"  # raw, percent-encoded and `+` forms all differ
WIRE = quote_plus(SECRET)  # what httpx puts in the query: tok%2Fen%2B1+%C3%A9%26%3Dx
FORMS = [SECRET, WIRE, quote(SECRET, safe=""), quote(SECRET), WIRE.lower(), "%2Fen%2B1", "%2fen%2b1"]
TRICKLE_S = 6.0  # how long the slow routes would keep a client waiting


class Hostile(BaseHTTPRequestHandler):
    """Routes by path prefix; records (path, headers) of every request it sees."""

    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []
    port: ClassVar[int] = 0

    def do_GET(self) -> None:
        type(self).seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = self.path.split("?", 1)[0]
        try:
            if route == "/echo":  # the URL back, in the body and in a header
                self._answer(200, f"you asked for {self.path}", {"X-Echo": self.path})
            elif route == "/lower":  # the URL with its escapes in lower case
                self._answer(200, self.path.lower())
            elif route == "/decoded":  # the query decoded: the raw value
                self._answer(200, unquote_plus(self.path))
            elif route == "/redirect":
                self._answer(302, "", {"Location": f"http://127.0.0.1:{self.port}/landing?{self.path.split('?')[1]}"})
            elif route == "/utf16":  # the URL's bytes, declared UTF-16: decoded, they look like noise
                self._answer(200, self.path.encode(), {"Content-Type": "text/plain; charset=utf-16-le"})
            elif route == "/broken":  # a malformed answer: the client's error message quotes it
                self.wfile.write(b"HTTP/1.1 200 OK\r\nBad header line " + self.path.encode() + b"\r\n\r\n")
            elif route == "/set-cookie":
                self._answer(200, "welcome", {"Set-Cookie": "session=won-by-a; Path=/"})
            elif route == "/cookie":
                self._answer(200, self.headers.get("Cookie") or "(none)")
            elif route == "/host":
                self._answer(200, self.headers.get("Host") or "(none)")
            elif route == "/trickle":  # valid headers, then one byte every 0.25 s
                self.send_response(200)
                self.send_header("Content-Length", str(int(TRICKLE_S * 4)))
                self.end_headers()
                self._trickle(b"x" * int(TRICKLE_S * 4))
            elif route == "/trickle-headers":  # the status line, then a header one byte at a time
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                self._trickle(b"y" * int(TRICKLE_S * 4))
            else:
                self._answer(404, "no such route")
        except OSError:  # the client gave up: fine
            pass

    def _answer(self, status: int, body: str | bytes, headers: dict[str, str] | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for key, value in {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _trickle(self, data: bytes) -> None:
        for byte in data:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.25)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, list[tuple[str, dict[str, str]]]]]:
    handler = type("Handler", (Hostile,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    handler.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield handler.port, handler.seen
    httpd.shutdown()
    httpd.server_close()


def tool(name: str, grant: str, secrets: str = "", wasm: Path | None = None) -> str:
    """One tool entry of an app: the C conformance plug-in unless `wasm` says otherwise."""
    extra = f", secrets: {secrets}" if secrets else ""
    return (f"  - {{name: {name}, description: d, plugin_name: {wasm or conformance_wasm('c')}, "
            f"config: {{kind: tool}}, grant: {grant}{extra}}}\n")


def runtime(tmp_path: Path, *tools: str, entry: str | None = None) -> Runtime:
    first = tools[0].split("name: ", 1)[1].split(",", 1)[0]
    return load_app(write_app(tmp_path, f"entry: {entry or first}\ntools:\n{''.join(tools)}"))


def fetch(rt: Runtime, node: str, request: dict[str, Any]) -> dict[str, Any]:
    """What the plug-in receives from http_fetch, exactly."""
    return json.loads(rt.call_export(node, "raw", b"http_fetch\n" + json.dumps(request).encode()))


def assert_no_secret(text: str) -> None:
    for form in FORMS:
        assert form.lower() not in text.lower(), f"{form!r} leaked: {text[:400]!r}"


# ---- 2. every encoding of a secret is redacted ------------------------------------------------------------


@pytest.fixture
def query_secret(tmp_path: Path, server: tuple[int, list], monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setenv("GATEWAY_QUERY_KEY", SECRET)
    grant = f'{{hosts: ["http://127.0.0.1:{server[0]}"]}}'
    secrets = "{key: {from: env:GATEWAY_QUERY_KEY, query: api_key}}"
    with runtime(tmp_path, tool("t", grant, secrets)) as rt:
        yield rt


@pytest.mark.parametrize("route", ["/echo", "/lower", "/decoded", "/redirect", "/utf16"])
def test_query_secret_is_redacted_in_every_encoding(query_secret: Runtime, server: tuple[int, list],
                                                    route: str) -> None:
    answer = fetch(query_secret, "t", {"url": f"http://127.0.0.1:{server[0]}{route}?q=1"})
    assert server[1][-1][0] == f"{route}?q=1&api_key={WIRE}"  # it did go out, in its wire form
    shown = json.dumps(answer, ensure_ascii=False)
    recovered = answer["body"].encode("utf-16-le", "surrogatepass").decode("latin-1")  # the bytes, re-encoded
    assert "[redacted" in (recovered if route == "/utf16" else shown)  # UTF-16 noise, but not the secret
    assert_no_secret(shown)
    assert_no_secret(recovered)
    if route == "/redirect":
        assert answer["status"] == 302 and answer["headers"]["location"].endswith("api_key=[redacted]")


def test_query_secret_is_redacted_from_error_messages(query_secret: Runtime, server: tuple[int, list]) -> None:
    answer = fetch(query_secret, "t", {"url": f"http://127.0.0.1:{server[0]}/broken"})
    assert answer["error"]["code"] == "http_error" and "illegal header line" in answer["error"]["message"]
    assert "[redacted]" in answer["error"]["message"] and len(answer["error"]["message"]) <= MAX_MESSAGE_CHARS
    assert_no_secret(answer["error"]["message"])


def test_redirect_location_and_trace_of_a_real_tool(tmp_path: Path, server: tuple[int, list],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """http-get reports a redirect's Location and a failure's message: neither carries the secret, nor
    does the trace (`--trace`, `--json`), nor `cspm run --json --trace` itself."""
    monkeypatch.setenv("GATEWAY_QUERY_KEY", SECRET)
    plugin_wasm("http-get")
    app = write_app(tmp_path, f"""
entry: web
tools:
  - name: web
    description: fetch
    plugin_name: {PLUGINS / 'http-get'}
    secrets: {{token: {{from: env:GATEWAY_QUERY_KEY, query: api_key}}}}
    grant: {{hosts: ["http://127.0.0.1:{server[0]}"]}}
""")
    with load_app(app) as rt:
        moved = rt.run(f"http://127.0.0.1:{server[0]}/redirect?a=1")
        broken = rt.run(f"http://127.0.0.1:{server[0]}/broken")
    assert "HTTP 302" in moved.output and "api_key=[redacted]" in moved.output
    assert "illegal header line" in broken.output and "[redacted]" in broken.output
    for result in (moved, broken):
        assert_no_secret(result.output)
        assert_no_secret(json.dumps(result.trace.to_dict(), ensure_ascii=False))
    assert broken.trace.children[0].kind == "http" and "[redacted]" in (broken.trace.children[0].error or "")
    shown = cspm("run", str(app), "--input", f"http://127.0.0.1:{server[0]}/redirect?a=1", "--json", "--trace")
    assert shown.returncode == 1 and json.loads(shown.stdout)["finish_reason"] == "error", shown.stderr
    assert "api_key=[redacted]" in shown.stdout
    assert_no_secret(shown.stdout + json.loads(shown.stdout)["output"] + shown.stderr)


# ---- 3. a scheme is part of every grant and secret binding ------------------------------------------------


def test_secret_bound_to_https_never_goes_over_http(tmp_path: Path, server: tuple[int, list],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TOKEN", "header-secret-42")
    port, seen = server
    with runtime(tmp_path,
                 # https only (a bare entry): the http request is not granted at all
                 tool("tls", f'{{hosts: ["https://127.0.0.1:{port}"]}}', "{token: env:GATEWAY_TOKEN}"),
                 tool("bare", f'{{hosts: ["127.0.0.1:{port}"]}}', "{token: env:GATEWAY_TOKEN}"),
                 # both granted, the secret bound to https: the http request goes out without it
                 tool("both", f'{{hosts: ["http://127.0.0.1:{port}", "https://127.0.0.1:{port}"]}}',
                      f'{{token: {{from: env:GATEWAY_TOKEN, hosts: ["127.0.0.1:{port}"]}}}}'),
                 # http named explicitly in the grant: a secret that follows the grant is sent
                 tool("plain", f'{{hosts: ["http://127.0.0.1:{port}"]}}', "{token: env:GATEWAY_TOKEN}")) as rt:
        for node in ("tls", "bare"):
            before = len(seen)
            answer = fetch(rt, node, {"url": f"http://127.0.0.1:{port}/echo"})
            assert answer["error"]["code"] == "not_granted", answer
            assert f"host 127.0.0.1:{port} is not granted to this plug-in over http" in answer["error"]["message"]
            assert len(seen) == before  # nothing left the sandbox
        assert fetch(rt, "both", {"url": f"http://127.0.0.1:{port}/echo"})["status"] == 200
        assert "authorization" not in seen[-1][1]
        assert fetch(rt, "plain", {"url": f"http://127.0.0.1:{port}/echo"})["status"] == 200
        assert seen[-1][1]["authorization"] == "Bearer header-secret-42"


def test_an_entry_without_port_means_the_default_port(tmp_path: Path, server: tuple[int, list]) -> None:
    port, seen = server
    with runtime(tmp_path, tool("t", '{hosts: ["http://127.0.0.1", "*.example.test"]}')) as rt:
        before = len(seen)
        answer = fetch(rt, "t", {"url": f"http://127.0.0.1:{port}/echo"})
        assert answer["error"]["code"] == "not_granted" and len(seen) == before


def test_grant_and_secret_entries_are_read_as_origins(tmp_path: Path) -> None:
    path = write_app(tmp_path, """
entry: t
tools:
  - name: t
    description: d
    plugin_name: t.wasm
    secrets: {k: {from: env:K, hosts: [api.example.com, "http://api.example.com:8080/v1"]}}
    grant:
      hosts: [api.example.com, "*.Example.com", "API.example.com.:443", "api.example.com:8443", "http://h:80/x",
              "https://h:8443/p?q", "http://*.example.com", "http://127.0.0.1:8123/v1"]
""")
    component = app_format.load(path).components["t"]
    assert component.grant.hosts == (
        "https://api.example.com", "https://*.example.com", "https://api.example.com", "https://api.example.com:8443",
        "http://h", "https://h:8443", "http://*.example.com", "http://127.0.0.1:8123")
    assert component.secrets[0].hosts == ("https://api.example.com", "http://api.example.com:8080")


# ---- 4. no cookie outlives a request ----------------------------------------------------------------------


def test_cookies_are_not_kept_between_fetches_or_components(tmp_path: Path, server: tuple[int, list]) -> None:
    port, seen = server
    grant = f'{{hosts: ["http://127.0.0.1:{port}"]}}'
    with runtime(tmp_path, tool("a", grant), tool("b", grant)) as rt:
        won = fetch(rt, "a", {"url": f"http://127.0.0.1:{port}/set-cookie"})
        assert won["headers"]["set-cookie"] == "session=won-by-a; Path=/"  # the plug-in may keep it itself
        assert fetch(rt, "b", {"url": f"http://127.0.0.1:{port}/cookie"})["body"] == "(none)"
        assert fetch(rt, "a", {"url": f"http://127.0.0.1:{port}/cookie"})["body"] == "(none)"
        mine = fetch(rt, "a", {"url": f"http://127.0.0.1:{port}/cookie", "headers": {"Cookie": "session=won-by-a"}})
        assert mine["body"] == "session=won-by-a"
        assert "cookie" not in seen[-2][1] and "cookie" not in seen[-3][1]


# ---- 5. a plug-in cannot route the request or smuggle bytes into it ---------------------------------------


@pytest.fixture(scope="module")
def open_tool(tmp_path_factory: pytest.TempPathFactory, server: tuple[int, list]) -> Iterator[Runtime]:
    with runtime(tmp_path_factory.mktemp("gateway"), tool("t", f'{{hosts: ["http://127.0.0.1:{server[0]}"]}}')) as rt:
        yield rt


@pytest.mark.parametrize("name", ["Host", "host", "Connection", "Keep-Alive", "Transfer-Encoding", "TE", "Trailer",
                                  "Upgrade", "Content-Length", "Proxy-Authorization", "Proxy-Connection",
                                  "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "Expect"])
def test_routing_and_hop_by_hop_headers_are_refused(open_tool: Runtime, server: tuple[int, list], name: str) -> None:
    before = len(server[1])
    answer = fetch(open_tool, "t", {"url": f"http://127.0.0.1:{server[0]}/host",
                                    "headers": {name: "internal.example" if name.lower() == "host" else "1"}})
    assert answer["error"]["code"] == "bad_request", answer
    assert f"may not set the `{name}` header" in answer["error"]["message"]
    assert len(server[1]) == before


@pytest.mark.parametrize(("headers", "what"), [
    ({"X-Naïve": "1"}, "not an ASCII token"),
    ({"X-A B": "1"}, "not an ASCII token"),
    ({"X-Ok": "café"}, "printable ASCII"),
    ({"X-Ok": "a\r\nX-Injected: 1"}, "printable ASCII"),
    ({"X-Ok": "a\nb"}, "printable ASCII"),
    ({"X-Ok": "a\u0000b"}, "printable ASCII"),
])
def test_unsafe_header_text_is_a_bad_request(open_tool: Runtime, server: tuple[int, list],
                                             headers: dict[str, str], what: str) -> None:
    before = len(server[1])
    answer = fetch(open_tool, "t", {"url": f"http://127.0.0.1:{server[0]}/echo", "headers": headers})
    assert answer["error"]["code"] == "bad_request" and what in answer["error"]["message"], answer
    assert len(server[1]) == before


def test_host_header_comes_from_the_granted_url(open_tool: Runtime, server: tuple[int, list]) -> None:
    answer = fetch(open_tool, "t", {"url": f"http://127.0.0.1:{server[0]}/host", "headers": {"X-Fine": "yes"}})
    assert answer["body"] == f"127.0.0.1:{server[0]}" and server[1][-1][1]["x-fine"] == "yes"


# ---- wall-clock deadline ----------------------------------------------------------------------------------


def test_fetch_is_cut_at_the_deadline_by_a_trickling_server(server: tuple[int, list]) -> None:
    gateway = HttpGateway()
    try:
        for route in ("/trickle", "/trickle-headers"):
            started = time.monotonic()
            with pytest.raises(FetchRefused) as info:
                gateway.fetch({"url": f"http://127.0.0.1:{server[0]}{route}"}, (f"http://127.0.0.1:{server[0]}",),
                              (), deadline=started + 1.0)
            assert info.value.code == "timeout" and "time limit ran out" in str(info.value)
            assert 0.9 < time.monotonic() - started < 2.0, route
    finally:
        gateway.close()


def within(seconds: float, call: Callable[[], Any]) -> str:
    """What `call` answered or raised, as text; it must end within `seconds`."""
    started = time.monotonic()
    try:
        outcome = json.dumps(call(), default=lambda o: o.to_dict() if isinstance(o, Span) else repr(o))
    except (PluginError, CalleeFailed) as exc:
        outcome = str(exc)
    assert time.monotonic() - started < seconds, outcome
    return outcome


def test_timeout_ms_is_wall_clock_for_a_plugin_waiting_on_http(tmp_path: Path, server: tuple[int, list]) -> None:
    """The plug-in is stopped at 1.5 s (or, in the instant before Extism stops it, reports the host's
    `timeout` answer), however slowly the server trickles its answer."""
    plugin_wasm("http-get")
    app = write_app(tmp_path, f"""
entry: web
tools:
  - {{name: web, description: fetch, plugin_name: {PLUGINS / 'http-get'},
     grant: {{hosts: ["http://127.0.0.1:{server[0]}"], timeout_ms: 1500}}}}
""")
    with load_app(app) as rt:
        for route in ("/trickle", "/trickle-headers"):
            outcome = within(2.5, lambda: rt.run(f"http://127.0.0.1:{server[0]}{route}").response)  # noqa: B023
            assert ("tool `web` timed out after 1500 ms" in outcome
                    or "time limit ran out waiting for the server (1500 ms of tool `web`)" in outcome), outcome


def test_a_nested_call_ends_by_its_callers_deadline(tmp_path: Path, server: tuple[int, list], wat_dir: Path) -> None:
    """The agent has 1.5 s; its tool has 35 s (http-get, trickled) or 10 s (a Wasm loop): the run
    still ends at 1.5 s, the callee stopped by the agent's limit."""
    plugin_wasm("http-get")
    agent = conformance_wasm("c")
    app = write_app(tmp_path, f"""
entry: a
tools:
  - {{name: web, description: fetch, plugin_name: {PLUGINS / 'http-get'},
     grant: {{hosts: ["http://127.0.0.1:{server[0]}"]}}}}
  - {{name: spin, description: loops, plugin_name: {wat_dir / 'spin.wasm'}, grant: {{timeout_ms: 10000}}}}
agents:
  - {{name: a, description: d, plugin_name: {agent}, config: {{kind: agent}}, tools: [web],
     grant: {{timeout_ms: 1500}}}}
  - {{name: b, description: d, plugin_name: {agent}, config: {{kind: agent}}, tools: [spin],
     grant: {{timeout_ms: 1500}}}}
""")
    payload = {"session": "s", "llms": [], "agents": []}
    with load_app(app) as rt:
        span = Span("a", "agent")
        within(2.5, lambda: rt.invoke(rt.nodes["a"], {**payload, "tools": [{"name": "web", "description": "d"}],
                                                "input": f"http://127.0.0.1:{server[0]}/trickle"}, None, span, "s"))
        fetched = span.children[0].children[0]
        assert fetched.kind == "http" and fetched.error == ("http_fetch: the call's time limit ran out waiting for "
                                                            "the server (1500 ms of agent `a`)")
        span = Span("b", "agent")
        within(2.5, lambda: rt.invoke(rt.nodes["b"], {**payload, "tools": [{"name": "spin", "description": "d"}],
                                                "input": "x"}, None, span, "s"))
        assert span.children[0].error == "tool `spin` was stopped: the call's time limit (1500 ms of agent `b`) ran out"
        again = rt.run(f"http://127.0.0.1:{server[0]}/echo", entry="a")  # the stopped instances were renewed
        assert again.output == "you asked for /echo"


def test_a_timeout_does_not_break_another_instance_of_the_module(tmp_path: Path, wat_modules: dict[str, bytes]
                                                                 ) -> None:
    """Extism stops a call by advancing the epoch of the engine all instances of a module share; an
    instance not called yet used to trap on its first call ("unable to clear error message"), forever."""
    (tmp_path / "m.wasm").write_bytes(wat_modules["spin_on_s"])
    with runtime(tmp_path, tool("a", "{timeout_ms: 300}", wasm=tmp_path / "m.wasm"),
                 tool("b", "{timeout_ms: 300}", wasm=tmp_path / "m.wasm")) as rt:
        with pytest.raises(PluginError, match="tool `a` timed out after 300 ms"):
            rt.run("spin", entry="a")
        assert rt.run("hello", entry="b").output == "ok"
        assert rt.run("hello", entry="a").output == "ok"


def test_a_host_function_after_the_deadline_answers_timeout(tmp_path: Path) -> None:
    with runtime(tmp_path, tool("t", "{kv: true, timeout_ms: 1000}")) as rt:
        frame = Frame(rt, rt.nodes["t"], None, rt.session, Span("t", "tool"))
        assert json.loads(frame.handle("kv_get", b'{"key": "k"}')) == {"value": None}
        frame.deadline = time.monotonic() - 0.001
        answer = json.loads(frame.handle("kv_get", b'{"key": "k"}'))
        assert answer["error"]["code"] == "timeout" and "1000 ms of tool `t`" in answer["error"]["message"]
        child = Frame(rt, rt.nodes["t"], frame, rt.session, Span("t", "tool"))
        assert child.deadline == frame.deadline  # a callee never outlives its caller


# ---- a refused fetch costs little ---------------------------------------------------------------------------


def test_a_refused_fetch_keeps_a_short_span(tmp_path: Path) -> None:
    many = ", ".join(f"host-{i}.example.test" for i in range(64))
    with runtime(tmp_path, tool("t", f"{{hosts: [{many}]}}")) as rt:
        span = Span("t", "tool")
        url = "http://ungranted.example.test/" + "a" * 8000
        response, _ = rt.invoke(rt.nodes["t"], {"input": url}, None, span, rt.session)
    http = span.children[0]
    assert response["is_error"] and "is not granted" in response["output"] and "and 61 more" in response["output"]
    assert len(http.error or "") <= MAX_MESSAGE_CHARS and len(http.name) <= 200
    assert len(json.dumps(http.to_dict())) < 1024


def test_connection_refused_is_an_http_error_not_a_timeout(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with runtime(tmp_path, tool("t", f'{{hosts: ["http://127.0.0.1:{port}"]}}')) as rt:
        answer = fetch(rt, "t", {"url": f"http://127.0.0.1:{port}/"})
    assert answer["error"]["code"] == "http_error" and answer["error"]["message"].startswith("ConnectError")
