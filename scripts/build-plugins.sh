#!/usr/bin/env bash
# Builds the example proxy-wasm plugins into $CARGO_TARGET_DIR/wasm32-wasip1/release (or
# examples/plugins/target/...), where tests/tests/wasm.rs finds them:
# - examples/plugins (Rust proxy-wasm SDK) for wasm32-wasip1;
# - examples/plugins-as (AssemblyScript SDK, @solo-io/proxy-runtime from npm) as
#   as_headers.wasm, when npm is present; without npm it is skipped, and so is its test
#   (which prints why).
# The gateway itself needs neither the wasm target nor npm.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  rustup target add wasm32-wasip1
fi
cargo build --release --target wasm32-wasip1 --manifest-path examples/plugins/Cargo.toml

out="${CARGO_TARGET_DIR:-examples/plugins/target}/wasm32-wasip1/release"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
if command -v npm >/dev/null 2>&1; then
  (
    cd examples/plugins-as
    # Exactly the versions in package-lock.json (assemblyscript 0.14.9, which the SDK's
    # runtime is written for).
    npm ci --no-audit --no-fund --loglevel=error
    node_modules/.bin/asc assembly/index.ts --config asconfig.json --target release \
      --binaryFile "$out/as_headers.wasm"
  )
  echo "built $out/as_headers.wasm (AssemblyScript)"
else
  echo "skipping examples/plugins-as (AssemblyScript plugin): npm not found; its test in tests/tests/wasm.rs is skipped"
fi
