"""Fixtures for the end-to-end tests.

Each test gets servers on free loopback ports; they are stopped with SIGTERM
afterwards, and their stderr is printed (pytest shows it when a test fails).
A server that died during a test makes the test error at teardown.

The binaries come from METRICS_AGENT_BIN and METRICS_AGENT_BUILD (set by
ctest), else from build/cmake/ (or build/) in this repository.
"""

import sys

import pytest

import e2e_util


class Spawner:
    def __init__(self):
        self.servers = []

    def agent(self, *args, env=None, port=None):
        p = e2e_util.start_agent(*args, env=env, port=port, ready=False)
        self.servers.append(p)
        return p.wait_ready()

    def echo(self, *args, port=None):
        p = e2e_util.start_echo(*args, port=port)
        self.servers.append(p)
        return p

    def adopt(self, proc):
        self.servers.append(proc)
        return proc

    def finish(self):
        problems = []
        for p in self.servers:
            if p.stopped:
                continue
            if p.proc.poll() is not None:
                problems.append("%s died during the test (exit status %d): %s"
                                % (p.name, p.proc.returncode, p.describe()))
                continue
            try:
                rc, _ = p.stop()
                if rc != 0:
                    problems.append("%s exited with status %d after SIGTERM: %s" % (p.name, rc, p.describe()))
            except AssertionError as e:
                problems.append(str(e))
        for p in self.servers:
            # Under `make SANITIZE=1 test` and the sanitize/tsan flavors a
            # sanitizer report fails the test even when the server survived it.
            text = p.stderr_text()
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                           "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer"):
                if marker in text:
                    problems.append("%s: sanitizer report in stderr (%s)" % (p.name, marker))
        for p in self.servers:
            sys.stderr.write("---- %s (%s) stderr ----\n%s\n"
                             % (p.name, " ".join(p.argv), p.stderr_text()[-4000:]))
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def spawn():
    s = Spawner()
    yield s
    s.finish()


@pytest.fixture(scope="module")
def spawn_module():
    s = Spawner()
    yield s
    s.finish()
