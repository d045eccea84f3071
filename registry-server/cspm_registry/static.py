"""The write-through static tree (`serve --static s3://BUCKET/PREFIX` or `--static DIR`): crates.io-style reads.

After every change it commits (publish, yank, trust), a replica writes the files that change —
`index/<ns>/<name>`, `names`, `config.json` (rendered by `cspm.protocol.layout`, the very bytes the
API serves) and a new signature bundle — to a bucket or a folder, so that nginx, a CDN or any
static host answers every read, and the replicas answer only writes.

**Never an older rendering over a newer one.** Every file is written with the generation of the
snapshot it was rendered from (`MetadataStore.state`: one snapshot gives the rows and the
generation). A file is replaced only if the generation stored with it is lower:

- on S3, the generation is the object's metadata (`x-amz-meta-cspm-generation`); a writer HEADs the
  object, and PUTs with `If-Match: <the ETag it saw>` (`If-None-Match: *` for a new file), so two
  replicas writing at once cannot both pass: the loser's 412 makes it HEAD again, and it then finds
  the newer generation and stops (or, if its own is newer still, replaces it);
- in a folder, under a file lock (`.cspm-static.lock`), with the generations in `.cspm-static.json`,
  each file written to a temporary file and renamed over (a reader sees the old file or the new).

So whatever order replicas finish in, each file ends as the rendering of the newest generation that
changed it. Bundles are immutable (named by their sha256): written once, never replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock

from cspm import atomicfile
from cspm.errors import StorageError
from cspm.protocol import layout
from cspm_registry.blobs_s3 import S3Location, guarded, s3_client, status_of
from cspm_registry.metadata import Unavailable

GENERATION_META = "cspm-generation"  # x-amz-meta-cspm-generation
STATE_FILE = ".cspm-static.json"
LOCK_FILE = ".cspm-static.lock"
MAX_RACES = 20  # conditional writes lost in a row before giving up (each loss means another replica wrote)
WHAT = "the static tree"
CONTENT_TYPES = {layout.CONFIG_FILE: "application/json", layout.NAMES_FILE: "text/plain; charset=utf-8"}


def checked(path: str) -> str:
    """A path of the static layout: plain parts, none hidden, none `..` (a file never lands elsewhere)."""
    parts = path.split("/")
    if not path or any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        raise ValueError(f"not a static tree path: {path[:100]!r}")
    return path


def content_type(path: str) -> str:
    if path.startswith(layout.BUNDLES_DIR):
        return "application/json"
    return CONTENT_TYPES.get(path, "text/plain; charset=utf-8")


class StaticTarget(Protocol):
    """Where the static tree is written; `write` keeps the newest generation of each file."""

    where: str

    def write(self, path: str, body: bytes, generation: int) -> bool:
        """Replace `path` with `body` unless a rendering of `generation` or newer is there; True if written."""
        ...

    def write_once(self, path: str, body: bytes) -> bool:
        """An immutable file (a bundle): written if absent; True if written."""
        ...


def target_for(spec: str, endpoint: str | None) -> StaticTarget:
    """`s3://bucket/prefix` or a folder path."""
    if spec.startswith("s3://"):
        return S3Static(spec, endpoint)
    if "://" in spec:
        raise StorageError(f"--static {spec[:200]!r}: use s3://BUCKET/PREFIX or a folder path")
    return FolderStatic(Path(spec))


class S3Static:
    """The tree in a bucket under a prefix: generations in object metadata, conditional PUTs."""

    def __init__(self, url: str, endpoint: str | None = None) -> None:
        self.location = S3Location(url)
        self.client = s3_client(endpoint)
        self.where = self.location.url

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return dict(self.client.head_object(Bucket=self.location.bucket, Key=key))
        except ClientError as exc:
            if status_of(exc) == 404:
                return None
            raise

    def _put(self, key: str, path: str, body: bytes, condition: dict[str, str], generation: int | None) -> bool:
        """One conditional PUT; False when the condition failed (another writer was first)."""
        from botocore.exceptions import ClientError

        extra: dict[str, Any] = {"Metadata": {GENERATION_META: str(generation)}} if generation is not None else {}
        cache = "public, max-age=31536000, immutable" if generation is None else "no-cache"
        try:
            self.client.put_object(Bucket=self.location.bucket, Key=key, Body=body, ContentType=content_type(path),
                                   CacheControl=cache, **condition, **extra)
            return True
        except ClientError as exc:
            if status_of(exc) in (409, 412):
                return False
            raise

    def write(self, path: str, body: bytes, generation: int) -> bool:
        key = self.location.key(checked(path))

        def work() -> bool:
            for _ in range(MAX_RACES):
                head = self._head(key)
                if head is not None:
                    stored = (head.get("Metadata") or {}).get(GENERATION_META, "")
                    if stored.isdecimal() and int(stored) >= generation:
                        return False
                condition = {"IfMatch": head["ETag"]} if head is not None else {"IfNoneMatch": "*"}
                if self._put(key, path, body, condition, generation):
                    return True
            raise Unavailable(f"{WHAT} ({self.where}): {path} kept changing under {MAX_RACES} writes")

        return guarded(self.where, work, WHAT)

    def write_once(self, path: str, body: bytes) -> bool:
        key = self.location.key(checked(path))
        return guarded(self.where, lambda: self._put(key, path, body, {"IfNoneMatch": "*"}, None), WHAT)


class FolderStatic:
    """The tree in a folder (served by nginx or any web server): a file lock, generations in a dotfile,
    each file renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.where = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            os.chmod(self.root, 0o755)
        except OSError as exc:
            raise StorageError(f"--static {root}: cannot make the folder ({exc.strerror or exc})") from None
        # polled every millisecond (filelock's default, 50 ms, would cost a replica up to 50 ms per wait)
        self.lock = FileLock(str(self.root / LOCK_FILE), poll_interval=0.001)

    def _file(self, path: str) -> Path:
        return self.root.joinpath(*checked(path).split("/"))

    def _generations(self) -> dict[str, int]:
        try:
            data = json.loads((self.root / STATE_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, int)} \
            if isinstance(data, dict) else {}

    def write(self, path: str, body: bytes, generation: int) -> bool:
        target = self._file(path)
        try:
            with self.lock:
                generations = self._generations()
                if generations.get(path, -1) >= generation:
                    return False
                self._write(target, body)
                generations[path] = generation
                atomicfile.write(self.root / STATE_FILE, json.dumps(generations, sort_keys=True), mode=0o644)
                return True
        except OSError as exc:
            raise Unavailable(f"{WHAT} ({self.where}) cannot be written: {exc}") from None

    def write_once(self, path: str, body: bytes) -> bool:
        target = self._file(path)
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == \
                hashlib.sha256(body).hexdigest():
            return False
        try:
            with self.lock:
                self._write(target, body)
            return True
        except OSError as exc:
            raise Unavailable(f"{WHAT} ({self.where}) cannot be written: {exc}") from None

    def _write(self, target: Path, body: bytes) -> None:
        for folder in reversed([p for p in target.parents if p != self.root and self.root in p.parents]):
            if not folder.is_dir():
                folder.mkdir(exist_ok=True)
                os.chmod(folder, 0o755)
        atomicfile.write(target, body, mode=0o644)
