"""`export`: the whole registry as plain files, the layout `cspm index build` writes.

Any static host, object store or CDN can then serve reads; the write API stays on one node. The
files are those the server serves (same rendering), from one database snapshot, written to a
staging folder beside OUT and swapped in with renames, so a reader sees the old export or the new.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from cspm.errors import ExportError
from cspm.protocol import layout
from cspm_registry.storage import Storage


def export(storage: Storage, out: Path, name: str) -> dict[str, int]:
    """Write the static layout to `out`; returns what was written (for the CLI to report)."""
    out = out.resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / layout.CONFIG_FILE).is_file())):
        raise ExportError(f"{out} exists and is not an index folder: refusing to replace it",
                          hint="export to a new folder, or to a previous export")
    rows, policy = storage.snapshot()  # one snapshot: every line's blob and bundle are in place before its row
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        _write(staging / layout.CONFIG_FILE, layout.render_config(name, None, policy))
        files: dict[str, list[str]] = {}
        for row in rows:
            files.setdefault(row.name, []).append(row.line)
        for package, package_lines in files.items():
            _write(staging / layout.index_path(package), layout.render_index(package_lines))
        _write(staging / layout.NAMES_FILE, layout.render_names(row.line for row in rows))
        digests = sorted({layout.blob_path(json.loads(row.line)["digest"]) for row in rows})
        bundles = sorted({bundle for row in rows
                          if (bundle := (json.loads(row.line).get("signature") or {}).get("bundle"))})
        for key in (*digests, *bundles):
            _copy(storage, key, staging / key)
        for folder in (staging, *(p for p in staging.rglob("*") if p.is_dir())):
            os.chmod(folder, 0o755)  # whatever the umask
        _swap(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"packages": len(files), "versions": len(rows), "blobs": len(digests), "bundles": len(bundles)}


def _write(path: Path, data: bytes) -> None:
    _mkdirs(path.parent)
    path.write_bytes(data)
    os.chmod(path, 0o644)  # served to everyone, like any web root


def _copy(storage: Storage, key: str, target: Path) -> None:
    """A blob or bundle out of the blob store (streamed: a model can be large)."""
    source = storage.blob_store.open(key)
    if source is None:
        raise ExportError(f"{key} is named by a published version but missing from the blob store",
                          hint="the data dir is damaged: restore it from a backup")
    _mkdirs(target.parent)
    with source, target.open("wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    os.chmod(target, 0o644)


def _mkdirs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)


def _swap(staging: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)
