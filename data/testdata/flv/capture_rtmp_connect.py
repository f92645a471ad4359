#!/usr/bin/env python3
"""Capture the body of the RTMP `connect` command ffmpeg sends when publishing.

Listens on 127.0.0.1, performs a plain (non-digest) RTMP handshake, reads the
first chunk-stream message (AMF0 command, type 20, default 128-byte chunks) and
writes its body to the file given as the only argument. Run ffmpeg against the
printed URL, e.g.

    ffmpeg -re -f lavfi -i testsrc=size=160x120:rate=25 -t 5 -c:v libx264 \
           -f flv rtmp://127.0.0.1:<port>/live/stream
"""
import socket
import sys


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        part = conn.recv(n - len(buf))
        if not part:
            raise EOFError("peer closed")
        buf += part
    return buf


def main():
    out = sys.argv[1]
    srv = socket.socket()
    srv.bind(("127.0.0.1", int(sys.argv[2]) if len(sys.argv) > 2 else 0))
    srv.listen(1)
    print(f"rtmp://127.0.0.1:{srv.getsockname()[1]}/live/stream", flush=True)
    conn, _ = srv.accept()
    c0c1 = recv_exact(conn, 1 + 1536)
    conn.sendall(b"\x03" + bytes(1536) + c0c1[1:])  # S0 S1 S2 (S2 echoes C1)
    recv_exact(conn, 1536)  # C2
    first = recv_exact(conn, 1)[0]
    assert first >> 6 == 0, "expected a type-0 chunk header"
    header = recv_exact(conn, 11)
    length = int.from_bytes(header[3:6], "big")
    msg_type = header[6]
    assert msg_type == 20, f"expected an AMF0 command, got type {msg_type}"
    body = b""
    while len(body) < length:
        if body:
            cont = recv_exact(conn, 1)[0]
            assert cont >> 6 == 3, "expected a type-3 continuation chunk"
        body += recv_exact(conn, min(128, length - len(body)))
    with open(out, "wb") as f:
        f.write(body)
    conn.close()


if __name__ == "__main__":
    main()
