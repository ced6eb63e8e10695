"""The dashboard (SPEC §7) in a real browser: headless Chromium loads the page
from a running agent, the test reads the page's documented DOM hooks to see
live values and charts, an alert that is firing, the values updating, the page
noticing that the agent went away and reconnecting by itself when it comes
back (without a reload), a screenshot saved into the build folder, and a
console free of page errors. With authentication on, the page asks for a user
name and password and goes live after signing in."""

import calendar
import json
import re
import socket
import signal
import subprocess
import time
import urllib.request

import browser_helpers as bh
import e2e_util

TICK = "0.5"
# memory > 0 % holds at once: a critical alert is firing from the first tick.
AGENT_ARGS = ("--tick", TICK, "--alert", "memory>0:0s:critical")

PCT_RE = re.compile(r"^(\d{1,3}(?:\.\d+)?)\s?%$")
ISO_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z$")


def pct(text, what):
    m = PCT_RE.match(text or "")
    assert m, "%s shows %r, not a percentage" % (what, text)
    v = float(m.group(1))
    assert 0.0 <= v <= 100.0, "%s shows %r, outside 0..100" % (what, text)
    return v


def iso_ms(ts):
    """'2026-01-19T14:30:05Z' / '...05.500Z' (UTC) -> milliseconds since the epoch."""
    m = ISO_RE.match(ts or "")
    assert m, "timestamp %r is not ISO 8601 UTC" % (ts,)
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    ms = int(((m.group(7) or "") + "000000")[:3])
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1000 + ms


def get_json(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return json.loads(r.read().decode("utf-8"))


def live(min_updates):
    return lambda s: s["status"] == "live" and s["state"] == "live" and s["updates"] >= min_updates


def shown_values(s):
    return (s["cpu"], s["cpu_sub"], s["mem"], s["disk"], s["net"], s["load"])


def test_dashboard_live_values_alerts_reconnect_screenshot(spawn):
    bh.require_browser()
    port = e2e_util.free_port()
    url = "http://127.0.0.1:%d/" % port
    spawn.agent(*AGENT_ARGS, port=port)
    browser = None
    try:
        browser = bh.Browser()
        browser.phase = "load"
        browser.driver.get(url)
        assert browser.driver.title, "the page has no title"
        # A marker that a reload would wipe: reconnection must happen in place.
        browser.js("window.__e2eNoReload = 'still here';")

        # 1. live, with numbers, charts, history and the firing alert -----------
        browser.phase = "live"
        browser.wait_for("live with 2 metric messages and history",
                         lambda s: live(2)(s) and s["history"] > 0 and s["cpu_points"] > 0, 20)
        mem_before = e2e_util.memory_percent()
        s = browser.state()
        mem_after = e2e_util.memory_percent()
        e2e_util.log("dashboard state when live:", s)
        pct(s["cpu"], "#cpu-value")
        mem = pct(s["mem"], "#mem-value")
        pct(s["disk"], "#disk-value")
        lo, hi = min(mem_before, mem_after), max(mem_before, mem_after)
        assert lo - 3.0 <= mem <= hi + 3.0, \
            "#mem-value %r disagrees with /proc/meminfo (%.2f%% .. %.2f%%)" % (s["mem"], lo, hi)
        assert s["cpu_points"] > 0 and s["mem_points"] > 0, \
            "charts hold no data: cpu %r, memory %r points" % (s["cpu_points"], s["mem_points"])
        assert s["net"] and "/s" in s["net"], "#net-value shows no rate: %r" % (s["net"],)
        assert s["load"] and re.search(r"\d", s["load"]), "#load-value shows %r" % (s["load"],)
        assert s["hostname"] == socket.gethostname(), "#hostname shows %r" % (s["hostname"],)
        assert s["uptime"] and re.search(r"\d", s["uptime"]), "#uptime shows %r" % (s["uptime"],)

        # The value shown is the agent's own for that instant: the memory
        # history point with the timestamp that #last-update shows.
        t_shown = iso_ms(s["last_update_dt"])
        hist = get_json(port, "/api/metrics/memory?seconds=60")["points"]
        same = [p["value"] for p in hist if iso_ms(p["timestamp"]) == t_shown]
        assert same, "no memory history point at %s (#last-update); history: %r" \
            % (s["last_update_dt"], hist[-6:])
        # The stream rounds to 2 decimals and the tile to 1: 0.005 + 0.05 apart at most.
        assert abs(same[0] - mem) <= 0.056, \
            "#mem-value %r but the agent's memory at %s was %r" % (s["mem"], s["last_update_dt"], same[0])

        s = browser.wait_for(
            "the firing memory alert listed in #alerts-list",
            lambda s: any(a["state"] == "firing" and a["level"] == "critical" and "memory" in a["text"]
                          for a in s["alerts"]), 10)

        # 2. values update live ------------------------------------------------------
        s1 = browser.state()
        s2 = browser.wait_for(
            "2 more metric messages and a newer #last-update",
            lambda s: s["updates"] >= s1["updates"] + 2 and s["last_update_dt"] != s1["last_update_dt"], 15)
        assert iso_ms(s2["last_update_dt"]) > iso_ms(s1["last_update_dt"]), \
            "#last-update went back: %r -> %r" % (s1["last_update_dt"], s2["last_update_dt"])
        s2 = browser.wait_for("a displayed value changing",
                              lambda s: shown_values(s) != shown_values(s1), 15)
        pct(s2["cpu"], "#cpu-value")
        pct(s2["mem"], "#mem-value")
        s2 = browser.wait_for("the CPU chart growing", lambda s: s["cpu_points"] > s1["cpu_points"], 10)

        severe = browser.severe()
        assert not severe, "page errors in the console while live:%s" % browser.console_text()

        # 3. the agent goes away and comes back on the same port, twice: stopped
        # (SIGTERM, close 1001) and killed (SIGKILL, connections just drop) ---------
        for sig in (signal.SIGTERM, signal.SIGKILL):
            name = signal.Signals(sig).name
            agent = spawn.servers[-1]
            browser.read_console()
            browser.phase = "outage " + name
            rc, elapsed = agent.stop(sig)
            if sig == signal.SIGTERM:
                assert rc == 0, "agent exit status %d after SIGTERM: %s" % (rc, agent.describe())
                assert elapsed < 1.0, \
                    "agent took %.2f s to exit after SIGTERM with a browser connected" % elapsed
            s = browser.wait_for("not live once the agent is gone (%s)" % name,
                                 lambda s: s["status"] != "live" and s["state"] != "live", 10)
            e2e_util.log("dashboard state during the outage (%s):" % name, s)
            assert "reconnect" in s["status"] or "connecting" in s["status"], \
                "#conn-status during the outage: %r" % s["status"]
            updates_down = s["updates"]
            time.sleep(2.0)  # long enough for some reconnection attempts to fail
            s = browser.state()
            assert s["updates"] == updates_down, "metric messages arrived with the agent gone: %r" % s
            assert s["status"] != "live", "#conn-status says live with the agent gone: %r" % s

            t_restart = time.monotonic()
            spawn.agent(*AGENT_ARGS, port=port)
            s = browser.wait_for("live again after the agent restarted (%s)" % name,
                                 lambda s: live(updates_down + 2)(s) and s["alerts_stream"] == "live", 30)
            e2e_util.log("reconnected %.1f s after the restart (%s)" % (time.monotonic() - t_restart, name))
            browser.read_console()
            browser.phase = "after " + name
            assert browser.js("return window.__e2eNoReload;") == "still here", \
                "the page was reloaded instead of reconnecting"
            s3 = browser.wait_for("metric messages still arriving",
                                  lambda s: s["updates"] >= updates_down + 4 and s["status"] == "live", 15)
            pct(s3["cpu"], "#cpu-value")
            pct(s3["mem"], "#mem-value")
            assert iso_ms(s3["last_update_dt"]) > iso_ms(s2["last_update_dt"]), \
                "#last-update did not move on after the reconnection: %r" % s3
            s2 = s3
            browser.wait_for("the firing memory alert listed after the restart",
                             lambda s: any(a["state"] == "firing" and "memory" in a["text"]
                                           for a in s["alerts"]), 10)

        # 4. screenshot into the build folder ----------------------------------------
        shot = e2e_util.build_dir() / "dashboard.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        if shot.exists():
            shot.unlink()
        assert browser.driver.save_screenshot(str(shot)), "saving the screenshot failed"
        size = shot.stat().st_size
        width, height, distinct = bh.png_summary(shot)
        e2e_util.log("screenshot %s: %dx%d, %d bytes" % (shot, width, height, size))
        assert width >= 1000 and height >= 600, "screenshot is only %dx%d" % (width, height)
        assert size > 20000 and distinct > 32, \
            "screenshot looks empty: %d bytes, %d distinct byte values" % (size, distinct)

        # 5. no page errors; only Chrome's network messages while the agent was away ---------
        severe = browser.severe(allow_network_noise_in=("outage SIGTERM", "outage SIGKILL"))
        e2e_util.log(browser.console_text())
        assert not severe, "page errors in the browser console:%s" % browser.console_text()
    finally:
        if browser is not None:
            browser.quit()


def test_dashboard_sign_in_when_authentication_is_on(spawn, tmp_path):
    bh.require_browser()
    secret = tmp_path / "jwt.secret"
    secret.write_text("browser-e2e-secret-4f1c2a9b7d\n")
    password = "dashboard pass 42"
    proc = subprocess.run([e2e_util.require_binary(e2e_util.agent_bin()), "hash-password"],
                          input=password + "\n", env=e2e_util.clean_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=30)
    assert proc.returncode == 0, "hash-password exited %d: %s" % (proc.returncode, proc.stderr)
    pw_hash = proc.stdout.strip()
    assert pw_hash and "\n" not in pw_hash, "hash-password printed %r" % proc.stdout

    agent = spawn.agent("--tick", TICK, "--jwt-secret-file", str(secret), "--user", "admin:" + pw_hash)
    browser = None
    try:
        browser = bh.Browser()
        browser.phase = "load"
        browser.driver.get("http://127.0.0.1:%d/" % agent.port)
        s = browser.wait_for("the sign-in form", lambda s: s["login_shown"] and s["state"] == "login", 20)
        assert s["updates"] == 0, "metrics arrived before signing in: %r" % s
        assert s["status"] != "live", "#conn-status says live before signing in: %r" % s

        from selenium.webdriver.common.by import By
        d = browser.driver

        def sign_in(user, pw):
            form = d.find_element(By.ID, "login-form")
            u = form.find_element(By.CSS_SELECTOR, "input[name=username]")
            p = form.find_element(By.CSS_SELECTOR, "input[type=password]")
            u.clear()
            u.send_keys(user)
            p.clear()
            p.send_keys(pw)
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

        browser.phase = "wrong-password"
        sign_in("admin", "not the password")
        s = browser.wait_for("an error for a wrong password", lambda s: bool(s["login_error"]), 10)
        assert s["login_shown"] and s["updates"] == 0 and s["status"] != "live", \
            "a wrong password got past the form: %r" % s
        time.sleep(0.5)
        browser.read_console()

        browser.phase = "signed-in"
        sign_in("admin", password)
        s = browser.wait_for("live after signing in",
                             lambda s: live(2)(s) and not s["login_shown"] and s["history"] > 0, 20)
        pct(s["cpu"], "#cpu-value")
        pct(s["mem"], "#mem-value")

        # The token is kept for the browser session: a reload goes live without the form.
        browser.phase = "reload"
        d.refresh()
        s = browser.wait_for("live after a reload", live(1), 20)
        assert not s["login_shown"], "the sign-in form came back after a reload: %r" % s

        severe = browser.severe(allow_network_noise_in=("wrong-password",))
        e2e_util.log(browser.console_text())
        assert not severe, "page errors in the browser console:%s" % browser.console_text()
    finally:
        if browser is not None:
            browser.quit()
