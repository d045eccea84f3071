"""The interface check a module passes before it is cached as good, or published.

The module must parse, export `call`, and import only the Extism kernel, the Chainsocket host
functions, and WASI when the plug-in declares it. What the index entry says about its exports and
imports must be what the blob really has: an index cannot describe one module and serve another.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cspm.errors import InterfaceError
from cspm.verify.wasm import ABI0_DESCRIPTION, Interface, WasmFormatError, read_interface, read_interface_file


def import_names(interface: Interface) -> list[str]:
    return sorted({f"{module}::{name}" for module, name, _ in interface.imports})


def export_names(interface: Interface) -> list[str]:
    return sorted(name for name, kind in interface.exports.items() if kind == "func")


def check_module(data: bytes, what: str, *, wasi_declared: bool, abi0: bool = False) -> Interface:
    """`abi0`: an Extism 0.x module is acceptable (a local app's, or `cspm inspect`); a package in a
    registry is always ABI 1, so publishing, `cspm index build` and installing refuse one."""
    try:
        interface = read_interface(data)
    except WasmFormatError as exc:
        raise InterfaceError(f"{what} is not a usable wasm module: {exc}") from None
    return _checked(interface, what, wasi_declared, abi0)


def check_module_file(path: Path, what: str, *, wasi_declared: bool, exports: Sequence[str] | None = None,
                      imports: Sequence[str] | None = None) -> Interface:
    """`check_module` (and, given the index's `exports` and `imports`, `check_against_entry`) of a module
    in a file, read by its section headers: a download is checked without holding it in memory."""
    try:
        with path.open("rb") as handle:
            interface = read_interface_file(handle, os.fstat(handle.fileno()).st_size)
    except WasmFormatError as exc:
        raise InterfaceError(f"{what} is not a usable wasm module: {exc}") from None
    _checked(interface, what, wasi_declared)
    if exports is not None and imports is not None:
        _matches(interface, what, exports, imports)
    return interface


def _checked(interface: Interface, what: str, wasi_declared: bool, abi0: bool = False) -> Interface:
    problems = interface.problems(allow_wasi=wasi_declared)
    if interface.abi0 and not abi0 and not problems:
        raise InterfaceError(f"{what} is {ABI0_DESCRIPTION}: cspm runs such a module from a local app "
                             f"(`plugin_name` in app.yaml, or the original app.json), but a package is built "
                             f"for ABI 1", hint="rebuild it with a current Extism PDK (docs/abi.md)")
    if problems:
        extra = " (declare `wasi: true` in its capabilities if it needs WASI)" if interface.uses_wasi \
            and not wasi_declared else ""
        raise InterfaceError(f"{what} is not a Chainsocket plug-in: {'; '.join(problems)}{extra}")
    return interface


def check_against_entry(data: bytes, what: str, exports: list[str] | tuple[str, ...],
                        imports: list[str] | tuple[str, ...], wasi_declared: bool) -> Interface:
    interface = check_module(data, what, wasi_declared=wasi_declared)
    return _matches(interface, what, exports, imports)


def _matches(interface: Interface, what: str, exports: Sequence[str], imports: Sequence[str]) -> Interface:
    if sorted(exports) != export_names(interface) or sorted(imports) != import_names(interface):
        raise InterfaceError(f"{what}: the index describes other exports/imports than the module has",
                             hint="the registry's index and blob disagree; tell its operator")
    return interface
