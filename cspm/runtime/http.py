"""`http_fetch`: the only way out of the sandbox, to granted origins, with secrets injected.

What the gateway guarantees (docs/security.md, "The http_fetch gateway"):
- an origin is scheme + host + port: a grant or secret bound to https never covers plain http;
- no cookie outlives one request, so one component never rides on another's session;
- the plug-in cannot route the request (Host, hop-by-hop and proxy headers are refused);
- every form in which this host put a secret on the wire is redacted from whatever comes back,
  error messages included, before the plug-in, a trace or a log can see it;
- the whole exchange ends by the call's wall-clock deadline, however slowly the server answers.

`http_open` (HttpGateway.open, HttpStream, Streams) is the same gateway with the body read in pieces:
the same checks and injection, redaction that holds back a possible secret's start until it is whole,
bounded streams per call, each closed when its call ends (docs/abi.md, "Streaming HTTP").
"""

from __future__ import annotations

import codecs
import json
import re
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from cspm.formats import hosts
from cspm.runtime.secrets import ResolvedSecret

if TYPE_CHECKING:  # imported on a plug-in's first request: most apps never make one (~40 ms a start)
    import httpcore
    import httpx

MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_STREAM_BYTES = 8 * 1024 * 1024  # the body of one `http_open` stream, over all its reads
MAX_OPEN_STREAMS = 4  # streams open at once in one call into a plug-in
READ_BYTES = 64 * 1024  # `http_read` without `max_bytes`
TIMEOUT_S = 30.0  # when the caller names no deadline of its own
MAX_TIMEOUT_S = 3600.0  # longest wait for one network operation
CONNECT_TIMEOUT_S = 10.0
MAX_MESSAGE_CHARS = 300  # an error message (to the plug-in and in the trace) is cut here, after redaction
MAX_HEADERS = 100
WRITE_PIECE = 16 * 1024  # a request body is sent in pieces, each bounded by the time left
REDACTED = "[redacted]"

# Headers that decide where a request goes, or how the connection is framed: the host sets them.
REFUSED_HEADERS = frozenset({
    "host", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length",
    "expect", "forwarded", "via", "x-real-ip", "x-host", "x-original-url", "x-rewrite-url", "x-http-host-override",
    "alt-used", "http2-settings",
})
REFUSED_PREFIXES = ("proxy-", "x-forwarded-")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")  # RFC 9110 field name
_VALUE = re.compile(r"[\t\x20-\x7e]{0,16384}")  # printable ASCII: no CR, LF, NUL or other controls


Placeholders = tuple[tuple[str, ResolvedSecret], ...]  # (placeholder text, its secret): ABI 0 plug-ins


class FetchRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _no_cookies() -> Any:
    """A cookie jar that stores nothing and sends nothing: httpx's client keeps one otherwise. Made on
    the first request, so http.cookiejar (~15 ms with urllib and http.client) is not a warm run's cost."""
    from http.cookiejar import CookieJar, CookiePolicy

    class NoCookies(CookiePolicy):
        netscape, rfc2965, hide_cookie2 = True, False, False

        def set_ok(self, cookie: Any, request: Any) -> bool:
            return False

        def return_ok(self, cookie: Any, request: Any) -> bool:
            return False

        def domain_return_ok(self, domain: str, request: Any) -> bool:
            return False

        def path_return_ok(self, path: str, request: Any) -> bool:
            return False

    return CookieJar(policy=NoCookies())


def _transport_refusal(exc: Exception, deadline: float, function: str, context: str = "") -> FetchRefused:
    """A transport failure as the ABI words it: `timeout` when the call's own deadline has passed (the
    plug-in's time, not the server's fault), else `http_error` naming what httpx saw."""
    import httpx

    if isinstance(exc, httpx.TimeoutException) and time.monotonic() >= deadline:
        return FetchRefused("timeout", f"{function}: the call's time limit ran out waiting for the server")
    prefix = f"{function}: {context}" if function == "http_read" else context
    return FetchRefused("http_error", f"{prefix}{type(exc).__name__}: {exc}")


class HttpGateway:
    """One pooled client for the whole app, without a cookie jar; redirects are not followed (each
    hop must be granted), and every socket operation is cut at the calling plug-in's deadline."""

    def __init__(self) -> None:
        self._client: httpx.Client | None = None
        self._deadline = threading.local()  # the deadline of the fetch this thread is making

    @property
    def client(self) -> httpx.Client:
        import httpcore
        import httpx

        if self._client is None:
            transport = httpx.HTTPTransport(trust_env=False)
            if not isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):
                raise RuntimeError("this httpx keeps no httpcore pool in HTTPTransport._pool: update cspm")
            transport._pool = httpcore.ConnectionPool(  # the same pool, on a backend that knows the deadline
                ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=_deadline_backend(self))
            from cspm import http_client

            # built as every cspm client is (cspm.http_client), but never retried: a plug-in's request is
            # the plug-in's to repeat (it may not be idempotent)
            self._client = http_client.build(transport=transport, follow_redirects=False, timeout=TIMEOUT_S,
                                             cookies=_no_cookies())
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def time_left(self, timeout: float | None, error: type[Exception]) -> float:
        """The time a socket operation may take: its own timeout, cut to what is left of the deadline."""
        deadline = getattr(self._deadline, "value", None)
        if deadline is None:
            return timeout if timeout is not None else TIMEOUT_S
        left = deadline - time.monotonic()
        if left <= 0:
            raise error("the call's time limit ran out")
        return left if timeout is None else min(timeout, left)

    def fetch(self, request: dict[str, Any], granted: tuple[str, ...], secrets: tuple[ResolvedSecret, ...],
              deadline: float | None = None, placeholders: Placeholders = ()) -> dict[str, Any]:
        """`deadline` (time.monotonic()): when the calling plug-in's time is up; the fetch ends by then.
        `placeholders`: (text, secret) pairs an ABI 0 plug-in was given in config instead of the secret
        (cspm.runtime.abi0); each is swapped for the secret's value where the plug-in wrote it, only for
        the secret's origins, and is redacted from the answer with the value.

        A refusal's message has every secret form redacted and is at most MAX_MESSAGE_CHARS long.
        """
        deadline = time.monotonic() + TIMEOUT_S if deadline is None else deadline
        redactor = _Redactor(secrets)
        if placeholders:
            redactor.add(text for text, _ in placeholders)
        try:
            return self._fetch(request, granted, secrets, deadline, redactor, placeholders)
        except FetchRefused as exc:
            raise FetchRefused(exc.code, _short(redactor.text(str(exc)))) from None

    def _fetch(self, request: dict[str, Any], granted: tuple[str, ...], secrets: tuple[ResolvedSecret, ...],
               deadline: float, redactor: _Redactor, placeholders: Placeholders = ()) -> dict[str, Any]:
        import httpx

        method, url, headers, content, timeout = _prepare(request, granted, secrets, deadline, redactor,
                                                          placeholders)
        self._deadline.value = deadline
        try:
            with self.client.stream(method, url, headers=headers, timeout=timeout, content=content) as response:
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise FetchRefused("http_error", f"response larger than {MAX_RESPONSE_BYTES} bytes")
                    if time.monotonic() >= deadline:
                        raise FetchRefused("timeout", "http_fetch: the call's time limit ran out while the "
                                                      "answer was arriving")
                    chunks.append(chunk)
                raw_headers = response.headers.raw
                encoding = response.encoding
                status = response.status_code
        except httpx.HTTPError as exc:
            raise _transport_refusal(exc, deadline, "http_fetch") from None
        finally:
            self._deadline.value = None
        text = _decode(redactor.bytes(b"".join(chunks)), encoding)
        return {"status": status, "headers": _shown_headers(raw_headers, redactor), "body": redactor.text(text)}

    def open(self, request: dict[str, Any], granted: tuple[str, ...], secrets: tuple[ResolvedSecret, ...],
             deadline: float) -> HttpStream:
        """`http_open`: the request goes out under every rule of `fetch`; the answer's status and headers
        come back at once and its body is read later, piece by piece, with `HttpStream.read`."""
        import httpx

        redactor = _Redactor(secrets)
        try:
            if time.monotonic() >= deadline:
                raise FetchRefused("timeout", "http_open: the call's time limit ran out before the request")
            method, url, headers, content, timeout = _prepare(request, granted, secrets, deadline, redactor)
            self._deadline.value = deadline
            try:
                built = self.client.build_request(method, url, headers=headers, content=content, timeout=timeout)
                response = self.client.send(built, stream=True)
            except httpx.HTTPError as exc:
                raise _transport_refusal(exc, deadline, "http_open") from None
            finally:
                self._deadline.value = None
        except FetchRefused as exc:
            raise FetchRefused(exc.code, _short(redactor.text(str(exc)))) from None
        return HttpStream(self, response, redactor, deadline)


class HttpStream:
    """One open answer body, read in pieces of text. A secret is redacted even when it arrives split
    over two network reads: each stage (bytes, then text after the charset decoder) holds back the
    last few bytes or characters that could still be the start of one, until more arrive or the body ends."""

    def __init__(self, gateway: HttpGateway, response: httpx.Response, redactor: _Redactor,
                 deadline: float) -> None:
        self.status = response.status_code
        self.headers = _shown_headers(response.headers.raw, redactor)
        self._gateway, self._response, self._redactor, self._deadline = gateway, response, redactor, deadline
        self._pieces = response.iter_bytes()
        self._raw = _Holdback(redactor.bytes_pattern, REDACTED.encode(), redactor.longest_bytes)
        self._decoder = codecs.getincrementaldecoder(_text_codec(response.charset_encoding))(errors="replace")
        self._text = _Holdback(redactor.text_pattern, REDACTED, redactor.longest_chars)
        self._ready = ""
        self._size = 0
        self.ended = False  # the body was read to its end (or failed): the connection is released

    def read(self, max_bytes: int) -> dict[str, Any]:
        """At most `max_bytes` bytes of text (UTF-8, never a split character; at least one character unless done);
        `done` once the body has ended and everything was handed out."""
        try:
            while not self._ready and not self.ended:
                self._pull()
        except FetchRefused as exc:
            self.close()
            raise FetchRefused(exc.code, _short(self._redactor.text(str(exc)))) from None
        data = _utf8_prefix(self._ready, max_bytes)
        self._ready = self._ready[len(data):]
        return {"data": data, "done": self.ended and not self._ready}

    def _pull(self) -> None:
        import httpx

        if time.monotonic() >= self._deadline:
            raise FetchRefused("timeout", "http_read: the call's time limit ran out while the answer was arriving")
        self._gateway._deadline.value = self._deadline
        try:
            piece = next(self._pieces, None)
        except httpx.HTTPError as exc:
            raise _transport_refusal(exc, self._deadline, "http_read", "the answer broke off: ") from None
        finally:
            self._gateway._deadline.value = None
        final = piece is None
        if piece is not None:
            self._size += len(piece)
            if self._size > MAX_STREAM_BYTES:
                raise FetchRefused("too_large", f"http_read: the answer is larger than {MAX_STREAM_BYTES} bytes")
        text = self._decoder.decode(self._raw.feed(piece or b"", final), final)
        self._ready += self._text.feed(text, final)
        if final:
            self.close()

    def close(self) -> None:
        if not self.ended:
            self.ended = True
            self._response.close()


class Streams:
    """The streams one call into a plug-in has open; all closed when that call ends (engine `_call`)."""

    def __init__(self) -> None:
        self._open: dict[int, HttpStream] = {}
        self._next = 1

    def add(self, stream: HttpStream) -> int:
        if not self.room():
            stream.close()
            self.add_refused()
        number, self._next = self._next, self._next + 1
        self._open[number] = stream
        return number

    def room(self) -> bool:
        return len(self._open) < MAX_OPEN_STREAMS

    @staticmethod
    def add_refused() -> None:
        raise FetchRefused("too_large", f"http_open: {MAX_OPEN_STREAMS} streams are already open in this "
                                        f"call (close one with http_close)")

    def read(self, number: int, max_bytes: int) -> dict[str, Any]:
        stream = self._open.get(number)
        if stream is None:
            raise FetchRefused("bad_request", f"http_read: stream {number} is not open in this call")
        try:
            answer = stream.read(max_bytes)
        except FetchRefused:
            del self._open[number]
            raise
        if answer["done"]:
            del self._open[number]
        return answer

    def close(self, number: int) -> None:
        stream = self._open.pop(number, None)
        if stream is not None:
            stream.close()

    def close_all(self) -> None:
        while self._open:
            self._open.popitem()[1].close()


def _prepare(request: dict[str, Any], granted: tuple[str, ...], secrets: tuple[ResolvedSecret, ...],
             deadline: float, redactor: _Redactor, placeholders: Placeholders = ()
             ) -> tuple[str, httpx.URL, list[tuple[str, str]], bytes | None, httpx.Timeout]:
    """Check a request against the grants and inject the secrets bound to its origin: what `fetch` and
    `open` send. The query forms of injected secrets join the redactor."""
    import httpx

    if time.monotonic() >= deadline:
        raise FetchRefused("timeout", "http_fetch: the call's time limit ran out before the request")
    try:
        url = httpx.URL(request["url"])
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchRefused("bad_request", f"invalid URL: {exc}") from None
    if url.scheme not in hosts.DEFAULT_PORTS or not url.raw_host:
        raise FetchRefused("not_granted", f"only http and https URLs can be fetched, not {request['url']!r}")
    host = url.raw_host.decode("ascii", "replace")  # what goes on the wire (IDNA), not a look-alike
    if hosts.match(granted, url.scheme, host, url.port) is None:
        shown = host if url.port is None else f"{host}:{url.port}"
        raise FetchRefused("not_granted", f"host {shown} is not granted to this plug-in over {url.scheme} "
                                          f"(granted: {_listed(granted)})")
    headers = _plugin_headers(request.get("headers") or {})
    body = request.get("body")
    if placeholders:
        url, headers, body = _swap_placeholders(placeholders, granted, url, headers, body)
    for secret in secrets:
        if not _bound_here(secret, granted, url, host):
            continue
        if secret.spec.query:
            url = url.copy_set_param(secret.spec.query, secret.value)
            redactor.add(_query_values(url, secret.spec.query))
        else:
            headers = [(k, v) for k, v in headers if k.lower() != secret.spec.header.lower()]
            headers.append((secret.spec.header, secret.header_value))
    try:
        content = body.encode("utf-8") if body is not None else None
    except UnicodeEncodeError:
        raise FetchRefused("bad_request", "http_fetch: the body is not valid Unicode text") from None
    left = deadline - time.monotonic()
    wait = max(min(left, MAX_TIMEOUT_S), 0.001)
    timeout = httpx.Timeout(wait, connect=min(wait, CONNECT_TIMEOUT_S), pool=wait)
    return request.get("method", "GET"), url, headers, content, timeout


def _bound_here(secret: ResolvedSecret, granted: tuple[str, ...], url: httpx.URL, host: str) -> bool:
    """Whether `secret` may go to this request's origin: its own `hosts`, else the plug-in's grant."""
    bound = secret.spec.hosts if secret.spec.hosts is not None else granted
    return hosts.match(bound, url.scheme, host, url.port) is not None


def _swap_placeholders(placeholders: Placeholders, granted: tuple[str, ...], url: httpx.URL,
                       headers: list[tuple[str, str]], body: str | None
                       ) -> tuple[httpx.URL, list[tuple[str, str]], str | None]:
    """Each placeholder the request carries (in the URL's path or query, a header value or the body) is
    replaced by its secret's value, when the secret is bound to the request's origin (its `hosts`, else
    the grant that admitted it); otherwise the request is refused and nothing is sent. A placeholder
    in the URL's host, or in a header name, is refused: the value would go on the wire as a name."""
    import httpx

    host = url.raw_host.decode("ascii", "replace")
    for placeholder, secret in placeholders:
        in_url = placeholder in str(url)
        in_headers = any(placeholder in value for _, value in headers)
        in_body = body is not None and placeholder in body
        if any(placeholder.lower() in name.lower() for name, _ in headers) or placeholder.lower() in host.lower():
            raise FetchRefused("bad_request", f"http_fetch: the placeholder of secret `{secret.spec.name}` may "
                                              f"only be in the URL's path or query, a header value or the body")
        if not (in_url or in_headers or in_body):
            continue
        if not _bound_here(secret, granted, url, host):
            shown = host if url.port is None else f"{host}:{url.port}"
            raise FetchRefused("not_granted", f"http_fetch: secret `{secret.spec.name}` is not bound to {shown} "
                                              f"over {url.scheme}; its placeholder is not replaced there, and the "
                                              f"request was not sent")
        if in_url:
            swapped = httpx.URL(str(url).replace(placeholder, quote(secret.value, safe="")))
            if (swapped.scheme, swapped.raw_host, swapped.port) != (url.scheme, url.raw_host, url.port):
                raise FetchRefused("bad_request", "http_fetch: a secret placeholder changed the URL's origin")
            url = swapped
        if in_headers:
            headers = [(name, value.replace(placeholder, secret.value)) for name, value in headers]
            if not all(_VALUE.fullmatch(value) for _, value in headers):
                raise FetchRefused("bad_request", f"http_fetch: secret `{secret.spec.name}` is not printable "
                                                  f"ASCII, so it cannot go into a header")
        if in_body and body is not None:
            body = body.replace(placeholder, secret.value)
    return url, headers, body


def _shown_headers(raw_headers: list[tuple[bytes, bytes]], redactor: _Redactor) -> dict[str, str]:
    """Header names in lower case, repeated ones joined with `, `, every secret form redacted."""
    out: dict[str, str] = {}
    for name, value in raw_headers:
        key = redactor.text(_header_text(redactor.bytes(name)).lower())
        shown = redactor.text(_header_text(redactor.bytes(value)))
        out[key] = f"{out[key]}, {shown}" if key in out else shown
    return out


class _Holdback:
    """Redaction of a stream: a form can only be recognised whole, so the last `longest - 1` items
    (bytes or characters) wait for the next piece unless a match that starts earlier covers them."""

    def __init__(self, pattern: Any, replacement: Any, longest: int) -> None:
        self._pattern, self._replacement, self._keep = pattern, replacement, max(longest - 1, 0)
        self._pending: Any = None

    def feed(self, data: Any, final: bool) -> Any:
        buffer = data if self._pending is None else self._pending + data
        if self._pattern is None:
            self._pending = None
            return buffer
        cut = len(buffer) if final else max(len(buffer) - self._keep, 0)
        out, position = [], 0
        for match in self._pattern.finditer(buffer):
            if match.start() >= cut:
                break
            out += [buffer[position:match.start()], self._replacement]
            position = match.end()
        cut = max(cut, position)
        out.append(buffer[position:cut])
        self._pending = buffer[cut:]
        return buffer[:0].join(out)


def _utf8_prefix(text: str, max_bytes: int) -> str:
    """The longest start of `text` whose UTF-8 is at most `max_bytes`, but at least one character."""
    head = text[:max_bytes]
    encoded = head.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return head
    shorter = encoded[:max_bytes].decode("utf-8", "ignore")
    return shorter or text[:1]


def _text_codec(encoding: str | None) -> str:
    """The declared charset when it is a known text codec, else utf-8 (as `_decode`)."""
    try:
        if encoding and codecs.lookup(encoding)._is_text_encoding:  # type: ignore[attr-defined]
            return encoding
    except (LookupError, ValueError):
        pass
    return "utf-8"


def _plugin_headers(given: dict[str, Any]) -> list[tuple[str, str]]:
    """The plug-in's headers, refused (`bad_request`) when they would route or frame the request, or are
    not plain ASCII text: the host sets Host from the granted URL and owns the connection."""
    if len(given) > MAX_HEADERS:
        raise FetchRefused("bad_request", f"http_fetch: more than {MAX_HEADERS} headers")
    out = []
    for name, value in given.items():
        if not _TOKEN.fullmatch(name):
            raise FetchRefused("bad_request", f"http_fetch: header name {name[:40]!r} is not an ASCII token")
        lower = name.lower()
        if lower in REFUSED_HEADERS or lower.startswith(REFUSED_PREFIXES):
            raise FetchRefused("bad_request", f"http_fetch: a plug-in may not set the `{name}` header "
                                              f"(the host sets routing and connection headers)")
        if not isinstance(value, str) or not _VALUE.fullmatch(value):
            raise FetchRefused("bad_request", f"http_fetch: the value of header `{name}` must be printable "
                                              f"ASCII without CR, LF or NUL, at most 16384 characters")
        out.append((name, value))
    return out


def _query_values(url: httpx.URL, name: str) -> list[str]:
    """The value of query parameter `name` exactly as it is written in the URL httpx sends."""
    prefix = quote_plus(name) + "="
    query = url.query.decode("ascii", "replace")
    return [part[len(prefix):] for part in query.split("&") if part.startswith(prefix)]


class _Redactor:
    """Finds every form in which this host could have sent a secret: the raw value (headers carry it
    inside their format, `Bearer {}`), its percent-encodings (`%2F` and `%2f`, `%20` and `+`), its JSON
    escape, and the query value exactly as it went on the wire."""

    def __init__(self, secrets: tuple[ResolvedSecret, ...]) -> None:
        self._forms: set[str] = set()
        for secret in secrets:
            value = secret.value
            self._forms |= {value, quote(value, safe=""), quote(value, safe="/"), quote_plus(value),
                            quote_plus(value, safe="/"), json.dumps(value)[1:-1],
                            json.dumps(value, ensure_ascii=False)[1:-1]}
        self._compile()

    def add(self, forms: Iterable[str]) -> None:
        new = {f for f in forms if f} - self._forms
        if new:
            self._forms |= new
            self._compile()

    def _compile(self) -> None:
        forms = sorted((f for f in self._forms if f), key=len, reverse=True)  # longest first
        patterns = [re.sub(r"%([0-9A-Fa-f])([0-9A-Fa-f])", _any_case_hex, re.escape(f)) for f in forms]
        self._text = re.compile("|".join(patterns)) if patterns else None
        self._bytes = re.compile("|".join(patterns).encode("utf-8")) if patterns else None
        self.longest_chars = max((len(f) for f in forms), default=0)
        self.longest_bytes = max((len(f.encode("utf-8")) for f in forms), default=0)

    @property
    def text_pattern(self) -> re.Pattern[str] | None:
        return self._text

    @property
    def bytes_pattern(self) -> re.Pattern[bytes] | None:
        return self._bytes

    def text(self, text: str) -> str:
        return self._text.sub(REDACTED, text) if self._text is not None else text

    def bytes(self, data: bytes) -> bytes:
        """Before decoding: a body declared in another charset must not hand back the secret's bytes."""
        return self._bytes.sub(REDACTED.encode(), data) if self._bytes is not None else data


def _any_case_hex(match: re.Match[str]) -> str:
    high, low = match.group(1), match.group(2)
    return f"%[{high.upper()}{high.lower()}][{low.upper()}{low.lower()}]"


def _decode(data: bytes, encoding: str | None) -> str:
    """The body as text in its declared charset; one that is unknown or no text codec (`hex`) is utf-8."""
    try:
        if encoding and codecs.lookup(encoding)._is_text_encoding:  # type: ignore[attr-defined]
            return data.decode(encoding, errors="replace")
    except (LookupError, ValueError):
        pass
    return data.decode("utf-8", errors="replace")


def _header_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _listed(granted: tuple[str, ...]) -> str:
    shown = ", ".join(granted[:3])
    return (shown + f" and {len(granted) - 3} more" if len(granted) > 3 else shown) or "none"


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS - 1] + "…"


def _deadline_backend(gateway: HttpGateway) -> httpcore.NetworkBackend:
    """httpcore's own sync backend, with each connect, read, write and TLS handshake cut to the time
    left before the deadline: a server that trickles a byte at a time cannot stretch a call."""
    import httpcore

    class Stream(httpcore.NetworkStream):
        def __init__(self, inner: httpcore.NetworkStream) -> None:
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._inner.read(max_bytes, gateway.time_left(timeout, httpcore.ReadTimeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            for start in range(0, len(buffer), WRITE_PIECE):
                piece = buffer[start:start + WRITE_PIECE]
                self._inner.write(piece, gateway.time_left(timeout, httpcore.WriteTimeout))

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                      timeout: float | None = None) -> httpcore.NetworkStream:
            return Stream(self._inner.start_tls(ssl_context, server_hostname,
                                                gateway.time_left(timeout, httpcore.ConnectTimeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class Backend(httpcore.NetworkBackend):
        def __init__(self) -> None:
            self._inner = httpcore.SyncBackend()

        def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                        local_address: str | None = None, socket_options: Any = None) -> httpcore.NetworkStream:
            return Stream(self._inner.connect_tcp(host, port, gateway.time_left(timeout, httpcore.ConnectTimeout),
                                                  local_address, socket_options))

        def connect_unix_socket(self, path: str, timeout: float | None = None,
                                socket_options: Any = None) -> httpcore.NetworkStream:
            raise httpcore.ConnectError("http_fetch does not use unix sockets")

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    return Backend()
