#!/bin/bash
# Issue 15: bytes per idle keep-alive connection, plain HTTP/1.1 and TLS (both parked since 5f798b4), N each,
# against a fresh Strait per measurement. usage: bench/idle/run.sh STRAIT_BIN [N=10000] [ROUNDS=3]
set -u
BIN=$1; N=${2:-10000}; ROUNDS=${3:-3}
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
ulimit -n 65536 2> /dev/null || true  # the Python client holds N sockets
cat > "$WORK/strait.yaml" <<YAML
admin: { listen: 127.0.0.1:19951 }
listeners:
  - name: plain
    listen: 127.0.0.1:19180
    limits: { max_connections: 20000 }
  - name: tls
    listen: 127.0.0.1:19543
    limits: { max_connections: 20000 }
    tls:
      cert: $ROOT/examples/certs/www.example.com.pem
      key: $ROOT/examples/certs/www.example.com.key
routes:
  - name: hello
    respond: { status: 200, body: "ok" }
YAML
for round in $(seq 1 "$ROUNDS"); do
  for kind in plain tls; do
    "$BIN" run -c "$WORK/strait.yaml" > "$WORK/strait.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do curl -sf http://127.0.0.1:19951/readyz > /dev/null && break; sleep 0.1; done
    if [ "$kind" = plain ]; then
      python3 "$HERE/idle.py" 19180 "$N" "$pid"
    else
      python3 "$HERE/idle.py" 19543 "$N" "$pid" --tls
    fi
    kill "$pid"; wait "$pid" 2> /dev/null
  done
done
