"""The registry's storage interfaces (cspm_registry.metadata, cspm_registry.blobs), run against the
implementations of today (SQLite, a folder) through the `Storage` facade the app uses: the invariants
their docstrings promise, each provoked for real (threads racing, a blob store that fails, a crash's leftovers).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from cspm_registry.blobs import FolderBlobs, Staged
from cspm_registry.metadata import Exists, SQLiteMetadata, Token
from cspm_registry.storage import Storage

from cspm.formats import manifest as manifest_format
from cspm.index import build
from cspm.protocol import layout
from tests.conftest import conformance_wasm

TOKEN = Token(1, frozenset({"test"}), True, False)


def module(lang: str) -> bytes:
    return conformance_wasm(lang).read_bytes()


def line_of(version: str, blob: bytes, name: str = "test/echo") -> dict[str, Any]:
    data = {"name": name, "version": version, "kind": "tool", "abi": 1, "wasm": "m.wasm", "description": "echo"}
    return build.index_line(manifest_format.from_dict(data, "plugin.yaml"), blob, published="2026-01-01T00:00:00Z")


def stored(data: Path) -> dict[str, list[str]]:
    return {folder: sorted(p.name for p in (data / folder).iterdir())
            for folder in (layout.BLOBS_DIR, layout.BUNDLES_DIR, "tmp")}


class Gate(FolderBlobs):
    """A folder blob store whose `stage` waits until `parties` publishes have staged (they then race)."""

    def __init__(self, root: Path, barrier: threading.Barrier) -> None:
        super().__init__(root)
        self.barrier = barrier

    def stage(self, data: bytes, key: str | None = None) -> Staged:
        staged = super().stage(data, key)
        self.barrier.wait(timeout=30)
        return staged


def test_of_two_concurrent_publishes_of_one_version_exactly_one_wins(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Storage(data)  # the schema, once
    barrier = threading.Barrier(2)
    blobs = {"c": module("c"), "zig": module("zig")}
    results: dict[str, str] = {}

    def publish(lang: str) -> None:  # each thread its own storage, as two server processes would have
        storage = Storage(data, blob_store=Gate(data, barrier))
        try:
            storage.publish(line_of("1.0.0" if lang == "c" else "1.0", blobs[lang]), blobs[lang], TOKEN)
            results[lang] = "won"
        except Exists:
            results[lang] = "exists"

    threads = [threading.Thread(target=publish, args=(lang,)) for lang in blobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results.values()) == ["exists", "won"], results  # 1.0 and 1.0.0 are one version
    winner = next(lang for lang, result in results.items() if result == "won")
    storage = Storage(data)
    rendered = storage.index_file("test/echo")
    assert rendered is not None and rendered.body.count(b"\n") == 1
    assert layout.blob_path(line_of("1.0.0", blobs[winner])["digest"]).encode().split(b"/")[-1] in rendered.body
    assert stored(data)[layout.BLOBS_DIR] == [layout.blob_path(line_of("1.0.0", blobs[winner])["digest"])
                                              .rsplit("/", 1)[1]]  # the loser's blob is gone
    assert stored(data)["tmp"] == []


class Failing(FolderBlobs):
    """A blob store whose `put` fails like a full disk, or fails after storing (`after`)."""

    def __init__(self, root: Path, after: bool = False) -> None:
        super().__init__(root)
        self.after = after

    def put(self, staged: Staged, key: str) -> bool:
        if self.after:
            super().put(staged, key)
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("after", [False, True], ids=["before-storing", "after-storing"])
def test_a_blob_store_failure_leaves_no_visible_version(tmp_path: Path, after: bool) -> None:
    data = tmp_path / "data"
    storage = Storage(data, blob_store=Failing(data, after=after))
    generation = storage.generation()
    with pytest.raises(OSError, match="No space"):
        storage.publish(line_of("1.0.0", module("c")), module("c"), TOKEN)
    fresh = Storage(data)
    assert not fresh.exists("test/echo", "1.0.0") and fresh.index_file("test/echo") is None
    assert fresh.names_file().body == b"" and fresh.generation() == generation
    # what a put that failed after storing leaves is an orphan: never served, swept at start-up
    digest = line_of("1.0.0", module("c"))["digest"]
    assert fresh.blob_path(digest[7:]) is None
    fresh.sweep()
    assert stored(data) == {layout.BLOBS_DIR: [], layout.BUNDLES_DIR: [], "tmp": []}
    fresh.publish(line_of("1.0.0", module("c")), module("c"), TOKEN)  # and the version can be published
    assert fresh.blob_path(digest[7:]) is not None


def test_a_refused_publish_removes_the_blob_it_brought_but_not_one_a_version_shares(tmp_path: Path) -> None:
    data = tmp_path / "data"
    storage = Storage(data)
    storage.publish(line_of("1.0.0", module("c")), module("c"), TOKEN)

    def refuse(policy: dict[str, Any]) -> None:
        raise RuntimeError("refused inside the transaction")

    for version, blob in (("2.0.0", module("c")), ("3.0.0", module("zig"))):  # a shared blob, a new one
        with pytest.raises(RuntimeError):
            storage.publish(line_of(version, blob), blob, TOKEN, policy={"changed": True}, recheck=refuse)
    assert stored(data)[layout.BLOBS_DIR] == [line_of("1.0.0", module("c"))["digest"][7:]]
    assert [storage.exists("test/echo", v) for v in ("1.0.0", "2.0.0", "3.0.0")] == [True, False, False]


def test_a_crash_leaves_nothing_visible_and_the_sweep_keeps_what_rows_name(tmp_path: Path) -> None:
    """A crash after the blob was put but before the commit: the row was never committed (the process
    died inside the transaction); the blob, a staged upload and a stray bundle are left behind."""
    data = tmp_path / "data"
    storage = Storage(data)
    storage.publish(line_of("1.0.0", module("c")), module("c"), TOKEN)
    store = FolderBlobs(data)
    orphan = layout.blob_path(line_of("1.1.0", module("zig"))["digest"])
    store.put(store.stage(module("zig")), orphan)
    store.stage(b"half an upload")
    stray = layout.bundle_path(b"{}", "dsse-ed25519")
    store.put(store.stage(b"{}"), stray)
    assert storage.blob_path(orphan.rsplit("/", 1)[1]) is None  # present, but no row names it: not served
    assert storage.bundle_path(stray.rsplit("/", 1)[1]) is None
    removed = storage.sweep()
    assert orphan in removed and stray in removed and any(r.startswith("tmp/") for r in removed)
    assert stored(data) == {layout.BLOBS_DIR: [line_of("1.0.0", module("c"))["digest"][7:]],
                            layout.BUNDLES_DIR: [], "tmp": []}


def test_a_blob_is_immutable_by_its_key(tmp_path: Path) -> None:
    store = FolderBlobs(tmp_path)
    key = layout.blob_path(line_of("1.0.0", module("c"))["digest"])
    assert store.put(store.stage(module("c")), key) is True
    second = store.stage(b"other bytes")
    assert store.put(second, key) is False  # present: the first bytes stay
    store.discard(second)
    handle = store.open(key)
    assert handle is not None
    with handle:
        assert handle.read() == module("c")
    assert store.size(key) == len(module("c")) and store.size(layout.BLOBS_DIR + "/" + "0" * 64) is None
    for bad in ("../registry.db", "blobs/sha256/../../registry.db", "tmp/x", "blobs/sha256/.hidden"):
        with pytest.raises(ValueError):
            store.put(store.stage(b"x"), bad)


def test_a_failed_transaction_changes_nothing_in_the_metadata_store(tmp_path: Path) -> None:
    meta = SQLiteMetadata(tmp_path)
    line = line_of("1.0.0", module("c"))
    with pytest.raises(RuntimeError), meta.transaction() as txn:
        txn.insert_version(line, "{}", 1, None)
        txn.set_trust("test", issuer=None, identity=None, keys=["ed25519:" + "ab" * 32], require=True)
        txn.bump()
        raise RuntimeError("crash before the commit")
    assert meta.versions() == [] and meta.policy() == {} and meta.generation() == 0
    with meta.transaction() as txn:
        txn.insert_version(line, "{}", 1, None)
        with pytest.raises(Exists):
            txn.insert_version({**line, "version": "1.0"}, "{}", 1, None)
        txn.bump()
    assert [row.name for row in meta.versions()] == ["test/echo"] and meta.generation() == 1
