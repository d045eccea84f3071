"""The registry's storage, behind two small interfaces: a metadata store and a blob store, composed here.

`metadata.MetadataStore` (SQLite in the data dir, or PostgreSQL shared by replicas: versions, tokens,
trust policy, a generation) and `blobs.BlobStore` (a folder, or an S3 bucket: blobs and bundles by
layout path) each carry their invariants in their docstrings; `Storage` is what the app, the CLI and
`export` use, and the one place that orders the two. A publish stages its blob (and signature
bundle) outside any lock (a folder's `tmp/`, or S3 under the final key), then, inside one metadata
transaction (which serialises every change, across replicas too), `put`s them (which makes sure they
are stored) and commits the row: a version is never visible before its blob, of two publishes of one
version exactly one wins, a loser removes only what its own `put` brought (which no committed row
can name: the transaction is serialised), and a crash leaves only blobs no row names.

`sweep(grace)` removes those: it lists the keys last written more than `grace` seconds ago outside
any transaction, then, inside one, removes those no row names. That is safe while other replicas
publish: a publish's `put` runs inside its own transaction, so it comes wholly before the sweep's
(and its row then names the key, which is kept) or wholly after it (and `put` finds the key gone and
uploads it again); the grace only spares the work of re-uploading what was staged moments ago.

After each change commits, the files of the static layout it changed are written to the
write-through static tree, when there is one (static.py), rendered from one snapshot and labelled
with its generation.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cspm.errors import StorageError, TrustTooLarge
from cspm.protocol import layout
from cspm.protocol.layout import API, BUNDLE_SUFFIX, render_config
from cspm_registry import limits
from cspm_registry.blobs import BlobStore, FolderBlobs, Staged
from cspm_registry.metadata import (
    DB_FILE,
    SCHEMA_VERSION,
    Exists,
    MetadataStore,
    NotFound,
    SQLiteMetadata,
    Token,
    Transaction,
    Unavailable,
    VersionRow,
    version_key,
)
from cspm_registry.static import StaticTarget

__all__ = ["API", "BUNDLE_SUFFIX", "DB_FILE", "MAX_REGISTRY_NAME", "SCHEMA_VERSION", "Exists", "NotFound", "Rendered",
           "Storage", "StorageError", "Token", "TrustTooLarge", "Unavailable", "bundle_name", "published_now",
           "render_config", "version_key"]

log = logging.getLogger("cspm_registry")

PAUSE_AFTER_BLOB_ENV = "CSPM_REGISTRY_TEST_PAUSE_AFTER_BLOB"  # tests only: seconds to sleep before the commit
MAX_REGISTRY_NAME = 64  # `--name`: what cspm's user config accepts as a registry name
bundle_name = layout.bundle_path


@dataclass(frozen=True)
class Rendered:
    """A file of the static layout as served: body and when it last changed (None: unknown)."""

    body: bytes
    modified: float | None


def published_now() -> str:
    """The `published` of a line: UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Storage:
    """The registry's storage: `meta` and `blob_store`, SQLite and a folder under `data` unless given.

    `static`: the write-through static tree (None: none; `static_full_first`: the first write writes every
    file, as a replica's start does, repairing what one that died mid-write left); `name`: the registry's
    name in the config.json it writes there; `public_base`: where clients download blobs (config.json's `dl` becomes
    `<public_base>/blobs/sha256/{hex}`; None: relative to the registry, as today); `same_tree`: the
    static tree is where the blobs and bundles already are (the same bucket and prefix)."""

    def __init__(self, data: Path | None, *, meta: MetadataStore | None = None, blob_store: BlobStore | None = None,
                 static: StaticTarget | None = None, name: str = "registry", public_base: str | None = None,
                 same_tree: bool = False, static_full_first: bool = True) -> None:
        self.data = data
        if data is not None:
            data.mkdir(parents=True, exist_ok=True)
        elif meta is None or blob_store is None:
            raise ValueError("without a data dir, both stores must be given")
        self.blob_store: BlobStore = blob_store if blob_store is not None else FolderBlobs(data)  # type: ignore[arg-type]
        self.meta: MetadataStore = meta if meta is not None else SQLiteMetadata(data)  # type: ignore[arg-type]
        self.static, self.name, self.public_base, self.same_tree = static, name, public_base, same_tree
        self._static_behind = static_full_first  # a full write is due (at start, or after a failed write)
        self._names: tuple[int, dict[str, int]] | None = None  # (generation, bytes of each package's `names` row)
        self._pause_after_blob = float(os.environ.get(PAUSE_AFTER_BLOB_ENV) or 0)

    # -- passed through to the metadata store

    def generation(self) -> int:
        """Bumped by every publish, yank and trust change: cached renderings are valid while it stays the same."""
        return self.meta.generation()

    def get_meta(self, key: str) -> str | None:
        return self.meta.get_meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self.meta.set_meta(key, value)

    def add_token(self, token_hash: str, namespaces: list[str], publish: bool, admin: bool) -> int:
        """Store a token's hash; the first token of a namespace creates it."""
        return self.meta.add_token(token_hash, namespaces, publish, admin)

    def tokens(self) -> list[tuple[Token, float]]:
        """Every token's scope and creation time, by id (the hashes stay in the database)."""
        return self.meta.tokens()

    def remove_token(self, token_id: int) -> bool:
        """Revoke a token: its next request is 401, even on a running server (each request looks it up).

        Its id is never given to another token, so `token=#3` in a log means one token."""
        return self.meta.remove_token(token_id)

    def token_by_hash(self, token_hash: str) -> tuple[str, Token] | None:
        """(stored hash, token) for the caller's constant-time comparison, or None."""
        return self.meta.token_by_hash(token_hash)

    def policy(self, namespace: str | None = None) -> dict[str, Any]:
        """The trust policy as config.json has it (`{"ns/*": {...}}`), or the one namespace's part of it."""
        return self.meta.policy(namespace)

    def exists(self, name: str, version: str) -> bool:
        return self.meta.exists(name, version)

    # -- start-up

    def sweep(self, grace: float = 0) -> list[str]:
        """Remove what interrupted publishes left: blobs and bundles no row names and staged files, last
        written more than `grace` seconds ago (0: all, for a store only this process uses). The listing
        (slow on a bucket) happens outside any transaction; the check against the rows and the removal
        inside one, so no publish's `put` interleaves (the module docstring says why that is safe)."""
        old = self.blob_store.keys(grace)
        removed: list[str] = []
        if old:
            with self.meta.transaction() as txn:
                digests, bundles = txn.referenced()
                keep = {layout.blob_path(digest) for digest in digests} | bundles
                for key in old:
                    if key not in keep:
                        self.blob_store.remove(key)
                        removed.append(key)
        return removed + self.blob_store.clean_staged(grace)

    # -- trust policy: who may sign for a namespace

    def set_trust(self, namespace: str, *, issuer: str | None, identity: str | None, keys: list[str],
                  require: bool) -> None:
        """Replace the namespace's trusted publishers (config.json changes with the next request)."""
        with self.meta.transaction() as txn:
            txn.set_trust(namespace, issuer=issuer, identity=identity, keys=keys, require=require)
            try:  # as served (the API's path is longer than an export's null), under the longest name
                limits.check_config(self._render_config("x" * MAX_REGISTRY_NAME, API, txn.policy()))
            except limits.ClientLimit as exc:
                raise TrustTooLarge(exc.message) from None  # rolled back
            txn.bump()
        self.write_through(config=True)

    def remove_trust(self, namespace: str) -> bool:
        with self.meta.transaction() as txn:
            removed = txn.remove_trust(namespace)
            if removed:
                txn.bump()
        if removed:
            self.write_through(config=True)
        return removed

    # -- versions

    def publish(self, line: dict[str, Any], blob: bytes, token: Token, *, bundle: bytes = b"",
                policy: dict[str, Any] | None = None, recheck: Callable[[dict[str, Any]], object] | None = None
                ) -> None:
        """Blob and bundle in place first, then the row; Exists when (name, version) is taken (the loser leaves
        nothing).

        The bundle goes where the line's `signature.bundle` says. `policy` is the namespace's trust
        policy the publish was verified against: if it changed since, `recheck(current policy)`
        verifies again, inside the transaction, or raises (and nothing stays). A line, index file or
        `names` file cspm would not read is `limits.ClientLimit` (checked inside the transaction, so two
        publishes cannot together pass a limit each passes alone).
        """
        namespace = line["name"].split("/")[0]
        what = f"{line['name']} {line['version']}"
        files = [(blob, layout.blob_path(line["digest"]))]
        bundle_at = (line.get("signature") or {}).get("bundle")
        if bundle_at:
            files.append((bundle, bundle_at))
        staged: list[Staged] = []
        try:
            for content, key in files:  # the slow part (write + fsync, or upload) happens outside the transaction
                staged.append(self.blob_store.stage(content, key))
            with self.meta.transaction() as txn:
                brought: list[str] = []
                try:
                    for item, (_, key) in zip(staged, files, strict=True):
                        if self.blob_store.put(item, key):
                            brought.append(key)
                    if self._pause_after_blob:
                        log.warning("test hook: paused after the blob of %s %s", line["name"], line["version"])
                        time.sleep(self._pause_after_blob)
                    if recheck is not None:
                        current = txn.policy(namespace)
                        if current != (policy or {}):
                            recheck(current)
                    text = limits.check_line(line, what)
                    package = [row.line for row in txn.package(line["name"])]
                    names = self._check_client_limits(txn, line["name"], [*package, text], what)
                    txn.insert_version(line, text, token.id, bundle_at)
                except BaseException:
                    for key in brought:  # still inside the transaction: nobody else can have started using it
                        self.blob_store.remove(key)
                    raise
                generation = txn.bump()
            self._names = (generation, names)
        finally:
            for item in staged:
                self.blob_store.discard(item)
        self.write_through(packages=[line["name"]], bundle=(bundle_at, bundle) if bundle_at else None)

    def set_yanked(self, name: str, version: str, yanked: bool | str) -> dict[str, Any]:
        """Rewrite the version's line with a new `yanked` (the one field of a line that changes)."""
        with self.meta.transaction() as txn:
            row = txn.find(name, version)
            if row is None:
                raise NotFound(f"{name} {version}")
            line = json.loads(row.line)
            line["yanked"] = yanked
            what = f"{name} {line['version']}"
            text = limits.check_line(line, what)  # a reason makes the line longer
            package = [text if other.id == row.id else other.line for other in txn.package(name)]
            names = self._check_client_limits(txn, name, package, what)
            txn.update_line(row.id, text)
            generation = txn.bump()
        self._names = (generation, names)
        self.write_through(packages=[name])
        return line

    def _check_client_limits(self, txn: Transaction, name: str, package: list[str], what: str) -> dict[str, int]:
        """The package's index file (its lines as they will be) and the `names` file it changes must stay
        within what cspm reads; returns the `names` row sizes as they will be."""
        limits.check_index_file(sum(len(text.encode()) + 1 for text in package), what, name)
        sizes = self._names_sizes(txn)
        row = len(layout.names_row(layout.best_lines(package)[name]))
        limits.check_names(sum(sizes.values()) - sizes.get(name, 0) + row, what, row)
        return {**sizes, name: row}

    def _names_sizes(self, txn: Transaction) -> dict[str, int]:
        """Bytes of each package's row in `names`: rendered once, then kept up to date by publish and yank."""
        generation = txn.generation()
        if self._names is not None and self._names[0] == generation:
            return self._names[1]
        best = layout.best_lines(txn.lines())
        sizes = {name: len(layout.names_row(line)) for name, line in best.items()}
        self._names = (generation, sizes)
        return sizes

    # -- reads: the static layout, rendered by cspm.protocol.layout

    def config_file(self, name: str, api: str | None = API) -> bytes:
        return self._render_config(name, api, self.meta.policy())

    def _render_config(self, name: str, api: str | None, policy: dict[str, Any]) -> bytes:
        """config.json as `cspm.protocol.layout` renders it, with `dl` under `public_base` when there is one."""
        dl = layout.DL_TEMPLATE if self.public_base is None else f"{self.public_base}/{layout.DL_TEMPLATE}"
        return render_config(name, api, policy, dl)

    def blob_path(self, hexdigest: str) -> Path | str | None:
        """Where the blob of a published version is: a local file, a URL to redirect to, or None (a blob no
        committed row names is not served)."""
        if not self.meta.references(digest=f"sha256:{hexdigest}"):
            return None
        return self._located(layout.blob_path(f"sha256:{hexdigest}"))

    def bundle_path(self, filename: str) -> Path | str | None:
        """A bundle a published version names, as `blob_path`; one no committed row names is not served."""
        key = f"{layout.BUNDLES_DIR}/{filename}"
        if not layout.BUNDLE_FILE_RE.fullmatch(filename) or not self.meta.references(bundle=key):
            return None
        return self._located(key)

    def _located(self, key: str) -> Path | str | None:
        """A served file as a local path (FileResponse), else a URL: under `public_base`, or presigned."""
        local = getattr(self.blob_store, "local_path", None)
        if local is not None:
            found: Path | None = local(key)
            return found
        if self.public_base is not None:
            return f"{self.public_base}/{key}"
        return self.blob_store.url(key)

    # -- the write-through static tree

    def write_through(self, packages: list[str] | None = None, *, config: bool = False,
                      bundle: tuple[str, bytes] | None = None) -> None:
        """Write what a change committed changed to the static tree: the packages' index files, `names`, and
        config.json when asked (a trust change), from one snapshot labelled with its generation. The
        change is committed already, so a failure here is logged, not raised: the next write is then a
        full one (every file), as is the first of a process."""
        if self.static is None:
            return
        try:
            if bundle is not None and not self.same_tree:
                self.static.write_once(*bundle)
            full, self._static_behind = self._static_behind, False
            generation, rows, policy = self.meta.state()
            if full or config:
                self.static.write(layout.CONFIG_FILE, self._render_config(self.name, API, policy), generation)
            self.static.write(layout.NAMES_FILE, layout.render_names(row.line for row in rows), generation)
            lines: dict[str, list[str]] = {}
            for row in rows:
                lines.setdefault(row.name, []).append(row.line)
            for name in sorted(lines) if full else packages or []:
                if name in lines:
                    self.static.write(layout.index_path(name), layout.render_index(lines[name]), generation)
            if full and not self.same_tree:
                for row in rows:
                    self._copy_bundle(row.line)
        except (Unavailable, OSError, StorageError) as exc:
            self._static_behind = True
            log.error("the static tree (%s) is behind: %s (the next change writes every file again)",
                      self.static.where, exc)

    def _copy_bundle(self, line_text: str) -> None:
        assert self.static is not None
        key = (json.loads(line_text).get("signature") or {}).get("bundle")
        if not key:
            return
        source = self.blob_store.open(key)
        if source is None:
            raise Unavailable(f"{key} is named by a published version but missing from the blob store")
        with source:
            self.static.write_once(key, source.read(limits.MAX_BUNDLE + 1))

    def index_file(self, name: str) -> Rendered | None:
        rows = self.meta.package(name)
        if not rows:
            return None
        return Rendered(layout.render_index(row.line for row in rows), max(row.modified for row in rows))

    def names_file(self) -> Rendered:
        rows = self.meta.versions()
        modified = max((row.modified for row in rows), default=None)
        return Rendered(layout.render_names(row.line for row in rows), modified)

    def snapshot(self) -> tuple[list[VersionRow], dict[str, Any]]:
        """Every version in publish order, and the trust policy, from one snapshot (for export)."""
        return self.meta.snapshot()
