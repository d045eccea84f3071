"""Bearer tokens: created once and shown once, kept as SHA-256 only, compared in constant time.

A token is 256 random bits, so an unsalted hash is enough: nothing in the database lets anyone
publish. Failed authentications are counted per client address and, past a limit, refused with
429 and `Retry-After` before any token is even looked at. No token is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import threading
import time
from collections import OrderedDict, deque

from cspm_registry.storage import Storage, Token

PREFIX = "csr_"
TOKEN_RE = re.compile(r"csr_[A-Za-z0-9_-]{43}")  # fullmatch
MAX_FAILURES = 10
WINDOW_S = 60.0
MAX_TRACKED_CLIENTS = 10_000


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(storage: Storage, namespaces: list[str], *, publish: bool, admin: bool) -> tuple[int, str]:
    """(id, token): the caller shows the token once; only its hash is stored."""
    token = new_token()
    return storage.add_token(token_hash(token), namespaces, publish, admin), token


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def authenticate(storage: Storage, token: str | None) -> Token | None:
    """The token's scope, or None for a missing, malformed or unknown token."""
    if token is None or not TOKEN_RE.fullmatch(token):
        return None
    presented = token_hash(token)
    found = storage.token_by_hash(presented)
    if found is None or not hmac.compare_digest(found[0], presented):
        return None
    return found[1]


class FailureLimiter:
    """At most `limit` failed authentications per client in a sliding window of `window` seconds."""

    def __init__(self, limit: int = MAX_FAILURES, window: float = WINDOW_S) -> None:
        self.limit, self.window = limit, window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Seconds this client must wait (0: it may try)."""
        now = time.monotonic()
        with self._lock:
            times = self._failures.get(client)
            if times is None:
                return 0
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) < self.limit:
                return 0
            return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, client: str) -> None:
        with self._lock:
            times = self._failures.pop(client, None) or deque()
            times.append(time.monotonic())
            self._failures[client] = times  # most recent last
            while len(self._failures) > MAX_TRACKED_CLIENTS:
                self._failures.popitem(last=False)
