"""History (SPEC §2 ring buffer, §4 /api/metrics/{name}): one point per
tick spaced by the tick, bounded by --history, windows by ?seconds=, values
identical to what the stream sent for the same ticks, application gauges."""

import asyncio
import os
import time

import pytest

import agent_helpers as ah
from agent_helpers import RICH, get_json, http, now_us, parse_rich_ts, ws_connect, ws_url

TICK = 0.2
TICK_US = 200_000


def points(port, name, seconds=None):
    q = "" if seconds is None else "?seconds=%s" % seconds
    body = get_json(port, "/api/metrics/%s%s" % (name, q))
    return body, [(parse_rich_ts(p["timestamp"]), p) for p in body["points"]]


def assert_tick_spaced(stamps, what):
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(g == TICK_US for g in gaps), "%s: spacing is not exactly one tick: %s" % (
        what, gaps)
    assert all(t % TICK_US == 0 for t in stamps), "%s: points off the tick: %s" % (what, stamps)


def test_one_point_per_tick_spaced_by_the_tick(spawn):
    t_spawn = now_us()
    agent = spawn.agent("--tick", str(TICK), "--history", "60")
    t_ready = now_us()  # start-up takes longer on a loaded machine, or under a sanitizer
    time.sleep(2.0)
    _, p1 = points(agent.port, "cpu", 60)
    t1 = now_us()
    stamps1 = [t for t, _ in p1]
    assert_tick_spaced(stamps1, "cpu after 2 s")
    assert stamps1[0] >= t_spawn - TICK_US, "a point older than the agent: %s" % stamps1[0]
    most, least = (t1 - t_spawn) / TICK_US, (t1 - t_ready) / TICK_US
    assert least - 3 <= len(stamps1) <= most + 1, \
        "%d points after %.1f ticks (%.1f since the agent was ready)" % (len(stamps1), most, least)
    assert t1 - stamps1[-1] <= 2 * TICK_US, "the newest point is %d us old" % (t1 - stamps1[-1])

    time.sleep(1.0)
    _, p2 = points(agent.port, "cpu", 60)
    stamps2 = [t for t, _ in p2]
    assert_tick_spaced(stamps2, "cpu after 3 s")
    assert stamps2[:len(stamps1)] == stamps1, "old points changed or went missing"
    grown = len(stamps2) - len(stamps1)
    assert 4 <= grown <= 7, "%d new points in about 1 s at a 0.2 s tick" % grown
    for name in ("memory", "disk", "network", "load"):
        _, p = points(agent.port, name, 60)
        stamps = [t for t, _ in p]
        assert_tick_spaced(stamps, name)
        assert abs(len(stamps) - len(stamps2)) <= 2, (name, len(stamps), len(stamps2))


def test_history_is_bounded_by_the_history_option(spawn):
    agent = spawn.agent("--tick", str(TICK), "--history", "1")
    time.sleep(2.5)
    for name in ("cpu", "network"):
        body, p = points(agent.port, name, 3600)
        stamps = [t for t, _ in p]
        assert body["seconds"] == 1, "seconds not clamped to --history 1: %s" % body
        assert 4 <= len(stamps) <= 6, "--history 1 at a 0.2 s tick keeps %d points" % len(stamps)
        assert stamps[-1] - stamps[0] <= 1_000_000, stamps
        assert_tick_spaced(stamps, name)


@pytest.mark.parametrize("window", ["0.4", "1", "2"])
def test_seconds_selects_the_most_recent_window(spawn_module_agent, window):
    body, p = points(spawn_module_agent.port, "memory", window)
    stamps = [t for t, _ in p]
    want = int(round(float(window) / TICK))
    assert want <= len(stamps) <= want + 1, "seconds=%s: %d points, expected %d" % (
        window, len(stamps), want)
    assert stamps[-1] - stamps[0] <= float(window) * 1e6, stamps
    full = [t for t, _ in points(spawn_module_agent.port, "memory", 60)[1]]
    assert stamps[-1] >= full[-1] - TICK_US, "the window does not end at the newest point"


def test_no_seconds_parameter_gives_a_window(spawn_module_agent):
    body, p = points(spawn_module_agent.port, "cpu")
    assert ah.is_num(body.get("seconds")) and body["seconds"] > 0, body
    assert p, body
    assert p[-1][0] - p[0][0] <= body["seconds"] * 1e6, body


@pytest.fixture(scope="module")
def spawn_module_agent(spawn_module):
    a = spawn_module.agent("--tick", str(TICK), "--history", "600")
    time.sleep(2.5)
    return a


def test_history_holds_the_values_the_stream_sent(spawn_module_agent):
    agent = spawn_module_agent

    async def go():
        async with ws_connect(ws_url(agent.port, RICH, interval=TICK)) as ws:
            msgs = []
            while len(msgs) < 8:
                _, m = await ah.recv_json(ws)
                msgs.append(m)
            return msgs
    msgs = asyncio.run(go())
    series = {name: dict(points(agent.port, name, 60)[1]) for name in
              ("cpu", "memory", "network", "load", "disk")}
    problems = []

    def near(a, b, rel=1e-5, abs_=0.011):
        return abs(a - b) <= abs_ + rel * max(abs(a), abs(b))

    stamps = []
    for m in msgs[1:]:  # the first was sent at once, possibly from before
        t = parse_rich_ts(m["timestamp"])
        stamps.append(t)
        d = m["data"]
        for name in series:
            if t not in series[name]:
                problems.append("%s: no point for the streamed tick %s" % (name, m["timestamp"]))
        if problems:
            continue
        checks = [
            ("cpu", series["cpu"][t]["value"], d["cpu"]["usage_percent"]),
            ("memory", series["memory"][t]["value"], d["memory"]["usage_percent"]),
            ("network.sent", series["network"][t]["sent"], d["network"]["bytes_sent_per_sec"]),
            ("network.recv", series["network"][t]["recv"], d["network"]["bytes_recv_per_sec"]),
            ("load", series["load"][t]["value"], d["cpu"]["load_avg"][0]),
            ("load5", series["load"][t]["load5"], d["cpu"]["load_avg"][1]),
            ("load15", series["load"][t]["load15"], d["cpu"]["load_avg"][2]),
        ]
        for what, hist, streamed in checks:
            if not near(hist, streamed):
                problems.append("%s at %s: history %r, stream %r" % (what, m["timestamp"], hist,
                                                                     streamed))
        root = d["disk"]["partitions"].get("/")
        if root and abs(series["disk"][t]["value"] - root["usage_percent"]) > 0.5:
            problems.append("disk at %s: history %r, / in the stream %r" % (
                m["timestamp"], series["disk"][t]["value"], root["usage_percent"]))
    assert not problems, "\n".join(problems)
    assert_tick_spaced(stamps, "streamed ticks")


def test_disk_history_is_the_disk_option_usage(spawn_module_agent):
    _, p = points(spawn_module_agent.port, "disk", 2)
    st = os.statvfs("/")
    used = st.f_blocks - st.f_bfree
    ours = 100.0 * used / (used + st.f_bavail)
    for _, pt in p:
        assert abs(pt["value"] - ours) <= 1.0, "disk history %r, statvfs of / says %.2f" % (
            pt["value"], ours)


def test_gauge_history(spawn, tmp_path):
    f = tmp_path / "jobs"
    ah.write_gauge(f, "1")
    agent = spawn.agent("--tick", str(TICK), "--history", "60", "--gauge", "jobs=%s" % f)
    time.sleep(0.7)
    ah.write_gauge(f, "2")
    time.sleep(0.7)
    ah.write_gauge(f, "3.25")
    time.sleep(0.7)
    body, p = points(agent.port, "jobs", 60)
    assert body["metric"] == "jobs" and isinstance(body["unit"], str), body
    values = [pt["value"] for _, pt in p]
    assert_tick_spaced([t for t, _ in p], "jobs")
    assert set(values) <= {1, 2, 3.25}, values
    # In order, each value for a run of ticks, ending with the newest.
    runs = [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]
    assert runs == [1, 2, 3.25], "gauge history %s" % values
    r = http(agent.port, "GET", "/api/metrics/nosuch")
    assert r.status == 404 and "jobs" in r.error_json(), \
        "the 404 does not list the gauge: %r" % r
