#!/usr/bin/env bash
# Builds the plug-in, then checks it through cspm as a user of it would: the app with its tool, a tool
# error passed on, and the agent alone (no tool: an error answer, not a crash).
set -euo pipefail
cd "$(dirname "$0")"
./build.sh >/dev/null
fail() { echo "test.sh: $*" >&2; exit 1; }
expect() { [[ "$2" == "$3" ]] || fail "$1: expected '$3', got '$2'"; }

expect "app" "$(cspm run -i '6 * 7')" "calculator says: 42"
answer="$(cspm run -i '6 *' --json || true)"
python3 - "$answer" <<'PY' || fail "a tool error: $answer"
import json, sys
reply = json.loads(sys.argv[1])
assert reply["finish_reason"] == "error" and reply["output"].startswith("calculator failed: "), reply
PY
if cspm call . --input 'alone' >/dev/null 2>&1; then fail "the agent without a tool did not fail"; fi
echo "test.sh: all passed"
