"""The wasm interface reader: imports and exports of real modules, refusal of malformed ones."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from cspm.verify.wasm import WasmFormatError, read_interface
from tests.conftest import LANGUAGES, conformance_wasm


@pytest.mark.parametrize("lang", LANGUAGES)
def test_conformance_modules_have_the_plugin_interface(lang: str) -> None:
    interface = read_interface(conformance_wasm(lang).read_bytes())
    assert interface.exports.get("call") == "func"
    assert interface.problems() == []
    user = {name for module, name, _ in interface.imports if module == "extism:host/user"}
    assert {"call_llm", "call_tool", "call_agent", "http_fetch", "kv_get", "kv_set", "emit"} <= user
    assert interface.uses_wasi == (lang == "go")


def test_problems_are_named(wat_dir: Path) -> None:
    assert read_interface((wat_dir / "nocall.wasm").read_bytes()).problems() == [
        "it does not export a function `call`"]
    problems = read_interface((wat_dir / "badimport.wasm").read_bytes()).problems()
    assert problems == ["it imports `launch_missiles` from extism:host/user, which is not a Chainsocket host function"]


def test_memory_limits_are_read(wat_dir: Path) -> None:
    interface = read_interface((wat_dir / "hog.wasm").read_bytes())
    assert interface.memory_min_pages == 1 and interface.memory_max_pages is None


@pytest.mark.parametrize("data, message", [
    (b"", "bad magic"),
    (b"\0asm", "bad magic"),
    (b"\0asm\x0d\0\x01\0", "component"),
    (b"\0asm\x01\0\0\0\x02\x10\x01", "runs past the end"),
    (b"\0asm\x01\0\0\0\x07\x05\x01\xff\xff\xff\xff", "truncated"),
    (b"\0asm\x01\0\0\0\x02\x06\x01\x01a\x01b\x09", "unknown import kind"),
])
def test_malformed_modules_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(WasmFormatError, match=message):
        read_interface(data)


def test_truncations_and_random_bytes_never_crash() -> None:
    real = conformance_wasm("c").read_bytes()
    for cut in range(8, len(real), max(1, len(real) // 200)):
        with contextlib.suppress(WasmFormatError):
            read_interface(real[:cut])
    for seed in range(200):
        noise = b"\0asm\x01\0\0\0" + os.urandom(64 + seed)
        with contextlib.suppress(WasmFormatError):
            read_interface(noise)
