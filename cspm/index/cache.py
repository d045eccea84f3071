"""On-disk cache of index files per registry, with the validators needed to revalidate them.

`<cache>/index/<registry>/<path>` holds the body and `<path>.meta.json` its ETag / Last-Modified;
both are replaced atomically, so a crash leaves the previous copy. Writing is best effort: a cache
that cannot be written (a full disk, a read-only folder) costs a refetch next time, never the command.
Reading is as careful as reading a registry: a meta file that is not what `put` writes (nested,
huge, other types) counts as no cached copy, never as a crash.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from cspm import atomicfile
from cspm.cachedir import Bucket
from cspm.formats import bounded_json

MAX_META = 64 * 1024
TOUCH_EVERY_S = 3600.0


@dataclass(frozen=True)
class Cached:
    body: bytes | None  # None: the registry answered that the file does not exist
    etag: str | None
    last_modified: str | None
    fetched: float


class IndexCache:
    def __init__(self, registry: str, root: Path | None = None) -> None:
        self.root = (root or Bucket.INDEX.path()) / registry

    def _paths(self, relpath: str) -> tuple[Path, Path]:
        body = self.root / relpath  # relpath is built from checked names only
        return body, body.with_name(body.name + ".meta.json")

    def get(self, relpath: str) -> Cached | None:
        body_path, meta_path = self._paths(relpath)
        try:
            with meta_path.open("rb") as handle:
                meta = bounded_json.loads(handle.read(MAX_META + 1), max_bytes=MAX_META)
            body = body_path.read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict):
            return None
        etag, modified, fetched = meta.get("etag"), meta.get("last_modified"), meta.get("fetched", 0)
        if not (isinstance(etag, str | None) and isinstance(modified, str | None)
                and isinstance(fetched, int | float) and not isinstance(fetched, bool)):
            return None
        return Cached(None if meta.get("missing") else body, etag, modified, float(fetched))

    def put(self, relpath: str, body: bytes | None, etag: str | None, last_modified: str | None) -> None:
        body_path, meta_path = self._paths(relpath)
        meta = {"etag": etag, "last_modified": last_modified, "fetched": time.time(), "missing": body is None}
        try:
            body_path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(body_path, body or b"")
            _atomic_write(meta_path, json.dumps(meta).encode())
        except OSError:  # the meta names no validator for a body that was not replaced: drop both
            with contextlib.suppress(OSError):
                meta_path.unlink(missing_ok=True)

    def touch(self, relpath: str, cached: Cached | None = None) -> None:
        """A 304: the copy is still good as of now (`cached`: the copy as `get` just read it).

        `fetched` is moved on at most once every TOUCH_EVERY_S: rewriting the meta file on every 304
        was ~40 % of a warm lock over HTTP (a temp file and a rename per index file), and nothing
        needs it more precise than that (it is informative; revalidation never depends on it)."""
        cached = cached if cached is not None else self.get(relpath)
        if cached is not None and time.time() - cached.fetched >= TOUCH_EVERY_S:
            _, meta_path = self._paths(relpath)
            meta = {"etag": cached.etag, "last_modified": cached.last_modified, "fetched": time.time(),
                    "missing": cached.body is None}
            with contextlib.suppress(OSError):
                _atomic_write(meta_path, json.dumps(meta).encode())


def _atomic_write(path: Path, data: bytes) -> None:
    atomicfile.write(path, data, durable=False)  # a cache: may be lost, never torn
