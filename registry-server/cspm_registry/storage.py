"""The data dir: SQLite (WAL) for versions, tokens and trust policy, plain files for blobs and bundles.

A publish writes its blob (and signature bundle) first and commits its row second, all inside one
`BEGIN IMMEDIATE` transaction, so the SQLite write lock also serialises every change to `blobs/`
and `bundles/`: a losing concurrent publish can remove the files it brought without racing a winner
that shares them. A crash between the two leaves files no row points to; `sweep` (run when `serve`
starts) removes them, and `tmp/`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_version
from packaging.version import Version

from cspm.errors import CspmError
from cspm.index.build import names_line
from cspm_registry import limits

log = logging.getLogger("cspm_registry")

DB_FILE = "registry.db"
SCHEMA_VERSION = 3  # 2: versions.bundle, trust (a version-1 server must not publish past a trust policy);
# 3: token ids are AUTOINCREMENT, never reused after a revoke (logs name tokens by id)
PAUSE_AFTER_BLOB_ENV = "CSPM_REGISTRY_TEST_PAUSE_AFTER_BLOB"  # tests only: seconds to sleep before the commit

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
BUNDLE_SUFFIX = {"sigstore": "sigstore", "dsse-ed25519": "dsse"}
MAX_REGISTRY_NAME = 64  # `--name`: what cspm's user config accepts as a registry name
API = "api/v1"  # config.json's `api`: where the write API is


class StorageError(CspmError):
    """A data dir this version cannot use."""


class TrustTooLarge(CspmError):
    """A trust policy that would make config.json larger than cspm reads."""


class Exists(Exception):
    """The version is already published."""


class NotFound(Exception):
    """No such version."""


def bundle_name(bundle: bytes, kind: str) -> str:
    """Where a signature bundle is stored and served: named by its own sha256, so it never changes.

    (Not by the blob's digest: one blob can be published under several names or versions, each with
    its own bundle, and a DSSE envelope is bound to the name it was signed for.)
    """
    return f"bundles/sha256/{hashlib.sha256(bundle).hexdigest()}.{BUNDLE_SUFFIX[kind]}.json"


@dataclass(frozen=True)
class Token:
    id: int
    namespaces: frozenset[str]
    publish: bool
    admin: bool

    def may_publish(self, namespace: str) -> bool:
        return self.admin or (self.publish and namespace in self.namespaces)


@dataclass(frozen=True)
class Rendered:
    """A file of the static layout as served: body and when it last changed (None: unknown)."""

    body: bytes
    modified: float | None


def version_key(version: str) -> str:
    return canonicalize_version(Version(version), strip_trailing_zero=True)


def published_now() -> str:
    """The `published` of a line: UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Storage:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.blobs = data / "blobs" / "sha256"
        self.bundles = data / "bundles" / "sha256"
        self.tmp = data / "tmp"
        for folder in (self.blobs, self.bundles, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._names: tuple[int, dict[str, int]] | None = None  # (generation, bytes of each package's `names` row)
        self._pause_after_blob = float(os.environ.get(PAUSE_AFTER_BLOB_ENV) or 0)
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
                raise StorageError(f"{data / DB_FILE} has schema version {found}; this cspm-registry reads "
                                   f"version {SCHEMA_VERSION}")
            db.execute(INDEXES)

    # -- connections and transactions

    def _db(self) -> sqlite3.Connection:
        """One connection per thread (Starlette runs blocking work in a thread pool)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.data / DB_FILE, timeout=60, isolation_level=None)
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

    def generation(self) -> int:
        """Bumped by every publish and yank: cached renderings are valid while it stays the same."""
        row = self._db().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def get_meta(self, key: str) -> str | None:
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @staticmethod
    def _bump(db: sqlite3.Connection) -> None:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    # -- start-up

    def sweep(self) -> list[str]:
        """Remove what interrupted publishes left: `tmp/`, and blobs and bundles no row points to."""
        removed = []
        with self._write() as db:
            digests = {row[0].split(":", 1)[1] for row in db.execute("SELECT DISTINCT digest FROM versions")}
            bundles = {row[0].rsplit("/", 1)[1]
                       for row in db.execute("SELECT DISTINCT bundle FROM versions WHERE bundle IS NOT NULL")}
            for folder, keep in ((self.blobs, digests), (self.bundles, bundles)):
                for path in folder.iterdir():
                    if path.name not in keep:
                        _remove(path)
                        removed.append(str(path.relative_to(self.data)))
            for path in self.tmp.iterdir():
                _remove(path)
                removed.append(str(path.relative_to(self.data)))
        return removed

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
        """Every token's scope and creation time, by id (the hashes stay in the database)."""
        rows = self._db().execute("SELECT id, namespaces, publish, admin, created FROM tokens ORDER BY id")
        return [(Token(row[0], frozenset(json.loads(row[1])), bool(row[2]), bool(row[3])), float(row[4]))
                for row in rows.fetchall()]

    def remove_token(self, token_id: int) -> bool:
        """Revoke a token: its next request is 401, even on a running server (each request looks it up).

        Its id is never given to another token (AUTOINCREMENT), so `token=#3` in a log means one token."""
        with self._write() as db:
            return db.execute("DELETE FROM tokens WHERE id = ?", (token_id,)).rowcount > 0

    def token_by_hash(self, token_hash: str) -> tuple[str, Token] | None:
        """(stored hash, token) for the caller's constant-time comparison, or None."""
        row = self._db().execute("SELECT hash, id, namespaces, publish, admin FROM tokens WHERE hash = ?",
                                 (token_hash,)).fetchone()
        if row is None:
            return None
        return row[0], Token(row[1], frozenset(json.loads(row[2])), bool(row[3]), bool(row[4]))

    # -- trust policy: who may sign for a namespace

    def set_trust(self, namespace: str, *, issuer: str | None, identity: str | None, keys: list[str],
                  require: bool) -> None:
        """Replace the namespace's trusted publishers (config.json changes with the next request)."""
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO trust VALUES (?, ?, ?, ?, ?, ?)",
                       (namespace, issuer, identity, json.dumps(keys), int(require), time.time()))
            try:  # as served (the API's path is longer than an export's null), under the longest name
                limits.check_config(render_config("x" * MAX_REGISTRY_NAME, API, _policy(db)))
            except limits.ClientLimit as exc:
                raise TrustTooLarge(exc.message) from None  # rolled back
            self._bump(db)

    def remove_trust(self, namespace: str) -> bool:
        with self._write() as db:
            removed = db.execute("DELETE FROM trust WHERE namespace = ?", (namespace,)).rowcount > 0
            if removed:
                self._bump(db)
        return removed

    def policy(self, namespace: str | None = None) -> dict[str, Any]:
        """The trust policy as config.json has it (`{"ns/*": {...}}`), or the one namespace's part of it."""
        return _policy(self._db(), namespace)

    # -- versions

    def exists(self, name: str, version: str) -> bool:
        row = self._db().execute("SELECT 1 FROM versions WHERE name = ? AND version_key = ?",
                                 (name, version_key(version))).fetchone()
        return row is not None

    def publish(self, line: dict[str, Any], blob: bytes, token: Token, *, bundle: bytes = b"",
                policy: dict[str, Any] | None = None, recheck: Callable[[dict[str, Any]], object] | None = None
                ) -> None:
        """Blob and bundle in place first, then the row; Exists when (name, version) is taken (the loser leaves
        nothing).

        The bundle goes where the line's `signature.bundle` says. `policy` is the namespace's trust
        policy the publish was verified against: if it changed since, `recheck(current policy)`
        verifies again, under the write lock, or raises (and nothing stays). A line, index file or
        `names` file cspm would not read is `limits.ClientLimit` (checked under the write lock, so two
        publishes cannot together pass a limit each passes alone).
        """
        namespace = line["name"].split("/")[0]
        what = f"{line['name']} {line['version']}"
        files = [(blob, self.blobs / line["digest"].split(":", 1)[1])]
        bundle_at = (line.get("signature") or {}).get("bundle")
        if bundle_at:
            files.append((bundle, self.data / bundle_at))
        staged: list[Path] = []
        try:
            for content, _ in files:  # the slow part (write + fsync) happens outside the write lock
                staged.append(self._stage(content))
            with self._write() as db:
                brought: list[Path] = []
                try:
                    for source, (_, target) in zip(staged, files, strict=True):
                        if not target.exists():
                            os.replace(source, target)
                            brought.append(target)
                    for folder in sorted({target.parent for target in brought}):
                        _fsync_dir(folder)
                    if self._pause_after_blob:
                        log.warning("test hook: paused after the blob of %s %s", line["name"], line["version"])
                        time.sleep(self._pause_after_blob)
                    if recheck is not None:
                        current = _policy(db, namespace)
                        if current != (policy or {}):
                            recheck(current)
                    text = limits.check_line(line, what)
                    package = [row[0] for row in db.execute("SELECT line FROM versions WHERE name = ? ORDER BY id",
                                                            (line["name"],))]
                    names = self._check_client_limits(db, line["name"], [*package, text], what)
                    now = time.time()
                    db.execute("INSERT OR IGNORE INTO namespaces VALUES (?, ?, ?)", (namespace, now, token.id))
                    db.execute("INSERT INTO versions (name, version, version_key, digest, line, published, modified,"
                               " bundle) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               (line["name"], line["version"], version_key(line["version"]), line["digest"],
                                text, line.get("published", ""), now, bundle_at))
                except BaseException as exc:
                    for target in brought:  # still under the write lock: nobody else can have started using it
                        target.unlink(missing_ok=True)
                    if isinstance(exc, sqlite3.IntegrityError):
                        raise Exists(f"{line['name']} {line['version']}") from None
                    raise
                self._bump(db)
                generation = self.generation()
            self._names = (generation, names)
        finally:
            for source in staged:
                source.unlink(missing_ok=True)

    def _stage(self, blob: bytes) -> Path:
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(name, 0o644)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    def set_yanked(self, name: str, version: str, yanked: bool | str) -> dict[str, Any]:
        """Rewrite the version's line with a new `yanked` (the one field of a line that changes)."""
        with self._write() as db:
            row = db.execute("SELECT id, line FROM versions WHERE name = ? AND version_key = ?",
                             (name, version_key(version))).fetchone()
            if row is None:
                raise NotFound(f"{name} {version}")
            line = json.loads(row[1])
            line["yanked"] = yanked
            what = f"{name} {line['version']}"
            text = limits.check_line(line, what)  # a reason makes the line longer
            package = [text if row_id == row[0] else other for row_id, other in
                       db.execute("SELECT id, line FROM versions WHERE name = ? ORDER BY id", (name,))]
            names = self._check_client_limits(db, name, package, what)
            db.execute("UPDATE versions SET line = ?, modified = ? WHERE id = ?", (text, time.time(), row[0]))
            self._bump(db)
            generation = self.generation()
        self._names = (generation, names)
        return line

    def _check_client_limits(self, db: sqlite3.Connection, name: str, package: list[str], what: str
                             ) -> dict[str, int]:
        """The package's index file (its lines as they will be) and the `names` file it changes must stay
        within what cspm reads; returns the `names` row sizes as they will be."""
        limits.check_index_file(sum(len(text.encode()) + 1 for text in package), what, name)
        sizes = self._names_sizes(db)
        row = len(names_row(best_lines(package)[name]))
        limits.check_names(sum(sizes.values()) - sizes.get(name, 0) + row, what, row)
        return {**sizes, name: row}

    def _names_sizes(self, db: sqlite3.Connection) -> dict[str, int]:
        """Bytes of each package's row in `names`: rendered once, then kept up to date by publish and yank."""
        generation = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        if self._names is not None and self._names[0] == generation:
            return self._names[1]
        best = best_lines(row[0] for row in db.execute("SELECT line FROM versions ORDER BY name, id"))
        sizes = {name: len(names_row(line)) for name, line in best.items()}
        self._names = (generation, sizes)
        return sizes

    # -- reads

    def blob_path(self, hexdigest: str) -> Path | None:
        """The blob of a published version; a blob no committed row points to is not served."""
        row = self._db().execute("SELECT 1 FROM versions WHERE digest = ? LIMIT 1", (f"sha256:{hexdigest}",)).fetchone()
        path = self.blobs / hexdigest
        return path if row is not None and path.is_file() else None

    def bundle_path(self, filename: str) -> Path | None:
        """A bundle a published version names; one no committed row points to is not served."""
        row = self._db().execute("SELECT 1 FROM versions WHERE bundle = ? LIMIT 1",
                                 (f"bundles/sha256/{filename}",)).fetchone()
        path = self.bundles / filename
        return path if row is not None and path.is_file() else None

    def index_file(self, name: str) -> Rendered | None:
        with self._read() as db:
            rows = db.execute("SELECT line, modified FROM versions WHERE name = ? ORDER BY id", (name,)).fetchall()
        if not rows:
            return None
        return Rendered("".join(line + "\n" for line, _ in rows).encode(), max(m for _, m in rows))

    def names_file(self) -> Rendered:
        with self._read() as db:
            rows = db.execute("SELECT name, line, modified FROM versions ORDER BY name, id").fetchall()
        return Rendered(render_names(row[1] for row in rows), max((row[2] for row in rows), default=None))

    def snapshot(self) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        """(name, line) of every version in publish order, and the trust policy, from one snapshot (for export)."""
        with self._read() as db:
            lines = [(row[0], row[1]) for row in db.execute("SELECT name, line FROM versions ORDER BY id")]
            return lines, _policy(db)


def _policy(db: sqlite3.Connection, namespace: str | None = None) -> dict[str, Any]:
    query = "SELECT namespace, issuer, identity, keys, require FROM trust"
    rows = db.execute(query + " WHERE namespace = ?", (namespace,)) if namespace else \
        db.execute(query + " ORDER BY namespace")
    policy: dict[str, Any] = {}
    for name, issuer, identity, keys, require in rows:
        entry: dict[str, Any] = {"issuer": issuer, "identity": identity, "keys": json.loads(keys)}
        policy[f"{name}/*"] = {**{k: v for k, v in entry.items() if v}, "require": bool(require)}
    return policy


def render_config(name: str, api: str | None, policy: dict[str, Any]) -> bytes:
    """`config.json`: `policy` only when some namespace has one (else the bytes `cspm index build` writes)."""
    config: dict[str, Any] = {"name": name, "dl": "blobs/sha256/{hex}", "api": api}
    if policy:
        config["policy"] = policy
    return (json.dumps(config, sort_keys=True) + "\n").encode()


def best_lines(lines: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each package's line `names` shows: its highest version not yanked (the highest at all if every one is)."""
    best: dict[str, tuple[bool, Version, dict[str, Any]]] = {}
    for text in lines:
        line = json.loads(text)
        key = (not line.get("yanked"), Version(line["version"]))
        current = best.get(line["name"])
        if current is None or key > current[:2]:
            best[line["name"]] = (*key, line)
    return {name: found[2] for name, found in best.items()}


def names_row(line: dict[str, Any]) -> bytes:
    return (names_line(line) + "\n").encode()


def render_names(lines: Iterable[str]) -> bytes:
    """`names`: one row per package, sorted by name."""
    best = best_lines(lines)
    return b"".join(names_row(best[name]) for name in sorted(best))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
