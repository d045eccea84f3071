"""Lock and install: from an app's registry references to pinned, verified blobs in the store.

`lock_app` resolves and pins; `stale_reasons` says why a lock no longer fits its app; `install`
fetches what a lock pins; `bind_locked` points each referenced component at its stored module and
manifest, so the runtime runs from the lock and the store alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cspm.errors import CspmError
from cspm.fetch import Download, Progress, fetch_all
from cspm.formats import app as app_format
from cspm.formats import manifest as manifest_format
from cspm.formats.app import AppConfig
from cspm.formats.lock import Lock, LockedPlugin, lock_path
from cspm.formats.names import NameError_, parse_requirement
from cspm.index.federation import Federation
from cspm.resolver import Candidate, Req, resolve
from cspm.store import Store
from cspm.verify.interface import check_module


class CapabilityChange(CspmError):
    """An upgrade that asks for more than the lock granted."""


class StaleLock(CspmError):
    exit_code = 2


def requirements(app: AppConfig) -> list[Req]:
    out = []
    for component in app.components.values():
        if component.plugin_ref is None:
            continue
        try:
            requirement = parse_requirement(component.plugin_ref)
        except NameError_ as exc:
            raise CspmError(f"{app.path}:{component.line}: {component.kind} `{component.name}`: {exc}") from None
        out.append(Req(requirement.name, requirement.specifier, f"app component `{component.name}`"))
    return out


def lock_app(app: AppConfig, federation: Federation, *, existing: Lock | None = None,
             upgrade: set[str] | None = None, allow_capabilities: bool = False) -> Lock:
    reqs = requirements(app)
    pinned = {p.name: p.version for p in existing.plugins} if existing else {}
    chosen = resolve(reqs, federation, pinned=pinned, upgrade=upgrade)
    used_by: dict[str, list[str]] = {name: [] for name in chosen}
    for component in app.components.values():
        if component.plugin_ref is not None:
            used_by[parse_requirement(component.plugin_ref).name].append(component.name)
    for candidate in chosen.values():
        for dependency in candidate.entry.dependencies:
            used_by.setdefault(dependency, []).append(candidate.name)
    plugins = [_locked(c, used_by.get(name, [])) for name, c in sorted(chosen.items())]
    new = Lock(lock_path(app.path), plugins)
    if existing is not None and not allow_capabilities:
        widened = capability_changes(existing, new)
        if widened:
            raise CapabilityChange("the new versions ask for more than the lock granted:\n" + "\n".join(widened),
                                   hint="review the difference, then rerun with --allow-capabilities")
    return new


def _locked(candidate: Candidate, used_by: list[str]) -> LockedPlugin:
    entry = candidate.entry
    signer = None
    if entry.signature and entry.signature.get("issuer"):
        signer = {"issuer": entry.signature["issuer"], "identity": entry.signature.get("identity", "")}
    return LockedPlugin(
        name=entry.name, version=entry.version, registry=candidate.registry, digest=entry.digest, size=entry.size,
        kind=entry.kind, abi=entry.abi, capabilities=dict(entry.capabilities), used_by=sorted(set(used_by)),
        signer=signer, manifest=entry.manifest_fields(),
        dependencies={name: str(spec) for name, spec in entry.dependencies.items()},
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
    dependencies = {d for p in lock.plugins for d in p.dependencies}
    for name in sorted(set(locked) - wanted - dependencies):
        reasons.append(f"{name} is locked but no longer used")
    return reasons


def downloads(lock: Lock, federation: Federation) -> list[Download]:
    out = []
    for plugin in lock.plugins:
        source = federation.source(plugin.registry)
        if source is None:
            raise CspmError(f"{lock.path}: {plugin.name} comes from registry {plugin.registry!r}, which is not "
                            f"in your config", hint=f"add it with `cspm registry add {plugin.registry} URL`")
        check: Callable[[bytes], None] | None = None
        if plugin.kind in ("llm", "tool", "agent"):
            what = f"{plugin.name} {plugin.version}"
            wasi = bool(plugin.capabilities.get("wasi") or plugin.manifest.get("wasi"))

            def check(data: bytes, what: str = what, wasi: bool = wasi) -> None:
                check_module(data, what, wasi_declared=wasi)

        out.append(Download(f"{plugin.name} {plugin.version}", plugin.registry, source.blob_url(plugin.digest),
                            plugin.digest, plugin.size, check))
    return out


def install(lock: Lock, federation: Federation, store: Store, progress: Progress | None = None) -> int:
    """Fetch and verify everything the lock pins; returns how many blobs were downloaded."""
    return fetch_all(downloads(lock, federation), store, progress=progress)


def bind_locked(app: AppConfig, lock: Lock, store: Store) -> None:
    """Point each registry-referenced component at its stored module and locked manifest."""
    for component in app.components.values():
        if component.plugin_ref is None:
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


def describe(plugin: LockedPlugin) -> dict[str, Any]:
    return {"name": plugin.name, "version": str(plugin.version), "registry": plugin.registry,
            "digest": plugin.digest, "kind": plugin.kind}


