"""Errors a user can act on. The CLI prints these without a traceback and exits non-zero."""

from __future__ import annotations


class CspmError(Exception):
    """Base of every error that carries a message meant for the user."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class FormatError(CspmError):
    """A file that does not parse or does not match its schema; names file, line and field."""

    exit_code = 2

    def __init__(self, file: str, message: str, line: int | None = None, field: str | None = None,
                 hint: str | None = None) -> None:
        where = file if line is None else f"{file}:{line}"
        text = f"{where}: {field}: {message}" if field else f"{where}: {message}"
        super().__init__(text, hint)
        self.file = file
        self.line = line
        self.field = field


class PluginError(CspmError):
    """A plug-in that cannot be loaded or that failed while running."""


class CapabilityError(CspmError):
    """A plug-in asked for something it was not granted."""
