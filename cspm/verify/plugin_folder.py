"""`cspm inspect FOLDER`: a plug-in's plugin.yaml and its built module checked together.

What the module says of itself is read from its sections, never by running it. Only what can be
known that way is claimed: a module that does not import `config_get` reads no config, and a
declared key that appears nowhere in the module's bytes (as UTF-8 or, AssemblyScript's strings,
UTF-16) is most likely never read. Keys a module reads without declaring them cannot be known from
its bytes (a key may be built at run time), so that direction is not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cspm.formats import manifest as manifest_format
from cspm.formats.app import DEFAULT_MEMORY_PAGES
from cspm.protocol import kinds
from cspm.store import digest_of
from cspm.verify.interface import InterfaceError, check_module, export_names, import_names
from cspm.verify.wasm import EXTISM_ENV, EXTISM_USER, WASI

HOST_SET_KEYS = {"prompt"}  # the host sets an agent's `prompt` from app.yaml: it needs no string in the module


@dataclass
class Finding:
    level: str  # "ok", "warning" or "error"
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"level": self.level, "message": self.message}


@dataclass
class FolderReport:
    folder: Path
    manifest: manifest_format.Manifest
    module: dict[str, Any] | None = None  # digest, size, exports, imports, wasi, memory
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {"folder": str(self.folder), "name": m.name, "version": str(m.version), "kind": m.kind,
                "file": str(m.wasm), "ok": self.ok, "module": self.module,
                "findings": [f.to_dict() for f in self.findings]}


def inspect_folder(folder: Path) -> FolderReport:
    """FormatError when plugin.yaml itself is wrong; every other problem is a finding."""
    manifest = manifest_format.load(folder)
    report = FolderReport(folder, manifest)
    add = report.findings.append
    try:
        shown_file = manifest.wasm.relative_to(manifest.folder)
    except ValueError:
        shown_file = manifest.wasm
    if not kinds.is_module(manifest.kind):
        exists = manifest.wasm.is_file()
        add(Finding("ok" if exists else "error",
                    f"a {manifest.kind} package: its file {shown_file} {'exists' if exists else 'does not exist'}"))
        return report
    try:
        data = manifest.wasm.read_bytes()
    except FileNotFoundError:
        add(Finding("error", f"the declared wasm {shown_file} does not exist (build it first, e.g. its build.sh)"))
        return report
    except OSError as exc:
        add(Finding("error", f"cannot read the declared wasm {shown_file}: {exc.strerror or exc}"))
        return report
    try:
        interface = check_module(data, str(shown_file), wasi_declared=manifest.capabilities.get("wasi") is not False)
    except InterfaceError as exc:
        add(Finding("error", exc.message))
        return report
    imports = {(module, name) for module, name, _ in interface.imports}
    report.module = {"digest": digest_of(data), "size": len(data), "exports": export_names(interface),
                     "imports": import_names(interface), "wasi": interface.uses_wasi,
                     "memory": {"min_pages": interface.memory_min_pages, "max_pages": interface.memory_max_pages}}
    add(Finding("ok", f"kind {manifest.kind}: the module exports `call`, the one export the host calls"))
    _capabilities(manifest, interface.memory_min_pages, imports, add)
    _config(manifest, data, imports, add)
    return report


def _capabilities(manifest: manifest_format.Manifest, min_pages: int | None, imports: set[tuple[str, str]],
                  add: Any) -> None:
    caps = manifest.capabilities
    granted = int(caps.get("memory_pages", DEFAULT_MEMORY_PAGES))
    if min_pages is not None and min_pages > granted:
        add(Finding("error", f"the module needs {min_pages} memory pages at start, more than the {granted} its "
                             f"capabilities grant (`capabilities: {{memory_pages: {min_pages}}}`)"))
    uses = {name for module, name in imports if module == EXTISM_USER}
    if caps.get("kv") and not uses & {"kv_get", "kv_set"}:
        add(Finding("warning", "capabilities grant kv, but the module imports neither kv_get nor kv_set"))
    if caps.get("hosts") and "http_fetch" not in uses:
        add(Finding("warning", "capabilities grant hosts, but the module does not import http_fetch"))
    if any(module == WASI for module, _ in imports) and caps.get("wasi") is False:
        add(Finding("error", "the module imports WASI, but its capabilities say `wasi: false`"))


def _config(manifest: manifest_format.Manifest, data: bytes, imports: set[tuple[str, str]], add: Any) -> None:
    declared = [k for k in manifest.config if k not in HOST_SET_KEYS]
    reads_config = (EXTISM_ENV, "config_get") in imports
    if not manifest.config:
        if reads_config:
            add(Finding("ok", "the module reads config, and plugin.yaml declares none: an app can set no key "
                              "(which keys it reads cannot be known from the module)"))
        return
    if not reads_config:
        add(Finding("warning", f"plugin.yaml declares config ({', '.join(manifest.config)}), but the module never "
                               f"reads config (it does not import config_get)"))
        return
    missing = [k for k in declared if k.encode() not in data and k.encode("utf-16-le") not in data]
    for key in missing:
        add(Finding("warning", f"config key `{key}` is declared, but the string appears nowhere in the module: "
                               f"it is probably never read"))
    if not missing:
        add(Finding("ok", f"every declared config key appears in the module ({', '.join(manifest.config)})"))
