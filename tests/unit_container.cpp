// Unit tests of the container view: the watched filesystem is always a
// partition (an overlay root, a tmpfs --disk), cgroup v1/v2 discovery and
// limits on recorded trees, the host root, and the container group's output.
#include "metrics_agent.hpp"

#include <gtest/gtest.h>

#include "test_fixtures.hpp"
#include "test_util.hpp"

#include <cmath>
#include <fstream>
#include <sstream>

using namespace metrics_agent;
using namespace metrics_agent::detail;

namespace {

using test_fixtures::kLinux;

using test_util::slurp;

std::vector<MountEntry> mounts_of(const std::string& tree) {
  std::vector<MountEntry> m;
  parse_mountinfo(slurp(kLinux + "/" + tree + "/proc/self/mountinfo"), m);
  return m;
}

std::size_t index_of(const std::vector<MountEntry>& mounts, const std::string& mountpoint) {
  const MountEntry* m = find_mount_for(mounts, mountpoint);
  return m ? std::size_t(m - mounts.data()) : mounts.size();
}

std::vector<std::string> chosen(const std::vector<MountEntry>& mounts, const std::vector<std::size_t>& keep) {
  std::vector<std::string> out;
  for (std::size_t i : keep) out.push_back(mounts[i].mountpoint);
  return out;
}

// ---------------------------------------------------------------- the watched filesystem

TEST(WatchedFilesystem, OverlayRootIsAPartition) {
  const auto mounts = mounts_of("container-overlay");
  std::vector<std::string> types;
  parse_filesystems(slurp(kLinux + "/container-overlay/proc/filesystems"), types);
  // Block-backed types only: the overlay root is not one of them...
  EXPECT_EQ(chosen(mounts, select_partitions(mounts, types)), std::vector<std::string>{"/etc/resolv.conf"});
  // ...but as the --disk filesystem it is always reported, and first.
  const auto keep = select_partitions(mounts, types, index_of(mounts, "/"));
  EXPECT_EQ(chosen(mounts, keep), (std::vector<std::string>{"/", "/etc/resolv.conf"}));
  EXPECT_EQ(mounts[keep[0]].fstype, "overlay");
}

TEST(WatchedFilesystem, TmpfsDiskIsAPartitionAndTheRestStaysFiltered) {
  const auto mounts = mounts_of("container-overlay");
  std::vector<std::string> types;
  parse_filesystems(slurp(kLinux + "/container-overlay/proc/filesystems"), types);
  const auto keep = select_partitions(mounts, types, index_of(mounts, "/dev/shm/some/dir"));
  EXPECT_EQ(chosen(mounts, keep), (std::vector<std::string>{"/dev/shm", "/etc/resolv.conf"}));
  EXPECT_EQ(mounts[keep[0]].fstype, "tmpfs");
}

TEST(WatchedFilesystem, AWatchedBlockMountIsNotListedTwice) {
  std::vector<MountEntry> mounts;
  parse_mountinfo(slurp(kLinux + "/desktop-0/proc/self/mountinfo"), mounts);
  std::vector<std::string> types;
  parse_filesystems(slurp(kLinux + "/desktop-0/proc/filesystems"), types);
  const auto plain = chosen(mounts, select_partitions(mounts, types));
  EXPECT_EQ(chosen(mounts, select_partitions(mounts, types, index_of(mounts, "/home"))), plain);
}

TEST(WatchedFilesystem, CollectorOnAnOverlayRootReportsIt) {
  // The fixture's mount table says / is an overlay; statvfs runs on this machine's /.
  Collector c("/", kLinux + "/container-overlay/proc", kLinux + "/container-overlay/sys");
  Snapshot s;
  c.sample_slow(s);
  ASSERT_TRUE(s.disk.partitions_ok) << s.disk.partitions_error;
  ASSERT_FALSE(s.disk.partitions.empty());
  const PartitionStats& root = s.disk.partitions.front();
  EXPECT_EQ(root.mountpoint, "/");
  EXPECT_EQ(root.fstype, "overlay");
  EXPECT_TRUE(root.ok) << root.error;
  EXPECT_GT(root.total_bytes, 0u);
  EXPECT_EQ(s.disk.path.fstype, "overlay");
  EXPECT_EQ(s.disk.path.total_bytes, root.total_bytes);
}

// ---------------------------------------------------------------- the host root

TEST(HostRoot, MountPointsAreTheHostsAndMeasuredUnderTheRoot) {
  // The host's / seen at <fixtures>/linux/container-overlay: its own mount
  // table comes from proc/1 when there is one, else proc/self.
  const std::string root = kLinux + "/container-overlay";
  Collector c("/", root + "/proc", root + "/sys", root);
  Snapshot s;
  c.sample_slow(s);
  ASSERT_TRUE(s.disk.partitions_ok) << s.disk.partitions_error;
  ASSERT_FALSE(s.disk.partitions.empty());
  EXPECT_EQ(s.disk.partitions.front().mountpoint, "/");
  // statvfs ran on the fixture directory, which is on this machine's disk.
  EXPECT_TRUE(s.disk.partitions.front().ok) << s.disk.partitions.front().error;
  EXPECT_EQ(s.disk.path.mountpoint, "/");
  EXPECT_EQ(s.disk.path.fstype, "overlay");
  EXPECT_TRUE(s.disk.path.ok) << s.disk.path.error;
}

// ---------------------------------------------------------------- cgroup files

TEST(CgroupParse, ProcSelfCgroup) {
  std::vector<CgroupLine> lines;
  parse_proc_cgroup("12:pids:/docker/ab\n4:cpu,cpuacct:/docker/ab\n1:name=systemd:/x\n0::/\nbad line\n", lines);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_FALSE(lines[0].unified);
  EXPECT_EQ(lines[1].controllers, "cpu,cpuacct");
  EXPECT_EQ(lines[1].path, "/docker/ab");
  EXPECT_TRUE(lines[3].unified);
  EXPECT_EQ(lines[3].path, "/");
}

TEST(CgroupParse, Limits) {
  double v = 0, q = 0, p = 0;
  EXPECT_TRUE(parse_cgroup_limit("max\n", v));
  EXPECT_TRUE(std::isnan(v));
  EXPECT_TRUE(parse_cgroup_limit("-1\n", v));
  EXPECT_TRUE(std::isnan(v));
  EXPECT_TRUE(parse_cgroup_limit("9223372036854771712\n", v));  // v1's "unlimited"
  EXPECT_TRUE(std::isnan(v));
  EXPECT_TRUE(parse_cgroup_limit("268435456\n", v));
  EXPECT_EQ(v, 268435456.0);
  EXPECT_FALSE(parse_cgroup_limit("12 34", v));
  EXPECT_FALSE(parse_cgroup_limit("", v));
  EXPECT_TRUE(parse_cpu_max("50000 100000\n", q, p));
  EXPECT_EQ(q, 50000.0);
  EXPECT_EQ(p, 100000.0);
  EXPECT_TRUE(parse_cpu_max("max 100000\n", q, p));
  EXPECT_TRUE(std::isnan(q));
  EXPECT_FALSE(parse_cpu_max("max", q, p));
  std::uint64_t n = 0;
  EXPECT_TRUE(keyed_value("usage_usec 5\nthrottled_usec 7\n", "throttled_usec", n));
  EXPECT_EQ(n, 7u);
  EXPECT_FALSE(keyed_value("usage_usec 5\n", "throttled", n));
}

TEST(CgroupParse, DirectoriesFollowTheMountRoot) {
  MountEntry m;
  m.mountpoint = "/sys/fs/cgroup/memory";
  m.root = "/docker/ab";
  EXPECT_EQ(cgroup_dir(m, "/docker/ab"), "/sys/fs/cgroup/memory");
  EXPECT_EQ(cgroup_dir(m, "/docker/ab/child"), "/sys/fs/cgroup/memory/child");
  EXPECT_EQ(cgroup_dir(m, "/docker/abc"), "/sys/fs/cgroup/memory");  // not below the root
  m.root = "/";
  EXPECT_EQ(cgroup_dir(m, "/"), "/sys/fs/cgroup/memory");
  EXPECT_EQ(cgroup_dir(m, "/a/b"), "/sys/fs/cgroup/memory/a/b");
}

// A Collector whose cgroup files come from a recorded tree.
Snapshot sample_cgroup(const std::string& tree, int samples = 1) {
  const std::string root = kLinux + "/" + tree;
  Collector c("/", root + "/proc", root + "/sys", "", root);
  Snapshot s;
  for (int i = 0; i < samples; ++i) c.sample_fast(s, 1000.0 + i);
  return s;
}

TEST(CgroupCollector, V2WithLimits) {
  const ContainerStats c = sample_cgroup("cgroup-v2").container;
  EXPECT_TRUE(c.present);
  EXPECT_TRUE(c.ok) << c.error;
  EXPECT_EQ(c.cgroup_version, 2);
  EXPECT_EQ(c.cgroup, "/system.slice/app.service");
  EXPECT_DOUBLE_EQ(c.cpu_limit_cores, 0.5);
  EXPECT_DOUBLE_EQ(c.cpu_usage_seconds, 7.5);
  EXPECT_DOUBLE_EQ(c.cpu_throttled_seconds, 1.5);
  EXPECT_EQ(c.cpu_periods, 120);
  EXPECT_EQ(c.cpu_throttled_periods, 30);
  EXPECT_EQ(c.cpu_quota_us, 50000);
  EXPECT_EQ(c.cpu_period_us, 100000);
  EXPECT_EQ(c.memory_usage_bytes, 104857600);
  EXPECT_EQ(c.memory_used_bytes, 104857600 - 31457280);  // minus inactive_file
  EXPECT_EQ(c.memory_limit_bytes, 268435456);
  EXPECT_DOUBLE_EQ(c.memory_usage_percent, (104857600.0 - 31457280.0) / 268435456.0 * 100.0);
  EXPECT_EQ(c.pids, 7);
  EXPECT_EQ(c.pids_limit, 100);
}

TEST(CgroupCollector, V2WithoutLimitsIsNotAContainer) {
  const ContainerStats c = sample_cgroup("cgroup-v2-unlimited").container;
  EXPECT_FALSE(c.present);
  EXPECT_TRUE(c.error.empty()) << c.error;
  EXPECT_TRUE(std::isnan(c.memory_limit_bytes));
  EXPECT_TRUE(std::isnan(c.cpu_limit_cores));
  EXPECT_TRUE(std::isnan(c.pids_limit));
}

TEST(CgroupCollector, V1InsideAContainer) {
  const ContainerStats c = sample_cgroup("cgroup-v1").container;
  EXPECT_TRUE(c.present);
  EXPECT_TRUE(c.ok) << c.error;
  EXPECT_EQ(c.cgroup_version, 1);
  EXPECT_EQ(c.cgroup, "/docker/0123abcd");
  EXPECT_DOUBLE_EQ(c.cpu_limit_cores, 1.5);
  EXPECT_DOUBLE_EQ(c.cpu_usage_seconds, 2.5);
  EXPECT_DOUBLE_EQ(c.cpu_throttled_seconds, 0.25);
  EXPECT_EQ(c.cpu_throttled_periods, 4);
  EXPECT_EQ(c.memory_used_bytes, 73400320 - 10485760);
  EXPECT_EQ(c.memory_limit_bytes, 536870912);
  EXPECT_EQ(c.pids, 3);
  EXPECT_TRUE(std::isnan(c.pids_limit));  // "max"
}

TEST(CgroupCollector, V1UnlimitedValueMeansNoLimit) {
  const ContainerStats c = sample_cgroup("cgroup-v1-unlimited").container;
  EXPECT_FALSE(c.present);
  EXPECT_TRUE(c.error.empty());
  EXPECT_TRUE(std::isnan(c.memory_limit_bytes));
  EXPECT_TRUE(std::isnan(c.cpu_limit_cores));
  EXPECT_EQ(c.memory_used_bytes, 1048576000 - 4096);
  EXPECT_TRUE(std::isnan(c.pids));  // no pids hierarchy
}

TEST(CgroupCollector, MissingControllerLeavesItsNumbersNull) {
  const ContainerStats c = sample_cgroup("cgroup-v1-no-cpu").container;
  EXPECT_TRUE(c.present);
  EXPECT_TRUE(c.ok);
  EXPECT_EQ(c.memory_limit_bytes, 4000000);
  EXPECT_DOUBLE_EQ(c.memory_usage_percent, 25.0);
  EXPECT_TRUE(std::isnan(c.cpu_usage_seconds));
  EXPECT_TRUE(std::isnan(c.cpu_limit_cores));
  EXPECT_TRUE(std::isnan(c.cpu_usage_percent));
}

TEST(CgroupCollector, NoCgroupFileAtAll) {
  Collector c("/", "/nonexistent/proc", "/nonexistent/sys");
  Snapshot s;
  c.sample_fast(s, 1.0);
  EXPECT_FALSE(s.container.present);
  EXPECT_TRUE(s.container.error.empty());
}

TEST(CgroupStats, CpuShareOfTheQuotaOrOfAllCores) {
  CgroupReading r;
  r.usage_seconds = 10.5;
  r.quota_us = 50000;
  r.period_us = 100000;
  ContainerStats c;
  container_stats(r, 10.0, 1.0, 4, 1e9, c);  // 0.5 s of CPU in 1 s against 0.5 cores
  EXPECT_DOUBLE_EQ(c.cpu_usage_percent, 100.0);
  container_stats(r, 10.25, 1.0, 4, 1e9, c);
  EXPECT_DOUBLE_EQ(c.cpu_usage_percent, 50.0);
  r.quota_us = std::nan("");
  container_stats(r, 10.0, 1.0, 4, 1e9, c);  // no quota: of 4 host cores
  EXPECT_DOUBLE_EQ(c.cpu_usage_percent, 12.5);
  EXPECT_FALSE(c.present);
  container_stats(r, std::nan(""), 1.0, 4, 1e9, c);  // no previous reading
  EXPECT_TRUE(std::isnan(c.cpu_usage_percent));
  container_stats(r, 11.0, 1.0, 4, 1e9, c);  // a counter that went down
  EXPECT_TRUE(std::isnan(c.cpu_usage_percent));
}

// ---------------------------------------------------------------- output

Snapshot limited() {
  Snapshot s;
  s.timestamp_us = 1762777845123456;
  s.cpu.ok = true;
  s.cpu.usage_percent = 12.5;
  s.memory.ok = true;
  s.memory.usage_percent = 40;
  ContainerStats& c = s.container;
  c.present = c.ok = true;
  c.cgroup_version = 2;
  c.cgroup = "/system.slice/app.service";
  c.cpu_usage_percent = 98.76;
  c.cpu_limit_cores = 0.5;
  c.cpu_usage_seconds = 7.5;
  c.cpu_throttled_seconds = 1.5;
  c.cpu_quota_us = 50000;
  c.cpu_period_us = 100000;
  c.cpu_periods = 120;
  c.cpu_throttled_periods = 30;
  c.memory_usage_bytes = 104857600;
  c.memory_used_bytes = 73400320;
  c.memory_limit_bytes = 268435456;
  c.memory_usage_percent = 27.34;
  c.pids = 7;
  return s;
}

TEST(ContainerOutput, RichGroup) {
  std::string out;
  write_rich_data(out, limited(), kRichContainer);
  EXPECT_EQ(out,
            "{\"container\":{\"cgroup\":\"/system.slice/app.service\",\"cgroup_version\":2,"
            "\"cpu_usage_percent\":98.76,\"cpu_limit_cores\":0.5,\"cpu_throttled_seconds\":1.5,"
            "\"memory_used_bytes\":73400320,\"memory_limit_bytes\":268435456,\"memory_usage_percent\":27.34,"
            "\"pids\":7,\"pids_limit\":null}}");
  Snapshot none;
  out.clear();
  write_rich_data(out, none, kRichContainer);
  EXPECT_EQ(out, "{\"container\":null}");
  EXPECT_EQ(rich_errors(none, kRichAll).find("container"), std::string::npos);
  Snapshot failed = limited();
  failed.container.ok = false;
  failed.container.error = "cannot read the cgroup's files";
  EXPECT_NE(rich_errors(failed, kRichContainer).find("container: cannot read"), std::string::npos);
}

TEST(ContainerOutput, FlatScope) {
  const Snapshot s = limited();
  EXPECT_EQ(flat_json(s, kFlatCpu | kFlatMemory), "{\"cpu\": 12.5, \"memory\": 40, \"timestamp\": \"2025-11-10T12:30:45.123456\"}");
  EXPECT_EQ(flat_json(s, kFlatCpu | kFlatMemory, true),
            "{\"cpu\": 98.76, \"memory\": 27.34, \"timestamp\": \"2025-11-10T12:30:45.123456\"}");
  Snapshot host = s;
  host.container.present = false;  // outside a limited cgroup: host-wide
  EXPECT_EQ(flat_json(host, kFlatCpu, true), "{\"cpu\": 12.5, \"timestamp\": \"2025-11-10T12:30:45.123456\"}");
}

TEST(ContainerOutput, PrometheusUsesCadvisorNames) {
  std::string text;
  PrometheusSelf self;
  append_prometheus(text, limited(), {}, self);
  const char* want[] = {
      "container_cpu_usage_seconds_total{id=\"/system.slice/app.service\"} 7.5\n",
      "container_cpu_cfs_throttled_seconds_total{id=\"/system.slice/app.service\"} 1.5\n",
      "container_cpu_cfs_throttled_periods_total{id=\"/system.slice/app.service\"} 30\n",
      "container_spec_cpu_quota{id=\"/system.slice/app.service\"} 50000\n",
      "container_spec_cpu_period{id=\"/system.slice/app.service\"} 100000\n",
      "container_memory_working_set_bytes{id=\"/system.slice/app.service\"} 73400320\n",
      "container_memory_usage_bytes{id=\"/system.slice/app.service\"} 104857600\n",
      "container_spec_memory_limit_bytes{id=\"/system.slice/app.service\"} 268435456\n",
      "container_threads{id=\"/system.slice/app.service\"} 7\n",
      "container_threads_max{id=\"/system.slice/app.service\"} 0\n",
      "# TYPE container_cpu_usage_seconds_total counter\n"};
  for (const char* w : want) EXPECT_NE(text.find(w), std::string::npos) << w << "\nin:\n" << text;
  std::string plain;
  append_prometheus(plain, Snapshot{}, {}, self);
  EXPECT_EQ(plain.find("container_"), std::string::npos);
}

}  // namespace
