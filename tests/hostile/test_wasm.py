"""Hostile wasm: each module through `cspm inspect`, `cspm run` (a local plug-in) and `cspm index
build` (the check `cspm publish` and the registry server run too); each refused with its exact
reason, and nothing written."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile.conftest import Snapshot, refused


def _leb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _section(number: int, body: bytes) -> bytes:
    return bytes([number]) + _leb(len(body)) + body


def module_with_memory(limits: bytes) -> bytes:
    """A module that exports `call` (returns 0) and a memory with the given raw limits."""
    return (b"\0asm\1\0\0\0" + _section(1, b"\x01\x60\x00\x01\x7f") + _section(3, b"\x01\x00")
            + _section(5, b"\x01" + limits)
            + _section(7, b"\x02" + _leb(4) + b"call\x00\x00" + _leb(6) + b"memory\x02\x00")
            + _section(10, b"\x01\x04\x00\x41\x00\x0b"))


# (id, how to make it from (the real plug-in, the wat modules), the exact refusal)
CASES: list[tuple[str, Callable[[bytes, dict[str, bytes]], bytes], str]] = [
    ("truncated", lambda good, wat: good[:100], "is not a usable wasm module: truncated module"),
    ("truncated-header", lambda good, wat: good[:6], "is not a usable wasm module: not a WebAssembly module"),
    ("empty", lambda good, wat: b"", "is not a usable wasm module: not a WebAssembly module (bad magic number)"),
    ("random-bytes", lambda good, wat: bytes((i * 7919 + 13) % 251 for i in range(4096)),
     "is not a usable wasm module: not a WebAssembly module (bad magic number)"),
    ("component-version", lambda good, wat: b"\0asm\x0d\0\x01\0" + good[8:],
     "not a core WebAssembly module of version 1 (a component?)"),
    ("section-past-end", lambda good, wat: good[:8] + b"\x01\xff\xff\xff\x0f" + good[8:40],
     "truncated module (a section runs past the end)"),
    ("leb-overflow", lambda good, wat: good[:8] + b"\x01\xff\xff\xff\xff\xff\xff\x01",
     "malformed LEB128 integer"),
    ("memory-4-billion-pages", lambda good, wat: module_with_memory(b"\x00" + _leb(0xFFFFFFFF)),
     "its memory declares 4294967295 pages at start, which no engine can create"),
    ("memory-min-over-max", lambda good, wat: module_with_memory(b"\x01" + _leb(20) + _leb(10)),
     "its memory declares 20 pages at start and at most 10, which no engine can create"),
    ("no-call-export", lambda good, wat: wat["nocall"], "does not export a function `call`"),
    ("unknown-host-function", lambda good, wat: wat["badimport"],
     "it imports `launch_missiles` from extism:host/user, which is not a Chainsocket host function"),
    ("unknown-import-module", lambda good, wat: wat["badimport"].replace(b"extism:host/user", b"extism:host/evil"),
     "it imports `extism:host/evil.launch_missiles`, which no Chainsocket host provides"),
]
IDS = [case[0] for case in CASES]


@pytest.fixture
def hostile(request: pytest.FixtureRequest, tmp_path: Path, echo_wasm: bytes, wat_modules: dict[str, bytes]
            ) -> tuple[Path, str]:
    _, make, expect = request.param
    path = tmp_path / "evil.wasm"
    path.write_bytes(make(echo_wasm, wat_modules))
    return path, expect


@pytest.mark.parametrize("hostile", CASES, ids=IDS, indirect=True)
def test_inspect_refuses(hostile: tuple[Path, str], tmp_path: Path) -> None:
    path, expect = hostile
    snap = Snapshot(tmp_path)
    refused("inspect", str(path), code=1, expect=expect)
    snap.assert_unchanged()


@pytest.mark.parametrize("hostile", CASES, ids=IDS, indirect=True)
def test_run_refuses_to_load_it(hostile: tuple[Path, str], tmp_path: Path) -> None:
    path, expect = hostile
    app = tmp_path / "app.yaml"
    app.write_text(f"entry: t\ntools:\n  - {{name: t, description: evil, plugin_name: {path.name}}}\n")
    snap = Snapshot(tmp_path)
    stderr = refused("run", str(app), "-i", "x", code=1, expect=expect)
    assert f"{app}:3: tool `t`" in stderr  # names the file and line of the component
    snap.assert_unchanged()  # no lock, no store entry, no compiled module


@pytest.mark.parametrize("hostile", CASES, ids=IDS, indirect=True)
def test_index_build_refuses_it(hostile: tuple[Path, str], tmp_path: Path) -> None:
    path, expect = hostile
    src = tmp_path / "src" / "evil"
    src.mkdir(parents=True)
    path.rename(src / "m.wasm")
    (src / "plugin.yaml").write_text("name: test/evil\nversion: 1.0.0\nkind: tool\nabi: 1\nwasm: m.wasm\n"
                                     "description: hostile\n")
    snap = Snapshot(tmp_path)
    refused("index", "build", str(src.parent), "--out", str(tmp_path / "out"), code=(1, 2), expect=expect)
    snap.assert_unchanged()  # `out` was never created


def test_a_valid_module_with_4_gib_of_memory_is_refused_at_load(tmp_path: Path) -> None:
    """65,536 pages is legal wasm (so inspect accepts it), but no grant gives that: refused before it runs."""
    (tmp_path / "big.wasm").write_bytes(module_with_memory(b"\x00" + _leb(65536)))
    app = tmp_path / "app.yaml"
    app.write_text("entry: t\ntools:\n  - {name: t, description: big, plugin_name: big.wasm}\n")
    snap = Snapshot(tmp_path)
    stderr = refused("run", str(app), "-i", "x", code=1,
                     expect="the module needs 65536 memory pages at start, more than the 256 granted")
    assert "grant: {memory_pages: N}" in stderr
    snap.assert_unchanged()


def test_the_corpus_is_what_it_claims(echo_wasm: bytes) -> None:
    """The corruptions start from a real plug-in that passes (so each case fails for its own reason)."""
    from cspm.verify.interface import check_module

    check_module(echo_wasm, "echo", wasi_declared=False)
    check_module(module_with_memory(b"\x01" + _leb(1) + _leb(2)), "small", wasi_declared=False)
    assert struct.unpack("<I", echo_wasm[4:8]) == (1,)
