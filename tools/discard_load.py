#!/usr/bin/env python3
"""A load client that does not copy the bodies it is sent: the load of (j).

Used by tools/bench_disk.py (scenario (j)) in wrk's place for the load of
random 1 MiB ranges. On one client core, wrk reading 1 MiB bodies in 8 KiB
read()s spent most of that core copying them, and the probe's wrk, on the
same core, got what was left: the probe's share under load measured the
clients' split of cpu1, not the proxy. This client lets the kernel drop each
body unread (recv with MSG_TRUNC discards TCP data without copying it; Linux)
and wakes once per 256 KiB of it (SO_RCVLOWAT), so the load costs the
clients' core little and its rate is what the proxy serves.

It checks what it can without the bytes: every answer a 206 with the length
and the Content-Range start asked for (a non-2xx or a wrong range counts as a
status error); the bench's checking pass reads every body with wrk.

argv: port conns seconds obj_size range_len path...
Prints one line `BENCHJSON {...}` with wrk's fields (tools/bench's
wrk_result reads it): requests, bytes (heads included), duration_us, p99_us,
sent, errors.
"""

import json
import random
import selectors
import socket
import sys
import time

LOWAT = 256 * 1024
HEAD_MAX = 16 * 1024


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.head = bytearray()
        self.left = 0
        self.lowat = 1
        self.start = 0.0
        self.asked = 0
        self.reading_body = False


def main():
    port, conns, secs, obj_size, range_len = (int(a) for a in sys.argv[1:6])
    paths = sys.argv[6:]
    rng = random.Random()
    sink = bytearray(LOWAT)
    sel = selectors.DefaultSelector()
    stats = dict(requests=0, bytes=0, sent=[0],
                 errors=dict(connect=0, read=0, write=0, timeout=0, status=0))
    lat = []
    first_bad = ""

    def send(c):
        start = range_len * rng.randrange(obj_size // range_len)
        c.asked = start
        req = (f"GET {rng.choice(paths)} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Range: bytes={start}-{start + range_len - 1}\r\n\r\n").encode()
        c.start = time.monotonic()
        c.head.clear()
        c.reading_body = False
        stats["sent"][0] += 1
        c.sock.sendall(req)

    def set_lowat(c, n):
        n = max(1, min(n, LOWAT))
        if n != c.lowat:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, n)
            c.lowat = n

    def open_conn():
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = Conn(s)
        send(c)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, c)

    def close(c, kind):
        if kind:
            stats["errors"][kind] += 1
        sel.unregister(c.sock)
        c.sock.close()
        open_conn()

    for _ in range(conns):
        open_conn()
    t0 = time.monotonic()
    end = t0 + secs
    while True:
        now = time.monotonic()
        if now >= end:
            break
        for key, _ in sel.select(timeout=end - now):
            c = key.data
            try:
                if not c.reading_body:
                    try:
                        got = c.sock.recv(HEAD_MAX)
                    except ConnectionResetError:
                        got = b""
                    if not got:
                        # Closed between answers (a server's keep-alive limit,
                        # as wrk allows): open another, not an error.
                        close(c, "read" if c.head else None)
                        continue
                    c.head += got
                    cut = c.head.find(b"\r\n\r\n")
                    if cut < 0:
                        if len(c.head) > HEAD_MAX:
                            close(c, "read")
                        continue
                    head = bytes(c.head[:cut]).decode("latin-1").split("\r\n")
                    fields = {}
                    for line in head[1:]:
                        name, _, value = line.partition(":")
                        fields[name.strip().lower()] = value.strip()
                    status = int(head[0].split()[1])
                    length = int(fields.get("content-length", "-1"))
                    asked = fields.get("content-range", "").startswith(f"bytes {c.asked}-")
                    if status != 206 or length != range_len or not asked:
                        if not first_bad:
                            first_bad = head[0] + " " + json.dumps(fields)[:300]
                        close(c, "status")
                        continue
                    stats["bytes"] += cut + 4
                    c.left = length - (len(c.head) - cut - 4)
                    stats["bytes"] += len(c.head) - cut - 4
                    c.reading_body = True
                    set_lowat(c, c.left)
                else:
                    n = c.sock.recv_into(sink, min(c.left, LOWAT), socket.MSG_TRUNC)
                    if n == 0:
                        close(c, "read")
                        continue
                    c.left -= n
                    stats["bytes"] += n
                    set_lowat(c, c.left)
                if c.reading_body and c.left <= 0:
                    stats["requests"] += 1
                    lat.append(time.monotonic() - c.start)
                    set_lowat(c, 1)
                    c.sock.setblocking(True)
                    send(c)
                    c.sock.setblocking(False)
            except BlockingIOError:
                continue
            except OSError:
                close(c, "read")
    elapsed = time.monotonic() - t0
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0
    out = dict(stats, duration_us=int(elapsed * 1e6), p99_us=int(p99 * 1e6),
               ok=0, bad=0, first_bad=first_bad)
    print("BENCHJSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
