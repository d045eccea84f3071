"""`cspm-registry serve | token create|list|revoke | trust set|list|remove | export` (docs/registry.md)."""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from filelock import FileLock, Timeout

from cspm.errors import CspmError
from cspm.formats.names import check_part
from cspm.verify.signature import key_id
from cspm.wording import plural
from cspm_registry import auth
from cspm_registry.storage import DB_FILE, MAX_REGISTRY_NAME, Storage, Token

# fullmatch (`$` lets a final newline by): what cspm's user config accepts as a registry name
NAME_RE = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{MAX_REGISTRY_NAME - 1}}}")
KEY_RE = re.compile(r"ed25519:[0-9a-fA-F]{64}")  # fullmatch
MAX_FIELD = 1024  # an index line's `issuer` and `identity` are at most this long
DEFAULT_NAME = "registry"
HEADER_TIMEOUT_S = 10.0  # a request's line and headers (docs/registry.md "Connections")

# plain tracebacks: rich ones print local variables, and a local may be a token
app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="The cspm registry server.")
token_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, help="API tokens.")
app.add_typer(token_app, name="token")
trust_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                        help="Trusted publishers: who must sign what is published in a namespace.")
app.add_typer(trust_app, name="trust")

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
    upload_timeout: Annotated[float, typer.Option(help="seconds a request body may take to arrive, in all "
                                                       "(then 408)")] = 30.0,
    header_timeout: Annotated[float, typer.Option(help="seconds a request's line and headers may take to arrive "
                                                       "(then 408 and the connection is closed)")
                              ] = HEADER_TIMEOUT_S,
    access_log: Annotated[bool, typer.Option("--access-log", help="log every request (costly under load)")
                          ] = False,
) -> None:
    """Serve the index and the write API; a fresh DIR gets everything it needs."""
    import uvicorn

    from cspm_registry.app import create_app
    from cspm_registry.protocol import protocol_class

    if not NAME_RE.fullmatch(name):
        raise _fail(f"--name {name!r}: use lowercase letters, digits, '-' and '_' (at most 64)")
    if not 1 <= max_blob_mb <= 4095:  # a part's length is 32 bits
        raise _fail("--max-blob-mb is 1 to 4095")
    for value, option in ((upload_timeout, "--upload-timeout"), (header_timeout, "--header-timeout")):
        if not 0 < value <= 86400:  # also refuses nan
            raise _fail(f"{option} is more than 0 and at most 86400 seconds")
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
    application = create_app(storage, name=name, max_blob_bytes=max_blob_mb << 20, upload_timeout=upload_timeout)
    # the request head is bounded by our protocol (size and time); no WebSocket: nothing here speaks it
    config = uvicorn.Config(application, host=host, port=port, log_level="info", server_header=False,
                            access_log=access_log, http=protocol_class(header_timeout=header_timeout), ws="none")
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


def _scope(token: Token) -> str:
    return "admin" if token.admin else "publish" if token.publish else "read-only"


@token_app.command("list")
def token_list(
    data: Data,
    json_out: Annotated[bool, typer.Option("--json", help="a JSON list of {id, namespaces, scope, created}")
                        ] = False,
) -> None:
    """Every token: id, namespaces, scope and creation time (never the token: only its hash is kept)."""
    found = Storage(data).tokens() if (data / DB_FILE).is_file() else []
    rows: list[dict[str, Any]] = [{"id": token.id, "namespaces": sorted(token.namespaces), "scope": _scope(token),
             "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))} for token, created in found]
    if json_out:
        print(json.dumps(rows, indent=2), flush=True)
        return
    for row in rows:
        print(f"#{row['id']}  {row['scope']:<9}  {row['created']}  {', '.join(row['namespaces']) or '*'}", flush=True)
    if not rows:
        typer.echo("no tokens: create one with `cspm-registry token create`", err=True)


@token_app.command("revoke")
def token_revoke(
    data: Data,
    token_id: Annotated[str, typer.Argument(metavar="ID", help="the token's id, as `token list` shows it (#3 or 3)")],
) -> None:
    """Revoke a token by id: from its next request on (even on a running server) it is 401."""
    number = token_id.removeprefix("#")
    if not number.isdecimal():
        raise _fail(f"{token_id[:40]!r} is not a token id", hint="`cspm-registry token list` shows the ids (#3)")
    if not (data / DB_FILE).is_file() or not Storage(data).remove_token(int(number)):
        raise _fail(f"there is no token #{int(number)}", hint="`cspm-registry token list` shows the ids")
    typer.echo(f"revoked token #{int(number)}", err=True)


def _namespace(namespace: str) -> str:
    try:
        return check_part(namespace)
    except CspmError as exc:
        raise _fail(exc.message) from None


@trust_app.command("set")
def trust_set(
    data: Data,
    namespace: Annotated[str, typer.Option("--namespace", help="the namespace (its policy pattern is NS/*)")],
    issuer: Annotated[str | None, typer.Option("--issuer", help="keyless: the OIDC issuer (with --identity)")
                      ] = None,
    identity: Annotated[str | None, typer.Option("--identity", help="keyless: the signer's identity, exact or a "
                                                                    "glob (* ? [])")] = None,
    key: Annotated[list[str] | None, typer.Option("--key", help="keyed: a trusted public key ed25519:<hex> "
                                                               "(repeat)")] = None,
    optional: Annotated[bool, typer.Option("--optional", help="accept unsigned publishes too (a signature, when "
                                                              "there is one, must still be trusted)")] = False,
) -> None:
    """Set (replace) a namespace's trusted publishers; config.json publishes them as its `policy`."""
    namespace = _namespace(namespace)
    keys = [k.strip().lower() for k in key or []]
    if (issuer is None) != (identity is None):
        raise _fail("--issuer and --identity go together (a signer is an identity at an issuer)")
    if issuer is None and not keys:
        raise _fail("give --issuer and --identity (keyless), or --key ed25519:<hex> (keyed), or both")
    for value, option in ((issuer, "--issuer"), (identity, "--identity")):
        if value is not None and not 0 < len(value.strip()) <= MAX_FIELD:
            raise _fail(f"{option} is 1 to {MAX_FIELD} characters")
    for item in keys:
        if not KEY_RE.fullmatch(item):
            raise _fail(f"--key {item[:80]!r} is not a public key", hint="expected ed25519:<64 hex digits> (the "
                                                                         "public key `cspm keygen` prints)")
    data.mkdir(parents=True, exist_ok=True)
    storage = Storage(data)
    storage.set_trust(namespace, issuer=issuer.strip() if issuer else None,
                      identity=identity.strip() if identity else None, keys=sorted(set(keys)), require=not optional)
    typer.echo(f"{namespace}/*: {_describe(storage.policy(namespace)[f'{namespace}/*'])}", err=True)


@trust_app.command("list")
def trust_list(
    data: Data,
    json_out: Annotated[bool, typer.Option("--json", help="the policy as config.json publishes it")] = False,
) -> None:
    """Every namespace's trusted publishers."""
    policy = Storage(data).policy() if (data / DB_FILE).is_file() else {}
    if json_out:
        print(json.dumps(policy, indent=2, sort_keys=True), flush=True)
        return
    for pattern, entry in policy.items():
        print(f"{pattern}: {_describe(entry)}", flush=True)
    if not policy:
        typer.echo("no namespace has trusted publishers: publishes are verified only when signed", err=True)


@trust_app.command("remove")
def trust_remove(
    data: Data,
    namespace: Annotated[str, typer.Option("--namespace", help="the namespace")],
) -> None:
    """Remove a namespace's trusted publishers: it then accepts unsigned publishes."""
    namespace = _namespace(namespace)
    if not (data / DB_FILE).is_file() or not Storage(data).remove_trust(namespace):
        raise _fail(f"namespace {namespace!r} has no trusted publishers")
    typer.echo(f"removed the trusted publishers of {namespace}/*", err=True)


def _describe(entry: dict[str, Any]) -> str:
    parts = []
    if entry.get("issuer"):
        parts.append(f"identity {entry.get('identity')} at issuer {entry['issuer']}")
    parts += [f"key {k} (id {key_id(k)})" for k in entry.get("keys") or []]
    required = "signature required" if entry.get("require") else "signature optional"
    return f"{' or '.join(parts)}; {required}"


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
    counts = ", ".join(plural(written[k], w) for k, w in (("packages", "package"), ("versions", "version"),
                                                           ("blobs", "blob"), ("bundles", "signature bundle")))
    typer.echo(f"exported {counts} to {out}", err=True)


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
