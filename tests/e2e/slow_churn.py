"""Churn (issue 15, part 4), a slow test: `make test-slow` (ctest label slow),
not part of `make test`. 100,000 connect/handshake/disconnect cycles against
one agent: a third close cleanly (close frame, wait for the agent's close), a
third reset after the handshake (SO_LINGER 0), a third abandon the upgrade
request half-way (half with a FIN, half with a reset). The agent's descriptor
count and resident memory must come back to their baseline, within 5
descriptors and 1 MiB, and stay there. The baseline is taken after a warm-up
of 3,000 cycles, when the allocator's pools have their working size."""

import multiprocessing
import os
import socket
import struct
import time

import rawws
from rawws import OP_CLOSE

CYCLES = int(os.environ.get("CHURN_CYCLES", "100000"))
WARMUP = 3000
WORKERS = 2


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def recv_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionResetError("EOF during the handshake")
        buf += chunk
    assert buf.startswith(b"HTTP/1.1 101"), buf[:100]


def reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def cycle(port, i, request):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    kind = i % 4 if i % 3 == 2 else i % 3  # 0 clean, 1 reset, 2/3 half-way
    try:
        if kind == 2 or kind == 3 and i % 2:
            s.sendall(request[:len(request) // 2])
            if i % 2:
                reset(s)
            else:
                s.close()
            return
        s.sendall(request)
        recv_head(s)
        if kind == 1:
            reset(s)
            return
        s.sendall(rawws.encode_frame(OP_CLOSE, rawws.close_payload(1000)))
        while s.recv(65536):
            pass
        s.close()
    except OSError:
        s.close()


def run_cycles(args):
    port, start, count = args
    request, _ = rawws.upgrade_request("/api/system/metrics")
    for i in range(start, start + count):
        cycle(port, i, request)
    return count


def churn(port, total):
    per = total // WORKERS
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        return sum(pool.map(run_cycles, [(port, w * per, per) for w in range(WORKERS)]))


def settle(pid, base_fds, timeout=15):
    deadline = time.monotonic() + timeout
    while fd_count(pid) > base_fds + 5 and time.monotonic() < deadline:
        time.sleep(0.2)


def test_100k_connection_cycles_leave_fds_and_rss_at_baseline(spawn):
    agent = spawn.agent("--tick", "1")
    pid = agent.pid
    churn(agent.port, WARMUP)
    time.sleep(1)
    base_fds, base_rss = fd_count(pid), rss_kib(pid)
    t0 = time.monotonic()
    done = churn(agent.port, CYCLES)
    took = time.monotonic() - t0
    settle(pid, base_fds)
    after = (fd_count(pid), rss_kib(pid))
    time.sleep(5)
    later = (fd_count(pid), rss_kib(pid))
    print("churn: %d cycles in %.0f s (%.0f/s); baseline %d fds, %d KiB RSS; after %d fds, %d KiB; "
          "5 s later %d fds, %d KiB" % (done, took, done / took, base_fds, base_rss, after[0], after[1],
                                        later[0], later[1]))
    agent.assert_alive()
    for label, (fds, rss) in (("after the churn", after), ("5 s later", later)):
        assert fds <= base_fds + 5, "%s: %d descriptors, baseline %d" % (label, fds, base_fds)
        assert rss <= base_rss + 1024, "%s: RSS %d KiB, baseline %d KiB" % (label, rss, base_rss)
