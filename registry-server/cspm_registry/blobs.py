"""The blob store: modules, app packages, model and data files, and signature bundles, by layout path.

`BlobStore` is the interface the registry needs; `FolderBlobs` implements it in the data dir
(`blobs/sha256/<hex>`, `bundles/sha256/<hex>.<kind>.json`, `tmp/`), `blobs_s3.S3Blobs` in an S3
bucket shared by replicas. A key is the file's path in the static layout
(`cspm.protocol.layout.blob_path`, `bundle_path`), which names it by the sha256 of its bytes. Its
invariants:

- **Immutable by digest.** `put` places bytes under a key only when the key is absent, and the key
  is the digest of those bytes, so a stored blob never changes; a second `put` of a present key
  leaves the first and says it brought nothing.
- **Whole or absent.** `stage` writes and syncs the bytes where no reader looks for them (the slow
  part, outside any lock: a folder's `tmp/`, or S3 under the final key, which no committed row names
  yet and so is neither listed nor served); `put` makes sure they are under their key, atomically
  and durably, before it returns. A reader never sees part of a blob.
- **Only the metadata transaction decides.** `put` and `remove` are called inside a
  `MetadataStore.transaction()` (see `storage.Storage.publish`), which serialises them with every
  other publish and with the sweep: `put` there is what guarantees the blob is present when the row
  commits (re-uploading it if a sweep took a staged orphan meanwhile), and a publish that fails removes
  only what its own `put` brought, which no committed row can name.
- **Orphans are swept.** A blob no committed version names is never served (the app asks the
  metadata store first); `Storage.sweep` removes such keys (`keys(older_than)`, `remove`) and stale
  staged files (`clean_staged`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, NoReturn, Protocol

from cspm import atomicfile
from cspm.errors import StorageError
from cspm.protocol import layout

TMP_DIR = "tmp"


class Staged:
    """Bytes written and synced but not yet committed under a key: a temporary file of a folder store,
    or the bytes themselves (kept for a `put` that finds a swept key) and whether `stage` uploaded them."""

    def __init__(self, path: Path | None = None, data: bytes | None = None, key: str | None = None) -> None:
        self.path = path
        self.data = data
        self.key = key


class BlobStore(Protocol):
    """Blobs and bundles by layout key, with the invariants of this module's docstring."""

    def stage(self, data: bytes, key: str | None = None) -> Staged:
        """Write `data` where no reader looks (`key`, when known, lets a remote store upload it now)."""
        ...

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

    def keys(self, older_than: float = 0) -> list[str]:
        """Every stored blob and bundle key last written more than `older_than` seconds ago."""
        ...

    def clean_staged(self, older_than: float = 0) -> list[str]:
        """Remove staged files older than `older_than` seconds (0: all); returns what was removed."""
        ...

    def url(self, key: str) -> str | None:
        """A URL a client may download the key from (a presigned one), or None: the app serves it."""
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

    def stage(self, data: bytes, key: str | None = None) -> Staged:
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
        assert staged.path is not None
        atomicfile.publish(staged.path, target)  # the stage was fsync'd; the rename is made durable
        return True

    def discard(self, staged: Staged) -> None:
        if staged.path is not None:
            staged.path.unlink(missing_ok=True)

    def remove(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir() and not path.is_symlink():  # not a blob: whatever it is, a sweep clears it
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def size(self, key: str) -> int | None:
        path = self.local_path(key)
        return None if path is None else path.stat().st_size

    def open(self, key: str) -> BinaryIO | None:
        path = self.local_path(key)
        return None if path is None else path.open("rb")

    def keys(self, older_than: float = 0) -> list[str]:
        cutoff = time.time() - older_than
        found = []
        for folder in (layout.BLOBS_DIR, layout.BUNDLES_DIR):
            for path in sorted((self.root / folder).iterdir()):
                if not path.name.startswith(".") and (not older_than or _mtime(path) < cutoff):
                    found.append(f"{folder}/{path.name}")
        return found

    def clean_staged(self, older_than: float = 0) -> list[str]:
        cutoff = time.time() - older_than
        removed = []
        for path in sorted(self.tmp.iterdir()):
            if not older_than or _mtime(path) < cutoff:
                _remove(path)
                removed.append(f"{TMP_DIR}/{path.name}")
        return removed

    def url(self, key: str) -> str | None:
        return None

    def _path(self, key: str) -> Path:
        """Only the two layout folders, one level deep: a key never leads elsewhere."""
        folder, _, name = key.rpartition("/")
        if folder not in (layout.BLOBS_DIR, layout.BUNDLES_DIR) or not name or name.startswith("."):
            raise ValueError(f"not a blob store key: {key[:100]!r}")
        return self.root / folder / name


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return time.time()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class NoBlobs:
    """The blob store of an admin command that needs none (`token`, `trust` against `--db`): any use is an error."""

    def _none(self, *args: object) -> NoReturn:
        raise StorageError("this command has no blob store (give --blobs s3://BUCKET/PREFIX)")

    stage = put = discard = remove = size = open = keys = clean_staged = url = _none
