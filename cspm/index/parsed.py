"""Index files parsed once: the checked form of each file, kept by the hash of its bytes.

Parsing an index file is most of a cold resolve: every line goes through `bounded_json`, the
`index-line.json` schema check and PEP 440 parsing (~45 µs a line; 1,800 lines for a 90-name app).
An index file changes rarely, so `parse` keeps what `index_line.parse_file` made of it: the known
fields of each good line (already checked, in version order, duplicates settled) and the message of
each bad one, in `<cache>/index/.parsed/<slot>/<key>`, keyed by the SHA-256 of the exact bytes together
with the name the file must describe, where it was read from, the schema and the checking code. The
slot is that name and source's: writing a record removes the older ones beside it, so the folder keeps
one record per index file read, not one per version of it.
Any other bytes, a schema change or an upgrade of cspm is another key, so the file is checked again;
a record that is not what `parse` writes counts as absent. Only versions and specifiers are parsed
again from a record (they are objects, not JSON). See docs/security.md ("Index files checked once").

Writing is best effort, like the index cache: a record that cannot be written only costs a parse.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from cspm import atomicfile, schemas
from cspm.cachedir import Bucket
from cspm.errors import BadIndexLine
from cspm.formats import bounded_json, index_line
from cspm.formats.index_line import IndexEntry, entry_of, parse_file

FOLDER = ".parsed"  # never a registry's folder: those are `<name>-<12 hex digits>` (cspm.index.source)
RECORD_VERSION = 1
MAX_RECORD = 64 * 1024 * 1024  # a 16 MiB index file's record is about as large; past this, parse


@cache
def _salt() -> bytes:
    """What else the checked form depends on: the record layout, the schema, and the code that checks
    (index_line and bounded_json as they are on disk now: an upgrade or a patch is another key)."""
    digest = hashlib.sha256(f"{RECORD_VERSION}\0".encode())
    digest.update(json.dumps(schemas.load("index-line.json"), sort_keys=True).encode())
    for module in (index_line, bounded_json):
        try:
            digest.update(Path(module.__file__ or "").read_bytes())
        except OSError:  # no source on disk (a frozen build): never trust a record then
            digest.update(os.urandom(16))
    return digest.digest()


def key(content: bytes, expected_name: str, source: str) -> str:
    digest = hashlib.sha256(_salt())
    for part in (expected_name.encode(), source.encode()):
        digest.update(len(part).to_bytes(4, "big") + part)
    digest.update(content)
    return digest.hexdigest()


def _slot(expected_name: str, source: str) -> str:
    digest = hashlib.sha256()
    for part in (expected_name.encode(), source.encode()):
        digest.update(len(part).to_bytes(4, "big") + part)
    return digest.hexdigest()[:32]


def record_path(root: Path, content: bytes, expected_name: str, source: str) -> Path:
    return root / FOLDER / _slot(expected_name, source) / key(content, expected_name, source)


def _prune(path: Path) -> None:
    """The records of older bytes of the same file: never read again (best effort)."""
    with contextlib.suppress(OSError):
        for sibling in path.parent.iterdir():
            if sibling.name != path.name and len(sibling.name) == 64 and sibling.is_file():
                sibling.unlink(missing_ok=True)  # not a writer's temporary file: those have other names


def parse(content: bytes, expected_name: str, source: str, root: Path | None = None
          ) -> tuple[list[IndexEntry], list[str]]:
    """`index_line.parse_file(content, expected_name, source)`, from the record of these bytes when
    there is one; made (and recorded) otherwise."""
    folder = root if root is not None else Bucket.INDEX.path()
    path = record_path(folder, content, expected_name, source)
    found = _read(path, expected_name, source)
    if found is not None:
        return found
    entries, problems = parse_file(content, expected_name, source)
    record = {"entries": [e.raw for e in entries], "problems": problems}
    with contextlib.suppress(OSError, TypeError, ValueError):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomicfile.write(path, json.dumps(record, separators=(",", ":")), durable=False)
        _prune(path)
    return entries, problems


def _read(path: Path, expected_name: str, source: str) -> tuple[list[IndexEntry], list[str]] | None:
    try:
        with path.open("rb") as handle:
            text = handle.read(MAX_RECORD + 1)
        if len(text) > MAX_RECORD:
            return None
        record: Any = json.loads(text)
    except (OSError, ValueError, RecursionError):
        return None
    if not (isinstance(record, dict) and isinstance(record.get("entries"), list)
            and isinstance(record.get("problems"), list) and all(isinstance(p, str) for p in record["problems"])):
        return None
    entries = []
    try:
        for data in record["entries"]:
            if not isinstance(data, dict) or data.get("name") != expected_name:
                return None
            entries.append(entry_of(data, source))
    except (BadIndexLine, KeyError, TypeError, AttributeError):
        return None
    return entries, list(record["problems"])
