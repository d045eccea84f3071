"""What cspm clients refuse to read, refused here first: the one place the server takes cspm's limits.

A published version is immutable, so a line, an index file, a `names` file or a `config.json` that
a client would refuse (cspm/formats/index_line.py, cspm/index/source.py, cspm/index/query.py) would
make a version, a package or the whole registry uninstallable for good. Every limit is imported
from cspm itself, never copied, so a client and this server can never disagree about one.
"""

from __future__ import annotations

from typing import Any

from cspm.formats.index_line import MAX_FILE_BYTES, MAX_LINE_BYTES, BadIndexLine, parse_line, to_line
from cspm.formats.plan import MAX_MODULE_BYTES as MAX_WASM_BYTES
from cspm.index.query import MAX_NAMES_FILE, MAX_NAMES_ROW
from cspm.index.source import MAX_CONFIG_FILE, MAX_INDEX_FILE
from cspm.protocol import kinds
from cspm.protocol.layout import MAX_BUNDLE

# an index file is read whole (source.py) and then parsed (index_line.py): the smaller limit holds
MAX_INDEX_BYTES = min(MAX_INDEX_FILE, MAX_FILE_BYTES)
__all__ = ["MAX_BUNDLE", "MAX_INDEX_BYTES", "ClientLimit", "check_config", "check_index_file", "check_line",
           "check_module", "check_names"]


class ClientLimit(Exception):
    """What would be published is past a limit of cspm's clients (400 `client_limit`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def check_line(line: dict[str, Any], what: str) -> str:
    """The line as the index file holds it (canonical, without its newline), once cspm's own parser read it."""
    text = to_line(line)
    size = len(text.encode())
    if size > MAX_LINE_BYTES:
        raise ClientLimit(f"{what}: its index line would be {size:,} bytes, but cspm reads lines of at most "
                          f"{MAX_LINE_BYTES:,} bytes: make the manifest smaller (input_schema, config, "
                          f"description)")
    try:
        parse_line(text.encode(), line["name"], "index line")  # as a client reads it: bytes of a line
    except BadIndexLine as exc:
        raise ClientLimit(f"{what}: cspm would not read its index line ({exc.message})") from None
    return text


def check_index_file(size: int, what: str, name: str) -> None:
    if size > MAX_INDEX_BYTES:
        raise ClientLimit(f"{what}: index/{name} would be {size:,} bytes, but cspm reads index files of at most "
                          f"{MAX_INDEX_BYTES:,} bytes: this package has no room for another version here")


def check_names(size: int, what: str, row: int = 0) -> None:
    """`size`: the whole `names` file with this package's row; `row`: that row (a longer one is skipped)."""
    if row > MAX_NAMES_ROW:
        raise ClientLimit(f"{what}: its line of the registry's `names` file would be {row:,} bytes, but cspm reads "
                          f"lines of at most {MAX_NAMES_ROW:,} bytes (a shorter description makes room)")
    if size > MAX_NAMES_FILE:
        raise ClientLimit(f"{what}: the registry's `names` file would be {size:,} bytes, but cspm reads it up to "
                          f"{MAX_NAMES_FILE:,} bytes (shorter descriptions make room)")


def check_config(body: bytes) -> None:
    if len(body) > MAX_CONFIG_FILE:
        raise ClientLimit(f"config.json would be {len(body):,} bytes, but cspm reads it up to {MAX_CONFIG_FILE:,} "
                          f"bytes: trust fewer keys, or fewer namespaces separately")


def check_module(kind: str, size: int, what: str) -> None:
    if kinds.is_module(kind) and size > MAX_WASM_BYTES:
        raise ClientLimit(f"{what}: the module is {size:,} bytes, but cspm loads modules of at most "
                          f"{MAX_WASM_BYTES:,} bytes")
