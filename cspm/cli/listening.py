"""What the commands that listen (`cspm serve`, `cspm web --serve`) share: whether an address is
loopback (elsewhere they warn that anyone who can reach it can use the app) and how a failed bind is
worded."""

from __future__ import annotations

import ipaddress

from cspm.errors import InputError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cannot_listen(command: str, host: str, port: int, exc: OSError | UnicodeError) -> InputError:
    """The error for a bind that failed (a port in use, an address this machine does not have)."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return InputError(f"cannot listen on {host}:{port}: {reason}",
                      hint=f"choose another port: `{command} --port 0` picks a free one")
