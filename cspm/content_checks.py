"""What each kind of package must look like, checked on a downloaded file before the store keeps it.

The download is still a temp file (`fetch.Download.check`); each check reads what it needs in
bounded pieces: a module by its section headers, a model by its 8-byte header, a data package in
1 MiB pieces through an incremental UTF-8 decoder, an app package only once it is known to be
small. The messages are those of the in-memory checks (`verify.interface`, `models`, `apppkg`).
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from pathlib import Path

from cspm import apppkg
from cspm.errors import BadAppPackage
from cspm.models import MAX_DATA, ModelError, check_gguf
from cspm.verify.interface import check_module_file

CHUNK = 1 << 20


def check_module(path: Path, what: str, *, wasi_declared: bool, exports: Sequence[str] | None = None,
                 imports: Sequence[str] | None = None) -> None:
    check_module_file(path, what, wasi_declared=wasi_declared, exports=exports, imports=imports)


def check_model(path: Path, what: str) -> None:
    with path.open("rb") as handle:
        check_gguf(handle.read(8), what)


def check_data(path: Path, what: str) -> None:
    """UTF-8 text of at most MAX_DATA bytes, as `models.check_data`, without reading it whole."""
    if path.stat().st_size > MAX_DATA:
        raise ModelError(f"{what} is larger than {MAX_DATA >> 20} MiB")
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes fed to the decoder before this piece
    with path.open("rb") as handle:
        while True:
            piece = handle.read(CHUNK)
            pending = len(decoder.getstate()[0])  # an unfinished character carried over from the last piece
            try:
                decoder.decode(piece, final=not piece)
            except UnicodeDecodeError as exc:
                raise ModelError(f"{what} is not UTF-8 text (byte {offset - pending + exc.start})") from None
            if not piece:
                return
            offset += len(piece)


def check_app(path: Path, what: str) -> None:
    """An app package: its size is checked before it is read (it is at most a megabyte)."""
    if path.stat().st_size > apppkg.MAX_BUNDLE:
        raise BadAppPackage(f"{what}: the app package is larger than {apppkg.MAX_BUNDLE} bytes")
    with path.open("rb") as handle:
        apppkg.check(handle.read(apppkg.MAX_BUNDLE + 1), what)
