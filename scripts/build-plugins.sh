#!/usr/bin/env bash
# Builds the example proxy-wasm plugins (examples/plugins, Rust proxy-wasm SDK) for
# wasm32-wasip1 into $CARGO_TARGET_DIR/wasm32-wasip1/release (or examples/plugins/target),
# where tests/tests/wasm.rs finds them. The gateway itself never needs this target.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  rustup target add wasm32-wasip1
fi
cargo build --release --target wasm32-wasip1 --manifest-path examples/plugins/Cargo.toml
