#!/bin/bash
# Issue 15: scenario f's shape without the whole harness, for quick before/after pairs: the harness's
# generated Strait config (any ../shared/bench/run leaves it in /tmp/strait-bench), GET /1k proxied to
# its upstream nginx on 10,000 connections, settle 1 s, then bytes per idle connection (idle.py).
# usage: bench/idle/harness-f.sh STRAIT_BIN
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
ulimit -n 65536 2> /dev/null || true
pgrep -f "strait-bench/upstream/nginx.conf" >/dev/null || (nginx -c /tmp/strait-bench/upstream/nginx.conf > /dev/null 2>&1 &)
sleep 0.3
cp /tmp/strait-bench/strait/strait.yaml "$W/h.yaml"
taskset -c 1 "$BIN" run -c "$W/h.yaml" > "$W/log" 2>&1 &
pid=$!
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18400/1k && break; sleep 0.1; done
sleep 0.5
python3 "$HERE/idle.py" 18400 10000 "$pid" --settle 1 --path /1k
kill $pid; wait $pid 2>/dev/null
