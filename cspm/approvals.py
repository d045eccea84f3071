"""What a published app may touch, and the user's approval of it, pinned per package.

An app from a registry (`cspm run ns/app`) is someone else's file: it may read environment
variables, use secrets, mount host folders and reach hosts only once the user has seen that list and
said yes. Like SSH's known_hosts, the answer is pinned (`approvals.json` in the config folder) by
package identity (registry URL + name); a later version that asks for nothing more runs without a
question, one that asks for more is shown what is new and asked again. An app that asks for nothing
beyond its own packages (its plug-ins, models and data, and kv memory scoped to its identity) needs
no approval, so an offline demo stays one command. docs/security.md states the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cspm import atomicfile, paths
from cspm.errors import CspmError, NotApproved
from cspm.formats import bounded_json
from cspm.formats.app import AppConfig, Origin
from cspm.runtime.secrets import local_path

FILE = "approvals.json"
FORMAT = 1
MAX_FILE = 4 * 1024 * 1024
NEEDS_APPROVAL = ("env", "secret", "path", "host")  # kv is scoped to the package: shown, never asked


@dataclass(frozen=True, order=True)
class Capability:
    component: str
    kind: str  # env | secret | path | host | kv
    value: str

    @property
    def key(self) -> str:
        return f"{self.component}\t{self.kind}\t{self.value}"

    def describe(self) -> str:
        if self.kind == "env":
            return f"read environment variable {self.value} (its value goes into the plug-in's config)"
        if self.kind == "secret":
            name, _, source = self.value.partition("=")
            where = f"environment variable {source[4:]}" if source.startswith("env:") else f"file {source[5:]}"
            return f"use secret `{name}` from {where} (cspm sends it to granted hosts; the plug-in never sees it)"
        if self.kind == "path":
            mode, _, folder = self.value.partition(":")
            return f"{'read and WRITE' if mode == 'rw' else 'read'} your folder {folder}"
        if self.kind == "host":
            return f"connect to {self.value}"
        return "keep memory (kv), scoped to this package"

    def to_dict(self) -> dict[str, str]:
        return {"component": self.component, "kind": self.kind, "value": self.value, "what": self.describe()}


def of_app(app: AppConfig) -> list[Capability]:
    """Everything the app's components may touch outside their own packages, in a stable order."""
    out: set[Capability] = set()
    base = app.path.parent
    for component in app.components.values():
        name = component.name
        out.update(Capability(name, "env", var) for var in component.env_reads)
        for secret in component.secrets:
            kind, _, ref = secret.source.partition(":")
            source = f"file:{local_path(ref, base)}" if kind == "file" else secret.source
            out.add(Capability(name, "secret", f"{secret.name}={source}"))
        for host_path in component.grant.paths:
            writable = host_path.startswith("rw:")
            folder = host_path[3:] if writable else host_path.removeprefix("ro:")
            out.add(Capability(name, "path", f"{'rw' if writable else 'ro'}:{local_path(folder, base)}"))
        out.update(Capability(name, "host", host) for host in component.grant.hosts)
        if component.grant.kv:
            out.add(Capability(name, "kv", "own"))
    return sorted(out)


@dataclass
class Request:
    """What to ask the user: the app, all it wants, and which of those were never approved."""

    origin: Origin
    wanted: list[Capability]
    new: list[Capability]
    approved_version: str | None  # the version last approved, when this one asks for more

    def to_dict(self) -> dict[str, object]:
        return {"app": self.origin.name, "version": self.origin.version, "registry": self.origin.registry,
                "capabilities": [c.to_dict() for c in self.wanted], "new": [c.to_dict() for c in self.new],
                "approved_version": self.approved_version}


Approver = Callable[[Request], bool]


def path() -> Path:
    return paths.config_dir() / FILE


def _load() -> dict[str, dict[str, object]]:
    file = path()
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CspmError(f"{file} cannot be read: {exc.strerror or exc}") from None
    try:
        data = bounded_json.loads(raw, max_bytes=MAX_FILE)
    except bounded_json.JsonRejected as exc:
        raise CspmError(f"{file} is damaged: {exc}", hint="delete it; published apps will ask again") from None
    apps = data.get("apps") if isinstance(data, dict) and data.get("cspm-approvals") == FORMAT else None
    if not isinstance(apps, dict):
        raise CspmError(f"{file} is not an approvals file of format {FORMAT}",
                        hint="delete it; published apps will ask again")
    return {k: v for k, v in apps.items() if isinstance(v, dict)}


def _approved(entry: dict[str, object] | None) -> set[str]:
    keys = entry.get("approved") if entry else None
    return {k for k in keys if isinstance(k, str)} if isinstance(keys, list) else set()


def _save(identity: str, origin: Origin, keys: Iterable[str]) -> None:
    """Pin the approval: read, change and atomically replace the file under a lock (concurrent runs)."""

    from datetime import UTC, datetime

    from filelock import FileLock

    file = path()
    with FileLock(str(file) + ".lock"):
        apps = _load()
        apps[identity] = {"name": origin.name, "registry": origin.registry_url, "version": origin.version,
                          "approved": sorted(set(keys)), "at": datetime.now(UTC).isoformat(timespec="seconds")}
        text = json.dumps({"cspm-approvals": FORMAT, "apps": apps}, indent=1, sort_keys=True) + "\n"
        atomicfile.write(file, text)


def require(app: AppConfig, approve: Approver | None) -> None:
    """Mark `app` approved to run, asking `approve` when it wants what the user has not approved.

    The user's own app files are always approved. NotApproved when the answer is no (or nobody can
    be asked): it lists what the app asks for and how to approve it.
    """
    origin = app.origin
    if origin is None:
        app.approved = True
        return
    wanted = of_app(app)
    asked = [c for c in wanted if c.kind in NEEDS_APPROVAL]
    if not asked:
        app.approved = True
        return
    entry = _load().get(origin.identity)
    pinned = _approved(entry)
    new = [c for c in asked if c.key not in pinned]
    if not new:
        app.approved = True
        return
    previous = entry.get("version") if entry else None
    request = Request(origin, wanted, new, previous if isinstance(previous, str) else None)
    if approve is None or not approve(request):
        raise refusal(request)
    _save(origin.identity, origin, pinned | {c.key for c in asked})
    app.approved = True


def refusal(request: Request) -> NotApproved:
    origin = request.origin
    what = (f"asks for more than you approved for {request.approved_version}" if request.approved_version
            else "is a published app; it asks to")
    lines = "".join(f"\n  {c.component}: {c.describe()}" for c in request.new)
    return NotApproved(f"{origin.name} {origin.version} (registry {origin.registry}) {what}:{lines}",
                       hint=f"review it, then run `cspm run {origin.name}@{origin.version} --allow-capabilities` "
                            f"(remembered in {path()})")
