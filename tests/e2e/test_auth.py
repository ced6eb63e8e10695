"""Authentication (SPEC §6): login against --user accounts, HS256 tokens
checked by an independent implementation here, per-address attempt limits,
every way a token can be bad refused on every protected stream (close 4001
after a completed handshake) and REST route (401), and the public routes
left open."""

import asyncio
import json
import select
import socket
import time

import pytest

import agent_helpers as ah
import e2e_util
from agent_helpers import (ALERTS, FLAT, PROTECTED_STREAMS, RICH, bearer, http,
                           recv_json, recv_type, ws_connect, ws_url)

TICK = "0.2"


@pytest.fixture(scope="module")
def auth(tmp_path_factory):
    return ah.AuthSetup(tmp_path_factory.mktemp("auth"))


@pytest.fixture(scope="module")
def bob_hash():
    return ah.hash_password("bobs password")


@pytest.fixture(scope="module")
def agent(spawn_module, auth, bob_hash):
    return spawn_module.agent("--tick", TICK, "--heartbeat", "0.5", *auth.args(),
                              "--user", "bob:" + bob_hash)


@pytest.fixture(scope="module")
def token(agent, auth):
    return ah.login(agent.port, auth.user, auth.password, source="127.0.0.2")


_next_source = [10]


def fresh_source():
    """A loopback address no other test has sent from, so that the
    per-address attempt limit of one test cannot touch another."""
    _next_source[0] += 1
    return "127.0.0.%d" % _next_source[0]


def login_req(agent, body, source=None, headers=None):
    return ah.post_login(agent.port, body, headers=headers, source=source or fresh_source())


# --------------------------------------------------------------------------- #
# login

def test_login_issues_an_hs256_token_that_verifies_independently(agent, auth):
    t0 = int(time.time())
    r = login_req(agent, {"username": auth.user, "password": auth.password})
    assert r.status == 200, r
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}, body
    assert body["token_type"] == "bearer", body
    assert ah.is_uint(body["expires_in"]) and body["expires_in"] > 0, body
    header, claims, _ = ah.decode_jwt(body["access_token"])
    assert header.get("alg") == "HS256", header
    assert claims.get("sub") == auth.user, claims
    assert ah.is_uint(claims.get("iat")) and ah.is_uint(claims.get("exp")), claims
    assert t0 - 5 <= claims["iat"] <= time.time() + 5, (claims, t0)
    assert claims["exp"] - claims["iat"] == body["expires_in"], (claims, body)
    assert ah.verify_hs256(body["access_token"], auth.secret), \
        "the token's signature is not HMAC-SHA256 of its first two segments with the secret"


def test_every_configured_account_can_log_in(agent):
    r = login_req(agent, {"username": "bob", "password": "bobs password"})
    assert r.status == 200, r
    assert ah.decode_jwt(r.json()["access_token"])[1]["sub"] == "bob"


@pytest.mark.parametrize("user,password", [
    ("alice", "wrong password"),
    ("alice", ""),
    ("alice", "correct horse battery staple "),
    ("bob", "correct horse battery staple"),   # alice's password, bob's name
    ("nobody", "correct horse battery staple"),
    ("", ""),
])
def test_bad_credentials_are_401(agent, user, password):
    r = login_req(agent, {"username": user, "password": password})
    assert r.status == 401, r
    r.error_json()
    assert "access_token" not in r.body.decode("utf-8", "replace")


BAD_BODIES = [
    "",
    "not json",
    "{\"username\":",
    "[]",
    "\"alice\"",
    "null",
    "{}",
    "{\"username\":\"alice\"}",
    "{\"password\":\"x\"}",
    "{\"username\":1,\"password\":\"x\"}",
    "{\"username\":\"alice\",\"password\":null}",
    "{\"username\":[\"alice\"],\"password\":\"x\"}",
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=[repr(b)[:30] for b in BAD_BODIES])
def test_malformed_login_body_is_400(agent, body):
    r = login_req(agent, body, headers={"Content-Type": "application/json"})
    assert r.status == 400, "body %r: %r" % (body, r)
    r.error_json()


def test_login_body_over_64_kib_is_413(agent, auth):
    body = json.dumps({"username": auth.user, "password": "x" * (70 * 1024)})
    r = login_req(agent, body)
    assert r.status == 413, r
    r.error_json()
    # The agent is fine afterwards.
    assert login_req(agent, {"username": auth.user, "password": auth.password}).status == 200


def test_five_failures_from_one_address_then_429(agent, auth):
    src = fresh_source()
    for i in range(5):
        r = login_req(agent, {"username": auth.user, "password": "guess %d" % i}, source=src)
        assert r.status == 401, "attempt %d: %r" % (i + 1, r)
    r = login_req(agent, {"username": auth.user, "password": "guess 6"}, source=src)
    assert r.status == 429, "6th failed attempt within 60 s: %r" % r
    r.error_json()
    # Even the right password is refused from that address for now...
    r = login_req(agent, {"username": auth.user, "password": auth.password}, source=src)
    assert r.status == 429, "right password after the limit: %r" % r
    # ...while another address logs in normally.
    r = login_req(agent, {"username": auth.user, "password": auth.password})
    assert r.status == 200, "another address was limited too: %r" % r


def test_successful_logins_are_not_limited(agent, auth):
    src = fresh_source()
    for i in range(8):
        r = login_req(agent, {"username": auth.user, "password": auth.password}, source=src)
        assert r.status == 200, "login %d from one address: %r" % (i + 1, r)


def test_health_is_answered_while_logins_are_checked(agent, auth):
    """Passwords are checked off the event loop: a /health request sent after a
    burst of logins (each 100,000 PBKDF2 rounds) is answered before the last
    of them, and on a kept-alive connection a request pipelined behind a
    login waits for the login's answer."""
    time.sleep(1.1)  # the agent-wide bucket of password checks is full again
    body = json.dumps({"username": auth.user, "password": "wrong"}).encode()
    login = (b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    health = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    logins = []
    for i in range(4):
        s = socket.create_connection(("127.0.0.1", agent.port), timeout=10,
                                     source_address=(fresh_source(), 0))
        logins.append(s)
    for i, s in enumerate(logins):
        s.sendall(login + (health if i == 0 else b""))
    probe = socket.create_connection(("127.0.0.1", agent.port), timeout=10)
    probe.sendall(health)
    order = []
    pending = {probe: b""}
    pending.update({s: b"" for s in logins})
    want = {probe: 1, logins[0]: 2}
    deadline = time.monotonic() + 10
    while pending and time.monotonic() < deadline:
        ready, _, _ = select.select(list(pending), [], [], 1)
        for s in ready:
            chunk = s.recv(65536)
            pending[s] += chunk
            answers = pending[s].count(b"HTTP/1.1 ")
            if not chunk or (answers >= want.get(s, 1) and pending[s].rstrip().endswith(b"}")):
                order.append((s, pending.pop(s)))
    for s in logins + [probe]:
        s.close()
    assert not pending, "answers missing after 10 s"
    kinds = [("health" if s is probe else "login") for s, _ in order]
    assert kinds.index("health") < len(kinds) - 1, "/health waited for every login: %r" % kinds
    first = dict(order)[logins[0]]
    assert first.startswith(b"HTTP/1.1 401"), first[:200]
    assert first.find(b"invalid credentials") < first.find(b'"status":"ok"'), first


# --------------------------------------------------------------------------- #
# streams

def _bad_token_cases():
    return ["none"] + sorted(ah.bad_tokens("s").keys())


@pytest.mark.parametrize("path", PROTECTED_STREAMS)
@pytest.mark.parametrize("case", _bad_token_cases())
def test_stream_refuses_bad_token_with_4001(agent, auth, path, case):
    if case == "none":
        url = ws_url(agent.port, path)
    else:
        url = ws_url(agent.port, path, token=ah.bad_tokens(auth.secret)[case])
    asyncio.run(ah.expect_auth_close(url))


@pytest.mark.parametrize("path", PROTECTED_STREAMS)
@pytest.mark.parametrize("case", ["wrong_secret", "expired", "alg_none", "malformed_one_segment"])
def test_stream_refuses_bad_bearer_header_with_4001(agent, auth, path, case):
    t = ah.bad_tokens(auth.secret)[case]
    asyncio.run(ah.expect_auth_close(ws_url(agent.port, path), headers=bearer(t)))


def test_stream_refuses_an_empty_token(agent):
    asyncio.run(ah.expect_auth_close(ws_url(agent.port, RICH) + "?token="))
    asyncio.run(ah.expect_auth_close(ws_url(agent.port, RICH), headers={"Authorization": "Bearer "}))


def test_4001_close_uses_raw_frames_correctly(agent):
    """Checked on raw frames: 101 with the right accept value, then one close
    frame with code 4001 and a UTF-8 reason, then the TCP connection ends."""
    import rawws
    with rawws.RawWS.connect(agent.port, RICH) as ws:
        f = ws.expect_close(4001)
        assert f.close_reason, f


async def _first_on(path, url_token=None, header_token=None, port=None):
    url = ws_url(port, path, token=url_token, interval=TICK if path != ALERTS else None)
    async with ws_connect(url, bearer(header_token) if header_token else None) as ws:
        if path == ALERTS:
            return await recv_type(ws, "heartbeat", 5)
        return await recv_type(ws, "metrics", 5)


@pytest.mark.parametrize("path", PROTECTED_STREAMS)
@pytest.mark.parametrize("how", ["query", "bearer"])
def test_valid_token_opens_every_stream(agent, token, path, how):
    msg = asyncio.run(_first_on(path, url_token=token if how == "query" else None,
                                header_token=token if how == "bearer" else None,
                                port=agent.port))
    if path == ALERTS:
        assert msg["type"] == "heartbeat", msg
    else:
        ah.check_rich(msg, ah.RICH_GROUPS if path == RICH else ah.DASHBOARD_GROUPS)


def test_login_then_rich_stream_end_to_end(agent, auth):
    """The flow a frontend follows: log in, then stream with the token."""
    t = ah.login(agent.port, "bob", "bobs password", source=fresh_source())

    async def go():
        async with ws_connect(ws_url(agent.port, RICH, token=t, interval=TICK)) as ws:
            msgs = [(await recv_json(ws))[1] for _ in range(3)]
            await ws.send('{"type":"ping"}')
            assert await recv_type(ws, "pong") == {"type": "pong"}
            return msgs
    for m in asyncio.run(go()):
        ah.check_rich(m)


def test_token_made_with_the_secret_elsewhere_is_accepted(agent, auth):
    """Any standard HS256 JWT with sub/iat/exp signed with the secret works
    (interoperability with tokens issued by another service)."""
    t = ah.make_jwt(auth.secret)
    msg = asyncio.run(_first_on(RICH, url_token=t, port=agent.port))
    ah.check_rich(msg)
    assert ah.http(agent.port, "GET", "/api/metrics/current", headers=bearer(t)).status == 200


# --------------------------------------------------------------------------- #
# REST

PROTECTED_GETS = ["/api/metrics/current", "/api/metrics/cpu", "/api/metrics/memory?seconds=10",
                  "/api/metrics/nosuchmetric"]


@pytest.mark.parametrize("path", PROTECTED_GETS)
def test_rest_without_a_token_is_401(agent, path):
    r = http(agent.port, "GET", path)
    assert r.status == 401, r
    r.error_json()


@pytest.mark.parametrize("case", sorted(ah.bad_tokens("s").keys()))
def test_rest_with_a_bad_token_is_401(agent, auth, case):
    t = ah.bad_tokens(auth.secret)[case]
    r = http(agent.port, "GET", "/api/metrics/current", headers=bearer(t))
    assert r.status == 401, "Bearer %s: %r" % (case, r)
    r.error_json()
    r = http(agent.port, "GET", "/api/metrics/cpu?token=" + t)
    assert r.status == 401, "?token= %s: %r" % (case, r)
    r.error_json()


@pytest.mark.parametrize("path", ["/api/metrics/current", "/api/metrics/cpu"])
def test_rest_with_a_valid_token_is_200(agent, token, path):
    r = http(agent.port, "GET", path, headers=bearer(token))
    assert r.status == 200, r
    r = http(agent.port, "GET", path + "?token=" + token)
    assert r.status == 200, r
    assert "data" in r.json() or "points" in r.json()


def test_broadcast_needs_a_token(agent, auth, token):
    body = {"level": "warning", "message": "from the auth test"}
    r = http(agent.port, "POST", "/api/ws/broadcast/alert", body)
    assert r.status == 401, "broadcast without a token: %r" % r
    r.error_json()
    for case in ("wrong_secret", "expired", "alg_none"):
        r = http(agent.port, "POST", "/api/ws/broadcast/alert", body,
                 headers=bearer(ah.bad_tokens(auth.secret)[case]))
        assert r.status == 401, "broadcast with %s: %r" % (case, r)
    r = http(agent.port, "POST", "/api/ws/broadcast/alert", body, headers=bearer(token))
    assert r.status == 200, r
    assert ah.is_uint(r.json().get("delivered")), r


def test_broadcast_with_token_reaches_an_authenticated_alerts_client(agent, token):
    async def go():
        async with ws_connect(ws_url(agent.port, ALERTS, token=token)) as ws:
            await recv_type(ws, "heartbeat", 5)
            r = await asyncio.get_running_loop().run_in_executor(None, lambda: http(
                agent.port, "POST", "/api/ws/broadcast/alert",
                {"level": "critical", "message": "auth broadcast"}, headers=bearer(token)))
            assert r.status == 200, r
            assert r.json()["delivered"] >= 1, r
            msg = await recv_type(ws, "alert", 5)
            assert msg["message"] == "auth broadcast" and msg["level"] == "critical", msg
    asyncio.run(go())


@pytest.mark.parametrize("path", ["/", "/health", "/metrics"])
def test_public_routes_need_no_token(agent, path):
    r = http(agent.port, "GET", path)
    assert r.status == 200, "GET %s without a token: %r" % (path, r)
    if path == "/health":
        assert r.json()["auth"] is True, r


def test_flat_stream_needs_no_token(agent):
    async def go():
        async with ws_connect(ws_url(agent.port, FLAT)) as ws:
            return await recv_json(ws)
    raw, msg = asyncio.run(go())
    assert {"cpu", "memory", "disk", "timestamp"} <= set(msg), raw


# --------------------------------------------------------------------------- #
# configuration

def test_secret_from_environment_enables_auth(spawn):
    agent = spawn.agent("--tick", TICK, env={"METRICS_AGENT_JWT_SECRET": "from-the-environment"})
    assert ah.get_json(agent.port, "/health")["auth"] is True
    assert http(agent.port, "GET", "/api/metrics/current").status == 401
    t = ah.make_jwt("from-the-environment")
    r = http(agent.port, "GET", "/api/metrics/cpu", headers=bearer(t))
    assert r.status == 200, r
    asyncio.run(ah.expect_auth_close(ws_url(agent.port, RICH,
                                            token=ah.make_jwt("another-secret"))))


def test_auth_is_off_without_a_secret(spawn):
    agent = spawn.agent("--tick", TICK)
    assert ah.get_json(agent.port, "/health")["auth"] is False
    assert http(agent.port, "GET", "/api/metrics/cpu").status == 200
    msg = asyncio.run(_first_on(RICH, port=agent.port))
    ah.check_rich(msg)


def test_hash_password_is_salted_pbkdf2():
    a, b = ah.hash_password("same password"), ah.hash_password("same password")
    assert a.startswith("pbkdf2-sha256$"), a
    assert a != b, "two hashes of one password are equal: no salt?"
    assert "same password" not in a


def test_hash_password_refuses_an_empty_password():
    import subprocess
    r = subprocess.run([e2e_util.require_binary(e2e_util.agent_bin()), "hash-password"],
                       input="", env=e2e_util.clean_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    assert r.returncode != 0, r
    assert r.stderr.strip(), r


def test_bad_auth_configuration_exits_2(tmp_path, auth):
    port = ["--listen", "127.0.0.1:%d" % e2e_util.free_port()]
    empty = tmp_path / "empty"
    empty.write_text("")
    cases = [
        (["--user", "alice:" + auth.hash], "--user"),  # accounts but no secret
        (["--jwt-secret-file", auth.secret_file, "--user", "alice:plaintext"], "--user"),
        (["--jwt-secret-file", auth.secret_file, "--user", "nocolon"], "--user"),
        (["--jwt-secret-file", str(tmp_path / "missing")], "--jwt-secret-file"),
        (["--jwt-secret-file", str(empty)], "--jwt-secret-file"),
    ]
    for args, flag in cases:
        r = e2e_util.run_cli(port + args, timeout=10)
        assert r.returncode == 2, "%s: exit %d\n%s" % (args, r.returncode, r.stderr)
        assert flag in r.stderr, "%s: stderr does not name %s:\n%s" % (args, flag, r.stderr)
