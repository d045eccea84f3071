"""`cspm index build`: a static registry from plug-in and app sources (the bundled `index/`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cspm.cli.output import err, print_json
from cspm.errors import CspmError
from cspm.index import check as index_check
from cspm.index import from_sources
from cspm.wording import plural

app = typer.Typer(help="Build static registries from sources.", no_args_is_help=True)


@app.command("build")
def build(
    sources: Annotated[list[Path], typer.Argument(help="plug-in or app folders (with plugin.yaml), or folders "
                                                       "of them")],
    out: Annotated[Path, typer.Option("--out", "-o", help="the registry folder to write")] = Path("index"),
    name: Annotated[str, typer.Option("--name", help="the registry's name in config.json")] = "chainsocket",
    run_build: Annotated[bool, typer.Option("--build", help="run each plug-in's build.sh first")] = False,
    check: Annotated[bool, typer.Option("--check", help="build elsewhere and compare with --out; change nothing; "
                                                        "exit 1 if they differ")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="rebuild an existing registry from these sources "
                                                            "alone (drops what they lack; says what first)")
                       ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
) -> None:
    """Write every plug-in and app package of SOURCES into a static index (reproducibly).

    A new or empty --out gets a fresh registry; an existing registry is added to (versions it has are
    kept; the same version with other bytes is refused unless --replace). Nothing else is overwritten."""
    def note(message: str) -> None:
        if not json_out:
            err.print(f"[dim]{message}[/]")

    if check:
        result = index_check.check(sources, out, name=name, run_build=run_build, note=note)
        if json_out:
            print_json({"out": str(out), "matches": result.matches, "differ": result.differ})
        elif result.differ:
            err.print(f"[red]{out} does not match a fresh build of the sources[/]; these files differ:")
            for path in result.differ[:50]:
                err.print(f"  {path}")
        else:
            err.print(f"{out} matches a fresh build of the sources ({plural(result.packages, 'package')})")
        if result.differ:
            raise typer.Exit(1)
        return
    if not sources:
        raise CspmError("name at least one source folder", hint="e.g. `cspm index build plugins/ examples/`")
    built = from_sources.build(sources, out, name=name, run_build=run_build, note=note, replace=replace)
    if json_out:
        print_json({"out": str(built.out), "packages": [{"name": line["name"], "version": line["version"],
                                                          "kind": line["kind"], "digest": line["digest"],
                                                          "size": line["size"]} for line in built.lines],
                    "locks_written": [str(p) for p in built.locks_written]})
        return
    for lock_file in built.locks_written:
        err.print(f"wrote {lock_file}")
    err.print(f"[bold]built[/] {built.out}: {plural(len(built.lines), 'package')}")
