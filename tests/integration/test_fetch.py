"""Downloads into the store: retries, size caps, digest and interface checks, folder registries."""

from __future__ import annotations

import struct
import threading
import tracemalloc
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cspm import content_checks as content
from cspm.fetch import Download, FetchError, fetch_all
from cspm.http_client import RetryPolicy
from cspm.models import ModelError
from cspm.store import DigestMismatch, Store, StoreError, digest_of, digest_of_file
from cspm.verify.interface import InterfaceError, check_module, check_module_file, export_names, import_names
from cspm.verify.wasm import read_interface, read_interface_file
from tests.conftest import conformance_wasm


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cspm.http_client.RETRY", RetryPolicy(backoff_s=0.01))


def test_retries_5xx_then_stores_verified(tmp_path: Path, scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted()
    data = b"x" * 100_000
    server.reply(status=503, raw="busy").reply(raw=data)
    store = Store(tmp_path)
    seen: list[int] = []
    download = Download("acme/x 1.0", "web", f"{server.url}/blobs/x", digest_of(data), len(data))
    assert fetch_all([download], store, progress=lambda what, n: seen.append(n)) == 1
    assert store.read(digest_of(data)) == data and sum(seen) == len(data) and len(server.seen) == 2
    assert fetch_all([download], store) == 0  # already there: no request
    assert len(server.seen) == 2


def test_digest_mismatch_is_discarded_and_names_the_registry(tmp_path: Path, scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted()
    server.reply(raw=b"evil!")
    store = Store(tmp_path)
    wanted = digest_of(b"good!")
    with pytest.raises(DigestMismatch, match="from registry web has digest"):
        fetch_all([Download("acme/x 1.0", "web", f"{server.url}/b", wanted, 5)], store)
    assert not store.has(wanted) and list(store.tmp.iterdir()) == []


def test_size_over_the_announced_size_stops(tmp_path: Path, scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted()
    server.reply(raw=b"a" * 1000)
    with pytest.raises(StoreError, match="larger than the 10 bytes announced"):
        fetch_all([Download("acme/x 1.0", "web", f"{server.url}/b", digest_of(b"a" * 10), 10)], Store(tmp_path))


def test_gives_up_after_retries_and_404_is_not_retried(tmp_path: Path, scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted()
    for _ in range(4):
        server.reply(status=500, raw="no")
    with pytest.raises(FetchError, match="after 4 attempts"):
        fetch_all([Download("acme/x 1.0", "web", f"{server.url}/b", digest_of(b"z"), 1)], Store(tmp_path))
    server.reply(status=404, raw="gone")
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_all([Download("acme/x 1.0", "web", f"{server.url}/b", digest_of(b"z"), 1)], Store(tmp_path))
    assert len(server.seen) == 5


def test_folder_registry_and_interface_check_before_storing(tmp_path: Path, wat_dir: Path) -> None:
    good = conformance_wasm("c").read_bytes()
    bad = (wat_dir / "nocall.wasm").read_bytes()
    (tmp_path / "good.wasm").write_bytes(good)
    (tmp_path / "bad.wasm").write_bytes(bad)
    store = Store(tmp_path / "store")
    interface = check_module(good, "good", wasi_declared=False)
    exports, imports = export_names(interface), import_names(interface)

    def check(path: Path) -> None:
        check_module_file(path, "acme/x 1.0", wasi_declared=False, exports=exports, imports=imports)

    fetch_all([Download("acme/x 1.0", "local", (tmp_path / "good.wasm").as_uri(), digest_of(good), len(good),
                        check)], store)
    assert store.has(digest_of(good))
    with pytest.raises(InterfaceError, match="does not export a function `call`"):
        fetch_all([Download("acme/y 1.0", "local", (tmp_path / "bad.wasm").as_uri(), digest_of(bad), len(bad),
                            check)], store)
    assert not store.has(digest_of(bad))
    with pytest.raises(FetchError, match="registry local has no blob"):
        fetch_all([Download("acme/z 1.0", "local", (tmp_path / "none.wasm").as_uri(), digest_of(b"q"), 1)], store)


def test_a_large_model_is_streamed_to_disk_never_held_in_memory(tmp_path: Path) -> None:
    """64 MiB over loopback HTTP, hashed while written and checked from the temp file: the peak of
    Python allocations stays a small fraction of the blob."""
    size = 64 << 20
    served = tmp_path / "served"
    served.mkdir()
    model = served / "model.gguf"
    with model.open("wb") as handle:  # sparse: a GGUF header, then zeros
        handle.write(b"GGUF" + struct.pack("<I", 3))
        handle.truncate(size)
    digest = digest_of_file(model)

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    store = Store(tmp_path / "store")
    checked: list[int] = []

    def check(path: Path) -> None:
        checked.append(path.stat().st_size)
        content.check_model(path, "acme/model 1.0")

    try:
        tracemalloc.start()
        fetch_all([Download("acme/model 1.0", "web", f"http://127.0.0.1:{server.server_address[1]}/model.gguf",
                            digest, size, check)], store)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        server.shutdown()
        server.server_close()
    assert store.has(digest) and checked == [size]
    assert peak < 8 << 20, f"peak {peak >> 20} MiB of Python allocations for a {size >> 20} MiB blob"


def test_content_checks_read_files_as_the_in_memory_checks_read_bytes(tmp_path: Path, wat_dir: Path) -> None:
    modules = [conformance_wasm("c"), conformance_wasm("rust"), *sorted(wat_dir.glob("*.wasm"))]
    for module in modules:
        data = module.read_bytes()
        with module.open("rb") as handle:
            assert read_interface_file(handle, len(data)) == read_interface(data), module.name
        cut = tmp_path / "cut.wasm"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(InterfaceError, match="truncated"):
            check_module_file(cut, "cut", wasi_declared=True)
    text = tmp_path / "data.jsonl"
    text.write_bytes(("é" * 700_000).encode() + b"\xff")  # an invalid byte after a piece boundary
    with pytest.raises(ModelError, match=r"not UTF-8 text \(byte 1400000\)"):
        content.check_data(text, "acme/data 1.0")
    text.write_bytes(("é" * 700_000).encode())
    content.check_data(text, "acme/data 1.0")
    with pytest.raises(ModelError, match="not a GGUF model"):
        content.check_model(text, "acme/model 1.0")
