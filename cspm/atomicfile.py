"""Replace a file whole: the one way cspm writes a file a reader or a crash could see half of.

A temporary file in the same folder, then renamed over the target: a reader sees the old file or the
new one, and a failed write leaves no temporary file behind and names the file it was writing
(OSError.filename), so the CLI can say which.

One fsync policy, for every writer (this module, the store's blob writer, the registry server's
blobs): a **durable** write (a lock, app.yaml, the user config, a stored blob, a published file)
fsyncs the file before the rename and its folder after it, so after a crash the target is the old
file or the whole new one, and a finished write survives a power loss. A cache write (a compiled
module marker, an index cache entry) skips both: it may be lost, never torn.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write(path: Path, data: bytes | str, *, mode: int | None = None, durable: bool = True) -> None:
    """`mode`: the file's permissions (mkstemp creates 0600, right for secrets); `durable`: see above."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        publish(Path(tmp), path, mode=mode, durable=durable)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def publish(tmp: Path, path: Path, *, mode: int | None = None, durable: bool = True) -> None:
    """Rename a finished temporary file (already fsync'd when `durable`) over `path`, then make the
    rename itself durable. For writers that stream into their own temporary file (the store)."""
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new entry in `folder` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the file itself was fsync'd
    finally:
        os.close(fd)
