"""`metrics-agent check [URL] [--timeout SECONDS]` (SPEC §3): exit 0 when
URL/health answers 200 with {"status":"ok"}, 1 with a one-line reason
otherwise, 2 for a usage error. Besides a live agent, scripted servers on
loopback play every way a health endpoint can fail."""

import socket
import threading
import time

import pytest

import e2e_util
from e2e_util import run_cli

OK_BODY = b'{"status":"ok","version":"9.9.9","uptime_seconds":1.5,"clients":4}'


class ScriptedServer:
    """A TCP server on loopback that reads each request head and then runs
    `script(conn, request_bytes)`; it keeps the heads it received."""

    def __init__(self, script, family=socket.AF_INET, host="127.0.0.1", read_request=True):
        self.script, self.read_request = script, read_request
        self.requests = []
        self.conns = []
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url_host = "[%s]" % host if family == socket.AF_INET6 else host
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://%s:%d" % (self.url_host, self.port)

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            head = b""
            if self.read_request:
                conn.settimeout(10)
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                self.requests.append(head)
            self.script(conn, head)
        except OSError:
            pass

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@pytest.fixture
def scripted():
    servers = []

    def make(script, **kw):
        s = ScriptedServer(script, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def answer(status_line, body, extra_headers=b"", close=True):
    def script(conn, _head):
        conn.sendall(b"HTTP/1.1 " + status_line + b"\r\nContent-Type: application/json\r\n"
                     + b"Content-Length: " + str(len(body)).encode() + b"\r\n" + extra_headers
                     + b"\r\n" + body)
        if close:
            conn.close()
    return script


def check(*args, timeout=30):
    t0 = time.monotonic()
    r = run_cli(["check"] + [str(a) for a in args], timeout=timeout)
    r.elapsed = time.monotonic() - t0
    r.output = r.stdout + r.stderr
    return r


def assert_unhealthy(r, *words):
    assert r.returncode == 1, "exit %d, expected 1\nstdout: %s\nstderr: %s" % (
        r.returncode, r.stdout, r.stderr)
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("unhealthy: "), \
        "expected one 'unhealthy: <reason>' line on stdout, got %r" % r.stdout
    for w in words:
        assert w.lower() in r.output.lower(), "%r not in the output: %s" % (w, r.output)


def assert_healthy(r):
    assert r.returncode == 0, "exit %d, expected 0\nstdout: %s\nstderr: %s" % (
        r.returncode, r.stdout, r.stderr)
    assert r.stdout.startswith("ok: ") and "healthy" in r.stdout, r.stdout


# ---------------------------------------------------------------- a live agent

def test_live_agent_is_healthy(spawn):
    agent = spawn.agent()
    url = "http://127.0.0.1:%d" % agent.port
    r = check(url, "--timeout", 5)
    assert_healthy(r)
    assert url in r.stdout, r.stdout
    assert "version" in r.stdout and "client" in r.stdout, r.stdout
    assert r.elapsed < 5, r.elapsed


@pytest.mark.parametrize("suffix", ["/", "/health"])
def test_live_agent_with_a_path(spawn, suffix):
    agent = spawn.agent()
    assert_healthy(check("http://127.0.0.1:%d%s" % (agent.port, suffix), "--timeout", 5))


def test_live_agent_by_name(spawn):
    # "localhost" goes through the resolver; ::1 may come first and refuse.
    agent = spawn.agent()
    assert_healthy(check("http://localhost:%d" % agent.port, "--timeout", 5))


def test_agent_that_stopped_is_unhealthy(spawn):
    agent = spawn.agent()
    url = "http://127.0.0.1:%d" % agent.port
    assert_healthy(check(url, "--timeout", 5))
    agent.stop()
    assert_unhealthy(check(url, "--timeout", 5), "refused")


# ---------------------------------------------------------------- failures

def test_dead_port_is_refused():
    port = e2e_util.free_port()
    r = check("http://127.0.0.1:%d" % port, "--timeout", 5)
    assert_unhealthy(r, "refused")
    assert r.elapsed < 5, r.elapsed


def test_server_that_never_answers_times_out(scripted):
    hold = threading.Event()
    srv = scripted(lambda conn, head: hold.wait(30))
    try:
        r = check(srv.url, "--timeout", 2)
    finally:
        hold.set()
    assert_unhealthy(r, "timed out")
    assert 1.8 <= r.elapsed < 2 + 2, "took %.2f s with --timeout 2" % r.elapsed
    assert srv.requests and srv.requests[0].startswith(b"GET /health HTTP/1.1\r\n"), srv.requests


def test_server_that_accepts_and_never_reads_times_out(scripted):
    hold = threading.Event()
    srv = scripted(lambda conn, head: hold.wait(30), read_request=False)
    try:
        r = check(srv.url, "--timeout", 1.5)
    finally:
        hold.set()
    assert_unhealthy(r, "timed out")
    assert r.elapsed < 1.5 + 2, r.elapsed


def test_server_that_trickles_forever_times_out(scripted):
    stop = threading.Event()

    def trickle(conn, head):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        while not stop.is_set():
            conn.sendall(b"X-Padding: a\r\n")
            time.sleep(0.05)

    srv = scripted(trickle)
    try:
        r = check(srv.url, "--timeout", 2)
    finally:
        stop.set()
    assert_unhealthy(r, "timed out")
    assert r.elapsed < 2 + 2, r.elapsed


def test_non_json_answer(scripted):
    srv = scripted(answer(b"200 OK", b"<html>hello</html>"))
    assert_unhealthy(check(srv.url, "--timeout", 5), "not JSON", "<html>")


@pytest.mark.parametrize("body", [b'{"status":"ok","uptime_seconds":1e999}', b'{"status":"ok","clients":-1e999}'])
def test_number_out_of_range_is_not_json_and_no_crash(scripted, body):
    # picojson throws for a number beyond a double; the client must answer, not abort.
    srv = scripted(answer(b"200 OK", body))
    assert_unhealthy(check(srv.url, "--timeout", 5), "not JSON", "1e999")


def test_empty_answer_is_not_json(scripted):
    srv = scripted(answer(b"200 OK", b""))
    assert_unhealthy(check(srv.url, "--timeout", 5), "JSON")


def test_json_that_is_not_an_object(scripted):
    srv = scripted(answer(b"200 OK", b'["ok"]'))
    assert_unhealthy(check(srv.url, "--timeout", 5), "JSON")


@pytest.mark.parametrize("status", [b"500 Internal Server Error", b"503 Service Unavailable",
                                    b"404 Not Found", b"301 Moved Permanently"])
def test_bad_status(scripted, status):
    srv = scripted(answer(status, b'{"status":"ok"}'))
    assert_unhealthy(check(srv.url, "--timeout", 5), "HTTP " + status[:3].decode())


def test_status_not_ok(scripted):
    srv = scripted(answer(b"200 OK", b'{"status":"degraded","version":"1"}'))
    assert_unhealthy(check(srv.url, "--timeout", 5), "degraded")


def test_no_status_field(scripted):
    srv = scripted(answer(b"200 OK", b'{"version":"1"}'))
    assert_unhealthy(check(srv.url, "--timeout", 5), "status")


def test_connection_closed_without_an_answer(scripted):
    srv = scripted(lambda conn, head: conn.close())
    assert_unhealthy(check(srv.url, "--timeout", 5), "closed")


def test_truncated_body(scripted):
    def script(conn, head):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"status\":")
        conn.close()

    srv = scripted(script)
    assert_unhealthy(check(srv.url, "--timeout", 5), "closed")


def test_answer_over_one_mib_is_refused(scripted):
    body = b'{"status":"ok","pad":"' + b"x" * (1100 * 1024) + b'"}'
    srv = scripted(answer(b"200 OK", body))
    assert_unhealthy(check(srv.url, "--timeout", 10), "1 MiB")


def test_not_http_at_all(scripted):
    def script(conn, head):
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        conn.close()

    srv = scripted(script)
    assert_unhealthy(check(srv.url, "--timeout", 5), "HTTP")


# ---------------------------------------------------------------- good answers in other shapes

def test_chunked_answer_in_pieces(scripted):
    def script(conn, head):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        pieces = [OK_BODY[:10], OK_BODY[10:11], OK_BODY[11:]]
        for p in pieces:
            wire = b"%x;ext=1\r\n" % len(p) + p + b"\r\n"
            for i in range(0, len(wire), 7):  # split across chunk boundaries too
                conn.sendall(wire[i:i + 7])
                time.sleep(0.01)
        conn.sendall(b"0\r\nX-Trailer: yes\r\n\r\n")
        time.sleep(1)  # keep the connection open: the end comes from the chunks
        conn.close()

    srv = scripted(script)
    r = check(srv.url, "--timeout", 5)
    assert_healthy(r)
    assert "9.9.9" in r.stdout and "4 clients" in r.stdout, r.stdout
    assert r.elapsed < 1, "did not stop at the last chunk: %.2f s" % r.elapsed


def test_malformed_chunked_answer(scripted):
    def script(conn, head):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
        conn.close()

    srv = scripted(script)
    assert_unhealthy(check(srv.url, "--timeout", 5), "chunk")


def test_answer_without_length_read_to_eof(scripted):
    def script(conn, head):
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + OK_BODY)
        conn.close()

    srv = scripted(script)
    assert_healthy(check(srv.url, "--timeout", 5))


def test_content_length_stops_reading_on_a_kept_alive_connection(scripted):
    # The server ignores "Connection: close": the length alone ends the answer.
    srv = scripted(answer(b"200 OK", OK_BODY, close=False))
    r = check(srv.url, "--timeout", 5)
    assert_healthy(r)
    assert r.elapsed < 2, r.elapsed


def test_interim_100_continue_is_skipped(scripted):
    def script(conn, head):
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        answer(b"200 OK", OK_BODY)(conn, head)

    srv = scripted(script)
    assert_healthy(check(srv.url, "--timeout", 5))


def test_request_line_host_and_prefix(scripted):
    srv = scripted(answer(b"200 OK", OK_BODY))
    assert_healthy(check(srv.url + "/agent/", "--timeout", 5))
    head = srv.requests[0].decode("latin-1")
    lines = head.split("\r\n")
    assert lines[0] == "GET /agent/health HTTP/1.1", lines[0]
    assert "Host: 127.0.0.1:%d" % srv.port in lines, head


def test_ipv6_loopback(scripted):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        srv = scripted(answer(b"200 OK", OK_BODY), family=socket.AF_INET6, host="::1")
    except OSError as e:
        pytest.skip("no IPv6 loopback here: %s" % e)
    r = check(srv.url, "--timeout", 5)
    assert_healthy(r)
    assert "Host: [::1]:%d" % srv.port in srv.requests[0].decode("latin-1")


# ---------------------------------------------------------------- usage

@pytest.mark.parametrize("args", [
    ["ftp://127.0.0.1:54112"],
    ["http://"],
    ["http://127.0.0.1:99999"],
    ["http://127.0.0.1:0"],
    ["http://127.0.0.1:port"],
    ["not a url"],
    ["http://::1:54112"],
    ["http://[::1:54112"],
    ["http://user:pw@127.0.0.1:54112"],
    ["http://127.0.0.1:54112", "--timeout", "abc"],
    ["http://127.0.0.1:54112", "--timeout", "-1"],
    ["http://127.0.0.1:54112", "--timeout"],
    ["http://127.0.0.1:54112", "--bogus"],
])
def test_usage_errors_exit_2(args):
    r = check(*args)
    assert r.returncode == 2, "exit %d for %s\nstdout: %s\nstderr: %s" % (
        r.returncode, args, r.stdout, r.stderr)
    assert r.stderr.strip(), "no message on stderr for %s" % args


def test_https_is_not_supported():
    r = check("https://127.0.0.1:%d" % e2e_util.free_port(), "--timeout", 2)
    assert_unhealthy(r, "https")
