"""The user config: registries in order, namespace routing, trust policy (docs/formats.md).

Lives in the platformdirs user config dir as `config.yaml`. With no file, the bundled registry is
the only one, so a fresh install resolves the example apps offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cspm import atomicfile, paths, schemas
from cspm.errors import CspmError, FormatError
from cspm.formats import yamlsrc
from cspm.formats.names import check_part, check_registry_name

CONFIG_FILE = "config.yaml"
BUNDLED_NAME = "chainsocket"


@dataclass(frozen=True)
class Registry:
    name: str
    url: str
    namespaces: tuple[str, ...] = ()


@dataclass
class UserConfig:
    path: Path
    registries: list[Registry]
    trust: dict[str, dict[str, Any]] = field(default_factory=dict)
    exists: bool = True

    def registry(self, name: str) -> Registry | None:
        return next((r for r in self.registries if r.name == name), None)


def bundled_index() -> Path:
    """The registry shipped with cspm: package data `cspm/bundled` (in a source tree, a link to `index/`,
    resolved so that its URL, which scopes published apps' memory, is the same either way)."""
    return (Path(__file__).resolve().parent.parent / "bundled").resolve()


def default_registries() -> list[Registry]:
    return [Registry(BUNDLED_NAME, bundled_index().as_uri())]


def config_path() -> Path:
    return paths.config_dir() / CONFIG_FILE


def load(path: Path | None = None) -> UserConfig:
    path = path or config_path()
    if not path.exists():
        return UserConfig(path, default_registries(), exists=False)
    shown = str(path)
    try:
        located = yamlsrc.load_file(path)
    except yamlsrc.YamlError as exc:
        raise FormatError(shown, exc.message, exc.line) from None
    data = located.data if located.data is not None else {}
    if not isinstance(data, dict):
        raise FormatError(shown, "expected a mapping with `registries`")
    error = schemas.problem("config.json", data)
    if error is not None:
        where = tuple(error.absolute_path)
        raise FormatError(shown, error.message[:200], located.line_of(where), yamlsrc.format_path(where))
    registries, names = [], set()
    for index, raw in enumerate(data.get("registries") or []):
        if raw["name"] in names:
            raise FormatError(shown, f"registry {raw['name']!r} is listed twice",
                              located.line_of(("registries", index)), f"registries[{index}].name")
        names.add(raw["name"])
        registries.append(Registry(raw["name"], _normalise_url(raw["url"], path.parent),
                                   tuple(raw.get("namespaces") or ())))
    if "registries" not in data:
        registries = default_registries()
    return UserConfig(path, registries, dict(data.get("trust") or {}))


def _normalise_url(url: str, base: Path) -> str:
    if url.startswith(("http://", "https://", "file://", "oci://", "oci+http://", "oci+https://")):
        return url.rstrip("/")
    folder = Path(url).expanduser()
    return (folder if folder.is_absolute() else base / folder).resolve().as_uri()


def save(config: UserConfig) -> None:
    document: dict[str, Any] = {"registries": [
        {"name": r.name, "url": r.url, **({"namespaces": list(r.namespaces)} if r.namespaces else {})}
        for r in config.registries]}
    if config.trust:
        document["trust"] = config.trust
    config.path.parent.mkdir(parents=True, exist_ok=True)
    atomicfile.write(config.path, yaml.safe_dump(document, sort_keys=False), mode=0o644)


def add_registry(config: UserConfig, name: str, url: str, namespaces: tuple[str, ...] = (),
                 first: bool = False) -> Registry:
    """A new or changed registry entry (same name: replaced in place); validated like the file."""
    check_registry_name(name)
    for namespace in namespaces:
        check_part(namespace)
    registry = Registry(name, _normalise_url(url, Path.cwd()), tuple(namespaces))
    error = schemas.problem("config.json",
                            {"registries": [{"name": name, "url": registry.url, "namespaces": list(namespaces)}]})
    if error is not None:
        raise FormatError(str(config.path), f"registry {name!r}: {error.message[:200]}")
    others = [r for r in config.registries if r.name != name]
    at = next((i for i, r in enumerate(config.registries) if r.name == name), len(others))
    config.registries = [registry, *others] if first else [*others[:at], registry, *others[at:]]
    return registry


def serve_namespace(config: UserConfig, name: str, url: str, namespace: str) -> Registry | None:
    """Let registry `name` (at `url`) route `namespace` too: the entry is added, first so that it wins,
    when the config has none by that name, and its namespaces are extended otherwise. None, and nothing
    changed, when it routes the namespace already."""
    current = config.registry(name)
    if current is not None and namespace in current.namespaces:
        return None
    spaces = tuple(sorted({*(current.namespaces if current else ()), namespace}))
    return add_registry(config, name, url, spaces, first=current is None)


def remove_registry(config: UserConfig, name: str) -> Registry:
    found = config.registry(name)
    if found is None:
        known = ", ".join(r.name for r in config.registries) or "none"
        raise CspmError(f"there is no registry called {name!r} (configured: {known})")
    config.registries = [r for r in config.registries if r.name != name]
    return found
