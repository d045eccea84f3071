"""app.yaml: the seed's config shape (`llms`, `tools`, `agents`, `entry`), extended (docs/formats.md).

Loaded and validated once; everything after this module works on the typed `AppConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cspm import schemas
from cspm.errors import FormatError
from cspm.formats import manifest as manifest_format
from cspm.formats import yamlsrc
from cspm.formats.interpolate import interpolate_app
from cspm.wording import did_you_mean

if TYPE_CHECKING:
    from jsonschema import ValidationError

Kind = Literal["llm", "tool", "agent"]
SECTIONS: dict[str, Kind] = {"llms": "llm", "tools": "tool", "agents": "agent"}

DEFAULT_MEMORY_PAGES = 256  # 16 MiB
DEFAULT_TIMEOUT_MS = 60_000
DEFAULT_SECRET_HEADER = "Authorization"
DEFAULT_SECRET_FORMAT = "Bearer {}"


@dataclass(frozen=True)
class Secret:
    """A secret the host resolves and injects as a header; the plug-in never sees its value."""

    name: str
    source: str  # env:NAME | file:PATH
    header: str = DEFAULT_SECRET_HEADER
    format: str = DEFAULT_SECRET_FORMAT
    hosts: tuple[str, ...] | None = None  # `scheme://host[:port]`s; None: the grant entry that admits the request
    query: str | None = None  # inject as this URL query parameter instead of a header (SerpAPI)


@dataclass(frozen=True)
class Grant:
    hosts: tuple[str, ...] = ()  # `scheme://host[:port]` (`*.` allowed), see cspm/formats/hosts.py
    paths: dict[str, str] = field(default_factory=dict)  # host dir -> guest dir; "ro:" prefix = read-only
    kv: bool = False
    wasi: bool | None = None  # None: enabled when the module imports wasi_snapshot_preview1
    memory_pages: int = DEFAULT_MEMORY_PAGES
    timeout_ms: int = DEFAULT_TIMEOUT_MS


@dataclass
class Component:
    """One llm, tool or agent of the app."""

    kind: Kind
    name: str
    description: str
    plugin_path: Path | None
    plugin_ref: str | None
    config: dict[str, Any]
    secrets: tuple[Secret, ...]
    grant: Grant
    prompt: str | None = None
    llms: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    line: int | None = None
    manifest: manifest_format.Manifest | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    where: yamlsrc.Path_ = ()
    digest: str | None = None  # set when the module comes from the store: re-verified when loaded
    models: dict[str, str] = field(default_factory=dict)  # key -> `ns/name@spec` of a model package
    data: dict[str, str] = field(default_factory=dict)  # key -> `ns/name@spec` of a data package
    env_reads: frozenset[str] = frozenset()  # variables its `config` and `grant` interpolate
    package_mounts: dict[str, str] = field(default_factory=dict)  # store folder -> guest dir (models, data)
    package_digests: dict[str, str] = field(default_factory=dict)  # store folder -> the package's digest

    @property
    def declared(self) -> dict[Kind, tuple[str, ...]]:
        return {"llm": self.llms, "tool": self.tools, "agent": self.agents}


@dataclass(frozen=True)
class Origin:
    """Where a published app came from (`cspm run ns/app`): it is untrusted, whatever it says of itself."""

    name: str  # ns/name
    version: str
    registry: str  # the registry's name in the user's config
    registry_url: str

    @property
    def identity(self) -> str:
        """Registry and package: what its approvals and its kv memory are keyed by."""
        return f"{self.name}@{self.registry_url}"


@dataclass
class AppConfig:
    path: Path
    name: str
    entry: str
    components: dict[str, Component]
    located: yamlsrc.Located | None = field(default=None, repr=False)
    origin: Origin | None = None  # None: the user's own app file
    approved: bool = False  # set by cspm.approvals.require: a published app runs only once approved
    original: bool = False  # read from the original Chainsocket app.json (cspm.formats.legacy_app)

    @property
    def kv_scope(self) -> str:
        """A published app's memory is its package's, never that of a `name` it gives itself (a local
        app's name is an ident, which cannot contain the `:` of a package scope)."""
        return f"pkg:{self.origin.identity}" if self.origin is not None else self.name

    @property
    def entry_component(self) -> Component:
        return self.components[self.entry]


def load(path: Path | str, env: Mapping[str, str] | None = None, *, untrusted: bool = False) -> AppConfig:
    """`env`: where `${VAR}` is read from (the process environment by default). `untrusted`: a
    published app, which reads only the variables it declares (`env:` and its secrets' sources)."""
    path = Path(path)
    shown = str(path)
    try:
        located = yamlsrc.load_file(path)
    except yamlsrc.YamlError as exc:
        hint = "check the path, or create it (see docs/formats.md)" if exc.message == "no such file" else None
        original = path.with_name("app.json")
        if hint and path.suffix.lower() in (".yaml", ".yml") and original.is_file():
            hint = f"the original Chainsocket {original} is there: `cspm run {original}`, or `cspm import {original}`"
        raise FormatError(shown, exc.message, exc.line, hint=hint) from None
    return parse(located, path, env, untrusted=untrusted)


def parse(located: yamlsrc.Located, path: Path, env: Mapping[str, str] | None = None, *,
          untrusted: bool = False) -> AppConfig:
    shown = str(path)
    data = located.data
    if not isinstance(data, dict):
        raise FormatError(shown, "expected a mapping with `entry`, `llms`, `tools`, `agents`", located.line_of(()))
    _precheck_sources(data, located, shown)
    reads = interpolate_app(data, located, shown, env, declared_env(data) if untrusted else None)
    error = schemas.problem("app.json", data)
    if error is not None:
        raise _schema_error(error, located, shown)

    components: dict[str, Component] = {}
    for section, kind in SECTIONS.items():
        for index, raw in enumerate(data.get(section) or []):
            where: yamlsrc.Path_ = (section, index)
            name = raw["name"]
            if name in components:
                other = components[name]
                raise FormatError(shown, f"name {name!r} is already used by the {other.kind} on line {other.line}",
                                  located.line_of((*where, "name")), yamlsrc.format_path((*where, "name")))
            components[name] = _component(kind, raw, path, located, where)
            components[name].env_reads = reads.get((section, index), frozenset())

    entry = data["entry"]
    if entry not in components:
        raise FormatError(shown, f"{entry!r} is not defined{did_you_mean(entry, components)}",
                          located.line_of(("entry",)), "entry")
    for index, raw in enumerate(data.get("agents") or []):
        for section, kind in SECTIONS.items():
            for j, ref in enumerate(raw.get(section) or []):
                target = components.get(ref)
                if target is None or target.kind != kind:
                    what = f"is {_a(target.kind)}, not {_a(kind)}" if target else f"is not {_a(kind)} of this app"
                    candidates = {n: c for n, c in components.items() if c.kind == kind}
                    raise FormatError(shown, f"{ref!r} {what}{did_you_mean(ref, candidates)}",
                                      located.line_of(("agents", index, section, j)),
                                      yamlsrc.format_path(("agents", index, section, j)))
    return AppConfig(path=path, name=data.get("name") or _default_name(path), entry=entry, components=components,
                     located=located)


def declared_env(data: dict[str, Any]) -> frozenset[str]:
    """The variables an app declares it reads: its `env:` list and the `env:NAME` sources of its
    secrets. Read before the schema check (interpolation comes first), so every shape is tolerated."""
    names = {v for v in data.get("env") or () if isinstance(v, str)} if isinstance(data.get("env"), list) else set()
    for section in SECTIONS:
        items = data.get(section)
        for item in items if isinstance(items, list) else ():
            secrets = item.get("secrets") if isinstance(item, dict) else None
            for spec in secrets.values() if isinstance(secrets, dict) else ():
                source = spec.get("from") if isinstance(spec, dict) else spec
                if isinstance(source, str) and source.startswith("env:"):
                    names.add(source[4:])
    return frozenset(names)


def _precheck_sources(data: dict[str, Any], located: yamlsrc.Located, shown: str) -> None:
    """`plugin_name` xor `plugin`, with a message better than the schema's oneOf."""
    for section in SECTIONS:
        items = data.get(section)
        if not isinstance(items, list):
            continue
        for index, raw in enumerate(items):
            if not isinstance(raw, dict):
                continue
            has_local, has_ref = "plugin_name" in raw, "plugin" in raw
            if has_local == has_ref:
                problem = "has both" if has_local else "needs one of"
                raise FormatError(
                    shown, f"{problem} `plugin_name` (a local .wasm file) and `plugin` (a registry reference)",
                    located.line_of((section, index)), yamlsrc.format_path((section, index)))


def _schema_error(error: ValidationError, located: yamlsrc.Located, shown: str) -> FormatError:
    path = tuple(error.absolute_path)
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        if extra:
            path = (*path, extra[0])
            message = f"unknown field{did_you_mean(extra[0], allowed)}"
    elif len(path) == 4 and path[2] == "secrets":
        message = "a secret is `env:NAME`, `file:PATH`, or {from, header, format, query, hosts}"
    elif error.validator == "pattern":
        message = f"{error.instance!r} is not allowed here (must match {error.validator_value})"
    return FormatError(shown, message, located.line_of(path), yamlsrc.format_path(path))


def _default_name(path: Path) -> str:
    stem = path.stem if path.stem not in ("app", "") else path.resolve().parent.name
    cleaned = "".join(ch if ch.isalnum() or ch in "_.-" else "-" for ch in stem)[:64]
    return cleaned or "app"


def _component(kind: Kind, raw: dict[str, Any], app_path: Path, located: yamlsrc.Located,
               where: yamlsrc.Path_) -> Component:
    shown = str(app_path)
    plugin_path, manifest = None, None
    if "plugin_name" in raw:
        try:
            plugin_path = Path(raw["plugin_name"]).expanduser()
        except RuntimeError:  # `~someone/...` for a user this machine does not have
            at = (*where, "plugin_name")
            raise FormatError(shown, f"{raw['plugin_name']!r:.80}: no such user's home folder",
                              located.line_of(at), yamlsrc.format_path(at)) from None
        if not plugin_path.is_absolute():
            plugin_path = app_path.parent / plugin_path
        if plugin_path.is_dir() or plugin_path.name == manifest_format.MANIFEST_FILE:
            manifest = manifest_format.load(plugin_path)
            plugin_path = manifest.wasm
    component = Component(
        kind=kind, name=raw["name"], description="", plugin_path=plugin_path, plugin_ref=raw.get("plugin"),
        config={}, secrets=(), grant=Grant(),
        prompt=raw.get("prompt") if kind == "agent" else None,
        llms=tuple(raw.get("llms") or ()), tools=tuple(raw.get("tools") or ()),
        agents=tuple(raw.get("agents") or ()), line=located.line_of(where), raw=raw, where=where,
        models=dict(raw.get("models") or {}), data=dict(raw.get("data") or {}),
    )
    bind(component, manifest, shown, located)
    return component


def bind(component: Component, manifest: manifest_format.Manifest | None, shown: str,
         located: yamlsrc.Located) -> None:
    """Settle config, grant, secrets and description from the app's entry and the plug-in's manifest.

    Called at load for plug-in folders, and again once a registry reference is locked.
    """
    raw, where, kind = component.raw, component.where, component.kind
    if manifest is not None and manifest.kind != kind:
        at = (*where, "plugin" if "plugin" in raw else "plugin_name")
        raise FormatError(shown, f"{manifest.name} is {_a(manifest.kind)} plug-in, not {_a(kind)}",
                          located.line_of(at), yamlsrc.format_path(at))
    config = dict(raw.get("config") or {})
    if manifest is not None:
        for key, problem in manifest.config_problems(config).items():
            at = (*where, "config", key)
            raise FormatError(shown, problem, located.line_of(at), yamlsrc.format_path(at))
        config = {**manifest.config_defaults(), **config}
    capabilities = dict(manifest.capabilities) if manifest else {}
    grant_raw = {**capabilities, **(raw.get("grant") or {})}
    component.grant = Grant(
        hosts=tuple(_host_of(h) for h in grant_raw.get("hosts") or ()),
        paths=dict(grant_raw.get("paths") or {}),
        kv=bool(grant_raw.get("kv", False)),
        wasi=grant_raw.get("wasi"),
        memory_pages=int(grant_raw.get("memory_pages", DEFAULT_MEMORY_PAGES)),
        timeout_ms=int(grant_raw.get("timeout_ms", DEFAULT_TIMEOUT_MS)),
    )
    component.config = config
    component.secrets = tuple(_secrets(raw.get("secrets") or {}, manifest, shown, located, where))
    component.description = raw.get("description") or (manifest.description if manifest else "")
    component.manifest = manifest


def _host_of(entry: str) -> str:
    """A grant or secret host entry as `scheme://host[:port]` (cspm/formats/hosts.py).

    An entry may be a whole base URL (so one `${VAR}` feeds both config and grant) and keeps its
    scheme; a bare `host[:port]` or `*.host` means https, and no port means the scheme's default.
    """
    from cspm.formats.hosts import canonical

    return canonical(entry)


def _secrets(raw: dict[str, Any], manifest: manifest_format.Manifest | None, shown: str,
             located: yamlsrc.Located, where: yamlsrc.Path_) -> list[Secret]:
    declared = manifest.secrets if manifest else {}
    out = []
    for name, spec in raw.items():
        at = (*where, "secrets", name)
        if manifest is not None and declared and name not in declared:
            raise FormatError(shown, f"{manifest.name} reads no secret {name!r}{did_you_mean(name, declared)}; "
                                     f"it reads: {', '.join(declared)}", located.line_of(at), yamlsrc.format_path(at))
        decl = declared.get(name) or manifest_format.SecretDecl(name=name)
        spec = {"from": spec} if isinstance(spec, str) else spec
        header = spec.get("header") or decl.header or DEFAULT_SECRET_HEADER
        default_format = decl.format or (DEFAULT_SECRET_FORMAT if header.lower() == "authorization" else "{}")
        hosts = spec.get("hosts")
        out.append(Secret(name=name, source=spec["from"], header=header,
                          format=spec.get("format") or default_format,
                          hosts=tuple(_host_of(h) for h in hosts) if hosts is not None else None,
                          query=spec.get("query") or (decl.query if "header" not in spec else None)))
    missing = [d for d in declared.values() if d.required and d.name not in raw]
    if missing:
        first = missing[0]
        what = f" ({first.description})" if first.description else ""
        raise FormatError(shown, f"{manifest.name if manifest else 'the plug-in'} needs the secret "
                                 f"`{first.name}`{what}", located.line_of(where), yamlsrc.format_path(where),
                          hint=f"add `secrets: {{{first.name}: env:{first.env or 'YOUR_VARIABLE'}}}`")
    return out


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" or kind == "llm" else f"a {kind}"
