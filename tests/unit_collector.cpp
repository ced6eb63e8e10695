// Unit tests of the Linux collector: the parsers on recorded /proc and /sys
// files (tests/fixtures/linux), the formulas, the rate rules, a Collector
// pointed at fixture trees, and invariants on the live machine.
#include "metrics_agent.hpp"
#include "test_fixtures.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;
using namespace metrics_agent;
using namespace metrics_agent::detail;

namespace {

using test_fixtures::kLinux;

using test_util::slurp;

std::string fixture(const std::string& rel) { return slurp(kLinux + "/" + rel); }

constexpr std::uint64_t KiB = 1024;

using test_fixtures::TempTree;

const InterfaceStats* find_interface(const NetworkStats& n, const std::string& name) {
  for (const InterfaceStats& i : n.interfaces)
    if (i.name == name) return &i;
  return nullptr;
}

const DiskDeviceStats* find_device(const DiskStats& d, const std::string& name) {
  for (const DiskDeviceStats& x : d.devices)
    if (x.name == name) return &x;
  return nullptr;
}

const PartitionStats* find_partition(const DiskStats& d, const std::string& mountpoint) {
  for (const PartitionStats& p : d.partitions)
    if (p.mountpoint == mountpoint) return &p;
  return nullptr;
}

// Counts the cpuN lines of a /proc/stat text independently of the parser.
std::size_t count_core_lines(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line))
    if (line.size() > 3 && line.compare(0, 3, "cpu") == 0 && std::isdigit(static_cast<unsigned char>(line[3]))) ++n;
  return n;
}

void expect_finite(const Snapshot& s) {
  const double values[] = {s.cpu.usage_percent, s.cpu.user, s.cpu.system, s.cpu.idle, s.cpu.iowait,
                           s.cpu.steal, s.memory.usage_percent, s.memory.swap_percent,
                           s.network.bytes_sent_per_sec, s.network.bytes_recv_per_sec,
                           s.disk.read_bytes_per_sec, s.disk.write_bytes_per_sec};
  for (double v : values) {
    EXPECT_TRUE(std::isfinite(v));
    EXPECT_GE(v, 0);
  }
  for (double v : s.cpu.per_core) {
    EXPECT_TRUE(std::isfinite(v));
    EXPECT_GE(v, 0);
    EXPECT_LE(v, 100);
  }
  for (const InterfaceStats& i : s.network.interfaces) {
    for (double v : {i.bytes_sent_per_sec, i.bytes_recv_per_sec, i.packets_sent_per_sec, i.packets_recv_per_sec}) {
      EXPECT_TRUE(std::isfinite(v)) << i.name;
      EXPECT_GE(v, 0) << i.name;
    }
  }
  for (const DiskDeviceStats& d : s.disk.devices) {
    for (double v : {d.read_bytes_per_sec, d.write_bytes_per_sec, d.reads_per_sec, d.writes_per_sec}) {
      EXPECT_TRUE(std::isfinite(v)) << d.name;
      EXPECT_GE(v, 0) << d.name;
    }
  }
}

}  // namespace

// ---------------------------------------------------------------- /proc/stat

TEST(ParseProcStat, RecordedMachine) {
  const std::string text = fixture("vm-0/proc/stat");
  ProcStat st;
  ASSERT_TRUE(parse_proc_stat(text, st));
  ASSERT_EQ(st.cores.size(), count_core_lines(text));
  ASSERT_EQ(st.cores.size(), 2u);
  EXPECT_EQ(st.cores[0].id, 0u);
  EXPECT_EQ(st.cores[1].id, 1u);
  // With every core online, the aggregate line is the sum of the core lines.
  // The kernel reads each counter at a slightly different moment: a few ticks of slack.
  std::uint64_t user = 0, system = 0, idle = 0, steal = 0;
  for (const CoreTicks& c : st.cores) {
    user += c.ticks.user;
    system += c.ticks.system;
    idle += c.ticks.idle;
    steal += c.ticks.steal;
  }
  EXPECT_NEAR(double(st.total.user), double(user), 3.0);
  EXPECT_NEAR(double(st.total.system), double(system), 3.0);
  EXPECT_NEAR(double(st.total.idle), double(idle), 3.0);
  EXPECT_NEAR(double(st.total.steal), double(steal), 3.0);
  EXPECT_GT(st.total.idle, 0u);
  EXPECT_EQ(st.btime, 1795321308u);
}

TEST(ParseProcStat, HandMadeValuesAndOfflineCore) {
  ProcStat st;
  ASSERT_TRUE(parse_proc_stat(fixture("desktop-0/proc/stat"), st));
  EXPECT_EQ(st.total.user, 10000u);
  EXPECT_EQ(st.total.nice, 500u);
  EXPECT_EQ(st.total.system, 3000u);
  EXPECT_EQ(st.total.idle, 80000u);
  EXPECT_EQ(st.total.iowait, 1000u);
  EXPECT_EQ(st.total.irq, 200u);
  EXPECT_EQ(st.total.softirq, 300u);
  EXPECT_EQ(st.total.steal, 0u);
  ASSERT_EQ(st.cores.size(), 3u);  // cpu2 is offline
  EXPECT_EQ(st.cores[0].id, 0u);
  EXPECT_EQ(st.cores[1].id, 1u);
  EXPECT_EQ(st.cores[2].id, 3u);
  EXPECT_EQ(st.cores[2].ticks.idle, 27000u);
  EXPECT_EQ(st.btime, 1700000000u);
}

TEST(ParseProcStat, OldKernelWithoutSteal) {
  ProcStat st;
  ASSERT_TRUE(parse_proc_stat(fixture("old-kernel/proc/stat"), st));
  EXPECT_EQ(st.total.softirq, 30u);
  EXPECT_EQ(st.total.steal, 0u);
  ASSERT_EQ(st.cores.size(), 2u);
  EXPECT_EQ(st.cores[1].ticks.user, 1000u);

  ASSERT_TRUE(parse_proc_stat("cpu 1 2 3 4\ncpu0 1 2 3 4\n", st));  // Linux 2.4
  EXPECT_EQ(st.total.idle, 4u);
  EXPECT_EQ(st.cores.size(), 1u);
}

TEST(ParseProcStat, MalformedInput) {
  ProcStat st;
  EXPECT_FALSE(parse_proc_stat("", st));
  EXPECT_FALSE(parse_proc_stat("intr 1 2 3\nctxt 4\n", st));
  EXPECT_FALSE(parse_proc_stat("cpu  1 2\n", st));  // too few fields
  EXPECT_TRUE(parse_proc_stat("cpu 1 2 3 4\ncpuX 1 2 3 4\ncpu7 9\nbtime x\n", st));
  EXPECT_TRUE(st.cores.empty());
  EXPECT_EQ(st.btime, 0u);
  // Truncated in the middle of a line: what was complete is kept.
  const std::string text = fixture("desktop-0/proc/stat");
  for (std::size_t cut = 0; cut < text.size(); ++cut) parse_proc_stat(std::string_view(text).substr(0, cut), st);
}

// ---------------------------------------------------------------- CPU shares

TEST(CollectorFormulas, CpuShares) {
  CpuTicks prev, cur;
  prev.user = 1000;
  cur.user = 1100;  // +100
  cur.nice = 50;
  cur.system = 30;
  cur.irq = 10;
  cur.softirq = 10;
  prev.idle = 5000;
  cur.idle = 5700;  // +700
  cur.iowait = 50;
  cur.steal = 50;   // total 1000
  CpuShares s;
  ASSERT_TRUE(cpu_shares(prev, cur, s));
  EXPECT_DOUBLE_EQ(s.user, 10.0);    // psutil's meaning: without nice
  EXPECT_DOUBLE_EQ(s.nice, 5.0);
  EXPECT_DOUBLE_EQ(s.system, 3.0);   // without irq and softirq
  EXPECT_DOUBLE_EQ(s.irq, 1.0);
  EXPECT_DOUBLE_EQ(s.softirq, 1.0);
  EXPECT_DOUBLE_EQ(s.idle, 70.0);
  EXPECT_DOUBLE_EQ(s.iowait, 5.0);
  EXPECT_DOUBLE_EQ(s.steal, 5.0);
  EXPECT_DOUBLE_EQ(s.usage, 100.0 - s.idle - s.iowait);
  EXPECT_NEAR(s.user + s.nice + s.system + s.irq + s.softirq + s.idle + s.iowait + s.steal, 100.0, 1e-9);
}

TEST(CollectorFormulas, CpuSharesBackwardsAndIdleIntervals) {
  CpuTicks prev, cur;
  prev.user = 100;
  prev.idle = 1000;
  prev.iowait = 500;
  cur.user = 200;    // +100
  cur.idle = 1100;   // +100
  cur.iowait = 400;  // went backwards: counts as 0
  CpuShares s;
  ASSERT_TRUE(cpu_shares(prev, cur, s));
  EXPECT_DOUBLE_EQ(s.usage, 50.0);
  EXPECT_DOUBLE_EQ(s.iowait, 0.0);

  CpuShares untouched;
  untouched.usage = 42;
  EXPECT_FALSE(cpu_shares(cur, cur, untouched));  // no time passed
  EXPECT_EQ(untouched.usage, 42);
  CpuTicks later = cur;
  later.user -= 50;
  later.idle -= 50;
  EXPECT_FALSE(cpu_shares(cur, later, untouched));  // everything backwards
  EXPECT_EQ(untouched.usage, 42);
}

TEST(CollectorFormulas, CoreTimesInSeconds) {
  CpuTicks t;
  t.user = 250;
  t.steal = 3;
  const CpuTimes s = cpu_times_seconds(t, 100.0);
  EXPECT_DOUBLE_EQ(s.user, 2.5);
  EXPECT_DOUBLE_EQ(s.steal, 0.03);
}

// ---------------------------------------------------------------- meminfo

TEST(ParseMeminfo, RecordedMachine) {
  MemInfo m;
  ASSERT_TRUE(parse_meminfo(fixture("vm-0/proc/meminfo"), m));
  EXPECT_EQ(m.total, 24684084 * KiB);
  EXPECT_TRUE(m.has_available);
  EXPECT_LE(m.available, m.total);
  EXPECT_LE(m.free, m.total);
  MemoryStats out;
  memory_stats(m, out);
  EXPECT_EQ(out.used_bytes + out.available_bytes, out.total_bytes);
  EXPECT_EQ(out.cached_bytes, m.cached + m.sreclaimable);
  EXPECT_EQ(out.swap_total_bytes, 0u);
  EXPECT_EQ(out.swap_percent, 0);
}

TEST(ParseMeminfo, HandMadeFormulas) {
  MemInfo m;
  ASSERT_TRUE(parse_meminfo(fixture("desktop-0/proc/meminfo"), m));
  MemoryStats out;
  memory_stats(m, out);
  EXPECT_EQ(out.total_bytes, 16000000 * KiB);
  EXPECT_EQ(out.available_bytes, 10000000 * KiB);
  EXPECT_EQ(out.used_bytes, 6000000 * KiB);
  EXPECT_DOUBLE_EQ(out.usage_percent, 37.5);
  EXPECT_EQ(out.free_bytes, 4000000 * KiB);
  EXPECT_EQ(out.buffers_bytes, 500000 * KiB);
  EXPECT_EQ(out.cached_bytes, 5400000 * KiB);  // Cached + SReclaimable
  EXPECT_EQ(out.swap_total_bytes, 2000000 * KiB);
  EXPECT_EQ(out.swap_free_bytes, 1500000 * KiB);
  EXPECT_EQ(out.swap_used_bytes, 500000 * KiB);
  EXPECT_DOUBLE_EQ(out.swap_percent, 25.0);
}

TEST(ParseMeminfo, OldKernelWithoutMemAvailable) {
  MemInfo m;
  ASSERT_TRUE(parse_meminfo(fixture("old-kernel/proc/meminfo"), m));
  EXPECT_FALSE(m.has_available);
  MemoryStats out;
  memory_stats(m, out);
  // free + buffers + cached + reclaimable slab
  EXPECT_EQ(out.available_bytes, (512000 + 128000 + 256000 + 64000) * KiB);
  EXPECT_EQ(out.used_bytes, (2048000 - 960000) * KiB);
  EXPECT_DOUBLE_EQ(out.usage_percent, 1088000.0 / 2048000.0 * 100.0);
}

TEST(ParseMeminfo, MissingTotalAndOverlargeAvailable) {
  MemInfo m;
  EXPECT_FALSE(parse_meminfo("", m));
  EXPECT_FALSE(parse_meminfo("MemFree: 10 kB\n", m));
  EXPECT_FALSE(parse_meminfo("MemTotal: 0 kB\n", m));
  ASSERT_TRUE(parse_meminfo("MemTotal: 100 kB\nMemAvailable: 300 kB\nSwapTotal: 10 kB\nSwapFree: 20 kB\n", m));
  MemoryStats out;
  memory_stats(m, out);
  EXPECT_EQ(out.available_bytes, out.total_bytes);
  EXPECT_EQ(out.used_bytes, 0u);
  EXPECT_EQ(out.swap_used_bytes, 0u);
  EXPECT_EQ(out.swap_percent, 0);
}

// ---------------------------------------------------------------- loadavg, uptime

TEST(ParseLoadUptime, Values) {
  LoadStats l;
  ASSERT_TRUE(parse_loadavg(fixture("desktop-0/proc/loadavg"), l));
  EXPECT_DOUBLE_EQ(l.load1, 1.5);
  EXPECT_DOUBLE_EQ(l.load5, 1.2);
  EXPECT_DOUBLE_EQ(l.load15, 0.9);
  ASSERT_TRUE(parse_loadavg(fixture("vm-0/proc/loadavg"), l));
  EXPECT_GE(l.load1, 0);
  EXPECT_FALSE(parse_loadavg("1.0 2.0\n", l));
  EXPECT_FALSE(parse_loadavg("", l));

  double up = 0;
  ASSERT_TRUE(parse_uptime(fixture("desktop-0/proc/uptime"), up));
  EXPECT_DOUBLE_EQ(up, 3600.5);
  EXPECT_FALSE(parse_uptime("abc", up));
}

TEST(ParseLoadUptime, DecimalsIgnoreLocale) {
  std::string_view s = " 7370.33 0.004 12";
  double a = 0, b = 0, c = 0;
  ASSERT_TRUE(parse_decimal(s, a));
  ASSERT_TRUE(parse_decimal(s, b));
  ASSERT_TRUE(parse_decimal(s, c));
  EXPECT_DOUBLE_EQ(a, 7370.33);
  EXPECT_DOUBLE_EQ(b, 0.004);
  EXPECT_DOUBLE_EQ(c, 12.0);
  std::string_view comma = "0,5";
  ASSERT_TRUE(parse_decimal(comma, a));
  EXPECT_DOUBLE_EQ(a, 0.0);  // stops at the comma
}

// ---------------------------------------------------------------- net/dev

TEST(ParseNetDev, RecordedMachine) {
  std::vector<NetDevCounters> rows;
  const std::string text = fixture("vm-0/proc/net/dev");
  parse_net_dev(text, rows);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].name, "lo");
  EXPECT_EQ(rows[0].rx_bytes, rows[0].tx_bytes);  // loopback sends what it receives
  EXPECT_EQ(rows[3].name, "eth0");
  EXPECT_EQ(rows[3].rx_bytes, 203624876u);
  EXPECT_EQ(rows[3].rx_packets, 3944u);
  EXPECT_EQ(rows[3].tx_bytes, 177157u);
  EXPECT_EQ(rows[3].tx_packets, 2253u);
}

TEST(ParseNetDev, ErrorsDropsAndLongNames) {
  std::vector<NetDevCounters> rows;
  const std::string text = fixture("desktop-1/proc/net/dev");
  parse_net_dev(text, rows);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[1].name, "eth0");
  EXPECT_EQ(rows[1].rx_errors, 1u);
  EXPECT_EQ(rows[1].rx_drops, 2u);
  EXPECT_EQ(rows[1].tx_errors, 3u);
  EXPECT_EQ(rows[1].tx_drops, 4u);
  EXPECT_EQ(rows[4].name, "veth1a2b3c4");
  EXPECT_EQ(rows[4].tx_bytes, 6000u);
}

TEST(ParseNetDev, OldKernelWithoutBlankAfterColon) {
  std::vector<NetDevCounters> rows;
  const std::string text = fixture("old-kernel/proc/net/dev");
  parse_net_dev(text, rows);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].name, "eth0");
  EXPECT_EQ(rows[1].rx_bytes, 1234567890u);
  EXPECT_EQ(rows[1].rx_packets, 8901u);
  EXPECT_EQ(rows[1].tx_bytes, 987654321u);
  EXPECT_EQ(rows[1].tx_drops, 8u);
}

TEST(ParseNetDev, MalformedLinesAreSkipped) {
  std::vector<NetDevCounters> rows;
  parse_net_dev("garbage\n eth0: 1 2 3\n: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", rows);
  EXPECT_TRUE(rows.empty());
  parse_net_dev("", rows);
  EXPECT_TRUE(rows.empty());
}

// ---------------------------------------------------------------- diskstats

TEST(ParseDiskstats, RecordedMachine) {
  std::vector<DiskstatsEntry> rows;
  const std::string text = fixture("vm-0/proc/diskstats");
  parse_diskstats(text, rows);
  ASSERT_EQ(rows.size(), 10u);
  const DiskstatsEntry& vda = rows[8];
  EXPECT_EQ(vda.name, "vda");
  EXPECT_EQ(vda.major, 254u);
  EXPECT_EQ(vda.minor, 0u);
  // The same line split independently: the eleven fields in iostats.rst order.
  std::istringstream in(text.substr(text.find(" vda ") + 5));
  std::uint64_t f[11];
  for (std::uint64_t& x : f) in >> x;
  ASSERT_TRUE(in.good());
  EXPECT_EQ(vda.reads, f[0]);
  EXPECT_EQ(vda.reads_merged, f[1]);
  EXPECT_EQ(vda.read_sectors, f[2]);
  EXPECT_EQ(vda.read_ms, f[3]);
  EXPECT_EQ(vda.writes, f[4]);
  EXPECT_EQ(vda.writes_merged, f[5]);
  EXPECT_EQ(vda.write_sectors, f[6]);
  EXPECT_EQ(vda.write_ms, f[7]);
  EXPECT_EQ(vda.in_flight, f[8]);
  EXPECT_EQ(vda.io_ms, f[9]);
  EXPECT_EQ(vda.weighted_io_ms, f[10]);
}

TEST(ParseDiskstats, FieldsInOrder) {
  std::vector<DiskstatsEntry> rows;
  const std::string text = fixture("desktop-0/proc/diskstats");
  parse_diskstats(text, rows);
  ASSERT_EQ(rows.size(), 9u);
  const DiskstatsEntry& sda = rows[0];
  EXPECT_EQ(sda.name, "sda");
  EXPECT_EQ(sda.reads, 1000u);
  EXPECT_EQ(sda.reads_merged, 10u);
  EXPECT_EQ(sda.read_sectors, 200000u);
  EXPECT_EQ(sda.read_ms, 500u);
  EXPECT_EQ(sda.writes, 2000u);
  EXPECT_EQ(sda.writes_merged, 20u);
  EXPECT_EQ(sda.write_sectors, 400000u);
  EXPECT_EQ(sda.write_ms, 800u);
  EXPECT_EQ(sda.in_flight, 0u);
  EXPECT_EQ(sda.io_ms, 900u);
  EXPECT_EQ(sda.weighted_io_ms, 1300u);
  EXPECT_EQ(rows[4].name, "nvme0n1");
  EXPECT_EQ(rows[4].writes, 4294967290u);
}

TEST(ParseDiskstats, OldKernelPartitionLines) {
  std::vector<DiskstatsEntry> rows;
  const std::string text = fixture("old-kernel/proc/diskstats");
  parse_diskstats(text, rows);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].io_ms, 900u);
  EXPECT_EQ(rows[1].name, "sda1");
  EXPECT_EQ(rows[1].reads, 900u);
  EXPECT_EQ(rows[1].read_sectors, 180000u);
  EXPECT_EQ(rows[1].writes, 1900u);
  EXPECT_EQ(rows[1].write_sectors, 380000u);
  parse_diskstats("8 0\n8 0 sda 1 2\nx y z\n", rows);
  EXPECT_TRUE(rows.empty());
}

TEST(ParseDiskstats, DeviceNameRules) {
  for (const char* n : {"loop0", "loop12", "ram0", "zram0", "fd0"}) EXPECT_TRUE(is_memory_or_loop_device(n)) << n;
  for (const char* n : {"sda", "nvme0n1", "dm-0", "md0", "vda", "random", "loop", "fdisk"})
    EXPECT_FALSE(is_memory_or_loop_device(n)) << n;
  for (const char* n : {"sda1", "vdb12", "xvda1", "hda3", "sdaa2", "nvme0n1p2", "mmcblk0p1"})
    EXPECT_TRUE(looks_like_partition(n)) << n;
  for (const char* n : {"sda", "vdb", "xvda", "nvme0n1", "mmcblk0", "dm-0", "md127", "sr0", "nbd0"})
    EXPECT_FALSE(looks_like_partition(n)) << n;
  EXPECT_TRUE(is_stacked_device_name("dm-3"));
  EXPECT_TRUE(is_stacked_device_name("md127"));
  EXPECT_FALSE(is_stacked_device_name("mdx"));
  EXPECT_FALSE(is_stacked_device_name("sda"));
}

// ---------------------------------------------------------------- mountinfo

TEST(ParseMountinfo, FieldsEscapesAndOptionalFields) {
  std::vector<MountEntry> mounts;
  parse_mountinfo(fixture("desktop-0/proc/self/mountinfo"), mounts);
  ASSERT_EQ(mounts.size(), 17u);
  const MountEntry& root = mounts[3];
  EXPECT_EQ(root.major, 8u);
  EXPECT_EQ(root.minor, 2u);
  EXPECT_EQ(root.root, "/");
  EXPECT_EQ(root.mountpoint, "/");
  EXPECT_EQ(root.fstype, "ext4");
  EXPECT_EQ(root.source, "/dev/root");
  EXPECT_EQ(root.options, "rw,relatime");
  EXPECT_EQ(root.super_options, "rw,errors=remount-ro");
  const MountEntry& backup = mounts[9];  // two optional fields, \040 and \134 escapes
  EXPECT_EQ(backup.mountpoint, "/mnt/backup disk\\old");
  EXPECT_EQ(backup.fstype, "ext4");
  EXPECT_EQ(backup.source, "/dev/sdb");
  EXPECT_TRUE(has_mount_option(backup.options, "ro"));
  EXPECT_EQ(mounts[7].root, "/alice/media");
  EXPECT_EQ(mounts[7].mountpoint, "/srv/media");
}

TEST(ParseMountinfo, RecordedMachine) {
  std::vector<MountEntry> mounts;
  parse_mountinfo(fixture("vm-0/proc/self/mountinfo"), mounts);
  ASSERT_FALSE(mounts.empty());
  const MountEntry* root = find_mount_for(mounts, "/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->mountpoint, "/");
  EXPECT_EQ(root->fstype, "ext4");
  std::vector<std::string> types;
  parse_filesystems(fixture("vm-0/proc/filesystems"), types);
  const std::vector<std::size_t> keep = select_partitions(mounts, types);
  ASSERT_EQ(keep.size(), 1u);
  EXPECT_EQ(mounts[keep[0]].source, "/dev/vda");
}

TEST(ParseMountinfo, Escapes) {
  EXPECT_EQ(decode_mount_escapes("/a\\040b"), "/a b");
  EXPECT_EQ(decode_mount_escapes("/tab\\011x\\012"), "/tab\tx\n");
  EXPECT_EQ(decode_mount_escapes("/end\\04"), "/end\\04");  // truncated escape stays as it is
  EXPECT_EQ(decode_mount_escapes("/not\\999"), "/not\\999");
  EXPECT_EQ(decode_mount_escapes(""), "");
}

TEST(ParseMountinfo, MalformedLines) {
  std::vector<MountEntry> mounts;
  parse_mountinfo("1 2 3\n22 27 0:21 / /proc rw,relatime proc proc rw\n22 27 0:21 / /x rw - \n\n", mounts);
  EXPECT_TRUE(mounts.empty());
  const std::string text = fixture("desktop-0/proc/self/mountinfo");
  for (std::size_t cut = 0; cut < text.size(); cut += 7) parse_mountinfo(std::string_view(text).substr(0, cut), mounts);
}

TEST(ParseFilesystems, BlockBackedTypes) {
  std::vector<std::string> types;
  parse_filesystems(fixture("desktop-0/proc/filesystems"), types);
  const std::set<std::string> got(types.begin(), types.end());
  const std::set<std::string> want = {"ext3", "ext2", "ext4", "squashfs", "vfat", "fuseblk", "xfs", "btrfs", "zfs"};
  EXPECT_EQ(got, want);
}

TEST(ParseMountinfo, PartitionSelection) {
  std::vector<MountEntry> mounts;
  parse_mountinfo(fixture("desktop-0/proc/self/mountinfo"), mounts);
  std::vector<std::string> types;
  parse_filesystems(fixture("desktop-0/proc/filesystems"), types);
  std::vector<std::string> chosen;
  for (std::size_t i : select_partitions(mounts, types)) chosen.push_back(mounts[i].mountpoint);
  // No pseudo filesystems, no squashfs, no nfs (nodev), the bind mounts of
  // /home and / dropped as duplicates of their device, no "none" source.
  const std::vector<std::string> want = {"/", "/home", "/boot/efi", "/mnt/backup disk\\old", "/tank", "/tank/data"};
  EXPECT_EQ(chosen, want);

  // Without /proc/filesystems: sources that are paths.
  chosen.clear();
  for (std::size_t i : select_partitions(mounts, {})) chosen.push_back(mounts[i].mountpoint);
  const std::vector<std::string> fallback = {"/", "/home", "/boot/efi", "/mnt/backup disk\\old"};
  EXPECT_EQ(chosen, fallback);
}

TEST(ParseMountinfo, FindMountForPath) {
  std::vector<MountEntry> mounts;
  parse_mountinfo(fixture("desktop-0/proc/self/mountinfo"), mounts);
  EXPECT_EQ(find_mount_for(mounts, "/home/alice/x")->mountpoint, "/home");
  EXPECT_EQ(find_mount_for(mounts, "/homer")->mountpoint, "/");
  EXPECT_EQ(find_mount_for(mounts, "/tank/data/y")->mountpoint, "/tank/data");
  EXPECT_EQ(find_mount_for(mounts, "/run/user/1000")->fstype, "tmpfs");
  EXPECT_EQ(find_mount_for(mounts, "relative"), nullptr);
  EXPECT_TRUE(path_is_under("/a/b", "/a"));
  EXPECT_FALSE(path_is_under("/ab", "/a"));
}

// ---------------------------------------------------------------- statvfs formula

TEST(CollectorFormulas, PartitionUsageAsDf) {
  FsCounts c;
  c.block_size = 4096;
  c.blocks = 1000;
  c.blocks_free = 300;   // 50 of them reserved for root
  c.blocks_avail = 250;
  c.files = 640;
  c.files_free = 600;
  PartitionStats p;
  partition_usage(c, p);
  EXPECT_EQ(p.total_bytes, 1000u * 4096);
  EXPECT_EQ(p.used_bytes, 700u * 4096);
  EXPECT_EQ(p.free_bytes, 250u * 4096);
  EXPECT_EQ(p.bfree_bytes, 300u * 4096);
  EXPECT_EQ(p.files, 640u);
  EXPECT_EQ(p.files_free, 600u);
  EXPECT_DOUBLE_EQ(p.usage_percent, 700.0 / 950.0 * 100.0);
  EXPECT_FALSE(p.readonly);

  FsCounts empty;  // e.g. a filesystem reporting no blocks
  PartitionStats q;
  partition_usage(empty, q);
  EXPECT_EQ(q.usage_percent, 0);
  FsCounts odd;  // more free than total must not underflow
  odd.block_size = 512;
  odd.blocks = 10;
  odd.blocks_free = 20;
  odd.readonly = true;
  partition_usage(odd, q);
  EXPECT_EQ(q.used_bytes, 0u);
  EXPECT_TRUE(q.readonly);
}

TEST(CollectorFormulas, StatvfsOfRoot) {
  FsCounts c;
  ASSERT_EQ(filesystem_counts("/", c), 0);
  EXPECT_GT(c.blocks, 0u);
  EXPECT_LE(c.blocks_avail, c.blocks_free);
  EXPECT_LE(c.blocks_free, c.blocks);
  EXPECT_EQ(filesystem_counts("/nonexistent/metrics-agent", c), ENOENT);
}

// ---------------------------------------------------------------- cpu frequency sources

TEST(ParseCpuFreq, CpuinfoAndCpuLists) {
  std::vector<double> mhz;
  parse_cpuinfo_mhz(fixture("vm-0/proc/cpuinfo"), mhz);
  ASSERT_EQ(mhz.size(), 2u);
  EXPECT_DOUBLE_EQ(mhz[0], 2596.13);
  parse_cpuinfo_mhz("cpu MHz dynamic : 5200\ncpu MHz static : 5200\n", mhz);  // s390
  EXPECT_TRUE(mhz.empty());
  parse_cpuinfo_mhz("processor : 0\nBogoMIPS : 48.00\n", mhz);  // arm64
  EXPECT_TRUE(mhz.empty());

  std::vector<unsigned> ids;
  ASSERT_TRUE(parse_cpu_list("0-3,5,8-9\n", ids));
  EXPECT_EQ(ids, (std::vector<unsigned>{0, 1, 2, 3, 5, 8, 9}));
  ASSERT_TRUE(parse_cpu_list("0", ids));
  EXPECT_EQ(ids, (std::vector<unsigned>{0}));
  EXPECT_FALSE(parse_cpu_list("", ids));
  EXPECT_FALSE(parse_cpu_list("3-1", ids));
  EXPECT_FALSE(parse_cpu_list("0-", ids));
  EXPECT_FALSE(parse_cpu_list("a", ids));
  EXPECT_FALSE(parse_cpu_list("0-4000000000", ids));
}

// ---------------------------------------------------------------- rates

TEST(CollectorRates, CounterDeltaRules) {
  EXPECT_EQ(counter_delta(100, 250), 150u);
  EXPECT_EQ(counter_delta(7, 7), 0u);
  // 32-bit wrap: the previous value fits in 32 bits.
  EXPECT_EQ(counter_delta(0xffffffffULL - 99, 50), 150u);
  EXPECT_EQ(counter_delta(0xffffffffULL, 0), 1u);
  // A 64-bit counter that went down was reset: no delta for this interval.
  EXPECT_EQ(counter_delta(5000000000ULL, 10), 0u);
  EXPECT_EQ(counter_delta(~0ULL, 0), 0u);
}

TEST(CollectorRates, RatesAreFiniteAndNeverNegative) {
  EXPECT_DOUBLE_EQ(counter_rate(1000, 3000, 2.0), 1000.0);
  EXPECT_DOUBLE_EQ(counter_rate(0xffffffffULL - 99, 50, 0.5), 300.0);
  EXPECT_EQ(counter_rate(5000000000ULL, 1, 1.0), 0);
  EXPECT_EQ(counter_rate(1, 2, 0.0), 0);
  EXPECT_EQ(counter_rate(1, 2, -1.0), 0);
  EXPECT_EQ(counter_rate(1, 2, std::nan("")), 0);
  EXPECT_EQ(counter_rate(1, 2, INFINITY), 0);
  EXPECT_EQ(counter_rate(0, ~0ULL, 1e-320), 0);  // would overflow to inf
  EXPECT_EQ(per_second(-5, 1), 0);
  EXPECT_EQ(percent_of(1, 0), 0);
  EXPECT_EQ(percent_of(5, 2), 100);
  EXPECT_EQ(percent_of(std::nan(""), 2), 0);
}

// ---------------------------------------------------------------- reading files

TEST(CollectorFileReader, GrowsForLargeFilesAndReportsErrno) {
  TempTree t;
  const std::string big(100000, 'x');
  { std::ofstream(t.path("big").string()) << big << "\nend"; }
  FileReader r(16);
  std::string_view text;
  ASSERT_EQ(r.read(t.path("big").c_str(), text), 0);
  EXPECT_EQ(text.size(), big.size() + 4);
  EXPECT_EQ(text.substr(text.size() - 3), "end");
  EXPECT_EQ(r.read(t.path("missing").c_str(), text), ENOENT);
  EXPECT_EQ(r.read(t.path("").c_str(), text), EISDIR);
}

// ---------------------------------------------------------------- the Collector on fixtures

TEST(CollectorFixture, TwoSamplesGiveExactRates) {
  TempTree t;
  t.load("desktop-0");
  Collector c("/", t.proc(), t.sys());
  Snapshot s;
  c.sample_fast(s, 1000.0);  // unchanged files: rates 0, CPU shares since boot

  ASSERT_TRUE(s.cpu.ok) << s.cpu.error;
  EXPECT_NEAR(s.cpu.usage_percent, (95000.0 - 81000.0) / 95000.0 * 100.0, 1e-9);
  ASSERT_TRUE(s.network.ok) << s.network.error;
  EXPECT_EQ(s.network.bytes_recv_per_sec, 0);
  for (const InterfaceStats& i : s.network.interfaces) EXPECT_EQ(i.bytes_recv_per_sec, 0) << i.name;
  ASSERT_TRUE(s.disk.io_ok) << s.disk.io_error;
  EXPECT_EQ(s.disk.read_bytes_per_sec, 0);
  ASSERT_NE(find_device(s.disk, "sdb"), nullptr);

  t.load("desktop-1");
  fs::remove_all(t.path("sys/class/block/sdb"));
  c.sample_fast(s, 1002.0);  // two seconds later
  expect_finite(s);

  // CPU: the aggregate moved 600 ticks (see the fixture's numbers).
  ASSERT_TRUE(s.cpu.ok);
  EXPECT_NEAR(s.cpu.user, 25.0, 1e-9);
  EXPECT_NEAR(s.cpu.nice, 5.0, 1e-9);
  EXPECT_NEAR(s.cpu.system, 10.0, 1e-9);
  EXPECT_NEAR(s.cpu.irq, 1.0, 1e-9);
  EXPECT_NEAR(s.cpu.softirq, 1.0, 1e-9);
  EXPECT_NEAR(s.cpu.idle, 50.0, 1e-9);
  EXPECT_NEAR(s.cpu.iowait, 5.0, 1e-9);
  EXPECT_NEAR(s.cpu.steal, 3.0, 1e-9);
  EXPECT_NEAR(s.cpu.usage_percent, 45.0, 1e-9);
  // cpu2 came online (no rate yet), cpu3 went offline.
  ASSERT_EQ(s.cpu.per_core.size(), 3u);
  EXPECT_NEAR(s.cpu.per_core[0], 60.0, 1e-9);
  EXPECT_NEAR(s.cpu.per_core[1], 10.0, 1e-9);
  EXPECT_EQ(s.cpu.per_core[2], 0);
  ASSERT_EQ(s.cpu.core_times.size(), 3u);
  const double hz = double(::sysconf(_SC_CLK_TCK));
  EXPECT_DOUBLE_EQ(s.cpu.core_times[2].user, 500 / hz);
  EXPECT_DOUBLE_EQ(s.cpu.core_times[0].idle, 26080 / hz);

  ASSERT_TRUE(s.load.ok);
  EXPECT_DOUBLE_EQ(s.load.load1, 1.62);
  ASSERT_TRUE(s.memory.ok);
  EXPECT_DOUBLE_EQ(s.memory.usage_percent, 50.0);

  // Network over 2 s.
  ASSERT_TRUE(s.network.ok);
  ASSERT_EQ(s.network.interfaces.size(), 5u);
  const InterfaceStats* lo = find_interface(s.network, "lo");
  ASSERT_NE(lo, nullptr);
  EXPECT_DOUBLE_EQ(lo->bytes_recv_per_sec, 100000.0);
  const InterfaceStats* eth0 = find_interface(s.network, "eth0");
  ASSERT_NE(eth0, nullptr);
  EXPECT_DOUBLE_EQ(eth0->bytes_recv_per_sec, 1000.0);
  EXPECT_DOUBLE_EQ(eth0->bytes_sent_per_sec, 2000.0);
  EXPECT_DOUBLE_EQ(eth0->packets_recv_per_sec, 5.0);
  EXPECT_DOUBLE_EQ(eth0->packets_sent_per_sec, 10.0);
  EXPECT_EQ(eth0->bytes_recv, 5002000u);
  EXPECT_EQ(eth0->errors_in, 1u);
  EXPECT_EQ(eth0->drops_out, 4u);
  const InterfaceStats* wlan0 = find_interface(s.network, "wlan0");  // 32-bit wrap
  ASSERT_NE(wlan0, nullptr);
  EXPECT_DOUBLE_EQ(wlan0->bytes_recv_per_sec, 500.0);
  EXPECT_DOUBLE_EQ(wlan0->bytes_sent_per_sec, 1352.0);
  const InterfaceStats* docker0 = find_interface(s.network, "docker0");  // reset
  ASSERT_NE(docker0, nullptr);
  EXPECT_EQ(docker0->bytes_recv_per_sec, 0);
  EXPECT_EQ(docker0->bytes_sent_per_sec, 0);
  const InterfaceStats* veth = find_interface(s.network, "veth1a2b3c4");  // new
  ASSERT_NE(veth, nullptr);
  EXPECT_EQ(veth->bytes_sent_per_sec, 0);
  EXPECT_EQ(veth->bytes_sent, 6000u);
  EXPECT_EQ(find_interface(s.network, "wwan0"), nullptr);  // gone
  EXPECT_DOUBLE_EQ(s.network.bytes_recv_per_sec, 1000.0 + 500.0);  // not lo
  EXPECT_DOUBLE_EQ(s.network.bytes_sent_per_sec, 2000.0 + 1352.0);

  // Disks: whole devices only; no loop/zram, no partitions.
  ASSERT_TRUE(s.disk.io_ok);
  std::vector<std::string> names;
  for (const DiskDeviceStats& d : s.disk.devices) names.push_back(d.name);
  EXPECT_EQ(names, (std::vector<std::string>{"sda", "sdc", "nvme0n1", "dm-0"}));
  const DiskDeviceStats* sda = find_device(s.disk, "sda");
  EXPECT_DOUBLE_EQ(sda->reads_per_sec, 50.0);
  EXPECT_DOUBLE_EQ(sda->writes_per_sec, 20.0);
  EXPECT_DOUBLE_EQ(sda->read_bytes_per_sec, 4000.0 * 512 / 2);
  EXPECT_DOUBLE_EQ(sda->write_bytes_per_sec, 2000.0 * 512 / 2);
  EXPECT_EQ(sda->read_bytes, 204000u * 512);
  EXPECT_EQ(sda->reads, 1100u);
  EXPECT_DOUBLE_EQ(sda->read_time_seconds, 0.52);
  EXPECT_DOUBLE_EQ(sda->write_time_seconds, 0.81);
  EXPECT_DOUBLE_EQ(sda->io_time_seconds, 0.95);
  const DiskDeviceStats* nvme = find_device(s.disk, "nvme0n1");
  EXPECT_DOUBLE_EQ(nvme->read_bytes_per_sec, 8000.0 * 512 / 2);
  EXPECT_DOUBLE_EQ(nvme->writes_per_sec, 8.0);  // 4294967290 -> 10 wrapped
  EXPECT_EQ(find_device(s.disk, "sdc")->read_bytes_per_sec, 0);  // new device
  EXPECT_DOUBLE_EQ(find_device(s.disk, "dm-0")->read_bytes_per_sec, 8000.0 * 512 / 2);
  // dm-0 sits on nvme0n1p1: its bytes are already in nvme0n1's.
  EXPECT_DOUBLE_EQ(s.disk.read_bytes_per_sec, 4000.0 * 512 / 2 + 8000.0 * 512 / 2);
  EXPECT_DOUBLE_EQ(s.disk.write_bytes_per_sec, 2000.0 * 512 / 2);

  ASSERT_TRUE(s.system.ok) << s.system.error;
  EXPECT_EQ(s.system.hostname, "desktop-fixture");
  EXPECT_DOUBLE_EQ(s.system.uptime_seconds, 3602.5);
  EXPECT_DOUBLE_EQ(s.system.boot_time, 1700000000.0);
  EXPECT_GT(s.timestamp_us, 1600000000LL * 1000000);
}

TEST(CollectorFixture, InterfaceThatReappearsHasNoRateForOneSample) {
  TempTree t;
  t.load("desktop-0");
  Collector c("/", t.proc(), t.sys());
  Snapshot s;
  c.sample_fast(s, 10.0);
  t.load("desktop-1");  // wwan0 disappears
  c.sample_fast(s, 11.0);
  t.load("desktop-0");  // wwan0 is back; everything else went backwards
  c.sample_fast(s, 12.0);
  expect_finite(s);
  const InterfaceStats* wwan0 = find_interface(s.network, "wwan0");
  ASSERT_NE(wwan0, nullptr);
  EXPECT_EQ(wwan0->bytes_recv_per_sec, 0);
  // eth0 went from 5002000 back to 5000000 (< 2^32): read as a 32-bit wrap.
  const InterfaceStats* eth0 = find_interface(s.network, "eth0");
  EXPECT_DOUBLE_EQ(eth0->bytes_recv_per_sec, double(0x100000000ULL - 2000));
  // cpu3 is back: no rate; cpu2 is gone.
  ASSERT_EQ(s.cpu.per_core.size(), 3u);
  EXPECT_EQ(s.cpu.per_core[2], 0);
  EXPECT_GE(s.cpu.usage_percent, 0);
}

TEST(CollectorFixture, SameTimeTwiceGivesZeroRatesNotInfinity) {
  TempTree t;
  t.load("desktop-0");
  Collector c("/", t.proc(), t.sys());
  Snapshot s;
  c.sample_fast(s, 5.0);
  t.load("desktop-1");
  c.sample_fast(s, 5.0);
  expect_finite(s);
  EXPECT_EQ(find_interface(s.network, "eth0")->bytes_recv_per_sec, 0);
  EXPECT_NEAR(s.cpu.usage_percent, 45.0, 1e-9);  // CPU shares need no clock
}

TEST(CollectorFixture, SlowSampleFromFixtureTree) {
  TempTree t;
  t.load("desktop-0");
  Collector c("/", t.proc(), t.sys());
  Snapshot s;
  c.sample_slow(s);
  EXPECT_EQ(s.cpu.frequency_mhz, (std::vector<double>{800.0, 1200.5, 3400.0}));

  ASSERT_TRUE(s.disk.partitions_ok) << s.disk.partitions_error;
  ASSERT_EQ(s.disk.partitions.size(), 6u);
  const PartitionStats* root = find_partition(s.disk, "/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->device, "/dev/sda2");  // /dev/root resolved through sysfs
  EXPECT_EQ(root->fstype, "ext4");
  EXPECT_TRUE(root->ok) << root->error;  // statvfs("/") of this machine
  EXPECT_GT(root->total_bytes, 0u);
  const PartitionStats* backup = find_partition(s.disk, "/mnt/backup disk\\old");
  ASSERT_NE(backup, nullptr);
  EXPECT_TRUE(backup->readonly);
  EXPECT_FALSE(backup->ok);  // no such directory here: that partition alone fails
  EXPECT_EQ(backup->error, "cannot statvfs /mnt/backup disk\\old: No such file or directory");
  EXPECT_EQ(find_partition(s.disk, "/srv/media"), nullptr);

  EXPECT_TRUE(s.disk.path.ok) << s.disk.path.error;
  EXPECT_EQ(s.disk.path.mountpoint, "/");
  EXPECT_EQ(s.disk.path.device, "/dev/sda2");
  EXPECT_EQ(s.disk.path.total_bytes, root->total_bytes);

  // cpu2 online, but no cpufreq for it: cpuinfo instead.
  t.load("desktop-1");
  fs::remove(t.path("sys/devices/system/cpu/cpu2/cpufreq/scaling_cur_freq"));
  c.sample_slow(s);
  EXPECT_EQ(s.cpu.frequency_mhz, (std::vector<double>{800.0, 1200.5, 3400.0}));
}

TEST(CollectorFixture, FrequencyFromCpuinfoWithoutCpufreq) {
  TempTree t;
  t.load("vm-0");
  Collector c("/", t.proc(), t.sys());
  Snapshot s;
  c.sample_slow(s);
  EXPECT_EQ(s.cpu.frequency_mhz, (std::vector<double>{2596.13, 2596.13}));
  fs::remove(t.path("proc/cpuinfo"));
  c.sample_slow(s);
  EXPECT_TRUE(s.cpu.frequency_mhz.empty());
}

TEST(CollectorFixture, RecordedMachineTwoSamples) {
  TempTree t;
  t.load("vm-0");
  Collector c("/", t.proc(), t.sys());
  Snapshot s;
  c.sample_fast(s, 0.0);
  t.load("vm-1");
  c.sample_fast(s, 2.0);
  expect_finite(s);
  ASSERT_TRUE(s.cpu.ok && s.load.ok && s.memory.ok && s.network.ok && s.disk.io_ok && s.system.ok);
  EXPECT_EQ(s.cpu.per_core.size(), count_core_lines(fixture("vm-1/proc/stat")));
  std::vector<DiskstatsEntry> before, after;
  const std::string text_before = fixture("vm-0/proc/diskstats");
  parse_diskstats(text_before, before);
  const std::string text_after = fixture("vm-1/proc/diskstats");
  parse_diskstats(text_after, after);
  ASSERT_EQ(s.disk.devices.size(), 1u);  // vda; loop and zram are not storage
  const DiskDeviceStats& vda = s.disk.devices[0];
  EXPECT_EQ(vda.name, "vda");
  EXPECT_DOUBLE_EQ(vda.read_bytes_per_sec, double(after[8].read_sectors - before[8].read_sectors) * 512 / 2);
  EXPECT_EQ(s.disk.read_bytes_per_sec, vda.read_bytes_per_sec);
  EXPECT_EQ(s.system.hostname, "vm");
}

TEST(CollectorFixture, OldKernelWithoutSysfs) {
  TempTree t;
  t.load("old-kernel");
  Collector c("/", t.proc(), t.sys());
  Snapshot s;
  c.sample_fast(s, 1.0);
  ASSERT_TRUE(s.memory.ok);
  EXPECT_EQ(s.memory.available_bytes, (512000 + 128000 + 256000 + 64000) * KiB);
  std::vector<std::string> names;
  for (const DiskDeviceStats& d : s.disk.devices) names.push_back(d.name);
  EXPECT_EQ(names, (std::vector<std::string>{"sda", "hda"}));  // sda1 by its name
  ASSERT_TRUE(s.system.ok);
  EXPECT_FALSE(s.system.hostname.empty());  // no hostname file: gethostname()
  EXPECT_DOUBLE_EQ(s.system.boot_time, 1300000000.0);
  c.sample_slow(s);
  ASSERT_TRUE(s.disk.partitions_ok);
  ASSERT_EQ(s.disk.partitions.size(), 1u);
  EXPECT_EQ(s.disk.partitions[0].device, "/dev/sda1");
  EXPECT_EQ(s.cpu.frequency_mhz, (std::vector<double>{1995.001, 1995.001}));
}

// ---------------------------------------------------------------- missing files

TEST(CollectorMissing, NothingToReadMeansErrorsNotCrashes) {
  Collector c("/nonexistent/metrics-agent", "/nonexistent/proc", "/nonexistent/sys");
  Snapshot s;
  c.sample_fast(s, 1.0);
  c.sample_fast(s, 2.0);
  EXPECT_FALSE(s.cpu.ok);
  EXPECT_EQ(s.cpu.error, "cannot read /nonexistent/proc/stat: No such file or directory");
  EXPECT_TRUE(s.cpu.per_core.empty());
  EXPECT_FALSE(s.load.ok);
  EXPECT_EQ(s.load.error, "cannot read /nonexistent/proc/loadavg: No such file or directory");
  EXPECT_FALSE(s.memory.ok);
  EXPECT_EQ(s.memory.error, "cannot read /nonexistent/proc/meminfo: No such file or directory");
  EXPECT_FALSE(s.network.ok);
  EXPECT_EQ(s.network.error, "cannot read /nonexistent/proc/net/dev: No such file or directory");
  EXPECT_FALSE(s.disk.io_ok);
  EXPECT_EQ(s.disk.io_error, "cannot read /nonexistent/proc/diskstats: No such file or directory");
  EXPECT_FALSE(s.system.ok);
  EXPECT_EQ(s.system.error, "cannot read /nonexistent/proc/uptime: No such file or directory");
  c.sample_slow(s);
  EXPECT_FALSE(s.disk.partitions_ok);
  EXPECT_EQ(s.disk.partitions_error,
            "cannot read /nonexistent/proc/self/mountinfo: No such file or directory");
  EXPECT_TRUE(s.disk.partitions.empty());
  EXPECT_FALSE(s.disk.path.ok);
  EXPECT_EQ(s.disk.path.error, "cannot statvfs /nonexistent/metrics-agent: No such file or directory");
  EXPECT_TRUE(s.cpu.frequency_mhz.empty());
}

TEST(CollectorMissing, OneMissingFileMarksOneGroup) {
  TempTree t;
  t.load("desktop-0");
  fs::remove(t.path("proc/meminfo"));
  Collector c("/", t.proc(), t.sys());
  Snapshot s;
  c.sample_fast(s, 1.0);
  EXPECT_FALSE(s.memory.ok);
  EXPECT_NE(s.memory.error.find("meminfo: No such file or directory"), std::string::npos);
  EXPECT_TRUE(s.cpu.ok && s.load.ok && s.network.ok && s.disk.io_ok && s.system.ok);

  // Garbage instead of the file: a parse error for that group only.
  { std::ofstream(t.path("proc/stat").string()) << "nonsense\n"; }
  { std::ofstream(t.path("proc/loadavg").string()) << "\n"; }
  { std::ofstream(t.path("proc/meminfo").string()) << "MemTotal: 1000 kB\n"; }
  c.sample_fast(s, 2.0);
  EXPECT_FALSE(s.cpu.ok);
  EXPECT_NE(s.cpu.error.find("cannot parse"), std::string::npos);
  EXPECT_FALSE(s.load.ok);
  EXPECT_TRUE(s.memory.ok);
  EXPECT_TRUE(s.network.ok);
  EXPECT_TRUE(s.system.ok);
  EXPECT_GT(s.system.boot_time, 0);  // from uptime when btime is unreadable

  // The stat file comes back: per-core rates restart from zero, no garbage.
  t.load("desktop-1");
  c.sample_fast(s, 3.0);
  ASSERT_TRUE(s.cpu.ok);
  for (double v : s.cpu.per_core) EXPECT_EQ(v, 0);
  expect_finite(s);
}

// ---------------------------------------------------------------- the live machine

TEST(CollectorLive, Invariants) {
  Collector c;
  Snapshot a, b;
  c.sample_fast(a, 100.0);
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  const std::string stat_text = slurp("/proc/stat");
  c.sample_fast(b, 100.12);
  for (const Snapshot* s : {&a, &b}) {
    ASSERT_TRUE(s->cpu.ok) << s->cpu.error;
    ASSERT_TRUE(s->load.ok) << s->load.error;
    ASSERT_TRUE(s->memory.ok) << s->memory.error;
    ASSERT_TRUE(s->network.ok) << s->network.error;
    ASSERT_TRUE(s->disk.io_ok) << s->disk.io_error;
    ASSERT_TRUE(s->system.ok) << s->system.error;
    expect_finite(*s);
    EXPECT_LE(s->memory.available_bytes, s->memory.total_bytes);
    EXPECT_LE(s->memory.free_bytes, s->memory.total_bytes);
    EXPECT_EQ(s->memory.used_bytes + s->memory.available_bytes, s->memory.total_bytes);
    EXPECT_LE(s->memory.swap_used_bytes, s->memory.swap_total_bytes);
    EXPECT_LE(s->cpu.usage_percent, 100.0);
    EXPECT_NEAR(s->cpu.user + s->cpu.nice + s->cpu.system + s->cpu.irq + s->cpu.softirq + s->cpu.idle +
                    s->cpu.iowait + s->cpu.steal,
                100.0, 1e-6);
    EXPECT_EQ(s->cpu.per_core.size(), s->cpu.core_times.size());
    EXPECT_FALSE(s->system.hostname.empty());
    EXPECT_GT(s->system.uptime_seconds, 0);
    EXPECT_NE(find_interface(s->network, "lo"), nullptr);
  }
  EXPECT_EQ(b.cpu.per_core.size(), count_core_lines(stat_text));
  if (a.cpu.core_times.size() == b.cpu.core_times.size()) {
    for (std::size_t i = 0; i < a.cpu.core_times.size(); ++i) {
      EXPECT_LE(a.cpu.core_times[i].user, b.cpu.core_times[i].user);
      EXPECT_LE(a.cpu.core_times[i].idle, b.cpu.core_times[i].idle);
    }
  }
  for (const InterfaceStats& i : a.network.interfaces) {
    if (const InterfaceStats* j = find_interface(b.network, i.name)) {
      EXPECT_LE(i.bytes_recv, j->bytes_recv) << i.name;
      EXPECT_LE(i.packets_sent, j->packets_sent) << i.name;
    }
  }
  for (const DiskDeviceStats& d : a.disk.devices) {
    if (const DiskDeviceStats* e = find_device(b.disk, d.name)) {
      EXPECT_LE(d.reads, e->reads) << d.name;
      EXPECT_LE(d.write_bytes, e->write_bytes) << d.name;
    }
  }
  EXPECT_LE(std::fabs(b.system.boot_time - a.system.boot_time), 1.0);
  const double wall = double(b.timestamp_us) / 1e6;
  EXPECT_NEAR(b.system.boot_time + b.system.uptime_seconds, wall, 5.0);
}

TEST(CollectorLive, SlowSample) {
  Collector c;
  Snapshot s;
  c.sample_slow(s);
  ASSERT_TRUE(s.disk.path.ok) << s.disk.path.error;
  EXPECT_GT(s.disk.path.total_bytes, 0u);
  EXPECT_LE(s.disk.path.used_bytes, s.disk.path.total_bytes);
  EXPECT_LE(s.disk.path.usage_percent, 100.0);
  EXPECT_FALSE(s.disk.path.fstype.empty());
  ASSERT_TRUE(s.disk.partitions_ok) << s.disk.partitions_error;
  std::set<std::string> devices;
  for (const PartitionStats& p : s.disk.partitions) {
    EXPECT_TRUE(devices.insert(p.device).second) << "duplicate device " << p.device;
    // The --disk filesystem (/) is listed whatever its type: an overlay root
    // in a container. The others are real filesystems.
    if (p.mountpoint != s.disk.path.mountpoint) {
      EXPECT_NE(p.fstype, "tmpfs");
      EXPECT_NE(p.fstype, "proc");
      EXPECT_NE(p.fstype, "overlay");
    }
    if (p.ok) {
      EXPECT_LE(p.free_bytes, p.bfree_bytes) << p.mountpoint;
    }
  }
  for (double mhz : s.cpu.frequency_mhz) EXPECT_GT(mhz, 0);
}

TEST(CollectorLive, ConcurrentFastAndSlow) {
  Collector c;
  Snapshot fast, slow;
  std::thread worker([&] {
    for (int i = 0; i < 20; ++i) c.sample_slow(slow);
  });
  for (int i = 0; i < 200; ++i) c.sample_fast(fast, 1.0 + i * 0.01);
  worker.join();
  EXPECT_TRUE(fast.cpu.ok);
  EXPECT_TRUE(slow.disk.path.ok);
}
