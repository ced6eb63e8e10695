"""Shared helpers for the end-to-end tests: locating and running the binaries,
free ports, timestamps, and independent readings of /proc and statvfs."""

import calendar
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

START_TIMEOUT = 10.0  # seconds for a server to accept connections
STOP_TIMEOUT = 5.0    # seconds for a server to exit after SIGTERM (generous)


def build_dir():
    env = os.environ.get("METRICS_AGENT_BUILD")
    return Path(env) if env else REPO / "build" / "cmake"


def agent_bin():
    env = os.environ.get("METRICS_AGENT_BIN")
    if env:
        return Path(env)
    for candidate in (build_dir() / "metrics-agent", REPO / "build" / "metrics-agent"):
        if candidate.exists():
            return candidate
    return build_dir() / "metrics-agent"


def echo_bin():
    return build_dir() / "echo_server"


def require_binary(path):
    if not path.exists() or not os.access(path, os.X_OK):
        raise AssertionError(
            "binary not found: %s (build it first: `make` for the agent, `cmake -S . -B "
            "build/cmake && cmake --build build/cmake` for the examples, or set "
            "METRICS_AGENT_BIN / METRICS_AGENT_BUILD)" % path)
    return str(path)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    """The environment without any METRICS_AGENT_* variables (options, and the
    test runner's own), so that the caller's shell cannot change what runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_AGENT_")}
    env.update(extra or {})
    return env


def run_cli(args, env=None, timeout=20):
    """Run the agent to completion (for --help, --once, bad flags)."""
    return subprocess.run([require_binary(agent_bin())] + list(args), env=clean_env(env),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, text=True)


def port_accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


class ServerProcess:
    """A running metrics-agent or echo_server on a loopback port. Output goes
    to temporary files (never a pipe that could fill up and block it)."""

    def __init__(self, argv, port, env=None, name="server"):
        self.argv, self.port, self.name = argv, port, name
        self.stdout_f = tempfile.TemporaryFile()
        self.stderr_f = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, env=clean_env(env), stdin=subprocess.DEVNULL,
                                     stdout=self.stdout_f, stderr=self.stderr_f)
        self.stopped = False

    @property
    def pid(self):
        return self.proc.pid

    def stderr_text(self):
        self.stderr_f.flush()
        self.stderr_f.seek(0)
        return self.stderr_f.read().decode("utf-8", "replace")

    def stdout_text(self):
        self.stdout_f.seek(0)
        return self.stdout_f.read().decode("utf-8", "replace")

    def describe(self):
        tail = self.stderr_text()[-3000:]
        return "%s (%s), stderr:\n%s" % (self.name, " ".join(self.argv), tail)

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("%s exited with %d before accepting connections: %s"
                                     % (self.name, self.proc.returncode, self.describe()))
            if port_accepts(self.port):
                return self
            time.sleep(0.05)
        raise AssertionError("%s did not accept on port %d within %.0f s: %s"
                             % (self.name, self.port, timeout, self.describe()))

    def assert_alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s died (exit status %d): %s"
                                 % (self.name, self.proc.returncode, self.describe()))

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signal it and wait; returns (exit status, seconds to exit)."""
        if self.proc.poll() is not None:
            self.stopped = True
            return self.proc.returncode, 0.0
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.stopped = True
            raise AssertionError("%s did not exit within %.0f s of signal %d: %s"
                                 % (self.name, timeout, sig, self.describe()))
        self.stopped = True
        return rc, time.monotonic() - t0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_agent(*args, env=None, port=None, ready=True):
    port = port or free_port()
    argv = [require_binary(agent_bin()), "--listen", "127.0.0.1:%d" % port] + [str(a) for a in args]
    p = ServerProcess(argv, port, env, "metrics-agent")
    return p.wait_ready() if ready else p


def start_echo(*args, port=None):
    port = port or free_port()
    argv = [require_binary(echo_bin()), "--listen", "127.0.0.1:%d" % port] + [str(a) for a in args]
    return ServerProcess(argv, port, None, "echo_server").wait_ready()


# timestamps ------------------------------------------------------------------

TS_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})$")


def parse_ts(ts):
    """'2025-11-10T12:30:45.123456' (UTC) -> integer microseconds since the epoch."""
    m = TS_RE.match(ts)
    if not m:
        raise AssertionError("timestamp %r is not YYYY-MM-DDTHH:MM:SS.ffffff" % (ts,))
    y, mo, d, h, mi, s, us = (int(g) for g in m.groups())
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1_000_000 + us


def now_us():
    return time.time_ns() // 1000


# independent readings ----------------------------------------------------------

def read_cpu_times():
    """(busy, total) jiffies of the aggregate 'cpu' line of /proc/stat; idle
    time is idle + iowait; guest time is already inside user (proc(5))."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                v = [int(x) for x in line.split()[1:9]]
                v += [0] * (8 - len(v))
                total = sum(v)
                idle = v[3] + v[4]
                return total - idle, total
    raise AssertionError("no aggregate cpu line in /proc/stat")


def cpu_percent(a, b):
    busy = b[0] - a[0]
    total = b[1] - a[1]
    if total <= 0:
        return None
    return 100.0 * busy / total


def memory_percent():
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            info[k] = int(v.split()[0])
    return 100.0 * (info["MemTotal"] - info["MemAvailable"]) / info["MemTotal"]


def disk_percent(path):
    st = os.statvfs(path)
    used = st.f_blocks - st.f_bfree
    denom = used + st.f_bavail
    return 100.0 * used / denom if denom else 0.0


def assert_spaced(stamps, step_us, grid_us=None, tol_us=50_000, late_us=150_000):
    """Consecutive ticks `step_us` apart, on the wall-clock grid of `grid_us`
    (the tick; `step_us` by default).

    A flat-stream timestamp is when the sample was taken, so a descheduled
    agent on a loaded machine can be late now and then: the typical (median)
    offset and spacing error must be within `tol_us`, every single one within
    `late_us`, and the stamps must cover consecutive steps (no gap, no
    duplicate, no drift)."""
    grid_us = grid_us or step_us
    assert len(stamps) >= 2, "too few timestamps: %s" % stamps
    offs = [min(ts % grid_us, grid_us - ts % grid_us) for ts in stamps]
    errs = [abs((b - a) - step_us) for a, b in zip(stamps, stamps[1:])]
    for what, values in (("offset from the %d us grid" % grid_us, offs),
                         ("error in the %d us spacing" % step_us, errs)):
        assert max(values) <= late_us, "%s over %d us: %s (stamps %s)" % (what, late_us, values, stamps)
        median = sorted(values)[len(values) // 2]
        assert median <= tol_us, "median %s is %d us: %s (stamps %s)" % (what, median, values, stamps)
    assert round((stamps[-1] - stamps[0]) / step_us) == len(stamps) - 1, \
        "%d stamps do not cover %d consecutive steps: %s" % (len(stamps), len(stamps) - 1, stamps)


def log(*a):
    print(*a, file=sys.stderr)
