#!/bin/bash
# Issue 15: user-space instructions per proxied request, counted by valgrind (cachegrind Ir), so two
# binaries compare without the noise of this shared VM's clock: each binary serves scenario a's
# shape (h2load --h1, 16 connections, GET /1k through the harness's upstream nginx) twice, with
# N and 3N requests, and the difference over 2N is the cost of one request (start-up cancels out).
# Kernel time is not counted; a request under valgrind runs one thread at a time.
# H2=1 counts scenario c's shape instead (h2c prior knowledge, 16 connections x 16 streams, port 18401).
# Needs valgrind, h2load, and the harness's generated files in /tmp/strait-bench (any
# ../shared/bench/run leaves them). usage: run.sh N BIN... (OUT=DIR keeps the cachegrind files)
set -u
N=$1; shift
URL=http://127.0.0.1:18400/1k
LOAD=(--h1 -c 16 -m 1)
[ -n "${H2:-}" ] && URL=http://127.0.0.1:18401/1k && LOAD=(-c 16 -m 16)
W=$(mktemp -d)
cp /tmp/strait-bench/strait/strait.yaml $W/cfg.yaml
pgrep -f "strait-bench/upstream/nginx.conf" >/dev/null || (nginx -c /tmp/strait-bench/upstream/nginx.conf &)
sleep 0.3
count() { # BIN REQUESTS -> total Ir
  rm -f $W/cg.out.*
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=$W/cg.out.%p "$1" run -c $W/cfg.yaml > $W/log 2>&1 &
  local p=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null $URL && break; sleep 0.2; done
  h2load "${LOAD[@]}" -n 500 $URL > /dev/null 2>&1
  h2load "${LOAD[@]}" -n "$2" $URL 2>&1 | grep -E "^requests:" | grep -v " 0 failed" >&2
  kill -TERM $p; wait $p
  [ -n "${OUT:-}" ] && mkdir -p "$OUT" && cp $W/cg.out.* "$OUT/$(basename "$1")-$2.cg"
  grep -E "^summary:" $W/cg.out.* | awk '{print $2}'
}
for bin in "$@"; do
  a=$(count "$bin" "$N"); b=$(count "$bin" $((3 * N)))
  echo "$(basename "$bin") instructions_per_request=$(( (b - a) / (2 * N) ))"
done
kill "$(cat /tmp/strait-bench/upstream/nginx.pid)" 2>/dev/null
rm -rf $W
