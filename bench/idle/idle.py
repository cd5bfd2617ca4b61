#!/usr/bin/env python3
"""Issue 15: bytes of proxy RSS per idle keep-alive connection, plain or TLS (the harness's scenario f method).

Opens N connections to 127.0.0.1:PORT, sends one request on each and reads its answer, leaves them
open and idle, waits, and reports (RSS after - RSS before) / N of process PID.
usage: idle.py PORT N PID [--tls] [--path /] [--settle 3]
"""
import argparse
import asyncio
import ssl


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmRSS")


async def one(args, ctx, conns):
    r, w = await asyncio.open_connection("127.0.0.1", args.port, ssl=ctx, server_hostname="www.example.com" if ctx else None)
    w.write(f"GET {args.path} HTTP/1.1\r\nHost: www.example.com\r\n\r\n".encode())
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")]
    if length:
        await r.readexactly(length[0])
    conns.append((r, w))


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("pid", type=int)
    p.add_argument("--tls", action="store_true")
    p.add_argument("--path", default="/")
    p.add_argument("--settle", type=float, default=3.0)
    args = p.parse_args()
    ctx = None
    if args.tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
    conns = []
    before = rss(args.pid)
    sem = asyncio.Semaphore(200)

    async def guarded():
        async with sem:
            await one(args, ctx, conns)

    await asyncio.gather(*[guarded() for _ in range(args.n)])
    await asyncio.sleep(args.settle)
    after = rss(args.pid)
    kind = "tls" if args.tls else "plain"
    print(f"{kind} conns={len(conns)} rss_before={before} rss_after={after} bytes_per_conn={(after - before) / args.n:.0f}")


asyncio.run(main())
