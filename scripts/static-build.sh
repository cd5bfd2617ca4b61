#!/usr/bin/env bash
# Builds the fully static release binary (x86_64 musl) and checks that it is static and runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/strait-target}"
target=x86_64-unknown-linux-musl
rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
cargo build --release --target "$target" -p strait
bin="$CARGO_TARGET_DIR/$target/release/strait"
if ldd "$bin" 2>&1 | grep -q "=>"; then
  echo "error: $bin is dynamically linked" >&2
  ldd "$bin" >&2
  exit 1
fi
"$bin" version
stripped="$(mktemp)"
strip -o "$stripped" "$bin"
echo "static binary: $bin ($(stat -c %s "$bin") bytes with line tables, $(stat -c %s "$stripped") bytes stripped)"
rm -f "$stripped"
