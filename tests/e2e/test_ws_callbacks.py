"""The generic server's WebSocket callbacks (SPEC §8), through
tests/ws_callbacks_server: an exception thrown by on_open, on_message or
on_close never ends the process; the offending connection is closed with
1011, the others are still served, and each failure is counted. on_close is
told the peer's close code, and WebSocket::request() keeps its headers."""

import json

import pytest

import e2e_util
from rawws import RawWS, http_get


def callbacks_bin():
    return e2e_util.build_dir() / "tests" / "ws_callbacks_server"


@pytest.fixture
def server(spawn):
    port = e2e_util.free_port()
    argv = [e2e_util.require_binary(callbacks_bin()), "--listen", "127.0.0.1:%d" % port]
    return spawn.adopt(e2e_util.ServerProcess(argv, port, None, "ws_callbacks_server")).wait_ready()


def stats(port):
    r = http_get(port, "/stats")
    assert r.status == 200, r
    return json.loads(r.body)


def echoes(ws, text):
    ws.send_text(text)
    assert ws.recv_message() == (1, text.encode())


def close_cleanly_after(ws, code):
    """The server sent close `code`: answer it, and the TCP connection ends."""
    f = ws.recv_close()
    assert f.close_code == code, (f.close_code, f.close_reason)
    ws.send_close(code)
    ws.expect_eof()


def watched(watcher):
    _, payload = watcher.recv_message()
    return payload.decode()


def test_on_message_exception_closes_that_connection_with_1011(server):
    with RawWS.connect(server.port, "/echo") as bystander, \
            RawWS.connect(server.port, "/watch") as watcher:
        for trigger in ("throw", "throw-other"):
            with RawWS.connect(server.port, "/throw/message") as offender:
                echoes(offender, "before")
                offender.send_text(trigger)
                close_cleanly_after(offender, 1011)
            assert watched(watcher) == "closed /throw/message 1011"
            echoes(bystander, "still served after " + trigger)
        server.assert_alive()
        assert stats(server.port)["callback_errors"] == 2
    log = server.stderr_text()
    assert "on_message callback failed" in log and "on_message fails on purpose" in log, log
    # Logged at most every 10 seconds, not once per failure.
    assert log.count("callback failed") == 1, log


def test_on_open_exception_closes_that_connection_with_1011(server):
    with RawWS.connect(server.port, "/echo") as bystander:
        with RawWS.connect(server.port, "/throw/open") as offender:
            close_cleanly_after(offender, 1011)
        echoes(bystander, "still served")
        assert stats(server.port)["callback_errors"] == 1
    assert "on_open fails on purpose" in server.stderr_text()


def test_on_close_exception_is_counted_and_serving_goes_on(server):
    with RawWS.connect(server.port, "/echo") as bystander, \
            RawWS.connect(server.port, "/watch") as watcher:
        for _ in range(3):
            with RawWS.connect(server.port, "/throw/close") as ws:
                echoes(ws, "hello")
                ws.send_close(1000)
                assert ws.recv_close().close_code == 1000
                ws.expect_eof()
            assert watched(watcher) == "closed /throw/close 1000"
        echoes(bystander, "still served")
        server.assert_alive()
        assert stats(server.port)["callback_errors"] == 3
    assert "on_close fails on purpose" in server.stderr_text()


def test_on_close_is_told_the_peers_close_code(server):
    with RawWS.connect(server.port, "/watch") as watcher:
        for code in (1000, 1001, 3000, 4321):
            with RawWS.connect(server.port, "/echo") as ws:
                ws.send_close(code, "bye")
                assert ws.recv_close().close_code == code
                ws.expect_eof()
            assert watched(watcher) == "closed /echo %d" % code
        # A close frame without a code: 1005 (RFC 6455 section 7.1.5).
        with RawWS.connect(server.port, "/echo") as ws:
            ws.send_close()
            ws.recv_close()
            ws.expect_eof()
        assert watched(watcher) == "closed /echo 1005"
        # No close frame at all: 1006.
        ws = RawWS.connect(server.port, "/echo")
        echoes(ws, "then gone")
        ws.close_socket()
        assert watched(watcher) == "closed /echo 1006"


def test_request_headers_outlive_on_open(server):
    extra = [("X-Test-Token", "abc 123"), ("User-Agent", "callbacks-test/1")]
    with RawWS.connect(server.port, "/echo?x=1", extra=extra) as ws:
        echoes(ws, "first")
        for name, value in (("x-test-token", "abc 123"), ("user-agent", "callbacks-test/1"),
                            ("sec-websocket-version", "13"), ("x-absent", "(none)")):
            ws.send_text("header " + name)
            assert ws.recv_message() == (1, value.encode())
