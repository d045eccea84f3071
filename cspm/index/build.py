"""Write the static index layout from plug-in sources: the bundled registry, tests, the server's export.

One function builds an index line from a manifest and its module (after the interface check), so
every producer of index lines writes the same, canonical, reproducible bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cspm import atomicfile
from cspm.errors import CspmError
from cspm.formats import bounded_json
from cspm.formats.index_line import from_dict, to_line
from cspm.formats.manifest import Manifest
from cspm.formats.names import parse_version
from cspm.index.query import MAX_NAMES_ROW
from cspm.protocol import layout
from cspm.protocol.layout import NAMES_FILE, names_line
from cspm.store import digest_of
from cspm.verify.interface import check_module, export_names, import_names


def index_line(manifest: Manifest, module: bytes, *, published: str | None = None,
               signature: dict[str, Any] | None = None) -> dict[str, Any]:
    # a module that imports WASI is recorded as needing it, so installs check it against that
    interface = check_module(module, f"{manifest.name} {manifest.version}", wasi_declared=True)
    uses_wasi = interface.uses_wasi
    line: dict[str, Any] = {
        "name": manifest.name, "version": str(manifest.version), "kind": manifest.kind, "abi": manifest.abi,
        "digest": digest_of(module), "size": len(module),
        "exports": export_names(interface), "imports": import_names(interface),
        "capabilities": {**manifest.capabilities, **({"wasi": True} if uses_wasi else {})},
        "dependencies": dict(manifest.dependencies), "signature": signature, "yanked": False,
    }
    for key in ("description",):
        if getattr(manifest, key):
            line[key] = getattr(manifest, key)
    if manifest.features:
        line["features"] = sorted(manifest.features)
    if manifest.config:
        line["config"] = manifest.config
    if manifest.secrets:
        line["secrets"] = {name: {k: v for k, v in vars(decl).items() if k != "name" and v not in (None, "", False)}
                           for name, decl in manifest.secrets.items()}
    if manifest.input_schema is not None:
        line["input_schema"] = manifest.input_schema
    if published:
        line["published"] = published
    from_dict(line, manifest.name, "index line")  # what we write must be what readers accept
    return line


def add_to_folder(root: Path, manifest: Manifest, module: bytes, **kwargs: Any) -> dict[str, Any]:
    """Add one version of a plug-in to a folder registry."""
    line = index_line(manifest, module, **kwargs)
    add_line(root, line, module)
    return line


def add_line(root: Path, line: dict[str, Any], blob_bytes: bytes) -> None:
    """Blob first, then the index line, then `names`: a reader never finds a line without its blob."""
    blob = root / layout.blob_path(line["digest"])
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        _atomic(blob, blob_bytes)
    index_file = root / layout.index_path(line["name"])
    index_file.parent.mkdir(parents=True, exist_ok=True)
    existing = index_file.read_bytes() if index_file.exists() else b""
    _atomic(index_file, existing + (to_line(line) + "\n").encode())
    update_names(root, line)
    config = root / layout.CONFIG_FILE
    if not config.exists():
        _atomic(config, layout.render_config("local"))


def update_names(root: Path, line: dict[str, Any]) -> None:
    """Rewrite the `names` row (for `cspm search`) of `line`'s package from its index file, by the one
    rule of `layout.best_lines` (the highest version not yanked), so a folder shows what a server shows."""
    path = root / NAMES_FILE
    rows: dict[str, str] = {}
    if path.exists():  # best effort, as `cspm search` reads it: a malformed row is dropped, never a crash
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = bounded_json.loads(raw, max_bytes=MAX_NAMES_ROW)
                name = row["name"]
                parse_version(row["latest"])
            except (ValueError, KeyError, TypeError, CspmError):
                continue
            if isinstance(name, str):
                rows[name] = raw
    index_file = root / layout.index_path(line["name"])
    lines = layout.readable_lines(index_file.read_bytes()) if index_file.is_file() else []
    best = layout.best_lines([known for known in lines if known["name"] == line["name"]] or [line])
    rows[line["name"]] = names_line(best[line["name"]])
    _atomic(path, "".join(rows[name] + "\n" for name in sorted(rows)).encode())


def _atomic(path: Path, data: bytes) -> None:
    atomicfile.write(path, data, mode=0o644)  # a registry folder is served to everyone, like any web root
