#!/usr/bin/env bash
# Checks that the plug-in builds are reproducible, byte for byte.
#
#   plugins/check-reproducible.sh [--keep] [NAME...]
#
# 1. Builds every plug-in (or the NAMEs given: directories under plugins/ with a build.sh) here, in
#    this work tree, with the usual caches, and records the sha256 of each plugins/NAME/build/*.wasm.
# 2. Clones the repository into a temporary directory (a different absolute path), lays the work
#    tree's plugins/ files over it (tracked and untracked-but-not-ignored files, so uncommitted
#    changes count; deleted files are deleted), and builds the same plug-ins there from scratch:
#    no build/, .target-rust/ or node_modules/ directories, and fresh, empty Go, Zig and XDG caches.
# 3. Prints a table: name, digest here, digest there, OK or DIFF. Exits 0 when every module is
#    identical, 1 on any difference or missing module, 2 when a build fails.
#
# The temporary clone is removed unless something differed or --keep was given.
set -euo pipefail

keep=0
names=()
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "check-reproducible.sh: unknown option $arg" >&2; exit 2 ;;
    *) names+=("${arg%/}") ;;
  esac
done

plugins=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(git -C "$plugins" rev-parse --show-toplevel)
rel=${plugins#"$root"/}

if ((${#names[@]} == 0)); then
  for script in "$plugins"/*/build.sh; do
    names+=("$(basename "$(dirname "$script")")")
  done
fi
for name in "${names[@]}"; do
  [[ -f "$plugins/$name/build.sh" ]] || { echo "check-reproducible.sh: no plugins/$name/build.sh" >&2; exit 2; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cspm-repro.XXXXXX")
cleanup() { if ((keep)); then echo "kept: $tmp" >&2; else rm -rf "$tmp"; fi; }
trap cleanup EXIT

now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk "BEGIN{printf \"%.1f\", $(now) - $1}"; }

# build_tree DIR LABEL: builds each named plug-in under DIR (a plugins/ directory), after removing
# its old modules so a silently skipped build cannot report a stale digest; writes
# "$tmp/LABEL.sums" (sha256sum lines, paths relative to DIR).
build_tree() {
  local dir=$1 label=$2 name start log failed=0
  : >"$tmp/$label.sums"
  for name in "${names[@]}"; do
    rm -f "$dir/$name"/build/*.wasm
    start=$(now)
    log="$tmp/$label-$name.log"
    if bash "$dir/$name/build.sh" >"$log" 2>&1; then
      printf '  %-6s %-28s %6ss\n' "$label" "$name" "$(since "$start")" >&2
    else
      printf '  %-6s %-28s FAILED (log: %s)\n' "$label" "$name" "$log" >&2
      tail -n 30 "$log" >&2
      failed=1
      continue
    fi
    (cd "$dir" && for f in "$name"/build/*.wasm; do [[ -f "$f" ]] && sha256sum "$f"; done) >>"$tmp/$label.sums"
  done
  return $failed
}

t0=$(now)
echo "building here: $plugins" >&2
if ! build_tree "$plugins" here; then keep=1; exit 2; fi

clone="$tmp/clone"
git clone --quiet --no-checkout "$root" "$clone"
git -C "$clone" checkout --quiet "$(git -C "$root" rev-parse HEAD)"
# Lay the work tree's plugins/ files over the clone: modified, new (not ignored) and deleted files.
(cd "$root" && git ls-files -z --cached --others --exclude-standard -- "$rel" \
   | while IFS= read -r -d '' f; do [[ -e "$f" || -L "$f" ]] && printf '%s\0' "$f"; done \
   | tar --null -T - -cf -) | tar -C "$clone" -xf -
(cd "$root" && git ls-files -z --deleted -- "$rel") | (cd "$clone" && xargs -0 -r rm -f --)

# Fresh caches for the clone build, so cache hits cannot hide a difference and nothing in HOME's
# caches counts (npm's cache stays: its tarballs are checked against package-lock.json's hashes;
# the Rust build.sh scripts keep CARGO_HOME in the fresh target dir themselves).
mkdir -p "$tmp/cache"
echo "building there: $clone/$rel (fresh caches)" >&2
if ! GOCACHE="$tmp/cache/go-build" GOMODCACHE="$tmp/cache/gomod" \
     ZIG_GLOBAL_CACHE_DIR="$tmp/cache/zig" XDG_CACHE_HOME="$tmp/cache/xdg" \
     build_tree "$clone/$rel" there; then
  keep=1; exit 2
fi

status=0
modules=$(awk '{print $2}' "$tmp/here.sums" "$tmp/there.sums" | sort -u)
w=$(awk 'length > w {w = length} END {print w < 6 ? 6 : w}' <<<"$modules")
printf '\n%-*s %-64s %-64s %s\n' "$w" "module" "sha256 here" "sha256 there" "result"
while read -r f; do
  here=$(awk -v f="$f" '$2 == f {print $1}' "$tmp/here.sums")
  there=$(awk -v f="$f" '$2 == f {print $1}' "$tmp/there.sums")
  if [[ -n "$here" && "$here" == "$there" ]]; then result=OK; else result=DIFF; status=1; fi
  printf '%-*s %-64s %-64s %s\n' "$w" "$f" "${here:--}" "${there:--}" "$result"
done <<<"$modules"

echo "checked ${#names[@]} plug-in(s) in $(since "$t0")s" >&2
if ((status)); then
  keep=1
  echo "NOT reproducible: compare the modules under $clone/$rel with those here" >&2
fi
exit $status
