"""Clients that write without reading (SPEC §2, §4, §5.5): whatever they send,
the agent's memory for them stays bounded (input is left unread while their
answers are backed up, and queued pongs are counted at their real size and
coalesced), they are dropped within a bounded time, the drop is counted in
/metrics, and everyone else keeps being served."""

import os
import re
import select
import time

import pytest

import rawws
from agent_helpers import http
from e2e_util import now_us
from rawws import OP_PING, RawWS, encode_frame
from test_robustness import Observer, agent_has_peer, assert_every_tick

MiB = 1 << 20

# Under AddressSanitizer freed memory waits in a 256 MiB quarantine, which
# would count as growth here; a small one keeps the bound meaningful.
SMALL_QUARANTINE = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"}


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def dropped(port, reason):
    resp = http(port, "GET", "/metrics")
    assert resp.status == 200, resp
    m = re.search(r'^metrics_agent_clients_dropped_total\{reason="%s"\} (\d+)$' % reason,
                  resp.body.decode(), re.M)
    assert m, "no %s drop counter in /metrics" % reason
    return int(m.group(1))


def flood(socks, chunk, limit, agent):
    """Write `chunk` to every socket, never reading, until `limit` bytes went
    to each, the agent ends the connection, or it takes nothing for 3 s.
    Returns the bytes sent to each."""
    for s in socks:
        s.setblocking(False)
    sent = {s: 0 for s in socks}
    live = set(socks)
    last_progress = time.monotonic()
    deadline = time.monotonic() + 60
    while live and time.monotonic() < deadline and time.monotonic() - last_progress < 3:
        agent.assert_alive()
        _, writable, _ = select.select([], list(live), [], 0.25)
        for s in writable:
            try:
                n = s.send(chunk)
            except BlockingIOError:
                continue
            except OSError:
                live.discard(s)  # reset by the agent
                continue
            sent[s] += n
            last_progress = time.monotonic()
            if sent[s] >= limit:
                live.discard(s)
    return [sent[s] for s in socks]


def wait_dropped(agent, local_ports, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(agent_has_peer(agent, p) for p in local_ports):
            return True
        time.sleep(0.25)
    return False


@pytest.mark.parametrize("closing", [True, False], ids=["connection-close", "keep-alive"])
def test_pipelining_client_that_never_reads(spawn, closing):
    """40 pipelined GET / (far more answer than the socket buffers hold), then
    either a `Connection: close` request or yet more requests, then 64 MiB
    more, with a 1 KiB receive buffer and never a read. Before: the agent kept
    appending all of it to the connection's input buffer and never timed the
    connection out."""
    agent = spawn.agent("--tick", "0.5", "--request-timeout", "1", env=SMALL_QUARANTINE)
    observer = Observer(agent.port)
    t_start = now_us()
    rss_before = vm_kib(agent.pid, "VmRSS")
    timeouts_before = dropped(agent.port, "timeout")
    get = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    socks = [rawws.connect_tcp(agent.port, rcvbuf=1024) for _ in range(3)]
    try:
        for s in socks:
            s.sendall(get * 40)
            if closing:
                s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        sent = flood(socks, get * 1000, 64 * MiB, agent)
        # Another client is served meanwhile.
        assert http(agent.port, "GET", "/health").status == 200
        ports = [s.getsockname()[1] for s in socks]
        assert wait_dropped(agent, ports, 20), (
            "clients that never read their answers were still connected 20 s later "
            "with --request-timeout 1 (sent %s bytes)" % sent)
        peak = vm_kib(agent.pid, "VmHWM")
    finally:
        for s in socks:
            s.close()
    assert (peak - rss_before) * 1024 < 24 * MiB, (
        "agent memory grew from %d KiB to a peak of %d KiB (sent %s bytes)" % (rss_before, peak, sent))
    assert dropped(agent.port, "timeout") >= timeouts_before + len(socks)
    assert http(agent.port, "GET", "/health").status == 200
    time.sleep(1.0)
    assert_every_tick(observer.stop(), 500_000, since_us=t_start)
    agent.assert_alive()


def test_ping_flood_that_never_reads(spawn):
    """Empty pings as fast as the agent takes them, never reading a pong, on a
    stream that is otherwise quiet. Before: every pong was queued and counted
    as 2 bytes, ~30 MB of agent memory per connection, and both stayed open."""
    agent = spawn.agent("--tick", "0.5", "--ws-ping", "1", "--heartbeat", "600", env=SMALL_QUARANTINE)
    observer = Observer(agent.port)
    t_start = now_us()
    rss_before = vm_kib(agent.pid, "VmRSS")
    clients = [RawWS.connect(agent.port, "/api/ws/ws/alerts", rcvbuf=1024) for _ in range(2)]
    try:
        sent = flood([c.sock for c in clients], encode_frame(OP_PING) * 10000, 48 * MiB, agent)
        assert http(agent.port, "GET", "/health").status == 200
        ports = [c.sock.getsockname()[1] for c in clients]
        assert wait_dropped(agent, ports, 20), (
            "ping floods that never read were still connected 20 s later with --ws-ping 1 "
            "(sent %s bytes)" % sent)
        peak = vm_kib(agent.pid, "VmHWM")
    finally:
        for c in clients:
            c.close_socket()
    assert (peak - rss_before) * 1024 < 16 * MiB, (
        "agent memory grew from %d KiB to a peak of %d KiB (sent %s bytes)" % (rss_before, peak, sent))
    assert dropped(agent.port, "timeout") + dropped(agent.port, "backlog") >= len(clients)
    time.sleep(1.0)
    assert_every_tick(observer.stop(), 500_000, since_us=t_start)
    agent.assert_alive()


def test_pipelining_client_that_reads_slowly_gets_every_answer(spawn):
    """Backpressure is not a drop: a client that pipelines many requests and
    reads its answers only later still gets every one of them, in order."""
    agent = spawn.agent("--tick", "0.5")
    n = 200
    with rawws.connect_tcp(agent.port, rcvbuf=4096) as s:
        for i in range(n):
            s.sendall(b"GET /health?n=%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % i)
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 20)
        time.sleep(1.0)
        got = 0
        rest = b""
        for _ in range(n + 20):
            resp, rest = rawws.read_http_response(s, rest)
            assert resp.status == 200, resp
            got += 1
        assert got == n + 20
    agent.assert_alive()
