#!/bin/bash
# Issue 15: user and kernel CPU per request of Strait binaries on scenario c's shape (h2load -c16 -m16,
# h2c prior knowledge, GET /1k; proxy pinned to core 1, h2load + upstream nginx on core 0), rounds
# interleaved so the VM's drifting clock hits every binary alike. Needs the harness's generated files
# in /tmp/strait-bench (any ../shared/bench/run leaves them).
# usage: h2cpu.sh ROUNDS SECONDS BIN...   (CFG=FILE uses that configuration instead of the harness's;
# LOAD="-c1 -m1" a lighter load than scenario c's; URL=https://127.0.0.1:18401/1k with a CFG whose h2 listener has tls)
ROUNDS=$1; DUR=$2; shift 2
CFG=${CFG:-/tmp/strait-bench/strait/strait.yaml}
read -r -a LOAD <<< "${LOAD:--c16 -m16}"
URL=${URL:-http://127.0.0.1:18401/1k}
pgrep -f "strait-bench/upstream/nginx.conf" >/dev/null || (taskset -c 0 nginx -c /tmp/strait-bench/upstream/nginx.conf >/dev/null 2>&1 &)
sleep 0.5
for round in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do
    taskset -c 1 "$bin" run -c "$CFG" > /dev/null 2>&1 &
    P=$!
    for _ in $(seq 1 50); do curl -sk -o /dev/null --http2-prior-knowledge "$URL" && break; sleep 0.1; done
    taskset -c 0 h2load "${LOAD[@]}" -D 2 "$URL" > /dev/null
    read -r u0 s0 < <(awk '{print $14, $15}' /proc/$P/stat)
    out=$(taskset -c 0 h2load "${LOAD[@]}" -D "$DUR" "$URL")
    req=$(echo "$out" | awk '/^requests:/{print $8}')
    mean=$(echo "$out" | awk '/^time for request:/{print $6}')
    read -r u1 s1 < <(awk '{print $14, $15}' /proc/$P/stat)
    kill $P; wait $P 2>/dev/null
    echo "round=$round $(basename "$bin") req=$req cpu_us=$(( (u1-u0+s1-s0)*10000*1000/req ))e-3 user_us=$(( (u1-u0)*10000*1000/req ))e-3 sys_us=$(( (s1-s0)*10000*1000/req ))e-3 mean_latency=$mean"
  done
done
kill "$(cat /tmp/strait-bench/upstream/nginx.pid)" 2>/dev/null
