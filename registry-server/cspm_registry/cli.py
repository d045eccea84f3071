"""`cspm-registry serve | token create | export` (docs/registry.md)."""

from __future__ import annotations

import logging
import re
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer
from filelock import FileLock, Timeout

from cspm.errors import CspmError
from cspm.formats.names import check_part
from cspm_registry import auth
from cspm_registry.storage import DB_FILE, Storage

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # what cspm's user config accepts as a registry name
DEFAULT_NAME = "registry"

# plain tracebacks: rich ones print local variables, and a local may be a token
app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="The cspm registry server.")
token_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, help="API tokens.")
app.add_typer(token_app, name="token")

Data = Annotated[Path, typer.Option("--data", help="the registry's data dir (created when missing)")]


def _fail(message: str, hint: str | None = None) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    return typer.Exit(1)


@app.command()
def serve(
    data: Data,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0: any free port, printed at start)")] = 8000,
    name: Annotated[str, typer.Option(help="the registry's name in config.json")] = DEFAULT_NAME,
    max_blob_mb: Annotated[int, typer.Option(help="largest module or app package accepted, in MiB")] = 64,
    access_log: Annotated[bool, typer.Option("--access-log", help="log every request (costly under load)")
                          ] = False,
) -> None:
    """Serve the index and the write API; a fresh DIR gets everything it needs."""
    import uvicorn

    from cspm_registry.app import create_app

    if not NAME_RE.match(name):
        raise _fail(f"--name {name!r}: use lowercase letters, digits, '-' and '_' (at most 64)")
    if not 1 <= max_blob_mb <= 4095:  # a part's length is 32 bits
        raise _fail("--max-blob-mb is 1 to 4095")
    data.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(data / "serve.lock"))
    try:
        lock.acquire(timeout=0)  # one server per data dir: its start-up sweep would eat another's uploads
    except Timeout:
        raise _fail(f"another cspm-registry is serving {data}") from None
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    storage = Storage(data)
    removed = storage.sweep()
    if removed:
        logging.getLogger("cspm_registry").info("removed %d leftovers of interrupted publishes", len(removed))
    storage.set_meta("name", name)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"cspm-registry: serving {name} at http://{shown}:{port}/ (data {data})", flush=True)
    application = create_app(storage, name=name, max_blob_bytes=max_blob_mb << 20)
    config = uvicorn.Config(application, host=host, port=port, log_level="info", server_header=False,
                            access_log=access_log)
    uvicorn.Server(config).run(sockets=[sock])


@token_app.command("create")
def token_create(
    data: Data,
    namespace: Annotated[list[str] | None, typer.Option("--namespace", help="a namespace it may use (repeat)")] = None,
    publish: Annotated[bool, typer.Option("--publish", help="it may publish and yank in its namespaces")] = False,
    admin: Annotated[bool, typer.Option("--admin", help="it may publish and yank in every namespace")] = False,
) -> None:
    """Create a token and print it once: only its SHA-256 is kept."""
    namespaces = namespace or []
    if not namespaces and not admin:
        raise _fail("give at least one --namespace (or --admin)")
    try:
        for item in namespaces:
            check_part(item)
    except CspmError as exc:
        raise _fail(exc.message) from None
    data.mkdir(parents=True, exist_ok=True)
    token_id, token = auth.create(Storage(data), namespaces, publish=publish, admin=admin)
    rights = "admin" if admin else "publish" if publish else "no write access"
    typer.echo(f"token #{token_id} for {', '.join(namespaces) or 'every namespace'} ({rights}); "
               f"it is shown only this once: store it now", err=True)
    print(token, flush=True)


@app.command("export")
def export_command(
    data: Data,
    out: Annotated[Path, typer.Option("--out", help="folder to write (replaced as a whole)")],
    name: Annotated[str | None, typer.Option(help="name in config.json (default: the one `serve` used)")] = None,
) -> None:
    """Write every index file, `names`, blobs and bundles as static files (config.json with api null)."""
    from cspm_registry.export import export

    if not (data / DB_FILE).is_file():
        raise _fail(f"{data} holds no registry ({DB_FILE} is missing)")
    storage = Storage(data)
    try:
        written = export(storage, out, name or storage.get_meta("name") or DEFAULT_NAME)
    except CspmError as exc:
        raise _fail(exc.message, exc.hint) from None
    typer.echo(f"exported {written['packages']} packages, {written['versions']} versions, {written['blobs']} blobs "
               f"to {out}", err=True)


def main() -> None:
    try:
        app()
    except CspmError as exc:  # a data dir this version cannot use, and the like: no traceback
        typer.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
