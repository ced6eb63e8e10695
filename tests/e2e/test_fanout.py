"""The tick's parallel fan-out (SPEC §2; --fanout-threads 1, 2 and 4), with
clients on every stream and several intervals and field filters: every
client of a tick gets the same bytes as the others with the same view, and
every tick; the agent runs exactly N-1 sender threads besides its own; a
client that stops reading is dropped while the others keep receiving; and
clients that reset or close around the ticks cost only themselves."""

import os
import random
import re
import socket
import struct
import threading
import time

import pytest

import rawws
from agent_helpers import http, parse_rich_ts
from e2e_util import now_us, parse_ts
from rawws import OP_TEXT, RawWS
from test_robustness import agent_has_peer, assert_every_tick

THREADS = [1, 2, 4]

# (path with query, how many clients, interval in ticks of 0.2 s)
VIEWS = [
    ("/api/system/metrics", 6, 1),
    ("/api/system/metrics?metrics=cpu,memory", 3, 1),
    ("/api/ws/metrics?interval=0.2", 3, 1),
    ("/api/ws/metrics?interval=0.4&metrics=cpu,network", 3, 2),
    ("/api/ws/ws?interval=0.2", 3, 1),
    ("/api/ws/ws/alerts", 2, None),  # heartbeats only
]


class Reader:
    """A raw WebSocket client on its own thread that keeps every text
    message it receives, as bytes, with its timestamp."""

    def __init__(self, port, path, rcvbuf=None):
        self.ws = RawWS.connect(port, path, rcvbuf=rcvbuf)
        self.path = path
        self.messages = []  # (timestamp in µs, payload bytes)
        self.error = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                try:
                    op, payload = self.ws.recv_message(timeout=0.5)
                except rawws.Closed as e:
                    self.error = "connection ended: %s" % e
                    return
                except (TimeoutError, socket.timeout):
                    continue
                assert op == OP_TEXT
                m = re.search(rb'"timestamp": ?"([^"]+)"', payload)
                self.messages.append((stamp(m.group(1).decode()) if m else None, payload))
        except Exception as e:  # reported by stop()
            self.error = repr(e)

    def stop(self):
        self._stop.set()
        self.thread.join(5)
        self.ws.close_socket()
        assert self.error is None, "%s: %s" % (self.path, self.error)
        return self.messages


def stamp(ts):
    """The flat stream's timestamp or the rich one's (ISO 8601 with Z), in µs."""
    return parse_rich_ts(ts) if ts.endswith("Z") else parse_ts(ts)


def task_count(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def dropped(port, reason):
    resp = http(port, "GET", "/metrics")
    m = re.search(r'^metrics_agent_clients_dropped_total\{reason="%s"\} (\d+)$' % reason,
                  resp.body.decode(), re.M)
    assert m, "no %s drop counter in /metrics" % reason
    return int(m.group(1))


def rst_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("threads", THREADS)
def test_every_client_of_a_tick_gets_the_same_bytes(spawn, threads):
    agent = spawn.agent("--tick", "0.2", "--heartbeat", "0.4", "--fanout-threads", str(threads))
    time.sleep(0.5)
    idle_tasks = task_count(agent.pid)
    readers = [(path, every, Reader(agent.port, path)) for path, n, every in VIEWS for _ in range(n)]
    t_start = now_us() + 600_000  # every client connected and past its first snapshot
    time.sleep(3.0)
    t_end = now_us() - 600_000
    tasks = task_count(agent.pid)
    got = [(path, every, r.stop()) for path, every, r in readers]
    assert tasks == idle_tasks + threads - 1, (
        "expected %d sender threads besides the loop, the agent has %d threads (%d idle)"
        % (threads - 1, tasks, idle_tasks))
    # One payload per view and tick, whichever client and slice it went to.
    by_view_tick = {}
    for path, every, messages in got:
        window = [(ts, p) for ts, p in messages if ts is not None and t_start <= ts <= t_end]
        assert len(window) >= 3, "%s: %d messages in the window" % (path, len(window))
        assert_every_tick([ts for ts, _ in window], 200_000 * (every or 2))
        for ts, payload in window:
            by_view_tick.setdefault((path, ts), set()).add(payload)
    differing = {k: len(v) for k, v in by_view_tick.items() if len(v) != 1}
    assert not differing, "clients of the same view and tick got different bytes: %s" % differing
    # And every client of a view saw the same ticks.
    for path, _, _ in VIEWS:
        ticks = [sorted(ts for ts, _ in m if ts is not None and t_start <= ts <= t_end)
                 for p, _, m in got if p == path]
        assert all(t == ticks[0] for t in ticks), "%s: clients saw different ticks" % path
    agent.assert_alive()


@pytest.mark.parametrize("threads", THREADS)
def test_a_client_that_stops_reading_is_dropped_while_others_receive(spawn, threads):
    agent = spawn.agent("--tick", "0.1", "--max-backlog", "16384", "--ws-ping", "0",
                        "--fanout-threads", str(threads))
    readers = [Reader(agent.port, path) for path in
               ("/api/system/metrics", "/api/ws/metrics?interval=0.1") * 4]
    before = dropped(agent.port, "backlog")
    t_start = now_us() + 300_000
    stuck = RawWS.connect(agent.port, "/api/ws/metrics?interval=0.1", rcvbuf=1024, maxseg=256)
    local_port = stuck.sock.getsockname()[1]
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and agent_has_peer(agent, local_port):
            time.sleep(0.25)
        gone = not agent_has_peer(agent, local_port)
        t_drop = now_us()
        time.sleep(0.5)  # the others keep receiving after the drop too
    finally:
        stuck.close_socket()
    got = [r.stop() for r in readers]
    assert gone, "a client that read nothing for 40 s of ~2 KB messages at 10 Hz was not dropped"
    assert dropped(agent.port, "backlog") == before + 1
    for messages in got:
        stamps = [ts for ts, _ in messages if ts >= t_start]
        assert_every_tick(stamps, 100_000)
        assert stamps[-1] >= t_drop, "a reader stopped receiving before the drop"
    agent.assert_alive()


@pytest.mark.parametrize("threads", THREADS)
def test_clients_resetting_or_closing_around_ticks_cost_only_themselves(spawn, threads):
    """40 clients come and go at random moments of 0.1 s ticks (half of
    them with an RST, so a write to one may fail in any slice) while 12 stay
    and must get every tick."""
    agent = spawn.agent("--tick", "0.1", "--fanout-threads", str(threads))
    readers = [Reader(agent.port, path) for path in
               ("/api/system/metrics", "/api/ws/metrics?interval=0.1", "/api/ws/ws?interval=0.1") * 4]
    t_start = now_us() + 300_000
    rng = random.Random(14)
    for i in range(40):
        batch = [RawWS.connect(agent.port, "/api/system/metrics") for _ in range(3)]
        # Close just before, at, or just after a tick boundary.
        wait_us = 100_000 - now_us() % 100_000 + rng.randrange(-3000, 3000)
        time.sleep(max(0, wait_us) / 1e6)
        for j, ws in enumerate(batch):
            if (i + j) % 2:
                rst_close(ws.sock)
            else:
                ws.close_socket()
    time.sleep(0.5)
    t_end = now_us()
    got = [r.stop() for r in readers]
    for messages in got:
        assert_every_tick([ts for ts, _ in messages if ts >= t_start], 100_000)
        assert messages[-1][0] >= t_end - 300_000
    # Every client that left is gone from the agent's books.
    deadline = time.monotonic() + 5
    while sum(http(agent.port, "GET", "/health").json()["streams"].values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert http(agent.port, "GET", "/health").json()["streams"] == {"flat": 0, "rich": 0, "dashboard": 0,
                                                                     "alerts": 0}
    agent.assert_alive()
