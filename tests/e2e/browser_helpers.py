"""Helpers for the dashboard tests in a real browser: headless Chromium driven
through chromedriver (Debian packages chromium, chromium-driver and
python3-selenium), reading the page's stable DOM hooks, collecting the
browser console, and checking a PNG screenshot."""

import os
import re
import shutil
import struct
import tempfile
import time
import zlib

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

CHROMIUM_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-dev-shm-usage", "--window-size=1400,900",
)

# What Chrome itself logs as SEVERE while the agent is away: failed
# connections, not errors of the page.
NETWORK_NOISE = (
    re.compile(r"ERR_CONNECTION_REFUSED"),
    re.compile(r"ERR_CONNECTION_RESET"),
    re.compile(r"ERR_EMPTY_RESPONSE"),
    re.compile(r"WebSocket connection to '[^']*' failed"),
    re.compile(r"Failed to load resource"),
)


def browser_available():
    return all(os.access(p, os.X_OK) for p in (CHROMIUM, CHROMEDRIVER))


def require_browser():
    """Skip when the browser or its driver is not installed (and only then)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.skip("not installed: %s (Debian packages chromium and chromium-driver)"
                    % ", ".join(missing))


class Browser:
    """Headless Chromium with a fresh profile. Console messages are gathered as
    they are read (chromedriver hands each one out once) in `console`, each
    tagged with the phase the test was in when it was read."""

    def __init__(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="metrics-agent-chromium-")
        self.driver_log = os.path.join(self.profile, "chromedriver.log")
        self.console = []
        self.phase = "start"
        self.driver = None
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in CHROMIUM_ARGS:
            opts.add_argument(a)
        opts.add_argument("--user-data-dir=" + os.path.join(self.profile, "profile"))
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # An explicit driver path: selenium never looks for (or downloads) one.
        service = Service(executable_path=CHROMEDRIVER, log_path=self.driver_log)
        try:
            self.driver = webdriver.Chrome(service=service, options=opts)
        except Exception:
            self.quit()
            raise
        self.driver.set_page_load_timeout(20)
        self.driver.set_script_timeout(10)

    def quit(self):
        try:
            if self.driver is not None:
                self.driver.quit()
        finally:
            self.driver = None
            shutil.rmtree(self.profile, ignore_errors=True)

    # page access ---------------------------------------------------------------

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def state(self):
        """The page's stable hooks, read in one round trip."""
        return self.js("""
            const $ = id => document.getElementById(id), b = document.body;
            const txt = id => { const e = $(id); return e ? e.textContent.trim() : null; };
            const pts = id => { const e = $(id); return e ? +e.dataset.points : null; };
            const lu = $('last-update'), login = $('login');
            return {
              updates: +(b.dataset.updates || 0), state: b.dataset.state || '',
              history: +(b.dataset.history || 0), status: txt('conn-status'),
              cpu: txt('cpu-value'), mem: txt('mem-value'), disk: txt('disk-value'),
              net: txt('net-value'), load: txt('load-value'), cpu_sub: txt('cpu-sub'),
              hostname: txt('hostname'), uptime: txt('uptime'),
              last_update: lu ? lu.textContent.trim() : null,
              last_update_dt: lu ? lu.getAttribute('datetime') : null,
              cpu_points: pts('cpu-chart'), mem_points: pts('mem-chart'), net_points: pts('net-chart'),
              login_shown: !!login && !login.hidden && login.getClientRects().length > 0,
              login_error: txt('login-error'),
              alerts_stream: txt('alerts-stream-text'),
              alerts: [...document.querySelectorAll('#alerts-list > li.alert')].map(li => ({
                state: li.dataset.state, level: li.dataset.level, text: li.textContent })),
            };""")

    def wait_for(self, what, pred, timeout):
        """Poll the page state until pred(state) is true; on timeout fail with
        the last state and the console, so the failure says what the page did."""
        deadline = time.monotonic() + timeout
        st = None
        while True:
            self.read_console()
            st = self.state()
            if pred(st):
                return st
            if time.monotonic() >= deadline:
                raise AssertionError("the page did not reach '%s' within %.0f s; last state: %r%s"
                                     % (what, timeout, st, self.console_text()))
            time.sleep(0.2)

    # console ---------------------------------------------------------------------

    def read_console(self):
        if self.driver is None:
            return self.console
        for e in self.driver.get_log("browser"):
            e = dict(e)
            e["phase"] = self.phase
            self.console.append(e)
        return self.console

    def console_text(self):
        if not self.console:
            return ""
        return "\nbrowser console:\n" + "\n".join(
            "  [%s] %s %s" % (e["phase"], e.get("level"), e.get("message")) for e in self.console)

    def severe(self, allow_network_noise_in=()):
        """SEVERE console entries that are page errors: everything SEVERE, except
        Chrome's own network messages in the phases named."""
        self.read_console()
        out = []
        for e in self.console:
            if e.get("level") != "SEVERE":
                continue
            msg = e.get("message", "")
            if e["phase"] in allow_network_noise_in and any(p.search(msg) for p in NETWORK_NOISE):
                continue
            out.append(e)
        return out


# screenshots ------------------------------------------------------------------

def png_summary(path):
    """(width, height, distinct byte values in the first 256 KiB of pixel data)
    of a PNG file, checking its signature and chunk structure (RFC 2083)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "%s is not a PNG file" % path
    pos, width, height, idat = 8, 0, 0, []
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
        pos += 12 + length
    assert width and height and idat, "%s has no IHDR or IDAT chunk" % path
    pixels = zlib.decompressobj().decompress(b"".join(idat), 256 * 1024)
    return width, height, len(set(pixels))
