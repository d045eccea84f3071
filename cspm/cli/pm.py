"""`cspm lock`, `cspm install`, `cspm add`, `cspm remove`: parse, call cspm.project, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cspm.cli.options import OfflineOpt
from cspm.cli.output import err, print_json, shown, warner
from cspm.cli.progress import download_bar
from cspm.errors import CspmError
from cspm.formats.names import parse_requirement
from cspm.project import Change, InstallOutcome, LockOutcome, Project
from cspm.protocol import kinds

AppArg = Annotated[Path, typer.Argument(help="app config", show_default=True)]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]


def _changes(changes: list[Change]) -> None:
    for change in changes:
        if change.verb == "added":
            err.print(f" [green]+[/] {change.name} {change.new}")
        elif change.verb == "removed":
            err.print(f" [red]-[/] {change.name} {change.old}")
        else:
            err.print(f" [yellow]~[/] {change.name} {change.old} -> {change.new}")


def _lock_summary(outcome: LockOutcome) -> dict[str, Any]:
    return {"lock": str(outcome.lock.path), "written": outcome.written,
            "changes": [c.to_dict() for c in outcome.changes], "stale_reasons": outcome.reasons,
            "warnings": outcome.warnings,
            "plugins": [{"name": p.name, "version": str(p.version), "registry": p.registry, "digest": p.digest,
                         "kind": p.kind, "used_by": p.used_by} for p in outcome.lock.plugins]}


def _report_lock(outcome: LockOutcome) -> None:
    count = len(outcome.lock.plugins)
    if outcome.written:
        err.print(f"[bold]locked[/] {count} plug-in{'s' if count != 1 else ''} in {outcome.lock.path}")
        _changes(outcome.changes)
    else:
        err.print(f"{outcome.lock.path} is up to date ({count} plug-in{'s' if count != 1 else ''})")


def lock(
    app: AppArg = Path("app.yaml"),
    upgrade: Annotated[bool, typer.Option("--upgrade", "-U", help="move every plug-in to its newest match")] = False,
    upgrade_package: Annotated[list[str] | None, typer.Option(
        "--upgrade-package", "-P", help="move this plug-in (ns/name) to its newest match; repeatable")] = None,
    allow_capabilities: Annotated[bool, typer.Option(
        "--allow-capabilities", help="accept upgrades that ask for more hosts, paths, memory, kv or WASI")] = False,
    allow_signer_change: Annotated[bool, typer.Option(
        "--allow-signer-change", help="accept upgrades signed by someone else than the locked version")] = False,
    check: Annotated[bool, typer.Option("--check", help="only say whether the lock is up to date (exit 2 if not)")
                     ] = False,
    offline: OfflineOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Resolve the app's registry plug-ins and pin them in app.lock."""
    wanted: set[str] | None = None
    if upgrade_package:
        wanted = {parse_requirement(name).name for name in upgrade_package}
    elif upgrade:
        wanted = set()
    with Project(app, offline=offline, warn=warner()) as project:
        if not project.uses_registry:
            raise CspmError(f"{app} uses no registry plug-ins (`plugin: ns/name@spec`): there is nothing to lock",
                            hint="add one with `cspm add NAME@SPEC`")
        outcome = project.lock(upgrade=wanted, allow_capabilities=allow_capabilities,
                               allow_signer_change=allow_signer_change, check=check)
    if json_out:
        print_json(_lock_summary(outcome))
    else:
        _report_lock(outcome)


def install(
    app: AppArg = Path("app.yaml"),
    frozen: Annotated[bool, typer.Option("--frozen", help="install the lock as it is; fail if it is out of date")
                      ] = False,
    offline: OfflineOpt = False,
    allow_capabilities: Annotated[bool, typer.Option("--allow-capabilities", help="see `cspm lock`")] = False,
    allow_signer_change: Annotated[bool, typer.Option("--allow-signer-change", help="see `cspm lock`")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Fetch and verify everything the lock pins (locking first unless --frozen), signatures included."""
    with Project(app, offline=offline, warn=warner()) as project, download_bar(not json_out) as bar:
        if not project.uses_registry:
            locked, installed = None, None
        else:
            locked, installed = project.install(frozen=frozen, progress=bar, allow_capabilities=allow_capabilities,
                                                allow_signer_change=allow_signer_change, verify_all=True)
    if json_out:
        print_json(_install_summary(locked, installed))
        return
    if locked is None or installed is None:
        err.print(f"{app} uses no registry plug-ins: nothing to install")
        return
    if locked.written:
        _report_lock(locked)
    total = len(locked.lock.plugins)
    if installed.downloaded:
        err.print(f"[bold]installed[/] {installed.downloaded} of {total} plug-in{'s' if total != 1 else ''} "
                  f"({installed.bytes_total / 1e6:.1f} MB); all verified")
    else:
        err.print(f"all {total} plug-in{'s' if total != 1 else ''} already installed and verified")
    signed = [v for v in installed.verdicts if v.signer is not None]
    for verdict in signed:
        err.print(f"  [green]signed[/] {verdict.name} {verdict.version} by {shown(str(verdict.signer))}"
                  + (f" (policy {shown(str(verdict.rule))})" if verdict.rule else " (trusted on first use)"))


def _install_summary(locked: LockOutcome | None, installed: InstallOutcome | None) -> dict[str, Any]:
    if locked is None or installed is None:
        return {"lock": None, "downloaded": 0, "plugins": []}
    return {**_lock_summary(locked), "downloaded": installed.downloaded, "bytes": installed.bytes_total,
            "signatures": [{"name": v.name, "version": v.version, "signer": v.signer.to_dict() if v.signer else None,
                            "rule": v.rule, "cached": v.cached} for v in installed.verdicts]}


def add(
    requirement: Annotated[str, typer.Argument(
        help="NAMESPACE/NAME or NAMESPACE/NAME@SPEC, e.g. chainsocket/calculator@^1")],
    app: Annotated[Path, typer.Option("--app", "-a", help="app config (created when missing)")] = Path("app.yaml"),
    as_name: Annotated[str | None, typer.Option(
        "--as", help="its name in the app (default: from the plug-in); also adds a second copy of a plug-in")] = None,
    description: Annotated[str | None, typer.Option("--description", "-d", help="what the agent is told it does")
                           ] = None,
    into: Annotated[str | None, typer.Option(
        "--into", help="add the new llm or tool to this agent's llms/tools (at a terminal: asked for the entry agent)")
                    ] = None,
    offline: OfflineOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Add a registry plug-in to the app (as an llm, tool or agent by its kind), then lock and install.

    Into a missing, empty or name-only app.yaml the first component becomes the `entry`.
    """
    from cspm.project import add as add_to_app

    with download_bar(not json_out) as bar:
        def ask(question: str) -> bool:  # the bar's live display is paused while the question waits
            if bar is not None:
                bar.bar.stop()
            try:
                return typer.confirm(question, default=True, err=True)
            finally:
                if bar is not None:
                    bar.bar.start()

        terminal = into is None and not json_out and _terminal()
        added = add_to_app(app, requirement, as_name=as_name, description=description, into=into,
                           ask=ask if terminal else None, offline=offline, warn=warner(), progress=bar)
    if json_out:
        print_json({"added": added.to_dict(), **_install_summary(added.locked, added.installed)})
        return
    role = " (the app's entry)" if added.entry else ""
    err.print(f"[bold]added[/] {shown(added.requirement)} to {shown(str(app))} as {added.kind} "
              f"`{shown(added.component)}`{role}")
    if added.secrets:
        err.print(f"  secrets: {', '.join(shown(s) for s in added.secrets)} (set before `cspm run`)")
    if added.hosts:
        err.print(f"  grant: {', '.join(shown(h) for h in added.hosts)}")
    if added.wired_into:
        err.print(f"  agent `{shown(added.wired_into)}` may now call it")
    _report_lock(added.locked)
    if added.unwired:
        section = kinds.of(added.kind).section
        err.print(f"[dim]hint:[/] agent `{shown(added.unwired)}` cannot call it until it is in its `{section}:` "
                  f"list; add it there, or next time pass --into {shown(added.unwired)}")


def _terminal() -> bool:
    import sys

    return sys.stdin.isatty() and sys.stderr.isatty()


def remove(
    name: Annotated[str, typer.Argument(help="a component name, or the NAMESPACE/NAME of its plug-in")],
    app: Annotated[Path, typer.Option("--app", "-a", help="app config")] = Path("app.yaml"),
    json_out: JsonOpt = False,
) -> None:
    """Remove a component from the app and its plug-in from the lock."""
    with Project(app, warn=warner()) as project:
        removed, outcome = project.remove(name)
    if json_out:
        print_json({"removed": removed, **_lock_summary(outcome)} if outcome else {"removed": removed})
        return
    err.print(f"[bold]removed[/] {', '.join(removed)} from {app}")
    if outcome is not None:
        _report_lock(outcome)


