#!/usr/bin/env bash
# Build the self-ask agent: freestanding wasm32 C (no libc, no WASI) with the Chainsocket C SDK, so the
# module imports only extism:host/env and extism:host/user. Prints the output path as its last line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

CC="${CC:-clang-14}"
SDK=../sdk/c
OUT=build/self-ask.wasm

command -v "$CC" >/dev/null || { echo "build.sh: $CC not found (apt-get install -y --no-install-recommends clang-14 lld-14)" >&2; exit 1; }
mkdir -p build
# Reproducible output (plugins/check-reproducible.sh): the sources are named by relative paths and
# the module carries no debug info, but map the checkout's absolute path (logical and physical) all
# the same, should -g or __FILE__ ever come in. No __DATE__/__TIME__ in the sources.
prefix_map=(-ffile-prefix-map="$PWD"=. -ffile-prefix-map="$(pwd -P)"=.)

# -Os: smallest module. clang-14 also runs /usr/bin/wasm-opt when binaryen is installed; do not add
# -Wl,--strip-all (it breaks that step).
"$CC" --target=wasm32-unknown-unknown -nostdlib -mbulk-memory -Os -std=c11 \
    -Wall -Wextra -Werror -Wno-unused-parameter \
    "${prefix_map[@]}" \
    -I"$SDK" -Isrc -Wl,--no-entry \
    -o "$OUT.tmp" \
    src/self_ask.c src/parse.c src/prompt.c src/settings.c src/text.c \
    "$SDK/chainsocket.c" "$SDK/cs_json.c" "$SDK/cs_mem.c"
mv -f "$OUT.tmp" "$OUT"

echo "$OUT"
