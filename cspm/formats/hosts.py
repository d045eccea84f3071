"""Host grants: which origins (scheme, host, port) a plug-in may reach through `http_fetch`.

An entry names a scheme because a secret bound to `https://api.example.com` must never travel over
plain http to the same name, and a port because another port is another service. The app file's
forms are turned into one canonical `scheme://host[:port]` once, when the app loads (`canonical`);
matching parses that form only.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_SCHEME = "https"  # a bare `host[:port]` entry: plain http must be asked for by name


class Pattern(NamedTuple):
    scheme: str
    host: str  # lower case, without a trailing dot; `*.example.com` for any name under example.com
    port: int  # the scheme's default port when the entry names none

    def __str__(self) -> str:
        port = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}"


def canonical(entry: str) -> str:
    """`api.example.com`, `*.example.com:8443`, `http://127.0.0.1:8080/v1`... as `scheme://host[:port]`.

    A bare entry means https; a path (an entry may be a whole base URL) grants its whole origin. An
    entry that cannot be read is kept lower-cased as it is: it then matches nothing.
    """
    pattern = _parse(entry.strip())
    return str(pattern) if pattern is not None else entry.strip().lower()


def _parse(entry: str) -> Pattern | None:
    scheme, sep, rest = entry.partition("://")
    if not sep:
        scheme, rest = DEFAULT_SCHEME, entry
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return None
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1]
    host, colon, port_text = authority.rpartition(":")
    if not colon:
        host, port_text = authority, ""
    if port_text and not (port_text.isascii() and port_text.isdigit()):  # "²".isdigit() is True
        return None
    port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
    host = host.lower().rstrip(".")
    if not host or not 0 < port < 65536 or any(c in host for c in "[]%\\ "):
        return None
    return Pattern(scheme, host, port)


@lru_cache(maxsize=1024)
def _pattern(entry: str) -> Pattern | None:
    return _parse(entry)


def match(entries: tuple[str, ...], scheme: str, host: str, port: int | None) -> str | None:
    """The first entry that admits this origin (`port` None: the scheme's default), else None."""
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return None
    host = host.lower().rstrip(".")
    port = DEFAULT_PORTS[scheme] if port is None else port
    for entry in entries:
        pattern = _pattern(entry)
        if pattern is None or pattern.scheme != scheme or pattern.port != port:
            continue
        name = pattern.host
        if name == host or (name.startswith("*.") and host.endswith(name[1:]) and host.count(".") >= 2):
            return entry
    return None

