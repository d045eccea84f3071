"""Headless Chromium for the browser tests: Debian's `chromium`, driven by PyPI `playwright` through
`executable_path` (no browser download is possible here, and none is wanted)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium")
NODE = shutil.which("node")
HOST_JS = ROOT / "hosts" / "js"
CONTENT_TYPES = {".wasm": "application/wasm", ".js": "text/javascript", ".html": "text/html",
                 ".json": "application/json"}


def send_isolated(handler: BaseHTTPRequestHandler, status: int, body: bytes, kind: str,
                  extra: tuple[tuple[str, str], ...] = ()) -> None:
    """An answer of a cross-origin isolated origin, as `cspm web` serves its pages: SharedArrayBuffer,
    which extism's worker mode needs, and never cached."""
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Cross-Origin-Opener-Policy", "same-origin")
    handler.send_header("Cross-Origin-Embedder-Policy", "require-corp")
    for name, value in extra:
        handler.send_header(name, value)
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()
    handler.wfile.write(body)


def build_page(page: str, out: Path) -> None:
    """hosts/js/test/browser/PAGE-page.js and PAGE.html bundled into `out` (build-page.js)."""
    built = subprocess.run([str(NODE), "test/browser/build-page.js", page, str(out)], cwd=HOST_JS,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A launched browser, closed afterwards (the caller has skipped when playwright or chromium is absent)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def ready_page(url: str, ready: str = "body[data-ready=yes]", timeout_s: float = 30) -> Iterator[Any]:
    """A page at `url` once `ready` matches, which failed if the page raised anything while loading."""
    with chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_selector(ready, timeout=timeout_s * 1000)
        assert errors == [], errors
        yield page
