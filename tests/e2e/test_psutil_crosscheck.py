"""The rich stream's values against python3-psutil read over the same
intervals (CPU and memory within 2 points, per-core count equal,
partitions the same set as psutil's for real devices, network byte rates
within 5% under a generated loopback load).

psutil is read at each 1 s tick boundary, the instant the agent samples, so
both cover the same interval; the median over several ticks absorbs a tick
where the two readings straddle a burst of activity."""

import os
import statistics
import subprocess
import time

import psutil
import pytest

import agent_helpers as ah
from agent_helpers import RICH, StreamRecorder, now_us, parse_rich_ts, sleep_until_us, ws_url

SECOND = 1_000_000


@pytest.fixture(scope="module")
def agent(spawn_module):
    return spawn_module.agent("--tick", "1")


def sample_along(agent, metrics, ticks, read, before_first=None):
    """Read `read()` at `ticks`+1 consecutive whole-second boundaries while a
    client of /api/ws/metrics?interval=1 records. Returns ([(boundary_us,
    read_at_us, value)], {timestamp_us: message})."""
    rec = StreamRecorder(ws_url(agent.port, RICH, interval=1, metrics=metrics))
    try:
        first = (now_us() // SECOND + 1) * SECOND
        if first - now_us() < 300_000:
            first += SECOND
        if before_first:
            before_first()
        samples = []
        for k in range(ticks + 1):
            b = first + k * SECOND
            sleep_until_us(b + 2_000)
            samples.append((b, now_us(), read()))
        last = samples[-1][0]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if any(parse_rich_ts(m["timestamp"]) >= last for _, _, m in rec.snapshot()):
                break
            time.sleep(0.05)
    finally:
        msgs = rec.stop()
    by_ts = {}
    for _, _, m in msgs:
        if m.get("type") == "metrics":
            by_ts[parse_rich_ts(m["timestamp"])] = m
    return samples, by_ts


def paired(samples, by_ts):
    """(previous sample, sample, agent message) for each boundary after the first."""
    out = []
    missing = []
    for prev, cur in zip(samples, samples[1:]):
        m = by_ts.get(cur[0])
        if m is None:
            missing.append(cur[0])
            continue
        out.append((prev, cur, m))
    assert not missing, "no message for the ticks %s (have %s)" % (missing, sorted(by_ts))
    return out


def test_cpu_and_memory_percent_agree_with_psutil(agent):
    def read():
        return psutil.cpu_percent(interval=None), psutil.virtual_memory().percent

    samples, by_ts = sample_along(agent, "cpu,memory", 7, read)
    rows = []
    for prev, cur, m in paired(samples, by_ts):
        ah.check_rich(m, {"cpu", "memory"})
        rows.append((cur[2][0], m["data"]["cpu"]["usage_percent"],
                     cur[2][1], m["data"]["memory"]["usage_percent"]))
    table = "\n".join("psutil cpu %6.2f agent %6.2f | psutil mem %6.2f agent %6.2f" % r
                      for r in rows)
    ah.log(table)
    cpu_diff = statistics.median(abs(a - b) for a, b, _, _ in rows)
    mem_diff = statistics.median(abs(c - d) for _, _, c, d in rows)
    assert cpu_diff <= 2.0, "CPU %% differs by a median of %.2f points:\n%s" % (cpu_diff, table)
    assert mem_diff <= 2.0, "memory %% differs by a median of %.2f points:\n%s" % (mem_diff, table)


def _cpu_shares_session(agent, before_first=None):
    def read():
        return (psutil.cpu_times_percent(interval=None),
                psutil.cpu_percent(interval=None, percpu=True))

    samples, by_ts = sample_along(agent, "cpu", 5, read, before_first)
    rows = []
    for prev, cur, m in paired(samples, by_ts):
        rows.append((cur[2][0], cur[2][1], m["data"]["cpu"]))
    table = "\n".join("psutil %s %s | agent %s %s" % (
        {k: getattr(t, k) for k in ("user", "nice", "system", "irq", "softirq", "idle", "iowait",
                                    "steal")}, pc,
        {k: c[k] for k in ("user", "system", "idle", "iowait", "steal")}, c["per_core"])
        for t, pc, c in rows)
    ah.log(table)
    return rows, table


def _median_excess(pairs, rel, floor):
    """The median over (theirs, ours) pairs of how far |ours - theirs| exceeds
    rel * the larger plus floor: <= 0 when most ticks agree within it."""
    return statistics.median(abs(a - b) - (rel * max(a, b) + floor) for a, b in pairs)


def _median_diff(rows, key):
    return statistics.median(abs(c[key] - getattr(t, key)) for t, _, c in rows)


def test_idle_iowait_steal_and_per_core_agree_with_psutil(agent):
    rows, table = _cpu_shares_session(agent)
    for k in ("idle", "iowait", "steal"):
        d = _median_diff(rows, k)
        assert d <= 2.0, "cpu.%s differs from psutil by a median of %.2f points:\n%s" % (
            k, d, table)
    core_diffs = []
    for t, per_core, c in rows:
        assert len(per_core) == len(c["per_core"]), (per_core, c["per_core"])
        core_diffs.extend(abs(a - b) for a, b in zip(per_core, c["per_core"]))
    assert statistics.median(core_diffs) <= 2.0, "per-core %% differs by a median of %.2f " \
        "points:\n%s" % (statistics.median(core_diffs), table)


def test_user_and_system_shares_are_psutils(agent):
    """user and system as python3-psutil's cpu_times_percent() reports them
    (the reference for these fields): nice, irq and softirq are not inside.
    Loopback traffic (softirq time) and a niced busy loop make the
    difference visible."""
    procs = []

    def start_load():
        procs.append(ah.LoopbackLoad(30_000_000, 6.5))
        procs.append(subprocess.Popen(["/usr/bin/python3", "-c",
                                       "import os, time\nos.nice(10)\nend = time.time() + 6.5\n"
                                       "while time.time() < end: pass"]))
    try:
        rows, table = _cpu_shares_session(agent, start_load)
    finally:
        for p in procs:
            if isinstance(p, subprocess.Popen):
                p.kill()
                p.wait()
            else:
                p.stop()
    for k in ("user", "system"):
        d = _median_diff(rows, k)
        assert d <= 2.0, "cpu.%s differs from psutil by a median of %.2f points:\n%s" % (
            k, d, table)


def test_memory_and_load_figures_agree_with_psutil(agent):
    """Totals equal; the moving figures within 64 MiB (load within 0.3) by
    the median over 3 ticks, since whatever else runs on the machine can
    allocate between the agent's read and psutil's."""
    samples, by_ts = sample_along(agent, "cpu,memory", 3,
                                  lambda: (psutil.virtual_memory(), psutil.swap_memory(),
                                           psutil.getloadavg()))
    rows = [(m["data"], cur[2]) for _, cur, m in paired(samples, by_ts)]
    table = "\n".join("agent %s load %s | psutil %s %s load %s" % (d["memory"], d["cpu"]["load_avg"], vm, sw, load)
                      for d, (vm, sw, load) in rows)
    ah.log(table)
    for d, (vm, sw, _) in rows:
        assert d["memory"]["total_bytes"] == vm.total, (d["memory"], vm)
        assert d["memory"]["swap_total_bytes"] == sw.total, (d["memory"], sw)
    slack = 64 << 20
    for ours, theirs in (("available_bytes", lambda vm, sw: vm.available),
                         ("free_bytes", lambda vm, sw: vm.free),
                         ("buffers_bytes", lambda vm, sw: vm.buffers),
                         ("swap_used_bytes", lambda vm, sw: sw.used)):
        diff = statistics.median(abs(d["memory"][ours] - theirs(vm, sw)) for d, (vm, sw, _) in rows)
        assert diff <= slack, "memory.%s differs from psutil by a median of %d bytes:\n%s" % (
            ours, diff, table)
    for i in range(3):
        diff = statistics.median(abs(d["cpu"]["load_avg"][i] - load[i]) for d, (_, _, load) in rows)
        assert diff <= 0.3, "load_avg[%d] differs from psutil by a median of %.2f:\n%s" % (i, diff, table)


def test_frequencies_agree_with_psutil(agent):
    samples, by_ts = sample_along(agent, "cpu", 1, lambda: psutil.cpu_freq(percpu=True))
    freqs = by_ts[samples[-1][0]]["data"]["cpu"]["frequency_mhz"]
    theirs = [f for f in samples[-1][2] if f.current > 0]
    if not theirs:
        assert freqs == [], "psutil finds no CPU frequency, the agent lists %s" % freqs
        return
    assert len(freqs) == psutil.cpu_count(), "frequency_mhz %s for %d cores" % (
        freqs, psutil.cpu_count())
    lo = min(f.min if f.min > 0 else f.current for f in theirs)
    hi = max(f.max if f.max > 0 else f.current for f in theirs)
    for v in freqs:
        assert 0.75 * lo <= v <= 1.25 * hi, "frequency %s MHz outside psutil's %s..%s: %s" % (
            v, lo, hi, samples[-1][2])


def test_per_core_count_equals_psutil(agent):
    samples, by_ts = sample_along(agent, "cpu", 1, lambda: None)
    m = by_ts[samples[-1][0]]
    c = m["data"]["cpu"]
    assert len(c["per_core"]) == psutil.cpu_count() == c["core_count"], \
        "per_core %d, core_count %r, psutil.cpu_count() %d" % (len(c["per_core"]),
                                                               c["core_count"], psutil.cpu_count())
    assert len(psutil.cpu_percent(interval=None, percpu=True)) == len(c["per_core"])


def _real_partitions():
    """psutil's partitions on real block devices, one per device (the first
    mounted), as the agent lists them."""
    seen, out = set(), {}
    for p in psutil.disk_partitions(all=False):
        if not p.device.startswith("/dev/") or p.fstype in ah.PSEUDO_FSTYPES:
            continue
        if not os.path.exists(p.device):
            continue
        if p.device in seen:
            continue
        seen.add(p.device)
        out[p.mountpoint] = p
    # The --disk filesystem (/ here) is listed whatever its type: an overlay
    # root in a container, for one.
    if "/" not in out:
        for p in psutil.disk_partitions(all=True):
            if p.mountpoint == "/":
                out["/"] = p  # the last mount on / is the visible one
    return out


def test_partitions_are_psutils_real_devices(agent):
    samples, by_ts = sample_along(agent, "disk", 1, lambda: None)
    parts = by_ts[samples[-1][0]]["data"]["disk"]["partitions"]
    ours = _real_partitions()
    assert set(parts) == set(ours), \
        "agent partitions %s, psutil (real devices) %s" % (sorted(parts), sorted(ours))
    for mp, p in ours.items():
        a = parts[mp]
        assert a["fstype"] == p.fstype, (mp, a, p)
        assert os.path.realpath(a["device"]) == os.path.realpath(p.device), (mp, a, p)
        u = psutil.disk_usage(mp)
        assert a["total_bytes"] == u.total, "%s total %d, psutil %d" % (mp, a["total_bytes"], u.total)
        assert abs(a["used_bytes"] - u.used) <= max(64 << 20, 0.01 * u.total), (mp, a, u)
        assert abs(a["free_bytes"] - u.free) <= max(64 << 20, 0.01 * u.total), (mp, a, u)
        assert abs(a["usage_percent"] - u.percent) <= 1.0, (mp, a, u)


def test_network_rates_agree_with_psutil_under_loopback_load(agent):
    load = []

    def start_load():
        # ~50 MB/s through lo from just before the first boundary to past the last.
        load.append(ah.LoopbackLoad(50_000_000, 6.5))

    try:
        samples, by_ts = sample_along(agent, "network", 5,
                                      lambda: psutil.net_io_counters(pernic=True), start_load)
    finally:
        for l in load:
            l.stop()
    rows, pkt_rows, problems = [], [], []
    for prev, cur, m in paired(samples, by_ts):
        dt = (cur[1] - prev[1]) / 1e6
        n = m["data"]["network"]
        lo_a = n["interfaces"]["lo"]
        lo_recv = (cur[2]["lo"].bytes_recv - prev[2]["lo"].bytes_recv) / dt
        lo_sent = (cur[2]["lo"].bytes_sent - prev[2]["lo"].bytes_sent) / dt
        lo_pkts = (cur[2]["lo"].packets_recv - prev[2]["lo"].packets_recv) / dt
        pkt_rows.append((lo_pkts, lo_a["packets_recv_per_sec"]))
        if set(n["interfaces"]) != set(cur[2]):
            problems.append("interfaces %s, psutil %s" % (sorted(n["interfaces"]), sorted(cur[2])))
        others = [k for k in cur[2] if k != "lo" and k in prev[2]]
        tot_recv = sum(cur[2][k].bytes_recv - prev[2][k].bytes_recv for k in others) / dt
        tot_sent = sum(cur[2][k].bytes_sent - prev[2][k].bytes_sent for k in others) / dt
        rows.append((lo_recv, lo_a["bytes_recv_per_sec"], lo_sent, lo_a["bytes_sent_per_sec"],
                     tot_recv, n["bytes_recv_per_sec"], tot_sent, n["bytes_sent_per_sec"]))
    table = "\n".join("lo recv psutil %12.0f agent %12.0f | lo sent psutil %12.0f agent %12.0f | "
                      "non-lo recv %10.0f/%10.0f sent %10.0f/%10.0f" % r for r in rows)
    ah.log(table)
    assert statistics.median(r[0] for r in rows) > 20_000_000, \
        "the loopback load did not reach 20 MB/s; cannot compare:\n" + table
    rel_recv = statistics.median(abs(r[1] - r[0]) / r[0] for r in rows)
    rel_sent = statistics.median(abs(r[3] - r[2]) / r[2] for r in rows)
    assert rel_recv <= 0.05, "lo bytes_recv_per_sec off by a median %.1f%%:\n%s" % (
        100 * rel_recv, table)
    assert rel_sent <= 0.05, "lo bytes_sent_per_sec off by a median %.1f%%:\n%s" % (
        100 * rel_sent, table)
    # Per tick, medians: whatever else runs on the machine sends on
    # loopback too, and a burst can fall between the agent's read and psutil's.
    assert _median_excess(pkt_rows, 0.05, 5) <= 0, \
        "lo packets_recv_per_sec (psutil, agent) off by more than 5%%: %s" % pkt_rows
    # Totals leave loopback out: they follow the other interfaces, not lo's 50 MB/s.
    for i, j in ((4, 5), (6, 7)):
        assert _median_excess([(r[i], r[j]) for r in rows], 0.05, 100_000) <= 0, \
            "non-loopback totals off by more than 5% + 100 kB/s:\n" + table
    assert not problems, "\n".join(problems) + "\n" + table


def _whole_disk_of(path):
    """The block device name holding `path` (the whole disk, not a partition)."""
    st = os.stat(path)
    base = "/sys/dev/block/%d:%d" % (os.major(st.st_dev), os.minor(st.st_dev))
    if not os.path.exists(base):
        return None
    real = os.path.realpath(base)
    if os.path.exists(os.path.join(real, "partition")):
        real = os.path.dirname(real)
    return os.path.basename(real)


def test_disk_io_rates_agree_with_psutil_under_write_load(agent, tmp_path):
    disk = _whole_disk_of(str(tmp_path))
    if disk is None:
        pytest.skip("the test's temporary directory is not on a block device")
    load = []

    def start_load():
        load.append(ah.DiskWriteLoad(tmp_path / "io-load", 20_000_000, 5.5))

    try:
        samples, by_ts = sample_along(agent, "disk", 5,
                                      lambda: psutil.disk_io_counters(perdisk=True), start_load)
    finally:
        for l in load:
            l.stop()
    rows = []
    for prev, cur, m in paired(samples, by_ts):
        dt = (cur[1] - prev[1]) / 1e6
        devs = m["data"]["disk"]["io"]["devices"]
        assert disk in devs, "the disk %s under load is not in disk.io.devices: %s" % (
            disk, sorted(devs))
        w = (cur[2][disk].write_bytes - prev[2][disk].write_bytes) / dt
        r = (cur[2][disk].read_bytes - prev[2][disk].read_bytes) / dt
        wc = (cur[2][disk].write_count - prev[2][disk].write_count) / dt
        rows.append((w, devs[disk]["write_bytes_per_sec"], wc, devs[disk]["writes_per_sec"],
                     r, devs[disk]["read_bytes_per_sec"]))
    table = "\n".join("%s write psutil %12.0f agent %12.0f | writes/s %7.1f %7.1f | read %10.0f "
                      "%10.0f" % ((disk,) + r) for r in rows)
    ah.log(table)
    if statistics.median(r[0] for r in rows) < 5_000_000:
        pytest.skip("the write load did not reach the disk (%s):\n%s" % (disk, table))
    rel = statistics.median(abs(r[1] - r[0]) / max(r[0], 1.0) for r in rows)
    assert rel <= 0.05, "%s write_bytes_per_sec off by a median %.1f%%:\n%s" % (
        disk, 100 * rel, table)
    relc = statistics.median(abs(r[3] - r[2]) / max(r[2], 1.0) for r in rows)
    assert relc <= 0.05, "%s writes_per_sec off by a median %.1f%%:\n%s" % (
        disk, 100 * relc, table)
    # Reads come from the rest of the machine only: a median, as above.
    assert _median_excess([(r[4], r[5]) for r in rows], 0.05, 100_000) <= 0, \
        "%s read_bytes_per_sec disagrees:\n%s" % (disk, table)
