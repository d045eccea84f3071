"""The metadata store: versions (each with its canonical index line), tokens, trust policy, a generation.

`MetadataStore` is the interface the registry needs; `SQLiteMetadata` implements it in `registry.db`
(WAL) of the data dir, `metadata_postgres.PostgresMetadata` in a PostgreSQL database shared by replicas. Its invariants:

- **Exactly one wins.** Changes happen only inside `transaction()`, and transactions are serialised (a
  write lock taken when one begins), so a check and the write it guards cannot interleave with
  another. `(name, version_key)` is unique: of two publishes of one version (1.0 and 1.0.0 are one),
  exactly one `insert_version` succeeds, the other raises `Exists`.
- **All or nothing.** A transaction that raises is rolled back: no row, no token, no trust change,
  no generation bump. One that returns is durable (a 201 means the row survives a power cut), and
  every reader sees all of it or none of it.
- **Nothing visible before its blob.** The store never writes blobs; the caller (`storage.Storage`)
  puts a version's blob and bundle in the blob store inside the same transaction, before
  `insert_version`, and removes what it brought if the transaction fails. Since transactions are
  serialised, that removal never races another publish sharing the blob. So a committed row's blob
  is always in place, and a crash leaves at most blobs no row names (swept at start-up).
- **The generation** is bumped by every change readers see (publish, yank, trust): a rendering
  cached under one generation is valid while it stays the same.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from packaging.utils import canonicalize_version
from packaging.version import Version

from cspm.errors import StorageError

DB_FILE = "registry.db"
SCHEMA_VERSION = 3  # 2: versions.bundle, trust (a version-1 server must not publish past a trust policy);
# 3: token ids are AUTOINCREMENT, never reused after a revoke (logs name tokens by id)

SCHEMA = """  -- statements end with ';' at the end of a line, and nowhere else
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    created_by INTEGER            -- the token whose creation (or admin publish) created it
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a log's `token=#3` means one token for ever
    hash TEXT NOT NULL UNIQUE,    -- sha256 hex of the token, which itself is never stored
    namespaces TEXT NOT NULL,     -- JSON list
    publish INTEGER NOT NULL,
    admin INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- publish order
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    version_key TEXT NOT NULL,    -- PEP 440 equality: 1.0 and 1.0.0 are one version
    digest TEXT NOT NULL,
    line TEXT NOT NULL,           -- the canonical index line (to_line)
    published TEXT NOT NULL,
    modified REAL NOT NULL,       -- last change (publish or yank): Last-Modified
    bundle TEXT,                  -- the signature bundle's path (bundles/sha256/...), or NULL
    UNIQUE (name, version_key)
);
CREATE INDEX IF NOT EXISTS versions_digest ON versions (digest);
CREATE TABLE IF NOT EXISTS trust (
    namespace TEXT PRIMARY KEY,   -- the policy pattern is "<namespace>/*"
    issuer TEXT,                  -- OIDC issuer (keyless), with identity
    identity TEXT,                -- exact, or a glob (* ? [)
    keys TEXT NOT NULL,           -- JSON list of "ed25519:<hex>" (keyed)
    require INTEGER NOT NULL,     -- 1: an unsigned publish is refused
    modified REAL NOT NULL
);
"""
MIGRATIONS = {  # from version: statements that make it the next version
    1: ["ALTER TABLE versions ADD COLUMN bundle TEXT"],
    2: [  # SQLite cannot add AUTOINCREMENT to a table: copy it into one that has it
        "CREATE TABLE tokens_v3 (id INTEGER PRIMARY KEY AUTOINCREMENT, hash TEXT NOT NULL UNIQUE, "
        "namespaces TEXT NOT NULL, publish INTEGER NOT NULL, admin INTEGER NOT NULL, created REAL NOT NULL)",
        "INSERT INTO tokens_v3 (id, hash, namespaces, publish, admin, created) "
        "SELECT id, hash, namespaces, publish, admin, created FROM tokens",
        "DROP TABLE tokens",
        "ALTER TABLE tokens_v3 RENAME TO tokens",
        # a revoked token's id is known only if it created a namespace: never hand out one up to that either
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'tokens', 0 "
        "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'tokens')",
        "UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT COALESCE(MAX(id), 0) FROM tokens), "
        "(SELECT COALESCE(MAX(created_by), 0) FROM namespaces)) WHERE name = 'tokens'",
    ],
}
INDEXES = "CREATE INDEX IF NOT EXISTS versions_bundle ON versions (bundle)"  # after the migrations


class Exists(Exception):
    """The version is already published."""


class NotFound(Exception):
    """No such version."""


class Unavailable(Exception):
    """A shared store (PostgreSQL, S3) cannot be reached or failed mid-request: the app answers 503 (nothing
    was committed, so the client may retry), and the store reconnects on the next request."""


@dataclass(frozen=True)
class Token:
    id: int
    namespaces: frozenset[str]
    publish: bool
    admin: bool

    def may_publish(self, namespace: str) -> bool:
        return self.admin or (self.publish and namespace in self.namespaces)


@dataclass(frozen=True)
class VersionRow:
    """One published version as stored: its id (publish order), canonical line and last change."""

    id: int
    name: str
    line: str
    modified: float


def version_key(version: str) -> str:
    return canonicalize_version(Version(version), strip_trailing_zero=True)


class Transaction(Protocol):
    """What may be read and changed inside `MetadataStore.transaction()` (serialised, all or nothing)."""

    def generation(self) -> int: ...

    def policy(self, namespace: str | None = None) -> dict[str, Any]: ...

    def package(self, name: str) -> list[VersionRow]:
        """The package's versions in publish order."""
        ...

    def lines(self) -> list[str]:
        """Every version's line, by name then publish order."""
        ...

    def find(self, name: str, version: str) -> VersionRow | None: ...

    def referenced(self) -> tuple[set[str], set[str]]:
        """Every blob digest and bundle path a version names (what a sweep keeps)."""
        ...

    def insert_version(self, line: dict[str, Any], text: str, token_id: int, bundle: str | None) -> None:
        """Add a version (and its namespace, owned by `token_id`, if new); `Exists` if it is taken."""
        ...

    def update_line(self, row_id: int, text: str) -> None:
        """Replace a version's line (a yank: `yanked` is the one field that changes)."""
        ...

    def set_trust(self, namespace: str, *, issuer: str | None, identity: str | None, keys: list[str],
                  require: bool) -> None: ...

    def remove_trust(self, namespace: str) -> bool: ...

    def bump(self) -> int:
        """Advance the generation (every change readers see does); returns the new one."""
        ...


class MetadataStore(Protocol):
    """Versions, tokens, trust policy and the generation, with the invariants of this module's docstring."""

    def transaction(self) -> contextlib.AbstractContextManager[Transaction]: ...

    def generation(self) -> int: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def add_token(self, token_hash: str, namespaces: list[str], publish: bool, admin: bool) -> int: ...

    def tokens(self) -> list[tuple[Token, float]]: ...

    def remove_token(self, token_id: int) -> bool: ...

    def token_by_hash(self, token_hash: str) -> tuple[str, Token] | None: ...

    def policy(self, namespace: str | None = None) -> dict[str, Any]: ...

    def exists(self, name: str, version: str) -> bool: ...

    def package(self, name: str) -> list[VersionRow]:
        """One package's versions in publish order, from one snapshot (an index file)."""
        ...

    def versions(self) -> list[VersionRow]:
        """Every version, by name then publish order, from one snapshot (`names`)."""
        ...

    def snapshot(self) -> tuple[list[VersionRow], dict[str, Any]]:
        """Every version in publish order, and the trust policy, from one snapshot (an export)."""
        ...

    def references(self, digest: str | None = None, bundle: str | None = None) -> bool:
        """Whether a committed version names this blob digest or bundle path (only those are served)."""
        ...

    def state(self) -> tuple[int, list[VersionRow], dict[str, Any]]:
        """The generation, every version in publish order and the trust policy, from one snapshot (what the
        write-through static tree renders, labelled with the generation it shows)."""
        ...


class SQLiteMetadata:
    """`MetadataStore` in SQLite (WAL): `BEGIN IMMEDIATE` is the write lock that serialises transactions."""

    def __init__(self, data: Path) -> None:
        self.path = data / DB_FILE
        self._local = threading.local()
        with self._write() as db:  # not executescript, which commits on its own
            for statement in SCHEMA.split(";\n"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
            found = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
            version = int(found) if found.isdigit() else -1
            while version in MIGRATIONS:
                for statement in MIGRATIONS[version]:
                    db.execute(statement)
                version += 1
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(version),))
            if version != SCHEMA_VERSION:
                raise StorageError(f"{self.path} has schema version {found}; this cspm-registry reads "
                                   f"version {SCHEMA_VERSION}")
            db.execute(INDEXES)

    # -- connections and transactions

    def _db(self) -> sqlite3.Connection:
        """One connection per thread (Starlette runs blocking work in a thread pool)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a 201 means the row survives a power cut
            self._local.db = db
        return db

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """`BEGIN IMMEDIATE`: takes the write lock at once, so check-then-write cannot interleave."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One snapshot for several SELECTs (WAL readers never block the writer)."""
        db = self._db()
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._write() as db:
            yield _SQLiteTransaction(db)

    def generation(self) -> int:
        return _generation(self._db())

    def get_meta(self, key: str) -> str | None:
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- tokens

    def add_token(self, token_hash: str, namespaces: list[str], publish: bool, admin: bool) -> int:
        """Store a token's hash; the first token of a namespace creates it."""
        now = time.time()
        with self._write() as db:
            cursor = db.execute("INSERT INTO tokens (hash, namespaces, publish, admin, created) VALUES (?, ?, ?, ?, ?)",
                                (token_hash, json.dumps(sorted(set(namespaces))), int(publish), int(admin), now))
            token_id = int(cursor.lastrowid or 0)
            for namespace in namespaces:
                db.execute("INSERT OR IGNORE INTO namespaces VALUES (?, ?, ?)", (namespace, now, token_id))
        return token_id

    def tokens(self) -> list[tuple[Token, float]]:
        rows = self._db().execute("SELECT id, namespaces, publish, admin, created FROM tokens ORDER BY id")
        return [(Token(row[0], frozenset(json.loads(row[1])), bool(row[2]), bool(row[3])), float(row[4]))
                for row in rows.fetchall()]

    def remove_token(self, token_id: int) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM tokens WHERE id = ?", (token_id,)).rowcount > 0

    def token_by_hash(self, token_hash: str) -> tuple[str, Token] | None:
        row = self._db().execute("SELECT hash, id, namespaces, publish, admin FROM tokens WHERE hash = ?",
                                 (token_hash,)).fetchone()
        if row is None:
            return None
        return row[0], Token(row[1], frozenset(json.loads(row[2])), bool(row[3]), bool(row[4]))

    # -- reads

    def policy(self, namespace: str | None = None) -> dict[str, Any]:
        return _policy(self._db(), namespace)

    def exists(self, name: str, version: str) -> bool:
        row = self._db().execute("SELECT 1 FROM versions WHERE name = ? AND version_key = ?",
                                 (name, version_key(version))).fetchone()
        return row is not None

    def package(self, name: str) -> list[VersionRow]:
        with self._read() as db:
            return _rows(db, "WHERE name = ? ORDER BY id", (name,))

    def versions(self) -> list[VersionRow]:
        with self._read() as db:
            return _rows(db, "ORDER BY name, id")

    def snapshot(self) -> tuple[list[VersionRow], dict[str, Any]]:
        with self._read() as db:
            return _rows(db, "ORDER BY id"), _policy(db)

    def state(self) -> tuple[int, list[VersionRow], dict[str, Any]]:
        with self._read() as db:
            return _generation(db), _rows(db, "ORDER BY id"), _policy(db)

    def references(self, digest: str | None = None, bundle: str | None = None) -> bool:
        column, value = ("digest", digest) if digest is not None else ("bundle", bundle)
        return self._db().execute(f"SELECT 1 FROM versions WHERE {column} = ? LIMIT 1", (value,)).fetchone() is not None


class _SQLiteTransaction:
    """`Transaction` on a connection inside `BEGIN IMMEDIATE`."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def generation(self) -> int:
        return _generation(self.db)

    def policy(self, namespace: str | None = None) -> dict[str, Any]:
        return _policy(self.db, namespace)

    def package(self, name: str) -> list[VersionRow]:
        return _rows(self.db, "WHERE name = ? ORDER BY id", (name,))

    def lines(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT line FROM versions ORDER BY name, id")]

    def find(self, name: str, version: str) -> VersionRow | None:
        found = _rows(self.db, "WHERE name = ? AND version_key = ?", (name, version_key(version)))
        return found[0] if found else None

    def referenced(self) -> tuple[set[str], set[str]]:
        digests = {row[0] for row in self.db.execute("SELECT DISTINCT digest FROM versions")}
        bundles = {row[0] for row in self.db.execute("SELECT DISTINCT bundle FROM versions WHERE bundle IS NOT NULL")}
        return digests, bundles

    def insert_version(self, line: dict[str, Any], text: str, token_id: int, bundle: str | None) -> None:
        now = time.time()
        namespace = line["name"].split("/")[0]
        self.db.execute("INSERT OR IGNORE INTO namespaces VALUES (?, ?, ?)", (namespace, now, token_id))
        try:
            self.db.execute("INSERT INTO versions (name, version, version_key, digest, line, published, modified, "
                            "bundle) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (line["name"], line["version"], version_key(line["version"]), line["digest"], text,
                             line.get("published", ""), now, bundle))
        except sqlite3.IntegrityError:
            raise Exists(f"{line['name']} {line['version']}") from None

    def update_line(self, row_id: int, text: str) -> None:
        self.db.execute("UPDATE versions SET line = ?, modified = ? WHERE id = ?", (text, time.time(), row_id))

    def set_trust(self, namespace: str, *, issuer: str | None, identity: str | None, keys: list[str],
                  require: bool) -> None:
        self.db.execute("INSERT OR REPLACE INTO trust VALUES (?, ?, ?, ?, ?, ?)",
                        (namespace, issuer, identity, json.dumps(keys), int(require), time.time()))

    def remove_trust(self, namespace: str) -> bool:
        return self.db.execute("DELETE FROM trust WHERE namespace = ?", (namespace,)).rowcount > 0

    def bump(self) -> int:
        self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        return _generation(self.db)


def _generation(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])


def _rows(db: sqlite3.Connection, where: str, args: tuple[Any, ...] = ()) -> list[VersionRow]:
    query = "SELECT id, name, line, modified FROM versions " + where
    return [VersionRow(int(row[0]), row[1], row[2], float(row[3])) for row in db.execute(query, args)]


def _policy(db: sqlite3.Connection, namespace: str | None = None) -> dict[str, Any]:
    query = "SELECT namespace, issuer, identity, keys, require FROM trust"
    rows = db.execute(query + " WHERE namespace = ?", (namespace,)) if namespace else \
        db.execute(query + " ORDER BY namespace")
    policy: dict[str, Any] = {}
    for name, issuer, identity, keys, require in rows:
        entry: dict[str, Any] = {"issuer": issuer, "identity": identity, "keys": json.loads(keys)}
        policy[f"{name}/*"] = {**{k: v for k, v in entry.items() if v}, "require": bool(require)}
    return policy
