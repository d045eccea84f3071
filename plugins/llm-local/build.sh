#!/usr/bin/env bash
# Build llm-local: wasm32-wasi C (wasi-libc for stdio and libm; the model file is read through a
# WASI `paths` grant) with SIMD128, on the Chainsocket C SDK. Prints the output path as its last line.
#
#   plugins/llm-local/build.sh            # build/llm-local.wasm
#   plugins/llm-local/build.sh --native   # build/llm-local-cli, the same C as a native program (bench/)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

CC="${CC:-clang-14}"
SDK=../sdk/c
SRC=(src/gguf.c src/quant.c src/tokenizer.c src/model.c src/generate.c)
mkdir -p build
# Reproducible output (plugins/check-reproducible.sh): relative source names, no debug info, and the
# checkout's absolute path (logical and physical) mapped away should -g or __FILE__ ever come in.
prefix_map=(-ffile-prefix-map="$PWD"=. -ffile-prefix-map="$(pwd -P)"=.)
warnings=(-Wall -Wextra -Werror -Wno-unused-parameter)

if [[ "${1:-}" == "--native" ]]; then
  NCC="${NATIVE_CC:-$(command -v clang-14 || command -v cc)}"
  # -O2 and SSE2 (the x86-64 baseline): the same 128-bit kernels as SIMD128, so the benchmark
  # compares the runtimes, not the vector widths.
  "$NCC" -O2 -std=c11 -D_POSIX_C_SOURCE=200809L "${warnings[@]}" "${prefix_map[@]}" -Isrc \
      -o build/llm-local-cli.tmp native/cli.c "${SRC[@]}" -lm
  mv -f build/llm-local-cli.tmp build/llm-local-cli
  echo "$PWD/build/llm-local-cli"
  exit 0
fi

command -v "$CC" >/dev/null || { echo "build.sh: $CC not found (apt-get install -y --no-install-recommends clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32)" >&2; exit 1; }
[[ -f /usr/lib/wasm32-wasi/libc.a ]] || { echo "build.sh: wasi-libc not found (apt-get install -y --no-install-recommends wasi-libc libclang-rt-14-dev-wasm32)" >&2; exit 1; }

# -O2 -msimd128: the quantised dot products use i32x4.dot_i16x8_s. Reactor: no _start, the host
# calls _initialize then the exports. 1 MiB of stack (the forward pass keeps small arrays there).
# --strip-debug drops the DWARF that wasi-libc's objects carry (~250 KB); not --strip-all: clang-14
# runs /usr/bin/wasm-opt itself when binaryen is installed, and --strip-all breaks that step.
"$CC" --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 -msimd128 -std=c11 \
    -D_POSIX_C_SOURCE=200809L "${warnings[@]}" "${prefix_map[@]}" \
    -I"$SDK" -Isrc -Wl,-z,stack-size=1048576 -Wl,--strip-debug \
    -o build/llm-local.wasm.tmp \
    src/plugin.c "${SRC[@]}" "$SDK/chainsocket.c" "$SDK/cs_json.c" "$SDK/cs_mem.c"
mv -f build/llm-local.wasm.tmp build/llm-local.wasm
echo "$PWD/build/llm-local.wasm"
