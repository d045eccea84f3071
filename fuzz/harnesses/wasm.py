"""Fuzz the wasm interface reader (cspm/verify/wasm.py) and the plug-in check built on it.

Expected: `WasmFormatError` from `read_interface` (not a module, or a malformed one) and
`InterfaceError` from `check_module` (not a usable plug-in). Anything else is a crash.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["cspm"]):
    from cspm.verify.interface import InterfaceError, check_module, export_names, import_names
    from cspm.verify.wasm import WasmFormatError, read_interface


def test_one_input(data: bytes) -> None:
    try:
        interface = read_interface(data)
    except WasmFormatError:
        try:  # the check must refuse what the reader refuses, with its own error type
            check_module(data, "fuzz", wasi_declared=True)
        except InterfaceError:
            return
        raise AssertionError("check_module accepted a module read_interface refuses") from None
    interface.problems(allow_wasi=False)
    export_names(interface)
    import_names(interface)
    try:
        checked = check_module(data, "fuzz", wasi_declared=True)
    except InterfaceError:
        return
    assert checked.exports.get("call") == "func"


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
