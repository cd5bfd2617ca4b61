#!/usr/bin/env python3
"""An independent TLS 1.3 client (tlslite-ng with kyber-py, pure Python) that offers only the
X25519MLKEM768 hybrid group, makes one HTTP/1.1 GET and prints the response. A completed
handshake proves the server negotiated X25519MLKEM768 as draft-ietf-tls-ecdhe-mlkem defines it.

usage: pqhello.py HOST PORT SERVER_NAME PATH
"""
import socket
import sys

from tlslite.api import HandshakeSettings, TLSConnection


def main():
    host, port, name, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    settings = HandshakeSettings()
    settings.minVersion = (3, 4)
    settings.maxVersion = (3, 4)
    settings.eccCurves = ["x25519mlkem768"]
    settings.keyShares = ["x25519mlkem768"]
    settings.dhGroups = []
    sock = socket.create_connection((host, port), timeout=10)
    conn = TLSConnection(sock)
    conn.handshakeClientCert(settings=settings, serverName=name)
    request = f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
    conn.write(request.encode())
    data = b""
    while True:
        try:
            chunk = conn.read()
        except Exception:  # the server's close_notify or a reset ends the response
            break
        if not chunk:
            break
        data += chunk
    conn.close()
    print("handshake ok: x25519mlkem768")
    print(data.decode(errors="replace"))


if __name__ == "__main__":
    main()
