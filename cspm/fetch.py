"""Downloads into the store: parallel, retried, size-capped, verified before they count.

Every blob is streamed into a store writer that hashes as it goes; the announced size caps it, the
digest must match, and a module must pass the interface check against its index entry, all before
the atomic rename. A failure names the package and the registry, and leaves nothing behind.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
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
                raise FetchError(f"{first.message} (and {len(failed) - 1} more download(s) failed)", first.hint)
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


def _copy(download: Download, writer: BlobWriter, http: httpx.Client, progress: Progress | None) -> None:
    parts = urlsplit(download.url)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
        try:
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(CHUNK), b""):
                    writer.write(chunk)
                    if progress:
                        progress(download.what, len(chunk))
        except FileNotFoundError:
            raise FetchError(f"{download.what}: registry {download.registry} has no blob {download.digest} "
                             f"({path})", hint="the registry is incomplete; tell its operator") from None
        return
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
    except Exception as exc:
        import httpx

        if not isinstance(exc, httpx.TransportError):
            raise
        raise _Retryable(str(exc) or type(exc).__name__) from None
