"""`cspm search`, `cspm info`, `cspm inspect`: parse, ask cspm.index.query / cspm.verify, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cspm.cli.output import err, out, print_json, shown, warner
from cspm.errors import CspmError
from cspm.formats import userconfig
from cspm.index import query
from cspm.index.federation import Federation
from cspm.store import digest_of
from cspm.verify.interface import check_module, export_names, import_names

JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="use cached index files only; never the network")]


def search(
    text: Annotated[str, typer.Argument(help="words to find in names and descriptions")] = "",
    limit: Annotated[int, typer.Option("--limit", help="at most this many results")] = 50,
    offline: OfflineOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Find plug-ins and apps in every configured registry."""
    federation = Federation(userconfig.load(), offline=offline, warn=warner())
    try:
        hits = query.search(federation, text, limit)
    finally:
        federation.close()
    if json_out:
        print_json({"query": text, "results": [h.to_dict() for h in hits]})
        return
    if not hits:
        err.print(f"nothing matches {shown(repr(text))}")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("name", "latest", "kind", "registry", "description"):
        table.add_column(column, overflow="fold")
    for hit in hits:
        # a registry's text is shown as text: rich would read `[...]` in a cell as markup
        table.add_row(*(shown(str(cell)) for cell in (hit.name, hit.latest, hit.kind, hit.registry,
                                                        hit.description)))
    out.print(table)


def _entry_dict(entry: Any) -> dict[str, Any]:
    data = dict(entry.raw)
    data["yanked"] = entry.yanked
    return data


def info(
    name: Annotated[str, typer.Argument(help="NAMESPACE/NAME or NAMESPACE/NAME@SPEC")],
    offline: OfflineOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Versions, kind, capabilities, exports and signer of a plug-in or app."""
    federation = Federation(userconfig.load(), offline=offline, warn=warner())
    try:
        found = query.info(federation, name)
    finally:
        federation.close()
    entry = found.chosen
    if json_out:
        print_json({"name": found.name, "registry": found.registry, "stale": found.stale,
                    "versions": [{"version": str(e.version), "yanked": e.yanked} for e in found.entries],
                    "selected": _entry_dict(entry)})
        return
    versions = ", ".join(f"{e.version}{' (yanked)' if e.is_yanked else ''}" for e in reversed(found.entries))
    caps = entry.capabilities
    signer = entry.signature or {}
    rows = [
        ("name", f"{found.name} {entry.version}  [dim]({entry.kind}, ABI {entry.abi})[/]"),
        ("description", entry.description or "-"),
        ("registry", found.registry + ("  [yellow](cached copy: registry unreachable)[/]" if found.stale else "")),
        ("versions", versions),
        ("digest", f"{entry.digest}  ({entry.size:,} bytes)"),
        ("hosts", ", ".join(caps.get("hosts") or []) or "none"),
        ("paths", ", ".join(f"{h} -> {g}" for h, g in (caps.get("paths") or {}).items()) or "none"),
        ("memory", f"{caps.get('memory_pages', 256)} pages ({caps.get('memory_pages', 256) * 64} KiB)"),
        ("kv / wasi", f"{'yes' if caps.get('kv') else 'no'} / {'yes' if caps.get('wasi') else 'no'}"),
        ("exports", ", ".join(entry.exports) or "-"),
        ("imports", ", ".join(entry.imports) or "-"),
        ("dependencies", ", ".join(f"{n}{s}" for n, s in entry.dependencies.items()) or "none"),
        ("signer", f"{signer.get('identity', '?')} ({signer.get('issuer', '?')})" if signer else "unsigned"),
    ]
    if entry.is_yanked:
        reason = shown(entry.yanked) if isinstance(entry.yanked, str) else "yes"
        rows.insert(1, ("yanked", f"[red]{reason}[/]"))
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value if key == "yanked" else shown(str(value)))
    out.print(table)


def inspect(
    wasm: Annotated[Path, typer.Argument(help="a .wasm module")],
    json_out: JsonOpt = False,
) -> None:
    """Check a module against the plug-in interface (ABI 1) and show its exports and imports."""
    try:
        data = wasm.read_bytes()
    except OSError as exc:
        raise CspmError(f"cannot read {wasm}: {exc.strerror or exc}") from None
    interface = check_module(data, str(wasm), wasi_declared=True)
    report = {"file": str(wasm), "digest": digest_of(data), "size": len(data), "ok": True,
              "exports": export_names(interface), "imports": import_names(interface),
              "wasi": interface.uses_wasi}
    if json_out:
        print_json(report)
        return
    out.print(f"[bold]{wasm}[/]: a valid ABI 1 plug-in module")
    out.print(f"  digest   {report['digest']} ({len(data):,} bytes)")
    out.print(f"  exports  {', '.join(report['exports'])}")
    out.print(f"  imports  {', '.join(report['imports']) or 'none'}")
    out.print(f"  wasi     {'yes' if interface.uses_wasi else 'no'}")
