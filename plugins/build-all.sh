#!/usr/bin/env bash
# Build every plug-in from source: runs each plugins/*/build.sh (SDK conformance plug-ins first).
set -euo pipefail
cd "$(dirname "$0")"
status=0
for script in conformance-*/build.sh */build.sh; do
  dir=$(dirname "$script")
  [[ " ${done_dirs:-} " == *" $dir "* ]] && continue
  done_dirs="${done_dirs:-} $dir"
  start=$EPOCHREALTIME
  if out=$(bash "$script" 2>&1); then
    printf '%-32s %6ss  %s\n' "$dir" "$(awk "BEGIN{printf \"%.1f\", $EPOCHREALTIME - $start}")" "$(echo "$out" | tail -n1)"
  else
    echo "FAILED: $dir" >&2; echo "$out" >&2; status=1
  fi
done
exit $status
