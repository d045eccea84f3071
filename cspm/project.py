"""An app on disk and its lock: what `cspm lock`, `cspm install` and `cspm run` do, without printing.

`Project` ties the app config, its lock, the user's registries and the store together. The warm
path of `prepare` (a fresh lock, every blob in the store) reads no index and opens no connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cspm import apppkg
from cspm.errors import CspmError
from cspm.fetch import Download, Progress, fetch_all
from cspm.formats import app as app_format
from cspm.formats import app_edit, userconfig
from cspm.formats import lock as lock_format
from cspm.formats.app import AppConfig
from cspm.formats.index_line import IndexEntry
from cspm.formats.lock import Lock
from cspm.formats.names import Requirement, parse_requirement
from cspm.index.federation import Federation, PackageNotFound
from cspm.install import StaleLock, bind_locked, install, lock_app, source_of, stale_reasons
from cspm.store import Store
from cspm.verify.provenance import Verdict, check_lock

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Change:
    name: str
    old: str | None  # None: added
    new: str | None  # None: removed

    @property
    def verb(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "updated" if self.old != self.new else "kept"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "old": self.old, "new": self.new, "change": self.verb}


@dataclass
class LockOutcome:
    lock: Lock
    changes: list[Change]
    written: bool
    reasons: list[str] = field(default_factory=list)  # why the old lock was stale


@dataclass
class InstallOutcome:
    lock: Lock
    downloaded: int
    bytes_total: int
    verdicts: list[Verdict] = field(default_factory=list)


def diff(old: Lock | None, new: Lock) -> list[Change]:
    before = {p.name: str(p.version) for p in old.plugins} if old else {}
    after = {p.name: str(p.version) for p in new.plugins}
    changes = [Change(name, before.get(name), after.get(name)) for name in sorted(set(before) | set(after))]
    return [c for c in changes if c.old != c.new]


class Project:
    def __init__(self, app_path: Path | str, *, offline: bool = False, warn: Warn | None = None,
                 config: userconfig.UserConfig | None = None, store: Store | None = None,
                 federation: Federation | None = None, route: bool = False,
                 origin: app_format.Origin | None = None) -> None:
        """`origin`: where a published app came from; it makes the app untrusted (cspm.approvals)."""
        self.app_path = Path(app_path)
        self.route = route  # a published app: find each pin by routing its name (see install._routed_source)
        self.offline = offline
        self.warn = warn or (lambda message: None)
        self._config = config
        self._federation = federation
        self.store = store or Store()
        self.app: AppConfig = app_format.load(self.app_path, untrusted=origin is not None)
        self.app.origin = origin
        self.lock_file = lock_format.lock_path(self.app_path)

    @property
    def federation(self) -> Federation:
        if self._federation is None:
            config = self._config or userconfig.load()
            self._federation = Federation(config, offline=self.offline, warn=self.warn)
        return self._federation

    def close(self) -> None:
        if self._federation is not None:
            self._federation.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def uses_registry(self) -> bool:
        return any(c.plugin_ref is not None or c.models or c.data for c in self.app.components.values())

    def existing_lock(self) -> Lock | None:
        return lock_format.load(self.lock_file) if self.lock_file.exists() else None

    def lock(self, *, upgrade: set[str] | None = None, allow_capabilities: bool = False,
             allow_signer_change: bool = False, check: bool = False) -> LockOutcome:
        """Resolve and write the lock; with `check`, only say whether it is up to date (StaleLock if not)."""
        existing = self.existing_lock()
        reasons = stale_reasons(self.app, existing) if existing else ["there is no lock yet"]
        if check:
            if reasons:
                raise StaleLock(f"{self.lock_file} is out of date: " + "; ".join(reasons),
                                hint="run `cspm lock`")
            assert existing is not None
            return LockOutcome(existing, [], False)
        if existing is not None and not reasons and upgrade is None:
            return LockOutcome(existing, [], False)
        new = lock_app(self.app, self.federation, existing=existing, upgrade=upgrade,
                       allow_capabilities=allow_capabilities, allow_signer_change=allow_signer_change)
        changes = diff(existing, new)
        written = existing is None or lock_format.dump(existing) != lock_format.dump(new)
        if written:
            lock_format.write(new)
        return LockOutcome(new, changes, written, reasons if existing else [])

    def install(self, *, frozen: bool = False, progress: Progress | None = None,
                allow_capabilities: bool = False, allow_signer_change: bool = False,
                verify_all: bool = False) -> tuple[LockOutcome, InstallOutcome]:
        """Fetch and verify everything the lock pins (locking first unless `frozen`).

        Signatures are checked for what was downloaded now, or for everything with `verify_all`
        (`cspm install`: cheap when warm, each verdict is cached).
        """
        locked = self.lock(check=frozen, allow_capabilities=allow_capabilities,
                           allow_signer_change=allow_signer_change)
        missing = [p for p in locked.lock.plugins if not self.store.has(p.digest)]
        plan = getattr(progress, "plan", None)
        if missing and plan is not None:
            plan(len(missing), sum(p.size for p in missing))
        downloaded = (install(locked.lock, self.federation, self.store, progress=progress, route=self.route)
                      if missing else 0)
        targets = None if verify_all else {p.digest for p in missing}
        verdicts = []
        if targets is None or targets:
            sources = {p.name: source_of(p, self.federation, route=self.route) for p in locked.lock.plugins
                       if targets is None or p.digest in targets}
            verdicts = check_lock(locked.lock, self.federation, self.store, self.federation.config.trust, sources,
                                  only=targets, fresh={p.digest for p in missing})
        return locked, InstallOutcome(locked.lock, downloaded, sum(p.size for p in missing), verdicts)

    def missing(self, lock: Lock) -> list[str]:
        return [p.digest for p in lock.plugins if not self.store.has(p.digest)]

    def prepare(self, *, frozen: bool = False, progress: Progress | None = None,
                on_locked: Callable[[LockOutcome], None] | None = None) -> AppConfig:
        """The app, with every registry reference bound to its stored module, ready for the runtime."""
        if not self.uses_registry:
            return self.app
        locked, _ = self.install(frozen=frozen, progress=progress)
        if on_locked is not None and locked.written:
            on_locked(locked)
        bind_locked(self.app, locked.lock, self.store)
        return self.app

    def add(self, reference: str, *, as_name: str | None = None, description: str | None = None,
            progress: Progress | None = None) -> Added:
        """Append a component for `reference` to the app file, then lock and install (all or nothing)."""
        requirement = parse_requirement(reference)
        entry = _best(self.federation, requirement)
        if entry is None:
            raise _no_match(self.federation, requirement)
        section = {"llm": "llms", "tool": "tools", "agent": "agents"}.get(entry.kind)
        if section is None:
            raise CspmError(f"{entry.name} is an {entry.kind}, not a plug-in an app can use",
                            hint=f"run it with `cspm run {entry.name}@{entry.version}`")
        name = as_name or entry.name.split("/")[1].replace("-", "_")
        if name in self.app.components:
            raise CspmError(f"{self.app_path} already has a {self.app.components[name].kind} called {name!r}",
                            hint="pick another name with --as")
        spec = str(requirement.specifier) if "@" in reference else f"^{entry.version}"
        item: dict[str, Any] = {"name": name, "description": description or entry.description or name,
                                "plugin": f"{entry.name}@{spec}"}
        secrets = entry.manifest_fields().get("secrets") or {}
        required = {key: f"env:{_env_name(entry.name, key)}" for key, decl in secrets.items()
                    if decl.get("required")}
        if required:
            item["secrets"] = required
        original = self.app_path.read_text(encoding="utf-8")
        text = app_edit.add_component(original, section, item, str(self.app_path))
        self.app = app_edit.write_checked(self.app_path, text)
        try:
            locked, installed = self.install(progress=progress)
        except BaseException:
            app_edit.write_checked(self.app_path, original)  # nothing half-done: the app as it was
            self.app = app_format.load(self.app_path)
            raise
        return Added(f"{entry.name}@{spec}", entry.kind, name, locked, installed, sorted(required.values()))

    def remove(self, name: str) -> tuple[list[str], LockOutcome | None]:
        """Drop a component (or every component using plug-in `ns/name`); relock what is left."""
        if "/" in name:
            target = parse_requirement(name).name
            names = [c.name for c in self.app.components.values()
                     if c.plugin_ref and parse_requirement(c.plugin_ref).name == target]
        else:
            names = [name] if name in self.app.components else []
        if not names:
            raise CspmError(f"{self.app_path} has no component {'using ' if '/' in name else ''}{name!r}")
        for component in names:
            if component == self.app.entry:
                raise CspmError(f"{component!r} is the app's entry", hint="change `entry` first")
            users = [u for u in app_edit.users_of(self.app, component) if u not in names]
            if users:
                raise CspmError(f"{component!r} is used by {', '.join(users)}",
                                hint="remove it from their llms/tools/agents lists first")
        text = self.app_path.read_text(encoding="utf-8")
        for component in names:
            text, _ = app_edit.remove_component(text, component, str(self.app_path))
        self.app = app_edit.write_checked(self.app_path, text)
        if not self.uses_registry:
            self.lock_file.unlink(missing_ok=True)
            return names, None
        return names, self.lock()


@dataclass
class Added:
    requirement: str
    kind: str
    component: str
    locked: LockOutcome
    installed: InstallOutcome
    secrets: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"requirement": self.requirement, "kind": self.kind, "component": self.component,
                "secrets": self.secrets}


def _env_name(plugin: str, secret: str) -> str:
    return f"{plugin.split('/')[1]}_{secret}".upper().replace("-", "_")


def _no_match(federation: Federation, requirement: Requirement) -> PackageNotFound:
    found = federation.versions(requirement.name)
    shown = ", ".join(str(e.version) + (" (yanked)" if e.is_yanked else "") for e in found.entries)
    return PackageNotFound(f"no version of {requirement.name} matches {requirement.specifier or 'any'} "
                           f"(registry {found.source.registry.name} has {shown})")


def is_package_reference(text: str) -> bool:
    """`ns/app@1` rather than a file: no such file, no YAML suffix, and it parses as a requirement."""
    if text.endswith((".yaml", ".yml", ".lock")) or Path(text).exists():
        return False
    try:
        parse_requirement(text)
    except CspmError:
        return False
    return True


class NotAnApp(CspmError):
    pass


def open_package(reference: str, *, offline: bool = False, refresh: bool = False, warn: Warn | None = None,
                 config: userconfig.UserConfig | None = None, store: Store | None = None,
                 progress: Progress | None = None) -> Project:
    """A published app (`ns/app@spec`) as a Project, fetched into the store when missing.

    Warm: a cached index that already has a matching version is used as is (`refresh` asks the
    registry again), and nothing is downloaded, so the run needs no network.
    """
    requirement = parse_requirement(reference)
    config = config or userconfig.load()
    store = store or Store()
    federation = Federation(config, offline=offline, warn=warn, prefer_cache=not refresh)
    entry = _best(federation, requirement)
    if entry is None and not refresh and not offline:
        federation.close()
        federation = Federation(config, offline=offline, warn=warn)
        entry = _best(federation, requirement)
    if entry is None:
        raise _no_match(federation, requirement)
    if entry.kind != "app":
        raise NotAnApp(f"{entry.name} is a{'n' if entry.kind[0] in 'a' else ''} {entry.kind}, not an app",
                       hint=f"use it from an app.yaml: `cspm add {entry.name}@{entry.version}`")
    source = federation.versions(entry.name).source
    what = f"{entry.name} {entry.version}"
    fetch_all([Download(what, source.registry.name, source.blob_url(entry.digest), entry.digest, entry.size,
                        lambda data: apppkg.check(data, what))], store, progress=progress)
    app_path = apppkg.materialize(store.read(entry.digest), entry.digest, entry.name)
    origin = app_format.Origin(entry.name, str(entry.version), source.registry.name, source.registry.url)
    return Project(app_path, offline=offline, warn=warn, config=config, store=store, federation=federation,
                   route=True, origin=origin)


def _best(federation: Federation, requirement: Requirement) -> IndexEntry | None:
    entries = federation.versions(requirement.name).entries
    matching = [e for e in entries if not e.is_yanked and e.version in requirement.specifier]
    return max(matching, key=lambda e: e.version) if matching else None
