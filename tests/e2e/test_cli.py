"""The command line (SPEC §3): --version, --help, --once, bad flags, a port in
use, options from the environment."""

import asyncio
import json
import re
import socket
import subprocess

import pytest
import websockets

import e2e_util
from e2e_util import parse_ts, run_cli


def test_version_prints_a_version_and_exits_0():
    r = run_cli(["--version"])
    assert r.returncode == 0, r.stderr
    assert re.search(r"\d+\.\d+", r.stdout + r.stderr), (r.stdout, r.stderr)


def test_help_exits_0_and_lists_the_options():
    r = run_cli(["--help"])
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    for flag in ("--listen", "--tick", "--disk", "--once"):
        assert flag in text, "--help does not mention %s:\n%s" % (flag, text)


@pytest.mark.parametrize("args,flag", [
    (["--tick", "0"], "--tick"),
    (["--tick", "abc"], "--tick"),
    (["--tick", "61"], "--tick"),
    (["--tick", "0.05"], "--tick"),
    (["--tick", "-1"], "--tick"),
    (["--tick"], "--tick"),
    (["--listen", "nonsense"], "--listen"),
    (["--listen", "127.0.0.1:99999"], "--listen"),
    (["--listen", "127.0.0.1:"], "--listen"),
    (["--max-clients", "abc"], "--max-clients"),
    (["--max-backlog", "-5"], "--max-backlog"),
    (["--max-message", "0"], "--max-message"),
    (["--max-message", "16777217"], "--max-message"),
    (["--max-message", "abc"], "--max-message"),
    (["--disk", ""], "--disk"),
    (["--alert", "queue>5"], "--alert"),
    (["--bogus"], "--bogus"),
])
def test_bad_flag_exits_2_naming_the_flag(args, flag):
    r = run_cli(args)
    assert r.returncode == 2, "exit %d for %s\nstdout: %s\nstderr: %s" % (
        r.returncode, args, r.stdout, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert lines, "no message on stderr for %s" % args
    assert any(flag in l for l in lines), "stderr does not name %s:\n%s" % (flag, r.stderr)
    assert "usage" in r.stderr.lower(), "no usage on stderr:\n%s" % r.stderr


def test_bad_environment_value_exits_2():
    r = run_cli([], env={"METRICS_AGENT_TICK": "abc",
                         "METRICS_AGENT_LISTEN": "127.0.0.1:%d" % e2e_util.free_port()})
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "TICK" in r.stderr.upper(), r.stderr


def test_port_in_use_exits_1_with_a_clear_message():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(8)
        port = holder.getsockname()[1]
        try:
            r = run_cli(["--listen", "127.0.0.1:%d" % port], timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("the agent kept running although port %d is taken" % port)
    assert r.returncode == 1, (r.returncode, r.stderr)
    msg = r.stderr.lower()
    assert str(port) in msg or "in use" in msg, r.stderr


def _find(obj, key):
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = _find(v, key)
            if found is not None:
                return found
    return None


def test_once_prints_one_json_snapshot_and_exits_0():
    mem_before = e2e_util.memory_percent()
    r = run_cli(["--once"], timeout=30)
    mem_after = e2e_util.memory_percent()
    assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)
    assert isinstance(snap, dict)
    data = snap.get("data", snap)
    assert "cpu" in data and "memory" in data, sorted(data)
    # The memory share agrees with /proc/meminfo read before and after.
    mem = data["memory"]
    pct = mem.get("usage_percent") if isinstance(mem, dict) else mem
    assert isinstance(pct, (int, float)), mem
    lo, hi = sorted((mem_before, mem_after))
    assert lo - 2.0 <= pct <= hi + 2.0, (pct, mem_before, mem_after)
    cpu = data["cpu"]
    cpct = cpu.get("usage_percent") if isinstance(cpu, dict) else cpu
    assert isinstance(cpct, (int, float)) and 0.0 <= cpct <= 100.0, cpu


async def _tick_stamps(port, n=4):
    async with websockets.connect("ws://127.0.0.1:%d/api/system/metrics" % port,
                                  open_timeout=10, ping_interval=None) as ws:
        stamps = []
        while len(stamps) < n:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            stamps.append(parse_ts(msg["timestamp"]))
    # The first message is the latest snapshot, sent at once; later ones follow the tick.
    return stamps[1:]


def test_environment_variables_set_listen_and_tick(spawn):
    port = e2e_util.free_port()
    p = e2e_util.ServerProcess(
        [e2e_util.require_binary(e2e_util.agent_bin())], port,
        env={"METRICS_AGENT_LISTEN": "127.0.0.1:%d" % port, "METRICS_AGENT_TICK": "0.5"},
        name="metrics-agent")
    spawn.adopt(p).wait_ready()
    e2e_util.assert_spaced(asyncio.run(_tick_stamps(port, 5)), 500_000)  # METRICS_AGENT_TICK=0.5


def test_command_line_overrides_environment(spawn):
    agent = spawn.agent("--tick", "1", env={"METRICS_AGENT_TICK": "0.5"})
    e2e_util.assert_spaced(asyncio.run(_tick_stamps(agent.port, 4)), 1_000_000)  # --tick 1 wins


def test_max_message_limits_what_a_client_may_send(spawn):
    agent = spawn.agent("--max-message", "1000", env={"METRICS_AGENT_MAX_MESSAGE": "5"})

    async def go(size):
        async with websockets.connect("ws://127.0.0.1:%d/api/ws/metrics" % agent.port,
                                      open_timeout=10, ping_interval=None, max_size=None) as ws:
            await asyncio.wait_for(ws.recv(), 10)  # the latest snapshot
            await ws.send(json.dumps({"type": "ping", "pad": "x" * size}))
            try:
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if msg.get("type") == "pong":
                        return "pong"
            except websockets.ConnectionClosed as e:
                return e.rcvd.code if e.rcvd else None
    assert asyncio.run(go(100)) == "pong"   # the flag wins over the environment
    assert asyncio.run(go(2000)) == 1009
