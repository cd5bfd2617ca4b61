#!/usr/bin/env bash
# HTTP/3 against HTTP/2 on the same Strait listener and route.
#
#   bench/h3/run.sh /path/to/strait            # ROUNDS=3 DUR=10 LOADS="4x16 8x32" by default
#   ROUNDS=5 OUT=bench/h3/results-X.txt bench/h3/run.sh /path/to/strait
#
# One Strait listener with `tls: {cert, key}` and `http3: true` (TCP and UDP on the same port) and
# one `respond` route (200, body "ok"). Load = h3load (bench/h3/load): the same closed-loop client
# architecture for both protocols (CONNS connections x STREAMS concurrent request loops each, for
# each CONNSxSTREAMS in LOADS;
# single-threaded tokio runtime, GET / and read the whole body), HTTP/2 = hyper 1 over
# tokio-rustls, HTTP/3 = quinn 0.11 + h3 0.0.8 + h3-quinn 0.0.10, both rustls 0.23 on ring.
# Strait pinned to core 1 (worker_threads 1), h3load on core 0. Server CPU = utime+stime of all
# Strait's threads over the measured window. Rounds interleaved h2, h3, h2, h3, ...
# Ports: 19450 (TCP+UDP), 19459 (admin); loopback only; every run bounded (DUR + 1 s warm-up).
set -euo pipefail
# Priority (NICE), the load client's build, the work directory and cleanup: bench/lib.sh.

STRAIT=${1:?usage: $0 /path/to/strait}
STRAIT=$(readlink -f "$STRAIT")
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
LOADS=${LOADS:-4x16 8x32}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE/results-$(date +%F).txt}
PORT=19450 P_ADMIN=19459

. "$HERE/../lib.sh"
H3LOAD=$(build_client h3load "$HERE/load")

start_work strait-h3-bench

if ss -Htlun "sport = :$PORT or sport = :$P_ADMIN" | grep -q .; then echo "port $PORT or $P_ADMIN in use" >&2; exit 1; fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

cat >"$WORK/strait.yaml" <<EOF
server: { worker_threads: 1, drain_timeout: 0s }
admin: { listen: 127.0.0.1:$P_ADMIN }
listeners:
  - name: tls
    listen: 127.0.0.1:$PORT
    tls: { cert: $WORK/cert.pem, key: $WORK/key.pem }
    http3: true
routes:
  - name: r
    match: { path_prefix: / }
    respond: { status: 200, body: ok }
EOF
"$STRAIT" validate -c "$WORK/strait.yaml" >&2

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nice -n "$NICE" taskset -c 1 "$STRAIT" run -c "$WORK/strait.yaml" >"$WORK/strait.log" 2>&1 &
STRAIT_PID=$!; PIDS+=("$STRAIT_PID")
for _ in $(seq 100); do
  if printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
     timeout 2 openssl s_client -quiet -connect "127.0.0.1:$PORT" -servername localhost 2>/dev/null | grep -q '^HTTP/1.1 200'; then
    break; fi
  sleep 0.1
done
# Both protocols answer before measuring (a short run of each; also checks UDP is bound).
for proto in h2 h3; do
  if ! timeout 20 nice -n "$NICE" taskset -c 0 "$H3LOAD" --proto $proto --addr "127.0.0.1:$PORT" -c 1 -s 1 -d 0.3 --warmup 0.1 | grep -q 'errors=0'; then
    echo "$proto probe failed; strait log:" >&2; cat "$WORK/strait.log" >&2; exit 1
  fi
done

{
echo "# HTTP/3 vs HTTP/2 on one Strait listener ($(date -u '+%F %T UTC'))"
echo "strait: $STRAIT ($("$STRAIT" version 2>/dev/null | head -1))"
echo "h3load: quinn 0.11.12 (rustls-ring), h3 0.0.8, h3-quinn 0.0.10, hyper 1.12.0 / h2 0.4.20, rustls 0.23.46 (ring), tokio-rustls 0.26.6; $H3LOAD"
echo "kernel $(uname -r), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "net.core.rmem_max=$(sysctl -n net.core.rmem_max) wmem_max=$(sysctl -n net.core.wmem_max); lo mtu $(cat /sys/class/net/lo/mtu)"
echo "layout: strait nice -n $NICE taskset -c 1 (worker_threads 1, all threads counted); h3load taskset -c 0, one thread"
echo "load: CONNSxSTREAMS in [$LOADS] (connections x concurrent streams each), GET / (body \"ok\"), ${DUR}s measured after a 1s warm-up"
echo "rounds: $ROUNDS per load, interleaved h2, h3"
echo "uptime at start: $(uptime)"
echo "priority: nice $NICE for servers and load, session autogroup $(cut -d' ' -f2- /proc/self/autogroup 2>/dev/null) (sched_autogroup_enabled=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null))"
echo "load command: nice -n $NICE taskset -c 0 $H3LOAD --proto h2|h3 --addr 127.0.0.1:$PORT -c CONNS -s STREAMS -d $DUR --warmup 1 --server-pid STRAIT_PID"
echo
echo "## Strait configuration"
echo '```'; sed "s#$WORK#WORKDIR#g" "$WORK/strait.yaml"; echo '```'
echo
echo "## Rounds"
} | tee "$OUT"

ROWS=$WORK/rows.txt; : >"$ROWS"
for load in $LOADS; do
 CONNS=${load%x*} STREAMS=${load#*x}
 for r in $(seq "$ROUNDS"); do
  for proto in h2 h3; do
    up0=$(cut -d' ' -f1-3 /proc/loadavg)
    line=$(timeout $((DUR + 30)) nice -n "$NICE" taskset -c 0 "$H3LOAD" --proto $proto --addr "127.0.0.1:$PORT" \
             -c "$CONNS" -s "$STREAMS" -d "$DUR" --warmup 1 --server-pid "$STRAIT_PID")
    up1=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "round=$r $line loadavg_before=\"$up0\" loadavg_after=\"$up1\"" | tee -a "$OUT" >>"$ROWS"
    echo "round=$r $line" >&2
  done
 done
done

python3 - "$ROWS" <<'PY' | tee -a "$OUT"
import re, statistics, sys
rows = [dict(re.findall(r'(\w+)=("[^"]*"|\S+)', l)) for l in open(sys.argv[1])]
def med(xs, f=',.1f'): return f"{statistics.median(xs):{f}} [{min(xs):{f}}–{max(xs):{f}}]"
for load in dict.fromkeys((r['conns'], r['streams']) for r in rows):
  sel = [r for r in rows if (r['conns'], r['streams']) == load]
  by = {p: [r for r in sel if r['proto'] == p] for p in ('h2', 'h3')}
  print(f"\n## Summary, {load[0]} connections x {load[1]} streams (median [min–max] over rounds)\n")
  print("| | HTTP/2 (TLS) | HTTP/3 (QUIC) | h3/h2 (per round) |")
  print("|---|---|---|---|")
  for key, label in [('req_s', 'req/s'), ('cpu_us_req', 'strait CPU µs/req'), ('user_us_req', '  of which user'),
                     ('sys_us_req', '  of which kernel'), ('server_cpu_pct', 'strait CPU % of one core'),
                     ('core1_busy_pct', 'core 1 busy % (all processes)'), ('client_cpu_pct', 'h3load CPU % of core 0'), ('core0_busy_pct', 'core 0 busy % (all processes)')]:
      a = [float(r[key]) for r in by['h2']]; b = [float(r[key]) for r in by['h3']]
      ratios = [y / x for x, y in zip(a, b) if x]
      print(f"| {label} | {med(a)} | {med(b)} | {med(ratios, '.2f') + 'x' if ratios else ''} |")
bad = sum(int(r[k]) for r in rows for k in ('non200', 'errors'))
print(f"\nnon-200 responses and request errors over all rounds: {bad}")
PY
echo "uptime at end: $(uptime)" | tee -a "$OUT"
echo "written: $OUT" >&2
