#!/usr/bin/env bash
# Builds build/{{short}}.wasm with Debian's Rust (the only one with the wasm32 standard library
# offline), reproducibly: the same bytes on every build and wherever this folder is.
set -euo pipefail
cd "$(dirname "$0")"
if [[ ! -x /usr/bin/cargo || ! -d /usr/lib/rustlib/wasm32-unknown-unknown ]]; then
    echo "build.sh: needs Debian's Rust with the wasm32 std:" >&2
    echo "  sudo apt-get install -y --no-install-recommends rustc cargo libstd-rust-dev-wasm32 librust-serde-json-dev librust-serde-derive-dev librust-serde-dev" >&2
    exit 1
fi
# RUSTFLAGS would replace the flags of .cargo/config.toml (the path remapping): drop it. CARGO_HOME
# lives in target/, so no ~/.cargo/config.toml can change the registry, flags or profile.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_TARGET_DIR
export CARGO_HOME="$PWD/target/cargo-home"
# Absolute paths: a rustup cargo (~/.cargo/bin, without the wasm32 std) may come first in PATH.
RUSTC=/usr/bin/rustc /usr/bin/cargo build --release --target wasm32-unknown-unknown
mkdir -p build
cp target/wasm32-unknown-unknown/release/{{ident}}.wasm build/{{short}}.wasm
echo "$PWD/build/{{short}}.wasm"
