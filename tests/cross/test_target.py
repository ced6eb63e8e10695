"""One release binary of one target, as a user runs it: `--once`, the flat
stream to a client on this machine for 3 ticks, and `check` resolving host
names without NSS. Cross-built binaries run under qemu-user.

Environment (set by tests/cross/CMakeLists.txt):
  METRICS_AGENT_TARGET_BIN   the stripped static binary
  METRICS_AGENT_TARGET       its target name (x86_64, aarch64, armhf, riscv64)
  METRICS_AGENT_QEMU         the qemu-user program, empty for this machine's own
  METRICS_AGENT_BIN          the dynamic (getaddrinfo) build, for the comparison
"""

import asyncio
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import websockets

BIN = os.environ.get("METRICS_AGENT_TARGET_BIN", "")
TARGET = os.environ.get("METRICS_AGENT_TARGET", "")
QEMU = os.environ.get("METRICS_AGENT_QEMU", "")
DYNAMIC = os.environ.get("METRICS_AGENT_BIN", "")


def argv(*args, binary=None):
    cmd = [binary or BIN] + [str(a) for a in args]
    return ([QEMU] + cmd) if QEMU and not binary else cmd


@pytest.fixture(autouse=True, scope="module")
def _binary():
    if not BIN or not os.path.exists(BIN):
        pytest.skip("no binary for %s at %r (its build_* test did not run)" % (TARGET, BIN))
    if QEMU and not shutil.which(QEMU):
        pytest.skip("%s is not installed (qemu-user)" % QEMU)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    def __init__(self, *args):
        self.port = free_port()
        self.proc = subprocess.Popen(argv("--listen", "127.0.0.1:%d" % self.port, *args),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30  # qemu starts slowly on a busy machine
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read().decode(errors="replace")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the agent did not listen within 30 s")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=15)
        err = self.proc.stderr.read().decode(errors="replace")
        assert rc == 0, "exit status %d: %s" % (rc, err)
        return err


@pytest.fixture
def agent():
    started = []

    def start(*args):
        a = Agent(*args)
        started.append(a)
        return a
    yield start
    for a in started:
        if a.proc.poll() is None:
            a.stop()


def test_once_prints_sane_values():
    out = subprocess.run(argv("--once"), capture_output=True, timeout=60, check=True).stdout
    data = json.loads(out)["data"]
    cpu, mem = data["cpu"], data["memory"]
    assert 0 <= cpu["usage_percent"] <= 100
    assert len(cpu["per_core"]) == os.cpu_count()
    assert all(0 <= c <= 100 for c in cpu["per_core"])
    assert len(cpu["load_avg"]) == 3 and all(v >= 0 for v in cpu["load_avg"])
    assert 0 < mem["usage_percent"] < 100
    with open("/proc/meminfo") as f:
        total_kib = int(f.readline().split()[1])
    assert mem["total_bytes"] == total_kib * 1024  # 64-bit counts on 32-bit targets too
    assert 0 < mem["used_bytes"] < mem["total_bytes"]
    root = data["disk"]["partitions"]["/"]
    st = os.statvfs("/")
    assert root["total_bytes"] == st.f_blocks * st.f_frsize
    assert 0 <= root["usage_percent"] <= 100
    assert data["system"]["hostname"] == socket.gethostname()
    assert data["system"]["uptime_seconds"] > 0


async def read_ticks(port, n):
    async with websockets.connect("ws://127.0.0.1:%d/api/system/metrics" % port, open_timeout=20,
                                  ping_interval=None, close_timeout=2) as ws:
        return [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(n)]


def test_flat_stream_three_ticks(agent):
    a = agent()
    # The first message comes at once; the next three on the 1 s ticks.
    messages = asyncio.run(read_ticks(a.port, 4))[1:]
    stamps = []
    for m in messages:
        assert set(m) == {"cpu", "memory", "disk", "timestamp"}, m
        for k in ("cpu", "memory", "disk"):
            assert isinstance(m[k], (int, float)) and 0 <= m[k] <= 100, m
            assert round(m[k], 2) == m[k]
        stamps.append(datetime.datetime.strptime(m["timestamp"], "%Y-%m-%dT%H:%M:%S.%f"))
    now = datetime.datetime.utcnow()
    assert abs((now - stamps[-1]).total_seconds()) < 5
    steps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])]
    assert all(0.5 < s < 1.6 for s in steps), steps
    a.stop()


def test_check_localhost_and_numeric(agent):
    a = agent()
    for url in ("http://localhost:%d" % a.port, "http://127.0.0.1:%d" % a.port):
        r = subprocess.run(argv("check", url, "--timeout", 20), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (url, r.stdout, r.stderr)
        assert r.stdout.startswith("ok: "), r.stdout


def test_static_check_never_asks_dns():
    # A name that is in no hosts file: the static build answers at once that it
    # reads /etc/hosts only, rather than trying DNS through NSS.
    r = subprocess.run(argv("check", "http://metrics-agent-no-such-host.invalid:1", "--timeout", 20),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "/etc/hosts" in r.stdout and "not DNS" in r.stdout, r.stdout


def in_private_hosts(cmd, hosts_text):
    """Runs cmd in a mount namespace of its own where /etc/hosts is hosts_text;
    None when the machine does not allow it."""
    unshare = shutil.which("unshare")
    if not unshare or os.geteuid() != 0:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".hosts") as f:
        f.write(hosts_text)
        f.flush()
        script = 'mount --bind "$0" /etc/hosts && exec "$@"'
        r = subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c", script, f.name] + cmd,
                           capture_output=True, text=True, timeout=60)
    if r.returncode != 0 and "mount" in r.stderr and ("denied" in r.stderr or "not permitted" in r.stderr):
        return None
    return r


@pytest.mark.parametrize("build", ["static", "dynamic"])
def test_check_resolves_names_from_etc_hosts(agent, build):
    """Both resolvers: the static build's own /etc/hosts reader and the dynamic
    build's getaddrinfo find a name that only a private /etc/hosts holds."""
    if build == "dynamic" and (QEMU or not DYNAMIC or not os.path.exists(DYNAMIC)):
        pytest.skip("the dynamic build is compared on this machine's target only")
    name = "agent-under-test.example"
    a = agent("--allowed-host", name, "--allowed-host", "alias-of-agent")
    hosts = "# test\n192.0.2.1 other.example\n127.0.0.1   %s  Alias-Of-Agent # comment\n" % name
    for host in (name, "ALIAS-of-agent"):
        url = "http://%s:%d" % (host, a.port)
        cmd = argv("check", url, "--timeout", 20, binary=DYNAMIC if build == "dynamic" else None)
        r = in_private_hosts(cmd, hosts)
        if r is None:
            pytest.skip("needs root and mount namespaces (unshare) to give check a private /etc/hosts")
        assert r.returncode == 0, (url, r.stdout, r.stderr)


def test_static_binary_idle_rss():
    """The static binary's idle resident memory stays within 2 MiB (issue 13)."""
    if QEMU:
        pytest.skip("under qemu-user the emulator's memory is counted too")
    a = Agent()
    time.sleep(2.5)  # a couple of ticks, the sampler thread started
    with open("/proc/%d/status" % a.proc.pid) as f:
        rss_kib = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    a.stop()
    print("idle RSS: %d KiB" % rss_kib)
    assert rss_kib <= 2048, "idle RSS %d KiB > 2 MiB" % rss_kib
