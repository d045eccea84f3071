"""An app on disk and its lock: what `cspm lock`, `cspm install` and `cspm run` do, without printing.

`Project` ties the app config, its lock, the user's registries and the store together. The warm
path of `prepare` (a fresh lock, every blob in the store) reads no index and opens no connection.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cspm import apppkg, atomicfile, wording
from cspm.errors import CspmError, InputError, NotAnApp
from cspm.fetch import Download, Progress, fetch_all
from cspm.formats import app as app_format
from cspm.formats import app_edit, userconfig
from cspm.formats import lock as lock_format
from cspm.formats.app import AppConfig
from cspm.formats.index_line import IndexEntry
from cspm.formats.lock import Lock, LockedPlugin
from cspm.formats.names import PART_RE, Requirement, parse_requirement
from cspm.index.federation import Federation, PackageNotFound
from cspm.index.source import IndexSource
from cspm.install import StaleLock, bind_locked, install, lock_app, source_of, stale_reasons
from cspm.planner import load_app_file
from cspm.protocol import kinds
from cspm.provenance import Verdict, check_lock, verdict
from cspm.resolver import ResolutionError
from cspm.store import Store

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
    warnings: list[str] = field(default_factory=list)  # e.g. a pinned version that is yanked


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
        self.app: AppConfig = load_app_file(self.app_path, untrusted=origin is not None)
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
             allow_signer_change: bool = False, check: bool = False, warn_yanked: bool = True,
             write: bool = True) -> LockOutcome:
        """Resolve and write the lock; with `check`, only say whether it is up to date (StaleLock if not);
        without `write`, the new lock is only returned (`install` writes it once its blobs are verified).

        A pin that is yanked is kept (only an upgrade moves it, like Cargo), and warned about."""
        existing = self.existing_lock()
        reasons = stale_reasons(self.app, existing) if existing else ["there is no lock yet"]
        if check:
            if reasons:
                raise StaleLock(f"{self.lock_file} is out of date: " + "; ".join(reasons),
                                hint="run `cspm lock`")
            assert existing is not None
            outcome = LockOutcome(existing, [], False)
        elif existing is not None and not reasons and upgrade is None:
            outcome = LockOutcome(existing, [], False)
        else:
            new = lock_app(self.app, self.federation, existing=existing, upgrade=upgrade,
                           allow_capabilities=allow_capabilities, allow_signer_change=allow_signer_change,
                           warn=self.warn)
            changes = diff(existing, new)
            written = existing is None or not lock_format.same(existing, new)
            if written and write:
                lock_format.write(new)
            outcome = LockOutcome(new, changes, written, reasons if existing else [])
        if warn_yanked:
            outcome.warnings = self.yanked_warnings(outcome.lock)
        return outcome

    def yanked_warnings(self, lock: Lock, *, fresh: bool = False) -> list[str]:
        """One warning (also passed to `warn`) per pin its registry has yanked, with the reason.

        Only what is already read or cached is looked at (`fresh`: the index is asked too), so the
        warm path of `cspm run` stays off the network; a registry that cannot answer is no warning.
        """
        if not lock.plugins:
            return []
        if fresh:
            self.federation.prefetch([p.name for p in lock.plugins])
        warnings = []
        for plugin in lock.plugins:
            entry = None
            if fresh:
                with contextlib.suppress(CspmError):
                    listed = [e for e in self.federation.versions(plugin.name).entries if e.version == plugin.version]
                    entry = next((e for e in listed if e.digest == plugin.digest), None)
                    if listed and entry is None and not self.route:
                        text = (f"registry {plugin.registry} now has {plugin.name} {plugin.version} as "
                                f"{listed[0].digest}, but {lock.path} pins {plugin.digest}: the lock's digest is "
                                f"kept (the version was re-published under the same tag)")
                        self.warn(text)
                        warnings.append(text)
            if entry is None:
                entry = self.federation.known_yank(plugin.name, plugin.version, plugin.digest,
                                                   None if self.route else plugin.registry)
            if entry is None or not entry.is_yanked:
                continue
            reason = f": {entry.yanked}" if isinstance(entry.yanked, str) and entry.yanked else ""
            move = ("its publisher must release a version without it" if self.route else
                    f"move off it with `cspm lock --upgrade-package {plugin.name}`")
            text = (f"{plugin.name} {plugin.version}, pinned by {lock.path}, is yanked in registry "
                    f"{plugin.registry}{reason}; {move}")
            self.warn(text)
            warnings.append(text)
        return warnings

    def install(self, *, frozen: bool = False, progress: Progress | None = None,
                allow_capabilities: bool = False, allow_signer_change: bool = False,
                verify_all: bool = False) -> tuple[LockOutcome, InstallOutcome]:
        """Fetch and verify everything the lock pins (locking first unless `frozen`), then write the lock:
        never a lock that pins a blob which could not be fetched or verified (`--frozen` would then
        refuse to go on from it).

        Signatures are checked for what was downloaded now, or for everything with `verify_all`
        (`cspm install`: cheap when warm, each verdict is cached).
        """
        locked = self.lock(check=frozen, allow_capabilities=allow_capabilities,
                           allow_signer_change=allow_signer_change, warn_yanked=False, write=False)
        locked.warnings = self.yanked_warnings(locked.lock, fresh=verify_all)
        if verify_all:  # `cspm install` re-hashes stored modules first: a changed blob is a digest mismatch
            for plugin in locked.lock.plugins:
                if kinds.of(plugin.kind).rehash_on_install and self.store.has(plugin.digest) and not self.store.intact(
                        plugin.digest):
                    self.warn(f"the stored blob of {plugin.name} {plugin.version} no longer matches its digest "
                              f"{plugin.digest} (changed on disk): removed, fetching it again")
        missing = [p for p in locked.lock.plugins if not self.store.has(p.digest)]
        plan = getattr(progress, "plan", None)
        if missing and plan is not None:
            plan(len(missing), sum(p.size for p in missing))
        proven: dict[str, Verdict] = {}
        trust = self.federation.config.trust

        def verify(plugin: LockedPlugin, source: IndexSource) -> None:
            """Inside the download check: a blob whose signature is refused is never stored."""
            proven[plugin.digest] = verdict(plugin, source, self.federation, trust, from_lock=not self.route)

        downloaded = (install(locked.lock, self.federation, self.store, progress=progress, route=self.route,
                              verify=verify) if missing else 0)
        # what was not downloaded here: all of it for `verify_all`, or what another process stored meanwhile
        wanted = locked.lock.plugins if verify_all else missing
        targets = {p.digest for p in wanted} - set(proven)
        verdicts = []
        if targets:
            sources = {p.name: source_of(p, self.federation, route=self.route) for p in locked.lock.plugins
                       if p.digest in targets}
            verdicts = check_lock(locked.lock, self.federation, self.store, trust, sources, only=targets,
                                  from_lock=not self.route)
        rank = {p.name: i for i, p in enumerate(locked.lock.plugins)}
        verdicts = sorted([*verdicts, *proven.values()], key=lambda v: rank.get(v.name, 0))
        if locked.written:  # every blob it pins is stored and verified
            lock_format.write(locked.lock)
        return locked, InstallOutcome(locked.lock, downloaded, sum(p.size for p in missing), verdicts)

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

    def _editable(self) -> None:
        """`add` and `remove` edit app.yaml text: the original app.json is converted first."""
        if self.app.original:
            raise InputError(f"{self.app_path} is an original Chainsocket app.json: `cspm add` and `cspm remove` "
                             "edit an app.yaml",
                             hint=f"convert it first: `cspm import {self.app_path}`, then edit the app.yaml it writes")

    def add(self, reference: str, *, as_name: str | None = None, description: str | None = None,
            into: str | None = None, ask: Callable[[str], bool] | None = None,
            progress: Progress | None = None) -> Added:
        """Append a component for `reference` to the app file, then lock and install (all or nothing).

        `into`: the agent that gets the new llm or tool in its list; `ask` (a terminal) offers the
        entry agent instead. Without either, nothing is wired silently: `Added.unwired` says so.
        """
        self._editable()
        entry, section, item, secrets = _plan(self.federation, reference, self.app, as_name, description)
        name = item["name"]
        target = _wiring_target(self.app, entry.kind, name, into, ask)
        original = self.app_path.read_text(encoding="utf-8")
        text = app_edit.add_component(original, section, item, str(self.app_path))
        if target is not None:
            text = app_edit.add_reference(text, target, section, name, str(self.app_path))
        self.app = app_edit.write_checked(self.app_path, text)
        try:
            locked, installed = self.install(progress=progress)
        except BaseException:
            app_edit.write_checked(self.app_path, original)  # nothing half-done: the app as it was
            self.app = app_format.load(self.app_path)
            raise
        entry_agent = self.app.entry_component
        unwired = entry_agent.name if (target is None and entry.kind in ("llm", "tool")
                                       and entry_agent.kind == "agent") else None
        return Added(item["plugin"], entry.kind, name, locked, installed, secrets,
                     item.get("grant", {}).get("hosts", []), target, unwired)

    def remove(self, name: str) -> tuple[list[str], LockOutcome | None]:
        """Drop a component (or every component using plug-in `ns/name`); relock what is left."""
        self._editable()
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
    hosts: list[str] = field(default_factory=list)  # granted for it
    wired_into: str | None = None  # the agent whose list it was added to
    unwired: str | None = None  # the entry agent, which cannot call it yet
    entry: bool = False  # it started the app: it is the `entry`

    def to_dict(self) -> dict[str, Any]:
        return {"requirement": self.requirement, "kind": self.kind, "component": self.component,
                "secrets": self.secrets, "grant": self.hosts, "into": self.wired_into, "entry": self.entry}


def add(app_path: Path | str, reference: str, *, as_name: str | None = None, description: str | None = None,
        into: str | None = None, ask: Callable[[str], bool] | None = None, offline: bool = False,
        warn: Warn | None = None, progress: Progress | None = None) -> Added:
    """`cspm add`: into an existing app, or starting one (a missing, empty or name-only app.yaml),
    whose first component becomes the `entry`."""
    path = Path(app_path)
    shown = str(path)
    original = path.read_text(encoding="utf-8") if path.exists() else None
    if original is not None and not app_edit.is_blank(original, shown):
        with Project(path, offline=offline, warn=warn) as project:
            return project.add(reference, as_name=as_name, description=description, into=into, ask=ask,
                               progress=progress)
    if into is not None:
        raise InputError(f"{shown} has no agent {into!r} yet: the first component becomes the app's entry",
                         hint="add the agent first, then its llms and tools with --into")
    federation = Federation(userconfig.load(), offline=offline, warn=warn)
    had_lock = lock_format.lock_path(path).exists()
    try:
        entry, section, item, secrets = _plan(federation, reference, None, as_name, description)
        app_edit.write_checked(path, app_edit.start_app(original or "", section, item, shown))
        with Project(path, offline=offline, warn=warn, federation=federation) as project:
            locked, installed = project.install(progress=progress)
    except BaseException:
        if original is None:
            path.unlink(missing_ok=True)
        elif path.read_text(encoding="utf-8") != original:
            atomicfile.write(path, original, mode=path.stat().st_mode & 0o777)
        if not had_lock:
            lock_format.lock_path(path).unlink(missing_ok=True)
        raise
    finally:
        federation.close()
    return Added(item["plugin"], entry.kind, item["name"], locked, installed, secrets,
                 item.get("grant", {}).get("hosts", []), entry=True)


def _env_name(plugin: str, secret: str) -> str:
    """The variable of a secret whose manifest names none: `<NAME>_<SECRET>` (say so: it is a guess)."""
    return f"{plugin.split('/')[1]}_{secret}".upper().replace("-", "_")


def _plan(federation: Federation, reference: str, app: AppConfig | None, as_name: str | None,
          description: str | None) -> tuple[IndexEntry, str, dict[str, Any], list[str]]:
    """The plug-in `reference` resolves to, its section, the app.yaml item to append, and the secret
    sources bound: the ones its manifest names (`env`) or requires, and a grant of their origins."""
    requirement = package_requirement(federation, reference)
    entry = _best(federation, requirement)
    if entry is None:
        raise _no_match(federation, requirement)
    section = {"llm": "llms", "tool": "tools", "agent": "agents"}.get(entry.kind)
    if section is None:
        raise CspmError(*wording.how_to_use(entry.kind, entry.name, str(entry.version)))
    components = app.components if app is not None else {}
    name = as_name or entry.name.split("/")[1].replace("-", "_")
    users = [c for c in components.values() if c.plugin_ref and parse_requirement(c.plugin_ref).name == entry.name]
    if users and as_name is None:
        first = users[0]
        raise CspmError(f"{app.path if app else 'the app'} already has {wording.a(first.kind)} called "
                        f"{first.name!r} that uses {entry.name}",
                        hint=f"to add a second one on purpose, name it: `cspm add {reference} --as NAME`")
    if name in components:
        raise CspmError(f"{app.path if app else 'the app'} already has {wording.a(components[name].kind)} "
                        f"called {name!r}",
                        hint="pick another name with --as")
    spec = str(requirement.specifier) if "@" in reference else f"^{entry.version}"
    item: dict[str, Any] = {"name": name, "description": description or entry.description or name,
                            "plugin": f"{entry.name}@{spec}"}
    declared = entry.manifest_fields().get("secrets") or {}
    bound = {key: decl for key, decl in declared.items() if decl.get("env") or decl.get("required")}
    if bound:
        item["secrets"] = {key: f"env:{decl.get('env') or _env_name(entry.name, key)}" for key, decl in bound.items()}
    hosts = list(dict.fromkeys([*(entry.capabilities.get("hosts") or ()),
                                *(h for decl in bound.values() for h in decl.get("hosts") or ())]))
    if hosts:
        item["grant"] = {"hosts": hosts}
    return entry, section, item, sorted(item.get("secrets", {}).values())


def _wiring_target(app: AppConfig, kind: str, name: str, into: str | None,
                   ask: Callable[[str], bool] | None) -> str | None:
    """The agent whose list gets the new component: `into`, or the entry agent if `ask` says yes."""
    if into is not None:
        agent = app.components.get(into)
        if agent is None or agent.kind != "agent":
            agents = [c.name for c in app.components.values() if c.kind == "agent"]
            close = difflib.get_close_matches(into, agents, n=1)
            raise InputError(f"--into {into}: {app.path} has no agent called {into!r}"
                             + (f" (did you mean {close[0]!r}?)" if close else ""),
                             hint=f"its agents: {', '.join(agents) or 'none'}")
        return into
    entry = app.entry_component
    if ask is not None and kind in ("llm", "tool") and entry.kind == "agent" and ask(
            f"Let agent {entry.name!r} use the {kind} {name!r}?"):
        return entry.name
    return None


def _no_match(federation: Federation, requirement: Requirement) -> ResolutionError:
    """The package exists but no version fits: a resolution failure (exit 1), like `cspm lock`'s."""
    found = federation.versions(requirement.name)
    shown = ", ".join(str(e.version) + (" (yanked)" if e.is_yanked else "") for e in found.entries)
    return ResolutionError(f"no version of {requirement.name} matches {requirement.specifier or 'any'} "
                           f"(registry {found.source.registry.name} has {shown})")


def package_requirement(federation: Federation, reference: str) -> Requirement:
    """A `ns/name@spec` the user typed; a bare `name` is refused with the closest known names."""
    from cspm.index.query import bare_name

    bare = bare_name(federation, reference)
    if bare is not None:
        raise bare
    return parse_requirement(reference)


def is_package_reference(text: str) -> bool:
    """`ns/app@1` rather than a file: no such file, no YAML suffix, and it parses as a requirement
    (or is a bare name, `self-ask-demo`, which `open_package` answers with "did you mean")."""
    if text.endswith((".yaml", ".yml", ".lock")) or Path(text).exists():
        return False
    if PART_RE.fullmatch(text.split("@", 1)[0]):
        return True
    try:
        parse_requirement(text)
    except CspmError:
        return False
    return True


def open_package(reference: str, *, offline: bool = False, refresh: bool = False, warn: Warn | None = None,
                 config: userconfig.UserConfig | None = None, store: Store | None = None,
                 progress: Progress | None = None) -> Project:
    """A published app (`ns/app@spec`) as a Project, fetched into the store when missing.

    Warm: a cached index that already has a matching version is used as is (`refresh` asks the
    registry again), and nothing is downloaded, so the run needs no network.
    """
    config = config or userconfig.load()
    store = store or Store()
    federation = Federation(config, offline=offline, warn=warn, prefer_cache=not refresh)
    try:
        requirement = package_requirement(federation, reference)
    except PackageNotFound as exc:
        federation.close()
        raise PackageNotFound(f"{reference!r} is neither an app file nor a package name (NAMESPACE/NAME)",
                              hint=exc.hint) from None
    entry = _best(federation, requirement)
    if entry is None and not refresh and not offline:
        federation.close()
        federation = Federation(config, offline=offline, warn=warn)
        entry = _best(federation, requirement)
    if entry is None:
        raise _no_match(federation, requirement)
    if kinds.of(entry.kind).payload != "app":
        raise NotAnApp(*wording.how_to_use(entry.kind, entry.name, str(entry.version)))
    from cspm import content_checks as content

    source = federation.versions(entry.name).source
    what = f"{entry.name} {entry.version}"
    url = source.blob_url(entry.digest, name=entry.name)
    fetch_all([Download(what, source.registry.name, url, entry.digest, entry.size,
                        lambda path: content.check_app(path, what), source)], store, progress=progress)
    app_path = apppkg.materialize(store.read(entry.digest), entry.digest, entry.name)
    origin = app_format.Origin(entry.name, str(entry.version), source.registry.name, source.registry.url)
    return Project(app_path, offline=offline, warn=warn, config=config, store=store, federation=federation,
                   route=True, origin=origin)


def _best(federation: Federation, requirement: Requirement) -> IndexEntry | None:
    entries = federation.versions(requirement.name).entries
    matching = [e for e in entries if not e.is_yanked and e.version in requirement.specifier]
    return max(matching, key=lambda e: e.version) if matching else None
