"""Errors a user can act on. The CLI prints these without a traceback and exits non-zero.

The exit status is a property of the error's category, set here and nowhere else: `ExitCode` is the
table of docs/cli.md, and each category class below carries its code, so a new error picks the class
that says what went wrong and its status follows (a test checks the table against the docs).
"""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    """Every status `cspm` exits with (docs/cli.md, "Exit status")."""

    OK = 0
    FAILED = 1  # the work itself failed: a plug-in, a registry, a resolution, a signature
    USAGE = 2  # the input is wrong: the command line, a file, a name or version spec in it, a stale lock
    BUG = 70  # EX_SOFTWARE: a bug in cspm
    IO = 74  # EX_IOERR: a file could not be written (space, quota, read-only, permission)
    NOT_APPROVED = 77  # EX_NOPERM: a published app's capabilities were not approved
    INTERRUPTED = 130  # Ctrl-C


class CspmError(Exception):
    """Base of every error that carries a message meant for the user."""

    exit_code: int = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(CspmError):
    """What the user gave is wrong (a missing file, a name that does not exist, a bad version spec):
    fixing the input, not retrying, is the way out."""

    exit_code = ExitCode.USAGE


class FormatError(InputError):
    """A file that does not parse or does not match its schema; names file, line and field."""

    def __init__(self, file: str, message: str, line: int | None = None, field: str | None = None,
                 hint: str | None = None) -> None:
        where = file if line is None else f"{file}:{line}"
        text = f"{where}: {field}: {message}" if field else f"{where}: {message}"
        super().__init__(text, hint)
        self.file = file
        self.line = line
        self.field = field


class WriteError(CspmError):
    """A file could not be written (no space, quota, read-only, permission); writes are atomic
    renames, so the previous file is still whole."""

    exit_code = ExitCode.IO


class PluginError(CspmError):
    """A plug-in that cannot be loaded or that failed while running."""


class CapabilityError(CspmError):
    """A plug-in asked for something it was not granted."""


class PluginFileMissing(PluginError, InputError):
    """An app's `plugin_name` names a file that is not there: the app file is wrong (exit 2)."""


_OS_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free some space (or `cspm cache clean`) and run it again"),
    errno.EDQUOT: ("disk quota exceeded", "free some space (or `cspm cache clean`) and run it again"),
    errno.EROFS: ("the file system is read-only", "run it where the files can be written"),
    errno.EACCES: ("permission denied", "check the owner and mode of that path"),
    errno.EPERM: ("operation not permitted", "check the owner and mode of that path"),
}


def write_error(exc: OSError, where: str | None = None) -> WriteError | None:
    """A failed write said the same way wherever it happens (a lock, the store, a cache), or None for
    an OSError that is not about the disk."""
    if exc.errno not in _OS_ERRORS:
        return None
    what, hint = _OS_ERRORS[exc.errno]
    place = where or exc.filename
    return WriteError(what + (f" ({place})" if place else ""), hint)
