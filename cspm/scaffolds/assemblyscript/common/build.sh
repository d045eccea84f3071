#!/usr/bin/env bash
# Builds build/{{short}}.wasm from assembly/index.ts with the toolchain pinned in package.json and
# the SDK in sdk/. The same bytes wherever the folder is. Prints the output path as its last line.
set -euo pipefail
cd "$(dirname "$0")"

command -v node >/dev/null && command -v npm >/dev/null \
  || { echo "build.sh: node and npm not found (Node.js 20 or newer is needed)" >&2; exit 1; }
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
  || { echo "build.sh: Node.js $(node --version) is too old: assemblyscript 0.28 needs 20 or newer" >&2; exit 1; }

# npm install only when node_modules is missing (or incomplete): the first build, or after a clone or
# a move. It needs the npm registry once; every later build is offline. package.json links the SDK
# as `file:./sdk`, a path inside this folder, so the link survives moving the folder; it pins
# assemblyscript and @extism/as-pdk exactly as the SDK does (asc finds as-pdk in node_modules/).
if [[ ! -f node_modules/assemblyscript/bin/asc.js || ! -f node_modules/@extism/as-pdk/index.ts \
      || ! -f node_modules/@chainsocket/as-sdk/index.ts ]]; then
  log=$(mktemp)
  if ! npm install --no-audit --no-fund >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"
    echo "build.sh: npm install failed" >&2
    exit 1
  fi
  rm -f "$log"
fi

mkdir -p build
out=build/{{short}}.wasm
tmp=build/.{{short}}.wasm.tmp
rm -f "$out" "$tmp" # a failed build must not leave an old module behind
trap 'rm -f "$tmp"' EXIT
# --use abort=…: the SDK's abort handler sets the abort message as the call's error, then traps
# (without it asc imports env.abort, which the host does not provide). --lib keeps that handler in
# the program even when no file here imports the SDK (else asc fails with AS111 "not found").
node node_modules/assemblyscript/bin/asc.js assembly/index.ts -o "$tmp" \
  -O3 --shrinkLevel 2 --noAssert \
  --lib node_modules/@chainsocket/as-sdk/lib \
  --use abort=~lib/@chainsocket/as-sdk/assembly/kernel/abortHandler

# Refuse a module that imports anything the Chainsocket host does not provide (Math.random or
# Date.now, for example, would import env.seed or env.Date.now).
node -e '
const fs = require("fs");
const bad = WebAssembly.Module.imports(new WebAssembly.Module(fs.readFileSync(process.argv[1])))
  .filter((i) => i.module !== "extism:host/env" && i.module !== "extism:host/user")
  .map((i) => i.module + "." + i.name);
if (bad.length) { console.error("build.sh: unexpected imports: " + bad.join(", ")); process.exit(1); }
' "$tmp"

mv -f "$tmp" "$out"
echo "$out"
