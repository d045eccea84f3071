"""Plug-in memory that outlives the process (`kv_get`/`kv_set`), behind one small interface.

`KvStore` is what a host needs from plug-in memory; `SqliteKvStore` implements it (one file in the
data dir, docs/formats.md "kv memory" gives its layout), and `kv_postgres.PostgresKvStore` in a shared
database, so that several hosts (`cspm serve` replicas) share memory; `open_url`/`factory_for` pick one
from a URL (`CSPM_KV_URL`). The bounds are part of the interface, not of
SQLite: `check_key`, `encode` and `check_quota` are what every implementation calls.

Plug-ins write it, so it is bounded: a key by MAX_KEY_CHARS, a value by MAX_VALUE_BYTES, and what
one plug-in of one app holds over all its sessions by QUOTA_BYTES and QUOTA_KEYS (otherwise a
plug-in could fill the disk, one call at a time or one session at a time).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cspm.formats import bounded_json

if TYPE_CHECKING:
    import sqlite3  # imported at the first connection: a run that uses no kv does not load it (~3 ms)

MAX_KEY_CHARS = 512  # one key, as the ABI schema allows (kv_get_request / kv_set_request)
MAX_VALUE_BYTES = 1024 * 1024  # one value, as the UTF-8 JSON text stored
QUOTA_BYTES = 64 * 1024 * 1024  # keys + values of one plug-in of one app, over all its sessions
QUOTA_KEYS = 10_000  # keys of one plug-in of one app, over all its sessions
FILE = "kv.sqlite3"  # in the data dir (`CSPM_DATA_DIR`), never the cache: it is not re-made

Scope = tuple[str, str, str]
"""(app, component, session): the app's kv scope as the plan gives it (its `name:`, or
`pkg:NAMESPACE/NAME@REGISTRY` for a published app), the calling component's name, the session."""


@dataclass(frozen=True)
class SessionUsage:
    """What one plug-in of one app keeps for one session: `cspm session list` shows these."""

    app: str  # the app's kv scope: its name, or `pkg:NAME@REGISTRY` for a published app
    plugin: str
    session: str
    keys: int
    bytes: int
    updated: float  # the newest write, seconds since the epoch


class TooLarge(Exception):
    """A value over MAX_VALUE_BYTES, a write past the quota, or a stored value past the JSON limits."""


class KvKeyInvalid(ValueError):
    """A key that cannot be stored (longer than MAX_KEY_CHARS, or not valid Unicode text)."""


@runtime_checkable
class KvStore(Protocol):
    """Plug-in memory: JSON values under (scope, key). What every implementation guarantees:

    - Bounds. `get`/`set`/`delete` refuse a key past `check_key` (KvKeyInvalid, nothing read or
      written). `set` refuses a value whose JSON text (`encode`) is over MAX_VALUE_BYTES, and a write
      that would take the scope's owner (app + component, every session counted together: a caller
      chooses the session, so a quota per session would be no bound) past QUOTA_KEYS keys or
      QUOTA_BYTES of keys + values (`check_quota`): TooLarge, nothing written. A write that does not
      grow what the owner holds is always allowed. `get` of a stored value past the JSON limits
      (written by an older cspm or by anything else) is TooLarge, never a crash.
    - Atomic writes. A `set`, `delete` or `clear` is all or nothing, together with the usage the quota
      counts (so `usage` is exact); once it returns, a crash of the process loses nothing of it.
    - Concurrent processes are safe. Several processes (and threads) may share one store: writes to
      one owner are serialized, so two writers cannot both pass the quota.
    - Reads. `get` of a key never set is None (as is a stored null); scopes never see each other's keys.
    """

    def get(self, scope: Scope, key: str) -> Any: ...

    def set(self, scope: Scope, key: str, value: Any) -> None: ...

    def delete(self, scope: Scope, key: str) -> bool:
        """Remove a key; whether it was there."""
        ...

    def keys(self, scope: Scope) -> list[str]:
        """The scope's keys, sorted."""
        ...

    def usage(self, scope: Scope) -> tuple[int, int]:
        """(keys, bytes) that the scope's app + component holds over all its sessions: what the quota counts."""
        ...

    def sessions(self, app: str | None = None, session: str | None = None) -> list[SessionUsage]:
        """Every (app, component, session) holding memory, newest write first; `app` is a kv scope as
        stored, or a published app's NAMESPACE/NAME (its memory from every registry)."""
        ...

    def clear(self, app: str | None = None, session: str | None = None) -> int:
        """Delete the memory of the matching sessions (all when neither is given); keys deleted."""
        ...

    def close(self) -> None: ...


def check_key(key: str) -> int:
    """The key's size in bytes, as the quota counts it; KvKeyInvalid for a key no store may hold."""
    if not isinstance(key, str) or not key:
        raise KvKeyInvalid("a key is a non-empty string")
    if len(key) > MAX_KEY_CHARS:
        raise KvKeyInvalid(f"key {key[:40]!r}… is {len(key)} characters, over the {MAX_KEY_CHARS}-character limit")
    try:
        return len(key.encode())
    except UnicodeEncodeError:
        raise KvKeyInvalid(f"key {key[:40]!r} is not valid Unicode (a lone surrogate)") from None


def encode(value: Any) -> str:
    """The JSON text stored for a value; TooLarge over MAX_VALUE_BYTES (its size is `len(text.encode())`)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        size = len(text.encode())
    except UnicodeEncodeError:  # a lone surrogate in a string: stored escaped, read back the same
        text = json.dumps(value, separators=(",", ":"))
        size = len(text)
    if size > MAX_VALUE_BYTES:
        raise TooLarge(f"value of {size} bytes is over the {MAX_VALUE_BYTES}-byte limit")
    return text


def decode(text: str, key: str) -> Any:
    """A stored value, read with bounded_json: past the JSON limits it is TooLarge."""
    try:
        return bounded_json.loads(text)
    except bounded_json.JsonRejected as exc:
        raise TooLarge(f"the stored value of key {key[:40]!r} cannot be read back: {exc}") from None


def check_quota(keys: int, used: int, new_key: bool, grow: int) -> None:
    """Refuse a write that takes an owner holding `keys` keys and `used` bytes past its quota: `new_key`
    when the key is not there yet, `grow` the bytes it adds (negative when it shrinks)."""
    if new_key and keys + 1 > QUOTA_KEYS:
        raise TooLarge(f"kv quota: this plug-in already holds {keys} keys in this app, the most it "
                       f"may (at most {QUOTA_KEYS} keys over all sessions)")
    if grow > 0 and used + grow > QUOTA_BYTES:
        raise TooLarge(f"kv quota: this plug-in holds {used} bytes in this app; {grow} more would pass "
                       f"its quota of {QUOTA_BYTES // 2**20} MiB (keys and values over all sessions)")


KvFactory = Callable[[], KvStore]

ENV_URL = "CSPM_KV_URL"  # where kv lives when set: a PostgreSQL URL shared by several hosts, or SQLite
MAX_URL_CHARS = 4096
_POSTGRES = ("postgresql://", "postgres://")


def _sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (`sqlite:///ABS/PATH`, `sqlite:REL/PATH`) or a bare path; None for PostgreSQL.
    InputError for anything else, before any connection: a typo is said at start-up, not at the first kv call."""
    from cspm.errors import InputError

    if not url or len(url) > MAX_URL_CHARS or "\x00" in url:
        raise InputError(f"kv URL: empty, over {MAX_URL_CHARS} characters or holding NUL",
                         hint="postgresql://USER@HOST/DB, sqlite:///PATH or a path")
    lower = url.lower()
    if lower.startswith(_POSTGRES):
        return None
    if lower.startswith("sqlite:"):
        rest = url[len("sqlite:"):]
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise InputError(f"kv URL {url!r} names no file", hint="sqlite:///ABSOLUTE/PATH or sqlite:RELATIVE/PATH")
        return Path(path).expanduser()
    scheme, sep, _ = url.partition("://")
    if sep and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        raise InputError(f"kv URL scheme {scheme!r} is not supported", hint="postgresql://… or sqlite:///PATH")
    return Path(url).expanduser()


def open_url(url: str) -> KvStore:
    """The store a URL names: `postgresql://…` (or `postgres://…`) a PostgresKvStore, `sqlite:///PATH`,
    `sqlite:PATH` or a bare path a SqliteKvStore. No connection is made until the first request."""
    path = _sqlite_path(url)
    if path is not None:
        return SqliteKvStore(path)
    from cspm.runtime.kv_postgres import PostgresKvStore  # psycopg itself only at the first connection

    return PostgresKvStore(url)


def factory_for(url: str | None = None) -> KvFactory:
    """What a host passes as `kv_factory`: the store `url` names, else CSPM_KV_URL's, else this machine's
    SQLite. A shared database is one store for every runtime the factory feeds (a serve pool), with its
    own pool of connections; a URL is checked now (InputError), the database at its first use."""
    url = url or os.environ.get(ENV_URL) or None
    if url is None:
        return open_default
    if _sqlite_path(url) is not None:
        return lambda: open_url(url)
    shared = open_url(url)
    return lambda: shared


def open_default() -> KvStore:
    """The store of this machine: CSPM_KV_URL's when set, else SQLite in the data dir. What a Runtime
    uses unless given another."""
    url = os.environ.get(ENV_URL)
    if url:
        return open_url(url)
    from cspm import paths

    return SqliteKvStore(paths.data_dir() / FILE)

# ---- SQLite --------------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    app TEXT NOT NULL, plugin TEXT NOT NULL, session TEXT NOT NULL, key TEXT NOT NULL,
    value TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (app, plugin, session, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv_usage (
    app TEXT NOT NULL, plugin TEXT NOT NULL, keys INTEGER NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (app, plugin)
) WITHOUT ROWID;
"""
USAGE_VERSION = 1  # PRAGMA user_version once kv_usage has been counted from the rows already there
_ROW_BYTES = "length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))"
_WHERE_KEY = "app=? AND plugin=? AND session=? AND key=?"
_SETUP_LOCK = threading.Lock()
_BUSY_SECONDS = 10.0  # as the connection's own busy timeout


def _retry_busy(step: Callable[[], None]) -> None:
    """Run `step` again while SQLite answers "database is locked" at once, without its busy handler
    (changing the journal mode, another process's recovery of the WAL), for up to `_BUSY_SECONDS`."""
    import sqlite3

    deadline = time.monotonic() + _BUSY_SECONDS
    pause = 0.001
    while True:
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _owner(scope: Scope) -> tuple[str, str]:
    """What the quota counts over: the scope's app and plug-in, not its session, so that writing
    under more sessions gives a plug-in no more room."""
    return scope[0], scope[1]


def published_prefix(app: str) -> str:
    """The start of every kv scope of the published app NAMESPACE/NAME, whatever registry it came from
    (a scope is `pkg:NAME@REGISTRY_URL`, cspm.formats.app.AppConfig.kv_scope): how `sessions` and
    `clear` find its memory in every store."""
    return f"pkg:{app}@"


def _filters(app: str | None, session: str | None) -> tuple[str, tuple[object, ...]]:
    """A WHERE clause for `sessions`/`clear`. `app` is a kv scope as stored (a local app's `name:`),
    or a published app's NAMESPACE/NAME, which matches its memory from every registry."""
    clauses: list[str] = []
    args: list[object] = []
    if app is not None:
        prefix = published_prefix(app)
        clauses.append("(app = ? OR substr(app, 1, ?) = ?)")
        args += [app, len(prefix), prefix]
    if session is not None:
        clauses.append("session = ?")
        args.append(session)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


class SqliteKvStore:
    """KvStore in one SQLite file, WAL mode: each write is one `BEGIN IMMEDIATE` transaction (SQLite's
    write lock serializes writers across processes; a busy one waits up to 10 s), and the usage row in
    `kv_usage` is updated in the same transaction as the value, so checking the quota costs one row,
    not a scan. `synchronous=NORMAL` in WAL: a committed write survives a crash of the process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            import sqlite3

            db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            try:
                with _SETUP_LOCK:  # the threads of one process (a serve pool) set up one at a time
                    _retry_busy(lambda: self._set_up(db))
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    @staticmethod
    def _set_up(db: sqlite3.Connection) -> None:
        """WAL mode, the tables and the usage count, for a new file or one from before the quota.
        Creating tables in autocommit takes a shared lock and then asks for the write lock, which
        SQLite refuses at once, without waiting, when another connection does the same (a deadlock
        it avoids): so the tables are made in one `BEGIN IMMEDIATE`, which waits its turn, and only
        when they are missing."""
        if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        if db.execute("PRAGMA user_version").fetchone()[0] >= USAGE_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] < USAGE_VERSION:  # another may have done it
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("DELETE FROM kv_usage")  # a database from before the quota: count it, once
                db.execute(f"INSERT INTO kv_usage (app, plugin, keys, bytes) "
                           f"SELECT app, plugin, count(*), sum({_ROW_BYTES}) FROM kv GROUP BY app, plugin")
                db.execute(f"PRAGMA user_version = {USAGE_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def get(self, scope: Scope, key: str) -> Any:
        check_key(key)
        with self._lock:
            row = self._conn().execute(f"SELECT value FROM kv WHERE {_WHERE_KEY}", (*scope, key)).fetchone()
        return None if row is None else decode(row[0], key)

    def set(self, scope: Scope, key: str, value: Any) -> None:
        key_size = check_key(key)
        text = encode(value)
        value_size = len(text.encode())  # `encode` keeps it UTF-8 (escaped when it must)
        owner = _owner(scope)
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                old = db.execute(f"SELECT {_ROW_BYTES} FROM kv WHERE {_WHERE_KEY}", (*scope, key)).fetchone()
                keys, used = db.execute("SELECT keys, bytes FROM kv_usage WHERE app=? AND plugin=?",
                                        owner).fetchone() or (0, 0)
                grow = key_size + value_size - (old[0] if old else 0)
                check_quota(keys, used, old is None, grow)
                db.execute(
                    "INSERT INTO kv (app, plugin, session, key, value, updated) VALUES (?,?,?,?,?,?) "
                    "ON CONFLICT (app, plugin, session, key) DO UPDATE SET value=excluded.value, "
                    "updated=excluded.updated", (*scope, key, text, time.time()))
                self._set_usage(db, owner, keys + (old is None), used + grow)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @staticmethod
    def _set_usage(db: sqlite3.Connection, owner: tuple[str, str], keys: int, used: int) -> None:
        db.execute("INSERT INTO kv_usage (app, plugin, keys, bytes) VALUES (?,?,?,?) "
                   "ON CONFLICT (app, plugin) DO UPDATE SET keys=excluded.keys, bytes=excluded.bytes",
                   (*owner, keys, used))

    def delete(self, scope: Scope, key: str) -> bool:
        check_key(key)
        owner = _owner(scope)
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                old = db.execute(f"SELECT {_ROW_BYTES} FROM kv WHERE {_WHERE_KEY}", (*scope, key)).fetchone()
                if old is not None:
                    keys, used = db.execute("SELECT keys, bytes FROM kv_usage WHERE app=? AND plugin=?",
                                            owner).fetchone() or (1, old[0])
                    db.execute(f"DELETE FROM kv WHERE {_WHERE_KEY}", (*scope, key))
                    self._set_usage(db, owner, max(keys - 1, 0), max(used - old[0], 0))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return old is not None

    def keys(self, scope: Scope) -> list[str]:
        if self._db is None and not self.path.exists():
            return []
        with self._lock:
            rows = self._conn().execute("SELECT key FROM kv WHERE app=? AND plugin=? AND session=? ORDER BY key",
                                        scope).fetchall()
        return [row[0] for row in rows]

    def usage(self, scope: Scope) -> tuple[int, int]:
        with self._lock:
            row = self._conn().execute("SELECT keys, bytes FROM kv_usage WHERE app=? AND plugin=?",
                                       _owner(scope)).fetchone()
        return (row[0], row[1]) if row else (0, 0)

    def sessions(self, app: str | None = None, session: str | None = None) -> list[SessionUsage]:
        """None (and no file created) when nothing was ever stored."""
        if self._db is None and not self.path.exists():
            return []
        where, args = _filters(app, session)
        with self._lock:
            rows = self._conn().execute(
                f"SELECT app, plugin, session, count(*), sum({_ROW_BYTES}), max(updated) FROM kv {where} "
                f"GROUP BY app, plugin, session ORDER BY max(updated) DESC", args).fetchall()
        return [SessionUsage(*row) for row in rows]

    def clear(self, app: str | None = None, session: str | None = None) -> int:
        """Also recounts `kv_usage` for the plug-ins touched, in the same transaction, so the quotas
        stay exact."""
        if self._db is None and not self.path.exists():
            return 0
        where, args = _filters(app, session)
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                owners = db.execute(f"SELECT DISTINCT app, plugin FROM kv {where}", args).fetchall()
                deleted = db.execute(f"DELETE FROM kv {where}", args).rowcount
                for owner in owners:
                    db.execute("DELETE FROM kv_usage WHERE app=? AND plugin=?", owner)
                    db.execute(f"INSERT INTO kv_usage (app, plugin, keys, bytes) SELECT app, plugin, count(*), "
                               f"sum({_ROW_BYTES}) FROM kv WHERE app=? AND plugin=? GROUP BY app, plugin", owner)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return deleted

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
