"""Hostile Extism 0.x (ABI 0) modules: the import-section rewrite (cspm.runtime.abi0) reads untrusted
bytes. Each malformed or unmappable module is refused with its reason: by `cspm run` (nothing
written), and by the rewrite itself for what the section reader before it would let through."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cspm.runtime import abi0
from cspm.verify.wasm import WasmFormatError, read_interface
from tests.hostile.conftest import Snapshot, refused
from tests.hostile.test_wasm import _leb, _section

I32, I64 = b"\x7f", b"\x7e"


def functype(params: bytes, results: bytes) -> bytes:
    return b"\x60" + _leb(len(params)) + params + _leb(len(results)) + results


def name(text: bytes) -> bytes:
    return _leb(len(text)) + text


def func_import(module: bytes, field: bytes, type_index: int) -> bytes:
    return name(module) + name(field) + b"\x00" + _leb(type_index)


# type 0: () -> i32 (`call`), 1: (i64) -> i64, 2: (i32) -> i32
TYPES = _section(1, b"\x03" + functype(b"", I32) + functype(I64, I64) + functype(I32, I32))


def module(imports: list[bytes], *, types: bytes = TYPES, import_section: bytes | None = None) -> bytes:
    """A module importing `imports` whose `call` (its first own function) returns 0."""
    body = import_section if import_section is not None else _leb(len(imports)) + b"".join(imports)
    n = len(imports)
    return (b"\0asm\1\0\0\0" + types + _section(2, body) + _section(3, b"\x01\x00")
            + _section(7, b"\x01" + name(b"call") + b"\x00" + _leb(n))
            + _section(10, b"\x01\x04\x00\x41\x00\x0b"))


GOOD = module([func_import(b"env", b"extism_alloc", 1), func_import(b"env", b"call_llm", 1)])

# (id, module, what `cspm run` says)
RUN_CASES = [
    ("unknown-env-name", module([func_import(b"env", b"extism_launch", 1)]),
     "it imports `env.extism_launch`, which is not an Extism 0.x function cspm can link"),
    ("wrong-signature", module([func_import(b"env", b"extism_alloc", 2)]),
     "is built for Extism 0.x and cspm cannot link it: its import `env.extism_alloc` has the signature "
     "(i32) -> i32; Extism 0.x's is (i64) -> i64"),
    ("env-memory", module([func_import(b"env", b"extism_alloc", 1), name(b"env") + name(b"memory") + b"\x02\x00\x01"]),
     "it imports `env.memory`, which is not an Extism 0.x function cspm can link"),
    ("mixed-with-1.x", module([func_import(b"env", b"extism_alloc", 1),
                               func_import(b"extism:host/env", b"alloc", 1)]),
     "it imports `extism:host/env.alloc` (Extism 1.x) next to Extism 0.x imports from `env`"),
    ("other-module", module([func_import(b"env", b"call_tool", 1), func_import(b"evil", b"x", 1)]),
     "it imports `evil.x`, which no Chainsocket host provides"),
    ("import-section-past-end", GOOD[:GOOD.index(b"\x02", 8 + len(TYPES)) + 3],
     "truncated module (a section runs past the end)"),
    ("bad-leb-in-imports", module([], import_section=b"\x01\xff\xff\xff\xff\xff\xff\x01"),
     "malformed LEB128 integer"),
]


@pytest.mark.parametrize(("case", "wasm", "expect"), RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_run_refuses_it(tmp_path: Path, case: str, wasm: bytes, expect: str) -> None:
    (tmp_path / "old.wasm").write_bytes(wasm)
    app = tmp_path / "app.yaml"
    app.write_text("entry: t\ntools:\n  - {name: t, description: old, plugin_name: old.wasm}\n")
    snap = Snapshot(tmp_path)
    stderr = refused("run", str(app), "-i", "x", code=1, expect=expect)
    assert f"{app}:3: tool `t`" in stderr
    snap.assert_unchanged()


def test_the_good_module_loads(tmp_path: Path) -> None:
    """The base of the corpus is a module `cspm run` accepts (so each case fails for its own reason)."""
    assert read_interface(GOOD).abi0 and read_interface(GOOD).problems() == []
    rewritten = abi0.rewrite(GOOD)
    assert [(m, n) for m, n, _ in read_interface(rewritten).imports] == [
        ("extism:host/env", "alloc"), ("extism:host/user", "cs0_call_llm")]


# (id, module, what the rewrite says): bounds the rewrite checks itself
REWRITE_CASES = [
    ("fewer-imports-than-counted", module([], import_section=b"\x02" + func_import(b"env", b"extism_alloc", 1)),
     "truncated module"),
    ("bytes-after-imports", module([], import_section=b"\x01" + func_import(b"env", b"extism_alloc", 1) + b"\0"),
     "its import section has bytes past its last import"),
    ("type-out-of-range", module([func_import(b"env", b"extism_alloc", 9)]),
     "its import `env.extism_alloc` names type 9, which it does not define"),
    ("no-type-section", module([func_import(b"env", b"extism_alloc", 0)], types=b""),
     "its import `env.extism_alloc` names type 0, which it does not define"),
    ("gc-type", module([func_import(b"env", b"extism_alloc", 0)], types=_section(1, b"\x01\x5f\x00")),
     "a type of form 0x5f"),
    ("odd-value-type", module([func_import(b"env", b"extism_alloc", 0)],
                              types=_section(1, b"\x01" + functype(b"\x40", b""))),
     "a value type 0x40"),
    ("name-not-utf8", module([func_import(b"env", b"extism_\xff", 1)]), "a name is not UTF-8"),
    ("name-length-past-end", module([], import_section=b"\x01\x7fenv"), "truncated module"),
    ("two-import-sections", GOOD[:8] + TYPES + _section(2, b"\x00") + GOOD[8 + len(TYPES):],
     "it has two import sections"),
    ("no-import-section", b"\0asm\1\0\0\0" + TYPES, "it has no import section"),
    ("not-wasm", b"\0asn\1\0\0\0", "bad magic number"),
]


@pytest.mark.parametrize(("case", "wasm", "expect"), REWRITE_CASES, ids=[c[0] for c in REWRITE_CASES])
def test_rewrite_refuses_it(case: str, wasm: bytes, expect: str) -> None:
    with pytest.raises(WasmFormatError, match=expect.replace("(", r"\(").replace(")", r"\)")):
        abi0.rewrite(wasm)


def test_rewrite_of_corrupted_modules_never_fails_otherwise(wat_modules: dict[str, bytes]) -> None:
    """5,000 random corruptions of a real ABI 0 module (bytes flipped, cut, inserted): each is either
    rewritten or refused with WasmFormatError, never another exception, and a rewrite is never
    longer than the input by more than the renamed imports can make it."""
    base = wat_modules["abi0_kernel"]
    grow = len(abi0.rewrite(base)) - len(base)
    rng = random.Random(23)
    for _ in range(5000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(8, len(data))
            action = rng.random()
            if action < 0.6:
                data[at] = rng.randrange(256)
            elif action < 0.8:
                del data[at:at + rng.randint(1, 64)]
            else:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        try:
            out = abi0.rewrite(bytes(data))
        except WasmFormatError:
            continue
        assert len(out) <= len(data) + grow + 16
