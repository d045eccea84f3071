"""Run plans kept by the exact bytes they were made from, so that a warm `cspm run` skips planning.

`cspm run APP --input X` plans an app (parse and schema-check app.yaml, interpolate `${VAR}`, hash
local modules, build the plan: cspm.planner) and then runs it. Planning the same bytes again gives
the same plan, so the normal path writes what it planned here, under a key over everything planning
read, and the fast path (cspm.cli.fast_run) runs that plan without importing the planner, YAML,
the schemas, typer or rich.

The key (a file name) covers: this format, the cspm and Python versions, the working folder, the
APP argument as typed and its real path, `$HOME` (`~` in granted folders and secret files), and the
bytes of app.yaml, of its app.lock and of the user config.yaml. The entry then holds what the key
cannot cover, each checked on every use:

- the values of the environment variables the app's `${VAR}` reads (a digest of names and values);
- every local module file by (size, mtime_ns, ctime_ns, inode), and the path the app names it by
  still resolving to it: an edited, rebuilt or re-linked `.wasm` is planned (hashed) again; the
  runtime still checks each module's digest before compiling it;
- every granted folder: still a folder, still resolving to the path in the plan.

Only a plain local app is kept: no registry reference (those are re-checked against the lock and
the registry's yanks on every run), no plug-in folder with a plugin.yaml, no published app (its
approvals), no bundle, and nothing warned while planning. Any doubt is a miss: the normal path runs.
An entry is read only from a folder and file of this user that no one else may write, bounded in
size, and its plan must match the digest stored beside it; a broken entry is a miss, never an error.
Why a cached plan is as trustworthy as a fresh one: docs/security.md ("Cached run plans").
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cspm import __version__

if TYPE_CHECKING:
    from cspm.formats.app import AppConfig
    from cspm.formats.plan import Plan

FORMAT = 1
CONFIG_FILE = "config.yaml"  # cspm.formats.userconfig.CONFIG_FILE (not imported: it brings YAML)
MAX_ENTRY_BYTES = 4 * 2**20
MAX_INPUT_BYTES = 16 * 2**20  # app.yaml, app.lock, config.yaml: larger ones are simply not cached
MAX_ENTRIES = 256  # older entries are removed when a new one is written


@dataclass(frozen=True)
class Inputs:
    """Everything the key covers, read once; `key` is its digest."""

    key: str
    app_file: Path  # the real path of APP

    @classmethod
    def read(cls, app: str) -> Inputs | None:
        """None when APP is not a readable regular file (a package reference, a bundle folder, a typo:
        the normal path says what it is)."""
        from cspm import paths

        try:
            real = Path(os.path.realpath(app))
            if not stat.S_ISREG(real.stat().st_mode):
                return None
            digest = hashlib.sha256()
            parts: list[bytes] = [
                b"cspm-plan-cache", str(FORMAT).encode(), __version__.encode(), sys.version.encode(),
                os.getcwd().encode(), os.fsencode(app), os.fsencode(real),
                os.fsencode(os.environ.get("HOME", "")),
            ]
            for path in (real, Path(app).with_suffix(".lock"), paths.config_dir() / CONFIG_FILE):
                parts.append(_bytes_or_absent(path))
        except (OSError, ValueError):
            return None
        for part in parts:
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return cls(digest.hexdigest(), real)


def _bytes_or_absent(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        return b"\x00absent"
    if len(data) > MAX_INPUT_BYTES:
        raise ValueError(f"{path} is too large to key a cached plan")
    return b"\x01" + data


def _env_digest(names: list[str]) -> str:
    values = [[name, os.environ.get(name)] for name in sorted(names)]
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()


def _file_id(path: str | Path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _plan_digest(plan: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()


def _folder() -> Path:
    from cspm.cachedir import Bucket

    return Bucket.PLANS.path()


def cacheable(app: AppConfig) -> bool:
    """A plain local app (see the module's docstring); the rest is planned on every run."""
    if app.origin is not None:
        return False
    return all(c.plugin_ref is None and c.digest is None and c.manifest is None and not c.package_mounts
               for c in app.components.values())


def store(argument: str, inputs: Inputs, app: AppConfig, plan: Plan) -> None:
    """Keep `plan` (made from APP `argument`) under `inputs.key`, read before planning began, if the
    inputs are still the same (a file edited meanwhile is planned next time) and the app is cacheable.
    Never fails a run."""
    if not cacheable(app):
        return
    from cspm import atomicfile

    try:
        if Inputs.read(argument) != inputs:
            return
        data = plan.to_dict()
        # each module as the app names it (a symlink on the way may be moved) and the file it is now
        modules = {plan.components[c.name].module.path: [os.path.abspath(c.plugin_path), _file_id(c.plugin_path)]
                   for c in app.components.values() if c.plugin_path is not None}
        folders = []
        for component in app.components.values():
            for host in component.grant.paths:
                raw = Path(host[3:] if host.startswith("rw:") else host).expanduser()
                if not raw.is_absolute():
                    raw = app.path.parent / raw
                folders.append([os.path.abspath(raw), os.path.realpath(raw)])
        env = sorted({name for c in app.components.values() for name in c.env_reads})
        entry = {"format": FORMAT, "key": inputs.key, "env": env, "env_digest": _env_digest(env),
                 "modules": modules, "folders": folders, "plan_digest": _plan_digest(data), "plan": data}
        folder = _folder()
        folder.mkdir(mode=0o700, exist_ok=True)
        atomicfile.write(folder / f"{inputs.key}.json", json.dumps(entry), mode=0o600, durable=False)
        _prune(folder)
    except (OSError, ValueError, RuntimeError):
        return


def _prune(folder: Path) -> None:
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    for old in entries[:-MAX_ENTRIES]:
        old.unlink(missing_ok=True)


def _private(st: os.stat_result) -> bool:
    """Owned by this user, writable by no one else: a plan from anywhere else is not read."""
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def lookup(app: str) -> Plan | None:
    """The cached plan for APP, if one is kept for exactly these inputs and everything the entry lists
    still holds; None otherwise (the normal path plans, and writes a new entry). The plan is checked
    against plan.json like any plan read from a file (formats.plan.from_dict)."""
    inputs = Inputs.read(app)
    if inputs is None:
        return None
    try:
        folder = _folder()
        if not _private(folder.stat()):
            return None
        fd = os.open(folder / f"{inputs.key}.json", os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode) or not _private(st) or st.st_size > MAX_ENTRY_BYTES:
                return None
            entry = json.loads(handle.read(MAX_ENTRY_BYTES + 1))
        if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("key") != inputs.key:
            return None
        plan = entry["plan"]
        if not isinstance(plan, dict) or entry["plan_digest"] != _plan_digest(plan) or plan["app"]["origin"]:
            return None
        if entry["env_digest"] != _env_digest(list(entry["env"])):
            return None
        components = plan["components"]
        modules = entry["modules"]
        if {c["module"]["path"] for c in components.values()} != set(modules):
            return None
        for path, (named, known) in modules.items():
            if os.path.realpath(named) != path or _file_id(path) != known:
                return None
        for raw, real in entry["folders"]:
            if not os.path.isdir(raw) or os.path.realpath(raw) != real:
                return None
        from cspm.formats import plan as plan_format

        return plan_format.from_dict(plan)  # PlanInvalid is a ValueError: a miss
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
