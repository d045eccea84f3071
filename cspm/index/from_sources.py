"""`cspm index build`: a whole static registry from plug-in and app source folders, reproducibly.

Same sources, same bytes: no timestamps, canonical JSON, sorted files, and app packages locked
against the index being built (so an app's lock pins exactly the modules beside it).

It never deletes what it did not write. A new or empty `--out` gets a fresh registry (built in a
staging folder, then renamed into place). An existing registry is added to: versions already there
are kept, a version already there with the same bytes is left alone, and one with other bytes is
refused (versions are immutable) unless `replace` rebuilds the registry from these sources alone,
after saying what disappears. A folder that is not a registry, or one holding the sources, is refused.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cspm import apppkg, models
from cspm.errors import IndexBuildError
from cspm.formats import app as app_format
from cspm.formats import bounded_json
from cspm.formats import lock as lock_format
from cspm.formats import manifest as manifest_format
from cspm.formats.index_line import MAX_LINE_BYTES
from cspm.formats.lock import Lock
from cspm.formats.manifest import Manifest
from cspm.formats.userconfig import Registry, UserConfig
from cspm.index.build import _atomic, add_line, index_line
from cspm.index.federation import Federation
from cspm.install import lock_app
from cspm.protocol import kinds, layout
from cspm.protocol.layout import CONFIG_FILE, INDEX_DIR, NAMES_FILE

Note = Callable[[str], None]


@dataclass
class Built:
    out: Path
    lines: list[dict[str, Any]] = field(default_factory=list)
    locks_written: list[Path] = field(default_factory=list)
    locks: list[Lock] = field(default_factory=list)  # every app's lock, fresh from this build
    conflicts: list[str] = field(default_factory=list)  # versions the registry has with other bytes

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
    return sorted(found, key=lambda m: (kinds.of(m.kind).payload == "app", m.name, m.version))


def run_builds(manifests: list[Manifest], note: Note) -> None:
    for manifest in manifests:
        script = manifest.folder / "build.sh"
        if kinds.of(manifest.kind).payload == "app" or not script.is_file():
            continue
        note(f"building {manifest.name} ({script})")
        result = subprocess.run(["bash", str(script)], capture_output=True, text=True)
        if result.returncode != 0:
            raise IndexBuildError(f"{script} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")


def build(sources: list[Path], out: Path, *, name: str = "chainsocket", run_build: bool = False,
          write_locks: bool = True, note: Note | None = None, replace: bool = False) -> Built:
    note = note or (lambda message: None)
    out = out.resolve()
    for source in sources:
        if source.resolve() == out or out in source.resolve().parents or source.resolve() in out.parents:
            raise IndexBuildError(f"the source {source} and --out {out} overlap: writing the registry would "
                                  f"overwrite the sources", hint="write the registry to a folder of its own")
    existing = _existing_registry(out, replace)
    manifests = discover(sources)
    if run_build:
        run_builds(manifests, note)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        if existing and not replace:
            _copy_index(out, staging)  # its versions stay, and apps may lock against them
        built = _build_into(staging, manifests, name, write_locks, note, keep_config=existing and not replace)
        if not existing:
            _swap(staging, out)
        elif replace:
            for gone in _disappearing(out, staging):
                note(f"replacing: {gone}")
            _swap(staging, out)
        else:
            _merge(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    built.out = out
    return built


REGISTRY_ENTRIES = layout.ENTRIES


def _existing_registry(out: Path, replace: bool) -> bool:
    """True for a cspm registry, False for a missing or empty folder; IndexBuildError for anything else,
    and for a registry holding files cspm did not write when `replace` would delete them."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise IndexBuildError(f"--out {out} is a file, not a folder")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return False
    foreign = [e for e in entries if e not in REGISTRY_ENTRIES]

    def shown(names: list[str]) -> str:
        return ", ".join(names[:8]) + (" …" if len(names) > 8 else "")

    if not (out / CONFIG_FILE).is_file():
        raise IndexBuildError(f"--out {out} is not empty and is not a cspm registry (it holds {shown(entries)}); "
                              f"nothing was written", hint="write the registry to a new or empty folder, or to an "
                                                          "existing registry to add to it")
    if replace and foreign:
        raise IndexBuildError(f"--replace would delete files of {out} that cspm did not write ({shown(foreign)}); "
                              f"nothing was written", hint="move them out first, or add to the registry without "
                                                          "--replace")
    return True


def _copy_index(out: Path, staging: Path) -> None:
    """The registry's text files (not its blobs): what resolution and conflict checks read."""
    for relative in (CONFIG_FILE, NAMES_FILE):
        if (out / relative).is_file():
            shutil.copy2(out / relative, staging / relative)
    if (out / INDEX_DIR).is_dir():
        shutil.copytree(out / INDEX_DIR, staging / INDEX_DIR)


def _digests(index_file: Path) -> dict[str, str]:
    """version -> digest of one index file's lines (a line that does not read is skipped)."""
    found: dict[str, str] = {}
    if not index_file.is_file():
        return found
    for raw in index_file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            line = bounded_json.loads(raw, max_bytes=MAX_LINE_BYTES)
            found[str(line["version"])] = str(line["digest"])
        except (ValueError, KeyError, TypeError):
            continue
    return found


def _lines(root: Path) -> dict[tuple[str, str], str]:
    """(name, version) -> digest of every line in a folder registry."""
    return {(f"{path.parent.name}/{path.name}", version): digest
            for path in sorted((root / INDEX_DIR).glob("*/*"))
            for version, digest in _digests(path).items()}


def _disappearing(out: Path, staging: Path) -> list[str]:
    before, after = _lines(out), _lines(staging)
    return ([f"{n} {v} is dropped (not in the sources)" for (n, v) in sorted(set(before) - set(after))]
            + [f"{n} {v} changes from {before[(n, v)][:19]}… to {after[(n, v)][:19]}…"
               for (n, v) in sorted(set(before) & set(after)) if before[(n, v)] != after[(n, v)]])


def _merge(staging: Path, out: Path) -> None:
    """Add the staging folder's new files to the registry: blobs first, then index files and `names`,
    each replaced whole, so a reader never finds a line without its blob."""
    for folder in ("blobs", "bundles"):
        for path in sorted((staging / folder).rglob("*")) if (staging / folder).is_dir() else ():
            target = out / path.relative_to(staging)
            if path.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                _atomic(target, path.read_bytes())
    for path in sorted((staging / INDEX_DIR).glob("*/*")):
        target = out / path.relative_to(staging)
        if not target.exists() or target.read_bytes() != path.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            _atomic(target, path.read_bytes())
    if (staging / NAMES_FILE).is_file():
        _atomic(out / NAMES_FILE, (staging / NAMES_FILE).read_bytes())


def _build_into(root: Path, manifests: list[Manifest], name: str, write_locks: bool, note: Note,
                keep_config: bool = False) -> Built:
    built = Built(root)
    if not keep_config:
        _atomic(root / CONFIG_FILE, layout.render_config(name))
    for manifest in manifests:
        payload = kinds.of(manifest.kind).payload
        if payload == "app":
            continue  # after every module: an app's lock resolves against them
        if payload == "file":
            built.lines.append(_add_file_package(root, manifest, built))
            note(f"added {manifest.kind} {manifest.name} {manifest.version}")
            continue
        try:
            module = manifest.wasm.read_bytes()
        except FileNotFoundError:
            raise IndexBuildError(f"{manifest.name}: {manifest.wasm} does not exist",
                                  hint="build the plug-ins first (or pass --build)") from None
        built.lines.append(_add(root, index_line(manifest, module), module, built))
        note(f"added {manifest.name} {manifest.version} ({len(module):,} bytes)")
    config = UserConfig(root / "config.yaml", [Registry(name, root.as_uri())], exists=False)
    federation = Federation(config)
    try:
        for manifest in manifests:
            if kinds.of(manifest.kind).payload == "app":
                line, lock = _add_app(root, manifest, federation, built)
                built.lines.append(line)
                built.locks.append(lock)
                if write_locks and _write_lock_if_changed(lock):
                    built.locks_written.append(lock.path)
                note(f"added app {manifest.name} {manifest.version}")
    finally:
        federation.close()
    if built.conflicts:
        shown = "; ".join(built.conflicts[:10]) + (f" (and {len(built.conflicts) - 10} more)"
                                                   if len(built.conflicts) > 10 else "")
        raise IndexBuildError(f"the registry already has other bytes for: {shown}; nothing was written",
                              hint="versions are immutable: bump `version` in those plugin.yaml files; or rebuild "
                                   "the registry from these sources alone with `cspm index build ... --replace` "
                                   "(it lists what disappears)")
    return built


def _add(root: Path, line: dict[str, Any], blob: bytes, built: Built) -> dict[str, Any]:
    """Add a version unless the registry has it: the same bytes are left alone, other bytes are a
    conflict (collected, then refused whole)."""
    old = _digests(root / layout.index_path(line["name"])).get(line["version"])
    if old is None:
        add_line(root, line, blob)
    elif old != line["digest"]:
        built.conflicts.append(f"{line['name']} {line['version']} (it has {old[:19]}…, "
                               f"the sources give {line['digest'][:19]}…)")
    return line


def _add_app(root: Path, manifest: Manifest, federation: Federation, built: Built) -> tuple[dict[str, Any], Lock]:
    app = app_format.load(manifest.wasm)
    lock = lock_app(app, federation)
    bundle = apppkg.pack(app, lock)
    line = apppkg.index_line(manifest, bundle)
    _add(root, line, bundle, built)
    return line, lock


def _add_file_package(root: Path, manifest: Manifest, built: Built) -> dict[str, Any]:
    """A model (GGUF) or data file, checked like an install checks it."""
    try:
        blob = manifest.wasm.read_bytes()
    except FileNotFoundError:
        raise IndexBuildError(f"{manifest.name}: {manifest.wasm} does not exist") from None
    return _add(root, models.package_line(manifest, blob), blob, built)


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
