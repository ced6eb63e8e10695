"""The rich stream /api/ws/metrics (SPEC §5.2) and the dashboard stream
/api/ws/ws (§5.3): every field present and typed, internally consistent
values, ?interval= and ?metrics=, ping/pong, subscribe, errors for bad
control messages without a disconnect, the latest snapshot at once,
rates that agree with the counters beside them, application gauges."""

import asyncio
import json
import re
import socket
import time

import pytest

import agent_helpers as ah
from agent_helpers import (DASHBOARD, DASHBOARD_GROUPS, RICH, RICH_GROUPS, check_rich, drain,
                           now_us, parse_rich_ts, recv_json, recv_type, ws_connect, ws_url)

TICK = 0.2
TICK_US = 200_000


@pytest.fixture(scope="module")
def agent(spawn_module):
    return spawn_module.agent("--tick", str(TICK))


async def next_metrics(ws, timeout=10):
    return await recv_type(ws, "metrics", timeout)


def proc_stat_cores():
    with open("/proc/stat") as f:
        return sum(1 for line in f if line.startswith("cpu") and line[3].isdigit())


def root_fstype():
    fstype = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if left.split()[4] == "/":
                fstype = right.split()[0]  # the last mount on / is the visible one
    return fstype


def on_grid(ts, step_us, tol_us=50_000):
    off = ts % step_us
    return min(off, step_us - off) <= tol_us


# --------------------------------------------------------------------------- #

def test_every_field_of_5_2_present_typed_and_consistent(agent):
    async def go():
        async with ws_connect(ws_url(agent.port, RICH, interval=TICK)) as ws:
            out = []
            for _ in range(4):
                raw, msg = await recv_json(ws)
                out.append((now_us(), raw, msg))
            return out
    msgs = asyncio.run(go())
    cores = proc_stat_cores()
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    for t_recv, raw, msg in msgs:
        ts = check_rich(msg)
        assert abs(ts - t_recv) < 3_000_000, "timestamp %s is not now (%d us off)" % (
            msg["timestamp"], ts - t_recv)
        d = msg["data"]
        assert d["cpu"]["core_count"] == cores, \
            "core_count %d, /proc/stat has %d cpuN lines" % (d["cpu"]["core_count"], cores)
        assert set(d["network"]["interfaces"]) == ah.proc_net_dev_names(), \
            "interfaces %s, /proc/net/dev has %s" % (sorted(d["network"]["interfaces"]),
                                                    sorted(ah.proc_net_dev_names()))
        assert d["system"]["hostname"] == socket.gethostname(), d["system"]
        assert abs(d["system"]["uptime_seconds"] - uptime) < 10, (d["system"], uptime)
        assert d["custom"] == {}, "no gauges were added, custom is %r" % d["custom"]
        # The --disk filesystem (/) is listed whatever its type, overlay included.
        root_fs = root_fstype()
        assert "/" in d["disk"]["partitions"], "the root filesystem (%s) is missing: %s" % (
            root_fs, sorted(d["disk"]["partitions"]))
        assert d["disk"]["partitions"]["/"]["fstype"] == root_fs, d["disk"]["partitions"]["/"]
    stamps = [parse_rich_ts(m["timestamp"]) for _, _, m in msgs]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), stamps


def test_default_interval_is_5_s_on_both_streams(spawn):
    agent = spawn.agent("--tick", "1")

    async def client(path, groups):
        async with ws_connect(ws_url(agent.port, path)) as ws:
            got = []
            t0 = time.monotonic()
            while len(got) < 3:
                raw, msg = await recv_json(ws, 15)
                got.append((time.monotonic() - t0, msg))
            for _, msg in got:
                check_rich(msg, groups)
            return got

    async def go():
        await asyncio.sleep(1.2)  # let a first tick happen
        return await asyncio.gather(client(RICH, RICH_GROUPS), client(DASHBOARD, DASHBOARD_GROUPS))
    for path, got in zip((RICH, DASHBOARD), asyncio.run(go())):
        assert got[0][0] < 1.0, "%s: the first message came %.2f s after connecting, not " \
            "at once" % (path, got[0][0])
        stamps = [parse_rich_ts(m["timestamp"]) for _, m in got]
        for a, b in zip(stamps[1:], stamps[2:]):
            assert abs((b - a) - 5_000_000) <= 50_000, \
                "%s: messages %d us apart, expected 5 s: %s" % (path, b - a, stamps)
        for ts in stamps:
            assert on_grid(ts, 1_000_000), "%s: timestamp %d is off the 1 s tick" % (path, ts)
        for _, m in got:
            # On a whole-second tick: "2026-01-19T14:30:05Z", as in SPEC §5.2.
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["timestamp"]), \
                "%s: timestamp %r is not YYYY-MM-DDTHH:MM:SSZ" % (path, m["timestamp"])


@pytest.mark.parametrize("path", [RICH, DASHBOARD])
def test_interval_query_parameter(agent, path):
    """interval in seconds, rounded to a multiple of the tick (0.2 s here)."""
    async def spacing(interval, n):
        async with ws_connect(ws_url(agent.port, path, interval=interval)) as ws:
            stamps = []
            while len(stamps) < n:
                raw, msg = await recv_json(ws, 10)
                stamps.append(parse_rich_ts(msg["timestamp"]))
            return stamps[1:]  # the first is the latest snapshot, sent at once

    async def go():
        return await asyncio.gather(spacing("0.4", 5), spacing("1", 4), spacing("0.5", 5))
    r04, r1, r05 = asyncio.run(go())
    for stamps, want in ((r04, 400_000), (r1, 1_000_000)):
        for a, b in zip(stamps, stamps[1:]):
            assert abs((b - a) - want) <= 20_000, "interval %d us asked, got spacing %s" % (
                want, [y - x for x, y in zip(stamps, stamps[1:])])
    gaps = [b - a for a, b in zip(r05, r05[1:])]
    assert len(set(gaps)) == 1, "interval=0.5 on a 0.2 s tick: uneven spacing %s" % gaps
    assert gaps[0] in (400_000, 600_000), \
        "interval=0.5 on a 0.2 s tick must round to 0.4 or 0.6 s, spacing is %d us" % gaps[0]
    for ts in r04 + r1 + r05:
        assert on_grid(ts, TICK_US, 5_000), "timestamp %d is off the 0.2 s tick" % ts


@pytest.mark.parametrize("query,groups", [
    ("cpu", {"cpu"}),
    ("memory", {"memory"}),
    ("cpu,memory", {"cpu", "memory"}),
    ("network,disk", {"network", "disk"}),
    ("system,custom", {"system", "custom"}),
])
def test_metrics_query_parameter_keeps_only_those_groups(agent, query, groups):
    async def go():
        async with ws_connect(ws_url(agent.port, RICH, interval=TICK, metrics=query)) as ws:
            return [(await recv_json(ws))[1] for _ in range(3)]
    for msg in asyncio.run(go()):
        check_rich(msg, groups)


def test_dashboard_stream_honours_metrics_query(agent):
    async def go():
        async with ws_connect(ws_url(agent.port, DASHBOARD, interval=TICK, metrics="cpu")) as ws:
            return [(await recv_json(ws))[1] for _ in range(2)]
    for msg in asyncio.run(go()):
        check_rich(msg, {"cpu"})


def test_ping_is_answered_with_pong_and_the_stream_goes_on(agent):
    async def go():
        async with ws_connect(ws_url(agent.port, RICH, interval=TICK)) as ws:
            await next_metrics(ws)
            for _ in range(3):
                await ws.send(json.dumps({"type": "ping"}))
                pong = await recv_type(ws, "pong")
                assert pong == {"type": "pong"}, pong
            check_rich(await next_metrics(ws))
    asyncio.run(go())


def test_subscribe_changes_groups_and_interval(agent):
    async def go():
        async with ws_connect(ws_url(agent.port, RICH, interval=TICK)) as ws:
            await next_metrics(ws)
            await ws.send(json.dumps({"type": "subscribe", "metrics": ["memory"],
                                      "interval": 0.4}))
            ack, before = await ah.recv_until(ws, lambda m: m.get("type") != "metrics",
                                              what="an answer to subscribe")
            assert ack.get("type") == "subscribed", ack
            assert ack.get("metrics") == ["memory"], ack
            assert ack.get("interval") == 0.4, ack
            after = []
            while len(after) < 4:
                _, msg = await recv_json(ws)
                after.append(msg)
            for msg in after:
                check_rich(msg, {"memory"})
            stamps = [parse_rich_ts(m["timestamp"]) for m in after]
            for a, b in zip(stamps, stamps[1:]):
                assert b - a == 400_000, "spacing after subscribe: %s" % stamps

            # Groups change, the interval stays when it is not given.
            await ws.send(json.dumps({"type": "subscribe", "metrics": ["cpu", "network"]}))
            ack = await recv_type(ws, "subscribed")
            assert sorted(ack.get("metrics", [])) == ["cpu", "network"], ack
            assert ack.get("interval") == 0.4, ack
            msgs = [(await recv_json(ws))[1] for _ in range(3)]
            for msg in msgs:
                check_rich(msg, {"cpu", "network"})
            stamps = [parse_rich_ts(m["timestamp"]) for m in msgs]
            assert all(b - a == 400_000 for a, b in zip(stamps, stamps[1:])), stamps
    asyncio.run(go())


BAD_CONTROL = [
    "not json at all",
    "{\"type\":",
    "[1,2,3]",
    "\"ping\"",
    "42",
    "{}",
    "{\"type\":42}",
    "{\"type\":\"unsubscribe\"}",
    "{\"type\":\"subscribe\",\"metrics\":\"cpu\"}",
    "{\"type\":\"subscribe\",\"metrics\":[\"bogus\"]}",
    "{\"type\":\"subscribe\",\"metrics\":[\"cpu\",7]}",
    "{\"type\":\"subscribe\",\"interval\":-1}",
    "{\"type\":\"subscribe\",\"interval\":0}",
    "{\"type\":\"subscribe\",\"interval\":\"fast\"}",
    b"\x00\x01binary",
]


@pytest.mark.parametrize("bad", BAD_CONTROL, ids=[repr(b)[:40] for b in BAD_CONTROL])
def test_bad_control_message_gets_an_error_and_changes_nothing(agent, bad):
    async def go():
        async with ws_connect(ws_url(agent.port, RICH, interval=TICK)) as ws:
            await next_metrics(ws)
            await ws.send(bad)
            err = await recv_type(ws, "error", 5)
            assert set(err) == {"type", "error"}, err
            assert isinstance(err["error"], str) and err["error"], err
            # The stream goes on with the view it had: every group, every tick.
            msgs = [await next_metrics(ws) for _ in range(3)]
            for m in msgs:
                check_rich(m)
            stamps = [parse_rich_ts(m["timestamp"]) for m in msgs]
            assert all(b - a == TICK_US for a, b in zip(stamps, stamps[1:])), stamps
            await ws.send('{"type":"ping"}')
            assert await recv_type(ws, "pong") == {"type": "pong"}
    asyncio.run(go())


@pytest.mark.parametrize("path", [RICH, DASHBOARD])
def test_new_client_gets_the_latest_snapshot_at_once(spawn, path):
    agent = spawn.agent("--tick", "2")
    started = now_us()

    async def go():
        # Connect 0.3 to 1.0 s after a tick, so the next tick is >= 1 s away.
        while True:
            now = now_us()
            phase = now % 2_000_000
            if 300_000 <= phase <= 1_000_000 and now - phase > started + 100_000:
                break
            await asyncio.sleep(0.02)
        t_connect = now_us()
        async with ws_connect(ws_url(agent.port, path)) as ws:
            raw, msg = await recv_json(ws, 10)
            return t_connect, now_us(), msg
    t_connect, t_recv, msg = asyncio.run(go())
    ts = check_rich(msg, RICH_GROUPS if path == RICH else DASHBOARD_GROUPS)
    assert t_recv - t_connect < 700_000, \
        "%s: first message %d us after connecting: not sent at once" % (path, t_recv - t_connect)
    assert ts <= t_connect, "%s: first message stamped %d, after the connect at %d" % (
        path, ts, t_connect)


def test_rates_agree_with_the_counters_of_the_same_messages(spawn):
    """Between two consecutive messages, each interface's byte and packet
    counters advance by rate x elapsed time (both come from the same samples)."""
    agent = spawn.agent("--tick", "1")

    async def go():
        async with ws_connect(ws_url(agent.port, RICH, interval=1, metrics="network")) as ws:
            await recv_json(ws)
            with ah.LoopbackLoad(2_000_000, 5):
                return [(await recv_json(ws))[1] for _ in range(4)]
    msgs = asyncio.run(go())
    problems = []
    checked = 0
    for m1, m2 in zip(msgs, msgs[1:]):
        dt = (parse_rich_ts(m2["timestamp"]) - parse_rich_ts(m1["timestamp"])) / 1e6
        assert abs(dt - 1.0) < 0.01, (m1["timestamp"], m2["timestamp"])
        if1, if2 = m1["data"]["network"]["interfaces"], m2["data"]["network"]["interfaces"]
        for name in set(if1) & set(if2):
            for counter, rate in (("bytes_sent", "bytes_sent_per_sec"),
                                  ("bytes_recv", "bytes_recv_per_sec"),
                                  ("packets_sent", "packets_sent_per_sec"),
                                  ("packets_recv", "packets_recv_per_sec")):
                delta = if2[name][counter] - if1[name][counter]
                if delta < 0:
                    problems.append("%s.%s went backwards: %d -> %d" % (
                        name, counter, if1[name][counter], if2[name][counter]))
                    continue
                want = delta / dt
                got = if2[name][rate]
                checked += 1
                if abs(got - want) > 0.05 * max(got, want) + 1.0:
                    problems.append("%s at %s: %s = %.2f but %s advanced by %d in %.3f s (%.2f/s)"
                                    % (name, m2["timestamp"], rate, got, counter, delta, dt, want))
    assert checked, "no interface to check"
    assert not problems, "rates disagree with counters:\n" + "\n".join(problems)
    lo = [m["data"]["network"]["interfaces"]["lo"]["bytes_recv_per_sec"] for m in msgs[1:]]
    assert max(lo) > 1_000_000, "2 MB/s of loopback traffic not seen on lo: %s" % lo


def test_clients_with_the_same_view_get_identical_frames(agent):
    async def client():
        async with ws_connect(ws_url(agent.port, RICH, interval=0.4, metrics="cpu,memory")) as ws:
            got = {}
            while len(got) < 6:
                raw, msg = await recv_json(ws)
                got[msg["timestamp"]] = raw
            return got

    async def go():
        return await asyncio.gather(*[client() for _ in range(4)])
    results = asyncio.run(go())
    common = set.intersection(*[set(r) for r in results])
    assert len(common) >= 4, "clients saw different ticks: %s" % [sorted(r) for r in results]
    for ts in common:
        texts = {r[ts] for r in results}
        assert len(texts) == 1, "different messages for the same tick %s: %s" % (ts, texts)


def test_application_gauge_appears_under_custom(spawn, tmp_path):
    gauge = tmp_path / "queue_depth"
    ah.write_gauge(gauge, "42.5")
    agent = spawn.agent("--tick", str(TICK), "--gauge", "queue_depth=%s" % gauge)

    async def go():
        async with ws_connect(ws_url(agent.port, RICH, interval=TICK)) as ws:
            first = await next_metrics(ws)
            check_rich(first)
            assert first["data"]["custom"] == {"queue_depth": 42.5}, first["data"]["custom"]
            ah.write_gauge(gauge, "7")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                msg = await next_metrics(ws)
                check_rich(msg)
                if msg["data"]["custom"].get("queue_depth") == 7:
                    break
            else:
                raise AssertionError("gauge change not seen: %r" % msg["data"]["custom"])
            # A gauge that cannot be read is null (never a bare NaN in JSON).
            gauge.unlink()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                raw, msg = await recv_json(ws)
                if msg["data"]["custom"].get("queue_depth") is None:
                    assert "queue_depth" in msg["data"]["custom"], msg["data"]["custom"]
                    break
            else:
                raise AssertionError("unreadable gauge still shows %r" % msg["data"]["custom"])
            # Only custom, with ?metrics=custom.
        async with ws_connect(ws_url(agent.port, RICH, interval=TICK, metrics="custom")) as ws:
            ah.write_gauge(gauge, "3")
            for _ in range(10):
                _, msg = await recv_json(ws)
                check_rich(msg, {"custom"})
                if msg["data"]["custom"] == {"queue_depth": 3}:
                    return
            raise AssertionError("custom-only stream: %r" % msg)
    asyncio.run(go())


def test_many_clients_connecting_and_leaving_do_not_disturb_a_subscriber(agent):
    async def churn():
        for _ in range(20):
            async with ws_connect(ws_url(agent.port, RICH, interval=TICK)) as ws:
                await recv_json(ws)
                await ws.send('{"type":"subscribe","metrics":["cpu"],"interval":0.4}')

    async def go():
        async with ws_connect(ws_url(agent.port, RICH, interval=TICK)) as ws:
            await next_metrics(ws)
            task = asyncio.ensure_future(churn())
            msgs = await drain(ws, 3.0)
            await task
            return msgs
    msgs = asyncio.run(go())
    stamps = [parse_rich_ts(m["timestamp"]) for m in msgs if m.get("type") == "metrics"]
    assert len(stamps) >= 12, "only %d messages in 3 s at a 0.2 s interval" % len(stamps)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(g == TICK_US for g in gaps), "gaps or duplicates while others churned: %s" % gaps
    for m in msgs:
        check_rich(m)
