"""Host grants: which hosts a plug-in may reach through `http_fetch`."""

from __future__ import annotations

from fnmatch import fnmatchcase


def host_allowed(patterns: tuple[str, ...], host: str, port: int | None) -> bool:
    """`api.example.com` (any port), `*.example.com`, or `127.0.0.1:8080` (that port only)."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        name, _, want_port = pattern.lower().partition(":")
        if want_port and (port is None or int(want_port) != port):
            continue
        if name == host or (name.startswith("*.") and fnmatchcase(host, name) and host.count(".") >= 2):
            return True
    return False
