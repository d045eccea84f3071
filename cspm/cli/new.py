"""`cspm new`: a plug-in project from a scaffold (cspm.scaffold): parse, call, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cspm.cli.output import err, print_json, shown

NEXT = {
    "tool": "cspm call . --args '{\"text\": \"three words here\"}'",
    "llm": "cspm call . --input hello",
    "agent": "cspm run -i '6 * 7'",
}


def new(
    name: Annotated[str, typer.Argument(help="the package name, NAMESPACE/NAME (or NAME, in namespace `local`)")],
    lang: Annotated[str, typer.Option("--lang", "-l", help="rust, c, zig, go or assemblyscript")],
    kind: Annotated[str, typer.Option("--kind", "-k", help="tool, llm or agent")] = "tool",
    folder: Annotated[Path | None, typer.Option("--dir", help="where to create it (default: ./NAME)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
) -> None:
    """Start a plug-in: a project that builds and runs at once (code, plugin.yaml, app.yaml, build.sh,
    test.sh, and the SDK in sdk/), outside any checkout of cspm."""
    from cspm import scaffold

    target = folder if folder is not None else Path(scaffold.package_name(name).split("/")[1])
    done = scaffold.new(target, name, lang, kind)
    if json_out:
        print_json({"folder": str(done.folder), "name": done.name, "lang": done.lang, "kind": done.kind,
                    "files": done.files})
        return
    err.print(f"[bold]created[/] {shown(str(done.folder))}: {done.lang} {done.kind} {shown(done.name)} "
              f"({len(done.files)} files, the SDK in sdk/)")
    err.print(f"next: `cd {shown(str(done.folder))} && ./build.sh && {NEXT[done.kind]}`; "
              "`./test.sh` builds and checks it; `cspm run` runs app.yaml")
