"""The REST API (SPEC §4 without /metrics): /health, /api/metrics/current,
/api/metrics/{name}, broadcast, JSON errors with the right status codes,
405 with Allow, HEAD, CORS and preflight, keep-alive, header and body limits,
stalled requests."""

import asyncio
import json
import socket
import time

import psutil
import pytest

import agent_helpers as ah
import e2e_util
import rawws
from agent_helpers import (ALERTS, DASHBOARD, FLAT, RICH, KeepAlive, get_json, http, now_us,
                           parse_rich_ts, ws_connect, ws_url)

TICK = "0.2"
HISTORY = 600
KNOWN = ("cpu", "memory", "disk", "network", "load")


@pytest.fixture(scope="module")
def agent(spawn_module):
    a = spawn_module.agent("--tick", TICK, "--history", str(HISTORY), "--request-timeout", "1")
    time.sleep(0.5)  # a few ticks of history
    return a


def raw_request(method, path, headers=(), body=b""):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    lines += ["%s: %s" % kv for kv in headers]
    if body:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --------------------------------------------------------------------------- #
# /health

def test_health_shape_and_stream_counts(spawn):
    agent = spawn.agent("--tick", TICK)
    h = get_json(agent.port, "/health")
    for k in ("status", "version", "uptime_seconds", "clients", "streams", "auth", "tick_seconds",
              "alerts"):
        assert k in h, "/health lacks %r: %s" % (k, h)
    assert h["status"] == "ok", h
    assert isinstance(h["version"], str) and h["version"], h
    assert ah.is_num(h["uptime_seconds"]) and h["uptime_seconds"] >= 0, h
    assert ah.is_uint(h["clients"]) and h["clients"] >= 1, "our own connection is a client: %s" % h
    assert h["auth"] is False, h
    assert h["tick_seconds"] == 0.2, h
    assert set(h["streams"]) >= {"flat", "rich", "dashboard", "alerts"}, h
    assert all(v == 0 for v in h["streams"].values()), h
    assert ah.is_uint(h["alerts"].get("rules")) and h["alerts"]["rules"] == 3, \
        "three default rules: %s" % h
    assert isinstance(h["alerts"].get("firing"), list), h

    async def go():
        conns = [await ws_connect(ws_url(agent.port, p))
                 for p in (RICH, RICH, DASHBOARD, ALERTS, FLAT, FLAT, FLAT)]
        await asyncio.sleep(0.3)
        during = await asyncio.get_running_loop().run_in_executor(
            None, get_json, agent.port, "/health")
        for c in conns:
            await c.close()
        return during
    during = asyncio.run(go())
    counts = {k: during["streams"].get(k) for k in ("flat", "rich", "dashboard", "alerts")}
    assert counts == {"flat": 3, "rich": 2, "dashboard": 1, "alerts": 1}, during
    assert during["clients"] >= 8, "7 WebSockets and our request: %s" % during
    deadline = time.monotonic() + 5
    while True:
        after = get_json(agent.port, "/health")
        if all(after["streams"][k] == 0 for k in ("flat", "rich", "dashboard", "alerts")):
            break
        assert time.monotonic() < deadline, "streams not released after close: %s" % after
        time.sleep(0.1)
    assert after["uptime_seconds"] >= h["uptime_seconds"], (h, after)


def test_health_uptime_advances(agent):
    a = get_json(agent.port, "/health")["uptime_seconds"]
    time.sleep(1.2)
    b = get_json(agent.port, "/health")["uptime_seconds"]
    assert 0.5 <= b - a <= 5, (a, b)


# --------------------------------------------------------------------------- #
# /api/metrics/current

def test_current_is_the_latest_rich_snapshot(agent):
    t = now_us()
    body = get_json(agent.port, "/api/metrics/current")
    assert set(body) == {"timestamp", "data"}, sorted(body)
    ts = parse_rich_ts(body["timestamp"])
    assert t - 1_000_000 <= ts <= t + 500_000, "not the latest tick: %s at %d" % (body["timestamp"], t)
    assert ts % 200_000 == 0, "timestamp %s is not on the 0.2 s tick" % body["timestamp"]
    ah.check_data(body["data"], ah.RICH_GROUPS)


def test_current_answers_right_after_start(spawn):
    """The agent takes its baseline at start: /api/metrics/current has a
    snapshot as soon as the port accepts, even with a long tick."""
    agent = spawn.agent("--tick", "5")
    r = http(agent.port, "GET", "/api/metrics/current")
    assert r.status == 200, "GET /api/metrics/current just after start: %r" % r
    ah.check_data(r.json()["data"], ah.RICH_GROUPS)


# --------------------------------------------------------------------------- #
# /api/metrics/{name}

@pytest.mark.parametrize("name", KNOWN)
def test_history_shape(agent, name):
    body = get_json(agent.port, "/api/metrics/%s?seconds=60" % name)
    assert body.get("metric") == name, body
    assert isinstance(body.get("unit"), str) and body["unit"], body
    assert ah.is_num(body.get("seconds")) and body["seconds"] == 60, body
    pts = body.get("points")
    assert isinstance(pts, list) and pts, "no points after several ticks: %s" % body
    prev = None
    for p in pts:
        ts = parse_rich_ts(p.get("timestamp"))
        assert prev is None or ts > prev, "points out of order: %s" % pts
        prev = ts
        assert ah.is_num(p.get("value")), p
        if name in ("cpu", "memory", "disk"):
            ah.check_percent(p["value"], "%s point" % name)
            assert body["unit"] in ("percent", "%"), body["unit"]
        if name == "network":
            assert ah.is_num(p.get("sent")) and ah.is_num(p.get("recv")), p
            assert p["sent"] >= 0 and p["recv"] >= 0, p
            assert abs(p["value"] - (p["sent"] + p["recv"])) <= 1e-3 * max(1, p["value"]) + 0.01, \
                "network value is not sent + recv: %s" % p
        if name == "load":
            assert ah.is_num(p.get("load5")) and ah.is_num(p.get("load15")), p
            assert min(p["value"], p["load5"], p["load15"]) >= 0, p


def test_unknown_metric_is_404_listing_the_known_names(agent):
    r = http(agent.port, "GET", "/api/metrics/bogus")
    assert r.status == 404, r
    err = r.error_json()
    for n in KNOWN:
        assert n in err, "the 404 for an unknown metric does not list %r: %r" % (n, err)


@pytest.mark.parametrize("path", ["/api/metrics/", "/api/metrics/cpu/extra", "/api/metrics/CPU",
                                  "/api/metrics/cpu%00"])
def test_odd_metric_paths_are_404(agent, path):
    r = http(agent.port, "GET", path)
    assert r.status == 404, r
    r.error_json()


@pytest.mark.parametrize("seconds", ["abc", "0", "-5", "-0.5", "31536001", "1e9", "", "nan", "NaN",
                                     "inf", "-inf", "1e400", "10abc", "0x10", "5s"])
def test_bad_seconds_is_400(agent, seconds):
    r = http(agent.port, "GET", "/api/metrics/cpu?seconds=" + seconds.replace(" ", "%20"))
    assert r.status == 400, "seconds=%r: %r" % (seconds, r)
    r.error_json()


@pytest.mark.parametrize("seconds,expect", [("1", 1), ("2.5", 2.5), ("31536000", HISTORY),
                                            ("%d" % (HISTORY + 1), HISTORY)])
def test_good_seconds_and_clamping_to_history(agent, seconds, expect):
    body = get_json(agent.port, "/api/metrics/memory?seconds=" + seconds)
    assert body["seconds"] == expect, "seconds=%s with --history %d: %s" % (seconds, HISTORY, body)


def test_seconds_limits_the_points(agent):
    time.sleep(1.2)
    body = get_json(agent.port, "/api/metrics/cpu?seconds=1")
    n = len(body["points"])
    assert 5 <= n <= 6, "1 s of a 0.2 s tick is 5 (or 6 with both ends) points, got %d: %s" % (
        n, body["points"])
    last = parse_rich_ts(body["points"][-1]["timestamp"])
    first = parse_rich_ts(body["points"][0]["timestamp"])
    assert last - first <= 1_000_000, body["points"]


# --------------------------------------------------------------------------- #
# broadcast

def test_broadcast_with_no_listener_delivers_0(spawn):
    agent = spawn.agent("--tick", TICK)
    r = http(agent.port, "POST", "/api/ws/broadcast/alert", {"level": "info", "message": "hello"})
    assert r.status == 200, r
    assert r.json() == {"delivered": 0}, r


BAD_BROADCAST = [
    "",
    "not json",
    "[]",
    "\"message\"",
    "{\"level\":\"info\"}",
    "{\"level\":\"info\",\"message\":5}",
    "{\"level\":\"debug\",\"message\":\"x\"}",
    "{\"level\":\"fatal\",\"message\":\"x\"}",
    "{\"level\":5,\"message\":\"x\"}",
    "{\"level\":null,\"message\":\"x\"}",
    "{\"level\":\"info\",\"message\":\"x\"",
]


@pytest.mark.parametrize("body", BAD_BROADCAST, ids=[repr(b)[:30] for b in BAD_BROADCAST])
def test_bad_broadcast_body_is_400(agent, body):
    r = http(agent.port, "POST", "/api/ws/broadcast/alert", body,
             headers={"Content-Type": "application/json"})
    assert r.status == 400, "body %r: %r" % (body, r)
    r.error_json()


@pytest.mark.parametrize("level", ["info", "warning", "critical"])
def test_broadcast_levels_accepted(agent, level):
    r = http(agent.port, "POST", "/api/ws/broadcast/alert", {"level": level, "message": "m"})
    assert r.status == 200, r
    assert ah.is_uint(r.json().get("delivered")), r


def _non_loopback_ipv4():
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    return None


def test_broadcast_from_a_non_loopback_address_is_refused_without_auth(spawn):
    addr = _non_loopback_ipv4()
    if addr is None:
        pytest.skip("no non-loopback IPv4 address on this host")
    port = e2e_util.free_port()
    p = e2e_util.ServerProcess([e2e_util.require_binary(e2e_util.agent_bin()), "--listen",
                                "%s:%d" % (addr, port), "--tick", TICK], port, None,
                               "metrics-agent")
    spawn.adopt(p)
    deadline = time.monotonic() + 10
    while not e2e_util.port_accepts(port, addr):
        p.assert_alive()
        assert time.monotonic() < deadline, "agent on %s did not listen" % addr
        time.sleep(0.05)
    import http.client as httpclient
    conn = httpclient.HTTPConnection(addr, port, timeout=10, source_address=(addr, 0))
    conn.request("POST", "/api/ws/broadcast/alert",
                 body=json.dumps({"level": "info", "message": "from afar"}),
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    assert r.status in (401, 403), "broadcast from %s with auth off: %d %r" % (addr, r.status, body)


# --------------------------------------------------------------------------- #
# errors, methods, HEAD, CORS

@pytest.mark.parametrize("path", ["/nope", "/api", "/api/metricsX", "/healthz", "/api/ws",
                                  "/api/auth", "/index.html"])
def test_unknown_path_is_404_json(agent, path):
    r = http(agent.port, "GET", path)
    assert r.status == 404, r
    r.error_json()
    assert r.header("Access-Control-Allow-Origin") == "*", r


@pytest.mark.parametrize("method,path,allowed", [
    ("POST", "/health", "GET"),
    ("PUT", "/api/metrics/current", "GET"),
    ("DELETE", "/api/metrics/cpu", "GET"),
    ("POST", "/api/metrics/memory", "GET"),
    ("GET", "/api/auth/login", "POST"),
    ("PUT", "/api/auth/login", "POST"),
    ("GET", "/api/ws/broadcast/alert", "POST"),
    ("DELETE", "/api/ws/broadcast/alert", "POST"),
    ("POST", "/", "GET"),
])
def test_wrong_method_is_405_with_allow(agent, method, path, allowed):
    r = http(agent.port, method, path, body="{}" if method in ("POST", "PUT") else None)
    assert r.status == 405, "%s %s: %r" % (method, path, r)
    allow = r.header("Allow")
    assert allow, "405 without Allow: %r" % r
    methods = {m.strip() for m in allow.split(",")}
    assert allowed in methods, "Allow %r lacks %s" % (allow, allowed)
    assert method not in methods, "Allow %r lists the refused %s" % (allow, method)
    r.error_json()


@pytest.mark.parametrize("path", ["/", "/health", "/api/metrics/current", "/api/metrics/cpu",
                                  "/api/metrics/network?seconds=5"])
def test_head_has_the_get_headers_and_no_body(agent, path):
    with rawws.connect_tcp(agent.port) as s:
        s.sendall(raw_request("HEAD", path) + raw_request("GET", path))
        head, rest = rawws.read_http_response(s, body=False)
        get, rest = rawws.read_http_response(s, rest)
    assert head.status == 200, head
    assert get.status == 200, get
    assert head.header("Content-Type") == get.header("Content-Type"), (head, get)
    clen = head.header("Content-Length")
    assert clen is not None and int(clen) > 0, "HEAD %s without Content-Length: %r" % (path, head)
    if path == "/":
        assert int(clen) == len(get.body), "HEAD / Content-Length %s, GET body %d bytes" % (
            clen, len(get.body))
    assert not rest, "bytes after the GET that followed the HEAD: %r" % rest[:80]


def test_head_on_the_static_page_matches_get_exactly(agent):
    """On one keep-alive connection: HEAD, GET, HEAD: the HEADs send no body
    (else the next response would not parse) and give the GET's length."""
    k = KeepAlive(agent.port)
    try:
        h1 = k.request("HEAD", "/")
        g = k.request("GET", "/")
        h2 = k.request("HEAD", "/")
        assert h1.status == g.status == h2.status == 200, (h1, g, h2)
        assert h1.body == b"" and h2.body == b""
        assert int(h1.header("Content-Length")) == len(g.body) == int(h2.header("Content-Length"))
        assert k.same_connection(), "the connection was not kept alive"
    finally:
        k.close()


@pytest.mark.parametrize("path,method,header", [
    ("/api/metrics/cpu", "GET", "Authorization"),
    ("/api/metrics/current", "GET", "Authorization"),
    ("/api/auth/login", "POST", "Content-Type"),
    # Broadcast takes no cross-origin requests, preflights included
    # (test_request_policy.py).
])
def test_options_preflight(agent, path, method, header):
    r = http(agent.port, "OPTIONS", path, headers={
        "Origin": "http://dashboard.example", "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": header.lower()})
    assert r.status == 204, r
    assert r.body == b"", r
    methods = {m.strip() for m in (r.header("Access-Control-Allow-Methods") or "").split(",")}
    assert method in methods, "Access-Control-Allow-Methods lacks %s: %r" % (method, r)
    assert r.header("Access-Control-Allow-Origin") == "*", r
    allowed = (r.header("Access-Control-Allow-Headers") or "").lower()
    assert header.lower() in allowed, "Access-Control-Allow-Headers lacks %s: %r" % (header, r)


@pytest.mark.parametrize("method,path,body,status", [
    ("GET", "/health", None, 200),
    ("GET", "/api/metrics/current", None, 200),
    ("GET", "/api/metrics/cpu", None, 200),
    ("GET", "/api/metrics/bogus", None, 404),
    ("GET", "/api/metrics/cpu?seconds=x", None, 400),
    ("POST", "/api/ws/broadcast/alert", "{", 415),  # no Content-Type: application/json
    ("POST", "/health", "{}", 405),
])
def test_cors_header_on_answers(agent, method, path, body, status):
    r = http(agent.port, method, path, body)
    assert r.status == status, r
    assert r.header("Access-Control-Allow-Origin") == "*", r


def test_cors_origin_option(spawn):
    origin = "https://dash.example.org"
    agent = spawn.agent("--tick", TICK, "--cors-origin", origin)
    for method, path in (("GET", "/health"), ("GET", "/api/metrics/cpu"), ("GET", "/nope")):
        r = http(agent.port, method, path, headers={"Origin": origin})
        assert r.header("Access-Control-Allow-Origin") == origin, r
    r = http(agent.port, "OPTIONS", "/api/metrics/cpu", headers={
        "Origin": origin, "Access-Control-Request-Method": "GET"})
    assert r.status == 204, r
    assert r.header("Access-Control-Allow-Origin") == origin, r


# --------------------------------------------------------------------------- #
# connections and limits

def test_keep_alive_across_routes_and_methods(agent):
    k = KeepAlive(agent.port)
    try:
        plan = [("GET", "/health", None, 200), ("GET", "/api/metrics/current", None, 200),
                ("GET", "/api/metrics/cpu?seconds=2", None, 200), ("GET", "/nope", None, 404),
                ("POST", "/health", "{}", 405), ("HEAD", "/health", None, 200),
                ("OPTIONS", "/api/metrics/cpu", None, 204),
                ("POST", "/api/ws/broadcast/alert", {"level": "info", "message": "ka"}, 200),
                ("POST", "/api/ws/broadcast/alert", "garbage", 415),
                ("GET", "/api/metrics/cpu?seconds=-1", None, 400), ("GET", "/", None, 200),
                ("GET", "/health", None, 200)]
        for method, path, body, status in plan:
            r = k.request(method, path, body)
            assert r.status == status, "%s %s on a kept-alive connection: %r" % (method, path, r)
            assert k.same_connection(), "the server closed the connection after %s %s: %r" % (
                method, path, r)
    finally:
        k.close()


def test_huge_headers_are_431(agent):
    r = http(agent.port, "GET", "/api/metrics/current", headers={"X-Huge": "h" * 65536})
    assert r.status == 431, r
    r.error_json()
    assert http(agent.port, "GET", "/health").status == 200


def test_declared_huge_body_is_413_without_sending_it(agent):
    with rawws.connect_tcp(agent.port) as s:
        s.sendall(b"POST /api/ws/broadcast/alert HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n")
        resp, _ = rawws.read_http_response(s, timeout=5)
    assert resp.status == 413, resp
    assert http(agent.port, "GET", "/health").status == 200


def test_huge_body_sent_is_413(agent):
    body = json.dumps({"level": "info", "message": "m" * (200 * 1024)})
    try:
        r = http(agent.port, "POST", "/api/ws/broadcast/alert", body)
    except (BrokenPipeError, ConnectionResetError) as e:
        pytest.fail("the connection was cut without a 413 answer: %r" % e)
    assert r.status == 413, r
    assert http(agent.port, "GET", "/health").status == 200


@pytest.mark.parametrize("partial", [
    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n",
    b"GET /hea",
    b"POST /api/ws/broadcast/alert HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
    b"{\"level\":",
])
def test_stalled_partial_request_is_answered_408_or_closed(agent, partial):
    """--request-timeout 1 on the module agent."""
    with rawws.connect_tcp(agent.port) as s:
        s.sendall(partial)
        t0 = time.monotonic()
        s.settimeout(10)
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        elapsed = time.monotonic() - t0
    assert elapsed < 8, "a stalled request was still open after %.1f s (timeout 1 s)" % elapsed
    assert elapsed >= 0.7, "closed after %.2f s, before the 1 s request timeout" % elapsed
    if data:
        assert data.startswith(b"HTTP/1.1 408"), "answer to a stalled request: %r" % data[:120]
    assert http(agent.port, "GET", "/health").status == 200
