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
