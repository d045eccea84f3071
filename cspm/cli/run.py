"""`cspm run [APP.yaml]`: one shot with --input, or the interactive "You >" chat loop.

The loop edits lines and keeps a history with Python's readline (only at a terminal: imported then,
so a plain `--input` run never pays for it). Each answer runs on a worker thread, so the main thread
takes Ctrl-C at once and cancels the answer being generated (Extism's cancel handles) instead of
ending the session; a second Ctrl-C at the prompt, Ctrl-D or `exit` ends it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cspm import plan_cache, planner, telemetry
from cspm.cli import oneshot
from cspm.cli.oneshot import Streamed
from cspm.cli.options import AllowCapabilitiesOpt, FrozenOpt, KvOpt, OfflineOpt, RefreshOpt
from cspm.cli.output import err, out, print_error, shown, trace_tree, warner
from cspm.cli.progress import download_bar
from cspm.errors import CspmError, NotApproved
from cspm.project import LockOutcome, Project, is_package_reference, open_package
from cspm.runtime import compiler, kv
from cspm.runtime.engine import RunFailed, RunResult, Runtime
from cspm.wording import plural

if TYPE_CHECKING:
    from cspm import approvals
    from cspm.formats.app import AppConfig
    from cspm.formats.plan import Plan

EXIT_WORDS = {"exit", "quit", ":q"}
HISTORY_FILE = "chat_history"  # in the user data dir
HISTORY_LINES = 1000
CANCEL_AGAIN_S = 0.05  # a cancel that lands between two plug-in calls does nothing: repeat it until done


def run(
    app: Annotated[str, typer.Argument(help="app config, or a published app NAMESPACE/NAME[@SPEC]")] = "app.yaml",
    input: Annotated[str | None, typer.Option("--input", "-i", help="one request, then exit")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
    session: Annotated[str | None, typer.Option("--session", help="continue this session (kv memory)")] = None,
    kv_url: KvOpt = None,
    trace: Annotated[bool, typer.Option("--trace", help="print the call tree of each request")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="show plug-in logs")] = 0,
    offline: OfflineOpt = False,
    frozen: FrozenOpt = False,
    refresh: RefreshOpt = False,
    allow_capabilities: AllowCapabilitiesOpt = False,
) -> None:
    """Run an app: lock and install its registry plug-ins if needed, load them, then answer requests."""
    warnings: list[str] = []  # also in --json (a yanked pin, a registry that could not be reached)
    kv_factory = kv.factory_for(kv_url)  # a bad URL is said now; the database is opened at the first kv call
    keep: list[Callable[[], None]] = []  # the plan is cached only once a run of it has loaded and answered
    made = planned(app, offline=offline, frozen=frozen, refresh=refresh, json_out=json_out,
                   allow_capabilities=allow_capabilities, warnings=warnings, keep=None if refresh else keep)
    if not json_out and sys.stderr.isatty():  # progress for a person waiting, like the download bar
        cold = compiler.uncompiled((Path(c.module.path), c.module.digest) for c in made.components.values())
        if cold:
            err.print(f"[dim]compiling {plural(cold, 'module')}… (once: later runs start faster)[/]")
    if input is not None:
        code = oneshot.one_shot(made, input, session=session, kv_factory=kv_factory, json_out=json_out,
                                trace=trace, verbose=verbose, warnings=warnings)
        if code:
            raise typer.Exit(code)
        for step in keep:
            step()
        return
    if verbose and not json_out:  # the chat loop: plug-ins' WASI output straight to the terminal
        compiler.show_wasi_output()
    streamed = Streamed()
    on_chunk, on_log = oneshot.callbacks(streamed, json_out, verbose)
    with Runtime(made, session=session, kv_factory=kv_factory, on_chunk=on_chunk,
                 on_log=on_log) as runtime:
        for step in keep:
            step()
        try:
            _interactive(runtime, json_out, trace, streamed, verbose, warnings)
        finally:
            telemetry.flush()


def planned(app: str, *, offline: bool, frozen: bool, refresh: bool, json_out: bool, allow_capabilities: bool,
            warnings: list[str], keep: list[Callable[[], None]] | None = None) -> Plan:
    """The plan of an app (locked, installed, approved: `prepared`), or of a bundle folder (`cspm bundle`:
    every file verified against bundle.json); what `cspm run` and `cspm serve` run. `keep`: gets the step
    that keeps a plain local app's plan for the warm fast path (cspm.plan_cache, cspm.cli.fast_run),
    for the caller to take once the plan has run: a plan that fails to load is never kept."""
    if not (Path(app) / "bundle.json").is_file():
        inputs = plan_cache.Inputs.read(app) if keep is not None and not is_package_reference(app) else None
        config = prepared(app, offline=offline, frozen=frozen, refresh=refresh, json_out=json_out,
                          allow_capabilities=allow_capabilities, warnings=warnings)
        made = planner.build(config)
        if keep is not None and inputs is not None and not warnings:
            keep.append(lambda: plan_cache.store(app, inputs, config, made))
        return made
    from cspm import bundle

    made = bundle.load(app, approved=allow_capabilities)
    if made.origin is not None and not made.approved and bundle.asks_for_capabilities(made):
        raise NotApproved(f"{app} is a bundle of {made.origin.name} {made.origin.version}, a published app: "
                          f"its capabilities (the plan in bundle.json) need your approval",
                          hint="review them, then add --allow-capabilities")
    return dataclasses.replace(made, approved=True)  # the user's own, or one that asks for nothing


def prepared(app: str, *, offline: bool, frozen: bool, refresh: bool, json_out: bool, allow_capabilities: bool,
             warnings: list[str]) -> AppConfig:
    """The app locked, installed and bound to its stored modules (a published app also approved): what
    `cspm run` runs and `cspm plan` prints."""
    def on_locked(outcome: LockOutcome) -> None:
        if not json_out:
            err.print(f"[dim]locked {plural(len(outcome.lock.plugins), 'plug-in')} in {outcome.lock.path}[/]")

    with download_bar(not json_out) as bar:
        if is_package_reference(app):
            project = open_package(app, offline=offline, refresh=refresh, warn=warner(warnings), progress=bar)
            frozen = True  # a published app runs with the lock it was published with
        else:
            project = Project(Path(app), offline=offline, warn=warner(warnings))
        with project:
            config = project.prepare(frozen=frozen, progress=bar, on_locked=on_locked)
    if config.origin is not None:  # someone else's app: only then is the approvals module loaded (start-up)
        from cspm import approvals

        approvals.require(config, _approver(allow_capabilities, json_out))
    return config


def _approver(allow: bool, json_out: bool) -> approvals.Approver:
    """--allow-capabilities says yes; at a terminal the user is asked; otherwise no (NotApproved says how)."""
    def approve(request: approvals.Request) -> bool:
        if allow:
            return True
        if json_out or not (sys.stdin.isatty() and sys.stderr.isatty()):
            return False
        origin = request.origin
        if request.approved_version:
            err.print(f"[bold]{shown(origin.name)} {shown(origin.version)}[/] asks for more than you approved for "
                      f"{shown(request.approved_version)} ([green]+[/] is new):")
        else:
            err.print(f"[bold]{shown(origin.name)} {shown(origin.version)}[/] from registry {shown(origin.registry)} "
                      f"is someone else's app. It asks to:")
        new = set(request.new)
        for component in dict.fromkeys(c.component for c in request.wanted):
            err.print(f"  [bold]{shown(component)}[/]")
            for capability in (c for c in request.wanted if c.component == component):
                mark = "[green]+[/]" if request.approved_version and capability in new else " "
                err.print(f"   {mark} {shown(capability.describe())}")
        return typer.confirm("Allow?", default=False, err=True)
    return approve


def _interactive(runtime: Runtime, json_out: bool, trace: bool, streamed: Streamed, verbose: int,
                 warnings: list[str]) -> None:
    entry = runtime.plan.entry
    at_terminal = sys.stdin.isatty()
    if not json_out:
        ends = "'exit' or Ctrl-D ends; Ctrl-C stops an answer" if at_terminal else "'exit' or end of input ends"
        err.print(f"[dim]{runtime.plan.app_name}: talking to `{entry}` (session {runtime.session}); {ends}[/]")
    history = _History() if at_terminal else None
    interrupted = False  # the last thing at the prompt was a Ctrl-C: a second one ends
    try:
        while True:
            try:
                text = input("You > ") if not json_out else input()
            except EOFError:
                if not json_out:
                    out.print()
                break
            except KeyboardInterrupt:
                if interrupted:
                    if not json_out:
                        out.print()
                    break
                interrupted = True
                err.print("\n[dim](Ctrl-C again or Ctrl-D to end the session)[/]")
                continue
            interrupted = False
            if text.strip() in EXIT_WORDS:
                break
            if not text.strip():
                continue
            streamed.any = streamed.cancelled = False
            if not json_out:
                out.print(f"{entry} > ", end="", markup=False)
            try:
                result = _answer(runtime, text, streamed)
            except CspmError as exc:  # one failed answer: say why, and go on talking
                if isinstance(exc, RunFailed):
                    telemetry.export(exc.trace)
                if trace and not json_out and isinstance(exc, RunFailed):
                    if streamed.any:
                        out.print()
                        streamed.any = False
                    err.print(trace_tree(exc.trace), soft_wrap=False)
                if json_out:
                    oneshot.json_line({"error": exc.as_json()})
                else:
                    if streamed.any:
                        out.print()
                    print_error(exc.message, exc.hint)
                continue
            if result is not None:
                telemetry.export(result.trace)
            if result is None:
                if json_out:
                    oneshot.json_line({"output": "", "finish_reason": "cancelled", "session": runtime.session,
                                "entry": entry})
                else:
                    out.print()
                    err.print("[yellow]cancelled[/]")
                continue
            oneshot.show(runtime, result, json_out, trace, streamed.any, lines=True, warnings=warnings)
            oneshot.report_dropped(runtime, verbose)
    finally:
        if history is not None:
            history.save()


def _answer(runtime: Runtime, text: str, streamed: Streamed) -> RunResult | None:
    """One request on a worker thread; None when Ctrl-C cancelled it. The main thread keeps taking
    signals while a plug-in runs (a native call would hold it until the answer is done). It waits on
    an Event, not on Thread.join: a join that Ctrl-C interrupts marks the thread as ended while it
    still runs (CPython 3.11), and a thread left inside a plug-in aborts the process at exit."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["result"] = runtime.run(text)
        except BaseException as exc:  # handed to the main thread, which raises it there
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="cspm-answer", daemon=True).start()
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        streamed.cancelled = True
        while not done.is_set():  # a plug-in stops at once; a host call (an HTTP fetch) at its own timeout
            try:
                for node in list(runtime.nodes.values()):  # every plug-in: the one running may be any
                    node.cancel()
                done.wait(CANCEL_AGAIN_S)
            except KeyboardInterrupt:  # Ctrl-C again while it stops: it is stopping already
                continue
        return None
    if "error" in box:
        raise box["error"]
    return box["result"]


class _History:
    """readline's line editing and a history kept in the user data dir, at most HISTORY_LINES lines,
    readable by its owner only (people type secrets into chats)."""

    def __init__(self) -> None:
        import os

        from cspm import paths

        try:
            import readline
        except ImportError:  # a Python built without it: plain input() still works
            self.readline = None
            return
        self.readline = readline
        self.path = paths.data_dir() / HISTORY_FILE
        readline.set_history_length(HISTORY_LINES)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            readline.read_history_file(self.path)
        except OSError:
            pass

    def save(self) -> None:
        if self.readline is None:
            return
        with contextlib.suppress(OSError):  # a history that cannot be kept must not end a chat in an error
            self.readline.write_history_file(self.path)
