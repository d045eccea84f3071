"""Downloads into the store: retries, size caps, digest and interface checks, folder registries."""

from __future__ import annotations

from pathlib import Path

import pytest

from cspm.fetch import Download, FetchError, fetch_all
from cspm.store import DigestMismatch, Store, StoreError, digest_of
from cspm.verify.interface import InterfaceError, check_against_entry, check_module, export_names, import_names
from tests.conftest import conformance_wasm


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cspm.fetch.BACKOFF_S", 0.01)


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

    def check(data: bytes) -> None:
        check_against_entry(data, "acme/x 1.0", exports, imports, wasi_declared=False)

    fetch_all([Download("acme/x 1.0", "local", (tmp_path / "good.wasm").as_uri(), digest_of(good), len(good),
                        check)], store)
    assert store.has(digest_of(good))
    with pytest.raises(InterfaceError, match="does not export a function `call`"):
        fetch_all([Download("acme/y 1.0", "local", (tmp_path / "bad.wasm").as_uri(), digest_of(bad), len(bad),
                            check)], store)
    assert not store.has(digest_of(bad))
    with pytest.raises(FetchError, match="registry local has no blob"):
        fetch_all([Download("acme/z 1.0", "local", (tmp_path / "none.wasm").as_uri(), digest_of(b"q"), 1)], store)
