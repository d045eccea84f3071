"""`cspm import`: the original Chainsocket app.json as an app.yaml (cspm.formats.legacy_app): parse,
call, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cspm.cli.output import err, print_json, shown
from cspm.wording import plural


def import_app(
    app: Annotated[Path, typer.Argument(help="the original Chainsocket app.json")] = Path("app.json"),
    out: Annotated[Path | None, typer.Option("--out", "-o", help="the app.yaml to write (default: app.yaml "
                                                                 "beside the app.json)")] = None,
    force: Annotated[bool, typer.Option("--force", help="replace --out if it exists")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
) -> None:
    """Write the app.yaml of an original Chainsocket app.json: the same components, config, grants and
    wiring `cspm run app.json` uses, API keys as secrets read from the environment."""
    from cspm import planner
    from cspm.formats import legacy_app

    target = out if out is not None else app.parent / "app.yaml"
    done = legacy_app.import_file(app, target, planner.module_uses_http, force=force)
    exports = list(dict.fromkeys(s.env for _, s in done.secrets))
    steps = [f"export {env}=..." for env in exports] + [f"cspm run {target}"]
    notes = []
    if (app.parent / "secrets.json").exists():
        notes.append(f"{app.parent / 'secrets.json'} is not read: cspm takes API keys from the environment")
    if json_out:
        document = done.document
        print_json({
            "app": str(target), "from": str(app), "written": True, "overwrote": done.overwrote,
            "entry": document["entry"],
            "components": {section: [item["name"] for item in document.get(section, [])]
                           for section in ("llms", "tools", "agents")},
            "secrets": [{"component": component, "name": s.key, "env": s.env, "hosts": [s.host]}
                        for component, s in done.secrets],
            "next": steps, "notes": notes,
        })
        return
    counts = ", ".join(plural(len(done.document.get(section, [])), section[:-1])
                       for section in ("llms", "tools", "agents"))
    verb = "replaced" if done.overwrote else "wrote"
    err.print(f"[bold]{verb}[/] {shown(str(target))} from {shown(str(app))} ({counts}; entry "
              f"{shown(done.document['entry'])})")
    for component, secret in done.secrets:
        err.print(f"  {shown(component)}: {secret.key} from ${secret.env}, sent only to {secret.host}")
    for note in notes:
        err.print(f"[dim]note:[/] {shown(note)}")
    err.print("next: " + "; ".join(f"`{shown(step)}`" for step in steps))
