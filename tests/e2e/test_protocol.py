"""Protocol duties (SPEC §5.5) with a raw-socket client, against the agent's
flat stream and against the echo server (the same machinery), plus the HTTP
basics of the agent. After every misbehaving client a second client must
still be served."""

import base64
import json
import os
import socket
import struct
import time

import pytest

import rawws
from rawws import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWS,
                   accept_value, close_payload, encode_frame, read_http_response,
                   upgrade_request)


class Target:
    def __init__(self, kind, proc, path):
        self.kind, self.proc, self.path = kind, proc, path

    @property
    def port(self):
        return self.proc.port

    def ws(self, **kw):
        return RawWS.connect(self.port, self.path, **kw)

    def tcp(self):
        return rawws.connect_tcp(self.port)

    def check_alive(self):
        """A fresh, well-behaved client is served as usual."""
        self.proc.assert_alive()
        with self.ws() as ws:
            if self.kind == "agent":
                opcode, payload = ws.recv_message(timeout=10)
                assert opcode == OP_TEXT
                assert "timestamp" in json.loads(payload)
            else:
                ws.send_text("alive?")
                assert ws.recv_message(timeout=10) == (OP_TEXT, b"alive?")
            ws.send_close(1000)
            ws.expect_close(1000)
        self.proc.assert_alive()


@pytest.fixture(scope="module", params=["agent", "echo"])
def target(request, spawn_module):
    if request.param == "agent":
        proc = spawn_module.agent("--tick", "0.5")
        return Target("agent", proc, "/api/system/metrics")
    proc = spawn_module.echo()
    return Target("echo", proc, "/echo")


def gather(target, ws, pongs, messages, timeout=20):
    """Read until every pong payload in `pongs` has arrived and, from the echo
    server, `messages` complete data messages (in whatever order the server
    interleaves them). The agent's own stream messages are skipped."""
    want = 0 if target.kind == "agent" else messages
    got_pongs, got_msgs, partial = [], [], None
    deadline = time.monotonic() + timeout
    while len(got_pongs) < len(pongs) or len(got_msgs) < want:
        f = ws.recv_frame(max(0.001, deadline - time.monotonic()))
        if f.opcode == OP_PONG:
            got_pongs.append(f.payload)
        elif f.opcode == OP_CLOSE:
            raise AssertionError("close frame %r %r" % (f.close_code, f.close_reason))
        elif f.opcode == OP_PING:
            continue
        elif target.kind == "echo":
            if partial is None:
                assert f.opcode != OP_CONT, f
                partial = (f.opcode, [f.payload])
            else:
                assert f.opcode == OP_CONT, f
                partial[1].append(f.payload)
            if f.fin:
                got_msgs.append((partial[0], b"".join(partial[1])))
                partial = None
    assert got_pongs == list(pongs), got_pongs
    return got_msgs


# --------------------------------------------------------------------------- #
# Opening handshake (RFC 6455 §4.2)

def test_handshake_101_with_the_rfc_accept_value(target):
    req, key = upgrade_request(target.path)
    with target.tcp() as s:
        s.sendall(req)
        resp, _ = read_http_response(s)
    assert resp.status == 101, resp
    assert resp.header("Sec-WebSocket-Accept") == accept_value(key), resp
    assert (resp.header("Upgrade") or "").lower() == "websocket", resp
    assert "upgrade" in (resp.header("Connection") or "").lower(), resp
    target.check_alive()


def test_rfc_example_key():
    # RFC 6455 §1.3's own example, so the test's expectation is itself checked.
    assert accept_value("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("extra,omit", [
    ([("Connection", "keep-alive, Upgrade")], ("Connection",)),
    ([("Upgrade", "WebSocket")], ("Upgrade",)),
    ([("connection", "upgrade"), ("upgrade", "websocket")], ("Connection", "Upgrade")),
])
def test_handshake_header_variants_browsers_send(target, extra, omit):
    req, key = upgrade_request(target.path, extra=extra, omit=omit)
    with target.tcp() as s:
        s.sendall(req)
        resp, _ = read_http_response(s)
    assert resp.status == 101, resp
    assert resp.header("Sec-WebSocket-Accept") == accept_value(key)


def test_missing_key_is_400(target):
    req, _ = upgrade_request(target.path, omit=("Sec-WebSocket-Key",))
    with target.tcp() as s:
        s.sendall(req)
        resp, _ = read_http_response(s)
    assert resp.status == 400, resp
    target.check_alive()


@pytest.mark.parametrize("key", [
    "abc",
    base64.b64encode(b"x" * 15).decode(),
    base64.b64encode(b"x" * 17).decode(),
    "!!!!not base64!!!!!!!==",
    "",
])
def test_invalid_key_is_400(target, key):
    req, _ = upgrade_request(target.path, key=key)
    with target.tcp() as s:
        s.sendall(req)
        resp, _ = read_http_response(s)
    assert resp.status == 400, resp
    target.check_alive()


@pytest.mark.parametrize("version", ["8", "12", "14", "abc"])
def test_other_version_is_426_naming_13(target, version):
    req, _ = upgrade_request(target.path, version=version)
    with target.tcp() as s:
        s.sendall(req)
        resp, _ = read_http_response(s)
    assert resp.status == 426, resp
    assert (resp.header("Sec-WebSocket-Version") or "").strip() == "13", resp
    target.check_alive()


def test_get_without_upgrade_is_4xx(target):
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
           % target.path).encode()
    with target.tcp() as s:
        s.sendall(req)
        resp, _ = read_http_response(s)
    assert 400 <= resp.status < 500, resp
    target.check_alive()


def test_upgrade_with_post_is_4xx(target):
    req, _ = upgrade_request(target.path, method="POST", extra=[("Content-Length", "0")])
    with target.tcp() as s:
        s.sendall(req)
        resp, _ = read_http_response(s)
    assert 400 <= resp.status < 500, resp
    target.check_alive()


def test_handshake_sent_one_byte_at_a_time(target):
    req, key = upgrade_request(target.path)
    with target.tcp() as s:
        for i in range(len(req)):
            s.sendall(req[i:i + 1])
            if i % 16 == 0:
                time.sleep(0.001)
        resp, rest = read_http_response(s)
        assert resp.status == 101, resp
        assert resp.header("Sec-WebSocket-Accept") == accept_value(key)
        ws = RawWS(s, rest)
        ws.send_frame(OP_PING, b"bytewise")
        ws.expect_pong(b"bytewise")


def test_handshake_and_first_frame_in_one_write(target):
    req, key = upgrade_request(target.path)
    with target.tcp() as s:
        s.sendall(req + encode_frame(OP_PING, b"same-write"))
        resp, rest = read_http_response(s)
        assert resp.status == 101, resp
        RawWS(s, rest).expect_pong(b"same-write")


# --------------------------------------------------------------------------- #
# Framing errors (RFC 6455 §5) -> close 1002, then TCP closed

def test_unmasked_client_frame_is_1002(target):
    with target.ws() as ws:
        ws.send_raw(encode_frame(OP_TEXT, b"not masked", mask=False))
        ws.expect_close(1002)
    target.check_alive()


@pytest.mark.parametrize("rsv", [1, 2, 4, 7])
def test_rsv_bits_are_1002(target, rsv):
    with target.ws() as ws:
        ws.send_raw(encode_frame(OP_TEXT, b"rsv", rsv=rsv))
        ws.expect_close(1002)
    target.check_alive()


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcode_is_1002(target, opcode):
    with target.ws() as ws:
        ws.send_raw(encode_frame(opcode, b"x"))
        ws.expect_close(1002)
    target.check_alive()


def test_control_frame_over_125_bytes_is_1002(target):
    with target.ws() as ws:
        ws.send_raw(encode_frame(OP_PING, b"p" * 126))
        ws.expect_close(1002)
    target.check_alive()


def test_fragmented_control_frame_is_1002(target):
    with target.ws() as ws:
        ws.send_raw(encode_frame(OP_PING, b"half", fin=False))
        ws.expect_close(1002)
    target.check_alive()


def test_continuation_with_nothing_to_continue_is_1002(target):
    with target.ws() as ws:
        ws.send_raw(encode_frame(OP_CONT, b"orphan"))
        ws.expect_close(1002)
    target.check_alive()


@pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY])
def test_new_data_frame_inside_a_fragmented_message_is_1002(target, second):
    with target.ws() as ws:
        ws.send_raw(encode_frame(OP_TEXT, b"first part ", fin=False)
                    + encode_frame(second, b"intruder"))
        ws.expect_close(1002)
    target.check_alive()


def test_64bit_length_with_top_bit_set_is_refused(target):
    # RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0.
    with target.ws() as ws:
        head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 1 << 63) + os.urandom(4)
        ws.send_raw(head + b"abcd")
        ws.expect_close((1002, 1009))
    target.check_alive()


# --------------------------------------------------------------------------- #
# What must keep working

@pytest.mark.parametrize("payload", [b"", b"hello", bytes(range(125)), "ünïcødé".encode()])
def test_ping_is_answered_with_the_same_payload(target, payload):
    with target.ws() as ws:
        ws.send_frame(OP_PING, payload)
        ws.expect_pong(payload)
        ws.send_frame(OP_PING, payload)
        ws.expect_pong(payload)


def test_unsolicited_pong_is_ignored(target):
    with target.ws() as ws:
        ws.send_frame(OP_PONG, b"unsolicited")
        ws.send_frame(OP_PING, b"after")
        ws.expect_pong(b"after")


def test_ping_between_fragments_is_answered_and_the_message_completes(target):
    with target.ws() as ws:
        ws.send_raw(encode_frame(OP_TEXT, b"frag", fin=False)
                    + encode_frame(OP_PING, b"mid")
                    + encode_frame(OP_CONT, b"mented", fin=True))
        ws.send_frame(OP_PING, b"end")
        msgs = gather(target, ws, [b"mid", b"end"], 1)
        if target.kind == "echo":
            assert msgs == [(OP_TEXT, b"fragmented")], msgs


# --------------------------------------------------------------------------- #
# UTF-8 (RFC 6455 §8.1) -> 1007

@pytest.mark.parametrize("bad", [
    b"\xff",
    b"abc\xc3",                 # truncated sequence at the end of the message
    b"\xc0\xaf",                # overlong
    b"\xe0\x80\xaf",            # overlong
    b"\xed\xa0\x80",            # UTF-16 surrogate
    b"\xf4\x90\x80\x80",        # above U+10FFFF
    b"ok \xe2\x82\x28 no",      # bad continuation byte
])
def test_invalid_utf8_text_is_1007(target, bad):
    with target.ws() as ws:
        ws.send_frame(OP_TEXT, bad)
        ws.expect_close(1007)
    target.check_alive()


@pytest.mark.parametrize("parts", [
    [b"ab\xe2\x82", b"\x28cd"],       # the bad byte is in the second fragment
    [b"ab\xe2", b"\x82"],             # the message ends inside a sequence
    [b"ok", b"\xf0\x9f", b"\x98"],     # ditto, three fragments
])
def test_invalid_utf8_across_fragments_is_1007(target, parts):
    with target.ws() as ws:
        frames = [encode_frame(OP_TEXT if i == 0 else OP_CONT, p, fin=(i == len(parts) - 1))
                  for i, p in enumerate(parts)]
        ws.send_raw(b"".join(frames))
        ws.expect_close(1007)
    target.check_alive()


def test_valid_utf8_split_inside_characters_is_accepted(target):
    text = "aé€😀" * 3
    data = text.encode()
    cuts = [2, 4, 6, 7, 9, 12, len(data) - 1]
    pieces = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
    with target.ws() as ws:
        ws.send_raw(b"".join(encode_frame(OP_TEXT if i == 0 else OP_CONT, p,
                                          fin=(i == len(pieces) - 1))
                             for i, p in enumerate(pieces)))
        ws.send_frame(OP_PING, b"after")
        msgs = gather(target, ws, [b"after"], 1)
        if target.kind == "echo":
            assert msgs == [(OP_TEXT, data)], msgs


# --------------------------------------------------------------------------- #
# Size limit (64 KiB by default) -> 1009

def _send_ignoring_reset(ws, data):
    try:
        ws.send_raw(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close as soon as it has read the length


def test_message_of_exactly_64_kib_is_accepted(target):
    payload = os.urandom(65536)
    with target.ws() as ws:
        ws.send_frame(OP_BINARY, payload)
        ws.send_frame(OP_PING, b"after")
        msgs = gather(target, ws, [b"after"], 1)
        if target.kind == "echo":
            assert msgs == [(OP_BINARY, payload)]


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_single_frame_over_64_kib_is_1009(target, opcode):
    with target.ws() as ws:
        _send_ignoring_reset(ws, encode_frame(opcode, b"a" * 65537))
        ws.expect_close(1009)
    target.check_alive()


def test_fragmented_message_over_64_kib_is_1009(target):
    with target.ws() as ws:
        _send_ignoring_reset(ws, encode_frame(OP_BINARY, b"a" * 40000, fin=False)
                             + encode_frame(OP_CONT, b"b" * 25537, fin=True))
        ws.expect_close(1009)
    target.check_alive()


def test_huge_declared_length_is_1009_without_sending_it(target):
    with target.ws() as ws:
        _send_ignoring_reset(ws, bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 1 << 40)
                             + os.urandom(4) + b"only a few bytes")
        ws.expect_close(1009)
    target.check_alive()


# --------------------------------------------------------------------------- #
# Closing handshake (RFC 6455 §5.5.1, §7.4)

@pytest.mark.parametrize("code,reason", [
    (1000, b""), (1000, b"bye"), (1001, b"going"), (3000, b""), (4999, "fin ✓".encode()),
])
def test_close_is_answered_with_the_same_code_and_tcp_closes(target, code, reason):
    with target.ws() as ws:
        ws.send_close(code, reason)
        ws.expect_close(code)
    target.check_alive()


def test_close_without_payload_is_answered(target):
    with target.ws() as ws:
        ws.send_frame(OP_CLOSE, b"")
        f = ws.recv_close()
        assert f.close_code in (None, 1000), f
        ws.expect_eof()
    target.check_alive()


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_close_with_an_invalid_code_is_1002(target, code):
    with target.ws() as ws:
        ws.send_close(code)
        ws.expect_close(1002)
    target.check_alive()


def test_close_with_one_byte_payload_is_1002(target):
    with target.ws() as ws:
        ws.send_frame(OP_CLOSE, b"\x03")
        ws.expect_close(1002)
    target.check_alive()


def test_close_with_invalid_utf8_reason_is_refused(target):
    with target.ws() as ws:
        ws.send_frame(OP_CLOSE, close_payload(1000) + b"\xff\xfe")
        ws.expect_close((1002, 1007))
    target.check_alive()


# --------------------------------------------------------------------------- #
# HTTP basics of the agent (SPEC §4)

@pytest.fixture(scope="module")
def agent(spawn_module):
    return spawn_module.agent("--tick", "0.5", "--request-timeout", "3")


def _health_ok(port):
    r = rawws.http_get(port, "/health")
    assert r.status == 200, r
    assert json.loads(r.body)["status"] == "ok", r


def test_health_is_200_json(agent):
    r = rawws.http_get(agent.port, "/health")
    assert r.status == 200, r
    assert "application/json" in (r.header("Content-Type") or ""), r
    body = json.loads(r.body)
    assert body["status"] == "ok", body


def test_keep_alive_serves_several_requests_on_one_connection(agent):
    with rawws.connect_tcp(agent.port) as s:
        buf = b""
        for _ in range(3):
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            resp, buf = read_http_response(s, buf)
            assert resp.status == 200, resp
            assert json.loads(resp.body)["status"] == "ok"


def test_unknown_path_is_404_json(agent):
    r = rawws.http_get(agent.port, "/no/such/path")
    assert r.status == 404, r
    body = json.loads(r.body)
    assert isinstance(body.get("error"), str) and body["error"], body


def test_headers_over_8_kib_are_431(agent):
    big = "a" * 9000
    r = rawws.http_exchange(agent.port, ("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                         "X-Big: %s\r\n\r\n" % big).encode())
    assert r.status == 431, r
    _health_ok(agent.port)


def test_many_headers_over_8_kib_are_431(agent):
    lines = "".join("X-H%d: %s\r\n" % (i, "v" * 90) for i in range(100))
    r = rawws.http_exchange(agent.port, ("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n"
                                         % lines).encode())
    assert r.status == 431, r
    _health_ok(agent.port)


@pytest.mark.parametrize("garbage", [
    b"\x00\x01\x02\x03garbage\xff\xfe\r\n\r\n",
    b"HELLO THERE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /health HTTP/1.1\r\nNo colon here\r\n\r\n",
])
def test_garbage_instead_of_http_is_400(agent, garbage):
    with rawws.connect_tcp(agent.port) as s:
        s.sendall(garbage)
        resp, _ = read_http_response(s)
    allowed = (400, 505) if b"HTTP/9.9" in garbage else (400,)
    assert resp.status in allowed, resp
    _health_ok(agent.port)


def test_tls_client_hello_does_not_disturb_the_agent(agent):
    hello = bytes.fromhex("16030100c4010000c00303") + os.urandom(64)
    with rawws.connect_tcp(agent.port) as s:
        s.sendall(hello)
        s.settimeout(15)
        try:
            data = s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            data = b""
        if data:  # an answer is optional; if there is one, it is an HTTP error
            assert data.startswith((b"HTTP/1.1 400", b"HTTP/1.1 408")), data[:100]
    _health_ok(agent.port)
