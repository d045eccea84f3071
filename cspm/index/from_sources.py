"""`cspm index build`: a whole static registry from plug-in and app source folders, reproducibly.

Same sources, same bytes: no timestamps, canonical JSON, sorted files, and app packages locked
against the index being built (so an app's lock pins exactly the modules beside it). The new index
is written to a staging folder and swapped in with renames: a reader sees the old index or the new.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cspm import apppkg, models
from cspm.errors import CspmError
from cspm.formats import app as app_format
from cspm.formats import lock as lock_format
from cspm.formats import manifest as manifest_format
from cspm.formats.lock import Lock
from cspm.formats.manifest import Manifest
from cspm.formats.userconfig import Registry, UserConfig
from cspm.index.build import _atomic, add_line, add_to_folder
from cspm.index.federation import Federation
from cspm.install import lock_app
from cspm.store import digest_of

Note = Callable[[str], None]


class IndexBuildError(CspmError):
    pass


@dataclass
class Built:
    out: Path
    lines: list[dict[str, Any]] = field(default_factory=list)
    locks_written: list[Path] = field(default_factory=list)
    locks: list[Lock] = field(default_factory=list)  # every app's lock, fresh from this build

    def stale_locks(self) -> list[str]:
        """App locks in the sources that differ from the ones this build packed."""
        return [str(lock.path) for lock in self.locks
                if not lock.path.exists() or lock.path.read_text(encoding="utf-8") != lock_format.dump(lock)]


def discover(sources: list[Path]) -> list[Manifest]:
    """Every plugin.yaml in `sources` (a folder with one, or a folder of such folders), sorted by name."""
    found: list[Manifest] = []
    for source in sources:
        if not source.is_dir():
            raise IndexBuildError(f"{source} is not a folder")
        if (source / manifest_format.MANIFEST_FILE).is_file():
            found.append(manifest_format.load(source))
            continue
        for child in sorted(source.iterdir()):
            if (child / manifest_format.MANIFEST_FILE).is_file():
                manifest = manifest_format.load(child)
                if manifest.raw.get("publish", True):  # `publish: false` keeps fixtures out of folder scans
                    found.append(manifest)
    seen: dict[tuple[str, str], Path] = {}
    for manifest in found:
        key = (manifest.name, str(manifest.version))
        if key in seen:
            raise IndexBuildError(f"{manifest.name} {manifest.version} is defined twice: in {seen[key]} and "
                                  f"{manifest.folder}", hint="bump one of the versions")
        seen[key] = manifest.folder
    return sorted(found, key=lambda m: (m.kind == "app", m.name, m.version))


def run_builds(manifests: list[Manifest], note: Note) -> None:
    for manifest in manifests:
        script = manifest.folder / "build.sh"
        if manifest.kind == "app" or not script.is_file():
            continue
        note(f"building {manifest.name} ({script})")
        result = subprocess.run(["bash", str(script)], capture_output=True, text=True)
        if result.returncode != 0:
            raise IndexBuildError(f"{script} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")


def build(sources: list[Path], out: Path, *, name: str = "chainsocket", run_build: bool = False,
          write_locks: bool = True, note: Note | None = None) -> Built:
    note = note or (lambda message: None)
    manifests = discover(sources)
    if run_build:
        run_builds(manifests, note)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        built = _build_into(staging, manifests, name, write_locks, note)
        _swap(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    built.out = out
    return built


def _build_into(root: Path, manifests: list[Manifest], name: str, write_locks: bool, note: Note) -> Built:
    built = Built(root)
    _atomic(root / "config.json", (json.dumps({"name": name, "dl": "blobs/sha256/{hex}", "api": None},
                                              sort_keys=True) + "\n").encode())
    for manifest in manifests:
        if manifest.kind == "app":
            continue
        if manifest.kind in ("model", "data"):
            built.lines.append(_add_file_package(root, manifest))
            note(f"added {manifest.kind} {manifest.name} {manifest.version}")
            continue
        try:
            module = manifest.wasm.read_bytes()
        except FileNotFoundError:
            raise IndexBuildError(f"{manifest.name}: {manifest.wasm} does not exist",
                                  hint="build the plug-ins first (or pass --build)") from None
        built.lines.append(add_to_folder(root, manifest, module))
        note(f"added {manifest.name} {manifest.version} ({len(module):,} bytes)")
    config = UserConfig(root / "config.yaml", [Registry(name, root.as_uri())], exists=False)
    federation = Federation(config)
    try:
        for manifest in manifests:
            if manifest.kind == "app":
                line, lock = _add_app(root, manifest, federation)
                built.lines.append(line)
                built.locks.append(lock)
                if write_locks and _write_lock_if_changed(lock):
                    built.locks_written.append(lock.path)
                note(f"added app {manifest.name} {manifest.version}")
    finally:
        federation.close()
    return built


def _add_app(root: Path, manifest: Manifest, federation: Federation) -> tuple[dict[str, Any], Lock]:
    app = app_format.load(manifest.wasm)
    lock = lock_app(app, federation)
    bundle = apppkg.pack(app, lock)
    line = apppkg.index_line(manifest, bundle)
    add_line(root, line, bundle)
    return line, lock


def _add_file_package(root: Path, manifest: Manifest) -> dict[str, Any]:
    """A model (GGUF) or data file, checked like an install checks it."""
    try:
        blob = manifest.wasm.read_bytes()
    except FileNotFoundError:
        raise IndexBuildError(f"{manifest.name}: {manifest.wasm} does not exist") from None
    what = f"{manifest.name} {manifest.version}"
    if manifest.kind == "model":
        models.check_gguf(blob[:8], what)
    else:
        models.check_data(blob, what)
    line = models.index_line(manifest.name, str(manifest.version), digest_of(blob), len(blob), manifest.description,
                             kind=manifest.kind, file=manifest.wasm.name if manifest.kind == "data" else None)
    add_line(root, line, blob)
    return line


def _write_lock_if_changed(lock: Lock) -> bool:
    text = lock_format.dump(lock)
    if lock.path.exists() and lock.path.read_text(encoding="utf-8") == text:
        return False
    lock_format.write(lock)
    return True


def _swap(staging: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def compare(a: Path, b: Path) -> list[str]:
    """Files that differ between two index folders (relative paths), for `--check`."""
    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}

    left, right = files(a), files(b)
    differ = sorted(left ^ right)
    differ += sorted(p for p in left & right if not filecmp.cmp(a / p, b / p, shallow=False))
    return differ
