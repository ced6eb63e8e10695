"""Opens N WebSocket clients that never read (bench/stalled.sh).

    /usr/bin/python3 bench/stalled_clients.py PORT N SECONDS [PATH]

Each connects with a small receive buffer, completes the handshake, then holds
the connection without reading for SECONDS. Prints how many the agent closed
(dropped) by then. The handshake is written here, independent of the agent.
"""

import base64
import os
import socket
import sys
import time

port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
path = sys.argv[4] if len(sys.argv) > 4 else "/api/ws/metrics?interval=1"

socks = []
for _ in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)  # byte by byte: leave every frame unread in the kernel
        if not chunk:
            sys.exit("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        sys.exit("handshake refused: %r" % head[:80])
    socks.append(s)
print("stalled: %d clients connected on %s" % (len(socks), path), flush=True)

time.sleep(seconds)
# Dropped ones: the agent closed them (EOF or reset after the buffered bytes).
closed = 0
for s in socks:
    s.setblocking(False)
    try:
        while True:
            data = s.recv(1 << 20)
            if not data:
                closed += 1
                break
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print("stalled: %d of %d closed by the agent after %.0f s" % (closed, len(socks), seconds), flush=True)
