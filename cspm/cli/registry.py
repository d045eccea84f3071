"""`cspm registry add|remove|list`: the registries of the user config, in order."""

from __future__ import annotations

from typing import Annotated

import typer

from cspm.cli.output import columns, err, print_json
from cspm.formats import userconfig

app = typer.Typer(help="Configure the registries cspm resolves from (in order).", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]


def _as_dict(registry: userconfig.Registry) -> dict[str, object]:
    return {"name": registry.name, "url": registry.url, "namespaces": list(registry.namespaces)}


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="a logical name (what app.lock records)")],
    url: Annotated[str, typer.Argument(help="https://…, http://…, oci://HOST[:PORT]/PREFIX (OCI) or a folder")],
    namespace: Annotated[list[str] | None, typer.Option(
        "--namespace", "-n", help="serve only this namespace, and be the only registry asked for it; repeatable")
    ] = None,
    first: Annotated[bool, typer.Option("--first", help="put it before the others")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Add a registry (or change the one with this name)."""
    config = userconfig.load()
    registry = userconfig.add_registry(config, name, url, tuple(namespace or ()), first)
    userconfig.save(config)
    if json_out:
        print_json({"added": _as_dict(registry), "registries": [_as_dict(r) for r in config.registries]})
        return
    scope = f" for namespace{'s' if len(registry.namespaces) > 1 else ''} {', '.join(registry.namespaces)}" \
        if registry.namespaces else ""
    err.print(f"[bold]registry[/] {registry.name} -> {registry.url}{scope} (saved in {config.path})")


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="the registry's name")],
    json_out: JsonOpt = False,
) -> None:
    """Remove a registry from the config."""
    config = userconfig.load()
    registry = userconfig.remove_registry(config, name)
    userconfig.save(config)
    if json_out:
        print_json({"removed": _as_dict(registry), "registries": [_as_dict(r) for r in config.registries]})
        return
    err.print(f"removed registry {registry.name} ({registry.url})")


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """The registries in the order they are asked."""
    config = userconfig.load()
    if json_out:
        print_json({"config": str(config.path), "exists": config.exists,
                    "registries": [_as_dict(r) for r in config.registries]})
        return
    columns(("#", "name", "serves", "url"),
            [(str(position), r.name, ", ".join(r.namespaces) if r.namespaces else "any namespace",
              r.url) for position, r in enumerate(config.registries, 1)])
    if not config.exists:
        err.print(f"[dim](defaults: {config.path} does not exist yet)[/]")
