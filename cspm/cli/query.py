"""`cspm search`, `cspm info`, `cspm inspect`: parse, ask cspm.index.query / cspm.verify, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from cspm.cli.options import OfflineOpt
from cspm.cli.output import columns, err, fields, out, plain, print_json, shown, warner
from cspm.errors import CspmError
from cspm.formats import userconfig
from cspm.formats.app import DEFAULT_MEMORY_PAGES
from cspm.index import query
from cspm.index.federation import Federation
from cspm.protocol import kinds
from cspm.store import digest_of
from cspm.verify.interface import check_module, export_names, import_names
from cspm.verify.wasm import ABI0_CHAINSOCKET, ABI0_DESCRIPTION, Interface
from cspm.wording import how_to_use, plural

JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]


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
    columns(("name", "latest", "kind", "registry", "description"),
            [(h.name, str(h.latest), h.kind, h.registry, h.description) for h in hits])


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
    registry = Text(found.registry)
    if found.stale:
        registry.append("  (cached copy: registry unreachable)", style="yellow")
    pages = int(caps.get("memory_pages", DEFAULT_MEMORY_PAGES))
    rows: list[tuple[str, str | Text]] = [
        ("name", Text(f"{found.name} {entry.version}  ").append(f"({entry.kind}, ABI {entry.abi})", style="dim")),
        ("description", entry.description or "-"),
        ("registry", registry),
        ("versions", versions),
        ("digest", f"{entry.digest}  ({entry.size:,} bytes)"),
    ]
    if kinds.is_module(entry.kind):
        rows += [
            ("hosts", ", ".join(caps.get("hosts") or []) or "none"),
            ("paths", ", ".join(f"{h} -> {g}" for h, g in (caps.get("paths") or {}).items()) or "none"),
            ("memory", f"{plural(pages, 'page')} = {memory_size(pages)}"),
            ("kv / wasi", f"{'yes' if caps.get('kv') else 'no'} / {'yes' if caps.get('wasi') else 'no'}"),
            ("exports", ", ".join(entry.exports) or "-"),
            ("imports", ", ".join(entry.imports) or "-"),
        ]
    fields_ = entry.manifest_fields()
    rows += [(key, text) for key, text in (("config", _config_lines(fields_.get("config"))),
                                           ("secrets", _secret_lines(fields_.get("secrets"))),
                                           ("input", _schema_lines(fields_.get("input_schema")))) if text]
    rows += [
        ("dependencies", ", ".join(f"{n}{s}" for n, s in entry.dependencies.items()) or "none"),
        ("signer", f"{signer.get('identity', '?')} ({signer.get('issuer', '?')})" if signer else "unsigned"),
        ("use", _use(entry.kind, found.name, str(entry.version))),
    ]
    if entry.is_yanked:
        reason = entry.yanked if isinstance(entry.yanked, str) else "yes"
        rows.insert(1, ("yanked", Text(plain(reason), style="red")))
    fields(rows)


def memory_size(pages: int) -> str:
    """64 KiB wasm pages in the largest whole unit: 256 -> "16 MiB", 65536 -> "4 GiB"."""
    kib = pages * 64
    for unit, size in (("GiB", 1 << 20), ("MiB", 1 << 10)):
        if kib >= size and kib % size == 0:
            return f"{kib // size} {unit}"
    return f"{kib:,} KiB"


def _config_lines(config: Any) -> str:
    """Each config key a manifest declares: type, default or enum, description (one per line)."""
    if not isinstance(config, dict) or not config:
        return ""
    lines = []
    for key, decl in config.items():
        decl = decl if isinstance(decl, dict) else {}
        facts = [str(decl.get("type", "any"))]
        if "default" in decl:
            facts.append(f"default {json.dumps(decl['default'], ensure_ascii=False)}")
        if decl.get("enum"):
            facts.append("one of " + ", ".join(json.dumps(v, ensure_ascii=False) for v in decl["enum"]))
        about = f": {decl['description']}" if decl.get("description") else ""
        lines.append(f"{key} ({', '.join(facts)}){about}")
    return "\n".join(lines)


def _secret_lines(secrets: Any) -> str:
    """Each secret: required or not, and how the host injects it (header or query parameter)."""
    if not isinstance(secrets, dict) or not secrets:
        return ""
    lines = []
    for name, decl in secrets.items():
        decl = decl if isinstance(decl, dict) else {}
        how = f"query parameter {decl['query']}" if decl.get("query") else \
            f"header {decl.get('header', 'Authorization')}"
        about = f": {decl['description']}" if decl.get("description") else ""
        lines.append(f"{name} ({'required' if decl.get('required') else 'optional'}, sent as {how}){about}")
    return "\n".join(lines)


def _schema_lines(schema: Any) -> str:
    """A tool's input schema, property by property (the whole schema is in --json)."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict) or not schema["properties"]:
        return ""
    required = set(schema.get("required") or [])
    lines = []
    for name, prop in schema["properties"].items():
        prop = prop if isinstance(prop, dict) else {}
        facts = [str(prop.get("type", "any"))] + (["required"] if name in required else [])
        about = f": {prop['description']}" if prop.get("description") else ""
        lines.append(f"{name} ({', '.join(facts)}){about}")
    return "\n".join(lines)


def _use(kind: str, name: str, version: str) -> str:
    """The exact way to use a package: a command, or the app.yaml snippet for data and models."""
    if kinds.is_module(kind):
        return f"cspm add {name}@^{version.split('.')[0]}"
    return how_to_use(kind, name, version)[1]


def inspect(
    target: Annotated[str, typer.Argument(help="a .wasm module, a plug-in folder (plugin.yaml and its module), or "
                                               "oci://HOST/REPOSITORY[:TAG] (an image in an OCI registry)")],
    json_out: JsonOpt = False,
) -> None:
    """Check a module against the plug-in interface (ABI 1) and show its exports and imports; a plug-in
    folder also gets its plugin.yaml checked against the module (kind, declared wasm, config keys); an
    OCI image (a cspm package, a Wasm artifact, or a hyper-mcp-style image) is said to fit ABI 1 or not."""
    if target.startswith(("oci://", "oci+http://", "oci+https://")):
        _inspect_oci(target, json_out)
        return
    wasm = Path(target)
    if wasm.is_dir() or wasm.name == "plugin.yaml":
        _inspect_folder(wasm, json_out)
        return
    try:
        data = wasm.read_bytes()
    except OSError as exc:
        raise CspmError(f"cannot read {wasm}: {exc.strerror or exc}") from None
    interface = check_module(data, str(wasm), wasi_declared=True, abi0=True)
    need = interface.memory_min_pages or 0
    abi0 = _abi0_steps(interface)
    report: dict[str, Any] = {
        "file": str(wasm), "digest": digest_of(data), "size": len(data), "ok": True,
        "abi": 0 if abi0 else 1, "exports": export_names(interface), "imports": import_names(interface),
        "wasi": interface.uses_wasi,
        "memory": {"min_pages": interface.memory_min_pages, "max_pages": interface.memory_max_pages,
                   "default_grant_pages": DEFAULT_MEMORY_PAGES, "fits_default_grant": need <= DEFAULT_MEMORY_PAGES}}
    if abi0:
        report["abi0"] = {"description": ABI0_DESCRIPTION, "cspm_will": abi0}
    if json_out:
        print_json(report)
        return
    what = ABI0_DESCRIPTION if abi0 else "a valid ABI 1 plug-in module"
    out.print(Text(str(wasm), style="bold") + Text(f": {what}"))
    for step in abi0:
        out.print(f"  cspm     {step}", markup=False)
    out.print(f"  digest   {report['digest']} ({len(data):,} bytes)", markup=False)
    out.print(f"  exports  {', '.join(export_names(interface))}", markup=False)
    out.print(f"  imports  {', '.join(import_names(interface)) or 'none'}", markup=False)
    out.print(f"  wasi     {'yes' if interface.uses_wasi else 'no'}", markup=False)
    out.print(f"  memory   {_memory_line(interface.memory_min_pages, interface.memory_max_pages)}", markup=False)
    if need > DEFAULT_MEMORY_PAGES:
        default = f"{DEFAULT_MEMORY_PAGES} pages ({memory_size(DEFAULT_MEMORY_PAGES)})"
        warner()(f"{wasm} needs {plural(need, 'page', grouped=True)} ({memory_size(need)}) of memory at start, "
                 f"more than the default grant of {default}: `cspm run` refuses it unless its component grants "
                 f"`grant: {{memory_pages: {need}}}` in app.yaml")


def _abi0_steps(interface: Interface) -> list[str]:
    """What cspm does to run a module built for Extism 0.x (none for an ABI 1 module): its imports
    are not problems, they are what cspm translates (docs/abi.md, "ABI 0")."""
    if not interface.abi0:
        return []
    names = {name for module, name, _ in interface.imports if module == "env"}
    steps = ["rewrites its Extism 0.x imports (`env.extism_*`) to Extism 1.x (`extism:host/env`), keeping "
             "0.x semantics"]
    calls = sorted(names & ABI0_CHAINSOCKET)
    if calls:
        steps.append(f"translates its Chainsocket 0 calls ({', '.join(calls)}): the original requests to ABI 1 "
                     "and the answers back to `{\"output\"}`")
    if "extism_config_get" in names:
        steps.append("answers `extism_config_get` from the app's config (an original app.json's keys: `name`, "
                     "`prompt`, `llm_name`); an API key is a secret: the plug-in reads a placeholder, which the "
                     "host replaces with the key only on the way to the granted host")
    if "extism_http_request" in names:
        steps.append("sends its HTTP requests through its grant: the hosts the app allows, nothing else")
    steps.append("runs it in an app: the original app.json (`cspm run app.json`, `cspm import app.json`) or app.yaml")
    return steps


def _inspect_oci(reference: str, json_out: bool) -> None:
    """The module of an OCI image, and whether it fits ABI 1 (exit 1 when it does not)."""
    from cspm import oci_inspect

    report = oci_inspect.fit(oci_inspect.fetch_module(reference, userconfig.load().registries))
    if json_out:
        print_json(report)
    else:
        verdict = "fits ABI 1" if report["fits_abi1"] else "does not fit ABI 1"
        out.print(Text(reference, style="bold") + Text(f": {verdict}"))
        where = f" ({report['member']} in a tar layer)" if report["member"] else ""
        out.print(f"  layer    {report['layer']}{where}", markup=False)
        if report["package"]:
            package = report["package"]
            out.print(f"  package  {package.get('name')} {package.get('version')} ({package.get('kind')})",
                      markup=False)
        out.print(f"  digest   {report['digest']} ({report['size']:,} bytes)", markup=False)
        out.print(f"  exports  {', '.join(report['exports']) or 'none'}", markup=False)
        out.print(f"  imports  {', '.join(report['imports']) or 'none'}", markup=False)
        for problem in report["problems"]:
            out.print(f"  [red]problem[/] {shown(problem)}", highlight=False)
        out.print(f"  {report['advice']}", markup=False)
    if not report["fits_abi1"]:
        raise typer.Exit(1)


def _inspect_folder(folder: Path, json_out: bool) -> None:
    """The findings of cspm.verify.plugin_folder; exit 1 when one is an error."""
    from cspm.verify.plugin_folder import inspect_folder

    report = inspect_folder(folder)
    if json_out:
        print_json(report.to_dict())
    else:
        m = report.manifest
        out.print(Text(f"{folder}", style="bold") + Text(f": {m.name} {m.version} ({m.kind})"))
        out.print(f"  file     {m.wasm}", markup=False)
        if report.module is not None:
            module = report.module
            memory = module["memory"]
            out.print(f"  digest   {module['digest']} ({module['size']:,} bytes)", markup=False)
            out.print(f"  exports  {', '.join(module['exports'])}", markup=False)
            out.print(f"  imports  {', '.join(module['imports']) or 'none'}", markup=False)
            out.print(f"  memory   {_memory_line(memory['min_pages'], memory['max_pages'])}", markup=False)
        marks = {"ok": "[green]ok[/]     ", "warning": "[yellow]warning[/]", "error": "[red]error[/]  "}
        for finding in report.findings:
            out.print(f"  {marks[finding.level]} {shown(finding.message)}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


def _memory_line(low: int | None, high: int | None) -> str:
    """What the module asks for at start (and its maximum) beside what `run` grants by default."""
    grant = f"the default grant is {DEFAULT_MEMORY_PAGES} pages ({memory_size(DEFAULT_MEMORY_PAGES)})"
    if low is None:
        return f"none declared; {grant}"
    most = f", at most {high:,} ({memory_size(high)})" if high is not None else ""
    return f"{plural(low, 'page', grouped=True)} ({memory_size(low)}) at start{most}; {grant}"
