"""A step of the wall clock (SPEC §2: the tick is aligned to wall-clock
boundaries) neither freezes nor bursts the stream. The agent runs with a small
preloaded shim that adds a shift, read from a shared file, to what
clock_gettime(CLOCK_REALTIME) returns, so the step is the agent's alone; the
monotonic clock is left as it is, as NTP leaves it."""

import os
import shutil
import struct
import subprocess
import time

import pytest

from test_robustness import Observer

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile const int64_t* shift_us;

int clock_gettime(clockid_t id, struct timespec* ts) {
  static int (*real)(clockid_t, struct timespec*);
  if (!real) real = (int (*)(clockid_t, struct timespec*))dlsym(RTLD_NEXT, "clock_gettime");
  int r = real(id, ts);
  if (r != 0 || (id != CLOCK_REALTIME && id != CLOCK_REALTIME_COARSE)) return r;
  if (!shift_us) {
    const char* path = getenv("CLOCK_SHIFT_FILE");
    int fd = path ? open(path, O_RDONLY) : -1;
    if (fd < 0) return r;
    void* m = mmap(0, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return r;
    shift_us = (const int64_t*)m;
  }
  int64_t ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec + *shift_us * 1000;
  ts->tv_sec = ns / 1000000000;
  ts->tv_nsec = ns % 1000000000;
  return r;
}
"""


@pytest.fixture
def shifted(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to build the clock shim")
    src, lib = tmp_path / "shift.c", tmp_path / "libshift.so"
    src.write_text(SHIM)
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src), "-ldl"], check=True)
    shift = tmp_path / "shift"
    shift.write_bytes(struct.pack("<q", 0))
    fd = os.open(str(shift), os.O_RDWR)

    def set_shift(seconds):
        os.pwrite(fd, struct.pack("<q", int(seconds * 1e6)), 0)

    env = {"LD_PRELOAD": str(lib), "CLOCK_SHIFT_FILE": str(shift),
           "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
    yield env, set_shift
    os.close(fd)


def stamps_after(stamps, since):
    return [s for t, s in stamps if t >= since]


class TimedObserver(Observer):
    """Records (local arrival time, message timestamp) pairs."""

    def __init__(self, port):
        self.arrivals = []
        super().__init__(port)

    async def _main(self):
        import asyncio
        import json

        import websockets
        from e2e_util import parse_ts
        async with websockets.connect(self.url, open_timeout=10, ping_interval=None) as ws:
            self.ready.set()
            while not self._stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except asyncio.TimeoutError:
                    continue
                self.arrivals.append((time.monotonic(), parse_ts(json.loads(raw)["timestamp"])))


@pytest.mark.parametrize("step", [-60, 3600], ids=["back-a-minute", "forward-an-hour"])
def test_stream_keeps_ticking_through_a_clock_step(spawn, shifted, step):
    env, set_shift = shifted
    agent = spawn.agent("--tick", "0.5", env=env)
    obs = TimedObserver(agent.port)
    time.sleep(2.0)
    t_step = time.monotonic()
    set_shift(step)
    time.sleep(4.0)
    obs.stop()
    before = [s for t, s in obs.arrivals if t < t_step]
    after = [(t, s) for t, s in obs.arrivals if t >= t_step + 0.1]
    assert len(before) >= 3, obs.arrivals
    # Before the fix a step back froze the stream for the minute.
    assert len(after) >= 6, ("only %d messages in the 4 s after the wall clock stepped %+d s"
                             % (len(after), step))
    assert after[0][0] - t_step < 1.5, "the first message after the step came %.2f s later" % (
        after[0][0] - t_step)
    last = before[-1]
    new = [s for _, s in after if abs(s - last - step * 1_000_000) < 10_000_000]
    assert len(new) >= 6, "timestamps do not follow the step: %s after %s" % (after, last)
    # Re-aligned on the 0.5 s grid, one message per tick, no burst.
    assert all(s % 500_000 < 100_000 or s % 500_000 > 400_000 for s in new), new
    idx = [round(s / 500_000) for s in new]
    assert all(b == a + 1 for a, b in zip(idx, idx[1:])), new
    agent.assert_alive()
