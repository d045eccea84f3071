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

from cspm.errors import CspmError
from cspm.index.query import NAMES_FILE
from cspm_registry.storage import Storage, render_config, render_names


class ExportError(CspmError):
    pass


def export(storage: Storage, out: Path, name: str) -> dict[str, int]:
    """Write the static layout to `out`; returns what was written (for the CLI to report)."""
    out = out.resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "config.json").is_file())):
        raise ExportError(f"{out} exists and is not an index folder: refusing to replace it",
                          hint="export to a new folder, or to a previous export")
    lines, policy = storage.snapshot()  # one snapshot: every line's blob and bundle are in place before its row
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        _write(staging / "config.json", render_config(name, None, policy))
        files: dict[str, list[str]] = {}
        for package, line in lines:
            files.setdefault(package, []).append(line)
        for package, package_lines in files.items():
            _write(staging / "index" / package, "".join(line + "\n" for line in package_lines).encode())
        _write(staging / NAMES_FILE, render_names(line for _, line in lines))
        digests = sorted({json.loads(line)["digest"].split(":", 1)[1] for _, line in lines})
        for hexdigest in digests:
            _copy(storage.blobs / hexdigest, staging / "blobs" / "sha256" / hexdigest)
        bundles = sorted({bundle for _, line in lines
                          if (bundle := (json.loads(line).get("signature") or {}).get("bundle"))})
        for bundle in bundles:
            _copy(storage.data / bundle, staging / bundle)
        for folder in (staging, *(p for p in staging.rglob("*") if p.is_dir())):
            os.chmod(folder, 0o755)  # whatever the umask
        _swap(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"packages": len(files), "versions": len(lines), "blobs": len(digests), "bundles": len(bundles)}


def _write(path: Path, data: bytes) -> None:
    _mkdirs(path.parent)
    path.write_bytes(data)
    os.chmod(path, 0o644)  # served to everyone, like any web root


def _copy(source: Path, target: Path) -> None:
    _mkdirs(target.parent)
    shutil.copyfile(source, target)
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
