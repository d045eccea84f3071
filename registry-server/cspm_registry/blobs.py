"""The blob store: modules, app packages, model and data files, and signature bundles, by layout path.

`BlobStore` is the interface the registry needs (S3 will implement it next); `FolderBlobs` implements
it today in the data dir (`blobs/sha256/<hex>`, `bundles/sha256/<hex>.<kind>.json`, `tmp/`). A key is
the file's path in the static layout (`cspm.protocol.layout.blob_path`, `bundle_path`), which names
it by the sha256 of its bytes. Its invariants:

- **Immutable by digest.** `put` places bytes under a key only when the key is absent, and the key
  is the digest of those bytes, so a stored blob never changes; a second `put` of a present key
  leaves the first and says it brought nothing.
- **Whole or absent.** `stage` writes and syncs the bytes where no reader looks (the slow part,
  outside any lock); `put` makes them visible under their key in one atomic step (a rename), and
  durable before it returns. A reader never sees part of a blob; a crash leaves a staged file or a
  whole blob, never half of one.
- **Only the metadata transaction changes keys.** `put` and `remove` are called inside a
  `MetadataStore.transaction()` (see `storage.Storage.publish`), which serialises them: a publish
  that fails removes what its own `put`s brought without racing one that shares the blob.
- **Orphans are swept.** A blob no committed version names is never served (the app asks the
  metadata store first); `sweep(keep)` removes such blobs and every staged file, and runs when
  `serve` starts, before any publish.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

from cspm import atomicfile
from cspm.protocol import layout

TMP_DIR = "tmp"


class Staged:
    """Bytes written and synced but not yet under a key (a temporary file of the store)."""

    def __init__(self, path: Path) -> None:
        self.path = path


class BlobStore(Protocol):
    """Blobs and bundles by layout key, with the invariants of this module's docstring."""

    def stage(self, data: bytes) -> Staged: ...

    def put(self, staged: Staged, key: str) -> bool:
        """Make staged bytes visible under `key` unless it is present; True if this call brought it."""
        ...

    def discard(self, staged: Staged) -> None:
        """Forget a staged file (after a `put`, or instead of one)."""
        ...

    def remove(self, key: str) -> None: ...

    def size(self, key: str) -> int | None:
        """The stored blob's size, or None when it is not there."""
        ...

    def open(self, key: str) -> BinaryIO | None: ...

    def sweep(self, keep: set[str]) -> list[str]:
        """Remove every blob and bundle whose key is not in `keep`, and everything staged; returns the keys."""
        ...


class FolderBlobs:
    """`BlobStore` in a folder: a key is a file under `root`, staged files are in `root/tmp/`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / TMP_DIR
        for folder in (root / layout.BLOBS_DIR, root / layout.BUNDLES_DIR, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)

    def local_path(self, key: str) -> Path | None:
        """The file of a stored key (served with sendfile); None when it is not there."""
        path = self._path(key)
        return path if path.is_file() else None

    def stage(self, data: bytes) -> Staged:
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(name, 0o644)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Staged(Path(name))

    def put(self, staged: Staged, key: str) -> bool:
        target = self._path(key)
        if target.exists():
            return False
        atomicfile.publish(staged.path, target)  # the stage was fsync'd; the rename is made durable
        return True

    def discard(self, staged: Staged) -> None:
        staged.path.unlink(missing_ok=True)

    def remove(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def size(self, key: str) -> int | None:
        path = self.local_path(key)
        return None if path is None else path.stat().st_size

    def open(self, key: str) -> BinaryIO | None:
        path = self.local_path(key)
        return None if path is None else path.open("rb")

    def sweep(self, keep: set[str]) -> list[str]:
        removed = []
        for folder in (layout.BLOBS_DIR, layout.BUNDLES_DIR):
            for path in sorted((self.root / folder).iterdir()):
                key = f"{folder}/{path.name}"
                if key not in keep:
                    _remove(path)
                    removed.append(key)
        for path in sorted(self.tmp.iterdir()):
            _remove(path)
            removed.append(f"{TMP_DIR}/{path.name}")
        return removed

    def _path(self, key: str) -> Path:
        """Only the two layout folders, one level deep: a key never leads elsewhere."""
        folder, _, name = key.rpartition("/")
        if folder not in (layout.BLOBS_DIR, layout.BUNDLES_DIR) or not name or name.startswith("."):
            raise ValueError(f"not a blob store key: {key[:100]!r}")
        return self.root / folder / name


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
