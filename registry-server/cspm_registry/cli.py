"""`cspm-registry serve | sweep | token create|list|revoke | trust set|list|remove | export` (docs/registry.md).

Every command works on one registry: `--data DIR` (SQLite and a folder: one server), or `--db
postgresql://… --blobs s3://BUCKET/PREFIX` (shared by any number of `serve` replicas; the admin
commands need only `--db`). `serve` records its `--name`, `--blobs`, `--static`, `--public-base` and
`--s3-endpoint` in the database, so that `trust set --db …` writes the new config.json to the same
static tree.
"""

from __future__ import annotations

import json
import logging
import os
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
from cspm_registry.storage import DB_FILE, MAX_REGISTRY_NAME, Storage, Token, Unavailable

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

Data = Annotated[Path | None, typer.Option("--data", help="the registry's data dir (created when missing)")]
Db = Annotated[str | None, typer.Option("--db", help="postgresql://… : the metadata of a registry shared by "
                                                     "replicas (instead of --data)")]
Blobs = Annotated[str | None, typer.Option("--blobs", help="s3://BUCKET/PREFIX: the blobs of a registry shared by "
                                                           "replicas (with --db)")]
S3Endpoint = Annotated[str | None, typer.Option("--s3-endpoint", help="the S3 service's URL (default: "
                                                                     "AWS_ENDPOINT_URL, else AWS)")]
DEFAULT_GRACE_S = 3600.0
URL_ENV_HINT = "credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or a profile), the region from " \
               "AWS_DEFAULT_REGION"


def _open(data: Path | None, db: str | None, blobs: str | None, s3_endpoint: str | None, *, need_blobs: bool,
          static: str | None = None, public_base: str | None = None, name: str | None = None,
          recorded: bool = True) -> Storage:
    """The registry's storage from the command line: `--data`, or `--db` (+ `--blobs`); refusals in words.

    `recorded`: take `--blobs`, `--static`, `--public-base`, `--s3-endpoint` and the name from what
    `serve` recorded in the database when the command line does not give them (admin commands)."""
    if (data is None) == (db is None):
        raise _fail("give --data DIR, or --db postgresql://… (with --blobs s3://BUCKET/PREFIX)")
    if data is not None:
        for value, option in ((blobs, "--blobs"), (static, "--static"), (public_base, "--public-base"),
                              (s3_endpoint, "--s3-endpoint")):
            if value is not None:
                raise _fail(f"{option} goes with --db (a --data dir keeps its blobs in DIR/blobs)")
        data.mkdir(parents=True, exist_ok=True)
        return Storage(data, name=name or DEFAULT_NAME)
    assert db is not None
    if not db.startswith(("postgresql://", "postgres://")):
        raise _fail(f"--db {db[:100]!r}: expected a postgresql://USER@HOST/DATABASE URL")
    if blobs is not None and not blobs.startswith("s3://"):
        raise _fail(f"--blobs {blobs[:100]!r}: expected s3://BUCKET/PREFIX (with --db, blobs live in S3)")
    if public_base is not None and not re.fullmatch(r"https?://[^\s?#]+", public_base):
        raise _fail(f"--public-base {public_base[:100]!r}: expected an http(s):// URL (no query)")
    from cspm_registry.blobs import NoBlobs
    from cspm_registry.blobs_s3 import S3Blobs, S3Location
    from cspm_registry.metadata_postgres import PostgresMetadata
    from cspm_registry.static import target_for

    meta = PostgresMetadata(db)
    if recorded:
        blobs = blobs or meta.get_meta("blobs")
        static = static or meta.get_meta("static")
        public_base = public_base or meta.get_meta("public_base")
        s3_endpoint = s3_endpoint or meta.get_meta("s3_endpoint")
        name = name or meta.get_meta("name")
    if need_blobs and not blobs:
        raise _fail("--db needs --blobs s3://BUCKET/PREFIX (where the blobs are)")
    endpoint = s3_endpoint or os.environ.get("AWS_ENDPOINT_URL") or None
    store = S3Blobs(blobs, endpoint) if blobs else NoBlobs()
    target = target_for(static, endpoint) if static else None
    same = bool(static and blobs and static.startswith("s3://") and S3Location(static) == S3Location(blobs))
    return Storage(None, meta=meta, blob_store=store, static=target, name=name or DEFAULT_NAME,
                   public_base=public_base.rstrip("/") if public_base else None, same_tree=same,
                   static_full_first=not recorded)  # `serve` writes the whole tree once; admin commands their change


def _has_registry(data: Path | None, db: str | None) -> bool:
    """Whether there is a registry to read (a --data dir without registry.db has none yet)."""
    return db is not None or (data is not None and (data / DB_FILE).is_file())


def _fail(message: str, hint: str | None = None) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    return typer.Exit(1)


@app.command()
def serve(
    data: Data = None,
    db: Db = None,
    blobs: Blobs = None,
    static: Annotated[str | None, typer.Option("--static", help="write-through static tree: s3://BUCKET/PREFIX or "
                                                                "a folder, rewritten after every change")] = None,
    public_base: Annotated[str | None, typer.Option("--public-base", help="URL clients download blobs from "
                                                                          "(config.json's dl; default: the "
                                                                          "registry, which redirects to a "
                                                                          "presigned URL)")] = None,
    s3_endpoint: S3Endpoint = None,
    grace: Annotated[float, typer.Option("--grace", help="with --db: at start, sweep orphan blobs older than this "
                                                         "many seconds (0: no sweep)")] = DEFAULT_GRACE_S,
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
    if not 0 <= grace <= 10 * 365 * 86400:
        raise _fail("--grace is 0 or more seconds")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    log = logging.getLogger("cspm_registry")
    if data is not None:
        data.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(data / "serve.lock"))
        try:
            lock.acquire(timeout=0)  # one server per data dir: its start-up sweep would eat another's uploads
        except Timeout:
            raise _fail(f"another cspm-registry is serving {data}") from None
    storage = _open(data, db, blobs, s3_endpoint, need_blobs=True, static=static, public_base=public_base,
                    name=name, recorded=False)
    if data is None:  # shared: other replicas may be publishing, so only orphans past the grace go
        _check_blobs(storage)
        removed = storage.sweep(grace) if grace else []
        recorded = {"blobs": blobs, "static": static, "public_base": storage.public_base, "s3_endpoint": s3_endpoint}
        for key, text in recorded.items():
            storage.set_meta(key, text or "")
        storage.write_through()  # the whole tree, once: repairs what a replica that died mid-write left
    else:
        removed = storage.sweep()
    if removed:
        log.info("removed %d leftovers of interrupted publishes", len(removed))
    storage.set_meta("name", name)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    where = f"data {data}" if data is not None else f"db {_where(db)}, blobs {blobs}" + \
        (f", static {static}" if static else "")
    print(f"cspm-registry: serving {name} at http://{shown}:{port}/ ({where})", flush=True)
    application = create_app(storage, name=name, max_blob_bytes=max_blob_mb << 20, upload_timeout=upload_timeout)
    # the request head is bounded by our protocol (size and time); no WebSocket: nothing here speaks it
    config = uvicorn.Config(application, host=host, port=port, log_level="info", server_header=False,
                            access_log=access_log, http=protocol_class(header_timeout=header_timeout), ws="none")
    uvicorn.Server(config).run(sockets=[sock])


def _where(db: str | None) -> str:
    from cspm_registry.metadata_postgres import describe

    return describe(db or "")


def _check_blobs(storage: Storage) -> None:
    check = getattr(storage.blob_store, "check", None)
    if check is not None:
        check()


@app.command()
def sweep(
    data: Data = None,
    db: Db = None,
    blobs: Blobs = None,
    s3_endpoint: S3Endpoint = None,
    grace: Annotated[float, typer.Option("--grace", help="remove only orphans older than this many seconds (safe "
                                                         "while replicas publish)")] = DEFAULT_GRACE_S,
) -> None:
    """Remove blobs and bundles no published version names (what interrupted publishes left)."""
    if not 0 <= grace <= 10 * 365 * 86400:
        raise _fail("--grace is 0 or more seconds")
    if not _has_registry(data, db):
        raise _fail(f"{data} holds no registry ({DB_FILE} is missing)")
    storage = _open(data, db, blobs, s3_endpoint, need_blobs=True)
    removed = storage.sweep(grace)
    typer.echo(f"removed {plural(len(removed), 'orphan')} older than {grace:g} s", err=True)
    for key in removed:
        print(key, flush=True)


@token_app.command("create")
def token_create(
    data: Data = None,
    db: Db = None,
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
    storage = _open(data, db, None, None, need_blobs=False)
    token_id, token = auth.create(storage, namespaces, publish=publish, admin=admin)
    rights = "admin" if admin else "publish" if publish else "no write access"
    typer.echo(f"token #{token_id} for {', '.join(namespaces) or 'every namespace'} ({rights}); "
               f"it is shown only this once: store it now", err=True)
    print(token, flush=True)


def _scope(token: Token) -> str:
    return "admin" if token.admin else "publish" if token.publish else "read-only"


@token_app.command("list")
def token_list(
    data: Data = None,
    db: Db = None,
    json_out: Annotated[bool, typer.Option("--json", help="a JSON list of {id, namespaces, scope, created}")
                        ] = False,
) -> None:
    """Every token: id, namespaces, scope and creation time (never the token: only its hash is kept)."""
    found = _open(data, db, None, None, need_blobs=False).tokens() if _has_registry(data, db) else []
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
    token_id: Annotated[str, typer.Argument(metavar="ID", help="the token's id, as `token list` shows it (#3 or 3)")],
    data: Data = None,
    db: Db = None,
) -> None:
    """Revoke a token by id: from its next request on (even on a running server) it is 401."""
    number = token_id.removeprefix("#")
    if not number.isdecimal():
        raise _fail(f"{token_id[:40]!r} is not a token id", hint="`cspm-registry token list` shows the ids (#3)")
    if not _has_registry(data, db) or not _open(data, db, None, None, need_blobs=False).remove_token(int(number)):
        raise _fail(f"there is no token #{int(number)}", hint="`cspm-registry token list` shows the ids")
    typer.echo(f"revoked token #{int(number)}", err=True)


def _namespace(namespace: str) -> str:
    try:
        return check_part(namespace)
    except CspmError as exc:
        raise _fail(exc.message) from None


@trust_app.command("set")
def trust_set(
    namespace: Annotated[str, typer.Option("--namespace", help="the namespace (its policy pattern is NS/*)")],
    issuer: Annotated[str | None, typer.Option("--issuer", help="keyless: the OIDC issuer (with --identity)")
                      ] = None,
    identity: Annotated[str | None, typer.Option("--identity", help="keyless: the signer's identity, exact or a "
                                                                    "glob (* ? [])")] = None,
    key: Annotated[list[str] | None, typer.Option("--key", help="keyed: a trusted public key ed25519:<hex> "
                                                               "(repeat)")] = None,
    optional: Annotated[bool, typer.Option("--optional", help="accept unsigned publishes too (a signature, when "
                                                              "there is one, must still be trusted)")] = False,
    data: Data = None,
    db: Db = None,
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
    storage = _open(data, db, None, None, need_blobs=False)
    storage.set_trust(namespace, issuer=issuer.strip() if issuer else None,
                      identity=identity.strip() if identity else None, keys=sorted(set(keys)), require=not optional)
    typer.echo(f"{namespace}/*: {_describe(storage.policy(namespace)[f'{namespace}/*'])}", err=True)


@trust_app.command("list")
def trust_list(
    data: Data = None,
    db: Db = None,
    json_out: Annotated[bool, typer.Option("--json", help="the policy as config.json publishes it")] = False,
) -> None:
    """Every namespace's trusted publishers."""
    policy = _open(data, db, None, None, need_blobs=False).policy() if _has_registry(data, db) else {}
    if json_out:
        print(json.dumps(policy, indent=2, sort_keys=True), flush=True)
        return
    for pattern, entry in policy.items():
        print(f"{pattern}: {_describe(entry)}", flush=True)
    if not policy:
        typer.echo("no namespace has trusted publishers: publishes are verified only when signed", err=True)


@trust_app.command("remove")
def trust_remove(
    namespace: Annotated[str, typer.Option("--namespace", help="the namespace")],
    data: Data = None,
    db: Db = None,
) -> None:
    """Remove a namespace's trusted publishers: it then accepts unsigned publishes."""
    namespace = _namespace(namespace)
    if not _has_registry(data, db) or not _open(data, db, None, None, need_blobs=False).remove_trust(namespace):
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
    out: Annotated[Path, typer.Option("--out", help="folder to write (replaced as a whole)")],
    name: Annotated[str | None, typer.Option(help="name in config.json (default: the one `serve` used)")] = None,
    data: Data = None,
    db: Db = None,
    blobs: Blobs = None,
    s3_endpoint: S3Endpoint = None,
) -> None:
    """Write every index file, `names`, blobs and bundles as static files (config.json with api null)."""
    from cspm_registry.export import export

    if not _has_registry(data, db):
        raise _fail(f"{data} holds no registry ({DB_FILE} is missing)")
    storage = _open(data, db, blobs, s3_endpoint, need_blobs=True)
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
    except Unavailable as exc:  # the database or the bucket cannot be reached
        typer.echo(f"error: {exc}", err=True)
        typer.echo("hint: check that the database and the S3 service run and are reachable; " + URL_ENV_HINT,
                   err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
