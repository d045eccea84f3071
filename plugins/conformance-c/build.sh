#!/usr/bin/env bash
# Build the C conformance plug-in from source: freestanding wasm32 (no libc, no WASI), so the module
# imports only extism:host/env and extism:host/user. Prints the output path and nothing else.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

CC="${CC:-clang-14}"
SDK=../sdk/c
OUT=build/conformance-c.wasm

command -v "$CC" >/dev/null || { echo "build.sh: $CC not found (apt-get install -y --no-install-recommends clang-14 lld-14)" >&2; exit 1; }
mkdir -p build
# Reproducible output (plugins/check-reproducible.sh): the sources are named by relative paths and
# the module carries no debug info, but map the checkout's absolute path (logical and physical) all
# the same, should -g or __FILE__ ever come in. No __DATE__/__TIME__ in the sources.
prefix_map=(-ffile-prefix-map="$PWD"=. -ffile-prefix-map="$(pwd -P)"=.)

# -O2 also runs /usr/bin/wasm-opt when binaryen is installed; do not add -Wl,--strip-all (breaks that step).
"$CC" --target=wasm32-unknown-unknown -nostdlib -mbulk-memory -O2 -std=c11 \
    -Wall -Wextra -Werror -Wno-unused-parameter \
    "${prefix_map[@]}" \
    -I"$SDK" -Wl,--no-entry \
    -o "$OUT" \
    src/conformance.c "$SDK/chainsocket.c" "$SDK/cs_json.c" "$SDK/cs_mem.c"

echo "$OUT"
