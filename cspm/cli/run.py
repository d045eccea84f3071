"""`cspm run [APP.yaml]`: one shot with --input, or the interactive "You >" chat loop.

The loop edits lines and keeps a history with Python's readline (only at a terminal: imported then,
so a plain `--input` run never pays for it). Each answer runs on a worker thread, so the main thread
takes Ctrl-C at once and cancels the answer being generated (Extism's cancel handles) instead of
ending the session; a second Ctrl-C at the prompt, Ctrl-D or `exit` ends it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cspm import planner, telemetry
from cspm.cli.options import AllowCapabilitiesOpt, FrozenOpt, KvOpt, OfflineOpt, RefreshOpt
from cspm.cli.output import err, out, plain, print_error, print_json, shown, trace_tree, warner
from cspm.cli.progress import download_bar
from cspm.errors import CspmError, NotApproved
from cspm.project import LockOutcome, Project, is_package_reference, open_package
from cspm.runtime import compiler, kv
from cspm.runtime.engine import MAX_LOG_BYTES, MAX_LOG_LINES, RunFailed, RunResult, Runtime
from cspm.runtime.logs import LogLine
from cspm.wording import plural

if TYPE_CHECKING:
    from cspm import approvals
    from cspm.formats.app import AppConfig
    from cspm.formats.plan import Plan

EXIT_WORDS = {"exit", "quit", ":q"}
HISTORY_FILE = "chat_history"  # in the user data dir
HISTORY_LINES = 1000
CANCEL_AGAIN_S = 0.05  # a cancel that lands between two plug-in calls does nothing: repeat it until done


class Streamed:
    """Whether the answer being shown arrived in chunks (then it is not printed again), and whether it
    was cancelled (then chunks still on their way are not shown)."""

    any = False
    cancelled = False


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
    streamed = Streamed()
    warnings: list[str] = []  # also in --json (a yanked pin, a registry that could not be reached)

    def on_chunk(_name: str, text: str) -> None:
        if not json_out and not streamed.cancelled:
            streamed.any = True  # a flag, not the text: a long stream must not grow the host
            out.print(plain(text), end="", markup=False)

    def on_log(line: LogLine) -> None:
        if verbose:
            err.print(f"[dim]\\[{shown(line.plugin)}] {shown(line.level)}:[/] {shown(line.message)}", markup=True,
                      highlight=False)

    kv_factory = kv.factory_for(kv_url)  # a bad URL is said now; the database is opened at the first kv call
    made = planned(app, offline=offline, frozen=frozen, refresh=refresh, json_out=json_out,
                   allow_capabilities=allow_capabilities, warnings=warnings)
    if not json_out and sys.stderr.isatty():  # progress for a person waiting, like the download bar
        cold = compiler.uncompiled((Path(c.module.path), c.module.digest) for c in made.components.values())
        if cold:
            err.print(f"[dim]compiling {plural(cold, 'module')}… (once: later runs start faster)[/]")
    if input is not None:  # plug-ins' WASI output kept for a crash's error (Go's fatal errors), -v: shown
        from cspm.runtime import guest_output

        with guest_output.capture(forward=bool(verbose)), \
                Runtime(made, session=session, kv_factory=kv_factory, on_chunk=on_chunk,
                        on_log=on_log) as runtime:
            try:
                result = runtime.run(input)
            except RunFailed as exc:  # what ran before the entry failed, then the error (cspm.cli.main)
                telemetry.export(exc.trace)
                telemetry.flush()
                if trace and not json_out:
                    err.print(trace_tree(exc.trace), soft_wrap=False)
                raise
            telemetry.export(result.trace)
            telemetry.flush()
            _show(runtime, result, json_out, trace, streamed.any, warnings=warnings)
            _report_dropped(runtime, verbose)
        if result.finish_reason == "error":
            raise typer.Exit(1)
        return
    if verbose and not json_out:  # the chat loop: plug-ins' WASI output straight to the terminal
        compiler.show_wasi_output()
    with Runtime(made, session=session, kv_factory=kv_factory, on_chunk=on_chunk,
                 on_log=on_log) as runtime:
        try:
            _interactive(runtime, json_out, trace, streamed, verbose, warnings)
        finally:
            telemetry.flush()


def planned(app: str, *, offline: bool, frozen: bool, refresh: bool, json_out: bool, allow_capabilities: bool,
            warnings: list[str]) -> Plan:
    """The plan of an app (locked, installed, approved: `prepared`), or of a bundle folder (`cspm bundle`:
    every file verified against bundle.json); what `cspm run` and `cspm serve` run."""
    if not (Path(app) / "bundle.json").is_file():
        return planner.build(prepared(app, offline=offline, frozen=frozen, refresh=refresh, json_out=json_out,
                                      allow_capabilities=allow_capabilities, warnings=warnings))
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


def _report_dropped(runtime: Runtime, verbose: int) -> None:
    """A plug-in that floods its log keeps only MAX_LOG_LINES: say so, rather than go quiet."""
    for node in runtime.nodes.values():
        if verbose and node.dropped_logs:
            err.print(f"[dim]\\[{node.name}] {plural(node.dropped_logs, 'more log line')} dropped "
                      f"(at most {MAX_LOG_LINES} lines and {MAX_LOG_BYTES // 1024} KiB "
                      f"are kept per plug-in)[/]", markup=True, highlight=False)
        node.dropped_logs = 0


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
                    _json_line({"error": exc.as_json()})
                else:
                    if streamed.any:
                        out.print()
                    print_error(exc.message, exc.hint)
                continue
            if result is not None:
                telemetry.export(result.trace)
            if result is None:
                if json_out:
                    _json_line({"output": "", "finish_reason": "cancelled", "session": runtime.session,
                                "entry": entry})
                else:
                    out.print()
                    err.print("[yellow]cancelled[/]")
                continue
            _show(runtime, result, json_out, trace, streamed.any, lines=True, warnings=warnings)
            _report_dropped(runtime, verbose)
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
                    node.plugin.cancel_handle().cancel()
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


def _json_line(data: dict[str, Any]) -> None:
    """One JSON object per line (JSON Lines): ensure_ascii escapes every control character and line
    break inside strings, so a line is always one answer and nothing reaches a terminal raw."""
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _show(runtime: Runtime, result: RunResult, json_out: bool, trace: bool, was_streamed: bool,
          lines: bool = False, warnings: list[str] | None = None) -> None:
    """`lines`: the chat loop's --json, one object per line; a one-shot run prints one indented document."""
    if json_out:
        data = {"output": result.output, "finish_reason": result.finish_reason, "session": result.session,
                "entry": runtime.plan.entry, "response": result.response, "warnings": warnings or []}
        if trace:
            data["trace"] = result.trace.to_dict()
        if lines:
            _json_line(data)
        else:
            print_json(data)
        return
    if was_streamed:
        out.print()
        if result.finish_reason == "error":  # what was streamed is not the message: the error is
            out.print(plain(result.output), markup=False)
    else:
        out.print(plain(result.output), markup=False)
    if result.finish_reason not in ("final_answer", "stop"):
        colour = "red" if result.finish_reason == "error" else "yellow"
        err.print(f"[{colour}]finish_reason: {shown(result.finish_reason)}[/]")
    if trace:
        err.print(trace_tree(result.trace), soft_wrap=False)  # labels fold at the width instead of being cut
