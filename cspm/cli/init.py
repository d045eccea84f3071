"""`cspm init`: start an app from a template (cspm.templates): parse, call, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cspm.cli.output import columns, err, print_json, shown, warner
from cspm.cli.progress import download_bar


def init(
    path: Annotated[Path, typer.Argument(help="the app file, or a folder that gets an app.yaml")] = Path("app.yaml"),
    template: Annotated[str, typer.Option("--template", "-t", help="which template (see --list)")] = "offline",
    name: Annotated[str | None, typer.Option("--name", help="the app's name (default: its folder's)")] = None,
    list_templates: Annotated[bool, typer.Option("--list", help="list the templates and exit")] = False,
    no_install: Annotated[bool, typer.Option("--no-install", help="write app.yaml only: no lock, no download")
                          ] = False,
    offline: Annotated[bool, typer.Option("--offline", help="use cached index files only; never the network")
                       ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
) -> None:
    """Start a new app from a template: write app.yaml (never over an existing one), lock and install it."""
    from cspm import templates

    if list_templates:
        found = templates.templates()
        if json_out:
            print_json({"templates": [{"name": t.name, "summary": t.summary, "default": t.name == templates.DEFAULT}
                                      for t in found.values()]})
            return
        columns(("TEMPLATE", "WHAT"), [(t.name + (" (default)" if t.name == templates.DEFAULT else ""), t.summary)
                                       for t in found.values()])
        return
    with download_bar(not json_out) as bar:
        done = templates.init(path, template, name=name, install=not no_install, offline=offline, warn=warner(),
                              progress=bar)
    if json_out:
        print_json({"app": str(done.path), "template": done.template, "name": done.name, "locked": done.plugins,
                    "downloaded": done.downloaded})
        return
    err.print(f"[bold]created[/] {shown(str(done.path))} from template {done.template}")
    if not no_install:
        err.print(f"locked and installed {done.plugins} package{'s' if done.plugins != 1 else ''}")
    err.print(f"next: `cspm run {shown(str(done.path))}` (its first lines say what to ask); "
              "`cspm add NAMESPACE/NAME --into AGENT` adds a plug-in")
