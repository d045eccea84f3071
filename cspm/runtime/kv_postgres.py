"""KvStore on PostgreSQL, so that several hosts (`cspm serve` replicas behind a load balancer) share
plug-in memory: a conversation keeps its memory whichever replica answers its next request.

Same interface and invariants as `SqliteKvStore` (cspm/runtime/kv.py; layout in docs/formats.md
"kv memory"). The quota holds across processes because every write locks its owner's row of
`cspm_kv_usage` (`INSERT ... ON CONFLICT DO UPDATE` / `SELECT ... FOR UPDATE`) before it reads what the
owner holds, and writes the value and the new usage in the same transaction. Keys and sessions are
stored as their UTF-8 bytes (BYTEA): PostgreSQL text cannot hold NUL, which a key may contain, and
bytes sort as Python sorts strings whatever the database's collation.

psycopg is imported when the first connection is opened, never by `cspm run`'s start-up. A database
that cannot be reached or refuses a request is `KvUnavailable` (`kv.unavailable`), after at most
CONNECT_TIMEOUT_S to connect, LOCK_TIMEOUT_MS waiting for another writer and STATEMENT_TIMEOUT_MS per
statement; a connection found broken (the server restarted) is dropped with its idle siblings, and
the request is retried once on a new one when nothing of it had run yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from cspm.errors import KvUnavailable
from cspm.pg_pool import KEEPALIVES, ConnectionPool, Tracked
from cspm.runtime.kv import Scope, SessionUsage, check_key, check_quota, decode, encode, published_prefix

if TYPE_CHECKING:
    import psycopg

SCHEMA_VERSION = 1  # the one row of cspm_kv_schema; a database written by a newer cspm is refused
CONNECT_TIMEOUT_S = 5
LOCK_TIMEOUT_MS = 10_000  # waiting for another writer of the same owner, as SQLite's busy timeout
STATEMENT_TIMEOUT_MS = 30_000
MAX_IDLE = 16  # connections kept open between requests; more are opened under load, then closed
_SCHEMA_LOCK = 0x63_73_70_6D_6B_76  # pg_advisory_xact_lock key ("cspmkv"): one process creates the tables

DDL = """
CREATE TABLE IF NOT EXISTS cspm_kv_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cspm_kv (
    app TEXT NOT NULL, plugin TEXT NOT NULL, session BYTEA NOT NULL, key BYTEA NOT NULL,
    value TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (app, plugin, session, key)
);
CREATE TABLE IF NOT EXISTS cspm_kv_usage (
    app TEXT NOT NULL, plugin TEXT NOT NULL, keys BIGINT NOT NULL, bytes BIGINT NOT NULL,
    PRIMARY KEY (app, plugin)
);
"""
_ROW_BYTES = "octet_length(key) + octet_length(value)"
_WHERE_KEY = "app = %s AND plugin = %s AND session = %s AND key = %s"
_WHERE_OWNER = "app = %s AND plugin = %s"
_DEFAULTS: dict[str, Any] = {  # unless the URL sets them; keepalives only apply to TCP
    "connect_timeout": CONNECT_TIMEOUT_S, "application_name": "cspm", **KEEPALIVES}
T = TypeVar("T")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise KvUnavailable("kv memory on PostgreSQL needs psycopg, which is not installed",
                            hint="pip install 'cspm[postgres]'") from None
    return psycopg


def _scope(scope: Scope, key: str) -> tuple[str, str, bytes, bytes]:
    return scope[0], scope[1], scope[2].encode(), key.encode()


def _filters(app: str | None, session: str | None) -> tuple[str, tuple[object, ...]]:
    """A WHERE clause for `sessions`/`clear`, as SqliteKvStore's: `app` is a kv scope as stored or a
    published app's NAMESPACE/NAME (its memory from every registry)."""
    clauses: list[str] = []
    args: list[object] = []
    if app is not None:
        prefix = published_prefix(app)
        clauses.append("(app = %s OR left(app, %s) = %s)")
        args += [app, len(prefix), prefix]
    if session is not None:
        clauses.append("session = %s")
        args.append(session.encode())
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)



class PostgresKvStore:
    """KvStore in a PostgreSQL database (tables `cspm_kv`, `cspm_kv_usage`, `cspm_kv_schema`, made on
    first use). Thread-safe: each request takes an idle connection or opens one, so the threads of a
    serve pool do not wait on each other; the database serializes writers of one owner."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool = ConnectionPool(self._connect, MAX_IDLE)
        self._where = _describe(url)

    # ---- connections -----------------------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> KvUnavailable:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return KvUnavailable(f"kv memory on PostgreSQL ({self._where}) is unavailable: {reason}",
                             hint="check that the database is running and reachable (CSPM_KV_URL); "
                                  "the request can be retried")

    def _connect(self) -> psycopg.Connection[Any]:
        psycopg = _psycopg()
        given = psycopg.conninfo.conninfo_to_dict(self.url)
        options = {k: v for k, v in _DEFAULTS.items() if k not in given}
        conn = psycopg.connect(self.url, autocommit=True, **options)
        try:
            conn.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}".encode())
            conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}".encode())
            encoding = conn.execute(b"SHOW server_encoding").fetchone()
            if encoding is None or encoding[0].upper() not in ("UTF8", "UNICODE"):
                raise KvUnavailable(f"kv memory on PostgreSQL ({self._where}): the database's encoding is "
                                    f"{encoding[0] if encoding else '?'}, not UTF8",
                                    hint="create it with `createdb -E UTF8 -T template0 NAME`")
            with conn.transaction():
                version = self._schema_version(conn)
                if version is None:  # made once, by one host: the others wait for it on the lock
                    conn.execute(b"SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    conn.execute(DDL.encode())
                    version = self._schema_version(conn)
                    if version is None:
                        conn.execute(b"INSERT INTO cspm_kv_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
                        version = SCHEMA_VERSION
                if version > SCHEMA_VERSION:
                    raise KvUnavailable(f"kv memory on PostgreSQL ({self._where}) has schema version {version}, "
                                        f"newer than this cspm reads ({SCHEMA_VERSION})", hint="upgrade cspm")
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _schema_version(conn: psycopg.Connection[Any]) -> int | None:
        """The tables' version; None when they are not all there (no DDL, so no CREATE right, once made)."""
        made = conn.execute(b"SELECT to_regclass('cspm_kv') IS NOT NULL AND to_regclass('cspm_kv_usage') IS NOT NULL "
                            b"AND to_regclass('cspm_kv_schema') IS NOT NULL").fetchone()
        if not (made and made[0]):
            return None
        row = conn.execute(b"SELECT max(version) FROM cspm_kv_schema").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _do(self, work: Callable[[Tracked], T], transaction: bool) -> T:
        """Run `work` on a connection (in one transaction when `transaction`), once more on a new
        connection when a reused one turned out dead before any statement ran."""
        psycopg = _psycopg()
        try:
            return self._pool.run(work, operational=psycopg.OperationalError, transaction=transaction)
        except psycopg.Error as exc:
            raise self._unavailable(exc) from None

    # ---- KvStore ---------------------------------------------------------------------------------

    def get(self, scope: Scope, key: str) -> Any:
        check_key(key)
        rows = self._do(lambda db: db.run(f"SELECT value FROM cspm_kv WHERE {_WHERE_KEY}", _scope(scope, key)),
                        transaction=False)
        return None if not rows else decode(rows[0][0], key)

    def set(self, scope: Scope, key: str, value: Any) -> None:
        key_size = check_key(key)
        text = encode(value)
        value_size = len(text.encode())
        where = _scope(scope, key)

        def work(db: Tracked) -> None:
            keys, used = db.run(  # locks the owner's row: the next writer of this owner waits here
                "INSERT INTO cspm_kv_usage (app, plugin, keys, bytes) VALUES (%s, %s, 0, 0) "
                "ON CONFLICT (app, plugin) DO UPDATE SET keys = cspm_kv_usage.keys RETURNING keys, bytes",
                where[:2])[0]
            old = db.run(f"SELECT {_ROW_BYTES} FROM cspm_kv WHERE {_WHERE_KEY}", where)
            grow = key_size + value_size - (old[0][0] if old else 0)
            check_quota(keys, used, not old, grow)
            db.run("INSERT INTO cspm_kv (app, plugin, session, key, value, updated) VALUES (%s, %s, %s, %s, %s, %s) "
                   "ON CONFLICT (app, plugin, session, key) DO UPDATE SET value = excluded.value, "
                   "updated = excluded.updated", (*where, text, time.time()))
            db.run(f"UPDATE cspm_kv_usage SET keys = %s, bytes = %s WHERE {_WHERE_OWNER}",
                   (keys + (not old), used + grow, *where[:2]))

        self._do(work, transaction=True)

    def delete(self, scope: Scope, key: str) -> bool:
        check_key(key)
        where = _scope(scope, key)

        def work(db: Tracked) -> bool:
            db.run(f"SELECT 1 FROM cspm_kv_usage WHERE {_WHERE_OWNER} FOR UPDATE", where[:2])
            gone = db.run(f"DELETE FROM cspm_kv WHERE {_WHERE_KEY} RETURNING {_ROW_BYTES}", where)
            if gone:
                db.run(f"UPDATE cspm_kv_usage SET keys = greatest(keys - 1, 0), bytes = greatest(bytes - %s, 0) "
                       f"WHERE {_WHERE_OWNER}", (gone[0][0], *where[:2]))
            return bool(gone)

        return self._do(work, transaction=True)

    def keys(self, scope: Scope) -> list[str]:
        rows = self._do(lambda db: db.run("SELECT key FROM cspm_kv WHERE app = %s AND plugin = %s AND session = %s "
                                          "ORDER BY key", (scope[0], scope[1], scope[2].encode())),
                        transaction=False)
        return [bytes(row[0]).decode() for row in rows]

    def usage(self, scope: Scope) -> tuple[int, int]:
        rows = self._do(lambda db: db.run(f"SELECT keys, bytes FROM cspm_kv_usage WHERE {_WHERE_OWNER}",
                                          (scope[0], scope[1])), transaction=False)
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    def sessions(self, app: str | None = None, session: str | None = None) -> list[SessionUsage]:
        where, args = _filters(app, session)
        rows = self._do(lambda db: db.run(
            f"SELECT app, plugin, session, count(*), sum({_ROW_BYTES}), max(updated) FROM cspm_kv {where} "
            f"GROUP BY app, plugin, session ORDER BY max(updated) DESC", args), transaction=False)
        return [SessionUsage(a, p, bytes(s).decode(), int(n), int(size), float(t)) for a, p, s, n, size, t in rows]

    def clear(self, app: str | None = None, session: str | None = None) -> int:
        """Locks the usage rows of the owners it touches (in one order, so two clears cannot deadlock),
        deletes only their rows, and recounts their usage, in one transaction."""
        where, args = _filters(app, session)

        def work(db: Tracked) -> int:
            owners = db.run(f"SELECT DISTINCT app, plugin FROM cspm_kv {where} ORDER BY app, plugin", args)
            deleted = 0
            for owner in owners:
                db.run(f"SELECT 1 FROM cspm_kv_usage WHERE {_WHERE_OWNER} FOR UPDATE", owner)
            for owner in owners:
                scoped = f"{where} AND {_WHERE_OWNER}" if where else f"WHERE {_WHERE_OWNER}"
                deleted += db.count(f"DELETE FROM cspm_kv {scoped}", (*args, *owner))
                db.run(f"UPDATE cspm_kv_usage SET keys = (SELECT count(*) FROM cspm_kv WHERE {_WHERE_OWNER}), "
                       f"bytes = (SELECT coalesce(sum({_ROW_BYTES}), 0) FROM cspm_kv WHERE {_WHERE_OWNER}) "
                       f"WHERE {_WHERE_OWNER}", (*owner, *owner, *owner))
            return deleted

        return self._do(work, transaction=True)

    def close(self) -> None:
        """Closes the idle connections; the store opens new ones if it is used again."""
        self._pool.drop_idle()


def _describe(url: str) -> str:
    """Where the database is, for messages: host, port and database, never a user or password."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    try:
        port: object = parts.port or (query.get("port") or [""])[0]
        host = parts.hostname or (query.get("host") or ["localhost"])[0]
    except ValueError:  # a port that is not a number: psycopg says so when connecting
        port, host = "", parts.netloc.rpartition("@")[2]
    return f"{host}{f':{port}' if port else ''}/{parts.path.lstrip('/')}"
