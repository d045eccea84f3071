"""app + lock + store → run plan (cspm.formats.plan): the package manager's last step.

`build` takes an app whose registry references are bound to stored modules (`Project.prepare`) and
resolves everything a host would otherwise look up: module digests and sizes (a local `.wasm` is
hashed here, and a host checks the digest again before compiling), granted folders as absolute
paths, model and data packages as read-only mounts by digest, the exact config strings, secret
references, what each component may call, a tool's input schema. A published app is planned only
once its capabilities were approved (cspm.approvals).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cspm.errors import CapabilityError, PluginError, PluginFileMissing
from cspm.formats.app import AppConfig, Component
from cspm.formats.plan import MAX_MODULE_BYTES, Calls, Module, Mount, Origin, Plan, PlanComponent, PlanGrant, SecretRef
from cspm.store import digest_of_file

if TYPE_CHECKING:
    from cspm.runtime.engine import Runtime



def where(app: AppConfig, component: Component) -> str:
    line = f":{component.line}" if component.line else ""
    return f"{app.path}{line}: {component.kind} `{component.name}`"


def _module(app: AppConfig, component: Component) -> Module:
    place = where(app, component)
    if component.plugin_path is None:
        raise PluginError(f"{place}: registry reference {component.plugin_ref!r} is not locked",
                          hint="run `cspm lock` and `cspm install` (or `cspm run`, which does both)")
    path = component.plugin_path
    try:
        size = path.stat().st_size
        if size > MAX_MODULE_BYTES:
            raise PluginError(f"{place}: {path} is larger than {MAX_MODULE_BYTES // 2**20} MiB")
        digest = component.digest
        if digest is None:  # the app's own file: hashed now, checked again when a host loads it
            digest = digest_of_file(path)
    except FileNotFoundError:
        raise PluginFileMissing(f"{place}: plug-in file {path} does not exist",
                                hint="build it first (see the plug-in's build.sh) or fix `plugin_name`") from None
    except OSError as exc:
        raise PluginError(f"{place}: cannot read {path}: {exc.strerror}") from None
    return Module(digest=digest, path=str(path.resolve()), size=size)


def mounts(app: AppConfig, component: Component) -> tuple[Mount, ...]:
    """Granted folders (relative to the app file, `~` expanded, `rw:` writable) and the component's
    model and data packages (read-only, from the store)."""
    out = []
    for host, guest in component.grant.paths.items():
        writable = host.startswith("rw:")
        try:
            host_path = Path(host[3:] if writable else host).expanduser()
        except RuntimeError:  # `~someone/...` for a user this machine does not have
            raise PluginError(f"{where(app, component)}: granted path {host!r}: no such user's home folder") from None
        if not host_path.is_absolute():
            host_path = app.path.parent / host_path
        if not host_path.is_dir():
            raise PluginError(f"{where(app, component)}: granted path {host_path} is not a directory")
        out.append(Mount(str(host_path.resolve()), guest, writable, None))
    for host, guest in component.package_mounts.items():
        out.append(Mount(host, guest, False, component.package_digests.get(host)))
    return tuple(out)


def _source(app: AppConfig, source: str) -> str:
    """`file:` relative to the app file (and `~`) made absolute: a plan holds no path a host must resolve."""
    from cspm.runtime.secrets import local_path

    if source.startswith("file:"):
        return "file:" + str(local_path(source[5:], app.path.parent))
    return source


def config_strings(component: Component) -> dict[str, str]:
    """What the plug-in reads with config_get: strings as they are, the rest as JSON; an agent's prompt."""
    config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in component.config.items()}
    if component.prompt is not None:
        config["prompt"] = component.prompt
    return config


def input_schema(component: Component) -> dict | None:
    """What the host tells agents a tool takes, and checks its arguments against: the manifest's
    `input_schema`, else `config.input_schema` (which may arrive as JSON text: `--config input_schema=…`)."""
    manifest = component.manifest
    schema = manifest.input_schema if manifest else component.config.get("input_schema")
    if isinstance(schema, str):
        from cspm.formats import bounded_json
        from cspm.runtime.arguments import MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH

        try:
            schema = bounded_json.loads(schema, max_bytes=MAX_SCHEMA_BYTES, max_depth=MAX_SCHEMA_DEPTH)
        except bounded_json.JsonRejected as exc:
            raise PluginError(f"the input_schema of tool `{component.name}` is invalid: {exc}") from None
    return schema if isinstance(schema, dict) else None


def component_plan(app: AppConfig, component: Component) -> PlanComponent:
    g = component.grant
    return PlanComponent(
        name=component.name,
        kind=component.kind,
        description=component.description,
        where=where(app, component),
        package=component.manifest.name if component.manifest is not None else None,
        features=tuple(sorted(component.manifest.features)) if component.manifest is not None else (),
        module=_module(app, component),
        grant=PlanGrant(hosts=tuple(dict.fromkeys(g.hosts)), mounts=mounts(app, component), kv=g.kv, wasi=g.wasi,
                        memory_pages=g.memory_pages, timeout_ms=g.timeout_ms),
        config=config_strings(component),
        secrets=tuple(SecretRef(s.name, _source(app, s.source), s.header, s.format, s.hosts, s.query)
                      for s in component.secrets),
        calls=Calls(component.llms, component.tools, component.agents),
        input_schema=input_schema(component),
    )


def build(app: AppConfig) -> Plan:
    if app.origin is not None and not app.approved:
        raise CapabilityError(f"{app.origin.name} {app.origin.version} is a published app whose capabilities "
                              f"were not approved", hint="approve them: `cspm run NAME --allow-capabilities`")
    origin = (Origin(app.origin.name, app.origin.version, app.origin.registry, app.origin.registry_url)
              if app.origin is not None else None)
    return Plan(app_name=app.name, source=str(app.path), origin=origin, entry=app.entry, kv_scope=app.kv_scope,
                components={c.name: component_plan(app, c) for c in app.components.values()},
                approved=True)  # a published app reaches here only approved


# the imports by which a module makes HTTP requests: Extism 0.x's kernel (ABI 0), cspm's gateway (ABI 1)
HTTP_IMPORTS = frozenset({("env", "extism_http_request"), ("extism:host/user", "http_fetch"),
                          ("extism:host/user", "http_open")})


def module_uses_http(path: Path) -> bool:
    """Whether the module at `path` imports an HTTP function: an original app.json's plug-in gets a
    host and a key only then. A file that is no module gets nothing (the runtime refuses it later)."""
    import os

    from cspm.verify.wasm import WasmFormatError, read_interface_file

    try:
        with path.open("rb") as handle:
            interface = read_interface_file(handle, os.fstat(handle.fileno()).st_size)
    except (OSError, WasmFormatError):
        return False
    return any((module, name) in HTTP_IMPORTS for module, name, _ in interface.imports)


def load_app_file(path: Path | str, *, untrusted: bool = False) -> AppConfig:
    """An app file of either shape: app.yaml, or the original Chainsocket app.json (a `.json` file
    without app.yaml's own keys, cspm.formats.legacy_app). Only a `.json` name loads that module, so
    an app.yaml starts as fast as ever; a published app is always an app.yaml."""
    from cspm.formats import app as app_format

    path = Path(path)
    if path.suffix.lower() == ".json" and not untrusted:
        from cspm.formats import legacy_app

        original = legacy_app.load(path, module_uses_http)
        if original is not None:
            return original
    return app_format.load(path, untrusted=untrusted)


def load_app(path: Path | str, **kwargs: Any) -> Runtime:
    """A Runtime for an app file whose plug-ins are all local (no lock needed): tests, benchmarks."""
    from cspm.runtime.engine import Runtime

    return Runtime(build(load_app_file(path)), **kwargs)
