#!/usr/bin/env bash
# Builds build/anthropic.wasm from source with Debian's rustc 1.63 (wasm32 std from
# libstd-rust-dev-wasm32). /root/.cargo/bin may shadow cargo with a rustup toolchain that lacks
# wasm32, hence the absolute paths. Dependencies come offline from plugins/.cargo/config.toml;
# the target dir is shared by every Rust plug-in so serde compiles once.
set -euo pipefail
cd "$(dirname "$0")"
if [[ ! -x /usr/bin/cargo || ! -d /usr/lib/rustlib/wasm32-unknown-unknown ]]; then
    echo "build.sh: needs Debian's Rust with the wasm32 std:" >&2
    echo "  apt-get install -y --no-install-recommends rustc cargo libstd-rust-dev-wasm32 librust-serde-json-dev librust-serde-derive-dev librust-serde-dev" >&2
    exit 1
fi
export CARGO_TARGET_DIR="$(cd .. && pwd)/.target-rust"
RUSTC=/usr/bin/rustc /usr/bin/cargo build --quiet --release --target wasm32-unknown-unknown
mkdir -p build
cp "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/anthropic.wasm" build/anthropic.wasm
echo "$(pwd)/build/anthropic.wasm"
