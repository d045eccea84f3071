"""The package kinds, in one table: what each kind is, where its payload is, how it is checked and used.

Every place that once asked `kind == "model"` or `kind in ("llm", "tool", "agent")` asks this table
instead, so a new kind is one entry here (and its schema enum), not a hunt through the code. The
table holds facts only; code that acts on a kind (checking a blob, mounting a file) looks the kind up
and branches on a fact (`is_module`, `payload`, `mounted_as`), never on the kind's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Payload = Literal["wasm", "app", "file"]


@dataclass(frozen=True)
class Kind:
    name: str
    is_module: bool  # a WebAssembly plug-in a host instantiates, with ABI exports and imports
    payload: Payload  # the plugin.yaml key naming the published file: a module, an app file, a data file
    section: str | None  # the app.yaml list a component of this kind goes in; None: not a component
    noun: str  # how a sentence names it: "a tool", "a model package"
    mounted_as: str | None = None  # the app.yaml key and guest folder a component reads it through
    blob_check: Literal["module", "gguf", "data", "app"] = "module"  # what a downloaded blob must be
    rehash_on_install: bool = True  # small enough to re-hash on every install (big files: size + mtime)


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("llm", True, "wasm", "llms", "llm"),
    Kind("tool", True, "wasm", "tools", "tool"),
    Kind("agent", True, "wasm", "agents", "agent"),
    Kind("app", False, "app", None, "app", blob_check="app"),
    Kind("model", False, "file", None, "model package", mounted_as="models", blob_check="gguf",
         rehash_on_install=False),
    Kind("data", False, "file", None, "data package", mounted_as="data", blob_check="data",
         rehash_on_install=False),
)}

MODULE_KINDS = frozenset(name for name, kind in KINDS.items() if kind.is_module)
MOUNTED_KINDS = frozenset(name for name, kind in KINDS.items() if kind.mounted_as)
SECTIONS = {kind.section: name for name, kind in KINDS.items() if kind.section}  # "tools" -> "tool"


def of(name: str) -> Kind:
    """The kind named `name`; every kind that reaches here has passed a schema enum of these names."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a package kind (one of {', '.join(KINDS)})") from None


def is_module(name: str) -> bool:
    return name in MODULE_KINDS
