"""`cspm cache dir|ls|verify|clean`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cspm import cachedir, paths
from cspm.cli.output import err, out, print_json
from cspm.errors import CspmError
from cspm.store import Store

app = typer.Typer(help="Inspect and clean the cache (blobs, compiled modules, index files).",
                  no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]


@app.command("dir")
def dir_(json_out: JsonOpt = False) -> None:
    """Print the cache directory."""
    if json_out:
        print_json({"cache_dir": str(paths.cache_dir())})
    else:
        out.print(str(paths.cache_dir()), markup=False)


@app.command("ls")
def ls(
    blobs: Annotated[bool, typer.Option("--blobs", help="list every blob of the store")] = False,
    json_out: JsonOpt = False,
) -> None:
    """What the cache holds, part by part (and each blob with --blobs)."""
    parts = cachedir.usage()
    entries = list(Store().entries()) if blobs else []
    if json_out:
        data: dict[str, object] = {"cache_dir": str(paths.cache_dir()), "parts": [
            {"name": p.name, "path": str(p.path), "files": p.files, "bytes": p.bytes} for p in parts]}
        if blobs:
            data["blobs"] = [{"digest": e.digest, "size": e.size} for e in entries]
        print_json(data)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("part", "files", "size", "what"):
        table.add_column(column, justify="right" if column in ("files", "size") else "left")
    for part in parts:
        table.add_row(part.name, str(part.files), f"{part.bytes / 1e6:.1f} MB", part.what)
    out.print(table)
    for entry in entries:
        out.print(f"{entry.digest}  {entry.size:>12,}", markup=False)


@app.command("verify")
def verify(json_out: JsonOpt = False) -> None:
    """Re-hash every blob; a corrupted one is removed (and fetched again by the next install)."""
    results = list(Store().verify())
    bad = [e.digest for e, ok in results if not ok]
    if json_out:
        print_json({"checked": len(results), "corrupted": bad})
    else:
        for digest in bad:
            err.print(f"[red]corrupted, removed:[/] {digest}")
        err.print(f"checked {len(results)} blob{'s' if len(results) != 1 else ''}: "
                  f"{'all good' if not bad else f'{len(bad)} corrupted and removed'}")
    if bad:
        raise typer.Exit(1)


@app.command("clean")
def clean(
    part: Annotated[list[str] | None, typer.Argument(help=f"only these parts: {', '.join(cachedir.PARTS)}")
                    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove cached files (everything by default). Plug-in memory (kv) is not in the cache."""
    unknown = [p for p in part or [] if p not in cachedir.PARTS]
    if unknown:
        raise CspmError(f"no cache part {unknown[0]!r}", hint=f"parts: {', '.join(cachedir.PARTS)}")
    removed = cachedir.clean(part or None)
    total = sum(p.bytes for p in removed)
    if json_out:
        print_json({"removed": [{"name": p.name, "files": p.files, "bytes": p.bytes} for p in removed]})
        return
    err.print(f"removed {sum(p.files for p in removed)} files ({total / 1e6:.1f} MB) from {paths.cache_dir()}")
