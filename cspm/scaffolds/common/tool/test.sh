#!/usr/bin/env bash
# Builds the plug-in, then checks it through cspm as a user of it would: its arguments, its text input,
# its config, the host's check of the arguments, and the app.
set -euo pipefail
cd "$(dirname "$0")"
./build.sh >/dev/null
fail() { echo "test.sh: $*" >&2; exit 1; }
expect() { [[ "$2" == "$3" ]] || fail "$1: expected '$3', got '$2'"; }

expect "arguments" "$(cspm call . --args '{"text": "one two  three"}')" "3 words"
expect "text input" "$(cspm call . --input 'just two')" "2 words"
expect "config" "$(cspm call . --input 'a b c d' --config unit=tokens)" "4 tokens"
if cspm call . --args '{"txt": "typo"}' >/dev/null 2>&1; then fail "arguments without text were accepted"; fi
expect "app" "$(cspm run -i 'three words here')" "3 words"
echo "test.sh: all passed"
