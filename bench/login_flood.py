#!/usr/bin/env python3
"""Login flood: how much do failed logins from many source addresses slow the
agent down for everyone else?

Starts the agent with authentication on a free loopback port, then measures,
first quietly and then while THREADS threads send failed logins from distinct
127.x.y.z source addresses:

  - /health latency (one request every 50 ms on a kept-alive connection);
  - the flat stream's delay: arrival time minus the message's timestamp;
  - how many logins were checked (401) and how many refused at once (429).

    bench/login_flood.py [--seconds 10] [--threads 8] [--agent build/cmake/metrics-agent]

Only the standard library; Linux (any address in 127.0.0.0/8 is local).
"""

import argparse
import base64
import calendar
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def parse_flat_ts(ts):
    # 2025-11-10T12:30:45.123456 (UTC)
    day, clock = ts.split("T")
    y, mo, d = (int(x) for x in day.split("-"))
    hms, us = clock.split(".")
    h, mi, s = (int(x) for x in hms.split(":"))
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + int(us) / 1e6


class FlatStream(threading.Thread):
    """A minimal WebSocket client of /api/system/metrics recording delays."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.delays, self.stop = port, [], False
        self.phase = None

    def run(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET /api/system/metrics HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                   % (self.port, key)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        buf = buf.split(b"\r\n\r\n", 1)[1]
        s.settimeout(0.5)
        while not self.stop:
            while len(buf) < 2 or len(buf) < self._need(buf):
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    if self.stop:
                        return
                    continue
                if not chunk:
                    return
                buf += chunk
            now = time.time()
            n = self._need(buf)
            frame, buf = buf[:n], buf[n:]
            if frame[0] & 0x0F != 1:
                continue
            hdr = 2 + {126: 2, 127: 8}.get(frame[1] & 0x7F, 0)
            msg = json.loads(frame[hdr:])
            if self.phase is not None and "timestamp" in msg:
                self.delays.append((self.phase, (now - parse_flat_ts(msg["timestamp"])) * 1000))

    @staticmethod
    def _need(buf):
        ln = buf[1] & 0x7F
        if ln == 126:
            return 4 + int.from_bytes(buf[2:4], "big") if len(buf) >= 4 else 1 << 30
        if ln == 127:
            return 10 + int.from_bytes(buf[2:10], "big") if len(buf) >= 10 else 1 << 30
        return 2 + ln


def health_probe(port, seconds):
    lat = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        conn.request("GET", "/health")
        conn.getresponse().read()
        lat.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.05)
    conn.close()
    return lat


def flood(port, seconds, index, counts, lock):
    end = time.monotonic() + seconds
    i = 0
    body = json.dumps({"username": "alice", "password": "wrong"})
    while time.monotonic() < end:
        i += 1
        src = "127.%d.%d.%d" % (60 + index, (i >> 8) & 255, (i & 255) or 1)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(src, 0))
            c.request("POST", "/api/auth/login", body=body, headers={"Content-Type": "application/json"})
            st = c.getresponse().status
            c.close()
        except OSError:
            st = "error"
        with lock:
            counts[st] = counts.get(st, 0) + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--agent", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "..", "build", "cmake", "metrics-agent"))
    a = ap.parse_args()

    h = subprocess.run([a.agent, "hash-password"], input="right password\n", capture_output=True,
                       text=True, check=True).stdout.strip()
    secret = tempfile.NamedTemporaryFile("w", delete=False)
    secret.write("bench-secret-0123456789")
    secret.close()
    port = free_port()
    agent = subprocess.Popen([a.agent, "--listen", "127.0.0.1:%d" % port, "--tick", "0.1",
                              "--jwt-secret-file", secret.name, "--user", "alice:" + h],
                             stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        stream = FlatStream(port)
        stream.start()
        time.sleep(0.5)

        stream.phase = "quiet"
        quiet = health_probe(port, a.seconds / 2)

        stream.phase = "flood"
        counts, lock = {}, threading.Lock()
        threads = [threading.Thread(target=flood, args=(port, a.seconds, i, counts, lock))
                   for i in range(a.threads)]
        for t in threads:
            t.start()
        loud = health_probe(port, a.seconds)
        for t in threads:
            t.join()
        stream.phase = None
        stream.stop = True

        def show(name, values):
            print("%-22s n=%-5d p50=%7.2f ms  p99=%7.2f ms  max=%7.2f ms"
                  % (name, len(values), percentile(values, 50), percentile(values, 99), max(values or [0])))

        print("login flood: %d threads for %.0f s, tick 0.1 s" % (a.threads, a.seconds))
        show("/health quiet", quiet)
        show("/health flood", loud)
        show("flat delay quiet", [d for p, d in stream.delays if p == "quiet"])
        show("flat delay flood", [d for p, d in stream.delays if p == "flood"])
        print("login answers:", ", ".join("%s: %d" % kv for kv in sorted(counts.items(), key=str)))
        rss = 0
        with open("/proc/%d/status" % agent.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        print("agent RSS after the flood: %.1f MB" % (rss / 1024.0))
    finally:
        agent.terminate()
        agent.wait(timeout=10)
        os.unlink(secret.name)


if __name__ == "__main__":
    sys.exit(main())
