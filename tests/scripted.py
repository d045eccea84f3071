"""Scripted HTTP servers on loopback that stand in for OpenAI, Anthropic and SerpAPI.

A test queues replies (FIFO) and afterwards asserts what the plug-in sent: method, path, query,
headers (with the injected key) and body. A request with no reply queued gets a 599 and is still
recorded, so a test that under-scripts fails loudly instead of hanging.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    pieces: list[bytes] | None = None  # sent one by one with chunked transfer encoding (`stream`)
    gap: float = 0.0  # the pause after each piece
    cut: bool = False  # hang up after the pieces, without the last chunk: a broken stream


class ScriptedServer:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                seen = Seen(self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body)
                with outer._lock:
                    outer.seen.append(seen)
                    reply = outer.replies.popleft() if outer.replies else Reply(
                        599, json.dumps({"error": f"no reply scripted for {self.command} {self.path}"}).encode())
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                if reply.pieces is not None:
                    self._stream(reply)
                    return
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def _stream(self, reply: Reply) -> None:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in reply.pieces or []:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                    if reply.gap:
                        time.sleep(reply.gap)
                if reply.cut:
                    self.close_connection = True
                    return
                self.wfile.write(b"0\r\n\r\n")

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that timed out and hung up (tests do that on purpose)

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def reply(self, body: Any = None, *, status: int = 200, headers: dict[str, str] | None = None,
              raw: bytes | str | None = None, delay: float = 0.0) -> ScriptedServer:
        """Queue one reply: `body` is sent as JSON, `raw` as it is."""
        data = raw.encode() if isinstance(raw, str) else raw if raw is not None else json.dumps(body).encode()
        with self._lock:
            self.replies.append(Reply(status, data, dict(headers or {}), delay))
        return self

    def stream(self, pieces: list[bytes | str], *, status: int = 200, headers: dict[str, str] | None = None,
               gap: float = 0.0, cut: bool = False) -> ScriptedServer:
        """Queue one reply sent in `pieces` (chunked, each flushed, `gap` seconds apart); `cut` hangs up
        before the end. Content-Type defaults to `text/event-stream`."""
        data = [p.encode() if isinstance(p, str) else p for p in pieces]
        with self._lock:
            self.replies.append(Reply(status, b"", {"Content-Type": "text/event-stream", **(headers or {})},
                                      pieces=data, gap=gap, cut=cut))
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# ---- reply bodies in each service's documented wire format --------------------------------------

def openai_chat(content: str | None, *, finish_reason: str = "stop", prompt_tokens: int = 10,
                completion_tokens: int = 5, model: str = "gpt-4o-mini",
                tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A `POST /v1/chat/completions` response (https://platform.openai.com/docs/api-reference/chat)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                                 for c in tool_calls]
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1700000000, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def sse(events: list[dict[str, Any] | str], *, event_names: bool = False) -> list[str]:
    """Server-sent events, one piece each: `data: {json}` (with `event: <type>` first when `event_names`,
    as Anthropic sends), a string as it is (`[DONE]`)."""
    out = []
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        head = f"event: {event['type']}\n" if event_names and isinstance(event, dict) else ""
        out.append(f"{head}data: {data}\n\n")
    return out


def openai_stream(pieces: list[str], *, finish_reason: str = "stop", prompt_tokens: int = 10,
                  completion_tokens: int = 5, model: str = "gpt-4o-mini") -> list[str]:
    """A streamed `POST /v1/chat/completions` (`stream: true`, `stream_options.include_usage`):
    one delta per piece, the finish reason, a usage chunk, then `[DONE]`."""
    head = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    events: list[dict[str, Any] | str] = [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    events += [{**head, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})
    events.append({**head, "choices": [], "usage": {"prompt_tokens": prompt_tokens,
                                                    "completion_tokens": completion_tokens,
                                                    "total_tokens": prompt_tokens + completion_tokens}})
    return [*sse(events), "data: [DONE]\n\n"]


def anthropic_stream(pieces: list[str], *, stop_reason: str = "end_turn", input_tokens: int = 10,
                     output_tokens: int = 5, model: str = "claude-3-5-haiku-latest") -> list[str]:
    """A streamed `POST /v1/messages` (`stream: true`): message_start (input usage), one text block of
    content_block_delta events, message_delta (stop reason, output usage), message_stop."""
    events: list[dict[str, Any] | str] = [
        {"type": "message_start", "message": {"id": "msg_test", "type": "message", "role": "assistant",
                                              "model": model, "content": [], "stop_reason": None,
                                              "usage": {"input_tokens": input_tokens, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    events += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
               for p in pieces]
    events += [{"type": "content_block_stop", "index": 0},
               {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens}},
               {"type": "message_stop"}]
    return sse(events, event_names=True)


def openai_error(message: str, type_: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def anthropic_message(text: str, *, stop_reason: str = "end_turn", stop_sequence: str | None = None,
                      input_tokens: int = 10, output_tokens: int = 5,
                      model: str = "claude-3-5-haiku-latest") -> dict[str, Any]:
    """A `POST /v1/messages` response (https://docs.anthropic.com/en/api/messages)."""
    return {
        "id": "msg_test", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason, "stop_sequence": stop_sequence,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def anthropic_error(message: str, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


def serpapi_search(*, answer_box: dict[str, Any] | None = None, organic: list[dict[str, Any]] | None = None,
                   knowledge_graph: dict[str, Any] | None = None) -> dict[str, Any]:
    """A `GET /search.json?engine=google` response (https://serpapi.com/search-api)."""
    out: dict[str, Any] = {"search_metadata": {"status": "Success"}, "search_parameters": {"engine": "google"}}
    if answer_box is not None:
        out["answer_box"] = answer_box
    if knowledge_graph is not None:
        out["knowledge_graph"] = knowledge_graph
    if organic is not None:
        out["organic_results"] = [{"position": i + 1, **r} for i, r in enumerate(organic)]
    return out
