#!/bin/bash
# Interleaved runs for issues 12 and 13: plain route, sticky split, 100% mirror to a slow shadow (200 ms per answer),
# the add_headers proxy-wasm plugin (built by scripts/build-plugins.sh into /var/tmp/strait-target).
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/b12}; mkdir -p "$OUT"
BIN=${STRAIT_BIN:-/var/tmp/strait-release/release/strait}
python3 -c 'import time, http.server as h
class S(h.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(s): time.sleep(0.2); s.send_response(200); s.send_header("content-length", "0"); s.end_headers()
    do_POST = do_PUT = do_GET
    def log_message(s, *a): pass
h.ThreadingHTTPServer(("127.0.0.1", 18490), S).serve_forever()' &
SHADOW=$!
trap 'kill $SHADOW' EXIT
for round in 1 2 3; do
  for t in plain split-sticky mirror-slow wasm-headers; do
    if [ $t = plain ]; then T=../shared/bench/strait-template.yaml; else T=bench/templates/$t.yaml; fi
    timeout 900 ../shared/bench/run --proxies strait --strait-bin $BIN --strait-template $T \
      --duration 10 --rate 5000 --idle-conns 1000 --out $OUT/$t-$round.json > $OUT/$t-$round.txt 2>&1
    echo "$t $round $(grep -E '^\| a CPU us/req' $OUT/$t-$round.txt) $(grep -E '^\| b p99 ms' $OUT/$t-$round.txt)"
  done
done
