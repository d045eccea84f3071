#!/usr/bin/env bash
# Builds build/conformance-rust.wasm from source with Debian's rustc 1.63 (wasm32 std from
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
plugins_dir=$(cd .. && pwd -P)
export CARGO_TARGET_DIR="$plugins_dir/.target-rust"
# Reproducible output (plugins/check-reproducible.sh): plugins/Cargo.toml makes every crate here one
# workspace (cargo then names and hashes them relative to plugins/, not by absolute paths) and
# plugins/.cargo/config.toml maps the registry's paths. RUSTFLAGS would replace those flags: drop it.
# CARGO_HOME stays beside the target dir, so no ~/.cargo/config.toml can change flags or profiles.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
export CARGO_HOME="$CARGO_TARGET_DIR/cargo-home"
RUSTC=/usr/bin/rustc /usr/bin/cargo build --quiet --release --target wasm32-unknown-unknown
mkdir -p build
cp "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/conformance_rust.wasm" build/conformance-rust.wasm
echo "$(pwd)/build/conformance-rust.wasm"
