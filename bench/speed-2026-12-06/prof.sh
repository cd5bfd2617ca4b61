#!/bin/bash
# Issue 15: user and kernel CPU per request of one Strait binary on scenario a's shape (wrk -c64, 12 s,
# proxy pinned to core 1, wrk + upstream nginx on core 0), with a perf cpu-clock profile.
# Needs the harness's generated files in /tmp/strait-bench (any ../shared/bench/run leaves them).
# usage: prof.sh BIN NAME  -> ${PROF_DIR:-/tmp/prof}/NAME.data, NAME.txt
# CFG=FILE uses that configuration instead of the harness's (same listeners and upstream).
mkdir -p ${PROF_DIR:-/tmp/prof}
BIN=$1; NAME=$2
cp ${CFG:-/tmp/strait-bench/strait/strait.yaml} ${PROF_DIR:-/tmp/prof}/cfg.yaml 2>/dev/null || cp /tmp/strait-bench/strait/*.yaml ${PROF_DIR:-/tmp/prof}/cfg.yaml
pgrep -f "strait-bench/upstream/nginx.conf" >/dev/null || (taskset -c 0 nginx -c /tmp/strait-bench/upstream/nginx.conf >/dev/null 2>&1 &)
sleep 0.5
taskset -c 1 $BIN run -c ${PROF_DIR:-/tmp/prof}/cfg.yaml > ${PROF_DIR:-/tmp/prof}/$NAME.log 2>&1 &
P=$!
sleep 1
taskset -c 0 wrk -t1 -c64 -d2s http://127.0.0.1:18400/1k > /dev/null
read u0 s0 < <(awk '{print $14, $15}' /proc/$P/stat)
taskset -c 0 wrk -t1 -c64 -d12s --latency http://127.0.0.1:18400/1k > ${PROF_DIR:-/tmp/prof}/$NAME.wrk &
W=$!
sleep 1
perf record -e cpu-clock -F 2000 -g -p $P -o ${PROF_DIR:-/tmp/prof}/$NAME.data -- sleep 8 2>/dev/null >/dev/null
wait $W
read u1 s1 < <(awk '{print $14, $15}' /proc/$P/stat)
kill $P; wait $P 2>/dev/null
req=$(grep -E "requests in" ${PROF_DIR:-/tmp/prof}/$NAME.wrk | awk '{print $1}')
echo "$NAME req=$req user_us=$(( (u1-u0)*10000*1000/req ))e-3 sys_us=$(( (s1-s0)*10000*1000/req ))e-3"
