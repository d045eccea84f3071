"""Resolve `secrets:` (env:NAME, file:PATH) once at load; values live only in the host."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cspm.errors import CspmError
from cspm.formats.app import Secret

MAX_SECRET_BYTES = 16 * 1024


@dataclass(frozen=True)
class ResolvedSecret:
    spec: Secret
    value: str

    def __repr__(self) -> str:  # never print a value, even by accident
        return f"ResolvedSecret({self.spec.name!r}, <redacted>)"

    @property
    def header_value(self) -> str:
        return self.spec.format.replace("{}", self.value)


def resolve(owner: str, spec: Secret, base_dir: Path) -> ResolvedSecret:
    kind, _, ref = spec.source.partition(":")
    if kind == "env":
        value = os.environ.get(ref)
        if value is None:
            raise CspmError(f"secret `{spec.name}` of {owner}: environment variable {ref} is not set",
                            hint=f"export {ref}=... before `cspm run`")
    else:
        path = Path(ref)
        try:
            path = path.expanduser()
            path = path if path.is_absolute() else base_dir / path
            if path.stat().st_size > MAX_SECRET_BYTES:
                raise CspmError(f"secret `{spec.name}` of {owner}: {path} is larger than 16 KiB")
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError, RuntimeError) as exc:  # RuntimeError: `~user` of no user
            raise CspmError(f"secret `{spec.name}` of {owner}: cannot read {path}: {exc}") from None
    if not value or any(ch in value for ch in "\r\n\0"):
        raise CspmError(f"secret `{spec.name}` of {owner} is empty or spans several lines")
    return ResolvedSecret(spec, value)
