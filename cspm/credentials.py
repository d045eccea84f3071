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
from typing import TYPE_CHECKING, Any

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


def _load() -> dict[str, Any]:
    try:
        data = yaml.safe_load(path().read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as exc:
        raise CspmError(f"{path()} cannot be read: {exc}", hint="delete it and `cspm login` again") from None
    if not isinstance(data, dict):
        raise CspmError(f"{path()} is not a mapping of registry names to tokens",
                        hint="delete it and `cspm login` again")
    # a token is a string; an OCI registry's login is {username, password}
    return {str(k): v if isinstance(v, dict) else str(v) for k, v in data.items()}


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
    saved = _load().get(registry)
    token = token or (saved if isinstance(saved, str) else None)
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


def save(registry: str, token: str, username: str | None = None) -> Path:
    """`username`: an OCI registry's login (username and password or token), kept as a pair."""
    tokens = _load()
    tokens[registry] = (check_token(token) if username is None
                        else {"username": check_secret(username, "username"), "password": check_secret(token)})
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


# -- OCI registries: a username and a password (or token), as Docker keeps them

USERNAME_ENV = "CSPM_USERNAME"
DEFAULT_USERNAME = "cspm"  # registries that take a token as the password (GHCR, Harbor robots) ignore it
MAX_SECRET = 4096


def check_secret(value: str, what: str = "password") -> str:
    """A username or password as a registry takes it: printable, one line, bounded (it goes in a header)."""
    if not value or len(value) > MAX_SECRET or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise CspmError(f"that {what} cannot be used: 1-{MAX_SECRET} printable characters on one line")
    return value


def oci_login(registry: Registry) -> tuple[tuple[str, str] | None, str]:
    """(username, password) for an OCI registry, and where it came from (for messages).

    In order: the environment (`CSPM_TOKEN_<NAME>` or `CSPM_TOKEN` as the password, `CSPM_USERNAME_<NAME>`
    or `CSPM_USERNAME` as the username), `cspm login NAME --username U`, then Docker's config.json
    (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, its `auths` for the registry's host).
    None where nothing is configured: the registry may allow anonymous reads.
    """
    env = _env_name(registry.name)
    for name in (env, "CSPM_TOKEN"):
        if os.environ.get(name):
            user_env = env.replace("CSPM_TOKEN_", USERNAME_ENV + "_", 1)
            username = os.environ.get(user_env) or os.environ.get(USERNAME_ENV) or DEFAULT_USERNAME
            return (check_secret(username, "username"), check_secret(os.environ[name].strip())), f"${name}"
    saved = _load().get(registry.name)
    if isinstance(saved, dict) and isinstance(saved.get("username"), str) and isinstance(saved.get("password"), str):
        return (check_secret(saved["username"], "username"), check_secret(saved["password"])), str(path())
    if isinstance(saved, str):
        return (DEFAULT_USERNAME, saved), str(path())
    return _docker_login(registry)


def _docker_login(registry: Registry) -> tuple[tuple[str, str] | None, str]:
    import base64
    import json

    folder = Path(os.environ["DOCKER_CONFIG"]) if os.environ.get("DOCKER_CONFIG") else Path.home() / ".docker"
    file = folder / "config.json"
    try:
        with open(file, "rb") as handle:
            data = json.loads(handle.read(1 << 20))
    except FileNotFoundError:
        return None, "nowhere"
    except (OSError, ValueError) as exc:
        raise CspmError(f"{file} cannot be read: {exc}", hint="fix it, or log in with `cspm login`") from None
    host = oci_host(registry.url)
    auths = data.get("auths") if isinstance(data, dict) else None
    entry = auths.get(host) or auths.get(f"https://{host}") if isinstance(auths, dict) else None
    if not isinstance(entry, dict):
        return None, "nowhere"
    if isinstance(entry.get("auth"), str):
        try:
            username, _, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise CspmError(f"{file}: the login of {host} is not base64 of `user:password`",
                            hint=f"run `docker login {host}` again, or `cspm login {registry.name}`") from None
        return (check_secret(username, "username"), check_secret(password)), str(file)
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return (check_secret(entry["username"], "username"), check_secret(entry["password"])), str(file)
    return None, "nowhere"


def oci_host(url: str) -> str:
    """`host[:port]` of an `oci://` or `oci+http://` registry URL, as Docker's config.json keys it."""
    from urllib.parse import urlsplit

    return urlsplit(url).netloc.lower()
