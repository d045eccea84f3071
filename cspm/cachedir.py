"""The cache dir's one layout: a `Bucket` per kind of thing kept, and removing them safely.

The cache holds only what can be fetched or rebuilt again: the store's blobs, compiled modules,
index files, unpacked app packages, mounted models and data, signature verdicts, `cspm call`'s
temporary apps. Every module that writes under the cache dir asks its bucket for the folder
(`Bucket.MODELS.path()`), and `cspm cache ls|clean` iterate the enum, so a new bucket cannot be
missed by `clean` (which once left `models/` behind, and with it the hard-linked GGUFs' disk space).
Plug-in memory (kv) lives in the data dir and is never touched.

Each bucket has a format version. Version 1 is the bare folder name cspm has always used (so no
user's cache is orphaned by this layout); version N > 1 is `NAME-vN`. A module that changes what it
writes bumps its bucket's version: the new cspm never reads the old format, and `cspm cache clean`
removes the folders of the earlier versions (`legacy`) with the bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cspm import paths


@dataclass(frozen=True)
class Layout:
    part: str  # the name `cspm cache ls|clean` show and take
    base: str  # the folder's name at version 1
    version: int
    what: str
    inner: str = ""  # what `ls` counts and `clean` removes inside the folder ("": all of it)

    @property
    def folder(self) -> str:
        return self.base if self.version == 1 else f"{self.base}-v{self.version}"

    @property
    def legacy(self) -> tuple[str, ...]:
        """The folders of earlier versions, which nothing reads any more."""
        return tuple(self.base if v == 1 else f"{self.base}-v{v}" for v in range(1, self.version))


class Bucket(Enum):
    STORE = Layout("blobs", "store", 1, "plug-in modules, app packages and models, by digest", inner="blobs")
    COMPILED = Layout("compiled", "compiled", 1, "compiled modules, per Extism version")
    INDEX = Layout("index", "index", 1, "registry index files, with their ETags")
    APPS = Layout("apps", "apps", 1, "published apps, unpacked")
    MODELS = Layout("models", "models", 1, "stored models, linked for mounting (re-made when missing)")
    DATA = Layout("data", "data", 1, "stored data packages, linked for mounting (re-made when missing)")
    VERDICTS = Layout("verdicts", "verdicts", 1, "signature verdicts (checked again when missing)")
    CALL = Layout("call", "call", 1, "temporary apps of `cspm call`")
    PLANS = Layout("plans", "plans", 1, "run plans of local apps, by the bytes they were made from (warm `cspm run`)")

    @property
    def layout(self) -> Layout:
        value: Layout = self.value
        return value

    @property
    def part(self) -> str:
        return self.layout.part

    def path(self, root: Path | None = None) -> Path:
        """The bucket's folder under the cache dir (`root` in tests and `cspm cache`)."""
        return (root or paths.cache_dir()) / self.layout.folder

    @classmethod
    def named(cls, part: str) -> Bucket:
        """The bucket `cspm cache clean PART` names; KeyError for none."""
        for bucket in cls:
            if bucket.part == part:
                return bucket
        raise KeyError(part)


PARTS: dict[str, str] = {bucket.part: bucket.layout.what for bucket in Bucket}


@dataclass(frozen=True)
class Part:
    name: str
    path: Path
    files: int
    bytes: int
    what: str
    version: int = 1


def _size(*folders: Path) -> tuple[int, int]:
    files = total = 0
    for path in folders:
        if path.is_dir():
            for item in path.rglob("*"):
                if item.is_file():
                    files += 1
                    total += item.stat().st_size
    return files, total


def _counted(bucket: Bucket, root: Path | None) -> list[Path]:
    """What `ls` counts and `clean` removes: the bucket's folder (or its `inner` part) and the
    folders of its earlier versions."""
    base = root or paths.cache_dir()
    here = bucket.path(root)
    return [here / bucket.layout.inner if bucket.layout.inner else here,
            *(base / old for old in bucket.layout.legacy)]


def usage(root: Path | None = None) -> list[Part]:
    parts = []
    for bucket in Bucket:
        counted = _counted(bucket, root)
        parts.append(Part(bucket.part, counted[0], *_size(*counted), bucket.layout.what, bucket.layout.version))
    return parts


def clean(parts: list[str] | None = None, root: Path | None = None) -> list[Part]:
    """Remove the named parts (all by default); returns what was removed."""
    from cspm.store import Store  # the store places itself with this module

    removed = []
    for bucket, part in zip(Bucket, usage(root), strict=True):
        if parts and part.name not in parts:
            continue
        for folder in _counted(bucket, root):
            if folder.exists():
                _remove_tree(folder)
        removed.append(part)
    if not parts or Bucket.STORE.part in parts:
        Store(Bucket.STORE.path(root) if root else None).sweep_tmp()
    return removed


def _remove_tree(path: Path) -> None:
    """Rename first, then delete: a reader sees the old tree or none, never half of one."""
    import shutil  # here: every warm run imports this module, and only `clean` removes

    graveyard = path.with_name(f".{path.name}.removing")
    shutil.rmtree(graveyard, ignore_errors=True)
    path.rename(graveyard)
    shutil.rmtree(graveyard, ignore_errors=True)
