"""/metrics next to Debian's prometheus-node-exporter on this machine: for
every family the agent takes from node_exporter (issue: a drop-in for its
dashboards), node_exporter's series, where it exports them here, must be the
agent's too, with the same label sets, the same type and the same values
within a tolerance that suits each family:

- counters must lie between the agent's scrape before and its scrape after
  node_exporter's (each exporter reads the kernel once per scrape);
- static values (MemTotal, MTU, uname, os-release, ...) must be equal;
- gauges that move must be close.

Both exporters read the same textfile directory, one file of which is
malformed; both must expose the good file's samples and flag the error."""

import http.client
import math
import os
import re
import time

import pytest

import e2e_util

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"

# The families compared: exact names, or prefixes ending in '_'.
FAMILIES = [
    "node_memory_", "node_vmstat_", "node_netstat_", "node_sockstat_",
    "node_softnet_processed_total", "node_softnet_dropped_total", "node_softnet_times_squeezed_total",
    "node_pressure_", "node_timex_",
    "node_context_switches_total", "node_intr_total", "node_forks_total", "node_procs_running",
    "node_procs_blocked", "node_boot_time_seconds",
    "node_entropy_available_bits", "node_entropy_pool_size_bits", "node_filefd_allocated", "node_filefd_maximum",
    "node_arp_entries", "node_nf_conntrack_entries", "node_nf_conntrack_entries_limit",
    "node_network_receive_", "node_network_transmit_", "node_network_mtu_bytes", "node_network_speed_bytes",
    "node_network_carrier", "node_network_up", "node_network_info",
    "node_disk_", "node_filesystem_", "node_hwmon_temp_celsius", "node_hwmon_chip_names", "node_thermal_zone_temp",
    "process_", "node_scrape_collector_duration_seconds", "node_scrape_collector_success",
    "node_uname_info", "node_os_info", "node_textfile_mtime_seconds", "node_textfile_scrape_error",
    "textfile_job_",
]

# Series that node_exporter 1.5 reads from elsewhere and the agent leaves out
# (README, "node_exporter's families"): rtnetlink's rx_nohandler, the udev
# database behind node_disk_info, and the transmit queue length.
NOT_COMPARED = {"node_network_receive_nohandler_total", "node_network_transmit_queue_length", "node_disk_info"}

# Values that belong to each exporter's own process, or to the moment of
# its scrape: compared by presence, labels and type only.
OWN = re.compile(r"^(process_|node_procs_(running|blocked)$"
                 r"|node_timex_(offset|frequency_adjustment|maxerror|estimated_error))")

# Label sets that differ on purpose: node_exporter runs collectors the agent
# does not have, so only the agent's collectors are compared.
SUBSET_LABELS = {"node_scrape_collector_success", "node_scrape_collector_duration_seconds"}

# Static values: equal.
EXACT = re.compile(r"^(node_memory_(MemTotal|SwapTotal|HugePages_Total|Hugepagesize|VmallocTotal)(_bytes)?"
                   r"|node_network_(mtu_bytes|speed_bytes|info|up|carrier)|node_uname_info|node_os_info"
                   r"|node_entropy_pool_size_bits|node_filefd_maximum|node_nf_conntrack_entries_limit"
                   r"|node_textfile_.*|textfile_job_.*|node_timex_(status|tick_seconds|loop_time_constant"
                   r"|tai_offset_seconds|sync_status|pps_.*)|node_filesystem_(size_bytes|files|readonly"
                   r"|device_error))$")

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{family: (type, {labels-tuple: value})} from a text exposition."""
    types, fams = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            fams.setdefault(name, {})
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, "unparsable line %r" % line
        name, labels, value = m.group(1), m.group(3) or "", m.group(4)
        key = tuple(sorted(LABEL_RE.findall(labels)))
        fams.setdefault(name, {})[key] = float(value)
    return {n: (types.get(n, "untyped"), series) for n, series in fams.items()}


def wanted(name):
    if name in NOT_COMPARED:
        return False
    return any(name == f or (f.endswith("_") and name.startswith(f)) for f in FAMILIES)


def root_mount(path):
    """(device, type) of the last mount on / in a mounts file; None if unreadable."""
    try:
        with open(path) as f:
            root = None
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[1] == "/":
                    root = (fields[0], fields[2])
            return root
    except OSError:
        return None


def scrape(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        body = r.read().decode("utf-8")
        assert r.status == 200, (port, r.status, body[:300])
        return body
    finally:
        conn.close()


def tolerance(name, v, mem_total):
    if name.startswith("node_memory_"):
        return 0.02 * mem_total  # what the two processes and the page cache move between reads
    if name.startswith("node_sockstat_"):
        return 64 if not name.endswith("_bytes") else 64 * 4096  # the test's own sockets
    if name.startswith("node_netstat_Tcp_CurrEstab"):
        return 16
    return max(1e-6, 0.01 * abs(v))


ATTEMPTS = 4


def compare(before, theirs, after, same_mounts):
    """(families compared, {problem key: message}) for one set of scrapes:
    the agent's before and after node_exporter's."""
    mem_total = theirs["node_memory_MemTotal_bytes"][1][()]
    compared, problems = 0, {}
    for name, (typ, series) in sorted(theirs.items()):
        if not wanted(name):
            continue
        if not same_mounts and name.startswith("node_filesystem_"):
            continue
        if name not in after:
            problems[(name, "missing")] = "%s: missing" % name
            continue
        our_type, ours = after[name]
        if our_type != typ:
            problems[(name, "type")] = "%s: type %s, node_exporter's %s" % (name, our_type, typ)
        if name in SUBSET_LABELS:
            missing = set(ours) - set(series)
            if missing:
                problems[(name, "labels")] = ("%s: collectors node_exporter does not have: %s"
                                              % (name, sorted(missing)))
            continue
        if set(ours) != set(series):
            problems[(name, "labels")] = ("%s: label sets differ: agent only %s, node_exporter only %s"
                                          % (name, sorted(set(ours) - set(series)),
                                             sorted(set(series) - set(ours))))
            continue
        if OWN.match(name):
            compared += 1
            continue
        for labels, v in series.items():
            a0 = before.get(name, (None, {}))[1].get(labels, math.nan)
            a1 = ours[labels]
            if EXACT.match(name):
                ok = v == a1
            elif typ == "counter" or (name.startswith(("node_vmstat_", "node_netstat_"))
                                      and name not in ("node_netstat_Tcp_CurrEstab", "node_netstat_Ip_Forwarding")):
                # Monotonic: node_exporter read between the agent's two reads.
                slack = 1e-9 * max(abs(v), 1)
                ok = a0 - slack <= v <= a1 + slack
            else:
                tol = tolerance(name, v, mem_total)
                ok = min(a0, a1) - tol <= v <= max(a0, a1) + tol
            if not ok:
                problems[(name, labels)] = "%s%s: node_exporter %r, agent %r .. %r" % (name, dict(labels), v, a0, a1)
        compared += 1
    return compared, problems


def test_node_exporter_families_match(spawn, tmp_path):
    if not os.access(NODE_EXPORTER, os.X_OK):
        pytest.skip("not installed: %s (Debian package prometheus-node-exporter)" % NODE_EXPORTER)
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    (textfiles / "backup.prom").write_text(
        '# HELP textfile_job_last_success_seconds When the job last succeeded.\n'
        '# TYPE textfile_job_last_success_seconds gauge\n'
        'textfile_job_last_success_seconds{job="backup",host="a \\"b\\""} 1.7e+09\n'
        'textfile_job_runs_total 42\n')
    (textfiles / "broken.prom").write_text("textfile_job_broken{oops 1\n")

    agent = spawn.agent("--tick", "0.2", "--textfile-dir", str(textfiles))
    port = e2e_util.free_port()
    # Not given to `spawn`: node_exporter exits with status -15 on SIGTERM.
    ne = e2e_util.ServerProcess([NODE_EXPORTER, "--web.listen-address=127.0.0.1:%d" % port,
                                 "--collector.textfile.directory=%s" % textfiles], port, name="node_exporter")
    # node_exporter lists pid 1's mounts, the agent its own. They are the same
    # table except in a chroot that shares pid 1 with the host (an overlay
    # root made by hand), where the two lists cannot agree.
    same_mounts = root_mount("/proc/1/mounts") == root_mount("/proc/self/mounts")
    if not same_mounts:
        e2e_util.log("chroot beside pid 1: node_filesystem_* not compared")
    try:
        ne.wait_ready()
        time.sleep(0.5)
        # Host-wide gauges (open files, Committed_AS, ...) move with whatever
        # else runs on the machine, the other tests included: a process that
        # starts between two reads is no fault of the agent's. So the three
        # scrapes are taken again, up to ATTEMPTS times, and a problem counts
        # only if it is there every time. A wrong reading repeats; a
        # neighbour's burst does not.
        persistent, compared = None, 0
        for attempt in range(ATTEMPTS):
            before = parse(scrape(agent.port))
            time.sleep(0.2)
            theirs = parse(scrape(ne.port))
            time.sleep(0.2)
            after = parse(scrape(agent.port))
            compared, problems = compare(before, theirs, after, same_mounts)
            persistent = problems if persistent is None else {
                k: problems[k] for k in persistent if k in problems}
            if not persistent:
                break
            e2e_util.log("attempt %d: %d differences, %d seen every time:\n  %s"
                         % (attempt + 1, len(problems), len(persistent), "\n  ".join(sorted(problems.values()))))
    finally:
        ne.kill()

    e2e_util.log("compared %d families with node_exporter" % compared)
    assert not persistent, "\n".join(persistent.values())
    # The families the issue names that this machine has must all have been seen.
    for must in ("node_memory_Active_anon_bytes", "node_vmstat_pgfault", "node_netstat_Tcp_InSegs",
                 "node_sockstat_TCP_mem_bytes", "node_softnet_processed_total", "node_timex_sync_status",
                 "node_context_switches_total", "node_network_receive_multicast_total", "node_network_info",
                 "node_disk_io_time_weighted_seconds_total", "node_uname_info", "node_os_info",
                 "process_open_fds", "textfile_job_runs_total"):
        assert must in theirs and must in after, must
    assert after["node_textfile_scrape_error"][1][()] == 1
    assert compared >= 100, compared
