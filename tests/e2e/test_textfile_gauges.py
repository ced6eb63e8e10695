"""--textfile-dir's samples as gauges: a sample without labels in DIR/*.prom
is in the rich stream's `custom`, follows the file, drives an alert rule,
and a malformed file blanks only its own samples."""

import asyncio
import os
import time

import e2e_util
from agent_helpers import ALERTS, RICH, check_rich, get_json, http, recv_json, recv_type, ws_connect, ws_url

TICK = 0.2


def write_prom(path, text):
    """Replace a .prom file at once, so the agent never reads it half written."""
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, str(path))


async def wait_custom(ws, pred, what, seconds=5):
    deadline = time.monotonic() + seconds
    custom = None
    while time.monotonic() < deadline:
        _, msg = await recv_json(ws)
        if msg.get("type") != "metrics":
            continue
        check_rich(msg)
        custom = msg["data"]["custom"]
        if pred(custom):
            return custom
    raise AssertionError("%s not seen; custom is %r" % (what, custom))


def test_textfile_samples_are_gauges_in_stream_and_alerts(spawn, tmp_path):
    d = tmp_path / "textfiles"
    d.mkdir()
    write_prom(d / "queue.prom", "# HELP batch_queue Jobs waiting.\n# TYPE batch_queue gauge\n"
                                 "batch_queue 10\nbatch_jobs{q=\"a\"} 3\n")
    write_prom(d / "backup.prom", "backup_ok 1\n")
    agent = spawn.agent("--tick", str(TICK), "--heartbeat", "0", "--textfile-dir", str(d),
                        "--alert", "batch_queue>50:0s:warning")

    async def go():
        async with ws_connect(ws_url(agent.port, RICH, interval=TICK)) as rich, \
                ws_connect(ws_url(agent.port, ALERTS)) as alerts:
            first = await wait_custom(rich, lambda c: c.get("batch_queue") == 10, "batch_queue 10")
            assert first == {"batch_queue": 10, "backup_ok": 1}, first
            write_prom(d / "queue.prom", "batch_queue 80\nbatch_jobs{q=\"a\"} 3\n")
            await wait_custom(rich, lambda c: c.get("batch_queue") == 80, "batch_queue 80")
            up = await recv_type(alerts, "alert", 3)
            # A malformed file blanks its own samples only.
            write_prom(d / "backup.prom", "backup_ok{broken 1\n")
            after = await wait_custom(rich, lambda c: c.get("backup_ok") is None, "backup_ok null")
            write_prom(d / "queue.prom", "batch_queue 5\nbatch_jobs{q=\"a\"} 3\n")
            down = await recv_type(alerts, "alert", 3)
            return up, after, down
    up, after, down = asyncio.run(go())
    assert up["state"] == "firing" and up["metric"] == "batch_queue" and up["value"] == 80, up
    assert after["batch_queue"] == 80, after
    assert down["state"] == "resolved" and down["value"] == 5, down
    assert get_json(agent.port, "/api/metrics/batch_queue?seconds=60"), "no history of batch_queue"
    # /metrics keeps the textfile's own family, once.
    r = http(agent.port, "GET", "/metrics")
    assert r.status == 200, r
    text = r.body.decode()
    assert text.count("# TYPE batch_queue ") == 1, text
    assert 'batch_jobs{q="a"} 3' in text, text


def test_alert_rule_needs_the_sample_at_start(tmp_path):
    d = tmp_path / "textfiles"
    d.mkdir()
    write_prom(d / "a.prom", "present 1\nlabelled{q=\"a\"} 1\n")
    for rule in ("absent>0", "labelled>0"):
        r = e2e_util.run_cli(["--listen", "127.0.0.1:%d" % e2e_util.free_port(), "--textfile-dir", str(d),
                              "--alert", rule], timeout=5)
        assert r.returncode == 2 and "--alert" in r.stderr, (rule, r.returncode, r.stderr)
