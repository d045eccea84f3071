"""`cspm call TARGET (--input TEXT | --args JSON)`: parse, run one plug-in through cspm.single, print."""

from __future__ import annotations

from typing import Annotated

import typer

from cspm.cli.output import err, out, plain, shown, trace_tree, warner
from cspm.cli.progress import download_bar
from cspm.errors import InputError
from cspm.runtime.logs import LogLine


def call(
    target: Annotated[str, typer.Argument(help="a plug-in folder (plugin.yaml), a .wasm, or NAMESPACE/NAME@SPEC")],
    input: Annotated[str | None, typer.Option("--input", "-i", help="text: a tool's `input`, an llm's user "
                                                                    "message, an agent's `input`")] = None,
    args: Annotated[str | None, typer.Option("--args", help="a tool's `arguments` (a JSON object), checked "
                                                           "against its input_schema")] = None,
    config: Annotated[list[str] | None, typer.Option("--config", "-c", help="KEY=VALUE (VALUE as JSON when it "
                                                                            "parses); repeatable")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="tool, llm or agent: needed for a bare .wasm")] = None,
    session: Annotated[str | None, typer.Option("--session", help="continue this session (kv memory)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
    trace: Annotated[bool, typer.Option("--trace", help="print the call tree")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="show plug-in logs")] = 0,
    offline: Annotated[bool, typer.Option("--offline", help="use cached index files only; never the network")
                       ] = False,
) -> None:
    """Run one plug-in on its own (no app file, no driver agent) and print its answer like `cspm run`."""
    from cspm import planner, single
    from cspm.cli.oneshot import Streamed, report_dropped, show
    from cspm.runtime.engine import RunFailed, Runtime

    if (input is None) == (args is None):
        raise InputError("give the request with --input TEXT or --args JSON (one of them)")
    if kind is not None and kind not in single.KINDS:
        raise InputError(f"--kind {kind!r}: expected tool, llm or agent")
    arguments = single.parse_arguments(args) if args is not None else None
    values = single.parse_config(config or [])
    streamed = Streamed()

    def on_chunk(_name: str, text: str) -> None:
        if not json_out:
            streamed.any = True
            out.print(plain(text), end="", markup=False)

    def on_log(line: LogLine) -> None:
        if verbose:
            err.print(f"[dim]\\[{shown(line.plugin)}] {shown(line.level)}:[/] {shown(line.message)}", markup=True,
                      highlight=False)

    from cspm.runtime import guest_output

    with download_bar(not json_out) as bar, \
            single.open_target(target, kind=kind, config=values, offline=offline, warn=warner(),
                               progress=bar) as app, \
            guest_output.capture(forward=bool(verbose)), \
            Runtime(planner.build(app), session=session, on_chunk=on_chunk, on_log=on_log) as runtime:
        try:
            result = single.call(runtime, input, arguments)
        except RunFailed as exc:
            if trace and not json_out:
                if streamed.any:
                    out.print()
                err.print(trace_tree(exc.trace), soft_wrap=False)
            raise
        show(runtime, result, json_out, trace, streamed.any)
        report_dropped(runtime, verbose)
        if result.finish_reason == "error":
            raise typer.Exit(1)
