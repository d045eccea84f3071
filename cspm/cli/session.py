"""`cspm session list|clear`: the plug-ins' kv memory (conversation histories and the like), by session."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from cspm.cli.output import err, out, plain, print_json
from cspm.errors import InputError
from cspm.runtime.kv import KvStore, SessionUsage, open_default
from cspm.wording import plural

app = typer.Typer(help="Sessions: the memory (kv) plug-ins keep per app and session.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
AppOpt = Annotated[str | None, typer.Option(
    "--app", "-a", help="only this app: its `name:`, or a published app's NAMESPACE/NAME")]


def _store() -> KvStore:
    return open_default()


def padded(rows: list[list[str]], right: set[int]) -> list[str]:
    """Columns padded by hand: a session id, a name or a version is never wrapped or cut, so it can be
    copied (a rich table folds cells at the terminal's width)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row))
            .rstrip() for row in rows]


def _as_dict(usage: SessionUsage) -> dict[str, object]:
    return {"app": usage.app, "plugin": usage.plugin, "session": usage.session, "keys": usage.keys,
            "bytes": usage.bytes, "updated": usage.updated}


@app.command("list")
def list_(app_name: AppOpt = None, json_out: JsonOpt = False) -> None:
    """Every session with memory: app, plug-in, session, keys, bytes and last update, newest first."""
    found = _store().sessions(app=app_name)
    if json_out:
        print_json({"sessions": [_as_dict(u) for u in found]})
        return
    if not found:
        err.print("no sessions" + (f" for app {plain(app_name)}" if app_name else "") + " have memory")
        return
    rows = [["app", "plug-in", "session", "keys", "bytes", "updated"]]
    rows += [[plain(u.app), plain(u.plugin), plain(u.session), str(u.keys), str(u.bytes),
              time.strftime("%Y-%m-%d %H:%M", time.localtime(u.updated))] for u in found]
    for line in padded(rows, right={3, 4}):
        out.print(line, markup=False, highlight=False)


@app.command("clear")
def clear(
    session: Annotated[str | None, typer.Argument(help="the session to forget (in every app unless --app)",
                                                  show_default=False)] = None,
    app_name: AppOpt = None,
    everything: Annotated[bool, typer.Option("--all", help="forget every session of every app")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation (for scripts)")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Forget sessions' memory: one SESSION, every session of --app, or --all. Asks first at a terminal."""
    if everything == (session is not None or app_name is not None):
        raise InputError("say what to clear: a SESSION, --app APP (or both), or --all",
                         hint="see `cspm session list`")
    store = _store()
    found = store.sessions(app=app_name, session=session)
    if not found:
        if json_out:
            print_json({"cleared_sessions": 0, "cleared_keys": 0})
        else:
            err.print("nothing to clear: no such session has memory (see `cspm session list`)")
        return
    sessions = len({(u.app, u.session) for u in found})
    keys = sum(u.keys for u in found)
    if not yes:
        if json_out or not sys.stdin.isatty():
            raise InputError(f"clearing {plural(sessions, 'session')} needs a confirmation",
                             hint="pass --yes to clear without asking")
        err.print(f"this forgets {plural(keys, 'key')} of {plural(sessions, 'session')}:")
        for usage in found[:10]:
            err.print(f"  {plain(usage.app)}  {plain(usage.plugin)}  {plain(usage.session)}", markup=False)
        if len(found) > 10:
            err.print(f"  … and {len(found) - 10} more", markup=False)
        if not typer.confirm("Clear?", default=False, err=True):
            raise typer.Exit(1)
    deleted = store.clear(app=app_name, session=session)
    if json_out:
        print_json({"cleared_sessions": sessions, "cleared_keys": deleted})
    else:
        err.print(f"[bold]cleared[/] {plural(sessions, 'session')} ({plural(deleted, 'key')})")
