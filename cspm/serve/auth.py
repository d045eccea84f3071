"""API keys of `cspm serve`: from a file (one a line) and/or CSPM_SERVE_API_KEYS (comma or newline
separated), checked as `Authorization: Bearer KEY` (what OpenAI's SDKs send).

Keys are compared as SHA-256 digests with `hmac.compare_digest` against every key, without stopping
at the first match: the time taken says neither which key matched nor how long the keys are.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cspm.errors import InputError

ENV = "CSPM_SERVE_API_KEYS"
MAX_KEY_FILE_BYTES = 1024 * 1024
MAX_KEY_CHARS = 512
MAX_HEADER_CHARS = 1024


class Keys:
    """The accepted keys; with none, every request is let in (a loopback server for one user)."""

    def __init__(self, keys: list[str]) -> None:
        self._digests = [hashlib.sha256(key.encode()).digest() for key in keys]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def allows(self, authorization: str | None) -> bool:
        if not self._digests:
            return True
        if authorization is None or len(authorization) > MAX_HEADER_CHARS:
            return False
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        digest = hashlib.sha256(presented.strip().encode()).digest()
        found = False
        for key in self._digests:
            found |= hmac.compare_digest(key, digest)
        return found


def load(key_file: Path | None, environ: dict[str, str] | None = None) -> Keys:
    """The keys of `--api-key-file` and the environment; a file that is unreadable, too large or has
    a key with spaces or control characters is refused (a mistyped file must not open the server)."""
    keys: list[str] = []
    env = (environ if environ is not None else os.environ).get(ENV, "")
    keys += _parse(env.replace(",", "\n"), ENV)
    if key_file is not None:
        try:
            if key_file.stat().st_size > MAX_KEY_FILE_BYTES:
                raise InputError(f"{key_file} is larger than {MAX_KEY_FILE_BYTES // 1024} KiB: not a key file")
            text = key_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
            raise InputError(f"cannot read the API key file {key_file}: {reason}") from None
        found = _parse(text, str(key_file))
        if not found:
            raise InputError(f"the API key file {key_file} has no key", hint="write one key a line")
        keys += found
    return Keys(keys)


def _parse(text: str, where: str) -> list[str]:
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        if len(key) > MAX_KEY_CHARS or not key.isprintable() or any(c.isspace() for c in key):
            raise InputError(f"{where}: key {number} is not a key (at most {MAX_KEY_CHARS} printable "
                             f"characters without spaces)")
        keys.append(key)
    return keys
