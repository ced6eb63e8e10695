"""The protocol layer in isolation: examples/echo_server (SPEC §8) echoes every
message byte for byte, text as text and binary as binary, reassembles
fragments, and enforces --max-message."""

import asyncio
import os
import random
import socket
import time

import pytest
import websockets

from rawws import OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWS, encode_frame


@pytest.fixture(scope="module")
def echo(spawn_module):
    return spawn_module.echo()


@pytest.fixture(scope="module")
def echo_1mib(spawn_module):
    return spawn_module.echo("--max-message", "1048576")


def ws_connect(port, path="/echo"):
    return websockets.connect("ws://127.0.0.1:%d%s" % (port, path), open_timeout=10,
                              ping_interval=None, max_size=None, close_timeout=5)


# --------------------------------------------------------------------------- #
# With an independent client library (python3-websockets)

def test_websockets_text_binary_and_empty_messages(echo):
    async def go():
        async with ws_connect(echo.port) as ws:
            for msg in ["hello", "ünïcødé ✓ 😀", "", b"\x00\x01\xff", b"", bytes(range(256)) * 200]:
                await ws.send(msg)
                back = await asyncio.wait_for(ws.recv(), 10)
                assert type(back) is type(msg), (msg[:20], back[:20])
                assert back == msg
    asyncio.run(go())


@pytest.mark.parametrize("path", ["/", "/echo", "/any/path?x=1&y=2", "/api/system/metrics"])
def test_any_path_echoes(echo, path):
    async def go():
        async with ws_connect(echo.port, path) as ws:
            await ws.send("path " + path)
            assert await asyncio.wait_for(ws.recv(), 10) == "path " + path
    asyncio.run(go())


def test_websockets_fragmented_send_is_reassembled(echo):
    parts = ["part%d-" % i for i in range(200)]

    async def go():
        async with ws_connect(echo.port) as ws:
            await ws.send(parts)  # a list is sent as one fragmented message
            assert await asyncio.wait_for(ws.recv(), 10) == "".join(parts)
            await ws.send([b"ab", b"", b"cd"])
            assert await asyncio.wait_for(ws.recv(), 10) == b"abcd"
    asyncio.run(go())


def test_websockets_one_mib_binary_with_max_message(echo_1mib):
    payload = os.urandom(1 << 20)

    async def go():
        async with ws_connect(echo_1mib.port) as ws:
            await ws.send(payload)
            assert await asyncio.wait_for(ws.recv(), 30) == payload
    asyncio.run(go())


def test_websockets_sees_1009_above_max_message(echo_1mib):
    async def go():
        async with ws_connect(echo_1mib.port) as ws:
            await ws.send(os.urandom((1 << 20) + 1))
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 30)
            return info.value
    exc = asyncio.run(go())
    assert exc.rcvd is not None and exc.rcvd.code == 1009, exc


def test_websockets_many_concurrent_clients(echo):
    async def one(i):
        async with ws_connect(echo.port) as ws:
            for j in range(20):
                msg = "client %d message %d" % (i, j)
                await ws.send(msg)
                assert await asyncio.wait_for(ws.recv(), 20) == msg

    async def go():
        await asyncio.gather(*[one(i) for i in range(40)])
    asyncio.run(go())


# --------------------------------------------------------------------------- #
# With the raw client: exact bytes on the wire

def test_sends_nothing_unsolicited(echo):
    with RawWS.connect(echo.port, "/echo") as ws:
        ws.sock.settimeout(1.5)
        with pytest.raises(socket.timeout):
            ws.sock.recv(1)


def test_opcode_and_bytes_preserved(echo):
    with RawWS.connect(echo.port, "/echo") as ws:
        ws.send_frame(OP_TEXT, "tëxt")
        assert ws.recv_message() == (OP_TEXT, "tëxt".encode())
        ws.send_frame(OP_BINARY, b"\x00bin\xff")
        assert ws.recv_message() == (OP_BINARY, b"\x00bin\xff")
        ws.send_frame(OP_BINARY, "tëxt".encode())
        assert ws.recv_message() == (OP_BINARY, "tëxt".encode())


def _fragments(data, count, empty_every=0):
    """Split data into exactly `count` pieces at random points (some empty)."""
    rng = random.Random(count)
    cuts = sorted(rng.randrange(0, len(data) + 1) for _ in range(count - 1))
    pieces = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
    if empty_every:
        for i in range(0, count - 1, empty_every):
            pieces[i + 1] = pieces[i] + pieces[i + 1]
            pieces[i] = b""
    assert b"".join(pieces) == data and len(pieces) == count
    return pieces


def _send_fragmented(ws, opcode, pieces):
    last = len(pieces) - 1
    ws.send_raw(b"".join(encode_frame(opcode if i == 0 else OP_CONT, p, fin=(i == last))
                         for i, p in enumerate(pieces)))


def test_text_message_in_10000_fragments_split_inside_characters(echo):
    data = ("aé€😀" * 4000).encode()  # 40,000 bytes; cuts fall inside characters
    with RawWS.connect(echo.port, "/echo") as ws:
        _send_fragmented(ws, OP_TEXT, _fragments(data, 10_000))
        assert ws.recv_message(timeout=30) == (OP_TEXT, data)


def test_binary_message_in_10000_fragments_some_empty(echo):
    data = os.urandom(50_000)
    with RawWS.connect(echo.port, "/echo") as ws:
        _send_fragmented(ws, OP_BINARY, _fragments(data, 10_000, empty_every=7))
        assert ws.recv_message(timeout=30) == (OP_BINARY, data)


def _sequence():
    """A small stream: a fragmented text with a ping in the middle, a binary
    message with a 16-bit length, a short text, and the replies expected."""
    key = b"\x11\x22\x33\x44"
    blob = bytes(range(256)) + b"tail" * 11
    stream = (encode_frame(OP_TEXT, "hé".encode(), fin=False, mask_key=key)
              + encode_frame(OP_PING, b"p", mask_key=key)
              + encode_frame(OP_CONT, "llo✓".encode(), fin=True, mask_key=key)
              + encode_frame(OP_BINARY, blob, mask_key=key)
              + encode_frame(OP_TEXT, b"end", mask_key=key))
    expected = [(OP_PONG, b"p"), (OP_TEXT, "héllo✓".encode()), (OP_BINARY, blob),
                (OP_TEXT, b"end")]
    return stream, expected


def _read_replies(ws, n):
    out = []
    while len(out) < n:
        f = ws.recv_frame(timeout=10)
        if f.opcode == OP_PONG:
            out.append((OP_PONG, f.payload))
            continue
        assert f.opcode != OP_PING
        opcode, parts = f.opcode, [f.payload]
        while not f.fin:
            f = ws.recv_frame(timeout=10)
            if f.opcode == OP_PONG:  # a pong may come between fragments
                out.append((OP_PONG, f.payload))
                continue
            assert f.opcode == OP_CONT, f
            parts.append(f.payload)
        out.append((opcode, b"".join(parts)))
    return out


def test_writes_split_at_every_byte_boundary(echo):
    stream, expected = _sequence()
    with RawWS.connect(echo.port, "/echo") as ws:
        for cut in range(1, len(stream)):
            ws.send_raw(stream[:cut])
            time.sleep(0.002)  # let the server read the first part on its own
            ws.send_raw(stream[cut:])
            assert _read_replies(ws, len(expected)) == expected, "split at byte %d" % cut


def test_one_byte_per_write(echo):
    stream, expected = _sequence()
    with RawWS.connect(echo.port, "/echo") as ws:
        for i in range(len(stream)):
            ws.send_raw(stream[i:i + 1])
            if i % 4 == 0:
                time.sleep(0.0005)
        assert _read_replies(ws, len(expected)) == expected


def test_many_frames_in_one_write(echo):
    with RawWS.connect(echo.port, "/echo") as ws:
        msgs = [("message %d " % i).encode() * (1 + i % 7) for i in range(2000)]
        ws.send_raw(b"".join(encode_frame(OP_TEXT if i % 2 else OP_BINARY, m)
                             for i, m in enumerate(msgs)))
        for i, m in enumerate(msgs):
            assert ws.recv_message(timeout=20) == (OP_TEXT if i % 2 else OP_BINARY, m), i


def test_default_limit_is_64_kib(echo):
    with RawWS.connect(echo.port, "/echo") as ws:
        data = os.urandom(65536)
        ws.send_frame(OP_BINARY, data)
        assert ws.recv_message(timeout=20) == (OP_BINARY, data)
        try:
            ws.send_frame(OP_BINARY, data + b"!")
        except (BrokenPipeError, ConnectionResetError):
            pass
        ws.expect_close(1009)


def test_max_message_1_mib_accepts_1_mib_and_refuses_one_byte_more(echo_1mib):
    data = os.urandom(1 << 20)
    with RawWS.connect(echo_1mib.port, "/echo") as ws:
        ws.send_frame(OP_BINARY, data)
        assert ws.recv_message(timeout=30) == (OP_BINARY, data)
        # The same size as text, in fragments.
        text = b"z" * (1 << 20)
        _send_fragmented(ws, OP_TEXT, [text[i:i + 65536] for i in range(0, len(text), 65536)])
        assert ws.recv_message(timeout=30) == (OP_TEXT, text)
    with RawWS.connect(echo_1mib.port, "/echo") as ws:
        try:
            ws.send_frame(OP_BINARY, data + b"!")
        except (BrokenPipeError, ConnectionResetError):
            pass
        ws.expect_close(1009)
    with RawWS.connect(echo_1mib.port, "/echo") as ws:
        try:
            _send_fragmented(ws, OP_BINARY, [data[:600_000], data[600_000:], b"!"])
        except (BrokenPipeError, ConnectionResetError):
            pass
        ws.expect_close(1009)
    echo_1mib.assert_alive()


def test_max_message_16_mib_is_allowed(spawn):
    server = spawn.echo("--max-message", str(16 << 20))
    data = os.urandom(3 << 20)
    with RawWS.connect(server.port, "/echo") as ws:
        ws.send_frame(OP_BINARY, data)
        assert ws.recv_message(timeout=60) == (OP_BINARY, data)


def test_clients_are_independent(echo):
    """A client stuck mid-frame does not hold up another one."""
    with RawWS.connect(echo.port, "/echo") as stuck, RawWS.connect(echo.port, "/echo") as ok:
        stuck.send_raw(encode_frame(OP_TEXT, b"x" * 1000)[:300])
        for i in range(50):
            ok.send_frame(OP_TEXT, "n%d" % i)
            assert ok.recv_message() == (OP_TEXT, ("n%d" % i).encode())
