"""Headless Chromium for the browser tests: Debian's `chromium`, driven by PyPI `playwright` through
`executable_path` (no browser download is possible here, and none is wanted)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import Any

CHROMIUM = shutil.which("chromium")


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
