// Golden files generated through the real collector: recorded /proc and /sys
// trees (tests/fixtures/linux) sampled twice at fixed times, then serialized
// as the rich stream, the flat stream and /metrics. Where the collector reads
// the live machine (statvfs of each mount, the wall clock), fixed values take
// its place, so that the files depend on the fixtures alone.
//
// Regenerate them on purpose with
//     METRICS_AGENT_REGENERATE=1 build/cmake/tests/unit_tests --gtest_filter='FixtureGolden*'
#include "metrics_agent.hpp"
#include "test_fixtures.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace fs = std::filesystem;
using namespace metrics_agent;
using namespace metrics_agent::detail;

namespace {

using test_fixtures::kLinux;
using test_util::expect_golden;
using test_util::slurp;
using test_util::without_version;

using test_fixtures::TempTree;

constexpr std::int64_t kTimestampUs = 1762777847123456;  // 2025-11-10T12:30:47.123456Z
constexpr std::int64_t kTickUs = 1762777847000000;

// statvfs reads this machine's filesystems: every partition gets fixed
// numbers instead (the n-th one n+1 times a base), read-only as the
// fixture's mount table says.
void fixed_filesystem(PartitionStats& p, std::uint64_t n, const std::vector<MountEntry>& mounts) {
  FsCounts c;
  c.block_size = 4096;
  c.blocks = 1000000 * (n + 1);
  c.blocks_free = 400000 * (n + 1);
  c.blocks_avail = 350000 * (n + 1);
  c.files = 65536 * (n + 1);
  c.files_free = 50000 * (n + 1);
  p.readonly = false;
  for (const MountEntry& m : mounts)
    if (m.mountpoint == p.mountpoint)
      p.readonly = has_mount_option(m.options, "ro") || has_mount_option(m.super_options, "ro");
  partition_usage(c, p);
  p.ok = true;
  p.error.clear();
}

// `first` then `second` through the collector, two seconds apart, with the
// slow part (partitions, frequencies) in between as the agent does it.
Snapshot sample_fixtures(const std::string& first, const std::string& second) {
  TempTree t;
  t.load(first);
  Collector c("/", t.proc(), t.sys());
  Snapshot s;
  c.sample_fast(s, 1000.0);
  c.sample_slow(s);
  t.load(second);
  c.sample_fast(s, 1002.0);
  s.timestamp_us = kTimestampUs;

  std::vector<MountEntry> mounts;
  parse_mountinfo(slurp(kLinux + "/" + second + "/proc/self/mountinfo"), mounts);
  for (std::size_t i = 0; i < s.disk.partitions.size(); ++i) fixed_filesystem(s.disk.partitions[i], i, mounts);
  fixed_filesystem(s.disk.path, 0, mounts);
  return s;
}


void expect_goldens(const std::string& name, const Snapshot& s) {
  expect_golden("fixture_" + name + "_rich.json", rich_json(s, kRichAll, kTickUs));
  expect_golden("fixture_" + name + "_flat.json", flat_json(s, kFlatAll));
  std::string text;
  append_prometheus(text, s, {}, PrometheusSelf{});
  ASSERT_FALSE(text.empty());
  ASSERT_EQ(text.back(), '\n');
  text.pop_back();
  expect_golden("fixture_" + name + "_prometheus.txt", without_version(text));
}

}  // namespace

TEST(FixtureGolden, Desktop) {
  const Snapshot s = sample_fixtures("desktop-0", "desktop-1");
  ASSERT_TRUE(s.cpu.ok && s.load.ok && s.memory.ok && s.network.ok && s.disk.io_ok && s.disk.partitions_ok &&
              s.system.ok);
  expect_goldens("desktop", s);
}

TEST(FixtureGolden, VirtualMachine) {
  const Snapshot s = sample_fixtures("vm-0", "vm-1");
  ASSERT_TRUE(s.cpu.ok && s.load.ok && s.memory.ok && s.network.ok && s.disk.io_ok && s.system.ok);
  expect_goldens("vm", s);
}
