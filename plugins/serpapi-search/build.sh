#!/usr/bin/env bash
# Build the serpapi-search tool from source with the pinned toolchain
# (package-lock.json: assemblyscript, @extism/as-pdk, and the SDK linked from ../sdk/assemblyscript).
# Prints the output path and nothing else.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

command -v node >/dev/null && command -v npm >/dev/null \
  || { echo "build.sh: node and npm not found (Node >= 20 is needed)" >&2; exit 1; }
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
  || { echo "build.sh: Node $(node --version) is too old, assemblyscript 0.28 needs >= 20" >&2; exit 1; }

# npm ci only when node_modules is missing or incomplete. @extism/as-pdk is listed here as well as in
# the SDK because npm does not install the dependencies of a `file:` link; asc finds it here.
if [[ ! -f node_modules/assemblyscript/bin/asc.js || ! -f node_modules/@extism/as-pdk/index.ts \
      || ! -f node_modules/@chainsocket/as-sdk/index.ts ]]; then
  log=$(mktemp)
  if ! npm ci --no-audit --no-fund >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"
    echo "build.sh: npm ci failed" >&2
    exit 1
  fi
  rm -f "$log"
fi

mkdir -p build
out=build/serpapi-search.wasm
tmp=build/.serpapi-search.wasm.tmp
rm -f "$out" "$tmp" # a failed build must not leave an old module behind
trap 'rm -f "$tmp"' EXIT
# --use abort=…: asc would otherwise import env.abort, which the host does not provide.
node node_modules/assemblyscript/bin/asc.js assembly/index.ts -o "$tmp" \
  -O3 --shrinkLevel 2 --noAssert \
  --use abort=~lib/@chainsocket/as-sdk/assembly/kernel/abortHandler

# Refuse a module that imports anything the Chainsocket host does not provide.
node -e '
const fs = require("fs");
const bad = WebAssembly.Module.imports(new WebAssembly.Module(fs.readFileSync(process.argv[1])))
  .filter((i) => i.module !== "extism:host/env" && i.module !== "extism:host/user")
  .map((i) => i.module + "." + i.name);
if (bad.length) { console.error("build.sh: unexpected imports: " + bad.join(", ")); process.exit(1); }
' "$tmp"

mv -f "$tmp" "$out"
echo "$PWD/$out"
