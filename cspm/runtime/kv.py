"""`kv_get`/`kv_set`: plug-in memory that outlives the process, scoped app + plug-in + session."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

MAX_VALUE_BYTES = 1024 * 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    app TEXT NOT NULL, plugin TEXT NOT NULL, session TEXT NOT NULL, key TEXT NOT NULL,
    value TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (app, plugin, session, key)
) WITHOUT ROWID;
"""


class TooLarge(Exception):
    pass


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
            self._db = db
        return self._db

    def get(self, scope: tuple[str, str, str], key: str) -> Any:
        with self._lock:
            row = self._conn().execute(
                "SELECT value FROM kv WHERE app=? AND plugin=? AND session=? AND key=?", (*scope, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def set(self, scope: tuple[str, str, str], key: str, value: Any) -> None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if len(text.encode()) > MAX_VALUE_BYTES:
            raise TooLarge(f"value of {len(text.encode())} bytes is over the {MAX_VALUE_BYTES}-byte limit")
        with self._lock:
            self._conn().execute(
                "INSERT INTO kv (app, plugin, session, key, value, updated) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT (app, plugin, session, key) DO UPDATE SET value=excluded.value, "
                "updated=excluded.updated", (*scope, key, text, time.time()))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
