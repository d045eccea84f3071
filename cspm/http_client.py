"""cspm's HTTP clients, built one way, and the one retry policy of the package manager's requests.

Every client cspm makes (downloads, index files, publish, the runtime's plug-in gateway) comes from
`build`: the same user agent (`cspm/<version>`), timeouts (`timeout`, overridden by
$CSPM_HTTP_TIMEOUT like Cargo's CARGO_HTTP_TIMEOUT), connection limits, and no environment
(`trust_env=False`: no proxy, `.netrc` or CA bundle from variables can reroute or authenticate a
request behind the config's back). Redirects are the caller's choice: the package manager's reads
follow them, writes and the gateway check every hop themselves.

`RETRY` is the single retry policy for fetch, index and publish: which failures are asked again
(`Retryable`), how many times, the backoff between attempts, and how much of a server's
`Retry-After` is honoured. A request that may have changed something on the server (a write) is
asked again only when the failure proves it was not processed (`idempotent=False`). The gateway of
the runtime never retries: a plug-in's request is the plug-in's to repeat.

httpx is imported on the first request only (~40 ms): a warm `cspm run` never needs it. A client's
TLS context (certifi's CA bundle, ~45 ms to load) is made on its first https:// request and shared
by every client of the process (`scheme_transport`): an install from an http:// or loopback registry
never loads it, and the second client never loads it again. Verification is unchanged.
"""

from __future__ import annotations

import functools
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from cspm import __version__
from cspm.errors import CspmError

if TYPE_CHECKING:
    import ssl

    import httpx

USER_AGENT = f"cspm/{__version__}"
TIMEOUT_ENV = "CSPM_HTTP_TIMEOUT"
MAX_CONNECTIONS = 16  # per client: fetch's 8 download threads and the index prefetch's 8 share one
MAX_KEEPALIVE = 8
T = TypeVar("T")


def timeout(default: tuple[float, float]) -> httpx.Timeout:
    """`default` (seconds for each read, write and pool wait; connect seconds), or every limit set to
    $CSPM_HTTP_TIMEOUT seconds."""
    import httpx

    value = os.environ.get(TIMEOUT_ENV, "").strip()
    if not value:
        return httpx.Timeout(default[0], connect=default[1])
    try:
        seconds = float(value)
    except ValueError:
        raise CspmError(f"{TIMEOUT_ENV}={value!r} is not a number of seconds") from None
    if not 0 < seconds <= 3600:
        raise CspmError(f"{TIMEOUT_ENV}={value!r}: use a number of seconds between 0 and 3600")
    return httpx.Timeout(seconds)


def build(*, timeout: httpx.Timeout | float, follow_redirects: bool, headers: dict[str, str] | None = None,
          **options: Any) -> httpx.Client:
    """A client with cspm's user agent, limits and no environment; `options` go to httpx.Client as
    they are (a `transport`, a `cookies` jar), and a caller's headers win over the defaults."""
    import httpx

    options.setdefault("limits", httpx.Limits(max_connections=MAX_CONNECTIONS,
                                              max_keepalive_connections=MAX_KEEPALIVE))
    if "transport" not in options and "verify" not in options and "mounts" not in options:
        options["transport"] = scheme_transport(options.pop("limits"), http2=bool(options.get("http2")))
    return httpx.Client(timeout=timeout, follow_redirects=follow_redirects, trust_env=False,
                        headers={"User-Agent": USER_AGENT, **(headers or {})}, **options)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The verifying TLS context every client shares (certifi's roots, hostnames checked), made once.
    SSLContext is safe to share between threads and connections."""
    import httpx

    return httpx.create_ssl_context(verify=True, trust_env=False)


def _scheme_transport_class() -> type:
    import httpx

    class SchemeTransport(httpx.BaseTransport):
        """https:// through a verifying transport (made on the first such request, with `tls_context`);
        http:// through one that never loads CA roots. Routed by each request's own scheme, so a
        redirect to https:// is verified like any https:// request."""

        def __init__(self, limits: httpx.Limits, http2: bool = False) -> None:
            self._limits, self._http2 = limits, http2
            self._plain: httpx.HTTPTransport | None = None
            self._tls: httpx.HTTPTransport | None = None
            self._lock = threading.Lock()

        def _transport(self, secure: bool) -> httpx.HTTPTransport:
            with self._lock:
                if secure:
                    if self._tls is None:
                        self._tls = httpx.HTTPTransport(verify=tls_context(), limits=self._limits,
                                                        http2=self._http2, trust_env=False)
                    return self._tls
                if self._plain is None:  # its TLS context is never used: no https:// request comes here
                    self._plain = httpx.HTTPTransport(verify=False, limits=self._limits, trust_env=False)
                return self._plain

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            scheme = request.url.scheme
            if scheme not in ("http", "https"):
                raise httpx.UnsupportedProtocol(f"the URL's scheme {scheme!r} is not http or https",
                                                request=request)
            return self._transport(scheme == "https").handle_request(request)

        def close(self) -> None:
            with self._lock:
                for transport in (self._plain, self._tls):
                    if transport is not None:
                        transport.close()
                self._plain = self._tls = None

    return SchemeTransport


def scheme_transport(limits: httpx.Limits, http2: bool = False) -> httpx.BaseTransport:
    """The transport `build` gives a client (the class is made once, where httpx is first imported)."""
    transport: httpx.BaseTransport = _scheme_class()(limits, http2)
    return transport


_scheme_class = functools.cache(_scheme_transport_class)


class Retryable(Exception):
    """One attempt failed in a way that may pass: `status` is the HTTP status (None: the connection
    failed), `retry_after` the server's Retry-After header, `sent` whether the request may have
    reached the server (a write is repeated only when it cannot have)."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: str | None = None,
                 sent: bool = True) -> None:
        super().__init__(reason)
        self.reason, self.status, self.retry_after, self.sent = reason, status, retry_after, sent


class GaveUp(Exception):
    """Every attempt failed (or the server asked for more patience than the policy has)."""

    def __init__(self, last: Retryable, attempts: int, why: str) -> None:
        super().__init__(f"{last.reason} ({why})")
        self.last, self.attempts, self.why = last, attempts, why


class RetryPolicy:
    """Attempts, backoff (doubled per attempt, with ±50 % jitter: many clients, one registry), the
    longest Retry-After waited for, and the answers that say a request was not acted on. (A plain
    class: a dataclass costs a millisecond of `cspm run` start-up.)"""

    __slots__ = ("attempts", "backoff_s", "max_retry_after_s", "unprocessed")

    def __init__(self, attempts: int = 4, backoff_s: float = 0.25, max_retry_after_s: float = 10.0,
                 unprocessed: frozenset[int] = frozenset({429, 503})) -> None:
        self.attempts, self.backoff_s, self.max_retry_after_s = attempts, backoff_s, max_retry_after_s
        self.unprocessed = unprocessed

    def with_attempts(self, attempts: int) -> RetryPolicy:
        return RetryPolicy(attempts, self.backoff_s, self.max_retry_after_s, self.unprocessed)

    def retries_status(self, status: int, *, idempotent: bool = True) -> bool:
        """Any 5xx and 429 for a read; for a write only the answers that say it was not acted on."""
        if not idempotent:
            return status in self.unprocessed
        return status == 429 or status >= 500

    def wait(self, attempt: int, retry_after: str | None) -> float | None:
        """Seconds before attempt `attempt + 1` (0-based `attempt` just failed); None: do not wait for
        it (the server's Retry-After is longer than `max_retry_after_s`)."""
        asked = retry_after_seconds(retry_after)
        if asked is not None:
            return asked if asked <= self.max_retry_after_s else None
        return self.backoff_s * (2 ** attempt) * (0.5 + random.random())

    def run(self, attempt: Callable[[], T], *, idempotent: bool = True) -> T:
        """`attempt()` until it returns, raises something else than Retryable, or the policy gives up
        (GaveUp, carrying the last failure)."""
        for number in range(self.attempts):
            try:
                return attempt()
            except Retryable as exc:
                if not idempotent and exc.sent and exc.status not in self.unprocessed:
                    raise GaveUp(exc, number + 1, "not repeated: the request may have been processed") from None
                if number == self.attempts - 1:
                    raise GaveUp(exc, self.attempts, f"after {self.attempts} attempts") from None
                pause = self.wait(number, exc.retry_after)
                if pause is None:
                    raise GaveUp(exc, number + 1, f"the server asks to retry after {exc.retry_after[:40]} s"
                                 if exc.retry_after else "") from None
                _sleep(pause)
        raise AssertionError("unreachable: the last attempt returns or raises")


RETRY = RetryPolicy()
_sleep = time.sleep  # a test records the waits here


def policy() -> RetryPolicy:
    """The policy in force (read at call time, so a test can make it quick)."""
    return RETRY


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    import email.utils  # only on a server's Retry-After: never on the warm path

    value = value.strip()[:64]
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def check_status(response: httpx.Response, *, idempotent: bool = True) -> None:
    """Raise Retryable when the policy asks `response`'s status again."""
    if policy().retries_status(response.status_code, idempotent=idempotent):
        raise Retryable(f"HTTP {response.status_code}", status=response.status_code,
                        retry_after=response.headers.get("Retry-After"))


@contextmanager
def transient_errors() -> Iterator[None]:
    """Connection failures inside the block become Retryable (`sent=False` when nothing can have
    reached the server: the connection was never made)."""
    import httpx

    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise Retryable(str(exc) or type(exc).__name__, sent=False) from None
    except httpx.TransportError as exc:
        raise Retryable(str(exc) or type(exc).__name__) from None
