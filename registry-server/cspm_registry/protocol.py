"""HTTP/1.1 connections with a bounded request head: at most `max_head` bytes, within `header_timeout` s.

uvicorn's httptools protocol buffers a request's line and headers for as long as they keep coming
(llhttp has no size limit, and uvicorn sets none), and waits for them for ever: one client could
hold 48 MiB of headers in the server, or many connections open by trickling a byte now and then
(slowloris). This subclass counts the bytes of each request head as they arrive, at the socket,
before they reach the parser, and arms a timer from the connection's start (the first request) or
the first byte of each later request until the end of its headers. Over the size it answers 431,
out of time 408 (or just closes a connection that sent nothing), and closes the connection.

The body is bounded by the app (`--upload-timeout`, the publish limits) while it reads it; a body
the app answered without reading (401, 413) must end within `header_timeout` too, else the
connection is closed (uvicorn drops such a body as it comes, but re-arms no timer meanwhile).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cspm.protocol import api_errors
from cspm.protocol.api_errors import Code

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; a publish sends well under 1 KiB
LINGER_S = 2.0  # after a refusal, incoming bytes are read and dropped this long so the client sees the answer


def protocol_class(*, header_timeout: float, max_head: int = MAX_HEAD_BYTES) -> type[HttpToolsProtocol]:
    """The protocol class for `uvicorn.Config(http=...)`, with these limits."""

    class Bounded(BoundedHeadProtocol):
        pass

    Bounded.max_head, Bounded.header_timeout = max_head, header_timeout
    return Bounded


class BoundedHeadProtocol(HttpToolsProtocol):
    """Use `protocol_class`, which sets the limits."""

    max_head: int
    header_timeout: float

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head: int | None = 0  # bytes of the request head so far; None while a body is read
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()  # a connection that never sends a byte is a slowloris too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: drop what still arrives
        if self._head is not None:
            self._start_head_timer()
            self._head += len(data)
        super().data_received(data)
        # counted before parsing, checked after: a chunk that also ends the head (with a body behind it)
        # is fine, and what the parser holds is at most the limit plus one read
        if self._head is not None and self._head > self.max_head and not self.transport.is_closing():
            self._refuse(431, Code.TOO_LARGE, f"the request line and headers are over {self.max_head:,} bytes")

    def on_headers_complete(self) -> None:
        self._head = None
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._stop_head_timer()  # a draining body (below) has ended
        super().on_message_complete()
        self._head = 0  # the next request's head starts; its timer starts with its first byte

    def on_response_complete(self) -> None:
        """Answered before its body was read (401, 413, ...): uvicorn drops the rest of the body as it comes
        and re-arms no timer meanwhile, so the rest must arrive within `header_timeout` too, or the
        connection is closed."""
        super().on_response_complete()
        if self._head is None and self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.header_timeout, self._drain_timed_out)

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._head is None or self.transport.is_closing():
            return
        if self._head == 0:  # nothing of a request arrived: nobody to answer
            self.transport.close()
            return
        self._refuse(408, Code.TIMEOUT, f"the request line and headers did not arrive within {self.header_timeout:g} s")

    def _drain_timed_out(self) -> None:
        self._head_timer = None
        if self._head is None and not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, code: Code, message: str) -> None:
        """Answer with a JSON error and close; keep reading (and dropping) a moment first, since closing a
        socket with unread data resets it and the client would lose the answer."""
        self.logger.warning("%s from %s: %s", status, self.client[0] if self.client else "unknown", message)
        self._refused = True
        self._stop_head_timer()
        self.parser = None  # type: ignore[assignment]  # nothing more is parsed or buffered
        self.pipeline.clear()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # an earlier request still running: its answer is dropped
        body = json.dumps(api_errors.body(code, message)).encode()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                             b"connection: close\r\n\r\n%s" % (status, reason, len(body), body))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()
