"""Helpers for the end-to-end tests of the rich stream, authentication, the
REST API, history and alerts: WebSocket and HTTP clients, JWTs made
independently of the agent, and a checker for the §5.2 message shape."""

import asyncio
import base64
import calendar
import hashlib
import hmac
import http.client as httpclient
import json
import math
import os
import re
import subprocess
import threading
import time
from urllib.parse import urlencode

import websockets

import e2e_util
from rawws import HttpResponse

RICH = "/api/ws/metrics"
DASHBOARD = "/api/ws/ws"
ALERTS = "/api/ws/ws/alerts"
FLAT = "/api/system/metrics"
PROTECTED_STREAMS = (RICH, DASHBOARD, ALERTS)

RICH_GROUPS = {"cpu", "memory", "network", "disk", "system", "container", "custom", "sensors"}
DASHBOARD_GROUPS = {"cpu", "memory", "disk", "network"}

# Filesystem types that SPEC §5.2 calls pseudo: none may appear as a partition.
PSEUDO_FSTYPES = {
    "proc", "sysfs", "tmpfs", "devtmpfs", "devpts", "overlay", "squashfs", "cgroup", "cgroup2",
    "securityfs", "debugfs", "tracefs", "pstore", "bpf", "mqueue", "hugetlbfs", "configfs",
    "fusectl", "autofs", "binfmt_misc", "ramfs", "rpc_pipefs", "nsfs", "efivarfs", "selinuxfs",
}


def log(*a):
    e2e_util.log(*a)


# --------------------------------------------------------------------------- #
# numbers and timestamps

def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


RICH_TS_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z$")


def parse_rich_ts(ts):
    """'2026-01-19T14:30:05Z' or '...05.200Z' (UTC) -> microseconds since the epoch."""
    assert isinstance(ts, str), "timestamp %r is not a string" % (ts,)
    m = RICH_TS_RE.match(ts)
    assert m, "timestamp %r is not ISO 8601 UTC (YYYY-MM-DDTHH:MM:SS[.fff]Z)" % (ts,)
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = m.group(7) or ""
    us = int((frac + "000000")[:6])
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1_000_000 + us


def now_us():
    return time.time_ns() // 1000


def sleep_until_us(t_us):
    while True:
        d = (t_us - now_us()) / 1e6
        if d <= 0:
            return
        time.sleep(min(d, 0.5))


# --------------------------------------------------------------------------- #
# WebSocket clients (python3-websockets 10.x, asyncio API)

def ws_url(port, path, **query):
    q = {k: v for k, v in query.items() if v is not None}
    return "ws://127.0.0.1:%d%s%s" % (port, path, ("?" + urlencode(q)) if q else "")


def ws_connect(url, headers=None):
    return websockets.connect(url, open_timeout=10, ping_interval=None, close_timeout=2,
                              max_size=None, extra_headers=headers)


def _no_constant(name):
    raise ValueError("%s is not JSON (RFC 8259 has no NaN or Infinity)" % name)


def strict_json(text):
    """json.loads that refuses NaN and Infinity, which Python would accept."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as e:
        raise AssertionError("not valid JSON (%s): %r" % (e, text[:300]))


async def recv_json(ws, timeout=10):
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, str), "expected a text message, got binary %r" % (raw[:80],)
    return raw, strict_json(raw)


async def recv_until(ws, pred, timeout=10, what="a matching message"):
    """Read messages until pred(msg) holds; return (msg, [skipped messages])."""
    deadline = time.monotonic() + timeout
    skipped = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no %s within %.1f s; got %s" % (what, timeout, skipped[-5:]))
        try:
            _, msg = await recv_json(ws, left)
        except asyncio.TimeoutError:
            raise AssertionError("no %s within %.1f s; got %s" % (what, timeout, skipped[-5:]))
        if pred(msg):
            return msg, skipped
        skipped.append(msg)


async def recv_type(ws, mtype, timeout=10):
    msg, _ = await recv_until(ws, lambda m: isinstance(m, dict) and m.get("type") == mtype,
                              timeout, "message of type %r" % mtype)
    return msg


async def drain(ws, seconds):
    """Every message that arrives within `seconds`."""
    out = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        try:
            _, msg = await recv_json(ws, left)
        except asyncio.TimeoutError:
            return out
        out.append(msg)


async def expect_auth_close(url, headers=None, timeout=10):
    """The handshake must complete (101), then the server must close with
    4001 and a reason, sending no data before. Returns the reason."""
    try:
        ws = await ws_connect(url, headers)
    except websockets.exceptions.InvalidStatusCode as e:
        raise AssertionError("%s: the handshake was refused with HTTP %d; SPEC §5.2 wants it "
                             "to complete and then a close 4001" % (url, e.status_code))
    got = []
    try:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: still open after %.0f s without a valid token "
                                     "(messages: %s)" % (url, timeout, got[:3]))
            try:
                got.append(await asyncio.wait_for(ws.recv(), left))
            except asyncio.TimeoutError:
                continue
            except websockets.exceptions.ConnectionClosed:
                break
    finally:
        await ws.close()
    assert ws.close_code == 4001, "%s: close code %r (reason %r), expected 4001" % (
        url, ws.close_code, ws.close_reason)
    assert ws.close_reason, "%s: close 4001 without a reason" % url
    assert not got, "%s: data sent to an unauthenticated client before the close: %s" % (
        url, [g[:120] for g in got])
    return ws.close_reason


class StreamRecorder:
    """A WebSocket client on its own thread (own event loop) recording every
    JSON message with the time it arrived, until stopped."""

    def __init__(self, url, headers=None):
        self.url, self.headers = url, headers
        self.messages = []  # (arrival_us, raw, msg)
        self.error = None
        self.closed = None
        self.ready = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(15), "could not connect to %s: %s" % (url, self.error)
        if self.error:
            raise AssertionError("could not connect to %s: %r" % (url, self.error))

    def _run(self):
        try:
            asyncio.run(self._main())
        except Exception as e:  # reported by stop()
            self.error = e
        finally:
            self.ready.set()

    async def _main(self):
        async with ws_connect(self.url, self.headers) as ws:
            self.ready.set()
            while not self._stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.2)
                except asyncio.TimeoutError:
                    continue
                except websockets.exceptions.ConnectionClosed:
                    self.closed = (ws.close_code, ws.close_reason)
                    return
                self.messages.append((now_us(), raw, strict_json(raw)))

    def snapshot(self):
        return list(self.messages)

    def stop(self):
        self._stop.set()
        self.thread.join(10)
        if self.error:
            raise AssertionError("client of %s failed: %r" % (self.url, self.error))
        return self.snapshot()


# --------------------------------------------------------------------------- #
# HTTP (http.client)

class Resp(HttpResponse):
    """An answer read with http.client: status, reason, headers, body, and
    header() as rawws's own reader gives them."""

    def json(self):
        ctype = self.header("Content-Type") or ""
        assert "application/json" in ctype, "Content-Type %r is not JSON: %r" % (ctype, self)
        return strict_json(self.body.decode("utf-8"))

    def error_json(self):
        """An error answer of SPEC §4: JSON {"error":"..."} with a non-empty text."""
        body = self.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], \
            "expected {\"error\":\"...\"}, got %r" % (body,)
        return body["error"]

    def __repr__(self):
        return "Resp(%d %s, %r, body=%r)" % (self.status, self.reason, self.headers,
                                              self.body[:300])


def _do(conn, method, path, body, headers):
    hdrs = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn.request(method, path, body=body, headers=hdrs)
    r = conn.getresponse()
    data = r.read()
    return Resp(r.status, r.reason, r.getheaders(), data)


def http(port, method, path, body=None, headers=None, timeout=10, source=None):
    """One request on a new connection. `source` is a local address to send
    from (any of 127.0.0.0/8 works on Linux) for per-address limits."""
    conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        return _do(conn, method, path, body, headers)
    finally:
        conn.close()


class KeepAlive:
    """Several requests over one http.client connection."""

    def __init__(self, port, timeout=10):
        self.conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.connect()
        self.first_sock = self.conn.sock

    def request(self, method, path, body=None, headers=None):
        return _do(self.conn, method, path, body, headers)

    def same_connection(self):
        return self.conn.sock is not None and self.conn.sock is self.first_sock

    def close(self):
        self.conn.close()


def get_json(port, path, headers=None, status=200):
    r = http(port, "GET", path, headers=headers)
    assert r.status == status, "GET %s: expected %d, got %r" % (path, status, r)
    return r.json()


def bearer(token):
    return {"Authorization": "Bearer " + token}


# --------------------------------------------------------------------------- #
# JSON Web Tokens made here, independently of the agent (RFC 7519, RFC 7515)

def b64url(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(secret, claims=None, header=None, digest=hashlib.sha256, sign=True):
    """A JWT with `claims` (default: sub=alice, iat=now, exp=now+3600)."""
    now = int(time.time())
    if claims is None:
        claims = {"sub": "alice", "iat": now, "exp": now + 3600}
    header = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    signing_input = b64url(json.dumps(header, separators=(",", ":"))) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")))
    if not sign:
        return signing_input + "."
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    sig = hmac.new(key, signing_input.encode("ascii"), digest).digest()
    return signing_input + "." + b64url(sig)


def bad_tokens(secret):
    """name -> a token the agent must refuse."""
    now = int(time.time())
    good = make_jwt(secret)
    h, p, s = good.split(".")
    flipped = s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1]
    return {
        "wrong_secret": make_jwt(secret + "x"),
        "tampered_signature": "%s.%s.%s" % (h, p, flipped),
        "tampered_payload": "%s.%s.%s" % (
            h, b64url(json.dumps({"sub": "mallory", "iat": now, "exp": now + 3600})), s),
        "expired": make_jwt(secret, {"sub": "alice", "iat": now - 7200, "exp": now - 3600}),
        "alg_none": make_jwt(secret, header={"alg": "none", "typ": "JWT"}, sign=False),
        "alg_none_signed": make_jwt(secret, header={"alg": "none", "typ": "JWT"}),
        "hs512": make_jwt(secret, header={"alg": "HS512", "typ": "JWT"}, digest=hashlib.sha512),
        "exp_as_string": make_jwt(secret, {"sub": "alice", "iat": now, "exp": str(now + 3600)}),
        "malformed_one_segment": "notatoken",
        "malformed_two_segments": "%s.%s" % (h, p),
        "malformed_four_segments": good + ".x",
        "malformed_base64": "%s.%s.%s" % (h, "!!!$$$", s),
        "malformed_json": "%s.%s.%s" % (b64url("{not json"), p, s),
    }


def decode_jwt(token):
    parts = token.split(".")
    assert len(parts) == 3, "a JWT has three segments: %r" % token
    header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    return header, claims, parts


def verify_hs256(token, secret):
    h, c, parts = decode_jwt(token)
    expected = hmac.new(secret.encode("utf-8"), (parts[0] + "." + parts[1]).encode("ascii"),
                        hashlib.sha256).digest()
    return hmac.compare_digest(expected, b64url_decode(parts[2]))


# --------------------------------------------------------------------------- #
# accounts and authenticated agents

def hash_password(password, env=None):
    r = subprocess.run([e2e_util.require_binary(e2e_util.agent_bin()), "hash-password"],
                       input=password + "\n", env=e2e_util.clean_env(env),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert r.returncode == 0, "hash-password exited %d: %s" % (r.returncode, r.stderr)
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert len(lines) == 1, "hash-password printed %r" % r.stdout
    return lines[0].strip()


class AuthSetup:
    """A secret file and one account, for starting agents with authentication."""

    def __init__(self, directory, secret="e2e-secret-0123456789abcdef", user="alice",
                 password="correct horse battery staple"):
        self.secret, self.user, self.password = secret, user, password
        self.secret_file = os.path.join(str(directory), "jwt.secret")
        with open(self.secret_file, "w") as f:
            f.write(secret + "\n")
        self.hash = hash_password(password)

    def args(self):
        return ["--jwt-secret-file", self.secret_file, "--user", "%s:%s" % (self.user, self.hash)]


def post_login(port, body, headers=None, source=None):
    """POST /api/auth/login, waiting out the agent-wide rate of password checks
    (429 "right now", Retry-After 1) that back-to-back tests can reach."""
    for _ in range(20):
        r = http(port, "POST", "/api/auth/login", body, headers=headers, source=source)
        if r.status != 429 or b"right now" not in r.body:
            return r
        time.sleep(float(r.header("Retry-After") or 1))
    return r


def login(port, user, password, source=None):
    r = post_login(port, {"username": user, "password": password}, source=source)
    assert r.status == 200, "login as %r failed: %r" % (user, r)
    body = r.json()
    return body["access_token"]


# --------------------------------------------------------------------------- #
# the §5.2 message

def _close(a, b, tol):
    return abs(a - b) <= tol


def check_percent(v, where):
    assert is_num(v) and -0.01 <= v <= 100.01, "%s = %r is not a percentage" % (where, v)


def check_cpu(c):
    assert isinstance(c, dict), "cpu is %r" % (c,)
    for k in ("usage_percent", "user", "system", "idle", "iowait", "steal"):
        check_percent(c.get(k), "cpu." + k)
    assert isinstance(c.get("per_core"), list) and c["per_core"], "cpu.per_core: %r" % c.get("per_core")
    for i, v in enumerate(c["per_core"]):
        check_percent(v, "cpu.per_core[%d]" % i)
    assert is_uint(c.get("core_count")), "cpu.core_count: %r" % c.get("core_count")
    assert c["core_count"] == len(c["per_core"]), \
        "core_count %r but %d per_core values" % (c["core_count"], len(c["per_core"]))
    f = c.get("frequency_mhz")
    assert isinstance(f, list), "cpu.frequency_mhz: %r" % (f,)
    assert len(f) in (0, c["core_count"]), "frequency_mhz has %d values for %d cores" % (
        len(f), c["core_count"])
    for v in f:
        assert is_num(v) and v > 0, "cpu.frequency_mhz value %r" % (v,)
    la = c.get("load_avg")
    assert isinstance(la, list) and len(la) == 3 and all(is_num(x) and x >= 0 for x in la), \
        "cpu.load_avg: %r" % (la,)
    shares = c["user"] + c["system"] + c["idle"] + c["iowait"] + c["steal"]
    assert shares <= 100.1, "user+system+idle+iowait+steal = %.2f > 100: %r" % (shares, c)
    # Busy time is everything but idle and iowait (the flat stream's definition).
    assert _close(c["usage_percent"] + c["idle"] + c["iowait"], 100.0, 0.1), \
        "usage_percent + idle + iowait = %.2f, expected 100: %r" % (
            c["usage_percent"] + c["idle"] + c["iowait"], c)


MEMORY_KEYS = ("total_bytes", "used_bytes", "available_bytes", "free_bytes", "cached_bytes",
               "buffers_bytes", "swap_total_bytes", "swap_used_bytes", "swap_free_bytes")


def check_memory(m):
    assert isinstance(m, dict), "memory is %r" % (m,)
    for k in MEMORY_KEYS:
        assert is_uint(m.get(k)), "memory.%s = %r is not a byte count" % (k, m.get(k))
    check_percent(m.get("usage_percent"), "memory.usage_percent")
    check_percent(m.get("swap_percent"), "memory.swap_percent")
    t = m["total_bytes"]
    assert t > 0, m
    for k in ("used_bytes", "available_bytes", "free_bytes", "cached_bytes", "buffers_bytes"):
        assert m[k] <= t, "memory.%s > total_bytes: %r" % (k, m)
    assert _close(m["usage_percent"], 100.0 * (t - m["available_bytes"]) / t, 0.02), \
        "memory.usage_percent is not (total - available) / total: %r" % m
    st = m["swap_total_bytes"]
    assert m["swap_used_bytes"] + m["swap_free_bytes"] == st, \
        "swap used + free != total: %r" % m
    want = 100.0 * m["swap_used_bytes"] / st if st else 0.0
    assert _close(m["swap_percent"], want, 0.02), "swap_percent is not used/total: %r" % m


IFACE_RATE_KEYS = ("bytes_sent_per_sec", "bytes_recv_per_sec", "packets_sent_per_sec",
                   "packets_recv_per_sec")
IFACE_COUNTER_KEYS = ("bytes_sent", "bytes_recv", "packets_sent", "packets_recv", "errors_in",
                      "errors_out", "drops_in", "drops_out")


def check_network(n):
    assert isinstance(n, dict), "network is %r" % (n,)
    for k in ("bytes_sent_per_sec", "bytes_recv_per_sec"):
        assert is_num(n.get(k)) and n[k] >= 0, "network.%s = %r" % (k, n.get(k))
    ifs = n.get("interfaces")
    assert isinstance(ifs, dict) and ifs, "network.interfaces: %r" % (ifs,)
    for name, i in ifs.items():
        assert isinstance(i, dict), "interface %s: %r" % (name, i)
        for k in IFACE_RATE_KEYS:
            assert is_num(i.get(k)) and i[k] >= 0, "interfaces.%s.%s = %r" % (name, k, i.get(k))
        for k in IFACE_COUNTER_KEYS:
            assert is_uint(i.get(k)), "interfaces.%s.%s = %r" % (name, k, i.get(k))
    # Totals exclude loopback.
    for k in ("bytes_sent_per_sec", "bytes_recv_per_sec"):
        s = sum(i[k] for name, i in ifs.items() if name != "lo")
        assert _close(n[k], s, 0.05 + 1e-6 * s), \
            "network.%s = %r is not the sum over non-loopback interfaces (%r)" % (k, n[k], s)


def proc_net_dev_names():
    with open("/proc/net/dev") as f:
        return {line.split(":", 1)[0].strip() for line in f if ":" in line}


def mount_point_of(path):
    """The mount point that holds `path` (os.path.ismount walking up)."""
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def check_disk(d, watched="/"):
    """Partitions are real filesystems, except the one holding `watched` (the
    --disk path), which is always listed whatever its type."""
    assert isinstance(d, dict), "disk is %r" % (d,)
    parts = d.get("partitions")
    assert isinstance(parts, dict), "disk.partitions: %r" % (parts,)
    watched_mp = mount_point_of(watched)
    assert watched_mp in parts, "the --disk filesystem %s is not listed: %s" % (watched_mp, sorted(parts))
    devices = []
    for mp, p in parts.items():
        assert mp.startswith("/"), "partition key %r is not a mountpoint" % mp
        assert isinstance(p, dict), p
        assert isinstance(p.get("device"), str) and p["device"], "partition %s: %r" % (mp, p)
        assert isinstance(p.get("fstype"), str) and p["fstype"], "partition %s: %r" % (mp, p)
        assert p["fstype"] not in PSEUDO_FSTYPES or mp == watched_mp, \
            "pseudo filesystem listed: %s %r" % (mp, p)
        for k in ("total_bytes", "used_bytes", "free_bytes"):
            assert is_uint(p.get(k)), "partitions[%s].%s = %r" % (mp, k, p.get(k))
        check_percent(p.get("usage_percent"), "partitions[%s].usage_percent" % mp)
        assert p["used_bytes"] <= p["total_bytes"] and p["free_bytes"] <= p["total_bytes"], \
            "partition %s: %r" % (mp, p)
        devices.append(p["device"])
    dup = {x for x in devices if devices.count(x) > 1}
    assert not dup, "the same device listed twice: %s in %r" % (dup, parts)
    io = d.get("io")
    assert isinstance(io, dict), "disk.io: %r" % (io,)
    for k in ("read_bytes_per_sec", "write_bytes_per_sec"):
        assert is_num(io.get(k)) and io[k] >= 0, "disk.io.%s = %r" % (k, io.get(k))
    devs = io.get("devices")
    assert isinstance(devs, dict), "disk.io.devices: %r" % (devs,)
    for name, v in devs.items():
        assert isinstance(v, dict), v
        for k in ("read_bytes_per_sec", "write_bytes_per_sec", "reads_per_sec", "writes_per_sec"):
            assert is_num(v.get(k)) and v[k] >= 0, "disk.io.devices.%s.%s = %r" % (name, k, v.get(k))
        assert not re.match(r"^(loop|ram|zram)\d", name), "loop/ram device listed: %s" % name
        assert not os.path.exists("/sys/class/block/%s/partition" % name), \
            "a partition is listed as a disk I/O device: %s" % name
    for k in ("read_bytes_per_sec", "write_bytes_per_sec"):
        s = sum(v[k] for v in devs.values())
        assert _close(io[k], s, 0.05 + 1e-6 * s), \
            "disk.io.%s = %r is not the sum over devices (%r)" % (k, io[k], s)


def check_system(s):
    assert isinstance(s, dict), "system is %r" % (s,)
    assert isinstance(s.get("hostname"), str) and s["hostname"], "system.hostname: %r" % s
    assert is_num(s.get("uptime_seconds")) and s["uptime_seconds"] > 0, \
        "system.uptime_seconds: %r" % s


def check_custom(c):
    assert isinstance(c, dict), "custom is %r" % (c,)
    for k, v in c.items():
        assert v is None or is_num(v), "custom.%s = %r" % (k, v)


CONTAINER_FIELDS = ("cpu_usage_percent", "cpu_limit_cores", "cpu_throttled_seconds", "memory_used_bytes",
                    "memory_limit_bytes", "memory_usage_percent", "pids", "pids_limit")


def check_container(c):
    """null outside a cgroup with limits; else every field, a number or null."""
    if c is None:
        return
    assert isinstance(c, dict), "container is %r" % (c,)
    assert set(c) == {"cgroup", "cgroup_version"} | set(CONTAINER_FIELDS), "container fields: %s" % sorted(c)
    assert c["cgroup_version"] in (1, 2) and c["cgroup"].startswith("/"), c
    for k in CONTAINER_FIELDS:
        assert c[k] is None or (is_num(c[k]) and c[k] >= 0), "container.%s = %r" % (k, c[k])
    for k in ("cpu_usage_percent", "memory_usage_percent"):
        if c[k] is not None:
            check_percent(c[k], "container." + k)
    assert any(c[k] is not None for k in ("cpu_limit_cores", "memory_limit_bytes", "pids_limit")), \
        "a container group without any limit: %r" % c


def check_sensors(s):
    """null on a host without temperature sensors, else their readings."""
    if s is None:
        return
    assert isinstance(s, dict) and set(s) == {"temperatures"}, s
    for t in s["temperatures"]:
        assert set(t) == {"chip", "sensor", "celsius"}, t
        assert isinstance(t["chip"], str) and isinstance(t["sensor"], str) and is_num(t["celsius"]), t


CHECKS = {"cpu": check_cpu, "memory": check_memory, "network": check_network,
          "disk": check_disk, "system": check_system, "container": check_container,
          "custom": check_custom, "sensors": check_sensors}


def check_data(data, groups):
    """`data` has exactly `groups`, each with every field of SPEC §5.2 typed
    as documented and internally consistent."""
    assert isinstance(data, dict), "data is %r" % (data,)
    assert set(data) == set(groups), "data groups %s, expected %s" % (sorted(data), sorted(groups))
    for g in groups:
        CHECKS[g](data[g])


def check_rich(msg, groups=RICH_GROUPS):
    assert isinstance(msg, dict), msg
    assert msg.get("type") == "metrics", "type is %r in %s" % (msg.get("type"), str(msg)[:300])
    extra = set(msg) - {"type", "timestamp", "data", "error"}
    assert not extra, "unexpected top-level fields %s" % extra
    assert "error" not in msg, "collection failed on a host with /proc: %r" % msg.get("error")
    ts = parse_rich_ts(msg.get("timestamp"))
    check_data(msg.get("data"), groups)
    return ts


# --------------------------------------------------------------------------- #
# generated loopback traffic

_LOAD_SCRIPT = r"""
import socket, sys, threading, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
def sink():
    c, _ = srv.accept()
    while c.recv(1 << 20):
        pass
threading.Thread(target=sink, daemon=True).start()
s = socket.create_connection(srv.getsockname())
chunk = b"x" * max(1, int(rate / 200))
start = time.monotonic()
end = start + seconds
sent = 0
print("started", flush=True)
while True:
    now = time.monotonic()
    if now >= end:
        break
    due = (now - start) * rate
    if sent < due:
        s.sendall(chunk)
        sent += len(chunk)
    else:
        time.sleep(0.002)
s.close()
print("sent", sent, flush=True)
"""


class LoopbackLoad:
    """A separate process pushing about `rate` bytes per second through a TCP
    connection on 127.0.0.1 for `seconds` (bounded), evenly paced."""

    def __init__(self, rate, seconds):
        self.proc = subprocess.Popen(["/usr/bin/python3", "-c", _LOAD_SCRIPT, str(rate),
                                      str(seconds)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("started"), "load generator did not start: %r" % line

    def wait(self, timeout=30):
        out, _ = self.proc.communicate(timeout=timeout)
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def write_gauge(path, value):
    """Replace a --gauge file at once, so the agent never reads it half written."""
    path = str(path)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%s\n" % value)
    os.replace(tmp, path)


_WRITE_SCRIPT = r"""
import os, sys, time
path, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
chunk = os.urandom(1 << 20)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
start = time.monotonic()
written = 0
print("started", flush=True)
try:
    while time.monotonic() - start < seconds:
        if written < (time.monotonic() - start) * rate:
            os.write(fd, chunk)
            written += len(chunk)
            if written % (4 << 20) == 0:
                os.fsync(fd)
                os.lseek(fd, 0, os.SEEK_SET)  # rewrite the same 4 MiB: bounded disk use
        else:
            time.sleep(0.005)
    os.fsync(fd)
finally:
    os.close(fd)
    os.unlink(path)
print("wrote", written, flush=True)
"""


class DiskWriteLoad:
    """A separate process writing about `rate` bytes per second to `path`
    (synced every 4 MiB, rewriting the same 4 MiB) for `seconds`."""

    def __init__(self, path, rate, seconds):
        self.proc = subprocess.Popen(["/usr/bin/python3", "-c", _WRITE_SCRIPT, str(path),
                                      str(rate), str(seconds)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("started"), "disk writer did not start: %r" % line

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
