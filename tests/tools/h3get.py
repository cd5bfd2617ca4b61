#!/usr/bin/env python3
"""One HTTP/3 GET with aioquic: a client independent of quinn, for tests/tests/http3.rs.

Usage: h3get.py ADDR PORT SNI CA_PEM PATH
Prints one JSON line: {"status": N, "headers": {name: value}, "body": text}.
"""
import asyncio
import json
import sys

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamDataReceived


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.done = None
        self.stream = None
        self.headers = None
        self.body = b""

    def quic_event_received(self, event):
        for e in self.h3.handle_event(event):
            if isinstance(e, HeadersReceived) and self.headers is None:
                self.headers = e.headers
            elif isinstance(e, DataReceived):
                self.body += e.data
            if getattr(e, "stream_ended", False) and not self.done.done():
                self.done.set_result(None)
        # The h3 crate greases: a reserved frame type may follow the last DATA frame, and
        # aioquic 1.2 reports no H3 event for a stream whose FIN comes with such a frame. The
        # QUIC-level end of the request stream ends the response all the same.
        if isinstance(event, StreamDataReceived) and event.end_stream and event.stream_id == self.stream:
            if self.done is not None and not self.done.done():
                self.done.set_result(None)

    async def get(self, authority, path):
        stream = self.stream = self._quic.get_next_available_stream_id()
        self.done = self._loop.create_future()
        self.h3.send_headers(
            stream,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
            ],
            end_stream=True,
        )
        self.transmit()
        await asyncio.wait_for(self.done, 10)


async def main():
    addr, port, sni, ca, path = sys.argv[1:6]
    cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=sni)
    cfg.load_verify_locations(ca)
    async with connect(addr, int(port), configuration=cfg, create_protocol=Client) as c:
        await c.get(f"{sni}:{port}", path)
        headers = {k.decode(): v.decode() for k, v in c.headers}
        status = int(headers.pop(":status"))
        body = c.body.decode("utf-8", "replace")
        print(json.dumps({"status": status, "headers": headers, "body": body}))


asyncio.run(main())
