"""The ABI conformance cases (conformance/abi1.json) on the JavaScript host in headless Chromium (issue 20:
the same cases pass on the Python host, on Node and in a browser, from the one data file).

The page (hosts/js/test/browser/conformance-page.js, bundled by build-page.js) runs the portable
runner (hosts/js/test/conformance-core.js, which the Node runner runs too) with the browser host:
every plug-in through browserInstantiate on the page's thread (JSPI), kv in memory per case, fetch()
out. The echo server is a second loopback origin answering as conformance/README.md says, with CORS
headers so the page may read it; preflights are answered but not recorded (the cases count requests).
Debian's `chromium` is driven by PyPI `playwright` through `executable_path`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.browser_support import CHROMIUM, CONTENT_TYPES, HOST_JS, NODE, build_page, ready_page, send_isolated
from tests.conftest import LANGUAGES, ROOT, Recorder, conformance_wasm

CASES_DIR = ROOT / "conformance"
CASES = [c["id"] for c in json.loads((CASES_DIR / "abi1.json").read_text(encoding="utf-8"))["cases"]]

# Cases that cannot hold in a browser by the nature of the platform, with why (conformance/README.md,
# "Browser hosts"). Empty: every case holds in Chromium.
NOT_APPLICABLE: dict[str, str] = {}

pytest.importorskip("playwright.sync_api", reason="playwright (PyPI) is not installed")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium (Debian package) is not installed"),
    pytest.mark.skipif(NODE is None or not (HOST_JS / "node_modules" / "esbuild").is_dir(),
                       reason="needs node and hosts/js/node_modules (run `npm ci` in hosts/js)"),
]


class CorsRecorder(Recorder):
    """The echo server of conformance/README.md, readable from another origin: every answer allows any
    origin and exposes its headers; a CORS preflight (OPTIONS with Access-Control-Request-Method) is
    answered, allowing what it asks, and not recorded (only counted, in `preflights`)."""

    preflights: ClassVar[list[str]] = []  # "METHOD path asked-headers" of each

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Expose-Headers", "*")
        super().end_headers()

    def do_OPTIONS(self) -> None:
        method = self.headers.get("Access-Control-Request-Method")
        if method is None:
            self._answer()  # a plug-in's own OPTIONS request: recorded like any other
            return
        asked = self.headers.get("Access-Control-Request-Headers") or ""
        type(self).preflights.append(f"{method} {self.path} {asked}")
        self.send_response(204)
        self.send_header("Access-Control-Allow-Methods", method)
        # `*` does not cover Authorization: name what the page asked for
        self.send_header("Access-Control-Allow-Headers", asked or "*")
        if self.headers.get("Access-Control-Request-Private-Network"):
            self.send_header("Access-Control-Allow-Private-Network", "true")
        self.send_header("Access-Control-Max-Age", "0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PATCH = Recorder._answer


class Servers:
    """Two loopback origins: the echo server, and the page's (the bundle, the case file, the modules,
    and /seen: the echo server's recorded requests, so the page reads them without being recorded)."""

    def __init__(self, bundle: Path) -> None:
        self.handler: type[CorsRecorder] = type("Echo", (CorsRecorder,), {"seen": [], "preflights": []})
        self.echo = ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        routes: dict[str, Path] = {
            "/conformance.html": bundle / "conformance.html",
            "/conformance-page.js": bundle / "conformance-page.js",
            "/cases/abi1.json": CASES_DIR / "abi1.json",
            "/cases/cases.schema.json": CASES_DIR / "cases.schema.json",
        }
        routes.update({f"/modules/{lang}.wasm": conformance_wasm(lang) for lang in LANGUAGES})
        seen = self.handler.seen
        self.documents: dict[str, bytes] = {}  # more case files, served from memory
        documents = self.documents

        class Page(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/seen":
                    self.reply(200, json.dumps(list(seen)).encode(), "application/json")
                elif path in documents:
                    self.reply(200, documents[path], "application/json")
                elif path in routes:
                    self.reply(200, routes[path].read_bytes(), CONTENT_TYPES[routes[path].suffix])
                else:
                    self.reply(404, b"not found", "text/plain")

            def reply(self, status: int, body: bytes, kind: str) -> None:
                # cross-origin isolated, as cspm web serves its pages: the echo server's CORS answers suffice
                send_isolated(self, status, body, kind)

        self.page = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self.echo, self.page)]
        for thread in self.threads:
            thread.start()
        self.echo_url = f"http://127.0.0.1:{self.echo.server_address[1]}"
        self.page_url = f"http://127.0.0.1:{self.page.server_address[1]}"

    def close(self) -> None:
        for server in (self.echo, self.page):
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    bundle = tmp_path_factory.mktemp("conformance-page")
    build_page("conformance", bundle)
    s = Servers(bundle)
    yield s
    s.close()


@pytest.fixture(scope="module")
def page(servers: Servers) -> Iterator[Any]:
    with ready_page(f"{servers.page_url}/conformance.html") as pg:
        caps = pg.evaluate("() => window.cspmConformance.capabilities()")
        assert caps["jspi"], f"this Chromium has no JSPI (WebAssembly.Suspending): {caps['userAgent']}"
        yield pg


def run(page: Any, servers: Servers, lang: str, cases_url: str = "/cases/abi1.json",
        only: list[str] | None = None) -> dict[str, Any]:
    page.set_default_timeout(600_000)
    report: dict[str, Any] = page.evaluate("(a) => window.cspmConformance.run(a)", {
        "casesUrl": cases_url, "schemaUrl": "/cases/cases.schema.json", "moduleUrl": f"/modules/{lang}.wasm",
        "echoUrl": servers.echo_url, "seenUrl": "/seen", "only": only or [],
    })
    return report


@pytest.mark.parametrize("lang", LANGUAGES)
def test_conformance_cases_pass_in_chromium(page: Any, servers: Servers, lang: str) -> None:
    started = time.perf_counter()
    report = run(page, servers, lang)
    assert [r["case"] for r in report["results"]] == CASES, "the page must run every case, in order"
    failed = {r["case"]: r["reason"] for r in report["results"] if not r["passed"]}
    unexpected = {c: reason for c, reason in failed.items() if c not in NOT_APPLICABLE}
    assert not unexpected, "\n".join(f"{c}: {reason}" for c, reason in unexpected.items())
    # a case listed as not applicable must really fail here, or the list is out of date
    assert set(failed) == set(NOT_APPLICABLE), f"listed but passed: {set(NOT_APPLICABLE) - set(failed)}"
    # the requests with an Authorization header went through a CORS preflight, which no case counted
    assert any(p.startswith("POST /v1/x?q=1 ") and "authorization" in p.lower() for p in servers.handler.preflights)
    assert not any(r["method"] == "OPTIONS" for r in servers.handler.seen)
    print(f"\n{lang}: {report['passed']}/{len(CASES)} cases passed in Chromium "
          f"({report['ms'] / 1000:.1f} s in the page, {time.perf_counter() - started:.1f} s in all)")


def test_the_page_runner_fails_a_wrong_expectation(page: Any, servers: Servers) -> None:
    """The page's runner can fail: a wrong output, a wrong echo request, a wrong chunk each fail their
    case, naming the step."""
    doc = json.loads((CASES_DIR / "abi1.json").read_text(encoding="utf-8"))
    steps = {c["id"]: c["steps"] for c in doc["cases"]}
    steps["echo-utf8"][0]["expect"]["output"] = {"text": "not what it echoes"}
    steps["http-fetch-injects-secret-and-redacts-it"][0]["expect"]["echo_requests"][0]["method"] = "GET"
    steps["emit"][0]["expect"]["chunks"] = [{"component": "sut", "text": "other"}]
    servers.documents["/cases/broken.json"] = json.dumps(doc).encode()
    report = run(page, servers, "rust", "/cases/broken.json",
                 ["echo-utf8", "http-fetch-injects-secret-and-redacts-it", "emit"])
    results = {r["case"]: r for r in report["results"]}
    assert all(not r["passed"] for r in results.values()), results
    assert results["echo-utf8"]["reason"].startswith("step 1 (call sut.echo): output was")
    assert len(results) == 3
    assert "echo server got a request whose /method" in results["http-fetch-injects-secret-and-redacts-it"]["reason"]
    assert results["emit"]["reason"].startswith("step 1 (call sut.host): chunks emitted were")
