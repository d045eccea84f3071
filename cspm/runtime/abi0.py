"""Chainsocket ABI 0: plug-ins built for Extism 0.x (extism-pdk 0.3) on cspm's Extism 1.x.

Extism 0.x linked its kernel into module `env` as `extism_*`, and the original Chainsocket host gave
`env.call_llm/call_tool/call_agent`; Extism 1.x links neither. So a module's import section is
rewritten (only module and field names change: the count, order and types of its imports stay, so
every function index in its code still holds):

- the kernel's memory functions become the 1.x kernel's (`env.extism_alloc` -> `extism:host/env.alloc`),
  whose semantics did not change;
- the functions whose 0.x semantics differ become host functions of cspm's (`extism:host/user.cs0_*`,
  below): in 0.x the host never frees a handle the plug-in passes (the PDK frees it; 1.x's built-ins
  free it, so forwarding would free it twice), an HTTP transport failure answers 0 instead of
  trapping, and the PDK frees the error message right after `error_set`;
- the three Chainsocket functions become cs0_call_* which translate the original request shapes
  to ABI 1 and route them through the engine's own checks (Frame.handle, as any ABI 1 request).

Imported by the engine only when a module is ABI 0 (docs/abi.md, "ABI 0").
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import extism
from extism_sys import ffi, lib

from cspm.formats import bounded_json
from cspm.runtime.hostfns import raw_function
from cspm.runtime.secrets import ResolvedSecret
from cspm.verify.wasm import (
    ABI0_CHAINSOCKET,
    ABI0_IMPORTS,
    ENV,
    EXTISM_ENV,
    EXTISM_USER,
    MAGIC,
    SECTION_IMPORT,
    SECTION_TYPE,
    VERSION,
    WASI,
    Reader,
    WasmFormatError,
    import_descriptor,
)

if TYPE_CHECKING:
    from cspm.formats.plan import PlanComponent
    from cspm.runtime.engine import Frame

REWRITE_VERSION = 1  # bump when `rewrite` changes what it writes: it is part of the compile cache key
VARIANT = f"abi0-rewrite-{REWRITE_VERSION}"
MAX_CACHED = 64  # rewritten modules kept in memory (by digest)
MAX_REQUEST_BYTES = 16 * 1024 * 1024  # a call_* request, an HTTP body (as the ABI 1 limits)
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # what an ABI 0 `call` returns (raw text)
MAX_KEY_BYTES = 4096  # a config or var key; an HTTP request description is at most 64 KiB
MAX_HTTP_REQUEST_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 64 * 1024  # a log line or error message read (logs are cut further by the engine)
MAX_VAR_BYTES = 1024 * 1024  # keys + values of one instance's vars (Extism 1.x's default var limit)
MAX_VARS = 10_000
NONE_ANSWER = b'{"output": "None"}'  # the original host's answer to a name it could not serve
U64 = (1 << 64) - 1

# 0.x import -> 1.x kernel function of the same semantics (extism:host/env)
KERNEL = {
    "extism_alloc": "alloc", "extism_free": "free", "extism_length": "length",
    "extism_load_u8": "load_u8", "extism_load_u64": "load_u64",
    "extism_store_u8": "store_u8", "extism_store_u64": "store_u64",
    "extism_input_length": "input_length", "extism_input_offset": "input_offset",
    "extism_input_load_u8": "input_load_u8", "extism_input_load_u64": "input_load_u64",
    "extism_output_set": "output_set", "extism_memory_bytes": "memory_bytes",
}
# 0.x import -> cspm host function (extism:host/user) keeping the 0.x semantics
HOST = {
    "extism_error_set": "cs0_error_set", "extism_config_get": "cs0_config_get",
    "extism_var_get": "cs0_var_get", "extism_var_set": "cs0_var_set",
    "extism_http_request": "cs0_http_request", "extism_http_status_code": "cs0_http_status_code",
    "extism_log_info": "cs0_log_info", "extism_log_debug": "cs0_log_debug",
    "extism_log_warn": "cs0_log_warn", "extism_log_error": "cs0_log_error",
    "call_llm": "cs0_call_llm", "call_tool": "cs0_call_tool", "call_agent": "cs0_call_agent",
}
_VALTYPES = {0x7F: "i", 0x7E: "I", 0x7D: "f", 0x7C: "F", 0x7B: "v", 0x70: "r", 0x6F: "x"}
_SHOWN = {"i": "i32", "I": "i64", "f": "f32", "F": "f64", "v": "v128", "r": "funcref", "x": "externref"}


# ---- the import-section rewrite -----------------------------------------------------------------

_rewritten: OrderedDict[str, bytes] = OrderedDict()
_lock = threading.Lock()  # `cspm serve` loads runtimes from several threads


def rewritten(wasm: bytes, digest: str) -> bytes:
    """`rewrite(wasm)`, once per module digest in this process (the last MAX_CACHED kept)."""
    with _lock:
        found = _rewritten.get(digest)
        if found is not None:
            _rewritten.move_to_end(digest)
            return found
    found = rewrite(wasm)  # outside the lock: a few ms for a large module, and the same bytes either way
    with _lock:
        _rewritten[digest] = found
        while len(_rewritten) > MAX_CACHED:
            _rewritten.popitem(last=False)
    return found


def rewrite(wasm: bytes) -> bytes:
    """The module with its `env` imports renamed to what Extism 1.x and cspm link (KERNEL, HOST), every
    other byte as it was. The input is untrusted: every length is checked, and anything this rewrite
    does not expect (an import it cannot map, a signature other than 0.x's, a second import section,
    bytes past a section's end) is refused with WasmFormatError."""
    if len(wasm) < 8 or wasm[:4] != MAGIC:
        raise WasmFormatError("not a WebAssembly module (bad magic number)")
    if wasm[4:8] != VERSION:
        raise WasmFormatError("not a core WebAssembly module of version 1 (a component?)")
    reader = Reader(wasm, 8)
    out = [wasm[:8]]
    types: list[tuple[str, str]] | None = None
    imports_seen = False
    while reader.pos < reader.end:
        start = reader.pos
        section_id = reader.byte()
        size = reader.uleb()
        body = reader.pos
        if size > reader.end - body:
            raise WasmFormatError("truncated module (a section runs past the end)")
        if section_id == SECTION_TYPE:
            if types is not None:
                raise WasmFormatError("it has two type sections")
            types = _types(Reader(wasm, body, body + size))
            out.append(wasm[start:body + size])
        elif section_id == SECTION_IMPORT:
            if imports_seen:
                raise WasmFormatError("it has two import sections")
            imports_seen = True
            new = _imports(Reader(wasm, body, body + size), types or [])
            out.append(bytes([SECTION_IMPORT]) + _uleb(len(new)) + new)
        else:
            out.append(wasm[start:body + size])
        reader.pos = body + size
    if not imports_seen:
        raise WasmFormatError("it has no import section, so nothing of Extism 0.x to link")
    return b"".join(out)


def _types(body: Reader) -> list[tuple[str, str]]:
    found = []
    for _ in range(body.uleb()):
        form = body.byte()
        if form != 0x60:
            raise WasmFormatError(f"its type section has a type of form 0x{form:02x}, which this reader of "
                                  f"Extism 0.x modules does not take (only function types)")
        params = "".join(_valtype(body) for _ in range(body.uleb()))
        results = "".join(_valtype(body) for _ in range(body.uleb()))
        found.append((params, results))
    if body.pos != body.end:
        raise WasmFormatError("its type section has bytes past its last type")
    return found


def _valtype(body: Reader) -> str:
    code = body.byte()
    kind = _VALTYPES.get(code)
    if kind is None:
        raise WasmFormatError(f"its type section has a value type 0x{code:02x} this reader does not take")
    return kind


def _imports(body: Reader, types: list[tuple[str, str]]) -> bytes:
    count = body.uleb()
    out = [_uleb(count)]
    for _ in range(count):
        module, name = body.name(), body.name()
        described = body.pos
        kind, index, _ = import_descriptor(body)
        if index is not None:
            if index >= len(types):
                raise WasmFormatError(f"its import `{module}.{name}` names type {index}, which it does not define")
            signature = types[index]
        descriptor = body.data[described:body.pos]
        if module == ENV:
            if kind != "func" or name not in ABI0_IMPORTS:
                what = "function" if kind == "func" else kind
                raise WasmFormatError(f"it imports {what} `env.{name}`, which is not an Extism 0.x function "
                                      f"cspm can link")
            if signature != ABI0_IMPORTS[name]:
                raise WasmFormatError(f"its import `env.{name}` has the signature {_shown(signature)}; Extism "
                                      f"0.x's is {_shown(ABI0_IMPORTS[name])}")
            module, name = (EXTISM_ENV, KERNEL[name]) if name in KERNEL else (EXTISM_USER, HOST[name])
        elif module != WASI:
            raise WasmFormatError(f"it imports `{module}.{name}`, which no Chainsocket host provides to an "
                                  f"Extism 0.x module")
        out += [_name(module), _name(name), descriptor]
    if body.pos != body.end:
        raise WasmFormatError("its import section has bytes past its last import")
    return b"".join(out)


def _shown(signature: tuple[str, str]) -> str:
    params, results = signature
    shown = ", ".join(_SHOWN[p] for p in params)
    return f"({shown}) -> " + (", ".join(_SHOWN[r] for r in results) or "nothing")


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _name(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _uleb(len(raw)) + raw


# ---- per-instance state ------------------------------------------------------------------------


@dataclass
class State:
    """What the 0.x host functions keep for one component: its config as `config_get` answers it,
    the secret placeholders, and per instance (reset when the engine renews it) the vars, the last
    HTTP status, and for the current call the message of `error_set` and the last refused request."""

    config: dict[str, str]
    placeholders: tuple[tuple[str, ResolvedSecret], ...]
    vars: dict[bytes, bytes] = field(default_factory=dict)
    var_bytes: int = 0
    http_status: int = 0
    error: str | None = None
    refusal: str | None = None

    def begin(self) -> None:
        self.error = self.refusal = None

    def renew(self) -> None:
        """A fresh instance (engine `_renew`): 0.x vars lived in the instance, so they start over."""
        self.vars.clear()
        self.var_bytes = self.http_status = 0
        self.begin()

    def failure(self, message: str) -> tuple[str, str]:
        """Why a call failed: the plug-in's own `error_set` message, else Extism's; and a note naming the
        last host request refused in it (a 0.x plug-in gets 0 or "None" and often fails right after)."""
        if self.error:
            return self.error, ""
        return message, f" (after a refused host request: {self.refusal})" if self.refusal else ""


def make_state(component: PlanComponent, config: dict[str, str], resolved: tuple[ResolvedSecret, ...]) -> State:
    """`config_get` sees the component's config, `name` = the component's name unless the config sets
    it (the original host always set it), and each secret under its name as a placeholder: the value
    never enters the plug-in; `extism_http_request` swaps it back in for the secret's origins only."""
    shown = dict(config)
    shown.setdefault("name", component.name)
    placeholders = []
    for secret in resolved:
        placeholder = placeholder_for(secret.spec.name)
        shown[secret.spec.name] = placeholder
        placeholders.append((placeholder, secret))
    return State(shown, tuple(placeholders))


def placeholder_for(name: str) -> str:
    """`cspm-secret-<name>-<24 hex>`: URL-, header- and JSON-safe as it stands, random per load."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_.-") else "_" for ch in name)[:40]
    return f"cspm-secret-{safe}-{secrets.token_hex(12)}"


# ---- request translation -------------------------------------------------------------------------


class Refused(Exception):
    """A 0.x host request cspm will not serve: answered as 0.x would (0, "None"), and logged."""


def to_abi1(kind: str, request: Any) -> dict[str, Any]:
    """An original request (`LLMReq {name, systemprompt, inputprompt, stop}`, `ToolReq`/`AgentReq
    {name, input}`) as the ABI 1 call_llm/call_tool/call_agent request."""
    if not isinstance(request, dict) or not isinstance(request.get("name"), str):
        raise Refused("the request is not a JSON object with a `name`")
    name = request["name"]
    if kind == "llm":
        system, prompt, stop = request.get("systemprompt", ""), request.get("inputprompt", ""), request.get("stop", [])
        if not isinstance(system, str) or not isinstance(prompt, str) or not isinstance(stop, list) \
                or not all(isinstance(s, str) for s in stop):
            raise Refused("an LLMReq needs `systemprompt` and `inputprompt` (text) and `stop` (a list of text)")
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        return {"name": name, "messages": messages, **({"stop": stop} if stop else {})}
    text = request.get("input")
    if not isinstance(text, str):
        raise Refused(f"a {'ToolReq' if kind == 'tool' else 'AgentReq'} needs `input` (text)")
    return {"name": name, "input": text}


def from_abi1(kind: str, answer: dict[str, Any]) -> str:
    """The text of an ABI 1 answer, for `ActionRep {output}`; Refused when it is an error."""
    error = answer.get("error")
    if isinstance(error, dict):
        raise Refused(f"{error.get('code')}: {error.get('message')}")
    if kind == "llm":
        if answer.get("finish_reason") == "error":
            raise Refused(f"the llm answered an error: {answer.get('error') or answer.get('content')}")
        return str(answer.get("content", ""))
    return str(answer.get("output", ""))


def original_input(kind: str, name: str, payload: dict[str, Any]) -> bytes:
    """What an ABI 0 plug-in's `call` receives for an ABI 1 request: the original shapes, named as
    the original host named them (the component's own name). An llm's system messages become
    `systemprompt`, its last message `inputprompt`, and the turns between are appended to the
    system prompt as `Role: content` lines."""
    if kind == "llm":
        messages = payload.get("messages") or []
        system = [m["content"] for m in messages if m.get("role") == "system"]
        turns = [m for m in messages if m.get("role") != "system"]
        history = [f"{str(m.get('role', 'user')).capitalize()}: {m['content']}" for m in turns[:-1]]
        body: dict[str, Any] = {
            "name": name, "systemprompt": "\n\n".join(part for part in ["\n\n".join(system), "\n".join(history)]
                                                      if part),
            "inputprompt": turns[-1]["content"] if turns else "", "stop": list(payload.get("stop") or [])}
    elif kind == "tool" and "input" not in payload:
        body = {"name": name, "input": json.dumps(payload.get("arguments", {}), ensure_ascii=False)}
    else:
        body = {"name": name, "input": payload.get("input", "")}
    return json.dumps(body, ensure_ascii=False).encode()


def answer_of(kind: str, raw: bytes) -> dict[str, Any]:
    """An ABI 0 plug-in's output (raw text, which the original host wrapped as `ActionRep {output}`)
    as the ABI 1 answer of its kind. Token counts are unknown: 0."""
    if len(raw) > MAX_ANSWER_BYTES:
        raise ValueError(f"its answer is larger than {MAX_ANSWER_BYTES // 2**20} MiB")
    text = raw.decode("utf-8", "replace")
    if kind == "llm":
        return {"content": text, "finish_reason": "stop", "usage": {"input_tokens": 0, "output_tokens": 0}}
    if kind == "tool":
        return {"output": text, "is_error": False}
    return {"output": text, "finish_reason": "final_answer"}


# ---- host functions ------------------------------------------------------------------------------


class _Memory:
    """The calling plug-in's Extism memory, through the C API (bounds are the kernel's blocks)."""

    __slots__ = ("current",)

    def __init__(self, current: Any) -> None:
        self.current = current

    def read(self, handle: int, limit: int, what: str) -> bytes:
        if handle == 0:
            return b""
        length = lib.extism_current_plugin_memory_length(self.current, handle)
        if length > limit:
            raise Refused(f"{what} is larger than {limit} bytes")
        return ffi.buffer(lib.extism_current_plugin_memory(self.current) + handle, length)[:] if length else b""

    def text(self, handle: int, limit: int, what: str) -> str:
        try:
            return self.read(handle, limit, what).decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(f"{what} is not UTF-8 text") from None

    def write(self, data: bytes) -> int:
        """A new block holding `data` (the plug-in owns and frees it); 0 for no data or no memory."""
        if not data:
            return 0
        out = lib.extism_current_plugin_memory_alloc(self.current, len(data))
        if out:
            ffi.memmove(lib.extism_current_plugin_memory(self.current) + out, data, len(data))
        return int(out)


def _state(frame: Frame) -> State:
    state = frame.node.abi0
    if state is None:  # an ABI 1 module cannot import cs0_* (Interface.problems refuses it)
        raise Refused("not an Extism 0.x plug-in")
    return state


def _config_get(memory: _Memory, frame: Frame, args: list[int]) -> int:
    key = memory.text(args[0], MAX_KEY_BYTES, "the config key")
    value = _state(frame).config.get(key)
    return 0 if value is None else memory.write(value.encode("utf-8"))


def _var_get(memory: _Memory, frame: Frame, args: list[int]) -> int:
    key = memory.read(args[0], MAX_KEY_BYTES, "the var key")
    value = _state(frame).vars.get(key)
    return 0 if value is None else memory.write(value)


def _var_set(memory: _Memory, frame: Frame, args: list[int]) -> int:
    state = _state(frame)
    key = memory.read(args[0], MAX_KEY_BYTES, "the var key")
    old = state.vars.pop(key, None)
    if old is not None:
        state.var_bytes -= len(key) + len(old)
    if args[1] == 0:  # 0.x: a value handle of 0 removes the var
        return 0
    value = memory.read(args[1], MAX_VAR_BYTES, "the var value")
    if state.var_bytes + len(key) + len(value) > MAX_VAR_BYTES or len(state.vars) >= MAX_VARS:
        raise Refused(f"the vars are full ({MAX_VAR_BYTES // 1024} KiB, {MAX_VARS} keys): `{key[:40]!r}` not set")
    state.vars[key] = value
    state.var_bytes += len(key) + len(value)
    return 0


def _http_request(memory: _Memory, frame: Frame, args: list[int]) -> int:
    """0.x `http_request`: `{"url", "headers"|"header", "method"}` and an optional body handle; the
    response body's handle (0 when the request failed or was refused), its status kept for
    `http_status_code`. It goes through the engine's http_fetch (grants, secrets, redaction, bounds)."""
    state = _state(frame)
    state.http_status = 0
    try:
        request = bounded_json.loads(memory.read(args[0], MAX_HTTP_REQUEST_BYTES, "the HTTP request"),
                                     max_bytes=MAX_HTTP_REQUEST_BYTES)
    except bounded_json.JsonRejected as exc:
        raise Refused(f"the HTTP request is not JSON: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("url"), str) \
            or set(request) - {"url", "headers", "header", "method"}:
        raise Refused("the HTTP request is not `{\"url\", \"headers\", \"method\"}`")
    headers = request.get("headers", request.get("header")) or {}
    method = request.get("method") or "GET"
    if not isinstance(headers, dict) or not isinstance(method, str):
        raise Refused("the HTTP request's `headers` must be an object and `method` text")
    message: dict[str, Any] = {"method": method.upper(), "url": request["url"], "headers": headers}
    if args[1]:
        message["body"] = memory.text(args[1], MAX_REQUEST_BYTES, "the HTTP body")
    answer = json.loads(frame.handle("http_fetch", json.dumps(message).encode()))  # the host's own JSON
    if "error" in answer:
        raise Refused(f"{answer['error']['code']}: {answer['error']['message']}")
    state.http_status = int(answer["status"])
    return memory.write(answer["body"].encode("utf-8"))


def _http_status_code(memory: _Memory, frame: Frame, args: list[int]) -> int:
    return _state(frame).http_status


def _error_set(memory: _Memory, frame: Frame, args: list[int]) -> int:
    """Read now: the 0.3 PDK frees the message right after `error_set`, before the host could."""
    state = _state(frame)
    state.error = memory.read(args[0], MAX_MESSAGE_BYTES, "the error message").decode("utf-8", "replace") or None
    return 0


def _logger(level: str) -> Callable[[_Memory, Frame, list[int]], int]:
    def log(memory: _Memory, frame: Frame, args: list[int]) -> int:
        text = memory.read(args[0], MAX_MESSAGE_BYTES, "the log line").decode("utf-8", "replace")
        if level != "debug":  # the engine keeps info and above, as Extism's log buffer (logs.py) does
            frame.runtime._log(frame.node, level, text)
        return 0

    return log


def _router(kind: str) -> Callable[[_Memory, Frame, list[int]], int]:
    function = f"call_{kind}"

    def route(memory: _Memory, frame: Frame, args: list[int]) -> int:
        """An original request routed as ABI 1 (the engine's declarations, depth, cycle and deadline
        checks); its answer as `ActionRep {output}`, or `{"output": "None"}` when it was refused."""
        try:
            try:
                request = bounded_json.loads(memory.read(args[0], MAX_REQUEST_BYTES, "the request"),
                                             max_bytes=MAX_REQUEST_BYTES)
            except bounded_json.JsonRejected as exc:
                raise Refused(f"the request is not JSON: {exc}") from None
            message = to_abi1(kind, request)
            answer = bounded_json.loads(frame.handle(function, json.dumps(message).encode()),
                                        max_bytes=MAX_ANSWER_BYTES * 2)
            output = from_abi1(kind, answer)
        except Refused as exc:
            _refused(frame, function, f"{exc} (answered {{\"output\": \"None\"}}, as the original host did)")
            return memory.write(NONE_ANSWER)
        return memory.write(json.dumps({"output": output}, ensure_ascii=False).encode("utf-8"))

    return route


def _refused(frame: Frame, function: str, message: str) -> None:
    state = frame.node.abi0
    if state is not None:
        state.refusal = f"{function}: {message}"[:400]
    frame.runtime._log(frame.node, "warn", f"{function}: {message}")


Handler = Callable[[_Memory, "Frame", list[int]], int]


@dataclass(frozen=True)
class _Spec:
    name: str  # the 0.x name, for messages
    params: str
    results: str
    handler: Handler


_SPECS: list[_Spec] = [_Spec(old, *ABI0_IMPORTS[old], handler) for old, handler in [
    ("extism_error_set", _error_set), ("extism_config_get", _config_get),
    ("extism_var_get", _var_get), ("extism_var_set", _var_set),
    ("extism_http_request", _http_request), ("extism_http_status_code", _http_status_code),
    ("extism_log_info", _logger("info")), ("extism_log_debug", _logger("debug")),
    ("extism_log_warn", _logger("warn")), ("extism_log_error", _logger("error")),
    ("call_llm", _router("llm")), ("call_tool", _router("tool")), ("call_agent", _router("agent")),
]]


@ffi.callback("void(ExtismCurrentPlugin*, const ExtismVal*, ExtismSize, ExtismVal*, ExtismSize, void*)")
def _trampoline(current: Any, inputs: Any, n_inputs: int, outputs: Any, n_outputs: int, user_data: Any) -> None:
    """One callback for every cs0_* function. Nothing may escape (cffi would swallow it): a refusal is
    logged and answered as 0.x answered failures (0, or "None" for call_*), any other exception is the
    engine's `host_failure` (which keeps an interrupt for the end of the call) and answered the same."""
    result = 0
    spec = _SPECS[int(ffi.cast("intptr_t", user_data))]
    try:
        handle = lib.extism_current_plugin_host_context(current)
        if handle != ffi.NULL:
            frame: Frame = ffi.from_handle(handle)
            args = [inputs[i].v.i64 & U64 if spec.params[i] == "I" else inputs[i].v.i32 for i in range(n_inputs)]
            try:
                result = spec.handler(_Memory(current), frame, args)
            except Refused as exc:
                _refused(frame, spec.name, str(exc))
            except BaseException as exc:
                frame.host_failure(spec.name, exc)
                _refused(frame, spec.name, f"{type(exc).__name__}: {exc}")
                if spec.name in ABI0_CHAINSOCKET:  # the original host's answer to what it could not serve
                    result = _Memory(current).write(NONE_ANSWER)
    except BaseException:  # nothing may escape a cffi callback
        result = 0
    if n_outputs:
        if spec.results == "i":
            outputs[0].v.i32 = result
        else:
            outputs[0].v.i64 = result


_TYPES = {"i": extism.ValType.I32.value, "I": extism.ValType.I64.value}
FUNCTIONS: list[extism.Function] = [
    raw_function(EXTISM_USER, HOST[spec.name], [_TYPES[p] for p in spec.params], [_TYPES[r] for r in spec.results],
                 _trampoline, i) for i, spec in enumerate(_SPECS)]
