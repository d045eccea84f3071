"""`http_fetch`: the only way out of the sandbox, to granted hosts, with secrets injected."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cspm.runtime.hosts import host_allowed
from cspm.runtime.secrets import ResolvedSecret

if TYPE_CHECKING:  # imported on a plug-in's first request: most apps never make one (~40 ms a start)
    import httpx

MAX_RESPONSE_BYTES = 8 * 1024 * 1024
TIMEOUT_S = 30.0  # when the caller names no limit of its own
MAX_TIMEOUT_S = 3600.0
REDACTED = "[redacted]"


class FetchRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class HttpGateway:
    """One pooled client for the whole app; redirects are not followed (each hop must be granted)."""

    def __init__(self) -> None:
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        import httpx

        if self._client is None:
            self._client = httpx.Client(follow_redirects=False, timeout=TIMEOUT_S, trust_env=False)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def fetch(self, request: dict[str, Any], granted: tuple[str, ...],
              secrets: tuple[ResolvedSecret, ...], timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
        """`timeout_s`: the caller's own time limit, so a slow LLM answer is not cut at 30 s."""
        import httpx

        try:
            url = httpx.URL(request["url"])
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise FetchRefused("bad_request", f"invalid URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise FetchRefused("not_granted", f"only http and https URLs can be fetched, not {request['url']!r}")
        if not host_allowed(granted, url.host, url.port):
            shown = url.host if url.port is None else f"{url.host}:{url.port}"
            raise FetchRefused("not_granted", f"host {shown} is not granted to this plug-in "
                                              f"(granted: {', '.join(granted) or 'none'})")
        headers = {k: v for k, v in (request.get("headers") or {}).items()}
        for secret in secrets:
            bound = secret.spec.hosts if secret.spec.hosts is not None else granted
            if not host_allowed(bound, url.host, url.port):
                continue
            if secret.spec.query:
                url = url.copy_set_param(secret.spec.query, secret.value)
            else:
                headers = {k: v for k, v in headers.items() if k.lower() != secret.spec.header.lower()}
                headers[secret.spec.header] = secret.header_value
        method = request.get("method", "GET")
        body = request.get("body")
        try:
            timeout = httpx.Timeout(min(timeout_s, MAX_TIMEOUT_S), connect=10.0)
            with self.client.stream(method, url, headers=headers, timeout=timeout,
                                    content=body.encode() if body is not None else None) as response:
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise FetchRefused("http_error", f"response larger than {MAX_RESPONSE_BYTES} bytes")
                    chunks.append(chunk)
                text = b"".join(chunks).decode(response.encoding or "utf-8", errors="replace")
                out_headers = {k: v for k, v in response.headers.items()}
                status = response.status_code
        except httpx.HTTPError as exc:
            raise FetchRefused("http_error", f"{type(exc).__name__}: {_redact(str(exc), secrets)}") from None
        if secrets:
            text = _redact(text, secrets)
            out_headers = {k: _redact(v, secrets) for k, v in out_headers.items()}
        return {"status": status, "headers": out_headers, "body": text}


def _redact(text: str, secrets: tuple[ResolvedSecret, ...]) -> str:
    for secret in secrets:
        if secret.value in text:
            text = text.replace(secret.value, REDACTED)
    return text
