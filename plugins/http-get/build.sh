#!/usr/bin/env bash
# Builds build/http-get.wasm from source: freestanding wasm32 with clang-14 (no libc, no WASI), so
# the module imports only extism:host/env and the http_fetch host function. Prints the output path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

CC="${CC:-clang-14}"
SDK=../sdk/c
OUT=build/http-get.wasm

command -v "$CC" >/dev/null || { echo "build.sh: $CC not found (apt-get install -y --no-install-recommends clang-14 lld-14)" >&2; exit 1; }
mkdir -p build
# Reproducible output (plugins/check-reproducible.sh): the sources are named by relative paths and
# the module carries no debug info, but map the checkout's absolute path (logical and physical) all
# the same, should -g or __FILE__ ever come in. No __DATE__/__TIME__ in the sources.
prefix_map=(-ffile-prefix-map="$PWD"=. -ffile-prefix-map="$(pwd -P)"=.)

# -Os for size; it also runs /usr/bin/wasm-opt when binaryen is installed, so no -Wl,--strip-all
# (that breaks the wasm-opt step).
"$CC" --target=wasm32-unknown-unknown -nostdlib -mbulk-memory -Os -std=c11 \
    -Wall -Wextra -Werror -Wno-unused-parameter \
    "${prefix_map[@]}" \
    -I"$SDK" -Isrc -Wl,--no-entry \
    -o "$OUT" \
    src/http_get.c src/html_text.c src/text_sink.c src/url.c \
    "$SDK/chainsocket.c" "$SDK/cs_json.c" "$SDK/cs_mem.c"

echo "$PWD/$OUT"
