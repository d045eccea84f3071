"""One request of `cspm run --input` and how an answer is shown: shared by the normal path
(cspm.cli.run) and the warm fast path (cspm.cli.fast_run), so both print the same bytes.

Imports neither typer nor rich: rich (cspm.cli.output) is loaded only for what needs it (-v logs,
--trace trees, a finish_reason other than an answer, text rich would change: cspm.cli.plainout).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from cspm import telemetry
from cspm.cli.plainout import answer, print_json

if TYPE_CHECKING:
    from cspm.formats.plan import Plan
    from cspm.runtime.engine import RunResult, Runtime
    from cspm.runtime.kv import KvFactory
    from cspm.runtime.logs import LogLine


class Streamed:
    """Whether the answer being shown arrived in chunks (then it is not printed again), and whether it
    was cancelled (then chunks still on their way are not shown)."""

    any = False
    cancelled = False


def callbacks(streamed: Streamed, json_out: bool, verbose: int) -> tuple[Any, Any]:
    """(on_chunk, on_log) of a Runtime: chunks shown as they come, plug-in logs with -v."""
    def on_chunk(_name: str, text: str) -> None:
        if not json_out and not streamed.cancelled:
            streamed.any = True  # a flag, not the text: a long stream must not grow the host
            answer(text, end="")

    def on_log(line: LogLine) -> None:
        if verbose:
            from cspm.cli.output import err, shown

            err.print(f"[dim]\\[{shown(line.plugin)}] {shown(line.level)}:[/] {shown(line.message)}", markup=True,
                      highlight=False)
    return on_chunk, on_log


def one_shot(plan: Plan, text: str, *, session: str | None, kv_factory: KvFactory, json_out: bool, trace: bool,
             verbose: int, warnings: list[str]) -> int:
    """Run one request and show it; the exit code (1 when the answer is an error)."""
    from cspm.runtime import guest_output
    from cspm.runtime.engine import RunFailed, Runtime

    streamed = Streamed()
    on_chunk, on_log = callbacks(streamed, json_out, verbose)
    # plug-ins' WASI output kept for a crash's error (Go's fatal errors), -v: shown
    with guest_output.capture(forward=bool(verbose)), \
            Runtime(plan, session=session, kv_factory=kv_factory, on_chunk=on_chunk, on_log=on_log) as runtime:
        try:
            result = runtime.run(text)
        except RunFailed as exc:  # what ran before the entry failed, then the error (cspm.cli.main)
            telemetry.export(exc.trace)
            telemetry.flush()
            if trace and not json_out:
                from cspm.cli.output import err, trace_tree

                err.print(trace_tree(exc.trace), soft_wrap=False)
            raise
        telemetry.export(result.trace)
        telemetry.flush()
        show(runtime, result, json_out, trace, streamed.any, warnings=warnings)
        report_dropped(runtime, verbose)
    return 1 if result.finish_reason == "error" else 0


def report_dropped(runtime: Runtime, verbose: int) -> None:
    """A plug-in that floods its log keeps only MAX_LOG_LINES: say so, rather than go quiet."""
    for node in runtime.nodes.values():
        if verbose and node.dropped_logs:
            from cspm.cli.output import err
            from cspm.runtime.engine import MAX_LOG_BYTES, MAX_LOG_LINES
            from cspm.wording import plural

            err.print(f"[dim]\\[{node.name}] {plural(node.dropped_logs, 'more log line')} dropped "
                      f"(at most {MAX_LOG_LINES} lines and {MAX_LOG_BYTES // 1024} KiB "
                      f"are kept per plug-in)[/]", markup=True, highlight=False)
        node.dropped_logs = 0


def json_line(data: dict[str, Any]) -> None:
    """One JSON object per line (JSON Lines): ensure_ascii escapes every control character and line
    break inside strings, so a line is always one answer and nothing reaches a terminal raw."""
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def show(runtime: Runtime, result: RunResult, json_out: bool, trace: bool, was_streamed: bool,
         lines: bool = False, warnings: list[str] | None = None) -> None:
    """`lines`: the chat loop's --json, one object per line; a one-shot run prints one indented document."""
    if json_out:
        data = {"output": result.output, "finish_reason": result.finish_reason, "session": result.session,
                "entry": runtime.plan.entry, "response": result.response, "warnings": warnings or []}
        if trace:
            data["trace"] = result.trace.to_dict()
        if lines:
            json_line(data)
        else:
            print_json(data)
        return
    if was_streamed:
        answer("")
        if result.finish_reason == "error":  # what was streamed is not the message: the error is
            answer(result.output)
    else:
        answer(result.output)
    if result.finish_reason not in ("final_answer", "stop") or trace:
        from cspm.cli.output import err, shown, trace_tree

        if result.finish_reason not in ("final_answer", "stop"):
            colour = "red" if result.finish_reason == "error" else "yellow"
            err.print(f"[{colour}]finish_reason: {shown(result.finish_reason)}[/]")
        if trace:
            err.print(trace_tree(result.trace), soft_wrap=False)  # labels fold at the width instead of being cut
