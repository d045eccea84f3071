"""`cspm bundle`: an app's run plan with every module and package it needs, in one folder that a host
(Python, Node, a browser) verifies and runs with nothing else (cspm.bundle): parse, call, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cspm.cli.options import AllowCapabilitiesOpt, FrozenOpt, OfflineOpt, RefreshOpt
from cspm.cli.output import err, print_json, shown
from cspm.cli.run import prepared
from cspm.wording import plural


def bundle(
    out: Annotated[Path, typer.Option("--out", "-o", help="the bundle folder: new, empty or a previous bundle "
                                                          "(replaced)")],
    app: Annotated[str, typer.Argument(help="app config, or a published app NAMESPACE/NAME[@SPEC]")] = "app.yaml",
    json_out: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
    offline: OfflineOpt = False,
    frozen: FrozenOpt = False,
    refresh: RefreshOpt = False,
    allow_capabilities: AllowCapabilitiesOpt = False,
) -> None:
    """Write a self-contained folder of an app: bundle.json (the plan, every file's sha256), blobs/ and
    mounts/ (docs/formats.md#bundle). Locks and installs first, like `cspm run`."""
    from cspm import bundle as bundle_format
    from cspm import planner

    warnings: list[str] = []
    config = prepared(app, offline=offline, frozen=frozen, refresh=refresh, json_out=json_out,
                      allow_capabilities=allow_capabilities, warnings=warnings)
    info = bundle_format.write(planner.build(config), out)
    if json_out:
        print_json({**info.to_dict(), "warnings": warnings})
        return
    err.print(f"[bold]{shown(info.app)}[/] bundled in {shown(str(info.path))}: "
              f"{plural(info.modules, 'module')}, {plural(info.mounts, 'package')}, "
              f"{info.bytes / 2**20:.1f} MiB")
