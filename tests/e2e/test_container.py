"""The agent inside containers: the --disk filesystem is reported whatever
its type (a tmpfs here, an overlay root in Docker) in the rich stream,
/metrics, history and on the dashboard; the container group measured in a
real cgroup v1 hierarchy with a CPU quota and a memory limit; and the host's
filesystems read through --host-root from a bind mount of /."""

import asyncio
import os
import re
import subprocess
import tempfile
import time
import urllib.request

import pytest

import agent_helpers as ah
import browser_helpers as bh
import e2e_util

TICK = "0.5"


def statvfs_usage(path):
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    return total, used, avail, 100.0 * used / (used + avail) if used + avail else 0.0


def fstype_of(mountpoint, table="/proc/self/mountinfo"):
    fstype = None
    with open(table) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if left.split()[4] == mountpoint:
                fstype = right.split()[0]
    return fstype


def first_message(port, path, pred=lambda m: True, timeout=15, **query):
    async def go():
        async with ah.ws_connect(ah.ws_url(port, path, **query)) as ws:
            m, _ = await ah.recv_until(ws, pred, timeout)
            return m
    return asyncio.run(go())


def prometheus_text(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        return r.read().decode("utf-8")


# --------------------------------------------------------------------------- #
# the --disk filesystem

def test_tmpfs_disk_is_reported_in_stream_metrics_and_history(spawn):
    if fstype_of("/dev/shm") != "tmpfs":
        pytest.skip("/dev/shm is not a tmpfs mount here")
    port = e2e_util.free_port()
    spawn.agent("--tick", TICK, "--disk", "/dev/shm", port=port)

    # 1. the rich stream
    m = first_message(port, ah.RICH, lambda m: m.get("type") == "metrics", interval=TICK)
    ah.check_disk(m["data"]["disk"], watched="/dev/shm")
    p = m["data"]["disk"]["partitions"]["/dev/shm"]
    total, _, _, pct = statvfs_usage("/dev/shm")
    assert p["fstype"] == "tmpfs" and p["total_bytes"] == total, p
    assert abs(p["usage_percent"] - pct) < 1.0, (p, pct)

    # 2. /metrics
    text = prometheus_text(port)
    series = re.findall(r'^node_filesystem_size_bytes\{([^}]*)\} (\S+)$', text, re.M)
    shm = [v for labels, v in series if 'mountpoint="/dev/shm"' in labels and 'fstype="tmpfs"' in labels]
    assert shm and float(shm[0]) == total, "no node_filesystem_size_bytes for /dev/shm: %r" % series
    assert re.search(r'^node_filesystem_avail_bytes\{[^}]*mountpoint="/dev/shm"[^}]*\} ', text, re.M), text

    # 3. history: the disk series is /dev/shm's usage
    deadline = time.monotonic() + 10
    while True:
        points = ah.get_json(port, "/api/metrics/disk?seconds=30")["points"]
        if points or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert points, "no disk history"
    assert abs(points[-1]["value"] - statvfs_usage("/dev/shm")[3]) < 1.0, (points[-1], statvfs_usage("/dev/shm"))


def test_tmpfs_disk_is_listed_on_the_page(spawn):
    if fstype_of("/dev/shm") != "tmpfs":
        pytest.skip("/dev/shm is not a tmpfs mount here")
    bh.require_browser()
    port = e2e_util.free_port()
    spawn.agent("--tick", TICK, "--disk", "/dev/shm", port=port)
    browser = bh.Browser()
    try:
        browser.driver.get("http://127.0.0.1:%d/" % port)
        browser.wait_for("a metrics message", lambda s: s["updates"] >= 1, 20)
        deadline = time.monotonic() + 10
        mounts = []
        while time.monotonic() < deadline:
            mounts = browser.js("return [...document.querySelectorAll('#disk-list .part')].map(e => e.dataset.mount)")
            if "/dev/shm" in mounts:
                break
            time.sleep(0.2)
        assert "/dev/shm" in mounts, "the page lists %r" % (mounts,)
        disk = browser.js("return document.getElementById('disk-value').textContent")
        assert re.match(r"^\d{1,3}(\.\d)?%$", disk), "#disk-value shows %r" % (disk,)
    finally:
        browser.quit()


# --------------------------------------------------------------------------- #
# a real cgroup (v1 controllers, as on this kind of machine)

CGROUP_V1 = "/sys/fs/cgroup"


class CgroupV1:
    """Child cgroups of the memory, cpu and cpuacct hierarchies, removed at the end."""

    def __init__(self, name):
        self.dirs = []
        for ctrl in ("memory", "cpu", "cpuacct"):
            root = os.path.join(CGROUP_V1, ctrl)
            if not os.path.isfile(os.path.join(root, "cgroup.procs")):
                continue
            if any(os.path.samefile(root, d) for d in self.parents()):
                continue  # cpu,cpuacct mounted together: one directory
            d = os.path.join(root, name)
            os.mkdir(d)
            self.dirs.append(d)

    def parents(self):
        return [os.path.dirname(d) for d in self.dirs]

    def has(self, filename):
        return any(os.path.exists(os.path.join(d, filename)) for d in self.dirs)

    def write(self, filename, value):
        for d in self.dirs:
            path = os.path.join(d, filename)
            if os.path.exists(path):
                with open(path, "w") as f:
                    f.write(str(value))
                return
        raise AssertionError("no cgroup has %s" % filename)

    def enter_argv(self, argv):
        """argv run inside every one of the cgroups."""
        script = "".join('echo $$ > "%s/cgroup.procs" && ' % d for d in self.dirs) + 'exec "$@"'
        return ["sh", "-c", script, "sh"] + list(argv)

    def remove(self):
        for d in self.dirs:
            for _ in range(50):
                try:
                    with open(os.path.join(d, "cgroup.procs")) as f:
                        pids = [int(x) for x in f.read().split()]
                    for pid in pids:
                        try:
                            os.kill(pid, 9)
                        except ProcessLookupError:
                            pass
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.1)


@pytest.fixture
def cgroup():
    if os.geteuid() != 0:
        pytest.skip("creating cgroups needs root")
    if not os.path.isfile(os.path.join(CGROUP_V1, "memory", "cgroup.procs")) or \
            not os.path.isfile(os.path.join(CGROUP_V1, "cpu", "cpu.cfs_quota_us")):
        pytest.skip("no cgroup v1 memory and cpu controllers under %s" % CGROUP_V1)
    try:
        cg = CgroupV1("metrics-agent-e2e-%d" % os.getpid())
    except OSError as e:
        pytest.skip("cannot create a child cgroup: %s" % e)
    try:
        if not (cg.has("memory.limit_in_bytes") and cg.has("cpu.cfs_quota_us") and cg.has("cpuacct.usage")):
            pytest.skip("the child cgroup lacks memory, cpu or cpuacct files")
        yield cg
    finally:
        cg.remove()


def test_cgroup_v1_limits_usage_and_scope(cgroup, spawn):
    cgroup.write("memory.limit_in_bytes", 256 << 20)
    cgroup.write("cpu.cfs_period_us", 100000)
    cgroup.write("cpu.cfs_quota_us", 50000)
    # The group's weight against the busy tasks of a loaded machine (other
    # tests, compilers): with the default 1024 it may get less than its half
    # core, and the quota would never bind.
    if cgroup.has("cpu.shares"):
        cgroup.write("cpu.shares", 65536)
    port = e2e_util.free_port()
    argv = cgroup.enter_argv([e2e_util.require_binary(e2e_util.agent_bin()), "--listen", "127.0.0.1:%d" % port,
                              "--tick", TICK, "--scope", "container"])
    spawn.adopt(e2e_util.ServerProcess(argv, port, None, "metrics-agent")).wait_ready()
    # A core spun from inside the cgroup: the quota of half a core binds.
    spinner = subprocess.Popen(cgroup.enter_argv(["/usr/bin/python3", "-c", "import time\nt=time.time()+60\nwhile time.time()<t: pass"]))
    try:
        time.sleep(2.0)  # a few ticks at full quota

        def saturated(m):
            c = m.get("data", {}).get("container")
            return m.get("type") == "metrics" and c and c["cpu_usage_percent"] is not None \
                and c["cpu_usage_percent"] > 80
        m = first_message(port, ah.RICH, saturated, timeout=20, interval=TICK)
        ah.check_rich(m)
        c = m["data"]["container"]
        assert c["cpu_limit_cores"] == 0.5, c
        assert c["memory_limit_bytes"] == 268435456, c
        assert c["cgroup_version"] == 1 and c["cgroup"].endswith("metrics-agent-e2e-%d" % os.getpid()), c
        assert 0 < c["memory_used_bytes"] <= 268435456, c
        assert c["cpu_usage_percent"] <= 100.0, c
        # Throttling depends on how busy the host is: the counter exists, that is all.
        assert c["cpu_throttled_seconds"] is not None and c["cpu_throttled_seconds"] >= 0, c

        # --scope container: the flat stream's cpu is the share of the quota.
        flat = first_message(port, ah.FLAT, lambda m: isinstance(m.get("cpu"), (int, float)) and m["cpu"] > 80)
        assert flat["cpu"] <= 100.0 and "error" not in flat, flat
        # ...and its memory is the working set against the 256 MiB limit.
        assert abs(flat["memory"] - c["memory_usage_percent"]) < 2.0, (flat, c)

        # /metrics with cAdvisor's names
        text = prometheus_text(port)
        for name, want in (("container_spec_memory_limit_bytes", 268435456.0),
                           ("container_spec_cpu_quota", 50000.0), ("container_spec_cpu_period", 100000.0)):
            got = re.search(r'^%s\{id="[^"]*"\} (\S+)$' % name, text, re.M)
            assert got and float(got.group(1)) == want, "%s: %r" % (name, got and got.group(0))
        usage = re.search(r'^container_cpu_usage_seconds_total\{id="[^"]*"\} (\S+)$', text, re.M)
        assert usage and float(usage.group(1)) > 0.5, usage and usage.group(0)
        ws = re.search(r'^container_memory_working_set_bytes\{id="[^"]*"\} (\S+)$', text, re.M)
        assert ws and 0 < float(ws.group(1)) <= 268435456, ws and ws.group(0)

        # The dashboard shows the container beside the host.
        if bh.browser_available():
            browser = bh.Browser()
            try:
                browser.driver.get("http://127.0.0.1:%d/" % port)
                browser.wait_for("a metrics message", lambda s: s["updates"] >= 1, 20)
                shown = browser.js("return [document.getElementById('tile-ccpu').hidden,"
                                   " document.getElementById('ccpu-value').textContent,"
                                   " document.getElementById('cmem-sub').textContent]")
                assert shown[0] is False and re.match(r"^\d{1,3}(\.\d)?%$", shown[1]), shown
                assert "256" in shown[2], "#cmem-sub %r does not show the 256 MiB limit" % shown[2]
            finally:
                browser.quit()
    finally:
        spinner.kill()
        spinner.wait()


def test_outside_a_limited_cgroup_the_group_is_null(spawn):
    agent = spawn.agent("--tick", TICK)
    m = first_message(agent.port, ah.RICH, lambda m: m.get("type") == "metrics", interval=TICK)
    ah.check_rich(m)
    with open("/proc/self/cgroup") as f:
        text = f.read()
    # This test process and the agent share a cgroup; only unlimited ones count.
    if m["data"]["container"] is not None:
        pytest.skip("the test runs inside a cgroup with limits: %r" % m["data"]["container"])
    assert "container_spec" not in prometheus_text(agent.port), text


# --------------------------------------------------------------------------- #
# the host seen from a container: --host-root over a bind mount of /

@pytest.fixture
def host_root():
    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    d = tempfile.mkdtemp(prefix="metrics-agent-hostroot-")
    r = subprocess.run(["mount", "--rbind", "-o", "ro", "/", d], capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(d)
        pytest.skip("cannot bind-mount / here: %s" % r.stderr.strip())
    try:
        yield d
    finally:
        subprocess.run(["umount", "-R", "-l", d], capture_output=True)
        try:
            os.rmdir(d)
        except OSError:
            pass


def test_host_root_reports_the_hosts_root_as_slash(host_root, spawn):
    agent = spawn.agent("--tick", TICK, "--host-root", host_root)
    m = first_message(agent.port, ah.RICH, lambda m: m.get("type") == "metrics", interval=TICK)
    parts = m["data"]["disk"]["partitions"]
    assert "/" in parts, sorted(parts)
    assert not any(k.startswith(host_root) for k in parts), "mount points keep the prefix: %s" % sorted(parts)
    total, _, _, pct = statvfs_usage("/")
    assert parts["/"]["total_bytes"] == total, (parts["/"], total)
    assert abs(parts["/"]["usage_percent"] - pct) < 1.0, (parts["/"], pct)
    # The mount table is the host's, as pid 1 sees it (as with --pid=host);
    # in a chroot that is not this process's own view.
    table = "/proc/1/mountinfo" if os.access("/proc/1/mountinfo", os.R_OK) else "/proc/self/mountinfo"
    assert parts["/"]["fstype"] == fstype_of("/", table), (parts["/"], table)
    flat = first_message(agent.port, ah.FLAT, lambda m: "disk" in m)
    assert abs(flat["disk"] - pct) < 1.0, (flat, pct)
    # /proc comes from the root too: the same host, the same cores.
    assert m["data"]["cpu"]["core_count"] == os.cpu_count(), m["data"]["cpu"]


def test_host_root_must_hold_proc():
    d = tempfile.mkdtemp(prefix="metrics-agent-hostroot-")
    try:
        r = e2e_util.run_cli(["--host-root", d, "--once"])
        assert r.returncode == 2 and "--host-root" in r.stderr, (r.returncode, r.stderr)
    finally:
        os.rmdir(d)


def test_scope_must_be_host_or_container():
    r = e2e_util.run_cli(["--scope", "pod", "--once"])
    assert r.returncode == 2 and "--scope" in r.stderr and "container" in r.stderr, (r.returncode, r.stderr)
