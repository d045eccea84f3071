"""Registry tokens: `credentials.yaml` in the user config dir (mode 0600), or the environment.

CI passes a token as `CSPM_TOKEN` (any registry) or `CSPM_TOKEN_<NAME>` (one registry, the name
upper-cased with `-` as `_`), so it never has to be written to disk. A token is never printed.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import yaml

from cspm import paths
from cspm.errors import CspmError

FILE = "credentials.yaml"
TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-.~+/=]{8,512}$")


def path() -> Path:
    return paths.config_dir() / FILE


def _env_name(registry: str) -> str:
    return "CSPM_TOKEN_" + registry.upper().replace("-", "_")


def _load() -> dict[str, str]:
    try:
        data = yaml.safe_load(path().read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as exc:
        raise CspmError(f"{path()} cannot be read: {exc}", hint="delete it and `cspm login` again") from None
    if not isinstance(data, dict):
        raise CspmError(f"{path()} is not a mapping of registry names to tokens",
                        hint="delete it and `cspm login` again")
    return {str(k): str(v) for k, v in data.items()}


def check_token(token: str) -> str:
    token = token.strip()
    if not TOKEN_RE.match(token):
        raise CspmError("that does not look like a registry token (8-512 printable characters, no spaces)")
    return token


def token_for(registry: str) -> str | None:
    return os.environ.get(_env_name(registry)) or os.environ.get("CSPM_TOKEN") or _load().get(registry)


def save(registry: str, token: str) -> Path:
    tokens = _load()
    tokens[registry] = check_token(token)
    target = path()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".credentials.", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(tokens, handle)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def forget(registry: str) -> bool:
    tokens = _load()
    if registry not in tokens:
        return False
    del tokens[registry]
    target = path()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".credentials.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(tokens, handle)
    os.replace(tmp, target)
    return True
