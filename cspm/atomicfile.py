"""Replace a file whole: the one way cspm writes a file a reader or a crash could see half of.

A temporary file in the same folder, flushed and fsync'd, then renamed over the target: a reader
sees the old file or the new one, a crash leaves the old one, and a failed write leaves no temporary
file behind and names the file it was writing (OSError.filename), so the CLI can say which.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write(path: Path, data: bytes | str, *, mode: int | None = None, durable: bool = True) -> None:
    """`mode`: the file's permissions (mkstemp creates 0600, right for secrets); `durable`: fsync
    before the rename (off for caches, which may be lost but never torn)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
