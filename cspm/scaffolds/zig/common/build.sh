#!/usr/bin/env bash
# Builds build/{{short}}.wasm with Zig 0.17 (PyPI `ziglang`): a freestanding wasm32 module (no libc,
# no WASI) that imports only what it calls from extism:host/env (the Extism kernel) and
# extism:host/user (the Chainsocket host functions). Offline and reproducible: the same sources give
# the same bytes wherever the folder is. Prints the output path last.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if python3 -c 'import ziglang' 2>/dev/null; then zig=(python3 -m ziglang)
elif command -v zig >/dev/null; then zig=(zig)
else echo "build.sh: Zig not found: pip install ziglang" >&2; exit 1
fi

mkdir -p build
out=build/{{short}}.wasm
# -fno-entry -rdynamic: a library module whose `export fn`s are the wasm exports.
# -O ReleaseSmall -fstrip: small, no debug info (and so no paths of this machine).
# --cache-dir build/zig-cache: Zig's per-project cache stays in build/ (the global one is ~/.cache/zig).
# The SDK is a module named "chainsocket" (`@import("chainsocket")`): `--dep chainsocket` adds it to
# the imports of the module that follows, src/main.zig.
"${zig[@]}" build-exe -target wasm32-freestanding -fno-entry -rdynamic -O ReleaseSmall -fstrip \
    --cache-dir build/zig-cache \
    --dep chainsocket -Mroot=src/main.zig -Mchainsocket=sdk/chainsocket.zig \
    -femit-bin="$out"
echo "$PWD/$out"
