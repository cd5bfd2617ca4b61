#!/bin/bash
# Issue 15: A/B of two Strait binaries on the generated config (scenarios a-h), interleaved rounds.
#   A=/var/tmp/strait-base/release/strait B=/var/tmp/strait-release/release/strait ROUNDS=3 OUT=dir bench/speed-2026-12-06/ab.sh
cd "$(dirname "$0")/../.."
OUT=${OUT:-bench/speed-2026-12-06/raw}; mkdir -p "$OUT"
ROUNDS=${ROUNDS:-3}
for round in $(seq 1 $ROUNDS); do
  for side in A B; do
    BIN=${!side}
    timeout 900 ../shared/bench/run --proxies strait --strait-bin $BIN \
      --duration ${DURATION:-10} --rate 5000 --idle-conns ${IDLE:-10000} --out $OUT/$side-$round.json > $OUT/$side-$round.txt 2>&1
    echo "$side $round $(grep -E '^\| a CPU us/req|^\| a  of which user|^\| c CPU us/req|^\| c  of which user|bytes/idle|idle check: core1' $OUT/$side-$round.txt | tr -s ' ' | tr '\n' ' ')"
  done
done
