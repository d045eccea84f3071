"""`cspm plan`: the run plan of an app (cspm.planner): parse, call, print."""

from __future__ import annotations

from typing import Annotated

import typer

from cspm.cli.output import columns, err, print_json, shown
from cspm.cli.run import prepared


def plan(
    app: Annotated[str, typer.Argument(help="app config, or a published app NAMESPACE/NAME[@SPEC]")] = "app.yaml",
    json_out: Annotated[bool, typer.Option("--json", help="the plan itself (docs/formats.md#run-plan)")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="use cached index files only; never the network")
                       ] = False,
    frozen: Annotated[bool, typer.Option("--frozen", help="fail instead of relocking when app.lock is out of date")
                      ] = False,
    allow_capabilities: Annotated[bool, typer.Option(
        "--allow-capabilities", help="approve what a published app asks for without a prompt")] = False,
) -> None:
    """Print what a host runs for an app: every module by digest, its grant, config, secrets (by
    reference), what it may call. Locks and installs first, like `cspm run`."""
    from cspm import planner

    warnings: list[str] = []
    config = prepared(app, offline=offline, frozen=frozen, refresh=False, json_out=json_out,
                      allow_capabilities=allow_capabilities, warnings=warnings)
    made = planner.build(config)
    if json_out:
        print_json(made.to_dict())
        return
    err.print(f"[bold]{shown(made.app_name)}[/]: entry {shown(made.entry)}, kv scope {shown(made.kv_scope)}"
              + (f", published app {shown(made.origin.name)} {shown(made.origin.version)}" if made.origin else ""))
    rows: list[tuple[str, ...]] = []
    for name, c in made.components.items():
        grant = [*c.grant.hosts, *(f"{m.guest} ({'rw' if m.writable else 'ro'}, "
                                   f"{m.digest[:15] + '…' if m.digest else m.host})" for m in c.grant.mounts)]
        if c.grant.kv:
            grant.append("kv")
        calls = [*c.calls.llms, *c.calls.tools, *c.calls.agents]
        rows.append((name, c.kind, c.module.digest[:19] + "…", f"{c.grant.memory_pages}p {c.grant.timeout_ms}ms",
                     ", ".join(grant) or "-", ", ".join(calls) or "-",
                     ", ".join(f"{s.name}={s.source}" for s in c.secrets) or "-"))
    columns(("COMPONENT", "KIND", "MODULE", "LIMITS", "GRANT", "CALLS", "SECRETS"), rows)
