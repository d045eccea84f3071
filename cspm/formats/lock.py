"""app.lock: what `cspm lock` resolved, so `install` and `run` need no index (docs/formats.md, "app.lock").

Pinned per plug-in: version, registry (a logical name, never a URL or a credential), digest, size,
signer and the capabilities as granted, plus the manifest fields the runtime needs (config
defaults, secrets, input schema) so a locked app runs from the store alone, and what install needs
so it reads no index file: where the blob is in its registry, its signature bundle, a module's
exports and imports (older locks lack these: install then reads the index). Written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.version import Version

from cspm import atomicfile, schemas
from cspm.errors import FormatError
from cspm.formats import yamlsrc
from cspm.formats.names import NameInvalid, parse_version
from cspm.protocol import kinds

LOCK_VERSION = 1
HEADER = "# This file is written by `cspm lock`: do not edit it by hand.\n"




@dataclass
class LockedPlugin:
    name: str
    version: Version
    registry: str
    digest: str
    size: int
    kind: str
    abi: int
    capabilities: dict[str, Any]
    used_by: list[str]
    signer: dict[str, str] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    dependencies: dict[str, str] = field(default_factory=dict)
    # what install needs without the index (absent in locks of older cspm versions: then it reads the index)
    blob: str | None = None  # where the blob is, relative to the registry (or an absolute URL)
    signature: dict[str, str] | None = None  # {kind, bundle}: how the blob is signed (None: unsigned)
    interface: dict[str, list[str]] | None = None  # a module's {exports, imports} as its index recorded them

    @property
    def located(self) -> bool:
        """Whether the lock records where the blob is and what it must be (a lock since `blob` exists)."""
        return self.blob is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "version": str(self.version), "registry": self.registry, "digest": self.digest,
            "size": self.size,
        }
        if self.blob is not None:
            out["blob"] = self.blob
        out.update({"kind": self.kind, "abi": self.abi, "signer": self.signer})
        if self.signature is not None:
            out["signature"] = self.signature
        out["capabilities"] = self.capabilities
        if self.interface is not None:
            out["interface"] = self.interface
        if self.manifest:
            out["manifest"] = self.manifest
        if self.dependencies:
            out["dependencies"] = self.dependencies
        out["used-by"] = sorted(self.used_by)
        return out


@dataclass
class Lock:
    path: Path
    plugins: list[LockedPlugin]

    def by_name(self) -> dict[str, LockedPlugin]:
        return {p.name: p for p in self.plugins}

    def for_component(self, component: str) -> LockedPlugin | None:
        """The plug-in a component runs: its module, never the model or data packages it also uses
        (those are locked as used by it too, and may come first)."""
        return next((p for p in self.plugins if component in p.used_by and kinds.is_module(p.kind)), None)


def lock_path(app_path: Path) -> Path:
    """`app.yaml` -> `app.lock`, `pirate.yaml` -> `pirate.lock`, next to it."""
    return app_path.with_suffix(".lock")


def load(path: Path) -> Lock:
    shown = str(path)
    try:
        located = yamlsrc.load_file(path)
    except yamlsrc.YamlError as exc:
        raise FormatError(shown, exc.message, exc.line, hint="delete it and run `cspm lock`") from None
    data = located.data
    error = schemas.problem("lock.json", data) if isinstance(data, dict) else None
    if not isinstance(data, dict) or error is not None:
        where = tuple(error.absolute_path) if error else ()
        message = error.message[:200] if error else "expected a mapping with `lock-version` and `plugins`"
        raise FormatError(shown, message, located.line_of(where), yamlsrc.format_path(where) if where else None,
                          hint="the lock was edited by hand or is from another cspm: run `cspm lock` to rewrite it")
    plugins = []
    seen: set[str] = set()
    for index, raw in enumerate(data["plugins"]):
        try:
            version = parse_version(raw["version"])
        except NameInvalid:
            raise FormatError(shown, f"{raw['version']!r} is not a version", located.line_of(("plugins", index)),
                              f"plugins[{index}].version") from None
        if raw["name"] in seen:
            raise FormatError(shown, f"{raw['name']} is locked twice", located.line_of(("plugins", index)),
                              f"plugins[{index}].name", hint="run `cspm lock` to rewrite it")
        seen.add(raw["name"])
        plugins.append(LockedPlugin(
            name=raw["name"], version=version, registry=raw["registry"], digest=raw["digest"], size=raw["size"],
            kind=raw["kind"], abi=raw["abi"], capabilities=raw["capabilities"], used_by=list(raw["used-by"]),
            signer=raw.get("signer"), manifest=raw.get("manifest") or {},
            dependencies=raw.get("dependencies") or {}, blob=raw.get("blob"), signature=raw.get("signature"),
            interface=raw.get("interface"),
        ))
    return Lock(path, plugins)


def document(lock: Lock) -> dict[str, Any]:
    """What `dump` writes, as data."""
    return {"lock-version": LOCK_VERSION,
            "plugins": [p.to_dict() for p in sorted(lock.plugins, key=lambda p: p.name)]}


def dump(lock: Lock) -> str:
    return HEADER + yaml.safe_dump(document(lock), sort_keys=False, allow_unicode=True, width=120)


def same(a: Lock, b: Lock) -> bool:
    """Whether `dump(a) == dump(b)`, without emitting YAML (the pure-Python emitter takes ~5 ms for 50
    plug-ins). The documents are compared as JSON text, which keeps what `==` on values would blur
    and YAML would not (`1`, `1.0` and `true` differ, and so does key order); a value JSON cannot
    hold falls back to comparing the YAML itself."""
    try:
        return json.dumps(document(a)) == json.dumps(document(b))
    except (TypeError, ValueError):
        return dump(a) == dump(b)


def write(lock: Lock) -> None:
    """Atomically: a reader sees the old lock or the new one, never half of one."""
    atomicfile.write(lock.path, dump(lock), mode=0o644)
