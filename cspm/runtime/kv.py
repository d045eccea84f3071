"""`kv_get`/`kv_set`: plug-in memory that outlives the process, scoped app + plug-in + session.

Plug-ins write it, so it is bounded: a value by MAX_VALUE_BYTES, and what one plug-in of one app holds
over all its sessions by QUOTA_BYTES and QUOTA_KEYS (otherwise a plug-in could fill the disk, one
call at a time or one session at a time). The usage is kept in `kv_usage`, updated in the same
transaction as the value, so checking it costs one row, not a scan.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cspm.formats import bounded_json

MAX_VALUE_BYTES = 1024 * 1024  # one value, as the UTF-8 JSON text stored
QUOTA_BYTES = 64 * 1024 * 1024  # keys + values of one plug-in of one app, over all its sessions
QUOTA_KEYS = 10_000  # keys of one plug-in of one app, over all its sessions

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
    """A key that cannot be stored (it is not valid Unicode text)."""


def _owner(scope: tuple[str, str, str]) -> tuple[str, str]:
    """What the quota counts over: the scope's app and plug-in, not its session, so that writing
    under more sessions gives a plug-in no more room."""
    return scope[0], scope[1]


def _key_bytes(key: str) -> int:
    try:
        return len(key.encode())
    except UnicodeEncodeError:
        raise KvKeyInvalid(f"key {key[:40]!r} is not valid Unicode (a lone surrogate)") from None


def _filters(app: str | None, session: str | None) -> tuple[str, tuple[object, ...]]:
    """A WHERE clause for `sessions`/`clear`. `app` is a kv scope as stored (a local app's `name:`),
    or a published app's NAMESPACE/NAME, which matches its memory from every registry."""
    clauses: list[str] = []
    args: list[object] = []
    if app is not None:
        prefix = f"pkg:{app}@"
        clauses.append("(app = ? OR substr(app, 1, ?) = ?)")
        args += [app, len(prefix), prefix]
    if session is not None:
        clauses.append("session = ?")
        args.append(session)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


class KvStore:
    """SQLite in WAL mode: each set is its own transaction, so a crash loses nothing written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            if db.execute("PRAGMA user_version").fetchone()[0] < USAGE_VERSION:
                self._count_usage(db)
            self._db = db
        return self._db

    @staticmethod
    def _count_usage(db: sqlite3.Connection) -> None:
        """A database from before the quota: count what it holds, once."""
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] < USAGE_VERSION:  # another process may have
                db.execute("DELETE FROM kv_usage")
                db.execute(f"INSERT INTO kv_usage (app, plugin, keys, bytes) "
                           f"SELECT app, plugin, count(*), sum({_ROW_BYTES}) FROM kv GROUP BY app, plugin")
                db.execute(f"PRAGMA user_version = {USAGE_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def get(self, scope: tuple[str, str, str], key: str) -> Any:
        """The stored value, read with bounded_json: a value stored by an older cspm (or written to the
        file by anything else) that is past the JSON limits is TooLarge, not a crash."""
        _key_bytes(key)
        with self._lock:
            row = self._conn().execute(
                "SELECT value FROM kv WHERE app=? AND plugin=? AND session=? AND key=?", (*scope, key)).fetchone()
        if row is None:
            return None
        try:
            return bounded_json.loads(row[0])
        except bounded_json.JsonRejected as exc:
            raise TooLarge(f"the stored value of key {key[:40]!r} cannot be read back: {exc}") from None

    def set(self, scope: tuple[str, str, str], key: str, value: Any) -> None:
        """Store a value; TooLarge when it is over MAX_VALUE_BYTES or would take the plug-in past its
        quota (a write that does not grow what it holds, such as a smaller value, is always allowed)."""
        key_size = _key_bytes(key)
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        try:
            value_size = len(text.encode())
        except UnicodeEncodeError:  # a lone surrogate in a string: stored escaped, read back the same
            text = json.dumps(value, separators=(",", ":"))
            value_size = len(text)
        if value_size > MAX_VALUE_BYTES:
            raise TooLarge(f"value of {value_size} bytes is over the {MAX_VALUE_BYTES}-byte limit")
        owner = _owner(scope)
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                old = db.execute(f"SELECT {_ROW_BYTES} FROM kv WHERE app=? AND plugin=? AND session=? AND key=?",
                                 (*scope, key)).fetchone()
                keys, used = db.execute("SELECT keys, bytes FROM kv_usage WHERE app=? AND plugin=?",
                                        owner).fetchone() or (0, 0)
                grow = key_size + value_size - (old[0] if old else 0)
                if old is None and keys + 1 > QUOTA_KEYS:
                    raise TooLarge(f"kv quota: this plug-in already holds {keys} keys in this app, the most it "
                                   f"may (at most {QUOTA_KEYS} keys over all sessions)")
                if grow > 0 and used + grow > QUOTA_BYTES:
                    raise TooLarge(f"kv quota: this plug-in holds {used} bytes in this app; {grow} more would pass "
                                   f"its quota of {QUOTA_BYTES // 2**20} MiB (keys and values over all sessions)")
                db.execute(
                    "INSERT INTO kv (app, plugin, session, key, value, updated) VALUES (?,?,?,?,?,?) "
                    "ON CONFLICT (app, plugin, session, key) DO UPDATE SET value=excluded.value, "
                    "updated=excluded.updated", (*scope, key, text, time.time()))
                db.execute("INSERT INTO kv_usage (app, plugin, keys, bytes) VALUES (?,?,?,?) "
                           "ON CONFLICT (app, plugin) DO UPDATE SET keys=excluded.keys, bytes=excluded.bytes",
                           (*owner, keys + (old is None), used + grow))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def usage(self, scope: tuple[str, str, str]) -> tuple[int, int]:
        """(keys, bytes) that the scope's app + plug-in holds over all sessions."""
        with self._lock:
            row = self._conn().execute("SELECT keys, bytes FROM kv_usage WHERE app=? AND plugin=?",
                                       _owner(scope)).fetchone()
        return (row[0], row[1]) if row else (0, 0)

    def sessions(self, app: str | None = None, session: str | None = None) -> list[SessionUsage]:
        """Every (app, plug-in, session) with memory, newest first; none (and no file created) when
        nothing was ever stored. `app`: see `_app_match`."""
        if self._db is None and not self.path.exists():
            return []
        where, args = _filters(app, session)
        with self._lock:
            rows = self._conn().execute(
                f"SELECT app, plugin, session, count(*), sum({_ROW_BYTES}), max(updated) FROM kv {where} "
                f"GROUP BY app, plugin, session ORDER BY max(updated) DESC", args).fetchall()
        return [SessionUsage(*row) for row in rows]

    def clear(self, app: str | None = None, session: str | None = None) -> int:
        """Delete the memory of the matching sessions (all of it when neither is given) and recount
        `kv_usage` for the plug-ins touched, in one transaction, so the quotas stay exact; returns the
        number of keys deleted."""
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
