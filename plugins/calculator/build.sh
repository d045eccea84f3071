#!/usr/bin/env bash
# Builds build/calculator.wasm from source with Zig 0.17 (PyPI `ziglang`), offline.
# The SDK is the Zig module "chainsocket": `--dep chainsocket -Mroot=... -Mchainsocket=...`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if python -c 'import ziglang' 2>/dev/null; then zig=(python -m ziglang)
elif python3 -c 'import ziglang' 2>/dev/null; then zig=(python3 -m ziglang)
elif command -v zig >/dev/null; then zig=(zig)
else echo "build.sh: Zig not found: pip install ziglang" >&2; exit 1
fi

mkdir -p build
out=build/calculator.wasm
"${zig[@]}" build-exe -target wasm32-freestanding -fno-entry -rdynamic -O ReleaseSmall -fstrip \
    --cache-dir build/zig-cache \
    --dep chainsocket -Mroot=src/main.zig -Mchainsocket=../sdk/zig/chainsocket.zig \
    -femit-bin="$out"
echo "$PWD/$out"
