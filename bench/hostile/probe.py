#!/usr/bin/env python3
"""Hostile clients and upstreams against a real Strait binary: each case must end in the documented
status or a close, within a bound (no hang), and Strait must keep serving a normal request after.

usage: bench/hostile/probe.py STRAIT_BIN
Starts Strait (short timeouts: header 2 s, send 2 s, upstream request 3 s, idle 2 s) in front of a
Python upstream whose behaviour is chosen by the request path, prints one line per case and exits 1
if any case failed.
"""
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

WEB, ADMIN, UP = 19280, 19981, 19290
CONFIG = f"""
admin: {{ listen: 127.0.0.1:{ADMIN} }}
listeners:
  - name: web
    listen: 127.0.0.1:{WEB}
    limits: {{ header_read_timeout: 2s, send_timeout: 2s, idle_timeout: 5s }}
routes:
  - name: all
    upstream: up
upstreams:
  - name: up
    endpoints: ["127.0.0.1:{UP}"]
    timeouts: {{ connect: 1s, request: 3s, idle: 2s }}
    outlier_detection: {{ consecutive_gateway_failures: 0 }}
"""

BIG = 64 * 1024 * 1024
PID = 0


async def upstream(reader, writer):
    """One behaviour per path; each connection serves one request."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except Exception:
        writer.close()
        return
    try:
        await behave(head, reader, writer)
    except (Exception, asyncio.CancelledError):
        pass
    writer.close()


async def behave(head, reader, writer):
    path = head.split(b" ")[1].decode()
    w = writer.write
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    if path == "/ok":
        if length:
            await reader.readexactly(length)
        w(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    elif path == "/big":
        w(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % BIG)
        try:
            for _ in range(BIG // 65536):
                w(b"x" * 65536)
                await writer.drain()
        except Exception:
            pass
    elif path == "/early":  # answers before reading the upload, then closes
        w(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope")
    elif path == "/close-mid-body":
        w(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"y" * 100)
        await writer.drain()
    elif path == "/slow-head":  # the head one byte at a time (split across many reads)
        for b in b"HTTP/1.1 200 OK\r\nx-slow: 1\r\ncontent-length: 2\r\n\r\nok":
            w(bytes([b]))
            await writer.drain()
            await asyncio.sleep(0.002)
    elif path == "/huge-head":  # over the 32 KiB response head limit
        w(b"HTTP/1.1 200 OK\r\n" + b"x-filler: " + b"a" * 40000 + b"\r\ncontent-length: 0\r\n\r\n")
    elif path == "/cl-te":  # both framings: read as chunked, connection not reused
        w(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    elif path == "/bare-lf":
        w(b"HTTP/1.1 200 OK\ncontent-length: 2\n\nok")
    elif path == "/late-bad-byte":  # valid start, a bad byte deep in the head, split over reads
        w(b"HTTP/1.1 200 OK\r\nx-a: " + b"v" * 3000)
        await writer.drain()
        await asyncio.sleep(0.05)
        w(b"\x01\r\ncontent-length: 0\r\n\r\n")
    elif path == "/silent":  # never answers
        await asyncio.sleep(30)
    elif path == "/stall-body":  # head, then the body stops
        w(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab")
        await writer.drain()
        await asyncio.sleep(30)
    try:
        await writer.drain()
    except Exception:
        pass
    writer.close()


def raw(data, *, read=True, wait=8.0, pause_after=None, then=b""):
    """Sends `data` (then `then` after `pause_after` s), reads until close; returns (bytes, seconds)."""
    t = time.monotonic()
    s = socket.create_connection(("127.0.0.1", WEB))
    s.settimeout(wait)
    got = b""
    try:
        s.sendall(data)
        if pause_after is not None:
            time.sleep(pause_after)
            try:
                s.sendall(then)
            except OSError:
                pass
        while read:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, OSError) as e:
        got += f"<{type(e).__name__}>".encode()
    finally:
        s.close()
    return got, time.monotonic() - t


def rss():
    with open(f"/proc/{PID}/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS"))


def status(got):
    return got[9:12].decode(errors="replace") if got.startswith(b"HTTP/1.1 ") else got[:40]


def get(path, extra=b""):
    return b"GET %s HTTP/1.1\r\nhost: x\r\nconnection: close\r\n%s\r\n" % (path.encode(), extra)


def cases():
    out = []

    def check(name, ok, detail):
        out.append((name, ok, detail))
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)

    got, t = raw(get("/ok"))
    check("normal request", status(got) == "200", f"{status(got)} in {t:.2f}s")

    # Slow client: the head trickles in and is never finished.
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", WEB))
    s.settimeout(8)
    got = b""
    try:
        for b in b"GET /ok HTTP/1.1\r\nhost: x\r\nx-slow: " + b"s" * 100:
            s.send(bytes([b]))
            time.sleep(0.1)
    except OSError:
        pass  # closed by Strait: read what it said
    try:
        while True:
            c = s.recv(4096)
            if not c:
                break
            got += c
    except OSError as e:
        got += f"<{type(e).__name__}>".encode()
    s.close()
    t = time.monotonic() - t0
    check("slowloris head", status(got) == "408" and t < 6, f"{status(got)} after {t:.2f}s")

    # A client that stops reading a 64 MiB body: once every buffer on the way is full, the send
    # timeout closes the connection, and Strait holds a bounded amount meanwhile.
    t0 = time.monotonic()
    rss0 = rss()
    s = socket.create_connection(("127.0.0.1", WEB))
    s.sendall(get("/big"))
    peak = rss0
    while time.monotonic() - t0 < 8:
        time.sleep(0.5)
        peak = max(peak, rss())
    s.settimeout(3)
    total, closed = 0, False
    try:
        while time.monotonic() - t0 < 20:
            c = s.recv(1 << 20)
            if not c:
                closed = True
                break
            total += len(c)
    except OSError:
        closed = True
    s.close()
    check("client stops reading 64 MiB", closed and total < BIG and peak - rss0 < 8 << 20,
          f"closed after {total} of {BIG} body bytes; Strait RSS +{(peak - rss0) >> 10} KiB during the stall")

    # Half-finished upload: 100 of 10,000 declared bytes, then silence.
    got, t = raw(b"POST /ok HTTP/1.1\r\nhost: x\r\ncontent-length: 10000\r\n\r\n" + b"z" * 100, wait=10)
    check("half-finished upload", t < 8 and (got == b"" or status(got) in ("408", "400", "502", "504") or got.startswith(b"<")),
          f"{status(got) or 'close'} after {t:.2f}s")

    # Upstream answers early (413) while the client is still uploading.
    got, t = raw(b"POST /early HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\n" + b"z" * 1000,
                 pause_after=0.3, then=b"z" * 100000, wait=8)
    check("upstream answers early", status(got) == "413" and t < 6, f"{status(got)} in {t:.2f}s")

    got, t = raw(get("/close-mid-body"))
    body = got.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in got else b""
    check("upstream closes mid-body", status(got) == "200" and len(body) < 1000 and t < 5,
          f"{status(got)}, {len(body)} of 1000 body bytes, closed in {t:.2f}s")

    got, t = raw(get("/stall-body"))
    body = got.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in got else b""
    check("upstream stalls mid-body", status(got) == "200" and len(body) < 10 and t < 6,
          f"{status(got)}, {len(body)} of 10 body bytes, closed in {t:.2f}s (idle 2s)")

    got, t = raw(get("/silent"))
    check("upstream never answers", status(got) == "504" and t < 6, f"{status(got)} in {t:.2f}s")

    got, t = raw(get("/slow-head"))
    check("upstream head one byte per read", status(got) == "200" and got.endswith(b"ok"), f"{status(got)} in {t:.2f}s")

    for path, want in [("/huge-head", "502"), ("/bare-lf", "502"), ("/late-bad-byte", "502")]:
        got, t = raw(get(path))
        check(f"upstream {path[1:]}", status(got) == want and b"127.0.0.1:%d" % UP not in got,
              f"{status(got)} in {t:.2f}s")

    got, t = raw(get("/cl-te"))
    check("upstream CL+TE read as chunked", status(got) == "200" and b"hello" in got, f"{status(got)} in {t:.2f}s")

    got, t = raw(get("/ok"))
    check("normal request after all that", status(got) == "200", f"{status(got)} in {t:.2f}s")
    return out


async def main(binary):
    server = await asyncio.start_server(upstream, "127.0.0.1", UP)
    work = tempfile.mkdtemp()
    cfg = os.path.join(work, "strait.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    log = open(os.path.join(work, "strait.log"), "w")
    proc = subprocess.Popen([binary, "run", "-c", cfg], stdout=log, stderr=subprocess.STDOUT)
    global PID
    PID = proc.pid
    try:
        for _ in range(50):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/readyz", timeout=1)
                break
            except Exception:
                await asyncio.sleep(0.1)
        results = await asyncio.get_running_loop().run_in_executor(None, cases)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/metrics", timeout=2).read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        server.close()
    failed = sum(not ok for _, ok, _ in results)
    for line in metrics.splitlines():
        if line.startswith(("strait_downstream_rejected_requests_total", "strait_upstream_requests_total")) and not line.endswith(" 0"):
            print("    " + line)
    print(f"strait exit code {proc.returncode}")
    return failed


sys.exit(1 if asyncio.run(main(sys.argv[1])) else 0)
