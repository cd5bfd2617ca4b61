#!/bin/bash
# Interleaved runs for issue 11: plain, two-hop, two-hop + jwt + rate limit, redis rate limit.
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/b11}; mkdir -p "$OUT"
BIN=${STRAIT_BIN:-/var/tmp/strait-target/release/strait}   # the recorded run used a copy of it at 485641a
redis-server --port 16379 --bind 127.0.0.1 --save "" --appendonly no --daemonize yes >/dev/null
for round in 1 2 3; do
  for t in plain twohop twohop-jwt-ratelimit ratelimit-local ratelimit-redis; do
    if [ $t = plain ]; then T=../shared/bench/strait-template.yaml; else T=bench/templates/$t.yaml; fi
    timeout 900 ../shared/bench/run --proxies strait --strait-bin $BIN --strait-template $T \
      --duration 10 --rate 5000 --idle-conns 1000 --out $OUT/$t-$round.json > $OUT/$t-$round.txt 2>&1
    echo "$t $round $(grep -E '^\| a CPU us/req' $OUT/$t-$round.txt)"
  done
done
redis-cli -p 16379 shutdown nosave
