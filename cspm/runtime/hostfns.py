"""The Chainsocket host functions, bound to Extism at the lowest level.

One cffi trampoline serves every function: it copies the request out of plug-in memory, hands it to
the handler of the runtime that is calling (found through Extism's per-call host context), and
copies the JSON answer back. Nothing may escape it: cffi swallows exceptions raised in callbacks and
the guest would see handle 0, so every failure becomes a JSON error document.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import extism
from extism_sys import ffi, lib

NAMESPACE = "extism:host/user"
NAMES = ("call_llm", "call_tool", "call_agent", "http_fetch", "kv_get", "kv_set", "emit",
         "http_open", "http_read", "http_close")  # the last three: the streaming extension (docs/abi.md)
_I64 = extism.ValType.I64.value


class Context(Protocol):
    """What a call's host context must provide: one handler per host function."""

    def handle(self, function: str, request: bytes) -> bytes: ...

    def host_failure(self, function: str, exc: BaseException) -> bytes: ...


def error_document(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


@ffi.callback("void(ExtismCurrentPlugin*, const ExtismVal*, ExtismSize, ExtismVal*, ExtismSize, void*)")
def _trampoline(current: Any, inputs: Any, n_inputs: int, outputs: Any, n_outputs: int, user_data: Any) -> None:
    function = NAMES[int(ffi.cast("intptr_t", user_data))]
    try:
        offset = inputs[0].v.i64
        length = lib.extism_current_plugin_memory_length(current, offset)
        request = ffi.buffer(lib.extism_current_plugin_memory(current) + offset, length)[:] if length else b""
        handle = lib.extism_current_plugin_host_context(current)
        if handle == ffi.NULL:
            response = error_document("internal", "host function called outside of a cspm call")
        else:
            context: Context = ffi.from_handle(handle)
            try:
                response = context.handle(function, request)
            except BaseException as exc:
                response = context.host_failure(function, exc)
    except BaseException as exc:
        response = error_document("internal", f"{type(exc).__name__}: {exc}")
    out = lib.extism_current_plugin_memory_alloc(current, len(response))
    if out:
        base = lib.extism_current_plugin_memory(current)  # alloc may have grown memory
        ffi.memmove(base + out, response, len(response))
    outputs[0].v.i64 = out


def raw_function(namespace: str, name: str, args: list[int], returns: list[int], callback: Any,
                 index: int) -> extism.Function:
    """An extism.Function that the Python SDK can register, without its per-call Python layers: one
    cffi `callback` serves many functions, told apart by `index` (its user data). Also ABI 0's
    (cspm.runtime.abi0)."""
    fn = extism.Function.__new__(extism.Function)
    fn.namespace = namespace
    fn.name = name
    fn.args = args
    fn.returns = returns
    fn.f = callback
    fn.user_data = ffi.cast("void*", index)
    return fn


FUNCTIONS: list[extism.Function] = [raw_function(NAMESPACE, n, [_I64], [_I64], _trampoline, i)
                                    for i, n in enumerate(NAMES)]
