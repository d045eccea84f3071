"""cspm/atomicfile.py: the one way a file is replaced; old or new, never half, nothing left behind."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cspm import atomicfile


def test_replaces_whole_with_the_mode_asked(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    atomicfile.write(target, "new", mode=0o644)
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o644
    atomicfile.write(target, b"secret")
    assert target.read_bytes() == b"secret" and target.stat().st_mode & 0o777 == 0o600  # mkstemp's default
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_a_failed_write_keeps_the_old_file_names_it_and_leaves_nothing(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f"
    target.write_text("old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as caught:
        atomicfile.write(target, "new")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def _fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What os.fsync was called on: 'dir' or 'file'."""
    seen: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def test_one_fsync_policy_durable_writes_sync_the_file_then_its_folder(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _fsynced(monkeypatch)
    atomicfile.write(tmp_path / "lock", "x")
    assert seen == ["file", "dir"]
    seen.clear()
    atomicfile.write(tmp_path / "cache", "x", durable=False)  # a cache may be lost, never torn
    assert seen == []


def test_the_store_and_the_registrys_blobs_follow_the_same_policy(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from cspm_registry.blobs import FolderBlobs

    from cspm.store import Store, digest_of

    seen = _fsynced(monkeypatch)
    store = Store(tmp_path / "store")
    store.put(b"blob", digest_of(b"blob"))
    assert seen[-3:] == ["file", "dir", "dir"]  # the blob, the new prefix folder's entry, the rename
    seen.clear()
    prefix = digest_of(b"blob")[7:9]
    again = next(data for n in range(100_000) if digest_of(data := b"blob%d" % n)[7:9] == prefix)
    store.put(again, digest_of(again))  # its prefix folder exists: the blob and the rename only
    assert seen[-2:] == ["file", "dir"] and seen.count("dir") == 1
    seen.clear()
    blobs = FolderBlobs(tmp_path / "registry")
    digest = digest_of(b"module")
    assert blobs.put(blobs.stage(b"module"), f"blobs/sha256/{digest[7:]}")
    assert seen == ["file", "dir"]
