"""`cspm web`: an app as a static site (the bundle, the JavaScript host, a chat page) that runs in a
browser tab, written to a folder or served locally (cspm.web, docs/web.md): parse, call, print."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cspm.cli.listening import cannot_listen, is_loopback
from cspm.cli.options import AllowCapabilitiesOpt, FrozenOpt, OfflineOpt, RefreshOpt
from cspm.cli.output import err, print_json, shown, warner
from cspm.cli.run import prepared
from cspm.errors import InputError
from cspm.wording import plural

if TYPE_CHECKING:
    from collections.abc import Callable

    from cspm.web import SiteInfo


def web(
    app: Annotated[str, typer.Argument(help="app config, or a published app NAMESPACE/NAME[@SPEC]")] = "app.yaml",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="the site folder: new, empty or a previous site "
                                                                 "(replaced); with --serve, a temporary one if "
                                                                 "omitted")] = None,
    serve: Annotated[bool, typer.Option("--serve", help="serve the site locally (COOP/COEP headers) until "
                                                        "Ctrl-C")] = False,
    host: Annotated[str, typer.Option("--host", help="with --serve: the address to listen on (loopback by "
                                                     "default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="with --serve: the port; 0 picks a free "
                                                                      "one")] = 8080,
    json_out: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
    offline: OfflineOpt = False,
    frozen: FrozenOpt = False,
    refresh: RefreshOpt = False,
    allow_capabilities: AllowCapabilitiesOpt = False,
) -> None:
    """Write an app's static site: index.html (a chat page), chainsocket-web.js (the JavaScript host)
    and app/ (its bundle), for any static server; or serve it locally with --serve (docs/web.md)."""
    from cspm import planner
    from cspm import web as site

    if out is None and not serve:
        raise InputError("say where the site goes: --out DIR, or --serve to serve it from a temporary folder",
                         hint="e.g. `cspm web app.yaml --out site` or `cspm web app.yaml --serve`")
    site.site_sources(site.host_build())  # refused before locking and installing, which can take long
    warnings: list[str] = []
    config = prepared(app, offline=offline, frozen=frozen, refresh=refresh, json_out=json_out,
                      allow_capabilities=allow_capabilities, warnings=warnings)
    plan = planner.build(config)
    warn = warner(warnings)
    for message in site.check_app(plan):
        warn(message)
    scratch: Path | None = None
    if out is None:  # --serve alone: a site of this run only, removed when it ends
        scratch = Path(tempfile.mkdtemp(prefix="cspm-web-"))
        out = scratch / "site"
    try:
        info = site.write(plan, out)
        if not serve:
            if json_out:
                print_json({**info.to_dict(), "warnings": warnings})
                return
            err.print(f"[bold]{shown(info.app)}[/]: site in {shown(str(info.path))} "
                      f"({plural(info.bundle.modules, 'module')}, {plural(info.bundle.mounts, 'package')}, "
                      f"{info.bytes / 2**20:.1f} MiB); serve it with any static server that sends COOP/COEP "
                      f"headers, or `cspm web --serve`")
            return
        _serve(info, host=host, port=port, json_out=json_out, warn=warn)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _serve(info: SiteInfo, *, host: str, port: int, json_out: bool, warn: Callable[[str], None]) -> None:
    from cspm import web as site

    if not is_loopback(host):
        warn(f"serving on {host}: anyone who can reach it can load the app (it runs in their browser)")

    def listening(url: str) -> None:
        line = (json.dumps({"app": info.app, "url": url, "path": str(info.path)}) if json_out
                else f"cspm web: {info.app} at {url} (from {info.path})")
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        site.serve(info.path, host, port, listening)
    except (OSError, UnicodeError) as exc:
        raise cannot_listen("cspm web --serve", host, port, exc) from None
