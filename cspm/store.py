"""The content-addressed store: every blob (plug-in module, app bundle, model) by its sha256.

A blob is written to a temp file in the store, hashed while written, checked against the digest it
should have, fsynced and renamed into place, so a reader never sees a partial file and a crash
leaves at most a temp file (swept by `clean`). Writers of one digest serialise on a file lock, so
two `cspm` processes fetching the same plug-in download it once. Reads re-hash the blob: a store
edited or corrupted on disk is caught before its bytes run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from cspm import atomicfile
from cspm.cachedir import Bucket
from cspm.errors import DigestMismatch, StoreError, StoreWriteError

if TYPE_CHECKING:
    from filelock import FileLock

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")  # fullmatch: `$` also matches before a final newline
TMP_MAX_AGE_S = 3600


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        raise StoreError(f"{str(digest)[:80]!r} is not a digest (expected sha256:<64 hex digits>)")
    return digest


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Entry:
    digest: str
    size: int
    mtime: float


class Store:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else Bucket.STORE.path()
        self.blobs = self.root / "blobs" / "sha256"
        self.tmp = self.root / "tmp"
        self.locks = self.root / "locks"
        try:
            for folder in (self.blobs, self.tmp, self.locks):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _disk_error(exc, self.root) from None

    def path(self, digest: str) -> Path:
        hexdigest = check_digest(digest)[7:]
        return self.blobs / hexdigest[:2] / hexdigest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def lock(self, digest: str) -> FileLock:
        from filelock import FileLock  # only writers lock: a run that reads the store never imports it (~11 ms)

        return FileLock(str(self.locks / f"{check_digest(digest)[7:]}.lock"))

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store bytes (checked against `digest` when given); returns the digest."""
        actual = digest_of(data)
        if digest is not None and check_digest(digest) != actual:
            raise DigestMismatch(f"content has digest {actual}, expected {digest}")
        with self.writer(actual) as writer:
            if writer is not None:
                writer.write(data)
        return actual

    def writer(self, digest: str, max_size: int | None = None, source: str = "") -> _WriteSession:
        """`with store.writer(d) as w:` — `w` is None when the blob is already there."""
        return _WriteSession(self, check_digest(digest), max_size, source)

    def read(self, digest: str, verify: bool = True) -> bytes:
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{digest} is not in the store", hint="run `cspm install`") from None
        if verify and digest_of(data) != digest:
            self._quarantine(path)
            raise DigestMismatch(f"the stored blob {digest} is corrupted (its content no longer matches) "
                                 f"and was removed", hint="run `cspm install` to fetch it again")
        return data

    def _quarantine(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()

    def entries(self) -> Iterator[Entry]:
        for sub in sorted(self.blobs.iterdir()):
            if not sub.is_dir():
                continue
            for blob in sorted(sub.iterdir()):
                if DIGEST_RE.fullmatch("sha256:" + blob.name) and blob.name.startswith(sub.name):
                    stat = blob.stat()
                    yield Entry("sha256:" + blob.name, stat.st_size, stat.st_mtime)

    def intact(self, digest: str) -> bool:
        """Whether the stored blob still has its digest; a corrupted one is removed (so it is fetched
        again) and False returned. A missing blob is not intact either."""
        path = self.path(digest)
        try:
            ok = digest_of_file(path) == digest
        except OSError:
            return False
        if not ok:
            self._quarantine(path)
        return ok

    def verify(self) -> Iterator[tuple[Entry, bool]]:
        """Re-hash every blob; corrupted ones are removed (and reported)."""
        for entry in self.entries():
            path = self.path(entry.digest)
            ok = digest_of_file(path) == entry.digest
            if not ok:
                self._quarantine(path)
            yield entry, ok

    def remove(self, digest: str) -> bool:
        with self.lock(digest):
            try:
                self.path(digest).unlink()
                return True
            except FileNotFoundError:
                return False

    def sweep_tmp(self, max_age_s: float = TMP_MAX_AGE_S) -> int:
        """Temp files left by a crashed writer; recent ones may belong to a live writer."""
        removed, now = 0, time.time()
        for item in self.tmp.iterdir():
            try:
                if now - item.stat().st_mtime > max_age_s:
                    item.unlink()
                    removed += 1
            except OSError:
                pass
        return removed


class _WriteSession:
    def __init__(self, store: Store, digest: str, max_size: int | None, source: str) -> None:
        self.store, self.digest, self.max_size, self.source = store, digest, max_size, source
        self._lock = store.lock(digest)
        self._file: BlobWriter | None = None

    def __enter__(self) -> BlobWriter | None:
        try:
            self._lock.acquire()
        except OSError as exc:  # creating the lock file
            raise _disk_error(exc, self.store.root) from None
        try:
            self._sweep_dead_writers()
            if self.store.has(self.digest):
                return None
            self._file = BlobWriter(self.store, self.digest, self.max_size, self.source)
        except BaseException:
            self._lock.release()
            raise
        return self._file

    def _sweep_dead_writers(self) -> None:
        """Temp files of this digest: whoever wrote them held this lock and no longer does, so it died."""
        for item in self.store.tmp.glob(f"{self.digest[7:19]}.*"):
            with contextlib.suppress(OSError):
                item.unlink()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._file is not None:
                if exc_type is None:
                    self._file.commit()
                else:
                    self._file.discard()
        finally:
            self._lock.release()


class BlobWriter:
    """Hashes while writing; `commit` checks the digest and renames into place. Nothing is visible
    in the store before `commit`: a check that refuses the blob (raising inside the `with`) makes the
    session discard the temp file instead."""

    def __init__(self, store: Store, digest: str, max_size: int | None, source: str) -> None:
        self.store, self.digest, self.max_size, self.source = store, digest, max_size, source
        try:
            fd, name = tempfile.mkstemp(dir=store.tmp, prefix=digest[7:19] + ".")
        except OSError as exc:
            raise _disk_error(exc, store.root) from None
        self._fd: int | None = fd
        self._tmp = Path(name)
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_size is not None and self.size > self.max_size:
            raise StoreError(f"{self.digest}{self._from()} is larger than the {self.max_size} bytes announced")
        self._hash.update(chunk)
        try:
            _write_all(self._fd, chunk)  # type: ignore[arg-type]
        except OSError as exc:
            raise _disk_error(exc, self.store.root) from None

    @property
    def written(self) -> Path:
        """The temp file of what was written so far, for checks that must pass before `commit`: they
        read it in bounded pieces (a model is never held whole), and it is not in the store yet."""
        return self._tmp

    def check_digest(self) -> None:
        """The bytes written so far must be the blob asked for: checked before any other check of the
        content, so a tampered blob is reported as what it is, not as whatever part of it changed."""
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self.digest:
            self.discard()
            raise DigestMismatch(f"download of {self.digest}{self._from()} has digest {actual}: discarded",
                                 hint="the registry serves a file that does not match its index; tell its operator")

    def commit(self) -> None:
        self.check_digest()
        try:
            os.fsync(self._fd)  # type: ignore[arg-type]
            os.close(self._fd)  # type: ignore[arg-type]
            self._fd = None
            final = self.store.path(self.digest)
            if not final.parent.is_dir():  # a new prefix folder: its own entry must be durable too
                final.parent.mkdir(parents=True, exist_ok=True)
                atomicfile.fsync_dir(final.parent.parent)
            atomicfile.publish(self._tmp, final, mode=0o444)  # fsync'd above; the rename made durable
        except OSError as exc:
            self.discard()
            raise _disk_error(exc, self.store.root) from None

    def discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def _from(self) -> str:
        return f" from {self.source}" if self.source else ""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _disk_error(exc: OSError, root: Path) -> StoreError:
    if exc.errno == errno.ENOSPC:
        return StoreWriteError(f"no space left on the device of the store {root}",
                               hint="free some space, or run `cspm cache clean`")
    return StoreWriteError(f"cannot write to the store {root}: {exc.strerror}")


def digest_of_file(path: Path) -> str:
    """`digest_of` a file, read in 1 MiB pieces (a model is never held whole)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
