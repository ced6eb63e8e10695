"""A deliberately small WebSocket client on raw sockets, written for the tests.

It does its own HTTP/1.1 upgrade request, masking and frame encoding, so that
tests can send exactly the bytes they want (malformed ones included) and see
exactly the frames the server sends back (RFC 6455).
"""

import base64
import hashlib
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

DEFAULT_TIMEOUT = 10.0


class ProtocolViolation(AssertionError):
    """The server sent something RFC 6455 forbids."""


def accept_value(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def new_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


def apply_mask(data, key):
    n = len(data)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None,
                 length=None):
    """One frame as bytes. `length` overrides the encoded payload length."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload) if length is None else length
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        return head + key + apply_mask(payload, key)
    return head + payload


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "payload")

    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    @property
    def close_code(self):
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self):
        return self.payload[2:]

    def __repr__(self):
        p = self.payload if len(self.payload) <= 60 else self.payload[:60] + b"..."
        return "Frame(fin=%s, rsv=%d, opcode=0x%x, payload[%d]=%r)" % (
            self.fin, self.rsv, self.opcode, len(self.payload), p)


class Closed(Exception):
    """The TCP connection ended (EOF or reset)."""


def make_socket(rcvbuf=None, maxseg=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if maxseg is not None:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, maxseg)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def connect_tcp(port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT, rcvbuf=None, maxseg=None):
    s = make_socket(rcvbuf, maxseg)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def upgrade_request(path="/", host="127.0.0.1", key=None, version="13", extra=None,
                    omit=(), method="GET"):
    """The bytes of an upgrade request. `key=None` makes a fresh valid key;
    headers named in `omit` are left out; `extra` is a list of (name, value)."""
    if key is None:
        key = new_key()
    headers = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", version),
    ]
    omit_l = {o.lower() for o in omit}
    lines = ["%s %s HTTP/1.1" % (method, path)]
    lines += ["%s: %s" % (k, v) for k, v in headers if k.lower() not in omit_l]
    lines += ["%s: %s" % (k, v) for k, v in (extra or [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), key


class HttpResponse:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def header(self, name):
        """Value of the first header named `name` (case-insensitive) or None."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "HttpResponse(%d %s, %r, body=%r)" % (
            self.status, self.reason, self.headers, self.body[:200])


def read_http_response(sock, buf=b"", timeout=DEFAULT_TIMEOUT, body=True):
    """Read one response; returns (HttpResponse, leftover bytes).
    For a 101 (or body=False) no body is read; otherwise Content-Length, or to EOF."""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf:
        chunk = _recv_some(sock, deadline)
        if not chunk:
            raise Closed("connection ended before a complete response head; got %r" % buf)
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise AssertionError("not an HTTP/1.x status line: %r" % lines[0])
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    resp = HttpResponse(status, reason, headers, b"")
    if status == 101 or not body:
        return resp, rest
    clen = resp.header("Content-Length")
    if clen is not None:
        n = int(clen)
        while len(rest) < n:
            chunk = _recv_some(sock, deadline)
            if not chunk:
                raise Closed("connection ended inside a body of %d bytes" % n)
            rest += chunk
        resp.body, rest = rest[:n], rest[n:]
    elif (resp.header("Transfer-Encoding") or "").lower() == "chunked":
        raise AssertionError("chunked responses are not expected from this server")
    else:
        while True:
            try:
                chunk = _recv_some(sock, deadline)
            except Closed:
                break
            if not chunk:
                break
            rest += chunk
        resp.body, rest = rest, b""
    return resp, rest


def _recv_some(sock, deadline, n=65536):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise socket.timeout("timed out")
    sock.settimeout(remaining)
    try:
        return sock.recv(n)
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        return b""


def http_exchange(port, request, timeout=DEFAULT_TIMEOUT, host="127.0.0.1"):
    """Send raw request bytes on a new connection and read one response."""
    with connect_tcp(port, host, timeout) as s:
        s.sendall(request)
        resp, _ = read_http_response(s, timeout=timeout)
        return resp


def http_get(port, path, headers=None, timeout=DEFAULT_TIMEOUT):
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1", "Connection: close"]
    lines += ["%s: %s" % kv for kv in (headers or [])]
    return http_exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), timeout)


class RawWS:
    """A connected WebSocket (after a 101) on a raw socket."""

    def __init__(self, sock, leftover=b""):
        self.sock = sock
        self.buf = bytearray(leftover)
        self.eof = False

    @classmethod
    def connect(cls, port, path="/", host="127.0.0.1", timeout=DEFAULT_TIMEOUT,
                rcvbuf=None, maxseg=None, extra=None):
        sock = connect_tcp(port, host, timeout, rcvbuf, maxseg)
        try:
            req, key = upgrade_request(path, host, extra=extra)
            sock.sendall(req)
            resp, rest = read_http_response(sock, timeout=timeout)
            if resp.status != 101:
                raise AssertionError("expected 101 for %s, got %r" % (path, resp))
            if resp.header("Sec-WebSocket-Accept") != accept_value(key):
                raise AssertionError("wrong Sec-WebSocket-Accept: %r" % resp)
        except BaseException:
            sock.close()
            raise
        ws = cls(sock, rest)
        ws.response = resp
        return ws

    def close_socket(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close_socket()

    # sending -----------------------------------------------------------------

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(encode_frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text)

    def send_close(self, code=None, reason=b""):
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    # receiving ---------------------------------------------------------------

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            if self.eof:
                raise Closed("EOF with %d bytes buffered, %d needed" % (len(self.buf), n))
            chunk = _recv_some(self.sock, deadline)
            if not chunk:
                self.eof = True
                raise Closed("EOF with %d bytes buffered, %d needed" % (len(self.buf), n))
            self.buf += chunk

    def recv_frame(self, timeout=DEFAULT_TIMEOUT):
        """The next frame from the server. Checks what RFC 6455 demands of a
        server's frames: unmasked (section 5.1), no RSV bits without extensions
        (5.2), known opcodes, control frames short and unfragmented (5.5)."""
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF
        masked, n = bool(b1 & 0x80), b1 & 0x7F
        pos = 2
        if n == 126:
            self._fill(4, deadline)
            n = struct.unpack("!H", bytes(self.buf[2:4]))[0]
            pos = 4
        elif n == 127:
            self._fill(10, deadline)
            n = struct.unpack("!Q", bytes(self.buf[2:10]))[0]
            pos = 10
        if masked:
            raise ProtocolViolation("server sent a masked frame")
        if rsv:
            raise ProtocolViolation("server set RSV bits: %d" % rsv)
        if opcode not in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG):
            raise ProtocolViolation("server sent reserved opcode 0x%x" % opcode)
        if opcode >= 8 and (n > 125 or not fin):
            raise ProtocolViolation("server sent a bad control frame (len %d, fin %s)" % (n, fin))
        self._fill(pos + n, deadline)
        payload = bytes(self.buf[pos:pos + n])
        del self.buf[:pos + n]
        return Frame(fin, rsv, opcode, payload)

    def recv_message(self, timeout=DEFAULT_TIMEOUT, on_control=None):
        """Next data message as (opcode, payload), reassembling fragments.
        Pings and pongs go to `on_control` (or are skipped); a close frame
        raises AssertionError carrying it."""
        deadline = time.monotonic() + timeout
        opcode, parts = None, []
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode in (OP_PING, OP_PONG):
                if on_control:
                    on_control(f)
                continue
            if f.opcode == OP_CLOSE:
                raise AssertionError("unexpected close frame: code %r reason %r"
                                     % (f.close_code, f.close_reason))
            if opcode is None:
                if f.opcode == OP_CONT:
                    raise ProtocolViolation("server sent a continuation with nothing to continue")
                opcode = f.opcode
            elif f.opcode != OP_CONT:
                raise ProtocolViolation("server interleaved a new message into a fragmented one")
            parts.append(f.payload)
            if f.fin:
                return opcode, b"".join(parts)

    def expect_pong(self, payload, timeout=DEFAULT_TIMEOUT, data=None):
        """Wait for a pong with `payload`, skipping data frames (appended to
        `data` if given). Fails on a close frame."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode == OP_PONG:
                if f.payload != payload:
                    raise AssertionError("pong payload %r, expected %r" % (f.payload, payload))
                return
            if f.opcode == OP_CLOSE:
                raise AssertionError("close frame (code %r, reason %r) while waiting for a pong"
                                     % (f.close_code, f.close_reason))
            if data is not None and f.opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                data.append(f)

    def recv_close(self, timeout=DEFAULT_TIMEOUT):
        """Skip data and ping/pong frames until a close frame; return it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            except Closed as e:
                raise AssertionError("connection ended without a close frame (%s)" % e)
            except socket.timeout:
                raise AssertionError("no close frame within %.0f s" % timeout)
            if f.opcode == OP_CLOSE:
                if len(f.payload) == 1:
                    raise ProtocolViolation("server close frame with a 1-byte payload")
                if len(f.payload) >= 2:
                    try:
                        f.close_reason.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ProtocolViolation("server close reason is not UTF-8: %r" % f.payload)
                return f

    def expect_eof(self, timeout=DEFAULT_TIMEOUT):
        """After a close frame: nothing more may arrive, and TCP must end."""
        deadline = time.monotonic() + timeout
        while True:
            if self.buf:
                raise ProtocolViolation("bytes after the close frame: %r" % bytes(self.buf[:40]))
            if self.eof:
                return
            try:
                chunk = _recv_some(self.sock, deadline)
            except socket.timeout:
                raise AssertionError("server did not close the TCP connection within %.0f s"
                                     % timeout)
            if not chunk:
                self.eof = True
                return
            self.buf += chunk

    def expect_close(self, code, timeout=DEFAULT_TIMEOUT):
        """The server must send close with `code` (an int or a tuple of
        acceptable codes) and then end the TCP connection."""
        f = self.recv_close(timeout)
        codes = code if isinstance(code, tuple) else (code,)
        if f.close_code not in codes:
            raise AssertionError("close code %r (reason %r), expected %s"
                                 % (f.close_code, f.close_reason, " or ".join(map(str, codes))))
        self.expect_eof(timeout)
        return f

    def wait_ended(self, timeout=DEFAULT_TIMEOUT):
        """Read and discard until EOF or reset; True if it ended within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                chunk = _recv_some(self.sock, deadline)
            except socket.timeout:
                return False
            if not chunk:
                self.eof = True
                return True
