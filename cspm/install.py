"""Lock and install: from an app's registry references to pinned, verified blobs in the store.

`lock_app` resolves and pins; `stale_reasons` says why a lock no longer fits its app; `install`
fetches what a lock pins; `bind_locked` points each referenced component at its stored module and
manifest, so the runtime runs from the lock and the store alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path

from cspm.errors import CapabilityChange, CspmError, FormatError, SignerChange, StaleLock
from cspm.fetch import Download, Progress, fetch_all
from cspm.formats import app as app_format
from cspm.formats import manifest as manifest_format
from cspm.formats.app import AppConfig
from cspm.formats.index_line import IndexEntry
from cspm.formats.lock import Lock, LockedPlugin, lock_path
from cspm.formats.names import NameInvalid, parse_requirement
from cspm.index.federation import BrokenIndex, Federation, PackageNotFound
from cspm.index.source import IndexSource
from cspm.models import DATA_ROOT as DATA_GUEST_ROOT
from cspm.models import GUEST_ROOT as MODEL_GUEST_ROOT
from cspm.models import materialize as materialize_model
from cspm.protocol import kinds
from cspm.resolver import Candidate, Req, resolve
from cspm.store import Store
from cspm.wording import missing_registry_hint


def requirements(app: AppConfig) -> list[Req]:
    out = []
    for component in app.components.values():
        if component.plugin_ref is not None:
            try:
                requirement = parse_requirement(component.plugin_ref)
            except NameInvalid as exc:
                raise FormatError(str(app.path), f"{component.kind} `{component.name}`: {exc}",
                                  line=component.line) from None
            out.append(Req(requirement.name, requirement.specifier, f"app component `{component.name}`"))
        for what, refs in (("model", component.models), ("data", component.data)):
            for key, ref in refs.items():
                try:
                    model = parse_requirement(ref)
                except NameInvalid as exc:
                    raise FormatError(str(app.path), f"{component.kind} `{component.name}`: {what} {key!r}: {exc}",
                                      line=component.line) from None
                out.append(Req(model.name, model.specifier, f"{what} `{key}` of `{component.name}`"))
    return out


def lock_app(app: AppConfig, federation: Federation, *, existing: Lock | None = None,
             upgrade: set[str] | None = None, allow_capabilities: bool = False,
             allow_signer_change: bool = False, warn: Callable[[str], None] = lambda _: None) -> Lock:
    reqs = requirements(app)
    federation.prefetch([r.name for r in reqs])
    _check_known(app, federation)
    pinned = {p.name: p.version for p in existing.plugins} if existing else {}
    chosen = resolve(reqs, federation, pinned=pinned, upgrade=upgrade)
    used_by: dict[str, list[str]] = {name: [] for name in chosen}
    for component in app.components.values():
        if component.plugin_ref is not None:
            used_by[parse_requirement(component.plugin_ref).name].append(component.name)
        for ref in [*component.models.values(), *component.data.values()]:
            used_by[parse_requirement(ref).name].append(component.name)
    for candidate in chosen.values():
        for dependency in candidate.entry.dependencies:
            used_by.setdefault(dependency, []).append(candidate.name)
    plugins = [_locked(c, used_by.get(name, []), federation.source(c.registry)) for name, c in sorted(chosen.items())]
    if existing is not None:
        plugins = keep_locked_digests(existing, plugins, warn)
    new = Lock(lock_path(app.path), plugins)
    if existing is not None and not allow_capabilities:
        widened = capability_changes(existing, new)
        if widened:
            raise CapabilityChange("the new versions ask for more than the lock granted:\n" + "\n".join(widened),
                                   hint=f"review the difference, then: `cspm lock {app.path} --allow-capabilities`")
    if existing is not None and not allow_signer_change:
        changed = signer_changes(existing, new)
        if changed:
            raise SignerChange("the new versions are signed by someone else than the locked ones:\n"
                               + "\n".join(changed),
                               hint=f"check the publisher changed, then: `cspm lock {app.path} --allow-signer-change`")
    return new


def keep_locked_digests(existing: Lock, plugins: list[LockedPlugin], warn: Callable[[str], None]
                        ) -> list[LockedPlugin]:
    """A version the lock pins that its registry now lists with another digest (an OCI tag pushed again)
    keeps the lock's pin, digest and all: the lock's digest wins, and the change is reported."""
    before = existing.by_name()
    out = []
    for plugin in plugins:
        prior = before.get(plugin.name)
        if (prior is not None and prior.version == plugin.version and prior.registry == plugin.registry
                and prior.digest != plugin.digest):
            warn(f"registry {plugin.registry} now has {plugin.name} {plugin.version} as {plugin.digest}, but "
                 f"{existing.path} pins {prior.digest}: the lock's digest is kept (the version was re-published "
                 f"under the same tag; ask its publisher why)")
            plugin = dataclasses.replace(prior, used_by=plugin.used_by)
        out.append(plugin)
    return out


def _check_known(app: AppConfig, federation: Federation) -> None:
    """A name in the app that no registry has is an error in the app file, at its line (exit 2),
    with the closest known names; the resolver would only say it was not found."""
    for component in app.components.values():
        refs = [component.plugin_ref] if component.plugin_ref is not None else []
        for ref in [*refs, *component.models.values(), *component.data.values()]:
            try:
                federation.versions(parse_requirement(ref).name)
            except BrokenIndex:
                raise
            except PackageNotFound as exc:
                raise FormatError(str(app.path), f"{component.kind} `{component.name}`: {exc.message}",
                                  line=component.line, hint=exc.hint) from None


def _shown(signer: dict[str, str] | None) -> str:
    return f"{signer['identity']} ({signer['issuer']})" if signer else "nobody (unsigned)"


def signer_changes(old: Lock, new: Lock) -> list[str]:
    """Trust on first use, like SSH's known_hosts: a locked plug-in keeps its signer across upgrades."""
    before = old.by_name()
    lines = []
    for plugin in new.plugins:
        prior = before.get(plugin.name)
        if prior is not None and prior.signer is not None and prior.signer != plugin.signer:
            lines.append(f"  {plugin.name} {prior.version} -> {plugin.version}: signed by {_shown(prior.signer)}, "
                         f"now by {_shown(plugin.signer)}")
    return lines


def _locked(candidate: Candidate, used_by: list[str], source: IndexSource | None) -> LockedPlugin:
    """The pin, with what install needs to fetch and check it without the index: where the blob is,
    its signature bundle, and a module's exports and imports (as uv's lock carries url, hash, size)."""
    entry = candidate.entry
    signer = None
    if entry.signature and entry.signature.get("issuer"):
        signer = {"issuer": entry.signature["issuer"], "identity": entry.signature.get("identity", "")}
    blob = None
    if source is not None:
        with contextlib.suppress(CspmError):  # a registry whose config.json cannot be read now: install asks
            blob = source.blob_location(entry.digest, entry.name)
    signature = None
    if entry.signature and entry.signature.get("kind"):
        signature = {k: entry.signature[k] for k in ("kind", "bundle") if entry.signature.get(k)}
    interface = ({"exports": sorted(entry.exports), "imports": sorted(entry.imports)}
                 if kinds.is_module(entry.kind) and blob is not None else None)
    return LockedPlugin(
        name=entry.name, version=entry.version, registry=candidate.registry, digest=entry.digest, size=entry.size,
        kind=entry.kind, abi=entry.abi, capabilities=dict(entry.capabilities), used_by=sorted(set(used_by)),
        signer=signer, manifest=entry.manifest_fields(),
        dependencies={name: str(spec) for name, spec in entry.dependencies.items()},
        blob=blob, signature=signature if blob is not None else None, interface=interface,
    )


def capability_changes(old: Lock, new: Lock) -> list[str]:
    """What each plug-in asks for beyond what the old lock pinned, one line each."""
    before = old.by_name()
    lines = []
    for plugin in new.plugins:
        prior = before.get(plugin.name)
        if prior is None:
            continue
        was, now = prior.capabilities, plugin.capabilities
        label = f"  {plugin.name} {prior.version} -> {plugin.version}:"
        hosts = sorted(set(now.get("hosts") or ()) - set(was.get("hosts") or ()))
        if hosts:
            lines.append(f"{label} new hosts {', '.join(hosts)}")
        paths = sorted(set((now.get("paths") or {}).items()) - set((was.get("paths") or {}).items()))
        if paths:
            lines.append(f"{label} new paths {', '.join(f'{h} -> {g}' for h, g in paths)}")
        if now.get("memory_pages", 256) > was.get("memory_pages", 256):
            lines.append(f"{label} memory {was.get('memory_pages', 256)} -> {now['memory_pages']} pages")
        if now.get("timeout_ms", 60_000) > was.get("timeout_ms", 60_000):
            lines.append(f"{label} timeout {was.get('timeout_ms', 60_000)} -> {now['timeout_ms']} ms")
        if now.get("kv") and not was.get("kv"):
            lines.append(f"{label} kv storage")
        if now.get("wasi") and not was.get("wasi"):
            lines.append(f"{label} WASI")
    return lines


def stale_reasons(app: AppConfig, lock: Lock) -> list[str]:
    """Why `lock` no longer fits `app` (empty: it does)."""
    reasons = []
    locked = lock.by_name()
    wanted: set[str] = set()
    for req in requirements(app):
        wanted.add(req.name)
        plugin = locked.get(req.name)
        if plugin is None:
            reasons.append(f"{req.name} is not in the lock ({req.origin})")
        elif plugin.version not in req.specifier:
            reasons.append(f"{req.name} is locked at {plugin.version}, which does not match {req} ({req.origin})")
    for component in app.components.values():
        if component.plugin_ref is None:
            continue
        plugin = lock.for_component(component.name)
        if plugin is None:
            reasons.append(f"no locked plug-in is used by {component.kind} `{component.name}`")
        elif plugin.name != parse_requirement(component.plugin_ref).name:
            reasons.append(f"{component.kind} `{component.name}` now uses {component.plugin_ref}, the lock "
                           f"gives it {plugin.name}")
    referenced = {c.name for c in app.components.values() if c.plugin_ref is not None or c.models or c.data}
    for plugin in lock.plugins:
        gone = [u for u in plugin.used_by if u not in referenced and "/" not in u]
        if gone:
            reasons.append(f"{plugin.name} is locked for {', '.join(gone)}, which the app no longer has")
    dependencies = {d for p in lock.plugins for d in p.dependencies}
    for name in sorted(set(locked) - wanted - dependencies):
        reasons.append(f"{name} is locked but no longer used")
    return reasons


def _routed_source(plugin: LockedPlugin, federation: Federation) -> IndexSource:
    """The registry that serves this exact version and digest for this machine's config.

    A published app's lock names the publisher's registries, which mean nothing here; the pin that
    matters is the digest, so each plug-in is found by routing its name and checked against it.
    """
    found = federation.versions(plugin.name)
    entry = next((e for e in found.entries if e.version == plugin.version), None)
    if entry is None:
        raise CspmError(f"{plugin.name} {plugin.version} is pinned by the app's lock, but registry "
                        f"{found.source.registry.name} does not have that version")
    if entry.digest != plugin.digest:
        raise CspmError(f"{plugin.name} {plugin.version}: registry {found.source.registry.name} serves "
                        f"{entry.digest}, but the app's lock pins {plugin.digest}",
                        hint="the registry and the app disagree; do not run it until its publisher fixes it")
    return found.source


def source_of(plugin: LockedPlugin, federation: Federation, *, route: bool = False) -> IndexSource:
    """The registry a locked plug-in comes from on this machine."""
    source = _routed_source(plugin, federation) if route else federation.source(plugin.registry)
    if source is None:
        raise CspmError(f"{plugin.name} comes from registry {plugin.registry!r}, which is not in your config",
                        hint=missing_registry_hint(plugin.registry, plugin.name, str(plugin.version), plugin.kind))
    return source


def _indexed(plugin: LockedPlugin, federation: Federation, source: IndexSource) -> IndexEntry | None:
    """The index entry of exactly this pin in the registry it is fetched from, if that index answers."""
    try:
        found = federation.versions(plugin.name)
    except CspmError:
        return None
    if found.source is not source:
        return None
    return next((e for e in found.entries if e.version == plugin.version and e.digest == plugin.digest), None)


Verify = Callable[[LockedPlugin, IndexSource], None]  # raises to refuse a blob (its signature) before it is stored


def downloads(lock: Lock, federation: Federation, *, route: bool = False, need: set[str] | None = None,
              verify: Verify | None = None) -> list[Download]:
    """What to fetch for `lock` (only digests in `need`, when given). Each download's check reads the
    downloaded temp file in bounded pieces, then runs `verify`; a refusal keeps it out of the store.

    A lock that records where each blob is and what it must be (`LockedPlugin.located`) needs no
    index file; an older lock, or a published app's (`route`), is completed from the index."""
    out = []
    wanted = [p for p in lock.plugins if need is None or p.digest in need]
    federation.prefetch([p.name for p in wanted if route or not p.located])
    for plugin in wanted:
        source = _routed_source(plugin, federation) if route else federation.source(plugin.registry)
        if source is None:
            raise CspmError(f"{lock.path}: {plugin.name} comes from registry {plugin.registry!r}, which is not "
                            f"in your config",
                            hint=missing_registry_hint(plugin.registry, plugin.name, str(plugin.version), plugin.kind))
        from_lock = plugin.located and not route
        check = _content_check(plugin, _interface(plugin, federation, source, from_lock))
        if verify is not None:
            check = _then(check, plugin, source, verify)
        out.append(Download(f"{plugin.name} {plugin.version}", plugin.registry,
                            source.blob_url(plugin.digest, plugin.blob if from_lock else None, plugin.name),
                            plugin.digest,
                            plugin.size, check, source))
    return out


def _interface(plugin: LockedPlugin, federation: Federation, source: IndexSource,
               from_lock: bool) -> tuple[list[str], list[str]] | None:
    """The exports and imports the module must have: the lock's record, else its index entry's (None:
    neither can say, and only the plug-in interface itself is checked)."""
    if not kinds.is_module(plugin.kind):
        return None
    if from_lock:
        return (list(plugin.interface["exports"]), list(plugin.interface["imports"])) if plugin.interface else None
    entry = _indexed(plugin, federation, source)
    return (list(entry.exports), list(entry.imports)) if entry is not None else None


def _content_check(plugin: LockedPlugin, interface: tuple[list[str], list[str]] | None) -> Callable[[Path], None]:
    from cspm import content_checks as content  # where a download starts: a warm run never needs it

    what = f"{plugin.name} {plugin.version}"
    check = kinds.of(plugin.kind).blob_check
    if check == "module":
        wasi = bool(plugin.capabilities.get("wasi") or plugin.manifest.get("wasi"))
        exports, imports = interface if interface is not None else (None, None)
        return lambda path: content.check_module(path, what, wasi_declared=wasi, exports=exports, imports=imports)
    if check == "gguf":
        return lambda path: content.check_model(path, what)
    if check == "data":
        return lambda path: content.check_data(path, what)
    return lambda path: None  # an app package in a lock is checked where it is opened (project.open_package)


def _then(check: Callable[[Path], None], plugin: LockedPlugin, source: IndexSource,
          verify: Verify) -> Callable[[Path], None]:
    def both(path: Path) -> None:
        check(path)
        verify(plugin, source)  # the digest is already proven: the signature is checked against it
    return both


def install(lock: Lock, federation: Federation, store: Store, progress: Progress | None = None, *,
            route: bool = False, verify: Verify | None = None) -> int:
    """Fetch and verify everything the lock pins; returns how many blobs were downloaded."""
    need = {p.digest for p in lock.plugins if not store.has(p.digest)}
    if not need:
        return 0
    return fetch_all(downloads(lock, federation, route=route, need=need, verify=verify), store, progress=progress)


def bind_locked(app: AppConfig, lock: Lock, store: Store) -> None:
    """Point each registry-referenced component at its stored module and locked manifest."""
    for component in app.components.values():
        if component.plugin_ref is None:
            _mount_models(component, lock, store)
            continue
        plugin = lock.for_component(component.name)
        if plugin is None:
            raise StaleLock(f"{lock.path} has no plug-in for {component.kind} `{component.name}`",
                            hint="run `cspm lock`")
        path = store.path(plugin.digest)
        if not path.is_file():
            raise CspmError(f"{plugin.name} {plugin.version} is not installed", hint="run `cspm install`")
        manifest = manifest_format.from_fields(plugin.name, plugin.version, plugin.kind, plugin.abi,
                                               plugin.capabilities, plugin.manifest, path)
        component.plugin_path = path
        component.digest = plugin.digest
        assert app.located is not None
        app_format.bind(component, manifest, str(app.path), app.located)
        _mount_models(component, lock, store)


def _mount_models(component: app_format.Component, lock: Lock, store: Store) -> None:
    """Models read-only at /models/<key>/model.gguf, data at /data/<key>/<file> (docs/formats.md)."""
    if not component.models and not component.data:
        return
    locked = lock.by_name()
    mounts: dict[str, str] = {}
    digests: dict[str, str] = {}
    for kind, refs in (("model", component.models), ("data", component.data)):
        for key, ref in refs.items():
            found = locked.get(parse_requirement(ref).name)
            if found is None or found.kind != kind:
                raise StaleLock(f"{lock.path} has no {kind} package for `{key}` of `{component.name}`",
                                hint="run `cspm lock`")
            if not store.has(found.digest):
                raise CspmError(f"{found.name} {found.version} is not installed", hint="run `cspm install`")
            if kind == "model":
                folder = str(materialize_model(store, found.digest))
                mounts[folder] = f"{MODEL_GUEST_ROOT}/{key}"
            else:
                folder = str(materialize_model(store, found.digest, str(found.manifest.get("file") or "data")))
                mounts[folder] = f"{DATA_GUEST_ROOT}/{key}"
            digests[folder] = found.digest
    # kept apart from `grant.paths`: the app's own packages, from the store, are not host folders it asks for
    component.package_mounts = mounts
    component.package_digests = digests
    component.grant = dataclasses.replace(component.grant, wasi=True)



