"""`cspm run APP.yaml`: one shot with --input, or the seed's interactive "You >" loop."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cspm import approvals
from cspm.cli.output import err, out, plain, print_json, shown, trace_tree, warner
from cspm.cli.progress import download_bar
from cspm.project import LockOutcome, Project, is_package_reference, open_package
from cspm.runtime.engine import MAX_LOG_BYTES, MAX_LOG_LINES, RunResult, Runtime
from cspm.runtime.logs import LogLine

EXIT_WORDS = {"exit", "quit", ":q"}


class Streamed:
    """Whether the answer being shown arrived in chunks (then it is not printed again)."""

    any = False


def run(
    app: Annotated[str, typer.Argument(help="app config (app.yaml), or a published app NAMESPACE/NAME[@SPEC]",
                                       show_default=False)],
    input: Annotated[str | None, typer.Option("--input", "-i", help="one request, then exit")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
    session: Annotated[str | None, typer.Option("--session", help="continue this session (kv memory)")] = None,
    trace: Annotated[bool, typer.Option("--trace", help="print the call tree of each request")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="show plug-in logs")] = 0,
    offline: Annotated[bool, typer.Option("--offline", help="use cached index files only; never the network")
                       ] = False,
    frozen: Annotated[bool, typer.Option("--frozen", help="fail instead of relocking when app.lock is out of date")
                      ] = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="ask the registries for newer versions of a "
                                                            "published app instead of using the cached index")
                       ] = False,
    allow_capabilities: Annotated[bool, typer.Option(
        "--allow-capabilities", help="approve what a published app asks for (env vars, secrets, folders, hosts) "
                                     "without a prompt; remembered for its later versions")] = False,
) -> None:
    """Run an app: lock and install its registry plug-ins if needed, load them, then answer requests."""
    streamed = Streamed()

    def on_chunk(_name: str, text: str) -> None:
        if not json_out:
            streamed.any = True  # a flag, not the text: a long stream must not grow the host
            out.print(plain(text), end="", markup=False)

    def on_log(line: LogLine) -> None:
        if verbose:
            err.print(f"[dim]\\[{shown(line.plugin)}] {shown(line.level)}:[/] {shown(line.message)}", markup=True,
                      highlight=False)

    def on_locked(outcome: LockOutcome) -> None:
        if not json_out:
            err.print(f"[dim]locked {len(outcome.lock.plugins)} plug-ins in {outcome.lock.path}[/]")

    with download_bar(not json_out) as bar:
        if is_package_reference(app):
            project = open_package(app, offline=offline, refresh=refresh, warn=warner(), progress=bar)
            frozen = True  # a published app runs with the lock it was published with
        else:
            project = Project(Path(app), offline=offline, warn=warner())
        with project:
            config = project.prepare(frozen=frozen, progress=bar, on_locked=on_locked)
    approvals.require(config, _approver(allow_capabilities, json_out))
    runtime = Runtime(config, session=session, on_chunk=on_chunk, on_log=on_log)
    with runtime:
        if input is not None:
            result = runtime.run(input)
            _show(runtime, result, json_out, trace, streamed.any)
            _report_dropped(runtime, verbose)
            if result.finish_reason == "error":
                raise typer.Exit(1)
            return
        _interactive(runtime, json_out, trace, streamed, verbose)


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
            err.print(f"[dim]\\[{node.name}] {node.dropped_logs} more log lines dropped (at most {MAX_LOG_LINES} "
                      f"lines and {MAX_LOG_BYTES // 1024} KiB "
                      f"are kept per plug-in)[/]", markup=True, highlight=False)
        node.dropped_logs = 0


def _interactive(runtime: Runtime, json_out: bool, trace: bool, streamed: Streamed, verbose: int) -> None:
    entry = runtime.app.entry
    if not json_out:
        err.print(f"[dim]{runtime.app.name}: talking to `{entry}` (session {runtime.session}); "
                  f"'exit' or Ctrl-D ends[/]")
    while True:
        try:
            text = input("You > ") if not json_out else input()
        except EOFError:
            if not json_out:
                out.print()
            break
        if text.strip() in EXIT_WORDS:
            break
        if not text.strip():
            continue
        streamed.any = False
        if not json_out:
            out.print(f"{entry} > ", end="", markup=False)
        result = runtime.run(text)
        _show(runtime, result, json_out, trace, streamed.any)
        _report_dropped(runtime, verbose)


def _show(runtime: Runtime, result: RunResult, json_out: bool, trace: bool, was_streamed: bool) -> None:
    if json_out:
        data = {"output": result.output, "finish_reason": result.finish_reason, "session": result.session,
                "entry": runtime.app.entry, "response": result.response}
        if trace:
            data["trace"] = result.trace.to_dict()
        print_json(data)
        return
    if was_streamed:
        out.print()
    else:
        out.print(plain(result.output), markup=False)
    if result.finish_reason not in ("final_answer", "stop"):
        colour = "red" if result.finish_reason == "error" else "yellow"
        err.print(f"[{colour}]finish_reason: {shown(result.finish_reason)}[/]")
    if trace:
        err.print(trace_tree(result.trace), soft_wrap=False)  # labels fold at the width instead of being cut
