// Unit tests of node_exporter's further families (NodeDetail): the pure
// parsers on recorded text, NodeReader on the fixture tree node-rpi (a small
// board with a CPU temperature sensor), a golden exposition of that tree,
// and the parser of the text format behind --textfile-dir.
//
// METRICS_AGENT_REGENERATE=1 rewrites tests/golden/node_rpi_prometheus.txt
// from the current code; review the diff before committing it.
#include "metrics_agent.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "test_fixtures.hpp"

using namespace metrics_agent;
using namespace metrics_agent::detail;

namespace {

const std::string kTree = std::string(METRICS_AGENT_FIXTURES) + "/linux/node-rpi";
const std::string kGoldenPath = std::string(METRICS_AGENT_FIXTURES) + "/../golden/node_rpi_prometheus.txt";

std::map<std::string, double> as_map(const std::vector<NodeValue>& v) {
  std::map<std::string, double> m;
  for (const NodeValue& x : v) m[x.name] = x.value;
  return m;
}

NodeDetail read_tree() {
  NodeReader reader(kTree + "/proc", kTree + "/sys", kTree);
  NodeDetail d;
  reader.read(d);
  return d;
}

// What the tree cannot fix (the clock, uname, this process, timings) made
// constant, so that the exposition is the same on every machine.
void pin_live_parts(NodeDetail& d) {
  d.timex = NodeTimex{};
  d.timex.ok = true;
  d.timex.frequency_adjustment_ratio = 1;
  d.timex.tick_seconds = 0.01;
  d.sysname = "Linux";
  d.release = "6.1.21-v8+";
  d.version = "#1642 SMP PREEMPT";
  d.machine = "aarch64";
  d.nodename = "pi";
  d.domainname = "(none)";
  d.process_cpu_seconds = 0.5;
  d.process_resident_bytes = 4e6;
  d.process_virtual_bytes = 8e7;
  d.process_virtual_max_bytes = 18446744073709551615.0;
  d.process_open_fds = 9;
  d.process_max_fds = 1024;
  for (NodeCollector& c : d.collectors) c.seconds = 0.0001;
}

TEST(NodeParsers, MeminfoKeepsEveryLineUnderNodeExportersNames) {
  std::vector<NodeValue> v;
  parse_meminfo_all("MemTotal:        3884096 kB\nActive(anon):      12 kB\nInactive(file):  7 kB\n"
                    "HugePages_Total:       0\nHugepagesize:       2048 kB\nbroken line\n",
                    v);
  const auto m = as_map(v);
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m.at("MemTotal_bytes"), 3884096.0 * 1024);
  EXPECT_EQ(m.at("Active_anon_bytes"), 12.0 * 1024);
  EXPECT_EQ(m.at("Inactive_file_bytes"), 7.0 * 1024);
  EXPECT_EQ(m.at("HugePages_Total"), 0.0);  // a count: no _bytes
  EXPECT_EQ(m.at("Hugepagesize_bytes"), 2048.0 * 1024);
}

TEST(NodeParsers, VmstatKeepsTheDefaultFields) {
  std::vector<NodeValue> v;
  parse_vmstat("nr_free_pages 1\npgpgin 2\npgpgout 3\npswpin 4\npswpout 5\npgfault 6\npgmajfault 7\n"
               "oom_kill 8\nnuma_hit 9\n",
               v);
  const auto m = as_map(v);
  EXPECT_EQ(m.size(), 7u);
  EXPECT_EQ(m.count("nr_free_pages"), 0u);
  EXPECT_EQ(m.at("oom_kill"), 8);
  parse_vmstat("nr_free_pages 1\n", v, true);
  EXPECT_EQ(v.size(), 1u);
}

TEST(NodeParsers, NetstatPairsNamesWithValuesAndFilters) {
  std::vector<NodeValue> v;
  parse_netstat("Tcp: RtoAlgorithm MaxConn ActiveOpens CurrEstab InErrs\nTcp: 1 -1 56 3 0\n"
                "Udp: InDatagrams NoPorts IgnoredMulti\nUdp: 10 2 5\n"
                "TcpExt: SyncookiesSent ListenDrops TCPTimeouts TCPPureAcks\nTcpExt: 1 2 3 4\n"
                "Ip: Forwarding DefaultTTL\nIp: 2 64\n",
                v);
  const auto m = as_map(v);
  EXPECT_EQ(m.at("Tcp_ActiveOpens"), 56);
  EXPECT_EQ(m.at("Tcp_CurrEstab"), 3);
  EXPECT_EQ(m.at("Tcp_InErrs"), 0);
  EXPECT_EQ(m.at("Udp_NoPorts"), 2);
  EXPECT_EQ(m.at("TcpExt_ListenDrops"), 2);
  EXPECT_EQ(m.at("TcpExt_SyncookiesSent"), 1);
  EXPECT_EQ(m.at("Ip_Forwarding"), 2);
  EXPECT_EQ(m.count("Tcp_MaxConn"), 0u);
  EXPECT_EQ(m.count("TcpExt_TCPPureAcks"), 0u);
  EXPECT_EQ(m.count("Udp_IgnoredMulti"), 0u);
  v.clear();
  parse_netstat("Tcp: MaxConn\nTcp: -1\n", v, true);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].value, -1);  // signed, as the kernel prints it
  v.clear();
  parse_snmp6("Ip6InOctets 100\nIp6InReceives 3\nUdp6InErrors 1\nIcmp6OutMsgs 4\n", v);
  const auto m6 = as_map(v);
  EXPECT_EQ(m6.size(), 3u);
  EXPECT_EQ(m6.at("Ip6_InOctets"), 100);
  EXPECT_EQ(m6.at("Udp6_InErrors"), 1);
  EXPECT_EQ(m6.at("Icmp6_OutMsgs"), 4);
}

TEST(NodeParsers, SockstatTurnsPagesIntoBytes) {
  std::vector<NodeValue> v;
  parse_sockstat("sockets: used 290\nTCP: inuse 5 orphan 0 tw 1 alloc 7 mem 3\nFRAG: inuse 0 memory 0\n", 4096, v);
  const auto m = as_map(v);
  EXPECT_EQ(m.at("sockets_used"), 290);
  EXPECT_EQ(m.at("TCP_mem"), 3);
  EXPECT_EQ(m.at("TCP_mem_bytes"), 3 * 4096);
  EXPECT_EQ(m.at("FRAG_memory"), 0);
  EXPECT_EQ(m.count("FRAG_memory_bytes"), 0u);
}

TEST(NodeParsers, SoftnetPressureArpAndStat) {
  std::vector<NodeSoftnet> s;
  parse_softnet("0062bc04 00000002 0000000a 00000000\n00517bd4 00000000 00000000 00000000\n", s);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].processed, 0x62bc04u);
  EXPECT_EQ(s[0].dropped, 2u);
  EXPECT_EQ(s[0].squeezed, 10u);
  double some = std::nan(""), full = std::nan("");
  EXPECT_TRUE(parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=6071557005\n", some, full));
  EXPECT_DOUBLE_EQ(some, 6071.557005);
  EXPECT_TRUE(std::isnan(full));  // cpu had no "full" line before 5.13
  std::vector<std::pair<std::string, std::uint64_t>> arp;
  parse_arp("IP address HW type Flags HW address Mask Device\n1.2.3.4 0x1 0x2 aa * eth0\n1.2.3.5 0x1 0x2 bb * eth0\n", arp);
  ASSERT_EQ(arp.size(), 1u);
  EXPECT_EQ(arp[0].second, 2u);
  NodeDetail d;
  EXPECT_TRUE(parse_stat_counters("cpu 1 2 3\nintr 99 1 2\nctxt 5\nprocesses 7\nprocs_running 2\nprocs_blocked 1\n", d));
  EXPECT_EQ(d.interrupts, 99);
  EXPECT_EQ(d.context_switches, 5);
  EXPECT_EQ(d.forks, 7);
  EXPECT_EQ(d.procs_running, 2);
  EXPECT_EQ(d.procs_blocked, 1);
}

TEST(NodeParsers, DiskFilterIsNodeExportersDefault) {
  for (const char* ignored : {"ram0", "loop12", "fd0", "sda1", "vdb3", "hda2", "xvda1", "nvme0n1p2"})
    EXPECT_TRUE(node_disk_ignored(ignored)) << ignored;
  for (const char* kept : {"sda", "vda", "nvme0n1", "mmcblk0", "mmcblk0p1", "zram0", "dm-0", "md127", "sdaa1"})
    EXPECT_FALSE(node_disk_ignored(kept)) << kept;
}

TEST(NodeParsers, HwmonChipLabel) {
  EXPECT_EQ(hwmon_chip_label("/sys/devices/platform/coretemp.0", "coretemp\n", "hwmon3"), "platform_coretemp_0");
  EXPECT_EQ(hwmon_chip_label("", "cpu_thermal\n", "hwmon0"), "cpu_thermal");
  EXPECT_EQ(hwmon_chip_label("", "", "hwmon7"), "hwmon7");
}

TEST(NodeReader, ReadsTheFixtureTree) {
  const NodeDetail d = read_tree();
  const auto mem = as_map(d.meminfo);
  EXPECT_GT(mem.at("MemTotal_bytes"), 0);
  ASSERT_EQ(d.netdev.size(), 2u);  // lo left out
  EXPECT_EQ(d.netdev[0].device, "eth0");
  EXPECT_EQ(d.netdev[0].rx[7], 6u);   // multicast
  EXPECT_EQ(d.netdev[0].tx[7], 12u);  // compressed
  std::vector<std::string> disks;
  for (const NodeDisk& k : d.disks) disks.push_back(k.device);
  EXPECT_EQ(disks, (std::vector<std::string>{"mmcblk0", "mmcblk0p1", "mmcblk0p2", "sda", "zram0"}));
  EXPECT_EQ(d.disks[3].fields, 17);
  EXPECT_EQ(d.disks[4].fields, 11);
  ASSERT_EQ(d.netclass.size(), 3u);
  EXPECT_EQ(d.netclass[0].device, "eth0");
  EXPECT_EQ(d.netclass[0].speed_bytes, 125000000.0);
  EXPECT_EQ(d.netclass[0].ifalias, "uplink");
  ASSERT_EQ(d.hwmon.size(), 1u);
  EXPECT_EQ(d.hwmon[0].chip, "cpu_thermal");
  EXPECT_EQ(d.hwmon[0].sensor, "temp1");
  EXPECT_DOUBLE_EQ(d.hwmon[0].celsius, 48.312);
  EXPECT_EQ(d.hwmon_chips.size(), 2u);
  ASSERT_EQ(d.thermal.size(), 1u);
  EXPECT_EQ(d.thermal[0].sensor, "cpu-thermal");
  EXPECT_EQ(d.thermal[0].chip, "0");
  EXPECT_EQ(d.arp.size(), 2u);
  EXPECT_EQ(d.conntrack_entries, 3);
  EXPECT_EQ(d.filefd_maximum, 2466286);
  EXPECT_TRUE(d.os_ok);
  EXPECT_EQ(d.os[1], "raspbian");
  EXPECT_EQ(d.os[6], "Raspbian GNU/Linux 11 (bullseye)");
  EXPECT_EQ(d.process_open_fds, 3);
}

TEST(NodeReader, MissingFilesMarkTheirCollectorOnly) {
  NodeReader reader("/nonexistent/proc", "/nonexistent/sys", "/nonexistent");
  NodeDetail d;
  reader.read(d);
  for (const NodeCollector& c : d.collectors)
    if (c.name != "timex" && c.name != "uname") {
      EXPECT_FALSE(c.ok) << c.name;
    }
  EXPECT_TRUE(d.meminfo.empty());
  // Without meminfo the snapshot's own memory families stay.
  EXPECT_FALSE(prom::superseded("node_memory_MemTotal_bytes", d));
}

TEST(NodeExposition, GoldenFileOfTheFixtureTree) {
  NodeDetail d = read_tree();
  pin_live_parts(d);
  Snapshot s;
  PrometheusSelf self;
  TextfileScrape t;
  t.files.push_back({"/var/lib/node/backup.prom", 1700000000});
  ASSERT_EQ(parse_prom_text("# HELP backup_ok Last backup worked.\n# TYPE backup_ok gauge\nbackup_ok{host=\"pi\"} 1\n",
                            t.families),
            "");
  std::string out;
  const prom::Input in{s, self, &d, &t};
  append_node_families(out, in);
  append_textfile_families(out, 0, t);
  if (const char* e = std::getenv("METRICS_AGENT_REGENERATE"); e && std::string(e) == "1") {
    std::ofstream f(kGoldenPath, std::ios::binary | std::ios::trunc);
    f << out;
    std::cout << "regenerated " << kGoldenPath << "\n";
    return;
  }
  std::ifstream f(kGoldenPath, std::ios::binary);
  std::ostringstream expected;
  expected << f.rdbuf();
  EXPECT_EQ(out, expected.str()) << "differs from " << kGoldenPath
                                 << " (if intended: METRICS_AGENT_REGENERATE=1, then review the diff)";
}

TEST(NodeExposition, ReplacesTheSnapshotsFamiliesOnlyWhenItHasThem) {
  NodeDetail d = read_tree();
  EXPECT_TRUE(prom::superseded("node_memory_MemFree_bytes", d));
  EXPECT_TRUE(prom::superseded("node_network_receive_bytes_total", d));
  EXPECT_TRUE(prom::superseded("node_disk_read_bytes_total", d));
  EXPECT_FALSE(prom::superseded("node_cpu_seconds_total", d));
  EXPECT_FALSE(prom::superseded("node_filesystem_size_bytes", d));
  // Each family once: the whole exposition of a sample with the detail.
  Snapshot s;
  s.memory.ok = true;
  s.memory.total_bytes = 1;
  s.network.ok = true;
  s.network.interfaces.push_back({});
  s.network.interfaces.back().name = "eth0";
  PrometheusSelf self;
  std::string out;
  append_prometheus(out, s, {}, self, &d, nullptr);
  std::map<std::string, int> types;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("# TYPE ", 0) == 0) ++types[line.substr(7, line.find(' ', 7) - 7)];
  for (const auto& [name, n] : types) EXPECT_EQ(n, 1) << name;
  EXPECT_EQ(types.count("node_memory_MemTotal_bytes"), 1u);
  EXPECT_EQ(types.count("node_network_receive_multicast_total"), 1u);
}

// ---- the text format, read

std::string parse_error_of(const std::string& text) {
  std::vector<TextFamily> f;
  return parse_prom_text(text, f);
}

TEST(TextfileParser, AcceptsTheFormat) {
  std::vector<TextFamily> f;
  ASSERT_EQ(parse_prom_text("# a comment\n\n# HELP a_total Things\\n done \\\\ here.\n# TYPE a_total counter\n"
                            "a_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 3\na_total{x=\"2\",} 4.5e3\n"
                            "b -Inf\nc{} NaN\nd  +1.5\n"
                            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"
                            "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n"
                            "e {a=\"b\"} 1",
                            f),
            "");
  ASSERT_EQ(f.size(), 7u);
  EXPECT_EQ(f[0].name, "a_total");
  EXPECT_EQ(f[0].type, "counter");
  EXPECT_EQ(f[0].help, "Things\n done \\ here.");
  ASSERT_EQ(f[0].samples.size(), 2u);
  EXPECT_EQ(f[0].samples[0].labels, "x=\"1\",y=\"q\\\"\\\\\\n\"");
  EXPECT_EQ(f[0].samples[1].value, 4500);
  EXPECT_TRUE(std::isinf(f[1].samples[0].value) && f[1].samples[0].value < 0);
  EXPECT_TRUE(std::isnan(f[2].samples[0].value));
  EXPECT_EQ(f[3].samples[0].value, 1.5);
  EXPECT_EQ(f[4].name, "h");
  EXPECT_EQ(f[4].samples.size(), 4u);
  EXPECT_EQ(f[5].samples.size(), 3u);
  EXPECT_EQ(f[6].samples[0].labels, "a=\"b\"");
}

TEST(TextfileParser, RefusesWhatNodeExporterRefuses) {
  const char* bad[] = {
      "a 1 1700000000000\n",                  // a timestamp
      "a 1\nb 1\na 2\n",                      // not contiguous
      "a 1\na 1\n",                           // the same series twice
      "a{x=\"1\",x=\"2\"} 1\n",               // a label twice
      "# TYPE a gauge\n# TYPE a counter\na 1\n",
      "# HELP a x\n# HELP a y\na 1\n",
      "a 1\n# TYPE a gauge\n",                // TYPE after the samples
      "# TYPE a wibble\na 1\n",
      "1a 1\n",
      "a{1x=\"1\"} 1\n",
      "a{__name__=\"b\"} 1\n",
      "a{x=\"1} 1\n",
      "a{x=\"\\q\"} 1\n",
      "a{x=1} 1\n",
      "a one\n",
      "a 0x10\n",
      "a\n",
      "a{x=\"1\"}1\n",
      "# TYPE h histogram\nh_bucket 1\n",     // a bucket without le
  };
  for (const char* text : bad) EXPECT_NE(parse_error_of(text), "") << text;
  std::vector<TextFamily> f(1);
  EXPECT_NE(parse_prom_text("a 1\nbroken\n", f), "");
  EXPECT_EQ(f.size(), 1u) << "a refused file adds nothing";
  EXPECT_NE(parse_error_of("a 1\nb 2\nc x\n"), "");
  EXPECT_NE(parse_error_of("a 1\nb 2\nc x\n").find("line 3"), std::string::npos);
}

TEST(TextfileDirectory, BadFilesAreLeftOutAndFlagged) {
  test_fixtures::TempTree tree;
  const std::string dir = tree.path("textfiles").string();
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name) << text;
  };
  write("a.prom", "# TYPE jobs gauge\njobs{q=\"a\"} 1\n");
  write("b.prom", "# TYPE jobs gauge\njobs{q=\"b\"} 2\nlast_run 17\n");
  write("c.prom", "garbage{\n");
  write("d.prom", "# TYPE jobs counter\njobs{q=\"d\"} 3\n");  // contradicts a.prom's type
  write("e.prom", "jobs{q=\"a\"} 5\n");                       // repeats a.prom's series
  write("notes.txt", "not read\n");
  NodeExposition n("", dir);
  TextfileScrape t;
  n.read_textfiles(dir, t);
  EXPECT_TRUE(t.error);
  ASSERT_EQ(t.files.size(), 2u);
  EXPECT_EQ(t.files[0].path, dir + "/a.prom");
  EXPECT_EQ(t.files[1].path, dir + "/b.prom");
  ASSERT_EQ(t.families.size(), 2u);
  EXPECT_EQ(t.families[0].name, "jobs");
  EXPECT_EQ(t.families[0].samples.size(), 2u);
  EXPECT_EQ(t.families[1].name, "last_run");
  EXPECT_NE(n.textfile_problem(), "");

  std::filesystem::remove(dir + "/c.prom");
  std::filesystem::remove(dir + "/d.prom");
  std::filesystem::remove(dir + "/e.prom");
  n.read_textfiles(dir, t);
  EXPECT_FALSE(t.error);
  // A family that clashes with one of the agent's is left out of /metrics.
  write("f.prom", "node_load1 99\n");
  n.read_textfiles(dir, t);
  Snapshot s;
  s.load.ok = true;
  PrometheusSelf self;
  std::string out;
  append_prometheus(out, s, {}, self, nullptr, &t);
  EXPECT_EQ(out.find("node_load1 99"), std::string::npos);
  EXPECT_NE(out.find("jobs{q=\"b\"} 2"), std::string::npos);
}

}  // namespace

namespace {

// The slow part reads the temperatures for the rich stream: the board's
// sensor and its thermal zone, `null` on a host without any.
TEST(Sensors, TheRichStreamCarriesTheFixtureBoardsTemperatures) {
  Collector c("/", kTree + "/proc", kTree + "/sys", "");
  Snapshot s;
  c.sample_slow(s);
  ASSERT_EQ(s.sensors.size(), 2u);
  EXPECT_EQ(s.sensors[0].chip, "cpu_thermal");
  EXPECT_EQ(s.sensors[1].chip, "thermal_zone0");
  EXPECT_EQ(s.sensors[1].sensor, "cpu-thermal");
  std::string json;
  write_rich_data(json, s, kRichSensors);
  EXPECT_EQ(json,
            "{\"sensors\":{\"temperatures\":[{\"chip\":\"cpu_thermal\",\"sensor\":\"temp1\",\"celsius\":48.3},"
            "{\"chip\":\"thermal_zone0\",\"sensor\":\"cpu-thermal\",\"celsius\":48.3}]}}");
  s.sensors.clear();
  json.clear();
  write_rich_data(json, s, kRichSensors);
  EXPECT_EQ(json, "{\"sensors\":null}");
}

}  // namespace

// The textfiles' samples as gauges: each sample without labels whose name an
// alert rule can spell becomes a gauge of that name.
TEST(TextfileGauges, UnlabelledSamplesBecomeGauges) {
  std::vector<TextFamily> f;
  ASSERT_EQ(parse_prom_text("# HELP backup_age_seconds Since the last backup.\n# TYPE backup_age_seconds gauge\n"
                            "backup_age_seconds 120\njobs{q=\"a\"} 1\njobs 3\nrule:ratio 0.5\n"
                            "# TYPE lat summary\nlat{quantile=\"0.5\"} 2\nlat_sum 8\nlat_count 4\n",
                            f),
            "");
  TextfileScrape t;
  t.families = f;
  const auto names = TextfileGauges::names(t);
  ASSERT_EQ(names.size(), 4u);
  EXPECT_EQ(names[0].first, "backup_age_seconds");
  EXPECT_EQ(names[0].second, "Since the last backup.");
  EXPECT_EQ(names[1].first, "jobs");
  EXPECT_EQ(names[2].first, "lat_sum");
  EXPECT_EQ(names[3].first, "lat_count");
  EXPECT_EQ(TextfileGauges::value_of(t, "backup_age_seconds"), 120);
  EXPECT_EQ(TextfileGauges::value_of(t, "jobs"), 3) << "the labelled series is not the gauge";
  EXPECT_TRUE(std::isnan(TextfileGauges::value_of(t, "gone")));
}

TEST(TextfileGauges, AgentReadsThemEveryTickAndABadFileBlanksOnlyItsOwn) {
  test_fixtures::TempTree tree;
  const std::string dir = tree.path("textfiles").string();
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name) << text;
  };
  write("a.prom", "queue_depth 7\n");
  write("b.prom", "backup_ok 1\ncpu 5\n");
  Options o;
  o.textfile_dir = dir;
  o.alerts = {"queue_depth>50:0s", "backup_ok<1"};
  Agent agent(o);
  std::string why;
  EXPECT_TRUE(agent.validate(&why)) << why;
  std::string json = agent.collect_once_json(0.01);
  EXPECT_NE(json.find("\"queue_depth\":7"), std::string::npos) << json;
  EXPECT_NE(json.find("\"backup_ok\":1"), std::string::npos) << json;
  EXPECT_EQ(json.find("\"cpu\":5"), std::string::npos) << "a built-in alert name is not taken over: " << json;
  write("a.prom", "queue_depth 80\n");
  write("b.prom", "backup_ok{broken 1\n");
  json = agent.collect_once_json(0.01);
  EXPECT_NE(json.find("\"queue_depth\":80"), std::string::npos) << json;
  EXPECT_EQ(json.find("\"backup_ok\":1"), std::string::npos) << json;

  // On /metrics the textfile's family stands for the gauge, also when its file failed.
  Snapshot snap;
  snap.custom = {{"backup_ok", "", std::nan("")}, {"mine", "", 2}};
  std::string out;
  append_prometheus(out, snap, {}, PrometheusSelf{}, nullptr, nullptr, 1);
  EXPECT_EQ(out.find("backup_ok"), std::string::npos) << out;
  EXPECT_NE(out.find("mine 2"), std::string::npos) << out;

  // --gauge of the same name takes the textfile sample's place.
  Agent other(o);
  ASSERT_TRUE(other.add_gauge("queue_depth", "mine", [] { return 42.0; }));
  json = other.collect_once_json(0.01);
  EXPECT_NE(json.find("\"queue_depth\":42"), std::string::npos) << json;
}
