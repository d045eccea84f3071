"""Compile each module once: in memory per process, and on disk through wasmtime's cache.

Extism reads the wasmtime cache configuration from EXTISM_CACHE_CONFIG when it compiles; we point
it at a cache directory of our own so a warm start compiles nothing and `cspm cache clean` owns it.
Beside it, an empty marker file per module digest records that this cache has compiled it once, so
`cspm run` can say "compiling N modules…" before a cold start (3-4 s) instead of going quiet.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import extism
from extism.extism import CompiledPlugin

from cspm.cachedir import Bucket

_compiled: dict[tuple, CompiledPlugin] = {}

# Every error Extism returns is an anyhow error, which captures (and symbolises) a host stack trace
# when RUST_BACKTRACE is set: ~70 ms per failing plug-in call, for a trace of the host that says
# nothing about the plug-in. RUST_LIB_BACKTRACE=0 turns that off for errors and leaves RUST_BACKTRACE
# to panics; it is read at the first error, so setting it when this module loads is early enough.
# A RUST_LIB_BACKTRACE the user set is kept (debugging Extism itself).
os.environ.setdefault("RUST_LIB_BACKTRACE", "0")

WASI_OUTPUT = "EXTISM_ENABLE_WASI_OUTPUT"


@dataclass(frozen=True)
class Limits:
    memory_pages: int
    timeout_ms: int
    wasi: bool
    paths: tuple[tuple[str, str], ...] = ()  # ("ro:/host/dir", "/guest") pairs, as Extism takes them


def extism_version() -> str:
    return extism.extism_version()


def configure_disk_cache(directory: Path | None = None) -> Path:
    """Point wasmtime's compile cache at cspm's cache dir (once per process, before compiling)."""
    directory = directory or Bucket.COMPILED.path() / extism_version()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory.parent / f"wasmtime-cache-{directory.name}.toml"  # wasmtime deletes strangers inside
    text = f'[cache]\ndirectory = {json.dumps(str(directory))}\n'
    if not config.exists() or config.read_text() != text:
        from cspm import atomicfile

        atomicfile.write(config, text, mode=0o644, durable=False)  # a cache: lost is fine, torn is not
    os.environ["EXTISM_CACHE_CONFIG"] = str(config)
    return directory


def show_wasi_output() -> None:
    """Let WASI plug-ins instantiated from now on write to this process's stdout and stderr (`-v`).

    Extism (extism-sys 1.41) has no per-instance stdio: no manifest field, no C API. Its only switch
    is this environment variable, read when an instance is created, which connects the guest's fd 1
    and 2 to the host's; without it both are discarded. So a Go fatal error ("all goroutines are
    asleep") is seen on the terminal, and cannot be attached to the error the host reports."""
    os.environ[WASI_OUTPUT] = "1"


def _seen_dir() -> Path:
    """Outside wasmtime's own directory (it deletes files it does not know), inside `compiled/`, so
    `cspm cache clean compiled` drops the markers with the modules. Compiled code depends on the
    module's bytes only (memory, timeout and WASI are applied at instantiation), hence one per digest."""
    return Bucket.COMPILED.path() / f"seen-{extism_version()}"


def uncompiled(modules: Iterable[tuple[Path, str | None]]) -> int:
    """How many of these modules (path, "sha256:…" digest or None) this cache has never compiled;
    a module without a digest is hashed (an app's own plug-in file). Unreadable files count as
    compiled: loading them reports the problem."""
    seen = _seen_dir()
    cold: set[str] = set()
    for path, digest in modules:
        if digest is None:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                continue
        digest = digest.removeprefix("sha256:")
        if not (seen / digest).exists():
            cold.add(digest)
    return len(cold)


def _mark_compiled(digest: str) -> None:
    marker = _seen_dir() / digest
    if not marker.exists():
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:  # a read-only cache only means the next run says "compiling" again
            pass


def compile_module(wasm: bytes, limits: Limits, functions: list, digest: str | None = None,
                   variant: str = "") -> CompiledPlugin:
    """A CompiledPlugin for these bytes and limits, compiled at most once per process.

    `digest` names the module as the plan does; `variant` names what was made of it, when the bytes
    compiled are derived from it (an Extism 0.x module's rewritten imports: abi0.VARIANT, which carries
    the rewrite's version). The in-memory key is (digest, variant, limits); wasmtime's disk cache keys
    on the compiled bytes themselves. The "compiled once" marker stays per digest: the rewrite is a
    function of the module's bytes."""
    if "EXTISM_CACHE_CONFIG" not in os.environ:
        configure_disk_cache()
    digest = digest or hashlib.sha256(wasm).hexdigest()
    key = (digest, variant, limits)
    found = _compiled.get(key)
    if found is None:
        manifest: dict = {
            "wasm": [{"data": wasm}],
            "memory": {"max_pages": limits.memory_pages},
            "timeout_ms": limits.timeout_ms,
        }
        if limits.paths:
            manifest["allowed_paths"] = dict(limits.paths)
        found = CompiledPlugin(manifest, wasi=limits.wasi, functions=functions)
        _compiled[key] = found
        _mark_compiled(digest.removeprefix("sha256:"))
    return found


def forget() -> None:
    """Drop the in-process cache (benchmarks measure the disk cache alone)."""
    _compiled.clear()
