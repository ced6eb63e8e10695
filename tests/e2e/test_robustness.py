"""Fan-out under misbehaving peers, limits, timeouts and shutdown (SPEC §2,
§3, §5.5): a client that never reads is dropped without delaying the
others; peers that vanish mid-frame or mid-handshake change nothing for the
rest; SIGTERM/SIGINT close every client with 1001 and exit 0 within a second."""

import asyncio
import json
import random
import select
import signal
import socket
import struct
import threading
import time

import psutil
import pytest
import websockets

import rawws
from e2e_util import now_us, parse_ts
from rawws import OP_CLOSE, OP_PING, OP_TEXT, RawWS, encode_frame

PATH = "/api/system/metrics"


class Observer:
    """A python3-websockets client on its own thread that records the
    timestamp of every message it receives until stopped."""

    def __init__(self, port, path=PATH):
        self.url = "ws://127.0.0.1:%d%s" % (port, path)
        self.stamps = []
        self.error = None
        self.ready = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(15), "observer could not connect: %s" % self.error

    def _run(self):
        try:
            asyncio.run(self._main())
        except Exception as e:  # reported by stop()
            self.error = e
            self.ready.set()

    async def _main(self):
        async with websockets.connect(self.url, open_timeout=10, ping_interval=None,
                                      max_size=None) as ws:
            self.ready.set()
            while not self._stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except asyncio.TimeoutError:
                    continue
                self.stamps.append(parse_ts(json.loads(raw)["timestamp"]))

    def stop(self):
        self._stop.set()
        self.thread.join(10)
        if self.error:
            raise AssertionError("observer failed: %r" % (self.error,))
        return self.stamps


def assert_every_tick(stamps, step_us, since_us=None, until_us=None):
    """No gaps and no duplicates on the tick grid: consecutive grid points.
    A stamp is the time its sample was taken, at or after its tick, never
    before it (2 ms allowed for the clocks' rounding), and a tick that comes
    a whole period late is skipped by design; so each stamp belongs to the
    grid point at or before it, however late a loaded machine runs it."""
    idx = [(ts + 2_000) // step_us for ts in stamps
           if (since_us is None or ts >= since_us) and (until_us is None or ts <= until_us)]
    assert len(idx) >= 2, "too few messages: %s" % stamps
    missing = [b for a, b in zip(idx, idx[1:]) if b != a + 1]
    assert not missing, "ticks missing or repeated after %d of %d messages: %s" % (
        len(idx) - len(missing), len(idx), [(a, b) for a, b in zip(idx, idx[1:]) if b != a + 1][:10])


def agent_has_peer(agent, local_port):
    try:
        conns = psutil.Process(agent.pid).connections(kind="tcp")
    except psutil.NoSuchProcess:
        raise AssertionError("agent died: " + agent.describe())
    return any(c.raddr and c.raddr.port == local_port for c in conns)


# --------------------------------------------------------------------------- #

def test_client_that_never_reads_is_dropped_and_delays_no_one(spawn):
    """A client with a tiny receive buffer that never reads. On loopback the
    kernel's socket buffers absorb tens of KiB, over a minute of 10 small
    messages a second, so after a few seconds of ticks alone the client also
    sends pings (bounded) whose pongs pile up in its backlog the same way."""
    agent = spawn.agent("--tick", "0.1", "--max-backlog", "16384")
    observer = Observer(agent.port)
    t_start = now_us()
    rss_before = psutil.Process(agent.pid).memory_info().rss
    stuck = RawWS.connect(agent.port, PATH, rcvbuf=1024, maxseg=256)
    local_port = stuck.sock.getsockname()[1]
    try:
        time.sleep(3.0)
        assert agent_has_peer(agent, local_port), "dropped before its backlog could fill"
        ping = encode_frame(OP_PING, b"p" * 125)
        stuck.sock.setblocking(False)
        sent, pending, rounds = 0, b"", 0
        deadline = time.monotonic() + 30
        dropped = False
        while time.monotonic() < deadline and sent < 8 << 20:
            rounds += 1
            try:
                _, writable, _ = select.select([], [stuck.sock], [], 0.25)
                if writable:
                    pending = pending or ping
                    n = stuck.sock.send(pending)
                    pending, sent = pending[n:], sent + n
            except BlockingIOError:
                pass
            except OSError:
                break  # reset by the agent
            if rounds % 100 == 0 and not agent_has_peer(agent, local_port):
                break
        while time.monotonic() < deadline:
            if not agent_has_peer(agent, local_port):
                dropped = True
                break
            time.sleep(0.25)
        t_drop = now_us()
        rss_after = psutil.Process(agent.pid).memory_info().rss
        time.sleep(1.0)  # the observer keeps going after the drop as well
        stamps = observer.stop()
        assert dropped, ("the agent still holds the connection of a client that has not read "
                         "for 30 s with --max-backlog 16384 (%d bytes of pings sent): %s"
                         % (sent, agent.describe()))
        # Once it starts reading, the stuck client sees its connection end.
        stuck.sock.setblocking(True)
        assert stuck.wait_ended(15), "the dropped client's connection did not end"
    finally:
        stuck.close_socket()
    assert_every_tick(stamps, 100_000, since_us=t_start + 500_000)
    assert stamps[-1] >= t_drop, "the observer stopped receiving before the drop"
    assert rss_after - rss_before < 32 << 20, "agent RSS grew by %d bytes" % (rss_after - rss_before)
    agent.assert_alive()


def test_peers_vanishing_mid_frame_or_mid_handshake_disturb_no_one(spawn):
    agent = spawn.agent("--tick", "0.5")
    observer = Observer(agent.port)
    t_start = now_us()
    req, _ = rawws.upgrade_request(PATH)
    frame = encode_frame(OP_TEXT, b"x" * 300)

    def rst_close(sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    for i in range(15):
        # Mid-handshake, at several points of the request.
        for cut in (1, 10, len(req) // 2, len(req) - 2):
            s = rawws.connect_tcp(agent.port)
            s.sendall(req[:cut])
            (rst_close if i % 2 else socket.socket.close)(s)
        # Connected, then vanishing inside a frame: header byte, extended
        # length, mask, half the payload.
        for cut in (1, 2, 3, 6, 100):
            ws = RawWS.connect(agent.port, PATH)
            ws.send_raw(frame[:cut])
            (rst_close if i % 2 else socket.socket.close)(ws.sock)
        # Connected and gone without a word.
        s = rawws.connect_tcp(agent.port)
        rst_close(s)
    time.sleep(1.2)
    stamps = observer.stop()
    assert_every_tick(stamps, 500_000, since_us=t_start)
    agent.assert_alive()
    with RawWS.connect(agent.port, PATH) as ws:
        assert ws.recv_message()[0] == OP_TEXT


def test_random_garbage_from_many_clients(spawn):
    agent = spawn.agent("--tick", "0.5")
    observer = Observer(agent.port)
    t_start = now_us()
    rng = random.Random(6455)
    for i in range(120):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        try:
            if i % 3 == 0:
                s = rawws.connect_tcp(agent.port)  # garbage instead of HTTP
                s.sendall(junk)
                s.close()
            else:
                ws = RawWS.connect(agent.port, PATH)  # garbage instead of frames
                if i % 3 == 1:
                    junk = bytes([junk[0] | 0x80, (junk[1] if len(junk) > 1 else 0) | 0x80]) + junk[2:]
                ws.send_raw(junk)
                ws.sock.settimeout(0.2)
                try:
                    ws.sock.recv(65536)
                except OSError:
                    pass
                ws.close_socket()
        except (ConnectionResetError, BrokenPipeError):
            pass
    time.sleep(1.2)
    stamps = observer.stop()
    assert_every_tick(stamps, 500_000, since_us=t_start)
    agent.assert_alive()
    with RawWS.connect(agent.port, PATH) as ws:
        assert ws.recv_message()[0] == OP_TEXT


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_clients_with_1001_and_exits_0_within_1s(spawn, sig):
    agent = spawn.agent("--tick", "0.5")
    clients = [RawWS.connect(agent.port, PATH) for _ in range(3)]
    for c in clients:
        assert c.recv_message()[0] == OP_TEXT
    # An idle keep-alive HTTP connection, and one with half a request.
    keep = rawws.connect_tcp(agent.port)
    keep.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    resp, _ = rawws.read_http_response(keep)
    assert resp.status == 200, resp
    half = rawws.connect_tcp(agent.port)
    half.sendall(b"GET /health HTTP/1.1\r\nHost: 12")
    time.sleep(0.2)

    rc, elapsed = agent.stop(sig)
    assert rc == 0, "exit status %d after signal %d: %s" % (rc, sig, agent.describe())
    assert elapsed < 1.0, "took %.2f s to exit after signal %d" % (elapsed, sig)
    for c in clients:
        c.expect_close(1001, timeout=5)
        c.close_socket()
    for s in (keep, half):
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        s.close()

    # A restart on the same port works at once (no "address in use" from the
    # connections the old process closed).
    again = spawn.agent("--tick", "0.5", port=agent.port)
    with RawWS.connect(again.port, PATH) as ws:
        assert ws.recv_message()[0] == OP_TEXT


def test_max_clients_gives_503_beyond_the_limit(spawn):
    agent = spawn.agent("--tick", "0.5", "--max-clients", "3")
    clients = [RawWS.connect(agent.port, PATH) for _ in range(3)]
    try:
        for c in clients:
            c.recv_message()
        req, _ = rawws.upgrade_request(PATH)
        with rawws.connect_tcp(agent.port) as s:
            s.sendall(req)
            resp, _ = rawws.read_http_response(s)
        assert resp.status == 503, resp
        clients.pop().close_socket()
        deadline = time.monotonic() + 10
        while True:
            with rawws.connect_tcp(agent.port) as s:
                req, _ = rawws.upgrade_request(PATH)
                s.sendall(req)
                resp, _ = rawws.read_http_response(s)
            if resp.status == 101:
                break
            assert time.monotonic() < deadline, "a freed slot was not reusable: %r" % resp
            time.sleep(0.2)
    finally:
        for c in clients:
            c.close_socket()


def test_loopback_is_exempt_from_the_per_address_limit(spawn):
    agent = spawn.agent("--tick", "0.5", "--max-clients-per-ip", "2")
    clients = [RawWS.connect(agent.port, PATH) for _ in range(5)]
    try:
        for c in clients:
            assert c.recv_message()[0] == OP_TEXT
    finally:
        for c in clients:
            c.close_socket()


def test_stalled_request_is_closed_after_request_timeout(spawn):
    agent = spawn.agent("--tick", "0.5", "--request-timeout", "2")
    with rawws.connect_tcp(agent.port) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t0 = time.monotonic()
        ws = RawWS(s)
        assert ws.wait_ended(20), "a stalled request was not closed within 20 s"
        assert time.monotonic() - t0 >= 1.0, "closed before the 2 s request timeout"
    with rawws.connect_tcp(agent.port) as s:  # a complete request is served
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        resp, _ = rawws.read_http_response(s)
        assert resp.status == 200, resp


def test_ws_ping_drops_silent_clients_and_keeps_answering_ones(spawn):
    agent = spawn.agent("--tick", "0.5", "--ws-ping", "2")
    result = {}

    def silent():
        with RawWS.connect(agent.port, PATH) as ws:
            t0 = time.monotonic()
            try:
                while time.monotonic() - t0 < 30:
                    f = ws.recv_frame(timeout=30)
                    if f.opcode == OP_PING and "ping" not in result:
                        result["ping"] = time.monotonic() - t0
                    if f.opcode == OP_CLOSE:
                        result["close"] = f.close_code
                        break
            except rawws.Closed:
                pass
            except socket.timeout:
                result["timeout"] = True
                return
            if ws.wait_ended(10):
                result["ended"] = time.monotonic() - t0

    async def answering():
        async with websockets.connect("ws://127.0.0.1:%d%s" % (agent.port, PATH),
                                      open_timeout=10, ping_interval=None) as ws:
            t0 = time.monotonic()
            n = 0
            while time.monotonic() - t0 < 9:
                await asyncio.wait_for(ws.recv(), 5)
                n += 1
            return n

    t = threading.Thread(target=silent, daemon=True)
    t.start()
    n = asyncio.run(answering())  # raises if the answering client is dropped
    t.join(40)
    assert n >= 10, n
    assert "ping" in result, "no ping within 30 s with --ws-ping 2 (%s)" % result
    assert "ended" in result, "a client that never answered pings was kept (%s)" % result
    assert result["ended"] > result["ping"], result
