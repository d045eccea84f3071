"""The content-addressed store: atomic, verified, safe under concurrent writers."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from cspm.store import DigestMismatch, Store, StoreError, digest_of


def test_put_read_and_layout(tmp_path: Path) -> None:
    store = Store(tmp_path)
    digest = store.put(b"hello")
    assert digest == digest_of(b"hello") and store.has(digest)
    assert store.path(digest) == tmp_path / "blobs" / "sha256" / digest[7:9] / digest[7:]
    assert store.read(digest) == b"hello"
    assert not os.access(store.path(digest), os.W_OK) or os.geteuid() == 0  # written read-only
    assert [e.digest for e in store.entries()] == [digest]
    assert list(store.tmp.iterdir()) == []


def test_wrong_digest_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    store = Store(tmp_path)
    wanted = digest_of(b"the real thing")
    with pytest.raises(DigestMismatch, match=f"download of {wanted} from registry-x has digest"), \
            store.writer(wanted, source="registry-x") as writer:
        assert writer is not None
        writer.write(b"something else")
    assert not store.has(wanted) and list(store.tmp.iterdir()) == []


def test_size_limit_stops_a_download_early(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(StoreError, match="larger than the 4 bytes announced"), \
            store.writer(digest_of(b"12345"), max_size=4) as writer:
        writer.write(b"12345")  # type: ignore[union-attr]
    assert list(store.tmp.iterdir()) == []


def test_failure_inside_the_writer_discards_the_temp_file(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(RuntimeError), store.writer(digest_of(b"abc")) as writer:
        writer.write(b"ab")  # type: ignore[union-attr]
        raise RuntimeError("connection lost")
    assert list(store.tmp.iterdir()) == [] and not store.has(digest_of(b"abc"))


def test_corruption_is_caught_on_read_and_by_verify(tmp_path: Path) -> None:
    store = Store(tmp_path)
    good, bad = store.put(b"good"), store.put(b"bad")
    path = store.path(bad)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    assert sorted((e.digest, ok) for e, ok in store.verify()) == sorted([(good, True), (bad, False)])
    assert not store.has(bad)
    store.put(b"bad")
    store.path(bad).chmod(0o644)
    store.path(bad).write_bytes(b"tampered again")
    with pytest.raises(DigestMismatch, match="corrupted"):
        store.read(bad)
    assert not store.has(bad)


@pytest.mark.parametrize("bad", ["sha256:../../etc/passwd", "md5:abc", "sha256:" + "A" * 64, "sha256:" + "0" * 63])
def test_digests_are_checked_before_they_become_paths(tmp_path: Path, bad: str) -> None:
    with pytest.raises(StoreError, match="is not a digest"):
        Store(tmp_path).path(bad)


def _writer_process(root: str, payload: bytes, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = Store(Path(root))
    wrote = 0
    for _ in range(20):
        with store.writer(digest_of(payload)) as writer:
            if writer is not None:
                for i in range(0, len(payload), 65536):
                    writer.write(payload[i:i + 65536])
                wrote += 1
    results.put(wrote)


def test_two_processes_writing_the_same_blob(tmp_path: Path) -> None:
    payload = os.urandom(3 * 2**20)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    procs = [context.Process(target=_writer_process, args=(str(tmp_path), payload, results)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert sorted(results.get() for _ in procs) == [0, 1]  # written exactly once
    store = Store(tmp_path)
    assert store.read(digest_of(payload)) == payload and list(store.tmp.iterdir()) == []


def test_a_check_reads_the_temp_file_and_a_refusal_never_reaches_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path)
    data = b"checked before it counts"
    digest = digest_of(data)
    with pytest.raises(ValueError, match="refused"), store.writer(digest) as writer:
        assert writer is not None
        writer.write(data)
        writer.check_digest()
        assert writer.written.read_bytes() == data and writer.written.parent == store.tmp
        assert not store.has(digest)  # written, hashed, not yet in the store
        raise ValueError("refused by a check")
    assert not store.has(digest) and list(store.tmp.iterdir()) == []
