#!/usr/bin/env bash
# Builds build/{{short}}.wasm: freestanding wasm32 C (no libc, no WASI) with Debian's clang-14 and
# the Chainsocket C SDK in sdk/, so the module imports only what it calls from extism:host/env (the
# Extism kernel) and extism:host/user (the Chainsocket host functions). Offline and reproducible:
# the same sources give the same bytes wherever the folder is. Prints the output path last.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

CC="${CC:-clang-14}"
SDK=sdk
OUT=build/{{short}}.wasm
command -v "$CC" >/dev/null || {
  echo "build.sh: $CC not found: apt-get install -y --no-install-recommends clang-14 lld-14" >&2; exit 1; }
mkdir -p build

# The sources are named by relative paths and the module carries no debug info, but map this
# folder's absolute path (as typed and with links resolved) all the same, should -g or __FILE__
# ever come in: no path of this machine ends up in the module.
prefix_map=(-ffile-prefix-map="$PWD"=. -ffile-prefix-map="$(pwd -P)"=.)

# --target=wasm32-unknown-unknown -nostdlib: freestanding (sdk/cs_mem.c brings malloc, memcpy...).
# -mbulk-memory: memcpy/memset become memory.copy/memory.fill (the SDK requires it).
# -Wl,--no-entry: no _start; the exports are the CS_EXPORT functions.
# -Os: smallest module. clang-14 also runs /usr/bin/wasm-opt when binaryen is installed; do not add
# -Wl,--strip-all (it breaks that step).
"$CC" --target=wasm32-unknown-unknown -nostdlib -mbulk-memory -Os -std=c11 \
    -Wall -Wextra -Werror -Wno-unused-parameter \
    "${prefix_map[@]}" \
    -I"$SDK" -Wl,--no-entry \
    -o "$OUT.tmp" \
    src/*.c "$SDK/chainsocket.c" "$SDK/cs_json.c" "$SDK/cs_mem.c"
mv -f "$OUT.tmp" "$OUT"
echo "$PWD/$OUT"
