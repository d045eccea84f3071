"""Downloads into the store: parallel, retried, size-capped, verified before they count.

Every blob is streamed to a store writer's temp file that hashes as it goes (a 100 MB model is never
in memory); the announced size caps it, the digest must match (checked first, so tampering is
reported as such), then the download's `check` runs on the temp file (a module's interface against
its index entry, a model's header, the signature against the digest just computed), all before the
atomic rename: a refused blob is never in the store, not even for a moment. Retries follow
`cspm.http_client.RETRY`. A failure names the package and the registry, and leaves nothing behind.

A folder registry's blob is read from a regular file only (`open_regular`: never a FIFO, a device
or a symlink, which could hang the read or never end), at the path `Source.blob_url` resolved
inside the folder; a path that still holds `..` once decoded is refused here too. A download names
its `source` (cspm.index.source) when it has one, which opens the stream; without one the URL's
scheme says how.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

from cspm.errors import CspmError, FetchError
from cspm.store import BlobWriter, DigestMismatch, Store, StoreError

if TYPE_CHECKING:  # imported where a download starts: a warm run never needs them (httpx: ~40 ms)
    import httpx

CHUNK = 1 << 16
TIMEOUT = (30.0, 5.0)  # seconds: each read, write and pool wait; connect
WORKERS = 8


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


@dataclass(frozen=True)
class Download:
    what: str  # "acme/calc 1.2.0", for messages
    registry: str
    url: str
    digest: str
    size: int
    # raises to refuse the blob before it is stored: given the path of the downloaded bytes (digest and
    # size already checked, not in the store yet), which it reads in bounded pieces, never whole
    check: Callable[[Path], None] | None = None
    source: BlobSource | None = None  # None: opened by the URL's scheme (file:// or http(s)://)


Progress = Callable[[str, int], None]  # (what, bytes just received)


def fetch_all(downloads: list[Download], store: Store, *, progress: Progress | None = None,
              client: httpx.Client | None = None) -> int:
    """Fetch what the store lacks; returns how many blobs this call downloaded (not those another
    process stored meanwhile). All-or-error."""
    missing = [d for d in downloads if not store.has(d.digest)]
    if not missing:
        return 0
    from cspm import http_client

    # a source with a client of its own (an OCI registry's, with its login) needs none from here
    needed = any(d.source is None or not d.source.own_client for d in missing)
    own = client is None and needed
    http = client or (http_client.build(timeout=http_client.timeout(TIMEOUT), follow_redirects=True) if needed
                      else None)
    try:
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(missing))) as pool:
            futures = [pool.submit(_fetch_one, d, store, http, progress) for d in missing]
            errors = [f.exception() for f in futures]
            fetched = sum(1 for f in futures if f.exception() is None and f.result())
    finally:
        if own and http is not None:
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


def _fetch_one(download: Download, store: Store, http: httpx.Client | None, progress: Progress | None) -> bool:
    from cspm import http_client

    source = f"registry {download.registry}"
    try:
        return http_client.policy().run(lambda: _attempt(download, store, http, progress))
    except DigestMismatch as exc:
        raise DigestMismatch(f"{download.what}: {exc.message}", exc.hint) from None
    except http_client.GaveUp as exc:
        raise FetchError(f"cannot download {download.what} from {source}: {exc}",
                         hint="try again later, or use another registry") from None


def _attempt(download: Download, store: Store, http: httpx.Client | None, progress: Progress | None) -> bool:
    """One try: the blob streamed to a temp file while hashed, every check on that file, then the
    rename (the writer's commit); any failure discards the temp file, so the store never shows it."""
    source = f"registry {download.registry}"
    with store.writer(download.digest, max_size=download.size, source=source) as writer:
        if writer is None:
            return False  # another process (or thread) stored it meanwhile
        _copy(download, writer, http, progress)
        writer.check_digest()  # first: a tampered blob is a digest mismatch, whatever else it breaks
        if writer.size != download.size:
            raise StoreError(f"{download.what} from {source}: got {writer.size} bytes, the index "
                             f"announced {download.size}")
        if download.check is not None:
            download.check(writer.written)
    return True


class LeavesFolder(ValueError):
    """A folder registry's blob path that holds `..` once decoded."""


class BlobStatus(Exception):
    """The registry answered a blob request with a status that is neither the blob nor worth a retry."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class BlobSource(Protocol):
    """Where a download's bytes come from (`cspm.index.source.Source.open_blob`)."""

    own_client: bool  # True: open_blob uses a client of its own and ignores the one fetch passes

    def open_blob(self, url: str, client: httpx.Client | None = None) -> AbstractContextManager[Iterator[bytes]]: ...


@contextmanager
def stream_http(client: httpx.Client, url: str) -> Iterator[Iterator[bytes]]:
    """A blob over http(s), in CHUNK pieces: Retryable per `http_client.RETRY`, BlobStatus for another
    status than 200; the connection's own errors as httpx raises them."""
    from cspm import http_client

    with http_client.transient_errors(), client.stream("GET", url) as response:
        http_client.check_status(response)
        if response.status_code != 200:
            raise BlobStatus(response.status_code)
        yield response.iter_bytes(CHUNK)


@contextmanager
def stream_file(path: Path) -> Iterator[Iterator[bytes]]:
    """A folder registry's blob: a regular file (`open_regular`) at a path without `..` (after decoding)."""
    if ".." in PurePosixPath(path).parts or "\0" in str(path):
        raise LeavesFolder(f"a blob path that leaves its folder ({str(path)[:300]})")
    with open_regular(path) as handle:
        yield iter(lambda: handle.read(CHUNK), b"")


def _open_by_scheme(url: str, client: httpx.Client | None = None) -> AbstractContextManager[Iterator[bytes]]:
    parts = urlsplit(url)
    if parts.scheme == "file":
        return stream_file(Path(unquote(parts.path)))
    assert client is not None
    return stream_http(client, url)


def _copy(download: Download, writer: BlobWriter, http: httpx.Client | None, progress: Progress | None) -> None:
    import httpx

    opener = download.source.open_blob if download.source is not None else _open_by_scheme
    source = f"registry {download.registry}"
    local = urlsplit(download.url).scheme == "file"
    try:
        with opener(download.url, http) as chunks:
            for chunk in chunks:
                writer.write(chunk)
                if progress:
                    progress(download.what, len(chunk))
    except BlobStatus as exc:
        raise FetchError(f"cannot download {download.what} from {source}: HTTP {exc.status} for "
                         f"{download.url}") from None
    except (httpx.DecodingError, httpx.TooManyRedirects, httpx.InvalidURL) as exc:
        # an answer that cannot be decoded (a corrupt gzip) will not decode on a retry either
        raise FetchError(f"cannot download {download.what} from {source}: the answer for "
                         f"{download.url} cannot be used: {str(exc)[:300] or type(exc).__name__}",
                         hint="tell the registry's operator (or the proxy's, if one is in the way)") from None
    except LeavesFolder as exc:
        raise FetchError(f"{download.what}: {source} names {exc}", hint="tell the registry's operator") from None
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        if not local:
            raise
        raise FetchError(f"{download.what}: {source} has no blob {download.digest} "
                         f"({unquote(urlsplit(download.url).path)})",
                         hint="the registry is incomplete; tell its operator") from None
    except NotRegularFile as exc:
        raise FetchError(f"{download.what}: {source}'s blob {unquote(urlsplit(download.url).path)} is {exc}, "
                         f"not a regular file",
                         hint="a folder registry is read from regular files only: tell its operator") from None
    except OSError as exc:  # the store's own write errors are StoreErrors: this is the registry's file
        if not local:
            raise
        raise FetchError(f"{download.what}: {source}'s blob {unquote(urlsplit(download.url).path)} cannot be "
                         f"read: {exc.strerror or exc}") from None
