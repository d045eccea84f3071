"""Revalidating index files over HTTP: each 304 keeps its connection, so a warm lock of many plug-ins
makes as many connections as it has threads, not one per index file."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from cspm.formats.userconfig import Registry
from cspm.index.source import source_for
from tests.integration.test_index import entry, make_registry


class Counting(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections = 0
    statuses: ClassVar[list[int]] = []

    def setup(self) -> None:
        type(self).connections += 1
        super().setup()

    def send_response(self, code: int, message: str | None = None) -> None:
        type(self).statuses.append(code)
        super().send_response(code, message)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    folder = make_registry(tmp_path / "reg", {f"acme/p{i}": [entry(f"acme/p{i}", "1.0.0")] for i in range(5)})
    Counting.connections, Counting.statuses = 0, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Counting, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_each_304_keeps_its_connection(served: str) -> None:
    source = source_for(Registry("reval", served))
    try:
        names = [f"acme/p{i}" for i in range(5)]
        first = [source.read(source.index_path(n)) for n in names]
        assert all(f.body and not f.from_cache for f in first)
        again = [source.read(source.index_path(n)) for n in names * 3]
        assert all(f.from_cache and f.body == first[i % 5].body for i, f in enumerate(again))
    finally:
        source.close()
    assert Counting.statuses == [200] * 5 + [304] * 15
    assert Counting.connections == 1  # one connection, reused by every request
