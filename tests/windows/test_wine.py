"""metrics-agent.exe (mingw-w64) under wine: its collector against this host,
and its Winsock event loop served to Linux-side clients over loopback.

Under wine the Win32 calls answer from the host's kernel, so the .exe's
snapshot must agree with /proc. Environment: METRICS_AGENT_EXE (the .exe) and
WINEPREFIX (a prefix made by tests/windows/setup.sh)."""

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from datetime import datetime

import pytest
import websockets

EXE = os.environ.get("METRICS_AGENT_EXE", "")

pytestmark = [
    pytest.mark.skipif(shutil.which("wine") is None, reason="no wine binary (Debian package wine)"),
    pytest.mark.skipif(not os.path.exists("/usr/lib/wine/wine64"), reason="no wine64 binary (Debian package wine64)"),
    pytest.mark.skipif(not os.path.isfile(EXE), reason="metrics-agent.exe was not built (mingw-w64 missing?)"),
]


def wine_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_AGENT_")}
    env.setdefault("WINEDEBUG", "-all")
    return env


def host_mem_total():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def test_once_matches_host():
    out = subprocess.run(["wine", EXE, "--once"], env=wine_env(), capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    snap = json.loads(out.stdout)
    d = snap["data"]
    cpu, mem = d["cpu"], d["memory"]
    nproc = int(subprocess.check_output(["nproc", "--all"]))
    assert cpu["core_count"] == nproc and len(cpu["per_core"]) == nproc, (cpu["core_count"], nproc)
    assert 0 <= cpu["usage_percent"] <= 100
    assert abs(cpu["user"] + cpu["system"] + cpu["idle"] + cpu["irq"] + cpu["softirq"] - 100) < 0.5, cpu
    assert cpu["load_avg"] is None  # Windows has no load average
    total = host_mem_total()
    assert abs(mem["total_bytes"] - total) <= total / 100, (mem["total_bytes"], total)
    assert 0 < mem["available_bytes"] <= mem["total_bytes"]
    assert 0 <= mem["usage_percent"] <= 100
    assert d["system"]["hostname"] == socket.gethostname()
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    assert abs(d["system"]["uptime_seconds"] - uptime) < 60, (d["system"]["uptime_seconds"], uptime)
    # wine's drive C: (the prefix) is a fixed drive; the --disk default "/" is it.
    parts = d["disk"]["partitions"]
    assert "C:\\" in parts, parts
    c = parts["C:\\"]
    assert c["total_bytes"] > 0 and c["used_bytes"] + c["free_bytes"] <= c["total_bytes"]
    # GetIfTable2 under wine lists the host's interfaces by their Linux names.
    names = set(d["network"]["interfaces"])
    assert names and names <= set(os.listdir("/sys/class/net")), (names, os.listdir("/sys/class/net"))
    assert "lo" in names, names


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


@pytest.fixture
def served():
    port = free_port()
    p = subprocess.Popen(["wine", EXE, "--listen", "127.0.0.1:%d" % port], env=wine_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert p.poll() is None, "the agent exited: %s" % p.stderr.read().decode(errors="replace")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise AssertionError("metrics-agent.exe did not listen within 60 s")
    yield p, port
    if p.poll() is None:
        p.kill()
        p.wait()


def test_serves_http_and_stream_and_stops_on_ctrl_c(served):
    p, port = served
    status, body = get(port, "/health")
    assert status == 200 and json.loads(body)["status"] == "ok", body
    status, body = get(port, "/metrics")
    assert status == 200
    assert "node_cpu_seconds_total{" in body and "node_memory_MemTotal_bytes " in body, body[:500]
    status, body = get(port, "/api/metrics/current")
    assert status == 200 and json.loads(body)["data"]["memory"]["total_bytes"] > 0

    # `metrics-agent check`, the client half of the Winsock shim.
    chk = subprocess.run(["wine", EXE, "check", "http://127.0.0.1:%d/health" % port], env=wine_env(),
                         capture_output=True, timeout=60)
    assert chk.returncode == 0 and chk.stdout.startswith(b"ok: "), chk
    closed = free_port()
    chk = subprocess.run(["wine", EXE, "check", "http://127.0.0.1:%d/health" % closed], env=wine_env(),
                         capture_output=True, timeout=60)
    assert chk.returncode == 1 and b"connection refused" in chk.stdout + chk.stderr, chk

    async def stream():
        url = "ws://127.0.0.1:%d/api/system/metrics" % port
        async with websockets.connect(url, open_timeout=20, ping_interval=None, close_timeout=5) as ws:
            msgs = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(3)]
            # Ctrl-C: wine turns SIGINT into the console's CTRL_C_EVENT, which
            # the agent's console handler maps onto its clean shutdown.
            p.send_signal(signal.SIGINT)
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 15)
            except websockets.ConnectionClosed:
                pass
            return msgs, ws.close_code

    msgs, code = asyncio.run(stream())
    for m in msgs:
        assert set(m) == {"cpu", "memory", "disk", "timestamp"}, m
        assert 0 <= m["cpu"] <= 100 and 0 <= m["memory"] <= 100 and 0 <= m["disk"] <= 100
    ts = [datetime.fromisoformat(m["timestamp"]).timestamp() for m in msgs]
    # The first frame is sent on connect; the next ones one tick (1 s) apart.
    assert 0.8 <= ts[2] - ts[1] <= 1.2, ts
    assert ts[0] < ts[1] < ts[2], ts
    assert code == 1001, code
    assert p.wait(timeout=30) == 0
