"""MessagePack frames (?format=msgpack, "format" in subscribe) on every
stream: each binary frame, decoded by an independent decoder (Debian's
python3-msgpack), must equal the JSON message of the same tick received by a
JSON client at the same time, with the same types (integers where JSON has
integers, floats otherwise, None for null)."""

import asyncio
import json

import pytest

from agent_helpers import ALERTS, DASHBOARD, FLAT, RICH, http, strict_json, ws_connect, ws_url

msgpack = pytest.importorskip("msgpack", reason="python3-msgpack is not installed")

TICK = "0.25"


def same(a, b):
    """Equal values of equal types, maps in the same key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def unpack(raw):
    assert isinstance(raw, bytes), "expected a binary frame, got text %r" % (raw[:80],)
    return msgpack.unpackb(raw, raw=False, strict_map_key=True)


def parse_json(raw):
    assert isinstance(raw, str), "expected a text frame, got binary %r" % (raw[:80],)
    return strict_json(raw)


async def collect(ws, parse, seconds):
    out = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while True:
        left = end - loop.time()
        if left <= 0:
            return out
        try:
            out.append(parse(await asyncio.wait_for(ws.recv(), left)))
        except asyncio.TimeoutError:
            return out


async def pair(port, path, seconds, **query):
    async with ws_connect(ws_url(port, path, **query)) as tj, \
            ws_connect(ws_url(port, path, format="msgpack", **query)) as tb:
        j, b = await asyncio.gather(collect(tj, parse_json, seconds), collect(tb, unpack, seconds))
    return j, b


def check_same_ticks(j, b, need):
    by_ts = {}
    for m in j:
        by_ts.setdefault(m["timestamp"], []).append(m)
    matched = 0
    for m in b:
        assert "timestamp" in m, m
        if m["timestamp"] in by_ts:
            assert any(same(m, x) for x in by_ts[m["timestamp"]]), \
                "the MessagePack message differs from the JSON one of the same tick:\n%r\n%r" % (
                    m, by_ts[m["timestamp"]])
            matched += 1
    assert matched >= need, "only %d of %d binary messages matched a JSON one of the same tick" % (
        matched, len(b))


@pytest.mark.parametrize("path,query", [
    (FLAT, {}),
    (FLAT, {"metrics": "cpu,disk"}),
    (RICH, {"interval": TICK}),
    (RICH, {"interval": TICK, "metrics": "cpu,memory,system"}),
    (DASHBOARD, {"interval": TICK}),
])
def test_binary_frames_equal_the_json_message_of_the_same_tick(spawn, path, query):
    agent = spawn.agent("--tick", TICK)
    j, b = asyncio.run(pair(agent.port, path, 2.5, **query))
    assert len(b) >= 5, "too few binary messages: %d" % len(b)
    check_same_ticks(j, b, 5)
    # Integers stay integers and percentages floats (or ints when whole).
    if path == FLAT:
        assert isinstance(b[-1]["timestamp"], str)
    else:
        d = b[-1]["data"]
        if d.get("memory"):
            assert isinstance(d["memory"]["total_bytes"], int) and d["memory"]["total_bytes"] > 0


def test_alerts_stream_heartbeats_and_events_in_messagepack(spawn):
    agent = spawn.agent("--tick", TICK, "--heartbeat", "0.5")

    async def run():
        async with ws_connect(ws_url(agent.port, ALERTS)) as tj, \
                ws_connect(ws_url(agent.port, ALERTS, format="msgpack")) as tb:
            await asyncio.sleep(0.3)
            r = http(agent.port, "POST", "/api/ws/broadcast/alert",
                     json.dumps({"level": "critical", "message": "disk \u00e9 full", "value": 97}),
                     {"Content-Type": "application/json"})
            assert r.status == 200, r.body
            await tb.send(json.dumps({"type": "ping"}))
            return await asyncio.gather(collect(tj, parse_json, 1.6), collect(tb, unpack, 1.6))

    j, b = asyncio.run(run())
    assert {"type": "pong"} in b, b
    hb_j = [m for m in j if m.get("type") == "heartbeat"]
    hb_b = [m for m in b if m.get("type") == "heartbeat"]
    assert len(hb_b) >= 2 and all(any(same(x, y) for y in hb_j) for x in hb_b), (hb_j, hb_b)
    ev_j = [m for m in j if m.get("type") == "alert"]
    ev_b = [m for m in b if m.get("type") == "alert"]
    assert len(ev_b) == 1 and len(ev_j) == 1 and same(ev_b[0], ev_j[0]), (ev_j, ev_b)
    assert ev_b[0]["message"] == "disk \u00e9 full"


def test_subscribe_switches_format_both_ways(spawn):
    agent = spawn.agent("--tick", TICK)

    async def run():
        async with ws_connect(ws_url(agent.port, RICH, interval=TICK)) as ws:
            first = parse_json(await asyncio.wait_for(ws.recv(), 10))
            assert first["type"] == "metrics"
            await ws.send(json.dumps({"type": "subscribe", "metrics": ["cpu"], "format": "msgpack"}))
            msgs = [m for m in await collect(ws, lambda r: r, 1.5)]
            text_before = [m for m in msgs if isinstance(m, str)]
            binary = [unpack(m) for m in msgs if isinstance(m, bytes)]
            assert binary, msgs
            ack = [m for m in binary if m.get("type") == "subscribed"]
            assert ack == [{"type": "subscribed", "metrics": ["cpu"], "interval": 0.25, "format": "msgpack"}] \
                or ack == [{"type": "subscribed", "metrics": ["cpu"], "interval": 1, "format": "msgpack"}], ack
            # Text frames only before the acknowledgement; after it, binary only.
            assert all(isinstance(m, str) for m in msgs[:msgs.index(
                next(m for m in msgs if isinstance(m, bytes)))]), msgs
            data = [m for m in binary if m.get("type") == "metrics"]
            assert data and set(data[-1]["data"]) == {"cpu"}, data[-1:]
            await ws.send(json.dumps({"type": "subscribe", "format": "yaml"}))
            err = unpack(await asyncio.wait_for(ws.recv(), 5))
            while err.get("type") != "error":
                err = unpack(await asyncio.wait_for(ws.recv(), 5))
            assert "format" in err["error"], err
            await ws.send(json.dumps({"type": "subscribe", "format": "json"}))
            after = await collect(ws, lambda r: r, 1.0)
            assert any(isinstance(m, str) and '"subscribed"' in m for m in after), after
            last = after[-1]
            assert isinstance(last, str), "after format json, frames must be text: %r" % (last,)
            return text_before

    asyncio.run(run())
