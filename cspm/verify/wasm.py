"""Read a wasm module's interface (imports, exports, memory) without compiling it.

A few lines of LEB128 over the section headers: sub-millisecond even for Go's 4 MB modules, where
wasmtime would compile for seconds. Every length is bounds-checked: the input is untrusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

MAGIC = b"\0asm"
VERSION = b"\x01\0\0\0"
KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}
SECTION_TYPE, SECTION_IMPORT, SECTION_MEMORY, SECTION_EXPORT = 1, 2, 5, 7
INTERFACE_SECTIONS = frozenset({SECTION_IMPORT, SECTION_MEMORY, SECTION_EXPORT})
MAX_INTERFACE_SECTION = 16 * 1024 * 1024  # read from a file: names of imports and exports, never code
MAX_PAGES = 65536  # a 32-bit memory: 4 GiB of 64 KiB pages

EXTISM_ENV = "extism:host/env"
EXTISM_USER = "extism:host/user"
WASI = "wasi_snapshot_preview1"
CHAINSOCKET_FUNCTIONS = frozenset(
    {"call_llm", "call_tool", "call_agent", "http_fetch", "kv_get", "kv_set", "emit",
     "http_open", "http_read", "http_close"})

# Extism 0.x (Chainsocket ABI 0): the kernel and host functions were imported from module `env`, named
# `extism_*`, and Chainsocket's host functions were `env.call_llm/call_tool/call_agent`. Each name cspm
# can link, with its wasm signature (params, results; I = i64, i = i32): cspm.runtime.abi0 rewrites
# them to Extism 1.x imports (docs/abi.md, "ABI 0").
ENV = "env"
ABI0_DESCRIPTION = "built for Extism 0.x (Chainsocket ABI 0)"
ABI0_IMPORTS: dict[str, tuple[str, str]] = {
    "extism_alloc": ("I", "I"), "extism_free": ("I", ""), "extism_length": ("I", "I"),
    "extism_load_u8": ("I", "i"), "extism_load_u64": ("I", "I"),
    "extism_store_u8": ("Ii", ""), "extism_store_u64": ("II", ""),
    "extism_input_length": ("", "I"), "extism_input_offset": ("", "I"),
    "extism_input_load_u8": ("I", "i"), "extism_input_load_u64": ("I", "I"),
    "extism_output_set": ("II", ""), "extism_error_set": ("I", ""), "extism_memory_bytes": ("", "I"),
    "extism_config_get": ("I", "I"), "extism_var_get": ("I", "I"), "extism_var_set": ("II", ""),
    "extism_http_request": ("II", "I"), "extism_http_status_code": ("", "i"),
    "extism_log_info": ("I", ""), "extism_log_debug": ("I", ""), "extism_log_warn": ("I", ""),
    "extism_log_error": ("I", ""),
    "call_llm": ("I", "I"), "call_tool": ("I", "I"), "call_agent": ("I", "I"),
}
ABI0_CHAINSOCKET = frozenset({"call_llm", "call_tool", "call_agent"})


class WasmFormatError(ValueError):
    """Not a wasm module, or a malformed one."""


@dataclass
class Interface:
    imports: list[tuple[str, str, str]] = field(default_factory=list)  # (module, name, kind)
    exports: dict[str, str] = field(default_factory=dict)  # name -> kind
    memory_min_pages: int | None = None
    memory_max_pages: int | None = None

    @property
    def uses_wasi(self) -> bool:
        return any(module == WASI for module, _, _ in self.imports)

    @property
    def abi0(self) -> bool:
        """Built for Extism 0.x (Chainsocket ABI 0): it imports the 0.x kernel (`env.extism_*`) or the
        original Chainsocket host functions (`env.call_llm/call_tool/call_agent`)."""
        return any(module == ENV and (name.startswith("extism_") or name in ABI0_CHAINSOCKET)
                   for module, name, _ in self.imports)

    def problems(self, allow_wasi: bool = True) -> list[str]:
        """Why this module cannot be a Chainsocket plug-in (empty when it can). An ABI 0 module's
        imports are judged by what cspm can link for Extism 0.x (ABI0_IMPORTS)."""
        found = []
        if self.exports.get("call") != "func":
            found.append("it does not export a function `call`")
        low, high = self.memory_min_pages, self.memory_max_pages
        if low is not None and (low > MAX_PAGES or (high is not None and not low <= high <= MAX_PAGES)):
            # no engine can instantiate it; without this it would pass until the first run
            most = "" if high is None else f" and at most {high}"
            found.append(f"its memory declares {low} pages at start{most}, which no engine can create (a wasm32 "
                         f"memory has at most {MAX_PAGES} pages, and its minimum may not exceed its maximum)")
        if self.abi0:
            return found + self._abi0_problems(allow_wasi)
        for module, name, _kind in self.imports:
            if module == EXTISM_ENV or (module == WASI and allow_wasi):
                continue
            if module == EXTISM_USER and name in CHAINSOCKET_FUNCTIONS:
                continue
            if module == EXTISM_USER:
                found.append(f"it imports `{name}` from {EXTISM_USER}, which is not a Chainsocket host function")
            else:
                found.append(f"it imports `{module}.{name}`, which no Chainsocket host provides")
        return found

    def _abi0_problems(self, allow_wasi: bool) -> list[str]:
        found = []
        for module, name, kind in self.imports:
            if module == WASI and allow_wasi:
                continue
            if module == ENV and name in ABI0_IMPORTS and kind == "func":
                continue
            if module == ENV:
                found.append(f"it imports `env.{name}`, which is not an Extism 0.x function cspm can link")
            elif module in (EXTISM_ENV, EXTISM_USER):
                found.append(f"it imports `{module}.{name}` (Extism 1.x) next to Extism 0.x imports from `env`")
            else:
                found.append(f"it imports `{module}.{name}`, which no Chainsocket host provides")
        return found


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos, self.end = data, pos, len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise WasmFormatError("truncated module")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uleb(self, max_bits: int = 32) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift >= max_bits + 7:
                raise WasmFormatError("malformed LEB128 integer")
        if result >> max_bits:
            raise WasmFormatError("integer too large")
        return result

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise WasmFormatError("truncated module")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def name(self) -> str:
        raw = self.take(self.uleb())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WasmFormatError("a name is not UTF-8") from None

    def limits(self) -> tuple[int, int | None]:
        flags = self.byte()
        bits = 64 if flags & 0x04 else 32
        low = self.uleb(bits)
        high = self.uleb(bits) if flags & 0x01 else None
        return low, high


Reader = _Reader  # the bounded LEB128 reader, for cspm.runtime.abi0's import-section rewrite


def read_interface(data: bytes) -> Interface:
    _check_header(data[:8], len(data))
    found = Interface()
    reader = _Reader(data, 8)
    while reader.pos < reader.end:
        section_id = reader.byte()
        size = reader.uleb()
        start = reader.pos
        if start + size > reader.end:
            raise WasmFormatError("truncated module (a section runs past the end)")
        if section_id in INTERFACE_SECTIONS:
            _section(section_id, _Reader(data, start, start + size), found)
        reader.pos = start + size
    return found


def read_interface_file(handle: BinaryIO, size: int) -> Interface:
    """`read_interface` of a module in a file of `size` bytes, reading only the section headers and the
    import, export and memory sections (each at most MAX_INTERFACE_SECTION bytes): the code and data
    sections are skipped with a seek, so a large module is never held in memory."""
    _check_header(handle.read(8), size)
    found = Interface()
    pos = 8
    while pos < size:
        header = _Reader(handle.read(min(8, size - pos)))  # an id byte and a LEB128 (5 bytes, or malformed)
        section_id = header.byte()
        length = header.uleb()
        start = pos + header.pos
        if start + length > size:
            raise WasmFormatError("truncated module (a section runs past the end)")
        if section_id in INTERFACE_SECTIONS:
            if length > MAX_INTERFACE_SECTION:
                raise WasmFormatError(f"its section {section_id} is larger than {MAX_INTERFACE_SECTION >> 20} MiB")
            handle.seek(start)
            body = handle.read(length)
            if len(body) != length:
                raise WasmFormatError("truncated module")
            _section(section_id, _Reader(body), found)
        pos = start + length
        handle.seek(pos)
    return found


def _check_header(head: bytes, size: int) -> None:
    if size < 8 or head[:4] != MAGIC:
        raise WasmFormatError("not a WebAssembly module (bad magic number)")
    if head[4:8] != VERSION:
        raise WasmFormatError("not a core WebAssembly module of version 1 (a component?)")


def _section(section_id: int, body: _Reader, found: Interface) -> None:
    if section_id == SECTION_IMPORT:
        _imports(body, found)
    elif section_id == SECTION_EXPORT:
        for _ in range(body.uleb()):
            name = body.name()
            kind = KINDS.get(body.byte(), "unknown")
            body.uleb()
            found.exports[name] = kind
    elif section_id == SECTION_MEMORY:
        count = body.uleb()
        if count:
            found.memory_min_pages, found.memory_max_pages = body.limits()


def import_descriptor(body: _Reader) -> tuple[str, int | None, tuple[int, int | None] | None]:
    """Read one import's kind and what follows it: (kind, the function's type index, the memory's
    limits), the others skipped. Shared by this reader and ABI 0's rewrite (cspm.runtime.abi0)."""
    kind_byte = body.byte()
    kind = KINDS.get(kind_byte)
    type_index: int | None = None
    limits: tuple[int, int | None] | None = None
    if kind == "func":
        type_index = body.uleb()
    elif kind == "table":
        body.byte()
        body.limits()
    elif kind == "memory":
        limits = body.limits()
    elif kind == "global":
        body.byte()
        body.byte()
    elif kind == "tag":
        body.byte()
        body.uleb()
    else:
        raise WasmFormatError(f"unknown import kind {kind_byte}")
    return kind, type_index, limits


def _imports(body: _Reader, found: Interface) -> None:
    for _ in range(body.uleb()):
        module, name = body.name(), body.name()
        kind, _, limits = import_descriptor(body)
        if limits is not None:
            found.memory_min_pages, found.memory_max_pages = limits
        found.imports.append((module, name, kind))
