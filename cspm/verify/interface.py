"""The interface check a module passes before it is cached as good, or published.

The module must parse, export `call`, and import only the Extism kernel, the Chainsocket host
functions, and WASI when the plug-in declares it. What the index entry says about its exports and
imports must be what the blob really has: an index cannot describe one module and serve another.
"""

from __future__ import annotations

from cspm.errors import CspmError
from cspm.verify.wasm import Interface, WasmFormatError, read_interface


class InterfaceError(CspmError):
    pass


def import_names(interface: Interface) -> list[str]:
    return sorted({f"{module}::{name}" for module, name, _ in interface.imports})


def export_names(interface: Interface) -> list[str]:
    return sorted(name for name, kind in interface.exports.items() if kind == "func")


def check_module(data: bytes, what: str, *, wasi_declared: bool) -> Interface:
    try:
        interface = read_interface(data)
    except WasmFormatError as exc:
        raise InterfaceError(f"{what} is not a usable wasm module: {exc}") from None
    problems = interface.problems(allow_wasi=wasi_declared)
    if problems:
        extra = " (declare `wasi: true` in its capabilities if it needs WASI)" if interface.uses_wasi \
            and not wasi_declared else ""
        raise InterfaceError(f"{what} is not a Chainsocket plug-in: {'; '.join(problems)}{extra}")
    return interface


def check_against_entry(data: bytes, what: str, exports: list[str] | tuple[str, ...],
                        imports: list[str] | tuple[str, ...], wasi_declared: bool) -> Interface:
    interface = check_module(data, what, wasi_declared=wasi_declared)
    if sorted(exports) != export_names(interface) or sorted(imports) != import_names(interface):
        raise InterfaceError(f"{what}: the index describes other exports/imports than the module has",
                             hint="the registry's index and blob disagree; tell its operator")
    return interface
