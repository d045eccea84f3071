"""OpenAI's chat-completions wire format: the request checked and bounded, the answers shaped.

Only what `cspm serve` honours is read (docs/serve.md): the messages, `model` (the app's name),
`stream` and `stream_options.include_usage`, `metadata.session`, `n` (1 only), and for an app whose
entry is an llm its sampling fields. Other fields (`temperature` for an agent, `user`, `logprobs`…)
are accepted and ignored, as OpenAI-compatible servers do, so stock clients work unchanged. Every
bound is checked before anything runs: a caller cannot make the host hold more than MAX_BODY_BYTES.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from cspm.formats import bounded_json
from cspm.runtime.engine import RunResult
from cspm.runtime.trace import Span

MAX_BODY_BYTES = 1024 * 1024  # one request's JSON body
MAX_MESSAGES = 256
MAX_CONTENT_CHARS = 256 * 1024  # the text of one message
MAX_SESSION_CHARS = 128
SESSION = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
SESSION_HEADER = "x-cspm-session"
ROLES = {"system", "developer", "user", "assistant", "tool"}
TEXT_PARTS = {"text", "input_text", "output_text"}  # a Responses item's text parts, read as chat's `text`
FINISH = {"final_answer": "stop", "stop": "stop", "length": "length", "max_steps": "length",
          "tool_calls": "stop"}


class ApiError(Exception):
    """An answer in OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad(message: str, param: str | None = None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


@dataclass
class ChatRequest:
    """A checked request: `text` is the last user message (what an agent or tool entry gets);
    `messages` the whole conversation in the ABI's shape (what an llm entry gets)."""

    text: str
    messages: list[dict[str, str]]
    stream: bool
    include_usage: bool
    session: str | None
    llm_fields: dict[str, Any] = field(default_factory=dict)


def _load(body: bytes, app_name: str) -> dict[str, Any]:
    """The body as a JSON object through cspm's one bounded loader (size, depth, digits), with `model`
    naming this app; raises ApiError (400, 404, 413)."""
    if len(body) > MAX_BODY_BYTES:
        raise too_large()
    try:
        data = bounded_json.loads(body, max_bytes=MAX_BODY_BYTES)
    except bounded_json.JsonRejected as exc:
        raise bad(f"the request body is not JSON this server reads: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise bad("the request body must be a JSON object", code="invalid_json")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise bad("`model` is required: the app's name (GET /v1/models lists it)", "model", "missing_model")
    if model != app_name:
        raise ApiError(404, f"the model `{model[:100]}` does not exist; this server serves `{app_name}`",
                       param="model", code="model_not_found")
    return data


def parse_chat(body: bytes, app_name: str, header_session: str | None) -> ChatRequest:
    """A chat-completions request checked against the bounds; raises ApiError (400, 404, 413)."""
    data = _load(body, app_name)
    n = data.get("n")
    if n is not None and n != 1:
        raise bad("only `n: 1` is supported", "n")
    stream = data.get("stream") or False
    if not isinstance(stream, bool):
        raise bad("`stream` must be true or false", "stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad("`stream_options` must be an object", "stream_options")
    include_usage = options.get("include_usage") is True
    messages = _messages(data.get("messages"))
    last = messages[-1]
    if last["role"] != "user":
        raise bad("the last message must be the user's: it is what the app answers", "messages")
    return ChatRequest(last["content"], messages, stream, include_usage,
                       _session(header_session, data.get("metadata")), _llm_fields(data))


def parse_responses(body: bytes, app_name: str, header_session: str | None) -> ChatRequest:
    """An Open Responses (`POST /v1/responses`) request as the same checked request a chat is: `input`
    (a string, or message items with text parts) and `instructions` become the conversation; state
    is kept by the session (header or `metadata.session`), not by `previous_response_id`."""
    data = _load(body, app_name)
    if data.get("previous_response_id") is not None:
        raise bad("`previous_response_id` is not kept by this server: name the conversation with the "
                  "X-Cspm-Session header or `metadata.session`", "previous_response_id", "unsupported")
    stream = data.get("stream") or False
    if not isinstance(stream, bool):
        raise bad("`stream` must be true or false", "stream")
    raw = data.get("input")
    items: Any = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise bad("`input` must be a string or an array of message items", "input")
    messages = _messages([_message_item(item, f"input[{i}]") for i, item in enumerate(items)], "input")
    instructions = data.get("instructions")
    if instructions is not None:
        messages.insert(0, {"role": "system", "content": _text(instructions, "instructions")})
    last = messages[-1]
    if last["role"] != "user":
        raise bad("the last input item must be the user's: it is what the app answers", "input")
    fields = {**data, "max_tokens": data.get("max_output_tokens")}
    fields.pop("max_completion_tokens", None)
    return ChatRequest(last["content"], messages, stream, True, _session(header_session, data.get("metadata")),
                       _llm_fields(fields))


def _message_item(item: Any, where: str) -> Any:
    """A Responses input item as a chat message: `{type?: "message", role, content}`, whose content
    parts are `input_text`/`output_text` (other item types, tool outputs and images, are refused)."""
    if not isinstance(item, dict) or item.get("type", "message") != "message":
        raise bad(f"{where}: only message items are supported", where)
    content = item.get("content")
    if isinstance(content, list):
        content = [{**part, "type": "text"} if isinstance(part, dict) and part.get("type") in TEXT_PARTS
                   else part for part in content]
    return {"role": item.get("role"), "content": content}


def too_large() -> ApiError:
    return ApiError(413, f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB", code="request_too_large")


def _messages(raw: Any, param: str = "messages") -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise bad(f"`{param}` must be a non-empty array", param)
    if len(raw) > MAX_MESSAGES:
        raise bad(f"at most {MAX_MESSAGES} messages are accepted in one request", param, "too_many_messages")
    out: list[dict[str, str]] = []
    for i, message in enumerate(raw):
        where = f"{param}[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise bad(f"{where} must be an object with a `role` of {', '.join(sorted(ROLES))}", where)
        role = message["role"]
        text = _text(message.get("content"), where)
        if role == "tool":
            continue  # the app runs its own tools; a client's tool results are not part of its conversation
        out.append({"role": "system" if role == "developer" else role, "content": text})
    if not out:
        raise bad(f"`{param}` has no user message", param)
    return out


def _text(content: Any, where: str) -> str:
    """A message's text: a string, or an array of `text` parts (other parts, images, are refused)."""
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad(f"{where}: only text content parts are supported", f"{where}.content")
            parts.append(part["text"])
        text = "".join(parts)
    else:
        raise bad(f"{where}: `content` must be a string or an array of text parts", f"{where}.content")
    if len(text) > MAX_CONTENT_CHARS:
        raise bad(f"{where}: a message may have at most {MAX_CONTENT_CHARS // 1024} Ki characters",
                  f"{where}.content", "string_above_max_length")
    return text


def _session(header: str | None, metadata: Any) -> str | None:
    """The conversation's id: header X-Cspm-Session, else `metadata.session`; None means a new one."""
    value: Any = header
    if value is None and isinstance(metadata, dict):
        value = metadata.get("session")
    if value is None:
        return None
    if not isinstance(value, str) or not SESSION.fullmatch(value):
        raise bad(f"a session id is 1 to {MAX_SESSION_CHARS} letters, digits or . _ : @ -",
                  "metadata.session", "invalid_session")
    return value


def _llm_fields(data: dict[str, Any]) -> dict[str, Any]:
    """An entry llm's sampling fields, checked as the ABI bounds them (ignored by other entries)."""
    out: dict[str, Any] = {}
    tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if tokens is not None:
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
            raise bad("`max_tokens` must be a positive integer", "max_tokens")
        out["max_tokens"] = tokens
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = data.get(name)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
                raise bad(f"`{name}` must be a number from {low} to {high}", name)
            out[name] = value
    seed = data.get("seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise bad("`seed` must be an integer", "seed")
        out["seed"] = seed
    stop = data.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or len(stops) > 16 or not all(isinstance(s, str) for s in stops):
            raise bad("`stop` must be a string or an array of at most 16 strings", "stop")
        out["stop"] = stops
    return out


# ---- answers -------------------------------------------------------------------------------------

_IDS = itertools.count(1)
_PREFIX = os.urandom(6).hex()


_SESSION_KEY = os.urandom(32)
_SESSIONS = itertools.count(1)


def new_session() -> str:
    """A fresh session name, unguessable (it names memory): keyed BLAKE2b of the process id and a
    counter under a random per-process key. No system call per request: on the event loop's thread
    one hands the GIL to the busy worker threads and costs the request far more than the hash."""
    counter = next(_SESSIONS).to_bytes(8, "big") + os.getpid().to_bytes(8, "big")
    return hashlib.blake2b(counter, key=_SESSION_KEY, digest_size=16).hexdigest()


def completion_id() -> str:
    """Unique in this server's life (a random prefix per process, then a counter): an id names an
    answer, it guards nothing, so it costs no read of the system's randomness per request."""
    return f"chatcmpl-{_PREFIX}{next(_IDS):08x}"


def usage(result: RunResult) -> dict[str, int]:
    """Tokens of every llm call the request made (an agent's included), from its trace."""
    prompt = completion = 0
    stack: list[Span] = [result.trace]
    while stack:
        span = stack.pop()
        prompt += span.input_tokens or 0
        completion += span.output_tokens or 0
        stack.extend(span.children)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def finish_reason(result: RunResult) -> str:
    return FINISH.get(result.finish_reason, "stop")


def completion(cid: str, model: str, result: RunResult) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.output},
                         "logprobs": None, "finish_reason": finish_reason(result)}],
            "usage": usage(result)}


def chunk(cid: str, model: str, created: int, delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}


def usage_chunk(cid: str, model: str, created: int, result: RunResult) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
            "usage": usage(result)}


def sse(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def models(app_name: str, created: int) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": app_name, "object": "model", "created": created, "owned_by": "cspm"}]}


# ---- Open Responses (`POST /v1/responses`) ---------------------------------------------------------

def response_id() -> str:
    return f"resp_{_PREFIX}{next(_IDS):08x}"


def response(rid: str, model: str, created: int, status: str, text: str = "",
             result: RunResult | None = None) -> dict[str, Any]:
    """A Response object: one assistant message with one `output_text` part (empty while in progress)."""
    output = [_output_message(rid, text, "completed")] if status in ("completed", "incomplete") else []
    tokens = usage(result) if result is not None else None
    return {"id": rid, "object": "response", "created_at": created, "status": status, "model": model,
            "output": output, "error": None, "incomplete_details": (
                {"reason": "max_output_tokens"} if status == "incomplete" else None),
            "usage": None if tokens is None else {
                "input_tokens": tokens["prompt_tokens"], "output_tokens": tokens["completion_tokens"],
                "total_tokens": tokens["total_tokens"], "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0}},
            "parallel_tool_calls": False, "tool_choice": "none", "tools": []}


def response_status(result: RunResult) -> str:
    return "incomplete" if finish_reason(result) == "length" else "completed"


def _output_message(rid: str, text: str, status: str) -> dict[str, Any]:
    return {"type": "message", "id": f"msg_{rid[5:]}", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def event(kind: str, sequence: int, **fields: Any) -> bytes:
    """One Responses stream event: `event: <type>` and its JSON, numbered in order."""
    return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': sequence, **fields})}\n\n".encode()


# ---- streams: one encoder per wire format, driven by the same loop (cspm.serve.app) -----------------

class ChatStream:
    """`chat.completion.chunk` events, then `[DONE]`."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.cid, self.model, self.created, self.include_usage = completion_id(), model, int(time.time()), include_usage

    def start(self) -> list[bytes]:
        return [sse(chunk(self.cid, self.model, self.created, {"role": "assistant", "content": ""}))]

    def delta(self, text: str) -> bytes:
        return sse(chunk(self.cid, self.model, self.created, {"content": text}))

    def done(self, result: RunResult, streamed: bool) -> list[bytes]:
        out = [] if streamed or not result.output else [self.delta(result.output)]
        out.append(sse(chunk(self.cid, self.model, self.created, {}, finish_reason(result))))
        if self.include_usage:
            out.append(sse(usage_chunk(self.cid, self.model, self.created, result)))
        return [*out, sse("[DONE]")]

    def failed(self, error: ApiError) -> list[bytes]:
        return [sse(error.body()), sse("[DONE]")]


class ResponsesStream:
    """The Open Responses events of one text answer: created, in_progress, the item and its part added,
    `response.output_text.delta` per chunk, then the done events and `response.completed` (or
    `response.incomplete`, `response.failed`)."""

    def __init__(self, model: str) -> None:
        self.rid, self.model, self.created = response_id(), model, int(time.time())
        self.item = f"msg_{self.rid[5:]}"
        self.text: list[str] = []
        self.sequence = 0

    def _event(self, kind: str, **fields: Any) -> bytes:
        self.sequence += 1
        return event(kind, self.sequence, **fields)

    def start(self) -> list[bytes]:
        opened = response(self.rid, self.model, self.created, "in_progress")
        item = {"type": "message", "id": self.item, "status": "in_progress", "role": "assistant", "content": []}
        return [self._event("response.created", response=opened), self._event("response.in_progress", response=opened),
                self._event("response.output_item.added", output_index=0, item=item),
                self._event("response.content_part.added", item_id=self.item, output_index=0, content_index=0,
                            part={"type": "output_text", "text": "", "annotations": []})]

    def delta(self, text: str) -> bytes:
        self.text.append(text)
        return self._event("response.output_text.delta", item_id=self.item, output_index=0, content_index=0,
                           delta=text, logprobs=[])

    def done(self, result: RunResult, streamed: bool) -> list[bytes]:
        out = [] if streamed or not result.output else [self.delta(result.output)]
        text = "".join(self.text)
        part = {"type": "output_text", "text": text, "annotations": []}
        status = response_status(result)
        final = response(self.rid, self.model, self.created, status, text, result)
        return [*out, self._event("response.output_text.done", item_id=self.item, output_index=0, content_index=0,
                                  text=text, logprobs=[]),
                self._event("response.content_part.done", item_id=self.item, output_index=0, content_index=0,
                            part=part),
                self._event("response.output_item.done", output_index=0, item=final["output"][0]),
                self._event(f"response.{status}", response=final)]

    def failed(self, error: ApiError) -> list[bytes]:
        failed = {**response(self.rid, self.model, self.created, "failed"), "status": "failed",
                  "error": {"code": error.code or "server_error", "message": error.message}}
        return [self._event("response.failed", response=failed)]
