"""`cspm cache`: what is in the cache dir, and removing it safely.

The cache holds only what can be fetched or rebuilt again: the store's blobs, compiled modules,
index files, unpacked app packages, mounted models and data, signature verdicts. Plug-in memory (kv)
lives in the data dir and is never touched.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from cspm import paths
from cspm.store import Store

PARTS = {
    "blobs": "plug-in modules, app packages and models, by digest",
    "compiled": "compiled modules, per Extism version",
    "index": "registry index files, with their ETags",
    "apps": "published apps, unpacked",
    "models": "stored models, linked for mounting (re-made when missing)",
    "data": "stored data packages, linked for mounting (re-made when missing)",
    "verdicts": "signature verdicts (checked again when missing)",
    "call": "temporary apps of `cspm call`",
}


@dataclass(frozen=True)
class Part:
    name: str
    path: Path
    files: int
    bytes: int
    what: str


def _size(path: Path) -> tuple[int, int]:
    files = total = 0
    if path.is_dir():
        for item in path.rglob("*"):
            if item.is_file():
                files += 1
                total += item.stat().st_size
    return files, total


def part_path(name: str, root: Path | None = None) -> Path:
    root = root or paths.cache_dir()
    return root / "store" / "blobs" if name == "blobs" else root / name


def usage(root: Path | None = None) -> list[Part]:
    return [Part(name, part_path(name, root), *_size(part_path(name, root)), what) for name, what in PARTS.items()]


def clean(parts: list[str] | None = None, root: Path | None = None) -> list[Part]:
    """Remove the named parts (all by default); returns what was removed."""
    removed = []
    for part in usage(root):
        if parts and part.name not in parts:
            continue
        if part.path.exists():
            _remove_tree(part.path)
        removed.append(part)
    if not parts or "blobs" in parts:
        Store(root / "store" if root else None).sweep_tmp()
    return removed


def _remove_tree(path: Path) -> None:
    """Rename first, then delete: a reader sees the old tree or none, never half of one."""
    graveyard = path.with_name(f".{path.name}.removing")
    shutil.rmtree(graveyard, ignore_errors=True)
    path.rename(graveyard)
    shutil.rmtree(graveyard, ignore_errors=True)
