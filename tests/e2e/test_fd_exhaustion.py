"""SPEC §2: when accept() fails for lack of descriptors the agent neither
spins nor stalls the others: it sheds the excess connections, logs once,
counts them, and serves again once descriptors are free."""

import asyncio
import os
import re
import shutil
import socket
import time

import pytest
import websockets

import e2e_util

NOFILE = 40  # the agent needs about 20 descriptors of its own


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_get(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data.decode("utf-8", "replace")
            data += chunk


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is not installed")
def test_out_of_descriptors_sheds_without_spinning(spawn):
    port = e2e_util.free_port()
    argv = ["prlimit", "--nofile=%d:%d" % (NOFILE, NOFILE), "--",
            e2e_util.require_binary(e2e_util.agent_bin()), "--listen", "127.0.0.1:%d" % port,
            "--tick", "0.5", "--request-timeout", "60"]
    agent = spawn.adopt(e2e_util.ServerProcess(argv, port, None, "metrics-agent")).wait_ready()

    async def scenario():
        async with websockets.connect("ws://127.0.0.1:%d/api/system/metrics" % port) as ws:
            await asyncio.wait_for(ws.recv(), 5)
            # Far more idle connections than descriptors left.
            held = []
            for _ in range(3 * NOFILE):
                s = socket.socket()
                s.settimeout(5)
                s.connect(("127.0.0.1", port))
                held.append(s)
            await asyncio.sleep(0.5)
            cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
            stamps = []
            while time.monotonic() - t0 < 3.0:
                stamps.append(await asyncio.wait_for(ws.recv(), 5))
            cpu = (cpu_seconds(agent.pid) - cpu0) / (time.monotonic() - t0)
            for s in held:
                s.close()
            return stamps, cpu

    stamps, cpu = asyncio.run(scenario())
    # The connected client kept its 0.5 s ticks while the listener was starved.
    assert len(stamps) >= 5, "the streaming client stalled: %d messages in 3 s" % len(stamps)
    # Spinning on a failing accept() would burn a whole core.
    assert cpu < 0.3, "agent used %.0f%% of a core while out of descriptors" % (100 * cpu)
    # Once the held connections are gone it serves again, and it counted.
    deadline = time.monotonic() + 10
    body = ""
    while time.monotonic() < deadline:
        try:
            body = http_get(port, "/metrics")
            if "metrics_agent_accept_failures_total" in body:
                break
        except OSError:
            time.sleep(0.2)
    m = re.search(r"^metrics_agent_accept_failures_total (\d+)", body, re.M)
    assert m and int(m.group(1)) > 0, "accept failures not counted:\n%s" % body[-2000:]
    log = agent.stderr_text()
    assert log.count("out of file descriptors") == 1, "expected one log line:\n%s" % log
