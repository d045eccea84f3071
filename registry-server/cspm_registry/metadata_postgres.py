"""`MetadataStore` on PostgreSQL (psycopg 3), so that any number of `serve` replicas share one registry.

Same interface and invariants as `SQLiteMetadata` (metadata.py); how each one holds here:

- **Exactly one wins.** `(name, version_key)` is a UNIQUE constraint: of concurrent publishes of one
  version, from any replicas, the database lets one insert commit and the others' inserts fail with
  a unique violation, which is `Exists`. And every `transaction()` begins by locking the generation
  row (`SELECT ... FOR UPDATE`), so transactions are serialised across every replica as SQLite's
  `BEGIN IMMEDIATE` serialises them in one process: the trust policy re-check, the client limits,
  the blob store's `put` and the generation bump of one transaction never interleave with another's.
  (READ COMMITTED: each statement after the lock sees everything committed before it was granted.)
- **All or nothing.** A transaction that raises is rolled back; one that returns is committed.
- **Unavailable, not broken.** A database that cannot be reached, restarts, or times out is
  `Unavailable` (the app answers 503, which cspm's client retries: nothing was committed, unless the
  connection died during COMMIT itself, in which case a retry answers 409 `exists`). A connection
  found dead is dropped with its idle siblings, and a request whose first statement found it dead is
  retried once on a new one, so the first request after a restart succeeds when the server is back.

The tables are `registry_*` (so the database may be shared with cspm's kv memory), made when a store
is opened (`CREATE ... IF NOT EXISTS` under an advisory lock, so replicas starting together make them
once), with a schema version in `registry_meta` that an older cspm-registry refuses.
psycopg is imported only when a `postgresql://` URL is used (`pip install 'cspm-registry[cloud]'`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from cspm.errors import StorageError
from cspm.pg_pool import KEEPALIVES, ConnectionPool, Tracked
from cspm_registry.metadata import Exists, Token, Transaction, Unavailable, VersionRow, version_key

if TYPE_CHECKING:
    import psycopg

SCHEMA_VERSION = 1
CONNECT_TIMEOUT_S = 5
LOCK_TIMEOUT_MS = 30_000  # waiting for another replica's transaction (a publish holds it for a HEAD and a few rows)
STATEMENT_TIMEOUT_MS = 30_000
MAX_IDLE = 16
_SCHEMA_LOCK = 0x63_73_70_6D_72_67  # pg_advisory_xact_lock key ("cspmrg"): one replica creates the tables
CLOUD_EXTRA = "pip install 'cspm-registry[cloud]'"

DDL = """
CREATE TABLE IF NOT EXISTS registry_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS registry_namespaces (
    name TEXT PRIMARY KEY, created DOUBLE PRECISION NOT NULL, created_by BIGINT
);
CREATE TABLE IF NOT EXISTS registry_tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- a sequence: never reused
    hash TEXT NOT NULL UNIQUE, namespaces TEXT NOT NULL, publish BOOLEAN NOT NULL, admin BOOLEAN NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_versions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- publish order (inserts are serialised)
    name TEXT NOT NULL, version TEXT NOT NULL, version_key TEXT NOT NULL, digest TEXT NOT NULL,
    line TEXT NOT NULL, published TEXT NOT NULL, modified DOUBLE PRECISION NOT NULL, bundle TEXT,
    CONSTRAINT registry_versions_one UNIQUE (name, version_key)
);
CREATE INDEX IF NOT EXISTS registry_versions_digest ON registry_versions (digest);
CREATE INDEX IF NOT EXISTS registry_versions_bundle ON registry_versions (bundle);
CREATE TABLE IF NOT EXISTS registry_trust (
    namespace TEXT PRIMARY KEY, issuer TEXT, identity TEXT, keys TEXT NOT NULL, require BOOLEAN NOT NULL,
    modified DOUBLE PRECISION NOT NULL
);
INSERT INTO registry_meta VALUES ('generation', '0') ON CONFLICT DO NOTHING;
"""
_DEFAULTS: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "cspm-registry",
                             **KEEPALIVES}
_ROWS = "SELECT id, name, line, modified FROM registry_versions "
_BY_NAME = 'ORDER BY name COLLATE "C", id'  # bytewise, as SQLite orders: whatever the database's collation
T = TypeVar("T")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StorageError("--db postgresql://… needs psycopg, which is not installed", hint=CLOUD_EXTRA) from None
    return psycopg


def describe(url: str) -> str:
    """Where the database is, for messages: host, port and database, never a user or password."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    try:
        port: object = parts.port or (query.get("port") or [""])[0]
        host = parts.hostname or (query.get("host") or ["localhost"])[0]
    except ValueError:
        port, host = "", parts.netloc.rpartition("@")[2]
    return f"{host}{f':{port}' if port else ''}/{parts.path.lstrip('/')}"



class PostgresMetadata:
    """`MetadataStore` in a PostgreSQL database; thread-safe (each request takes an idle connection or
    opens one), and safe with any number of processes on the same database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = describe(url)
        self._psycopg = _psycopg()
        self._pool = ConnectionPool(self._connect, MAX_IDLE)
        self._do(self._create, transaction=True)

    # -- schema

    def _create(self, db: Tracked) -> None:
        made = db.run("SELECT to_regclass('registry_meta') IS NOT NULL")[0][0]
        found = db.run("SELECT value FROM registry_meta WHERE key = 'schema'") if made else []
        if not found:  # made once, by one replica: the others wait on the lock, then find it made
            db.run("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            db.run(DDL)
            db.run("INSERT INTO registry_meta VALUES ('schema', %s) ON CONFLICT DO NOTHING", (str(SCHEMA_VERSION),))
            found = db.run("SELECT value FROM registry_meta WHERE key = 'schema'")
        version = found[0][0]
        if version != str(SCHEMA_VERSION):
            raise StorageError(f"the registry database {self.where} has schema version {version}; this "
                               f"cspm-registry reads version {SCHEMA_VERSION}", hint="upgrade cspm-registry")

    # -- connections

    def _unavailable(self, exc: BaseException) -> Unavailable:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Unavailable(f"the registry database ({self.where}) is unavailable: {reason[:300]}")

    def _connect(self) -> psycopg.Connection[Any]:
        given = self._psycopg.conninfo.conninfo_to_dict(self.url)
        options = {k: v for k, v in _DEFAULTS.items() if k not in given}
        conn = self._psycopg.connect(self.url, autocommit=True, **options)
        try:
            conn.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}".encode())
            conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}".encode())
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        self._pool.drop_idle()

    def _do(self, work: Callable[[Tracked], T], *, transaction: bool = False, snapshot: bool = False) -> T:
        """`work` on a connection (in a transaction when asked; `snapshot`: one REPEATABLE READ snapshot for
        several SELECTs), once more on a new connection when a reused one was dead before anything ran."""
        psycopg = self._psycopg
        try:
            return self._pool.run(work, operational=psycopg.OperationalError, transaction=transaction,
                                  snapshot=snapshot)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:  # not a bug's error: that is a 500
            raise self._unavailable(exc) from None

    # -- transactions

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Serialised across replicas by the generation row's lock, taken first (retried once on a new
        connection if a reused one was dead); a database error inside is `Unavailable`."""
        psycopg = self._psycopg
        for attempt in (0, 1):
            try:
                with self._pool.connection() as (conn, reused):
                    try:
                        tx = conn.transaction()
                        tx.__enter__()
                    except psycopg.OperationalError:
                        if attempt == 0 and reused and conn.broken:
                            continue
                        raise
                    try:
                        conn.execute(b"SELECT value FROM registry_meta WHERE key = 'generation' FOR UPDATE")
                    except psycopg.OperationalError as exc:
                        tx.__exit__(type(exc), exc, exc.__traceback__)
                        if attempt == 0 and reused and conn.broken:
                            continue
                        raise
                    try:
                        yield _PostgresTransaction(Tracked(conn), self._psycopg)
                    except BaseException as exc:
                        tx.__exit__(type(exc), exc, exc.__traceback__)
                        raise
                    tx.__exit__(None, None, None)
                    return
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:  # not a bug's error: that is a 500
                raise self._unavailable(exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the rest of MetadataStore

    def generation(self) -> int:
        return self._do(_generation)

    def get_meta(self, key: str) -> str | None:
        rows = self._do(lambda db: db.run("SELECT value FROM registry_meta WHERE key = %s", (key,)))
        return None if not rows else str(rows[0][0])

    def set_meta(self, key: str, value: str) -> None:
        self._do(lambda db: db.run("INSERT INTO registry_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET "
                                   "value = excluded.value", (key, value)))

    def add_token(self, token_hash: str, namespaces: list[str], publish: bool, admin: bool) -> int:
        now = time.time()

        def work(db: Tracked) -> int:
            token_id = int(db.run("INSERT INTO registry_tokens (hash, namespaces, publish, admin, created) VALUES "
                                  "(%s, %s, %s, %s, %s) RETURNING id",
                                  (token_hash, json.dumps(sorted(set(namespaces))), publish, admin, now))[0][0])
            for namespace in namespaces:
                db.run("INSERT INTO registry_namespaces VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                       (namespace, now, token_id))
            return token_id

        return self._do(work, transaction=True)

    def tokens(self) -> list[tuple[Token, float]]:
        rows = self._do(lambda db: db.run("SELECT id, namespaces, publish, admin, created FROM registry_tokens "
                                          "ORDER BY id"))
        return [(Token(int(r[0]), frozenset(json.loads(r[1])), bool(r[2]), bool(r[3])), float(r[4])) for r in rows]

    def remove_token(self, token_id: int) -> bool:
        return self._do(lambda db: db.count("DELETE FROM registry_tokens WHERE id = %s", (token_id,))) > 0

    def token_by_hash(self, token_hash: str) -> tuple[str, Token] | None:
        rows = self._do(lambda db: db.run("SELECT hash, id, namespaces, publish, admin FROM registry_tokens "
                                          "WHERE hash = %s", (token_hash,)))
        if not rows:
            return None
        row = rows[0]
        return str(row[0]), Token(int(row[1]), frozenset(json.loads(row[2])), bool(row[3]), bool(row[4]))

    def policy(self, namespace: str | None = None) -> dict[str, Any]:
        return self._do(lambda db: _policy(db, namespace))

    def exists(self, name: str, version: str) -> bool:
        return bool(self._do(lambda db: db.run("SELECT 1 FROM registry_versions WHERE name = %s AND version_key = %s",
                                               (name, version_key(version)))))

    def package(self, name: str) -> list[VersionRow]:
        return self._do(lambda db: _rows(db, "WHERE name = %s ORDER BY id", (name,)))

    def versions(self) -> list[VersionRow]:
        return self._do(lambda db: _rows(db, _BY_NAME))

    def snapshot(self) -> tuple[list[VersionRow], dict[str, Any]]:
        return self._do(lambda db: (_rows(db, "ORDER BY id"), _policy(db)), snapshot=True)

    def state(self) -> tuple[int, list[VersionRow], dict[str, Any]]:
        """The generation, every version in publish order and the trust policy, from one snapshot."""
        return self._do(lambda db: (_generation(db), _rows(db, "ORDER BY id"), _policy(db)), snapshot=True)

    def references(self, digest: str | None = None, bundle: str | None = None) -> bool:
        column, value = ("digest", digest) if digest is not None else ("bundle", bundle)
        return bool(self._do(lambda db: db.run(f"SELECT 1 FROM registry_versions WHERE {column} = %s LIMIT 1",
                                               (value,))))


class _PostgresTransaction:
    """`Transaction` on a connection inside a transaction that holds the generation row's lock."""

    def __init__(self, db: Tracked, psycopg: Any) -> None:
        self.db = db
        self._psycopg = psycopg

    def generation(self) -> int:
        return _generation(self.db)

    def policy(self, namespace: str | None = None) -> dict[str, Any]:
        return _policy(self.db, namespace)

    def package(self, name: str) -> list[VersionRow]:
        return _rows(self.db, "WHERE name = %s ORDER BY id", (name,))

    def lines(self) -> list[str]:
        return [row[0] for row in self.db.run(f"SELECT line FROM registry_versions {_BY_NAME}")]

    def find(self, name: str, version: str) -> VersionRow | None:
        found = _rows(self.db, "WHERE name = %s AND version_key = %s", (name, version_key(version)))
        return found[0] if found else None

    def referenced(self) -> tuple[set[str], set[str]]:
        digests = {row[0] for row in self.db.run("SELECT DISTINCT digest FROM registry_versions")}
        bundles = {row[0] for row in self.db.run("SELECT DISTINCT bundle FROM registry_versions "
                                                 "WHERE bundle IS NOT NULL")}
        return digests, bundles

    def insert_version(self, line: dict[str, Any], text: str, token_id: int, bundle: str | None) -> None:
        now = time.time()
        namespace = line["name"].split("/")[0]
        self.db.run("INSERT INTO registry_namespaces VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    (namespace, now, token_id))
        try:  # a savepoint is not needed: a unique violation ends the transaction, which is rolled back
            self.db.run("INSERT INTO registry_versions (name, version, version_key, digest, line, published, "
                        "modified, bundle) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        (line["name"], line["version"], version_key(line["version"]), line["digest"], text,
                         line.get("published", ""), now, bundle))
        except self._psycopg.errors.UniqueViolation:
            raise Exists(f"{line['name']} {line['version']}") from None

    def update_line(self, row_id: int, text: str) -> None:
        self.db.run("UPDATE registry_versions SET line = %s, modified = %s WHERE id = %s", (text, time.time(), row_id))

    def set_trust(self, namespace: str, *, issuer: str | None, identity: str | None, keys: list[str],
                  require: bool) -> None:
        self.db.run("INSERT INTO registry_trust VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (namespace) DO UPDATE "
                    "SET issuer = excluded.issuer, identity = excluded.identity, keys = excluded.keys, "
                    "require = excluded.require, modified = excluded.modified",
                    (namespace, issuer, identity, json.dumps(keys), require, time.time()))

    def remove_trust(self, namespace: str) -> bool:
        return self.db.count("DELETE FROM registry_trust WHERE namespace = %s", (namespace,)) > 0

    def bump(self) -> int:
        rows = self.db.run("UPDATE registry_meta SET value = (value::bigint + 1)::text WHERE key = 'generation' "
                           "RETURNING value")
        return int(rows[0][0])


def _generation(db: Tracked) -> int:
    return int(db.run("SELECT value FROM registry_meta WHERE key = 'generation'")[0][0])


def _rows(db: Tracked, where: str, args: tuple[Any, ...] = ()) -> list[VersionRow]:
    return [VersionRow(int(r[0]), r[1], r[2], float(r[3])) for r in db.run(_ROWS + where, args)]


def _policy(db: Tracked, namespace: str | None = None) -> dict[str, Any]:
    query = "SELECT namespace, issuer, identity, keys, require FROM registry_trust"
    rows = db.run(query + " WHERE namespace = %s", (namespace,)) if namespace else \
        db.run(query + ' ORDER BY namespace COLLATE "C"')
    policy: dict[str, Any] = {}
    for name, issuer, identity, keys, require in rows:
        entry: dict[str, Any] = {"issuer": issuer, "identity": identity, "keys": json.loads(keys)}
        policy[f"{name}/*"] = {**{k: v for k, v in entry.items() if v}, "require": bool(require)}
    return policy
