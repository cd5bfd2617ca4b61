#!/bin/bash
# Issue 13 after the instance-per-worker change: plain route vs the add_headers proxy-wasm plugin
# (bench/templates/wasm-headers.yaml), interleaved rounds, 10 s each. Build the plugin first:
#   CARGO_TARGET_DIR=/var/tmp/strait-target scripts/build-plugins.sh
cd "$(dirname "$0")/../.."
OUT=${OUT:-bench/wasm-2026-12-06/raw}; mkdir -p "$OUT"
BIN=${STRAIT_BIN:-/var/tmp/strait-release/release/strait}
ROUNDS=${ROUNDS:-4}
for round in $(seq 1 $ROUNDS); do
  for t in plain wasm-headers; do
    if [ $t = plain ]; then T=../shared/bench/strait-template.yaml; else T=bench/templates/$t.yaml; fi
    timeout 900 ../shared/bench/run --proxies strait --strait-bin $BIN --strait-template $T \
      --duration 10 --rate 5000 --idle-conns 1000 --out $OUT/$t-$round.json > $OUT/$t-$round.txt 2>&1
    echo "$t $round $(grep -E '^\| a CPU us/req|^\| a  of which user|^\| b p99 ms|^\| c CPU us/req|idle check: core1' $OUT/$t-$round.txt | tr -s ' ' | tr '\n' ' ')"
  done
done
