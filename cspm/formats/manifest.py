"""plugin.yaml: what a plug-in is, what it needs, and which config and secrets it reads (docs/formats.md).

Validated once here; the app loader and (later) the packer and the index read the typed `Manifest`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.version import Version

from cspm import schemas
from cspm.errors import FormatError
from cspm.formats import bounded_json, yamlsrc
from cspm.formats.names import NameInvalid, parse_version
from cspm.protocol import kinds

MANIFEST_FILE = "plugin.yaml"
SUPPORTED_ABI = 1
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "array": (list,), "object": (dict,),
}


@dataclass(frozen=True)
class SecretDecl:
    """A secret the plug-in expects the app to bind, and how the host injects it by default."""

    name: str
    description: str = ""
    required: bool = False
    header: str | None = None
    format: str | None = None
    query: str | None = None
    env: str | None = None  # the environment variable `cspm add` binds it to (e.g. OPENAI_API_KEY)
    hosts: tuple[str, ...] = ()  # the origins it is meant for, which `cspm add` grants

    @classmethod
    def of(cls, name: str, decl: dict[str, Any]) -> SecretDecl:
        return cls(name=name, **{**decl, "hosts": tuple(decl.get("hosts") or ())})


@dataclass
class Manifest:
    folder: Path
    name: str
    version: Version
    kind: str
    abi: int
    wasm: Path  # kind app: the app config that is packed with its lock
    description: str = ""
    features: frozenset[str] = frozenset()
    capabilities: dict[str, Any] = field(default_factory=dict)
    config: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, SecretDecl] = field(default_factory=dict)
    input_schema: dict[str, Any] | None = None
    dependencies: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def config_defaults(self) -> dict[str, Any]:
        return {k: v["default"] for k, v in self.config.items() if "default" in v}

    def config_problems(self, values: dict[str, Any]) -> dict[str, str]:
        """Keys of `values` the manifest does not declare or whose type is wrong, with the reason.

        A manifest that declares no config takes none: a typo must not pass silently because the
        plug-in's author listed nothing."""
        if not self.config:
            return {key: f"{self.name} takes no config (its plugin.yaml declares none); remove {key!r}"
                    for key in values}
        problems = {}
        for key, value in values.items():
            decl = self.config.get(key)
            if decl is None:
                close = difflib.get_close_matches(key, list(self.config), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems[key] = f"{self.name} has no config key {key!r}{hint}; it reads: {', '.join(self.config)}"
                continue
            want = decl.get("type")
            if want and not _has_type(value, want):
                problems[key] = f"{self.name} expects {want} for {key!r}, not {value!r}"
            elif "enum" in decl and value not in decl["enum"]:
                problems[key] = f"{key!r} must be one of {decl['enum']}, not {value!r}"
        return problems


def _has_type(value: Any, want: str) -> bool:
    if isinstance(value, bool) and want in ("integer", "number"):
        return False
    if isinstance(value, _JSON_TYPES[want]):
        return True
    if isinstance(value, str) and want != "string":  # `${VAR}` interpolation yields strings
        try:
            return _has_type(bounded_json.loads(value), want)
        except ValueError:
            return False
    return False


def load(folder_or_file: Path | str) -> Manifest:
    path = Path(folder_or_file)
    if path.is_dir():
        path = path / MANIFEST_FILE
    try:
        located = yamlsrc.load_file(path)
    except yamlsrc.YamlError as exc:
        raise FormatError(str(path), exc.message, exc.line) from None
    return parse(located, path)


def from_dict(data: Any, shown: str) -> Manifest:
    """A manifest that arrived as data (a publish upload): validated exactly like a plugin.yaml.

    Its `wasm`/`app` path names nothing on this machine; the caller holds the bytes.
    """
    return parse(yamlsrc.Located(data), Path(shown))


def parse(located: yamlsrc.Located, path: Path) -> Manifest:
    shown = str(path)
    data = located.data
    if not isinstance(data, dict):
        raise FormatError(shown, "expected a mapping with `name`, `version`, `kind`, `abi`, `wasm`")
    error = schemas.problem("plugin.json", data)
    if error is not None:
        where = tuple(error.absolute_path)
        message = error.message
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            extra = [k for k in error.instance if k not in error.schema.get("properties", {})]
            if extra:
                allowed = list(error.schema.get("properties", {}))
                close = difflib.get_close_matches(str(extra[0]), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                where, message = (*where, extra[0]), f"unknown field{hint}"
        elif error.validator == "pattern" and where == ("name",):
            message = "a name is `namespace/name`: lowercase letters, digits and '-', at most 64 each"
        raise FormatError(shown, message, located.line_of(where), yamlsrc.format_path(where))

    def fail(key: str, message: str) -> FormatError:
        return FormatError(shown, message, located.line_of((key,)), key)

    try:
        version = parse_version(data["version"])
    except NameInvalid:
        raise fail("version", f"{data['version']!r} is not a PEP 440 version (e.g. 1.0.0)") from None
    if data["abi"] != SUPPORTED_ABI:
        raise fail("abi", f"ABI {data['abi']} is not supported by this cspm (it speaks ABI {SUPPORTED_ABI})")
    payload_key = kinds.of(data["kind"]).payload
    wasm = PurePosixPath(data[payload_key])
    if wasm.is_absolute() or ".." in wasm.parts or "\\" in data[payload_key]:
        raise fail(payload_key, "must be a relative path inside the plug-in folder")
    folder = path.parent
    secrets = {name: SecretDecl.of(name, decl) for name, decl in (data.get("secrets") or {}).items()}
    return Manifest(
        folder=folder, name=data["name"], version=version, kind=data["kind"], abi=data["abi"],
        wasm=folder / Path(*wasm.parts), description=data.get("description", ""),
        features=frozenset(data.get("features") or ()), capabilities=dict(data.get("capabilities") or {}),
        config=dict(data.get("config") or {}), secrets=secrets, input_schema=data.get("input_schema"),
        dependencies=dict(data.get("dependencies") or {}), raw=data,
    )


def from_fields(name: str, version: Version, kind: str, abi: int, capabilities: dict[str, Any],
                fields: dict[str, Any], wasm: Path) -> Manifest:
    """A manifest rebuilt from an index entry or a lock entry (a plug-in that came from a registry)."""
    secrets = {key: SecretDecl.of(key, decl) for key, decl in (fields.get("secrets") or {}).items()}
    capabilities = dict(capabilities)
    if "wasi" in fields and "wasi" not in capabilities:
        capabilities["wasi"] = fields["wasi"]
    return Manifest(
        folder=wasm.parent, name=name, version=version, kind=kind, abi=abi, wasm=wasm,
        description=fields.get("description", ""), features=frozenset(fields.get("features") or ()),
        capabilities=capabilities, config=dict(fields.get("config") or {}), secrets=secrets,
        input_schema=fields.get("input_schema"),
    )
