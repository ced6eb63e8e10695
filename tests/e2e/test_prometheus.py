"""GET /metrics (SPEC §4) as Prometheus sees it: the exact Content-Type,
promtool's lint, and a real Prometheus server (Debian package prometheus)
scraping the agent every second on loopback, queried through its HTTP API and
compared with the agent's own JSON."""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse

import pytest

import e2e_util

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# node_exporter's own node_memory_* and node_netstat_* names (the kernel's
# field names) and its node_entropy_*_bits draw these notices from promtool
# too; nothing else is allowed.
CAMEL_NOTICE = re.compile(r"^(node_(memory|netstat)_\w+ metric names should be written in 'snake_case' not 'camelCase'"
                          r"|node_entropy_(available|pool_size)_bits use base unit \"bytes\" instead of \"bits\")$")


def need(path, package):
    if not os.access(path, os.X_OK):
        pytest.skip("not installed: %s (Debian package %s)" % (path, package))


def http_get(port, path, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()
    finally:
        conn.close()


def promtool_problems(text):
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    lines = (r.stdout + r.stderr).decode("utf-8", "replace").splitlines()
    problems = [l for l in lines if l.strip() and not CAMEL_NOTICE.match(l.strip())]
    return r.returncode, problems, lines


def test_content_type_and_promtool(spawn):
    need(PROMTOOL, "prometheus")
    agent = spawn.agent()
    time.sleep(1.2)  # at least one tick after the baseline
    status, ctype, body = http_get(agent.port, "/metrics")
    assert status == 200, (status, body[:300])
    assert ctype == CONTENT_TYPE, ctype
    text = body.decode("utf-8")
    for name in ("node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_load1",
                 "node_network_receive_bytes_total", "node_filesystem_avail_bytes",
                 "metrics_agent_build_info", "metrics_agent_messages_sent_total"):
        assert re.search(r"^# TYPE %s " % name, text, re.M), "no %s family:\n%s" % (name, text[:2000])
    rc, problems, lines = promtool_problems(body)
    assert not problems, "promtool check metrics:\n%s" % "\n".join(problems)
    # promtool exits 0 or, when it only has lint notices, 3; anything else is an error.
    assert rc in (0, 3), "promtool exit %d:\n%s" % (rc, "\n".join(lines))


def test_promtool_lint_can_fail():
    """The filter above lets through only the camelCase notice for node_memory_*."""
    need(PROMTOOL, "prometheus")
    bad = (b"# HELP app_latency_ms x\n# TYPE app_latency_ms gauge\napp_latency_ms 1\n"
           b"# HELP node_memory_MemFree_bytes x\n# TYPE node_memory_MemFree_bytes gauge\n"
           b"node_memory_MemFree_bytes 1\n")
    _, problems, lines = promtool_problems(bad)
    assert any("app_latency_ms" in p for p in problems), lines
    assert not any("node_memory_MemFree_bytes" in p for p in problems), problems


class NotReady(Exception):
    pass


class Prometheus:
    def __init__(self, target_port, tmp):
        self.port = e2e_util.free_port()
        self.config = os.path.join(tmp, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write("global:\n"
                    "  scrape_interval: 1s\n"
                    "  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "scrape_configs:\n"
                    "  - job_name: metrics-agent\n"
                    "    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % target_port)
        self.log = open(os.path.join(tmp, "prometheus.log"), "w+b")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + self.config,
             "--storage.tsdb.path=" + os.path.join(tmp, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-4000:]

    def query(self, expr):
        """The instant-vector result of `expr` as [(labels, float value)]."""
        status, _, body = http_get(self.port, "/api/v1/query?query=" + urllib.parse.quote(expr))
        if status == 503:
            raise NotReady(body[:200])  # Prometheus answers 503 until its storage is open
        assert status == 200, (expr, status, body[:500])
        doc = json.loads(body)
        assert doc["status"] == "success", doc
        return [(r["metric"], float(r["value"][1])) for r in doc["data"]["result"]]

    def wait_for(self, expr, pred, deadline, what):
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("prometheus exited with %d:\n%s" % (self.proc.returncode, self.log_text()))
            try:
                last = self.query(expr)
                if pred(last):
                    return last
            except (OSError, http.client.HTTPException, NotReady):
                pass  # still starting
            time.sleep(0.25)
        raise AssertionError("%s: no result for %s in time (last %r)\nprometheus log:\n%s"
                             % (what, expr, last, self.log_text()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def test_real_prometheus_scrapes_the_agent(spawn):
    need(PROMETHEUS, "prometheus")
    agent = spawn.agent()
    tmp = tempfile.mkdtemp(prefix="metrics-agent-prometheus-")
    prom = Prometheus(agent.port, tmp)
    try:
        deadline = time.monotonic() + 45
        up = prom.wait_for('up{job="metrics-agent"}', lambda r: r and r[0][1] == 1, deadline, "target up")
        assert up[0][0]["instance"] == "127.0.0.1:%d" % agent.port, up
        assert up[0][1] == 1

        rates = prom.wait_for("rate(node_cpu_seconds_total[5s])", lambda r: len(r) > 0, deadline, "cpu rate")
        modes = {m["mode"] for m, _ in rates}
        assert {"user", "system", "idle"} <= modes, modes
        for m, v in rates:
            # Seconds per second of one CPU in one mode: between 0 and 1 (a little
            # slack for the scrape timestamps' jitter).
            assert -1e-9 <= v <= 1.2, (m, v)
        # Each CPU spends one second per second across all its modes: the
        # counters are cumulative seconds (not jiffies, not rates). Over 10 s
        # of 1 s scrapes, the phase between the agent's tick and the scrape
        # moves the sum by at most a tick in ten.
        prom.wait_for("min(count_over_time(node_cpu_seconds_total[10s]))",
                      lambda r: r and r[0][1] >= 9, deadline, "10 s of samples")
        per_cpu = prom.query("sum by (cpu) (rate(node_cpu_seconds_total[10s]))")
        e2e_util.log("per-cpu sums of mode rates:", per_cpu)
        assert per_cpu, "no per-cpu sums"
        for m, v in per_cpu:
            assert 0.75 <= v <= 1.25, "cpu %s: modes add up to %.3f s/s" % (m.get("cpu"), v)

        # The agent's JSON against the range Prometheus scraped around it:
        # available memory is the whole machine's, and moves with whatever
        # else runs, so one pair of readings a second apart may differ.
        for attempt in range(3):
            status, _, body = http_get(agent.port, "/api/metrics/current")
            assert status == 200, body[:300]
            data = json.loads(body)["data"]
            agent_available = float(data["memory"]["available_bytes"])
            time.sleep(1.5)  # a scrape after the read
            lo = prom.wait_for("min_over_time(node_memory_MemAvailable_bytes[3s])", lambda r: len(r) == 1,
                               deadline, "memory")[0][1]
            hi = prom.query("max_over_time(node_memory_MemAvailable_bytes[3s])")[0][1]
            if 0.95 * lo <= agent_available <= 1.05 * hi:
                break
        assert 0.95 * lo <= agent_available <= 1.05 * hi, \
            "Prometheus says %d..%d bytes available, the agent's JSON %d" % (lo, hi, agent_available)

        # One node_cpu_seconds_total{cpu} per core of the agent's per_core list.
        cpus = prom.query("count(count by (cpu) (node_cpu_seconds_total))")
        assert cpus and int(cpus[0][1]) == len(data["cpu"]["per_core"]), (cpus, data["cpu"]["per_core"])

        # Prometheus's own view of the scrape: the body parsed with nothing dropped.
        samples = prom.query('scrape_samples_scraped{job="metrics-agent"}')
        assert samples and samples[0][1] > 50, samples
    finally:
        prom.stop()
        shutil.rmtree(tmp, ignore_errors=True)
