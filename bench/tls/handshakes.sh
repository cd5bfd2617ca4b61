#!/usr/bin/env bash
# TLS 1.3 full handshakes per second per core: Strait against nginx.
#
#   bench/tls/handshakes.sh /path/to/strait            # ROUNDS=3 DUR=10 CONC=32 by default
#   ROUNDS=5 DUR=15 OUT=bench/tls/results-X.txt bench/tls/handshakes.sh /path/to/strait
#
# Same ECDSA P-256 certificate (made with openssl in a temp dir), TLS 1.3 only, X25519 only, no
# resumption. Server under test pinned to core 1 (taskset -c 1), load on core 0. Load = hsload
# (bench/tls/hsload, rustls on ring): a new TCP+TLS connection per request, one
# `GET / HTTP/1.1` + `Connection: close`, read to the server's close; resumption disabled in the
# client, and every handshake checked to be Full (no PSK, no HelloRetryRequest) and on X25519.
# Server CPU = utime+stime of all its processes/threads (/proc/PID/stat) over the measured window.
# Rounds are interleaved nginx, strait, nginx, strait, ...
# Needs: nginx, openssl, taskset, python3, cargo (to build hsload once). Ports 19441 (nginx),
# 19442 (strait), 19449 (strait admin), loopback only. Every run is bounded (DUR + warm-up).
set -euo pipefail
# Priority (NICE), the load client's build, the work directory and cleanup: bench/lib.sh.

STRAIT=${1:?usage: $0 /path/to/strait}
STRAIT=$(readlink -f "$STRAIT")
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
CONC=${CONC:-32}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE/results-$(date +%F).txt}
P_NGINX=19441 P_STRAIT=19442 P_ADMIN=19449

. "$HERE/../lib.sh"
HSLOAD=$(build_client hsload "$HERE/hsload")

start_work strait-tls-bench

for p in $P_NGINX $P_STRAIT $P_ADMIN; do
  if ss -Htln "sport = :$p" | grep -q .; then echo "port $p is in use" >&2; exit 1; fi
done

# One certificate for both: ECDSA P-256, self-signed, SAN localhost + 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

cat >"$WORK/nginx.conf" <<EOF
worker_processes 1; daemon off; master_process on; pid $WORK/nginx.pid; error_log $WORK/nginx-error.log;
worker_rlimit_nofile 65536;
events { worker_connections 8192; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$P_NGINX ssl;
    ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.3; ssl_ecdh_curve X25519;
    ssl_session_tickets off; ssl_session_cache off;
    location / { return 200 "ok"; }
  }
}
EOF

cat >"$WORK/strait.yaml" <<EOF
server: { worker_threads: 1, drain_timeout: 0s }
admin: { listen: 127.0.0.1:$P_ADMIN }
listeners:
  - name: tls
    listen: 127.0.0.1:$P_STRAIT
    tls: { cert: $WORK/cert.pem, key: $WORK/key.pem, min_version: "1.3" }
routes:
  - name: r
    match: { path_prefix: / }
    respond: { status: 200, body: ok }
EOF
"$STRAIT" validate -c "$WORK/strait.yaml" >&2

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nice -n "$NICE" taskset -c 1 nginx -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" &
NGINX_PID=$!; PIDS+=("$NGINX_PID")
nice -n "$NICE" taskset -c 1 "$STRAIT" run -c "$WORK/strait.yaml" >"$WORK/strait.log" 2>&1 &
STRAIT_PID=$!; PIDS+=("$STRAIT_PID")

wait_up() {  # port
  for _ in $(seq 100); do
    if printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
       timeout 2 openssl s_client -quiet -connect "127.0.0.1:$1" -servername localhost 2>/dev/null | grep -q '^HTTP/1.1 200'; then
      return 0; fi
    sleep 0.1
  done
  echo "server on port $1 did not answer 200; logs in $WORK" >&2; cat "$WORK"/*.log >&2; exit 1
}
wait_up $P_NGINX; wait_up $P_STRAIT
NGINX_WORKERS=$(cat "/proc/$NGINX_PID/task/$NGINX_PID/children")
NGINX_PIDS=$(echo "$NGINX_PID $NGINX_WORKERS" | xargs | tr ' ' ',')

{
echo "# TLS 1.3 full handshakes: Strait vs nginx ($(date -u '+%F %T UTC'))"
echo "strait: $STRAIT ($("$STRAIT" version 2>/dev/null | head -1))"
echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //') ($(nginx -V 2>&1 | grep -o 'built with OpenSSL [^ ]*')), running on libssl3 $(dpkg-query -W -f='${Version}' libssl3 2>/dev/null || echo '?'); openssl CLI: $(openssl version | cut -d' ' -f1-2)"
echo "hsload: rustls 0.23.46 (ring), $HSLOAD"
echo "kernel $(uname -r), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "layout: server under test nice -n $NICE taskset -c 1 (nginx: 1 worker, master+worker counted; strait: worker_threads 1, all threads counted); hsload taskset -c 0, single thread, $CONC concurrent connections"
echo "rounds: $ROUNDS, each ${DUR}s measured after a 1s warm-up, interleaved nginx, strait"
echo "uptime at start: $(uptime)"
echo "priority: nice $NICE for servers and load, session autogroup $(cut -d' ' -f2- /proc/self/autogroup 2>/dev/null) (sched_autogroup_enabled=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null))"
echo "load command: nice -n $NICE taskset -c 0 $HSLOAD --addr 127.0.0.1:PORT -c $CONC -d $DUR --warmup 1 --server-pid PIDS"
echo
echo "## Configurations"
echo '```'; sed "s#$WORK#WORKDIR#g" "$WORK/nginx.conf"; echo '```'
echo '```'; sed "s#$WORK#WORKDIR#g" "$WORK/strait.yaml"; echo '```'
echo
echo "## What each server negotiates (openssl s_client -tls1_3 -groups X25519, one GET)"
for s in nginx:$P_NGINX strait:$P_STRAIT; do
  name=${s%%:*}; port=${s##*:}
  o=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
      timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername localhost -tls1_3 -groups X25519 \
        -ign_eof -sess_out "$WORK/$name.sess" 2>&1 || true)
  echo "$name: $(echo "$o" | grep -m1 -E '^(New|Reused),' | xargs); $(echo "$o" | grep -m1 'Server Temp Key' | xargs);" \
       "$(echo "$o" | grep -m1 'Peer signature type' | xargs); session tickets sent by the server:" \
       "$(echo "$o" | grep -c 'Post-Handshake New Session Ticket arrived')"
  o2=$(echo | timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername localhost -tls1_3 -groups X25519 \
        -sess_in "$WORK/$name.sess" 2>&1 || true)
  echo "$name: a client that offers the saved session gets: $(echo "$o2" | grep -m1 -E '^(New|Reused),' | xargs)" \
       "(hsload offers none: resumption disabled, and every connection is checked to be a full handshake)"
done
echo
echo "## Rounds"
} | tee "$OUT"

ROWS=$WORK/rows.txt; : >"$ROWS"
for r in $(seq "$ROUNDS"); do
  for s in nginx strait; do
    if [ $s = nginx ]; then port=$P_NGINX; pids=$NGINX_PIDS; else port=$P_STRAIT; pids=$STRAIT_PID; fi
    up0=$(cut -d' ' -f1-3 /proc/loadavg)
    line=$(timeout $((DUR + 30)) nice -n "$NICE" taskset -c 0 "$HSLOAD" --addr "127.0.0.1:$port" -c "$CONC" -d "$DUR" --warmup 1 --server-pid "$pids")
    up1=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "round=$r server=$s $line loadavg_before=\"$up0\" loadavg_after=\"$up1\"" | tee -a "$OUT" >>"$ROWS"
    echo "round=$r server=$s $line" >&2
  done
done

python3 - "$ROWS" <<'PY' | tee -a "$OUT"
import re, statistics, sys
rows = []
for l in open(sys.argv[1]):
    rows.append(dict(re.findall(r'(\w+)=("[^"]*"|\S+)', l)))
def med(xs, f=',.1f'): return f"{statistics.median(xs):{f}} [{min(xs):{f}}–{max(xs):{f}}]"
print("\n## Summary (median [min–max] over rounds)\n")
print("| | nginx | strait | strait/nginx (per round) |")
print("|---|---|---|---|")
by = {s: [r for r in rows if r['server'] == s] for s in ('nginx', 'strait')}
for key, label in [('cpu_us_hs', 'server CPU µs per handshake'), ('user_us_hs', '  of which user'),
                   ('sys_us_hs', '  of which kernel'), ('hs_s_per_core', 'handshakes/s per core (1e6/µs)'),
                   ('hs_s', 'handshakes/s achieved'), ('server_cpu_pct', 'server CPU % of core 1'), ('core1_busy_pct', 'core 1 busy % (all processes)'),
                   ('client_cpu_pct', 'hsload CPU % of core 0'), ('core0_busy_pct', 'core 0 busy % (all processes)')]:
    n = [float(r[key]) for r in by['nginx']]; s = [float(r[key]) for r in by['strait']]
    ratios = [b / a for a, b in zip(n, s) if a]
    print(f"| {label} | {med(n)} | {med(s)} | {med(ratios, '.2f')}x |" if ratios else f"| {label} | {med(n)} | {med(s)} | |")
bad = sum(int(r[k]) for r in rows for k in ('non200', 'not_full', 'other_group', 'errors'))
print(f"\nnon-200, resumed/HRR, non-X25519 handshakes and errors over all rounds: {bad}")
print("response bytes per connection (decrypted, HTTP only): " +
      ", ".join(f"{s} {by[s][0]['resp_bytes_per_conn']}" for s in by))
PY

# Cross-check with another client: openssl s_time -new (a new session every connection, OpenSSL's
# default groups: X25519 key share first), STIME_PAR processes on core 0. Off with STIME=0.
if [ "${STIME:-1}" = 1 ]; then
  STIME_DUR=${STIME_DUR:-8}; STIME_PAR=${STIME_PAR:-4}
  cpu_ticks() { local t=0 p; for p in ${1//,/ }; do t=$((t + $(awk '{sub(/.*\) /,""); print $12+$13}' "/proc/$p/stat"))); done; echo $t; }
  {
  echo
  echo "## Cross-check: openssl s_time -new -www / ($STIME_PAR in parallel on core 0, ${STIME_DUR}s)"
  echo "command: nice -n $NICE taskset -c 0 openssl s_time -connect 127.0.0.1:PORT -new -www / -time $STIME_DUR (x$STIME_PAR)"
  } | tee -a "$OUT"
  for s in nginx strait nginx strait; do
    if [ $s = nginx ]; then port=$P_NGINX; pids=$NGINX_PIDS; else port=$P_STRAIT; pids=$STRAIT_PID; fi
    c0=$(cpu_ticks "$pids"); t0=$(date +%s.%N)
    SPIDS=()
    for i in $(seq "$STIME_PAR"); do
      timeout $((STIME_DUR + 20)) nice -n "$NICE" taskset -c 0 openssl s_time -connect "127.0.0.1:$port" -new -www / -time "$STIME_DUR" \
        >"$WORK/stime.$i" 2>&1 &
      SPIDS+=($!)
    done
    for p in "${SPIDS[@]}"; do wait "$p" || true; done
    c1=$(cpu_ticks "$pids"); t1=$(date +%s.%N)
    n=$(cat "$WORK"/stime.* | awk '/connections in .* real seconds/ {n += $1} END {print n+0}')
    python3 -c "
n, ticks, secs, hz = $n, $c1 - $c0, $t1 - $t0, $(getconf CLK_TCK)
us = 1e6 * ticks / hz / max(n, 1)
print(f'server=$s handshakes={n} wall_s={secs:.1f} hs_s={n/secs:.0f} server_cpu_pct={100*ticks/hz/secs:.0f} cpu_us_hs={us:.1f} hs_s_per_core={1e6/max(us,1e-9):.0f}')
" | tee -a "$OUT"
  done
fi

echo "uptime at end: $(uptime)" | tee -a "$OUT"
echo "written: $OUT" >&2
