"""`cspm cache dir|ls|verify|clean`."""

from __future__ import annotations

from typing import Annotated

import typer

from cspm import cachedir, paths
from cspm.cli.output import columns, err, out, print_json
from cspm.errors import CspmError
from cspm.store import Store
from cspm.wording import plural

app = typer.Typer(help="Inspect and clean the cache (blobs, compiled modules, index files, models, …).",
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
    """What the cache holds, part by part (each bucket of the cache's layout; each blob with --blobs)."""
    parts = cachedir.usage()
    entries = list(Store().entries()) if blobs else []
    if json_out:
        data: dict[str, object] = {"cache_dir": str(paths.cache_dir()), "parts": [
            {"name": p.name, "path": str(p.path), "version": p.version, "files": p.files, "bytes": p.bytes}
            for p in parts]}
        if blobs:
            data["blobs"] = [{"digest": e.digest, "size": e.size} for e in entries]
        print_json(data)
        return
    columns(("part", "files", "size", "what"),
            [(p.name, str(p.files), f"{p.bytes / 1e6:.1f} MB", p.what) for p in parts])
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
        err.print(f"checked {plural(len(results), 'blob')}: "
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
    files = plural(sum(p.files for p in removed), "file")
    err.print(f"removed {files} ({total / 1e6:.1f} MB) from {paths.cache_dir()}")
