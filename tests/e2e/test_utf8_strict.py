"""RFC 6455 section 8.1 over a real socket: invalid UTF-8 in the middle of a
text frame whose payload arrives in several TCP writes is answered with close
1007 at once, before the rest of the frame is sent (Autobahn cases 6.4.3 and
6.4.4). The agent and examples/echo_server share the decoder; both are tried."""

import time

import pytest

from rawws import OP_CONT, OP_TEXT, RawWS, encode_frame

MASK = b"\x5a\x17\xc3\x81"


@pytest.fixture(scope="module", params=["agent", "echo"])
def server(request, spawn_module):
    if request.param == "agent":
        return spawn_module.agent("--tick", "0.5"), "/api/system/metrics"
    return spawn_module.echo("--max-message", "1048576"), "/echo"


def chunks_with_bad_octet_in_the_second(frame, bad_at):
    """The frame in three pieces; the invalid octet at `bad_at` is in the second."""
    return [frame[:bad_at - 100], frame[bad_at - 100:bad_at + 100], frame[bad_at + 100:]]


def send_and_expect_close_before_the_third(server, frame, bad_at):
    proc, path = server
    first, second, third = chunks_with_bad_octet_in_the_second(frame, bad_at)
    assert third, "the frame must not be complete after the second chunk"
    with RawWS.connect(proc.port, path) as ws:
        ws.send_raw(first)
        time.sleep(0.2)
        ws.send_raw(second)
        t0 = time.monotonic()
        close = ws.recv_close(timeout=5)
        waited = time.monotonic() - t0
        assert close.close_code == 1007, close.close_code
        # The third chunk has not been sent: the close cannot have waited for it.
        print("close 1007 after %.1f ms" % (waited * 1000))
    proc.assert_alive()


# The agent accepts messages up to 64 KiB: a 32 KiB frame is one that arrives
# in many TCP segments.
def test_invalid_octet_inside_one_text_frame(server):
    payload = b"a" * 10000 + "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"z" * 22000
    frame = encode_frame(OP_TEXT, payload, mask_key=MASK)
    header = len(frame) - len(payload)
    send_and_expect_close_before_the_third(server, frame, header + 10000 + len("κόσμε".encode()) + 1)


def test_invalid_octet_inside_a_continuation_frame(server):
    start = encode_frame(OP_TEXT, b"abc\xe2\x82", fin=False, mask_key=MASK)
    payload = b"\xac" + b"b" * 8000 + b"\xed\xa0\x80" + b"c" * 20000  # U+D800, a surrogate
    cont = encode_frame(OP_CONT, payload, fin=True, mask_key=MASK)
    header = len(cont) - len(payload)
    send_and_expect_close_before_the_third(server, start + cont, len(start) + header + 8001 + 1)


def test_valid_text_in_many_writes_still_arrives(server):
    proc, path = server
    text = ("é€😀" * 3000).encode()
    frame = encode_frame(OP_TEXT, text, mask_key=MASK)
    with RawWS.connect(proc.port, path) as ws:
        for i in range(0, len(frame), 997):  # splits fall inside characters
            ws.send_raw(frame[i:i + 997])
            time.sleep(0.005)
        if path == "/echo":
            assert ws.recv_message(timeout=10) == (OP_TEXT, text)
        else:
            opcode, _ = ws.recv_message(timeout=10)  # the stream goes on
            assert opcode == OP_TEXT
        ws.send_close(1000)
        assert ws.recv_close(timeout=5).close_code == 1000
    proc.assert_alive()
