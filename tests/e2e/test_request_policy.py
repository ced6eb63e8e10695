"""What a web page in the user's browser may do with the agent: Host checks
against DNS rebinding (HTTP routes and WebSocket upgrades), Origin checks
against --cors-origin, broadcast only from the agent's own page, JSON POST
bodies that must say application/json and be UTF-8. Requests are made with
http.client and raw sockets so that Host and Origin are exactly what a
browser on a hostile page would send."""

import asyncio
import json

import pytest

import e2e_util
import rawws
from agent_helpers import ALERTS, DASHBOARD, FLAT, RICH, http, recv_type, ws_connect, ws_url

TICK = "0.5"
BROADCAST = "/api/ws/broadcast/alert"
ALERT = {"level": "critical", "message": "x"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def agent(spawn_module):
    return spawn_module.agent("--tick", TICK, "--heartbeat", "0")


def own_origin(agent):
    return "http://127.0.0.1:%d" % agent.port


def upgrade(port, path, host=None, origin=None):
    """The response to a raw upgrade request (101 or an HTTP error)."""
    extra = [("Origin", origin)] if origin else None
    req, _ = rawws.upgrade_request(path, host=host or "127.0.0.1:%d" % port, extra=extra)
    with rawws.connect_tcp(port) as s:
        s.sendall(req)
        resp, _ = rawws.read_http_response(s, body=False)
    return resp


# --------------------------------------------------------------------------- #
# Content-Type and the body of JSON POSTs

def test_text_plain_broadcast_is_415(agent):
    # A cross-site "simple request" needs no preflight: exactly what a page
    # would send. Refused before anything is published.
    for origin in (None, "http://evil.example", own_origin(agent)):
        headers = {"Content-Type": "text/plain"}
        if origin:
            headers["Origin"] = origin
        r = http(agent.port, "POST", BROADCAST, json.dumps(ALERT), headers=headers)
        assert r.status in (403, 415), "text/plain broadcast from %s: %r" % (origin, r)
        if origin != "http://evil.example":
            assert r.status == 415, r
        r.error_json()
    for ctype in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "json"):
        r = http(agent.port, "POST", BROADCAST, json.dumps(ALERT), headers={"Content-Type": ctype})
        assert r.status == 415, "Content-Type %r: %r" % (ctype, r)
    r = http(agent.port, "POST", BROADCAST, json.dumps(ALERT))
    assert r.status == 415, "no Content-Type: %r" % r


def test_json_content_type_with_parameters_is_accepted(agent):
    for ctype in ("application/json", "Application/JSON; charset=utf-8", "application/json;charset=UTF-8"):
        r = http(agent.port, "POST", BROADCAST, json.dumps(ALERT), headers={"Content-Type": ctype})
        assert r.status == 200, "Content-Type %r: %r" % (ctype, r)


def test_login_needs_json_content_type(spawn):
    agent = spawn.agent("--tick", TICK, "--jwt-secret-file", _secret_file(spawn))
    r = http(agent.port, "POST", "/api/auth/login", json.dumps({"username": "a", "password": "b"}),
             headers={"Content-Type": "text/plain"})
    assert r.status == 415, r
    r.error_json()


def _secret_file(spawn, secret="policy-test-secret"):
    import tempfile
    f = tempfile.NamedTemporaryFile("w", suffix=".secret", delete=False)
    f.write(secret)
    f.close()
    return f.name


# --------------------------------------------------------------------------- #
# Origin

@pytest.mark.parametrize("cors", [None, "*"])
def test_cross_origin_broadcast_is_403_even_with_cors_star(spawn, cors):
    args = ["--tick", TICK] + (["--cors-origin", cors] if cors else [])
    agent = spawn.agent(*args)
    for origin in ("http://evil.example", "null", "http://127.0.0.1:1", "http://localhost:%d" % agent.port):
        r = http(agent.port, "POST", BROADCAST, ALERT, headers={"Origin": origin})
        assert r.status == 403, "broadcast from origin %s: %r" % (origin, r)
        r.error_json()
        # The preflight a browser sends first is refused as well.
        r = http(agent.port, "OPTIONS", BROADCAST, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        assert r.status == 403, "preflight from origin %s: %r" % (origin, r)
    # Reading stays open to any origin under "*".
    r = http(agent.port, "GET", "/api/metrics/current", headers={"Origin": "http://evil.example"})
    assert r.status == 200, r


def test_same_origin_broadcast_is_200(agent):
    r = http(agent.port, "POST", BROADCAST, ALERT, headers={"Origin": own_origin(agent)})
    assert r.status == 200, r
    assert "delivered" in r.json(), r
    # The dashboard opened as http://localhost:PORT is its own origin too.
    r = http(agent.port, "POST", BROADCAST, ALERT, headers={
        "Host": "localhost:%d" % agent.port, "Origin": "http://localhost:%d" % agent.port})
    assert r.status == 200, r


def test_broadcast_from_the_exact_cors_origin_is_200(spawn):
    origin = "https://ops.example.org"
    agent = spawn.agent("--tick", TICK, "--cors-origin", origin)
    r = http(agent.port, "POST", BROADCAST, ALERT, headers={"Origin": origin})
    assert r.status == 200, r
    r = http(agent.port, "POST", BROADCAST, ALERT, headers={"Origin": "https://other.example.org"})
    assert r.status == 403, r


def test_cors_origin_limits_reads_and_protected_streams(spawn):
    origin = "https://ops.example.org"
    agent = spawn.agent("--tick", TICK, "--cors-origin", origin)
    for o, status in ((origin, 200), ("https://evil.example", 403), (own_origin(agent), 200)):
        r = http(agent.port, "GET", "/api/metrics/current", headers={"Origin": o})
        assert r.status == status, "GET from origin %s: %r" % (o, r)
    for path in (RICH, DASHBOARD, ALERTS):
        assert upgrade(agent.port, path, origin="https://evil.example").status == 403, path
        assert upgrade(agent.port, path, origin=origin).status == 101, path
        assert upgrade(agent.port, path, origin=own_origin(agent)).status == 101, path
    # The flat stream is public: any page may read it.
    assert upgrade(agent.port, FLAT, origin="https://evil.example").status == 101


# --------------------------------------------------------------------------- #
# Host (DNS rebinding)

@pytest.mark.parametrize("path", ["/api/metrics/current", "/", "/health", "/metrics", "/api/metrics/cpu"])
def test_rebinding_host_is_refused_on_http_routes(agent, path):
    r = http(agent.port, "GET", path, headers={"Host": "evil.example:%d" % agent.port})
    assert r.status == 421, "GET %s with Host evil.example: %r" % (path, r)
    assert "Host" in r.error_json(), r
    r = http(agent.port, "POST", BROADCAST, ALERT, headers={"Host": "evil.example"})
    assert r.status == 421, r


@pytest.mark.parametrize("path", [FLAT, RICH, DASHBOARD, ALERTS])
def test_rebinding_host_is_refused_on_websocket_upgrades(agent, path):
    resp = upgrade(agent.port, path, host="evil.example:%d" % agent.port,
                   origin="http://evil.example:%d" % agent.port)
    assert resp.status == 421, "upgrade of %s with Host evil.example: %r" % (path, resp)
    assert upgrade(agent.port, path).status == 101


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:{port}", "localhost:{port}", "LocalHost",
                                  "localhost.:{port}", "[::1]:{port}", "[::1]", "127.0.0.1:8080"])
def test_loopback_names_are_accepted(agent, host):
    r = http(agent.port, "GET", "/health", headers={"Host": host.format(port=agent.port)})
    assert r.status == 200, "Host %r: %r" % (host, r)


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.2", "localhost.evil.example", "[::2]",
                                  "127.0.0.1.nip.io", "127.0.0.1:80x", "a b", ""])
def test_other_names_are_refused(agent, host):
    r = http(agent.port, "GET", "/health", headers={"Host": host})
    assert r.status in (400, 421), "Host %r: %r" % (host, r)


def test_allowed_host_adds_a_name(spawn):
    agent = spawn.agent("--tick", TICK, "--allowed-host", "dash.example.org",
                        "--allowed-host", "[fd00::5]")
    for host in ("dash.example.org", "DASH.example.org:%d" % agent.port, "[fd00::5]:80", "localhost"):
        r = http(agent.port, "GET", "/api/metrics/current", headers={"Host": host})
        assert r.status == 200, "Host %r: %r" % (host, r)
    assert upgrade(agent.port, RICH, host="dash.example.org:%d" % agent.port).status == 101
    r = http(agent.port, "GET", "/api/metrics/current", headers={"Host": "evil.example"})
    assert r.status == 421, r


def test_allowed_host_from_the_environment(spawn):
    agent = spawn.agent("--tick", TICK, env={"METRICS_AGENT_ALLOWED_HOST": "a.example,b.example"})
    for host, status in (("a.example", 200), ("b.example", 200), ("c.example", 421)):
        assert http(agent.port, "GET", "/health", headers={"Host": host}).status == status, host


def test_bad_allowed_host_is_a_usage_error():
    import subprocess
    p = subprocess.run([e2e_util.require_binary(e2e_util.agent_bin()), "--allowed-host", "a/b"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p
    assert "--allowed-host" in p.stderr, p.stderr


def test_any_address_accepts_any_host_unless_allowed_hosts_are_given(spawn):
    port = e2e_util.free_port()
    agent = spawn.agent("--tick", TICK, "--listen", "0.0.0.0:%d" % port, port=port)
    assert http(agent.port, "GET", "/health", headers={"Host": "anything.example"}).status == 200
    port = e2e_util.free_port()
    agent = spawn.agent("--tick", TICK, "--listen", "0.0.0.0:%d" % port, "--allowed-host", "box.lan",
                        port=port)
    assert http(agent.port, "GET", "/health", headers={"Host": "box.lan"}).status == 200
    assert http(agent.port, "GET", "/health", headers={"Host": "127.0.0.1"}).status == 200
    assert http(agent.port, "GET", "/health", headers={"Host": "anything.example"}).status == 421


# --------------------------------------------------------------------------- #
# UTF-8 in broadcast bodies

def test_invalid_utf8_broadcast_is_400_and_alerts_clients_stay(agent):
    async def go():
        clients = [await ws_connect(ws_url(agent.port, ALERTS)) for _ in range(2)]
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(0.2)
            bad = b'{"level":"critical","message":"bad \xff\xfe bytes"}'
            r = await loop.run_in_executor(None, lambda: http(agent.port, "POST", BROADCAST, bad, headers=JSON))
            assert r.status == 400, "invalid UTF-8 body: %r" % r
            r.error_json()
            # An escaped lone surrogate is no Unicode text either.
            r = await loop.run_in_executor(None, lambda: http(
                agent.port, "POST", BROADCAST, b'{"message":"\\ud800"}', headers=JSON))
            assert r.status == 400, "lone surrogate: %r" % r
            r = await loop.run_in_executor(None, lambda: http(
                agent.port, "POST", BROADCAST, {"level": "info", "message": "caf\u00e9 \u2603 after"}))
            assert r.status == 200 and r.json()["delivered"] >= 2, r
            for ws in clients:
                m = await recv_type(ws, "alert", 5)
                assert m["message"] == "caf\u00e9 \u2603 after", m
        finally:
            for ws in clients:
                await ws.close()

    asyncio.run(go())


# --------------------------------------------------------------------------- #
# logins: agent-wide rate of password checks, bounded per-address state

@pytest.fixture(scope="module")
def auth(tmp_path_factory):
    import agent_helpers as ah
    return ah.AuthSetup(tmp_path_factory.mktemp("auth"))


def _self_metric(port, name):
    r = http(port, "GET", "/metrics")
    assert r.status == 200, r
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("%s missing from /metrics" % name)


def _source(i):
    # Distinct loopback source addresses (any of 127.0.0.0/8 is local on Linux).
    return "127.77.%d.%d" % (i // 250, i % 250 + 1)


def test_malformed_logins_leave_no_state(spawn, auth):
    agent = spawn.agent("--tick", TICK, *auth.args())
    bodies = [(b"x", {}), (b"x", JSON), (b"[]", JSON), (b'{"username":1}', JSON),
              (b'{"username":"a","password":"\xff"}', JSON)]
    for i in range(300):
        body, headers = bodies[i % len(bodies)]
        r = http(agent.port, "POST", "/api/auth/login", body, headers=headers, source=_source(i))
        assert r.status in (400, 415), r
    assert _self_metric(agent.port, "metrics_agent_login_tracked_addresses") == 0
    for i in range(3):
        r = http(agent.port, "POST", "/api/auth/login", {"username": auth.user, "password": "no"},
                 source=_source(1000 + i))
        if r.status == 429:  # the agent-wide rate: wait it out once
            import time
            time.sleep(1.1)
            r = http(agent.port, "POST", "/api/auth/login", {"username": auth.user, "password": "no"},
                     source=_source(1000 + i))
        assert r.status == 401, r
    assert _self_metric(agent.port, "metrics_agent_login_tracked_addresses") == 3


def test_logins_beyond_the_agent_wide_rate_get_429(spawn, auth):
    from concurrent.futures import ThreadPoolExecutor
    agent = spawn.agent("--tick", TICK, *auth.args())

    def attempt(i):
        return http(agent.port, "POST", "/api/auth/login", {"username": auth.user, "password": "guess"},
                    source=_source(i))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(40)))
    statuses = [r.status for r in results]
    assert set(statuses) <= {401, 429}, statuses
    throttled = [r for r in results if r.status == 429]
    assert throttled, "40 concurrent logins from 40 addresses were all checked: %r" % statuses
    for r in throttled:
        assert r.header("Retry-After") == "1", r
        r.error_json()
    assert _self_metric(agent.port, "metrics_agent_login_throttled_total") == len(throttled)
    # Only checked (failed) logins are remembered.
    assert _self_metric(agent.port, "metrics_agent_login_tracked_addresses") == statuses.count(401)
    # The streams and the right password still work afterwards.
    assert http(agent.port, "GET", "/health").status == 200
    import agent_helpers as ah
    assert ah.login(agent.port, auth.user, auth.password, source="127.78.0.1")
