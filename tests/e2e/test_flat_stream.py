"""The flat stream /api/system/metrics (SPEC §5.1): message format, tick
timing, values cross-checked against independent readings of /proc and
statvfs, several clients, ignored client text."""

import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time

import pytest
import websockets

import e2e_util
from e2e_util import now_us, parse_ts

PATH = "/api/system/metrics"
NUM_RE = re.compile(r'"(cpu|memory|disk)"\s*:\s*(null|-?[0-9][0-9.eE+-]*)')


def url(agent, query=""):
    return "ws://127.0.0.1:%d%s%s" % (agent.port, PATH, query)


def connect(u):
    return websockets.connect(u, open_timeout=10, ping_interval=None, close_timeout=2,
                              max_size=None)


async def recv_json(ws, timeout=10):
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, str), "the flat stream must send text frames, got %r" % (raw[:80],)
    return raw, json.loads(raw)


def check_message(raw, msg, allow_errors=False):
    """The §5.1 format: exactly cpu, memory, disk, timestamp (plus error when
    a metric is null); percentages with at most 2 decimals."""
    assert isinstance(msg, dict), raw
    keys = set(msg)
    assert {"cpu", "memory", "disk", "timestamp"} <= keys, "missing fields in %s" % raw
    extra = keys - {"cpu", "memory", "disk", "timestamp", "error"}
    assert not extra, "unexpected fields %s in %s" % (extra, raw)
    parse_ts(msg["timestamp"])
    for m in NUM_RE.finditer(raw):
        text = m.group(2)
        if text == "null":
            continue
        assert re.fullmatch(r"-?\d+(\.\d{1,2})?", text), \
            "%s=%s is not rounded to 2 decimals in %s" % (m.group(1), text, raw)
    for k in ("cpu", "memory", "disk"):
        v = msg[k]
        if v is None:
            assert isinstance(msg.get("error"), str) and msg["error"], \
                "%s is null without an error field: %s" % (k, raw)
            continue
        assert isinstance(v, (int, float)) and not isinstance(v, bool), raw
        assert 0.0 <= v <= 100.0, raw
    if not allow_errors:
        assert "error" not in msg and None not in (msg["cpu"], msg["memory"], msg["disk"]), \
            "metrics failed on a host with /proc: %s" % raw


async def collect_until(ws, end_us, timeout):
    """Messages (raw, parsed, ts_us) until one stamped at or after end_us."""
    out = []
    deadline = time.monotonic() + timeout
    while True:
        raw, msg = await recv_json(ws, max(0.1, deadline - time.monotonic()))
        ts = parse_ts(msg["timestamp"])
        out.append((raw, msg, ts))
        if ts >= end_us:
            return out


# --------------------------------------------------------------------------- #

def test_message_format_and_plausible_values(spawn):
    agent = spawn.agent("--tick", "0.5")

    async def go():
        async with connect(url(agent)) as ws:
            for _ in range(4):
                raw, msg = await recv_json(ws)
                check_message(raw, msg)
                # A timestamp in UTC: close to our own clock.
                assert abs(parse_ts(msg["timestamp"]) - now_us()) < 5_000_000, raw
                # Memory in use is never zero on a running host.
                assert msg["memory"] > 0, raw
    asyncio.run(go())


def test_tick_1_ten_seconds_no_gaps_no_duplicates_on_whole_seconds(spawn):
    agent = spawn.agent("--tick", "1")

    async def go():
        async with connect(url(agent)) as ws:
            start = now_us()
            msgs = await collect_until(ws, start + 9_000_000, 25)
            return start, msgs
    start, msgs = asyncio.run(go())
    stamps = [ts for _, _, ts in msgs]
    e2e_util.assert_spaced(stamps, 1_000_000)
    assert len(stamps) >= 9, stamps
    for raw, msg, _ in msgs:
        check_message(raw, msg)


def test_tick_half_second_on_half_seconds(spawn):
    agent = spawn.agent("--tick", "0.5")

    async def go():
        async with connect(url(agent)) as ws:
            return await collect_until(ws, now_us() + 4_000_000, 20)
    stamps = [ts for _, _, ts in asyncio.run(go())]
    assert len(stamps) >= 8, stamps
    e2e_util.assert_spaced(stamps, 500_000)


def test_new_client_gets_the_latest_snapshot_at_once(spawn):
    agent = spawn.agent("--tick", "5")
    started = now_us()

    async def go():
        # Connect between 0.3 s and 1.5 s after a tick boundary, so that the
        # next tick is at least 3.5 s away.
        while True:
            now = now_us()
            phase = now % 5_000_000
            if 300_000 <= phase <= 1_500_000 and now - phase > started:
                break  # a tick has happened since the agent started
            await asyncio.sleep(0.05)
        t_connect = now_us()
        async with connect(url(agent)) as ws:
            raw, msg = await recv_json(ws, 15)
            t_recv = now_us()
            check_message(raw, msg)
            return t_connect, t_recv, parse_ts(msg["timestamp"])
    t_connect, t_recv, ts = asyncio.run(go())
    assert ts <= t_connect + 100_000, \
        "the first message (stamped %d) was not the latest snapshot: it was produced after " \
        "the client connected at %d (received at %d)" % (ts, t_connect, t_recv)
    # On the tick: the sample is taken at the boundary, or a little after it
    # on a loaded machine (the same bound as assert_spaced's for one stamp).
    assert ts % 5_000_000 <= 150_000 or ts % 5_000_000 >= 4_990_000, ts


def test_first_message_of_a_fresh_agent_is_a_real_value(spawn):
    """Start the agent just after a 2 s boundary with one core kept busy until
    the next: the first tick's cpu must agree with /proc/stat read since just
    before the start (a baseline taken at start, not 0.0 by construction)."""
    tick = 2_000_000
    while not 50_000 <= now_us() % tick <= 300_000:
        time.sleep(0.01)
    before = e2e_util.read_cpu_times()
    boundary = (now_us() // tick + 1) * tick
    agent = spawn.agent("--tick", "2")
    if now_us() > boundary - 200_000:  # a very slow start: compare with the next tick only
        before = None
        boundary += tick
    busy = subprocess.Popen([sys.executable, "-c",
                             "import time\nend=%f\nwhile time.time()<end: pass"
                             % (boundary / 1e6 - 0.02)])

    async def go():
        async with connect(url(agent)) as ws:
            first = await recv_json(ws, 15)
            await asyncio.sleep(max(0, (boundary - now_us()) / 1e6))
            at_boundary = e2e_util.read_cpu_times()
            msgs = [first]
            while parse_ts(msgs[-1][1]["timestamp"]) < boundary - tick // 2:
                msgs.append(await recv_json(ws, 15))
            return at_boundary, msgs
    at_boundary, msgs = asyncio.run(go())
    busy.wait(10)
    raw, msg = msgs[0]
    check_message(raw, msg)
    assert isinstance(msg["cpu"], (int, float)), raw
    raw, msg = msgs[-1]
    ts = parse_ts(msg["timestamp"])
    assert abs(ts - boundary) < tick // 2, "expected the first tick at %d: %s" % (boundary, raw)
    if before is None:
        return
    ours = e2e_util.cpu_percent(before, at_boundary)
    assert abs(ours - msg["cpu"]) <= 10.0, \
        "first tick: cpu %s, /proc/stat since start says %.2f (%s)" % (msg["cpu"], ours, raw)


@pytest.mark.parametrize("tick,interval,step_us", [
    ("1", "2", 2_000_000),
    ("0.5", "1.6", 1_500_000),   # rounded to a multiple of the tick
])
def test_interval_query_parameter(spawn, tick, interval, step_us):
    agent = spawn.agent("--tick", tick)

    async def go():
        async with connect(url(agent, "?interval=" + interval)) as ws:
            msgs = await collect_until(ws, now_us() + 3 * step_us + 500_000, 30)
            return msgs
    msgs = asyncio.run(go())
    stamps = [ts for _, _, ts in msgs][1:]  # the first is the latest snapshot, sent at once
    assert len(stamps) >= 3, stamps
    e2e_util.assert_spaced(stamps, step_us, grid_us=int(float(tick) * 1_000_000))


def test_cpu_agrees_with_proc_stat_over_the_same_intervals(spawn):
    """Read /proc/stat ourselves at four consecutive 2 s tick boundaries, keep
    one core busy during the middle interval, and compare each interval's
    share of non-idle time with the agent's message for the tick ending it."""
    agent = spawn.agent("--tick", "2")
    tick = 2_000_000

    async def go():
        async with connect(url(agent)) as ws:
            by_ts = {}

            async def reader():
                while True:
                    raw, msg = await recv_json(ws, 20)
                    by_ts[parse_ts(msg["timestamp"])] = (raw, msg)
            task = asyncio.ensure_future(reader())
            first = (now_us() // tick + 1) * tick
            if first - now_us() < 500_000:
                first += tick
            boundaries = [first + i * tick for i in range(4)]
            readings = []
            busy = None
            for i, b in enumerate(boundaries):
                await asyncio.sleep(max(0, (b - now_us()) / 1e6))
                readings.append(e2e_util.read_cpu_times())
                if i == 1:
                    # One core busy until the next boundary (bounded).
                    busy = subprocess.Popen(
                        [sys.executable, "-c",
                         "import time\nend=%f\nwhile time.time()<end: pass" % ((b + tick) / 1e6 - 0.02)])
            busy.wait(10)
            # Wait for the agent's message for the last boundary.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if any(abs(ts - boundaries[-1]) < tick // 2 for ts in by_ts):
                    break
                await asyncio.sleep(0.05)
            task.cancel()
            return boundaries, readings, by_ts
    boundaries, readings, by_ts = asyncio.run(go())
    report = []
    for i in range(1, 4):
        ours = e2e_util.cpu_percent(readings[i - 1], readings[i])
        # (Alignment is checked elsewhere; here only which tick a message is for.)
        match = [m for ts, m in by_ts.items() if abs(ts - boundaries[i]) < tick // 2]
        assert match, "no message for the tick at %d (got %s)" % (boundaries[i], sorted(by_ts))
        raw, msg = match[0]
        check_message(raw, msg)
        report.append((ours, msg["cpu"]))
    e2e_util.log("cpu per interval (ours, agent's):", report)
    for ours, theirs in report:
        assert abs(ours - theirs) <= 10.0, \
            "cpu %% per interval (ours from /proc/stat, agent's): %s" % report


def test_memory_agrees_with_proc_meminfo(spawn):
    agent = spawn.agent("--tick", "0.5")

    async def go():
        async with connect(url(agent)) as ws:
            pairs = []
            for _ in range(3):
                raw, msg = await recv_json(ws)
                pairs.append((e2e_util.memory_percent(), msg["memory"], raw))
            return pairs
    pairs = asyncio.run(go())
    # The median of three: the machine's memory moves with whatever else runs.
    diff = statistics.median(abs(ours - theirs) for ours, theirs, _ in pairs)
    assert diff <= 2.0, "memory (ours, agent's): %s" % [(ours, theirs) for ours, theirs, _ in pairs]


def _other_mount():
    """A mounted filesystem other than / whose usage differs from /'s, so that
    a value for the wrong filesystem shows."""
    root_dev, root_pct = os.stat("/").st_dev, e2e_util.disk_percent("/")
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1].replace("\\040", " ") for line in f]
    for m in mounts:
        try:
            st = os.statvfs(m)
            if os.stat(m).st_dev == root_dev or st.f_blocks == 0:
                continue
        except OSError:
            continue
        if abs(e2e_util.disk_percent(m) - root_pct) > 3.0:
            return m
    return None


@pytest.mark.parametrize("which", ["root", "other"])
def test_disk_agrees_with_statvfs(spawn, which):
    path = "/" if which == "root" else _other_mount()
    if path is None:
        pytest.skip("no second filesystem with a different usage is mounted here")
    agent = spawn.agent("--tick", "0.5", "--disk", path)

    async def go():
        async with connect(url(agent)) as ws:
            pairs = []
            for _ in range(2):
                raw, msg = await recv_json(ws)
                check_message(raw, msg)
                pairs.append((e2e_util.disk_percent(path), msg["disk"], raw))
            return pairs
    for ours, theirs, raw in asyncio.run(go()):
        assert abs(ours - theirs) <= 1.0, "disk of %s: ours %.2f, agent %s (%s)" % (
            path, ours, theirs, raw)


def test_disk_path_that_cannot_be_read(spawn):
    """A --disk path that does not exist is either refused at start (exit 2,
    naming --disk) or reported as null with an error while the stream goes on."""
    missing = "/nonexistent-metrics-agent-test-path"
    port = e2e_util.free_port()
    p = e2e_util.start_agent("--tick", "0.5", "--disk", missing, port=port, ready=False)
    spawn.adopt(p)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if p.proc.poll() is not None:
            assert p.proc.returncode == 2, p.describe()
            assert "--disk" in p.stderr_text(), p.describe()
            return
        if e2e_util.port_accepts(port):
            break
        time.sleep(0.05)
    else:
        pytest.fail("neither refused nor listening: " + p.describe())

    async def go():
        async with connect("ws://127.0.0.1:%d%s" % (port, PATH)) as ws:
            return [await recv_json(ws) for _ in range(3)]
    for raw, msg in asyncio.run(go()):
        check_message(raw, msg, allow_errors=True)
        assert msg["disk"] is None, raw
        assert msg["error"].startswith("Metric collection failed"), raw
        assert isinstance(msg["cpu"], (int, float)) and isinstance(msg["memory"], (int, float)), raw


def test_fifty_clients_get_identical_messages(spawn):
    agent = spawn.agent("--tick", "1")
    n = 50

    async def client(ws, start_us, end_us):
        got = {}
        deadline = time.monotonic() + 20
        while True:
            raw, msg = await recv_json(ws, max(0.1, deadline - time.monotonic()))
            ts = parse_ts(msg["timestamp"])
            assert ts not in got, "duplicate message %s" % raw
            got[ts] = raw
            if ts >= end_us:
                return {t: r for t, r in got.items() if start_us <= t <= end_us}

    async def go():
        conns = await asyncio.gather(*[connect(url(agent)) for _ in range(n)])
        try:
            start = (now_us() // 1_000_000 + 2) * 1_000_000
            end = start + 2_000_000
            results = await asyncio.gather(*[client(ws, start - 50_000, end + 50_000)
                                             for ws in conns])
            return results
        finally:
            await asyncio.gather(*[ws.close() for ws in conns], return_exceptions=True)
    results = asyncio.run(go())
    reference = results[0]
    assert len(reference) == 3, "expected 3 ticks in the window, got %s" % sorted(reference)
    for i, r in enumerate(results):
        assert r == reference, "client %d saw %s, client 0 saw %s" % (i, r, reference)


def test_text_from_the_client_is_ignored(spawn):
    agent = spawn.agent("--tick", "0.5")

    async def go():
        async with connect(url(agent)) as ws:
            await recv_json(ws)
            for text in ("hello", '{"type":"subscribe","metrics":["cpu"]}', "{not json", "x" * 5000):
                await ws.send(text)
            stamps = []
            for _ in range(4):
                raw, msg = await recv_json(ws)
                check_message(raw, msg)
                stamps.append(parse_ts(msg["timestamp"]))
            assert stamps == sorted(stamps) and len(set(stamps)) == 4, stamps
            # A ping still round-trips: the connection is healthy.
            pong = await ws.ping(b"still-here")
            await asyncio.wait_for(pong, 10)
    asyncio.run(go())
