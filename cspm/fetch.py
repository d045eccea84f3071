"""Downloads into the store: parallel, retried, size-capped, verified before they count.

Every blob is streamed into a store writer that hashes as it goes; the announced size caps it, the
digest must match (checked first, so tampering is reported as such), and a module must pass the
interface check against its index entry, all before the atomic rename. A failure names the package
and the registry, and leaves nothing behind.

A folder registry's blob is read from a regular file only (`open_regular`: never a FIFO, a device
or a symlink, which could hang the read or never end), at the path `IndexSource.blob_url` resolved
inside the folder; a path that still holds `..` once decoded is refused here too.
"""

from __future__ import annotations

import os
import random
import stat
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlsplit

from cspm.errors import CspmError
from cspm.store import BlobWriter, DigestMismatch, Store, StoreError

if TYPE_CHECKING:  # imported where a download starts: a warm run never needs it (~40 ms)
    import httpx

RETRIES = 4
BACKOFF_S = 0.25
CHUNK = 1 << 16
TIMEOUT = (30.0, 5.0)  # seconds: each read, write and pool wait; connect
TIMEOUT_ENV = "CSPM_HTTP_TIMEOUT"
WORKERS = 8


class FetchError(CspmError):
    pass


class NotRegularFile(OSError):
    """A path that is a FIFO, a device, a socket, a symlink or a folder; `str()` says which."""


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file (not a symlink either); else NotRegularFile.

    Checked before opening (opening a device can have effects) and again on the open descriptor (the
    path may have changed in between); O_NONBLOCK so that even a FIFO swapped in never blocks the open.
    """
    before = os.lstat(path).st_mode
    if not stat.S_ISREG(before):
        if stat.S_ISDIR(before):
            raise IsADirectoryError(str(path))
        raise NotRegularFile(_kind(before))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == getattr(os, "ELOOP", None):
            raise NotRegularFile("a symlink") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(_kind(mode))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def http_timeout(default: tuple[float, float]) -> httpx.Timeout:
    """`default` (seconds, connect seconds), or every limit set to $CSPM_HTTP_TIMEOUT seconds (like
    Cargo's CARGO_HTTP_TIMEOUT)."""
    import httpx

    value = os.environ.get(TIMEOUT_ENV, "").strip()
    if not value:
        return httpx.Timeout(default[0], connect=default[1])
    try:
        seconds = float(value)
    except ValueError:
        raise CspmError(f"{TIMEOUT_ENV}={value!r} is not a number of seconds") from None
    if not 0 < seconds <= 3600:
        raise CspmError(f"{TIMEOUT_ENV}={value!r}: use a number of seconds between 0 and 3600")
    return httpx.Timeout(seconds)


class _Retryable(Exception):
    pass


@dataclass(frozen=True)
class Download:
    what: str  # "acme/calc 1.2.0", for messages
    registry: str
    url: str
    digest: str
    size: int
    check: Callable[[bytes], None] | None = None  # raises to refuse the blob before it is stored


Progress = Callable[[str, int], None]  # (what, bytes just received)


def fetch_all(downloads: list[Download], store: Store, *, progress: Progress | None = None,
              client: httpx.Client | None = None) -> int:
    """Fetch what the store lacks; returns how many blobs this call downloaded (not those another
    process stored meanwhile). All-or-error."""
    missing = [d for d in downloads if not store.has(d.digest)]
    if not missing:
        return 0
    own = client is None
    import httpx

    http = client or httpx.Client(timeout=http_timeout(TIMEOUT), follow_redirects=True, trust_env=False,
                                  headers={"User-Agent": "cspm"})
    try:
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(missing))) as pool:
            futures = [pool.submit(_fetch_one, d, store, http, progress) for d in missing]
            errors = [f.exception() for f in futures]
            fetched = sum(1 for f in futures if f.exception() is None and f.result())
    finally:
        if own:
            http.close()
    failed = [e for e in errors if e is not None]
    if failed:
        first = failed[0]
        if isinstance(first, CspmError):
            if len(failed) > 1:
                error = FetchError(f"{first.message} (and {len(failed) - 1} more download(s) failed)", first.hint)
                error.exit_code = first.exit_code  # the first failure's category (a full disk: 74)
                raise error
            raise first
        raise first
    return fetched


def _fetch_one(download: Download, store: Store, http: httpx.Client, progress: Progress | None) -> bool:
    source = f"registry {download.registry}"
    for attempt in range(RETRIES):
        try:
            with store.writer(download.digest, max_size=download.size, source=source) as writer:
                if writer is None:
                    return False  # another process (or thread) stored it meanwhile
                _copy(download, writer, http, progress)
                writer.check_digest()  # first: a tampered blob is a digest mismatch, whatever else it breaks
                if writer.size != download.size:
                    raise StoreError(f"{download.what} from {source}: got {writer.size} bytes, the index "
                                     f"announced {download.size}")
                if download.check is not None:
                    download.check(writer.read_back())
            return True
        except DigestMismatch as exc:
            raise DigestMismatch(f"{download.what}: {exc.message}", exc.hint) from None
        except _Retryable as exc:
            if attempt == RETRIES - 1:
                raise FetchError(f"cannot download {download.what} from {source}: {exc} "
                                 f"(after {RETRIES} attempts)", hint="try again later, or "
                                 "use another registry") from None
            time.sleep(BACKOFF_S * (2 ** attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable: the last attempt returns or raises")


def _copy(download: Download, writer: BlobWriter, http: httpx.Client, progress: Progress | None) -> None:
    parts = urlsplit(download.url)
    if parts.scheme == "file":
        _copy_file(download, Path(unquote(parts.path)), writer, progress)
        return
    import httpx

    try:
        with http.stream("GET", download.url) as response:
            if response.status_code >= 500 or response.status_code == 429:
                raise _Retryable(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise FetchError(f"cannot download {download.what} from registry {download.registry}: "
                                 f"HTTP {response.status_code} for {download.url}")
            for chunk in response.iter_bytes(CHUNK):
                writer.write(chunk)
                if progress:
                    progress(download.what, len(chunk))
    except httpx.TransportError as exc:
        raise _Retryable(str(exc) or type(exc).__name__) from None
    except (httpx.DecodingError, httpx.TooManyRedirects, httpx.InvalidURL) as exc:
        # an answer that cannot be decoded (a corrupt gzip) will not decode on a retry either
        raise FetchError(f"cannot download {download.what} from registry {download.registry}: the answer for "
                         f"{download.url} cannot be used: {str(exc)[:300] or type(exc).__name__}",
                         hint="tell the registry's operator (or the proxy's, if one is in the way)") from None


def _copy_file(download: Download, path: Path, writer: BlobWriter, progress: Progress | None) -> None:
    """A folder registry's blob: a regular file at a path without `..` (after decoding)."""
    source = f"registry {download.registry}"
    if ".." in PurePosixPath(path).parts or "\0" in str(path):
        raise FetchError(f"{download.what}: {source} names a blob path that leaves its folder ({str(path)[:300]})",
                         hint="tell the registry's operator")
    try:
        with open_regular(path) as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                writer.write(chunk)
                if progress:
                    progress(download.what, len(chunk))
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise FetchError(f"{download.what}: {source} has no blob {download.digest} ({path})",
                         hint="the registry is incomplete; tell its operator") from None
    except NotRegularFile as exc:
        raise FetchError(f"{download.what}: {source}'s blob {path} is {exc}, not a regular file",
                         hint="a folder registry is read from regular files only: tell its operator") from None
    except OSError as exc:  # the store's own write errors are StoreErrors: this is the registry's file
        raise FetchError(f"{download.what}: {source}'s blob {path} cannot be read: {exc.strerror or exc}") from None
