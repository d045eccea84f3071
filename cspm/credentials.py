"""Registry tokens: `credentials.yaml` in the user config dir (mode 0600), or the environment.

CI passes a token as `CSPM_TOKEN` (any registry) or `CSPM_TOKEN_<NAME>` (one registry, the name
upper-cased with `-` as `_`), so it never has to be written to disk. A token is never printed.

A token is bound to the origin (scheme, host, port) of the registry URL the user configured, and
`authorization` is the one place that puts it on a request: a URL that a registry's own documents
name (`api` in config.json, a redirect) never receives it on another origin, or a registry could
hand its users' tokens to any host it likes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from cspm import atomicfile, paths
from cspm.errors import CspmError, TokenOriginError

if TYPE_CHECKING:
    from cspm.formats.userconfig import Registry

FILE = "credentials.yaml"
TOKEN_RE = re.compile(r"[A-Za-z0-9_\-.~+/=]{8,512}")  # fullmatch: `$` also matches before a final newline
DEFAULT_PORTS = {"http": 80, "https": 443}


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
    if not TOKEN_RE.fullmatch(token):
        raise CspmError("that does not look like a registry token (8-512 printable characters, no spaces)")
    return token


def token_for(registry: str) -> str | None:
    """The token from the environment or the file, checked like a saved one (never a header injection)."""
    env = _env_name(registry)
    where, token = next(((f"${name}", os.environ[name]) for name in (env, "CSPM_TOKEN") if os.environ.get(name)),
                        (str(path()), None))
    token = token or _load().get(registry)
    if not token:
        return None
    try:
        return check_token(token)
    except CspmError:
        raise CspmError(f"the token of registry {registry} in {where} does not look like a registry token "
                        f"(8-512 printable characters, no spaces)", hint=f"set it again (`cspm login {registry}`)"
                        ) from None


Origin = tuple[str, str, int]


def origin(url: str) -> Origin:
    """(scheme, host, port) of `url`, parsed as httpx parses it for the request (never another parser,
    so `https://good\\@evil/` cannot mean one host here and another on the wire)."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return ("", "", 0)
    scheme = parsed.scheme.lower()
    return (scheme, parsed.host.lower(), parsed.port or DEFAULT_PORTS.get(scheme, 0))


def show_origin(value: Origin) -> str:
    scheme, host, port = value
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" + ("" if DEFAULT_PORTS.get(scheme) == port else f":{port}")


def check_origin(registry: Registry, url: str, came_from: str) -> None:
    """Refuse `url` unless it is on the origin of the registry URL the user configured.

    `came_from` says who named the URL (for the message): "its config.json names the write API at".
    """
    own, target = origin(registry.url), origin(url)
    if own[0] in DEFAULT_PORTS and own == target:
        return
    raise TokenOriginError(
        f"registry {registry.name}: {came_from} {url[:300]}, on another origin ({show_origin(target)}) than "
        f"the registry's URL ({show_origin(own)}); cspm sends the token of {registry.name} only to "
        f"{show_origin(own)}",
        hint=f"if you trust {show_origin(target)}, add it as a registry of its own (`cspm registry add NAME "
             f"{show_origin(target)}`, `cspm login NAME`) and use it: `cspm publish --registry NAME`; else tell "
             f"the registry's operator")


def authorization(registry: Registry, url: str, came_from: str = "the request goes to",
                  token: str | None = None) -> dict[str, str]:
    """The `Authorization` header for a request to `url`: the only way a token leaves this machine.

    `token` is one not saved yet (`cspm login` checks it with the registry before saving it); by
    default it is the registry's own (`token_for`). Either way it goes only to the registry's origin.
    """
    check_origin(registry, url, came_from)
    token = check_token(token) if token is not None else token_for(registry.name)
    if not token:
        raise CspmError(f"no token for registry {registry.name}",
                        hint=f"run `cspm login {registry.name}` (or set CSPM_TOKEN)")
    return {"Authorization": f"Bearer {token}"}


def save(registry: str, token: str) -> Path:
    tokens = _load()
    tokens[registry] = check_token(token)
    target = path()
    atomicfile.write(target, yaml.safe_dump(tokens))  # 0600: only the user reads tokens
    return target


def forget(registry: str) -> bool:
    tokens = _load()
    if registry not in tokens:
        return False
    del tokens[registry]
    atomicfile.write(path(), yaml.safe_dump(tokens))
    return True
