"""ABI 0 (plug-ins built for Extism 0.x, docs/abi.md §8) on the JavaScript host in headless Chromium: the
page (hosts/js/test/browser/abi0-page.js, bundled by build-page.js) loads the Host with browserInstantiate,
every plug-in on the page's thread and the cs0_* host functions asynchronous through JSPI, and runs the
WAT plug-ins of tests/wat/abi0_*.wat with the Rust conformance plug-in. The Node host's own ABI 0 tests
are hosts/js/test/abi0.test.js (`npm test`); this is the browser's one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import CHROMIUM, CONTENT_TYPES, HOST_JS, NODE, build_page, ready_page, send_isolated
from tests.conftest import conformance_wasm

pytest.importorskip("playwright.sync_api", reason="playwright (PyPI) is not installed")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium (Debian package) is not installed"),
    pytest.mark.skipif(NODE is None or not (HOST_JS / "node_modules" / "esbuild").is_dir(),
                       reason="needs node and hosts/js/node_modules (run `npm ci` in hosts/js)"),
]


class Page:
    """A loopback origin serving the bundled page and the modules, cross-origin isolated."""

    def __init__(self, routes: dict[str, Path]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                target = routes.get(self.path.split("?", 1)[0])
                if target is None:
                    self.send_error(404)
                    return
                send_isolated(self, 200, target.read_bytes(), CONTENT_TYPES[target.suffix])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory, wat_dir: Path) -> Iterator[Page]:
    bundle = tmp_path_factory.mktemp("abi0-page")
    build_page("abi0", bundle)
    server = Page({"/abi0.html": bundle / "abi0.html", "/abi0-page.js": bundle / "abi0-page.js",
                   "/m/agent.wasm": wat_dir / "abi0_agent.wasm", "/m/echo.wasm": wat_dir / "abi0_echo.wasm",
                   "/m/rust.wasm": conformance_wasm("rust")})
    yield server
    server.close()


def test_abi0_plugins_run_in_the_page(page_server: Page) -> None:
    """The original agent calls the original tool (ToolReq) and the ABI 1 llm (LLMReq); an undeclared
    name answers "None"; an ABI 1 agent calls the original tool; error_set fails the call."""
    with ready_page(f"{page_server.url}/abi0.html") as page:
        page.set_default_timeout(120_000)
        result = page.evaluate("(a) => window.cspmAbi0.run(a)",
                               {"agentUrl": "/m/agent.wasm", "echoUrl": "/m/echo.wasm", "rustUrl": "/m/rust.wasm"})
    assert result["old"] == 'echo: old_tool heard: q "quoted" é', result
    assert result["lost"] == "echo: None", result
    assert any(line.startswith("lost warn: call_tool: not_declared: ") for line in result["logs"]), result["logs"]
    assert result["modern"] == "old_tool heard: hi", result
    assert result["fail"] == "failed: tool `old_tool` failed: the echo failed on purpose", result
