#!/usr/bin/env bash
# Builds the plug-in, then checks it through cspm as a user of it would: an answer, its config, the app.
set -euo pipefail
cd "$(dirname "$0")"
./build.sh >/dev/null
fail() { echo "test.sh: $*" >&2; exit 1; }
expect() { [[ "$2" == "$3" ]] || fail "$1: expected '$3', got '$2'"; }

expect "answer" "$(cspm call . --input 'hello there')" "You said: hello there"
expect "config" "$(cspm call . --input 'ahoy' --config 'prefix=Echo: ')" "Echo: ahoy"
answer="$(cspm call . --input 'two words' --json)"
python3 - "$answer" <<'PY' || fail "--json: $answer"
import json, sys
reply = json.loads(sys.argv[1])["response"]
assert reply["finish_reason"] == "stop", reply
assert reply["usage"]["output_tokens"] > 0, reply
PY
expect "app" "$(cspm run -i hello)" "You said: hello"
echo "test.sh: all passed"
