"""What WASI plug-ins write to their stdout and stderr, kept instead of lost (a Go fatal error's reason).

Extism (extism-sys 1.41) has no per-instance stdio: with EXTISM_ENABLE_WASI_OUTPUT set when an
instance is made, a guest's fd 1 and 2 are the process's own; without it both are discarded. So while
a one-shot command runs, `capture()` points the process's fd 1 and 2 at a pipe and Python's
sys.stdout/sys.stderr at duplicates of the real ones (cspm's own output is unchanged). A reader
thread keeps the last lines the guests wrote (bounded), and under `-v` also passes them on to the real
stderr, never to stdout (a plug-in must not be able to write into `--json` output). A "crashed (wasm
trap)" error then quotes those lines (`last_lines`). The chat loop does not capture: readline needs
the real fd 1, so there `-v` shows the output as it comes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

from cspm.runtime import compiler

KEEP_BYTES = 8192  # of the guests' latest output
QUOTED_LINES = 5  # of it in an error message
QUOTED_CHARS = 600
DRAIN_SECONDS = 0.2  # at most, for the reader to take what a trapped guest wrote just before


class _Capture:
    """Reads the pipe in a thread. `take` must return everything written before it was called, but the
    reader may have read some bytes and not yet kept them; so `take` writes a marker (random, so no
    guest can forge it) into the pipe behind them, and waits until the reader has kept it."""

    def __init__(self, read_fd: int, write_fd: int, forward_fd: int | None) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd  # the process's fd 1, the pipe's write end while capturing
        self.forward_fd = forward_fd
        self.kept = bytearray()
        self.marks = 0  # markers the reader has seen
        self.marker = b"\0cspm-drain-" + os.urandom(8).hex().encode() + b"\0"
        self.seen = threading.Condition()
        self.thread = threading.Thread(target=self._pump, name="cspm-guest-output", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        pending = b""  # the end of what was read, when it may be the start of a marker
        while True:
            try:
                data = os.read(self.read_fd, 65536)
            except OSError:
                return
            if not data:  # the pipe closed: what was held back was not a marker
                with self.seen:
                    self.kept += pending
                    del self.kept[:-KEEP_BYTES]
                return
            data, pending = pending + data, b""
            marks = data.count(self.marker)
            data = data.replace(self.marker, b"")
            for size in range(min(len(self.marker) - 1, len(data)), 0, -1):  # a marker split across reads
                if self.marker.startswith(data[-size:]):
                    data, pending = data[:-size], data[-size:]
                    break
            with self.seen:
                self.kept += data
                del self.kept[:-KEEP_BYTES]
                self.marks += marks
                self.seen.notify_all()
            if self.forward_fd is not None and data:
                with contextlib.suppress(OSError):
                    os.write(self.forward_fd, data)

    def take(self) -> bytes:
        """What was kept since the last take: everything written before this call (waiting at most
        DRAIN_SECONDS for the reader to reach the marker)."""
        with self.seen:
            wanted = self.marks + 1
        try:
            os.write(self.write_fd, self.marker)
        except OSError:
            wanted = 0
        with self.seen:
            self.seen.wait_for(lambda: self.marks >= wanted, timeout=DRAIN_SECONDS)
            data = bytes(self.kept)
            self.kept.clear()
        return data


_active: _Capture | None = None


def last_lines() -> str | None:
    """The guests' last lines of output since the previous call, as one line for an error message;
    None when nothing is captured or nothing was written."""
    if _active is None:
        return None
    text = _active.take().decode("utf-8", "replace")
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()][-QUOTED_LINES:]
    if not lines:
        return None
    quoted = " | ".join(lines)
    return quoted if len(quoted) <= QUOTED_CHARS else "…" + quoted[-QUOTED_CHARS:]


def _reopen(stream: TextIO, fd: int) -> TextIO:
    """A text stream on fd written like `stream` (which may be a progress bar's proxy of it)."""
    return os.fdopen(fd, "w", buffering=1, encoding=getattr(stream, "encoding", None) or "utf-8",
                     errors=getattr(stream, "errors", None) or "backslashreplace", closefd=True)


@contextlib.contextmanager
def capture(forward: bool) -> Iterator[None]:
    """For the duration: guests' stdout and stderr kept (and with `forward`, shown on stderr)."""
    global _active
    if _active is not None:
        yield
        return
    compiler.show_wasi_output()
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    read_fd, write_fd = os.pipe()
    old_out, old_err = sys.stdout, sys.stderr
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    sys.stdout, sys.stderr = _reopen(old_out, saved_out), _reopen(old_err, saved_err)
    _active = _Capture(read_fd, 1, saved_err if forward else None)
    try:
        yield
    finally:
        capturing, _active = _active, None
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os.dup2(saved_out, 1)  # the pipe's last write ends close: the reader sees its end
        os.dup2(saved_err, 2)
        capturing.thread.join(timeout=1)
        os.close(read_fd)
        mine = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = old_out, old_err
        for stream in mine:
            with contextlib.suppress(OSError, ValueError):
                stream.close()
