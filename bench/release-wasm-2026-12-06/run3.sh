#!/bin/bash
# Third loop for issue 12: three more interleaved rounds of plain vs 100% mirror to the slow asyncio shadow
# (the p99 comparison of run2.sh was within a few percent of its 10% target; more pairs narrow it).
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/b12b}; mkdir -p "$OUT"
BIN=${STRAIT_BIN:-/var/tmp/strait-release/release/strait}
taskset -c 0 python3 -c 'import asyncio
async def serve(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            n = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
            if n:
                await r.readexactly(n)
            await asyncio.sleep(0.2)
            w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            await w.drain()
    except Exception:
        w.close()
async def main():
    s = await asyncio.start_server(serve, "127.0.0.1", 18490, backlog=1024)
    await s.serve_forever()
asyncio.run(main())' &
SHADOW=$!
trap 'kill $SHADOW' EXIT
for round in 5 6 7; do
  for t in plain mirror-slow; do
    if [ $t = plain ]; then T=../shared/bench/strait-template.yaml; else T=bench/templates/$t.yaml; fi
    timeout 900 ../shared/bench/run --proxies strait --strait-bin $BIN --strait-template $T \
      --duration 10 --rate 5000 --idle-conns 1000 --out $OUT/$t-$round.json > $OUT/$t-$round.txt 2>&1
    echo "$t $round $(grep -E '^\| a CPU us/req|^\| a  of which user|^\| b p99 ms|^\| b p50 ms|idle check: core1' $OUT/$t-$round.txt | tr -s ' ' | tr '\n' ' ')"
  done
done
