// Unit tests of the Prometheus text exposition (GET /metrics): escaping,
// number formatting, a golden exposition of a hand-built Snapshot, and the
// format's structural rules on that and on a live sample of this machine.
//
// METRICS_AGENT_REGENERATE=1 rewrites tests/golden/prometheus.txt from the
// current code; review the diff before committing it.
#include "metrics_agent.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

using namespace metrics_agent;
using namespace metrics_agent::detail;

namespace {

const std::string kGolden = std::string(METRICS_AGENT_FIXTURES) + "/../golden/prometheus.txt";

std::string label(std::string_view v) {
  std::string out;
  append_label_value(out, v);
  return out;
}

std::string number(double v) {
  std::string out;
  append_prom_number(out, v);
  return out;
}

std::string metric_name(std::string_view v) {
  std::string out;
  append_metric_name(out, v);
  return out;
}

double parse_back(const std::string& s) {
  double d = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), d);
  EXPECT_TRUE(r.ec == std::errc() && r.ptr == s.data() + s.size()) << s;
  return d;
}

// ------------------------------------------------------------ structural check

bool valid_name(std::string_view n, bool metric) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (metric && c == ':');
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool valid_value(std::string_view v) {
  if (v == "NaN" || v == "+Inf" || v == "-Inf") return true;
  double d = 0;
  const auto r = std::from_chars(v.data(), v.data() + v.size(), d);
  return r.ec == std::errc() && r.ptr == v.data() + v.size() && std::isfinite(d);
}

// Checks the rules of text format 0.0.4 that Prometheus and promtool enforce:
// every sample's metric has one HELP and one TYPE line before it; a family's
// samples are contiguous; counters end in _total; names, label sets and values
// parse; no series appears twice. Returns the problems found, one per line.
std::string structural_problems(const std::string& text) {
  std::ostringstream bad;
  std::map<std::string, std::string> type_of;
  std::set<std::string> helped, finished, series;
  std::string current;  // the family whose samples are being read
  if (!text.empty() && text.back() != '\n') bad << "no newline at the end\n";
  std::istringstream in(text);
  std::string line;
  int no = 0;
  while (std::getline(in, line)) {
    ++no;
    const std::string where = "line " + std::to_string(no) + " '" + line + "': ";
    if (line.empty()) {
      bad << where << "empty line\n";
      continue;
    }
    if (line[0] == '#') {
      std::istringstream ls(line);
      std::string hash, kind, name, rest;
      ls >> hash >> kind >> name;
      std::getline(ls, rest);
      if (kind != "HELP" && kind != "TYPE") continue;
      if (!valid_name(name, true)) bad << where << "bad metric name\n";
      if (finished.count(name) || (!current.empty() && current != name && (helped.count(name) || type_of.count(name))))
        bad << where << "family split\n";
      if (current != name) {
        if (!current.empty()) finished.insert(current);
        current = name;
      }
      if (kind == "HELP") {
        if (!helped.insert(name).second) bad << where << "second HELP\n";
        if (type_of.count(name)) bad << where << "HELP after TYPE\n";
        if (rest.size() < 2) bad << where << "empty HELP\n";
      } else {
        const std::string type = rest.empty() ? "" : rest.substr(1);
        if (type_of.count(name)) bad << where << "second TYPE\n";
        if (type != "counter" && type != "gauge") bad << where << "unexpected type\n";
        type_of[name] = type;
        if (type == "counter" && (name.size() < 6 || name.compare(name.size() - 6, 6, "_total") != 0))
          bad << where << "counter without _total\n";
      }
      continue;
    }
    std::size_t end = line.find_first_of("{ ");
    if (end == std::string::npos) {
      bad << where << "no value\n";
      continue;
    }
    const std::string name = line.substr(0, end);
    if (name != current || !helped.count(name) || !type_of.count(name))
      bad << where << "sample without its own HELP and TYPE just before\n";
    std::string labels;
    if (line[end] == '{') {
      std::size_t i = end + 1;
      std::set<std::string> names;
      while (i < line.size() && line[i] != '}') {
        const std::size_t eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          bad << where << "bad label\n";
          break;
        }
        const std::string lname = line.substr(i, eq - i);
        if (!valid_name(lname, false) || !names.insert(lname).second) bad << where << "bad label name\n";
        i = eq + 2;
        for (; i < line.size() && line[i] != '"'; ++i) {
          if (line[i] == '\\') {
            ++i;
            if (i >= line.size() || (line[i] != '\\' && line[i] != '"' && line[i] != 'n'))
              bad << where << "bad escape\n";
          }
        }
        if (i >= line.size()) {
          bad << where << "unterminated label value\n";
          break;
        }
        ++i;  // closing quote
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) {
        bad << where << "no closing brace\n";
        continue;
      }
      labels = line.substr(end, i + 1 - end);
      end = i + 1;
    }
    if (end >= line.size() || line[end] != ' ') {
      bad << where << "no blank before the value\n";
      continue;
    }
    if (!valid_value(std::string_view(line).substr(end + 1))) bad << where << "bad value\n";
    if (!series.insert(name + labels).second) bad << where << "duplicate series\n";
  }
  return bad.str();
}

// ------------------------------------------------------------ a hand-built host

Snapshot golden_snapshot() {
  Snapshot s;
  s.timestamp_us = 1762777845123456;  // 2025-11-10T12:30:45.123456Z

  s.cpu.ok = true;
  CpuTimes t0;
  t0.user = 221.34;
  t0.nice = 0.73;
  t0.system = 44.94;
  t0.idle = 7885.08;
  t0.iowait = 1.07;
  t0.irq = 0;
  t0.softirq = 1.2;
  t0.steal = 3.56;
  CpuTimes t1 = t0;
  t1.user = 1e6;  // a round number that must not print as 1e+06
  t1.idle = 0.1;
  s.cpu.core_times = {t0, t1};
  s.cpu.core_ids = {0, 2};  // cpu1 is offline
  s.cpu.frequency_mhz = {2400.123, 800};

  s.load.ok = false;  // a failed group: left out, collector success 0
  s.load.error = "cannot read /proc/loadavg: No such file or directory";

  s.memory.ok = true;
  s.memory.total_bytes = 25276502016;
  s.memory.free_bytes = 1234567168;
  s.memory.available_bytes = 20000000000;
  s.memory.buffers_bytes = 1048576;
  s.memory.cached_bytes = 3000000000;
  s.memory.page_cache_bytes = 2800000000;
  s.memory.slab_reclaimable_bytes = 200000000;
  s.memory.swap_total_bytes = 0;
  s.memory.swap_free_bytes = 0;

  s.network.ok = true;
  InterfaceStats lo;
  lo.name = "lo";
  lo.bytes_recv = lo.bytes_sent = 123456789;
  lo.packets_recv = lo.packets_sent = 4242;
  InterfaceStats eth;
  eth.name = "eth0";
  eth.bytes_recv = 18446744073709551615ull;  // a 64-bit counter about to wrap
  eth.bytes_sent = 9007199254740993ull;      // 2^53 + 1: not exact as a double
  eth.packets_recv = 1;
  eth.packets_sent = 2;
  eth.errors_in = 3;
  eth.errors_out = 4;
  eth.drops_in = 5;
  eth.drops_out = 6;
  s.network.interfaces = {lo, eth};

  s.disk.io_ok = true;
  DiskDeviceStats vda;
  vda.name = "vda";
  vda.read_bytes = 2827936768;
  vda.write_bytes = 512;
  vda.reads = 100;
  vda.writes = 1;
  vda.read_time_seconds = 18.192;
  vda.write_time_seconds = 0.004;
  vda.io_time_seconds = 57.064;
  s.disk.devices = {vda};

  s.disk.partitions_ok = true;
  PartitionStats root;
  root.ok = true;
  root.mountpoint = "/";
  root.device = "/dev/vda";
  root.fstype = "ext4";
  root.total_bytes = 270553174016;
  root.free_bytes = 200000000000;
  root.bfree_bytes = 210000000000;
  root.files = 16777216;
  root.files_free = 16000000;
  PartitionStats odd = root;  // every character the format must escape
  odd.mountpoint = "/mnt/a \"quoted\" dir\\with\nnewline and caf\xc3\xa9 \xff";
  odd.device = "/dev/sdb1";
  odd.fstype = "vfat";
  odd.readonly = true;
  PartitionStats stale;  // statvfs failed (a dead NFS server)
  stale.ok = false;
  stale.error = "cannot statvfs /mnt/nfs: Stale file handle";
  stale.mountpoint = "/mnt/nfs";
  stale.device = "server:/export";
  stale.fstype = "nfs4";
  s.disk.partitions = {root, odd, stale};

  s.system.ok = true;
  s.system.hostname = "web-01";
  s.system.uptime_seconds = 12345.67;
  s.system.boot_time = 1762765499;

  Gauge queue;
  queue.name = "app_queue_depth";
  queue.value = 17;
  Gauge latency;
  latency.name = "app.latency-seconds";  // sanitized to app_latency_seconds
  latency.value = 0.25;
  Gauge digit;
  digit.name = "5xx_rate";
  digit.value = std::nan("");
  Gauge clash_builtin;
  clash_builtin.name = "node_time_seconds";  // taken by a built-in family: left out
  clash_builtin.value = 1;
  Gauge clash_gauge;
  clash_gauge.name = "app:latency.seconds";  // sanitizes to the same name as the second gauge
  clash_gauge.value = 2;
  Gauge no_help;
  no_help.name = "app_inf";
  no_help.value = std::numeric_limits<double>::infinity();
  s.custom = {queue, latency, digit, clash_builtin, clash_gauge, no_help};
  return s;
}

const std::vector<std::string> kGaugeHelp = {
    "Jobs waiting", "Request latency\nin seconds, with a \\ backslash", "5xx answers per second", "clash",
    "clash too", ""};

ServerStats golden_stats() {
  ServerStats st;
  st.connections_accepted = 10;
  st.messages_sent = 1000;
  st.bytes_sent = 123456;
  st.http_requests = 7;
  st.dropped_backlog = 1;
  st.dropped_error = 2;
  st.dropped_protocol = 3;
  st.dropped_timeout = 4;
  st.rejected_capacity = 5;
  st.accept_failures = 6;
  st.callback_errors = 8;
  return st;
}

std::string golden_exposition() {
  const ServerStats st = golden_stats();
  PrometheusSelf self;
  self.clients_flat = 3;
  self.clients_rich = 2;
  self.clients_dashboard = 1;
  self.clients_alerts = 0;
  self.http_connections = 4;
  self.stats = &st;
  self.collect_seconds = 0.000734;
  self.start_time_seconds = 1762777800.5;
  self.history_points = 3600;
  const std::string prefix = "# text already in the buffer\n";
  std::string out = prefix;
  append_prometheus(out, golden_snapshot(), kGaugeHelp, self);
  EXPECT_EQ(out.compare(0, prefix.size(), prefix), 0) << "append_prometheus changed what was there";
  return out.substr(prefix.size());
}

using test_util::without_version;

using test_util::slurp;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> v;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) v.push_back(l);
  return v;
}

bool has_line(const std::string& text, const std::string& line) {
  for (const auto& l : lines_of(text))
    if (l == line) return true;
  return false;
}

}  // namespace

// ------------------------------------------------------------ escaping

TEST(PrometheusEscaping, LabelValues) {
  EXPECT_EQ(label("plain"), "plain");
  EXPECT_EQ(label(""), "");
  EXPECT_EQ(label("a\\b"), "a\\\\b");
  EXPECT_EQ(label("say \"hi\""), "say \\\"hi\\\"");
  EXPECT_EQ(label("two\nlines"), "two\\nlines");
  EXPECT_EQ(label("\\\"\n"), "\\\\\\\"\\n");
  EXPECT_EQ(label("tab\tand\rcr"), "tab\tand\rcr");  // only \\, \" and \n are escaped
  EXPECT_EQ(label("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x92\xbe"), "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x92\xbe");
}

TEST(PrometheusEscaping, InvalidUtf8BecomesReplacementCharacters) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(label("a\xff" "b"), "a" + r + "b");
  EXPECT_EQ(label("\xc0\xaf"), r + r);               // overlong '/'
  EXPECT_EQ(label("\xed\xa0\x80"), r + r + r);       // a UTF-16 surrogate
  EXPECT_EQ(label("\xf4\x90\x80\x80"), r + r + r + r);  // beyond U+10FFFF
  EXPECT_EQ(label("x\xe6\x97"), "x" + r + r);        // cut short at the end
  EXPECT_EQ(label("\xe6\x97" "a"), r + r + "a");     // cut short before ASCII
}

TEST(PrometheusEscaping, MetricNames) {
  EXPECT_EQ(metric_name("app_queue_depth"), "app_queue_depth");
  EXPECT_EQ(metric_name("queue.depth-1"), "queue_depth_1");
  EXPECT_EQ(metric_name("a:b"), "a_b");
  EXPECT_EQ(metric_name("5xx"), "_5xx");
  EXPECT_EQ(metric_name(""), "_");
  EXPECT_EQ(metric_name("caf\xc3\xa9"), "caf__");
  EXPECT_EQ(metric_name("CamelCase_9"), "CamelCase_9");
}

// ------------------------------------------------------------ numbers

TEST(PrometheusNumbers, SpecialValues) {
  EXPECT_EQ(number(std::nan("")), "NaN");
  EXPECT_EQ(number(-std::nan("")), "NaN");
  EXPECT_EQ(number(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(number(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(number(0.0), "0");
  EXPECT_EQ(number(-0.0), "0");
}

TEST(PrometheusNumbers, IntegersWithoutExponent) {
  EXPECT_EQ(number(1), "1");
  EXPECT_EQ(number(-5), "-5");
  EXPECT_EQ(number(1e6), "1000000");
  EXPECT_EQ(number(1795321308), "1795321308");
  EXPECT_EQ(number(999999999999999.0), "999999999999999");
  EXPECT_EQ(number(-999999999999999.0), "-999999999999999");
}

TEST(PrometheusNumbers, LargeValuesRoundTrip) {
  // 2^64, the double nearest to the largest 64-bit counter: its exact digits
  // are shorter than "1.8446744073709552e+19", so std::to_chars picks them.
  EXPECT_EQ(number(18446744073709551615.0), "18446744073709551616");
  EXPECT_EQ(parse_back(number(18446744073709551615.0)), 18446744073709551615.0);
  EXPECT_EQ(number(9007199254740992.0), "9007199254740992");  // 2^53
  EXPECT_EQ(number(1e15), "1e+15");
  EXPECT_EQ(number(1e21), "1e+21");
  EXPECT_EQ(number(-1e21), "-1e+21");
  EXPECT_EQ(number(std::numeric_limits<double>::max()), "1.7976931348623157e+308");
}

TEST(PrometheusNumbers, FractionsShortestRoundTrip) {
  EXPECT_EQ(number(0.1), "0.1");
  EXPECT_EQ(number(7885.08), "7885.08");
  EXPECT_EQ(number(0.000734), "0.000734");
  EXPECT_EQ(number(1.5e-7), "1.5e-07");
  EXPECT_EQ(number(1762777845.123456), "1762777845.123456");
  EXPECT_EQ(number(std::numeric_limits<double>::denorm_min()), "5e-324");
  // Every double reads back to itself.
  double v = 1.0 / 3.0;
  for (int i = 0; i < 2000; ++i) {
    const std::string s = number(v);
    ASSERT_EQ(parse_back(s), v) << s;
    v = v * -1.7 + 0.013 * i;
    if (std::fabs(v) > 1e300) v = 1e-300 * i;
  }
}

TEST(PrometheusNumbers, IntegerCountersAreExact) {
  std::string out;
  append_prom_count(out, "c_total", {{"device", "eth0"}}, 18446744073709551615ull);
  EXPECT_EQ(out, "c_total{device=\"eth0\"} 18446744073709551615\n");
  out.clear();
  append_prom_count(out, "c_total", {}, 9007199254740993ull);
  EXPECT_EQ(out, "c_total 9007199254740993\n");
}

// ------------------------------------------------------------ the exposition

TEST(PrometheusExposition, MatchesGolden) {
  const std::string text = without_version(golden_exposition());
  if (const char* regen = std::getenv("METRICS_AGENT_REGENERATE"); regen && std::string(regen) == "1") {
    std::ofstream(kGolden, std::ios::binary) << text;
    GTEST_SKIP() << "regenerated " << kGolden;
  }
  const std::string golden = slurp(kGolden);
  ASSERT_FALSE(golden.empty()) << "missing " << kGolden << " (METRICS_AGENT_REGENERATE=1 writes it)";
  if (text != golden) {
    const auto a = lines_of(text), b = lines_of(golden);
    for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
      const std::string x = i < a.size() ? a[i] : "<end>", y = i < b.size() ? b[i] : "<end>";
      if (x != y) {
        ADD_FAILURE() << "first difference at line " << i + 1 << "\n  now:    " << x << "\n  golden: " << y;
        break;
      }
    }
  }
  EXPECT_EQ(text, golden);
}

TEST(PrometheusExposition, GoldenIsStructurallyValid) {
  EXPECT_EQ(structural_problems(golden_exposition()), "");
}

TEST(PrometheusExposition, NodeExporterNamesAndValues) {
  const std::string text = golden_exposition();
  // Label names in node_exporter's order, the kernel's totals as they are.
  EXPECT_TRUE(has_line(text, "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 7885.08"));
  EXPECT_TRUE(has_line(text, "node_cpu_seconds_total{cpu=\"2\",mode=\"user\"} 1000000"));
  EXPECT_EQ(text.find("cpu=\"1\""), std::string::npos);  // offline: the kernel's numbering has a gap
  EXPECT_TRUE(has_line(text, "node_cpu_scaling_frequency_hertz{cpu=\"0\"} 2400123000"));
  EXPECT_TRUE(has_line(text, "node_cpu_scaling_frequency_hertz{cpu=\"2\"} 800000000"));
  EXPECT_TRUE(has_line(text, "node_memory_MemAvailable_bytes 20000000000"));
  EXPECT_TRUE(has_line(text, "node_network_receive_bytes_total{device=\"eth0\"} 18446744073709551615"));
  EXPECT_TRUE(has_line(text, "node_network_transmit_bytes_total{device=\"eth0\"} 9007199254740993"));
  EXPECT_TRUE(has_line(text, "node_disk_io_time_seconds_total{device=\"vda\"} 57.064"));
  EXPECT_TRUE(has_line(text, "node_filesystem_avail_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} "
                             "200000000000"));
  EXPECT_TRUE(has_line(text, "node_filesystem_free_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} "
                             "210000000000"));
  EXPECT_TRUE(has_line(text, "node_filesystem_readonly{device=\"/dev/sdb1\",fstype=\"vfat\",mountpoint=\"/mnt/a "
                             "\\\"quoted\\\" dir\\\\with\\nnewline and caf\xc3\xa9 \xEF\xBF\xBD\"} 1"));
  EXPECT_TRUE(has_line(text, "node_boot_time_seconds 1762765499"));
  EXPECT_TRUE(has_line(text, "node_time_seconds 1762777845.123456"));
  EXPECT_TRUE(has_line(text, "node_uname_info{nodename=\"web-01\"} 1"));
  EXPECT_TRUE(has_line(text, std::string("metrics_agent_build_info{version=\"") + METRICS_AGENT_VERSION + "\"} 1"));
  EXPECT_TRUE(has_line(text, "metrics_agent_clients_dropped_total{reason=\"timeout\"} 4"));
  EXPECT_TRUE(has_line(text, "metrics_agent_connections_rejected_total{reason=\"capacity\"} 5"));
  EXPECT_TRUE(has_line(text, "metrics_agent_clients{endpoint=\"flat\"} 3"));
  EXPECT_TRUE(has_line(text, "process_start_time_seconds 1762777800.5"));
}

TEST(PrometheusExposition, FailedGroupsAreLeftOutAndReported) {
  const std::string text = golden_exposition();
  EXPECT_EQ(text.find("node_load1"), std::string::npos);
  EXPECT_TRUE(has_line(text, "node_scrape_collector_success{collector=\"loadavg\"} 0"));
  EXPECT_TRUE(has_line(text, "node_scrape_collector_success{collector=\"cpu\"} 1"));
  // A mount whose statvfs failed: an error flag, no made-up sizes.
  EXPECT_TRUE(has_line(text, "node_filesystem_device_error{device=\"server:/export\",fstype=\"nfs4\","
                             "mountpoint=\"/mnt/nfs\"} 1"));
  EXPECT_EQ(text.find("node_filesystem_size_bytes{device=\"server:/export\""), std::string::npos);

  Snapshot s = golden_snapshot();
  s.cpu.ok = s.memory.ok = s.network.ok = s.disk.io_ok = s.disk.partitions_ok = s.system.ok = false;
  s.load.ok = true;
  std::string out;
  append_prometheus(out, s, kGaugeHelp, PrometheusSelf{});
  EXPECT_EQ(out.find("node_cpu_seconds_total"), std::string::npos);
  EXPECT_EQ(out.find("node_memory_"), std::string::npos);
  EXPECT_EQ(out.find("node_network_"), std::string::npos);
  EXPECT_EQ(out.find("node_disk_"), std::string::npos);
  EXPECT_EQ(out.find("node_filesystem_"), std::string::npos);
  EXPECT_EQ(out.find("node_boot_time_seconds"), std::string::npos);
  EXPECT_TRUE(has_line(out, "node_load1 0"));
  EXPECT_TRUE(has_line(out, "node_scrape_collector_success{collector=\"meminfo\"} 0"));
  // No server: its counters are left out; nothing is invented.
  EXPECT_EQ(out.find("metrics_agent_messages_sent_total"), std::string::npos);
  EXPECT_EQ(out.find("process_start_time_seconds"), std::string::npos);
  EXPECT_EQ(structural_problems(out), "");
}

TEST(PrometheusExposition, ApplicationGauges) {
  const std::string text = golden_exposition();
  EXPECT_TRUE(has_line(text, "# HELP app_queue_depth Jobs waiting"));
  EXPECT_TRUE(has_line(text, "# TYPE app_queue_depth gauge"));
  EXPECT_TRUE(has_line(text, "app_queue_depth 17"));
  EXPECT_TRUE(has_line(text, "# HELP app_latency_seconds Request latency\\nin seconds, with a \\\\ backslash"));
  EXPECT_TRUE(has_line(text, "app_latency_seconds 0.25"));
  EXPECT_TRUE(has_line(text, "_5xx_rate NaN"));
  EXPECT_TRUE(has_line(text, "# HELP app_inf Application gauge."));
  EXPECT_TRUE(has_line(text, "app_inf +Inf"));
  // Clashes are left out, not duplicated.
  EXPECT_FALSE(has_line(text, "node_time_seconds 1"));
  EXPECT_FALSE(has_line(text, "app_latency_seconds 2"));
  EXPECT_EQ(text.find("clash"), std::string::npos);
}

TEST(PrometheusExposition, GaugeHelpFallsBackToTheSnapshot) {
  Snapshot s;
  s.custom.resize(1);
  s.custom[0].name = "g";
  s.custom[0].help = "from the snapshot";
  s.custom[0].value = 1;
  std::string out;
  append_prometheus(out, s, {}, PrometheusSelf{});
  EXPECT_TRUE(has_line(out, "# HELP g from the snapshot"));
  EXPECT_EQ(structural_problems(out), "");
}

TEST(PrometheusExposition, CheckerCatchesBrokenText) {
  // The structural check must be able to fail.
  EXPECT_NE(structural_problems("x 1\n"), "");
  EXPECT_NE(structural_problems("# HELP x h\n# TYPE x counter\nx 1\n"), "");
  EXPECT_NE(structural_problems("# HELP x h\n# TYPE x gauge\nx 1\nx 2\n"), "");
  EXPECT_NE(structural_problems("# HELP x h\n# TYPE x gauge\n# HELP x h\nx 1\n"), "");
  EXPECT_NE(structural_problems("# HELP x h\n# TYPE x gauge\nx{a=\"b} 1\n"), "");
  EXPECT_NE(structural_problems("# HELP x h\n# TYPE x gauge\nx{a=\"\\t\"} 1\n"), "");
  EXPECT_NE(structural_problems("# HELP x h\n# TYPE x gauge\nx 1,5\n"), "");
  EXPECT_NE(structural_problems("# HELP x h\n# TYPE x gauge\nx 1\n# HELP y h\n# TYPE y gauge\ny 1\nx{a=\"1\"} 2\n"),
            "");
  EXPECT_EQ(structural_problems("# HELP x h\n# TYPE x gauge\nx{a=\"\\\"\"} 1\n"), "");
}

TEST(PrometheusExposition, OneAllocationPerCall) {
  // append_prometheus reserves its estimate once; the text must fit in it.
  const Snapshot s = golden_snapshot();
  const ServerStats st = golden_stats();
  PrometheusSelf self;
  self.stats = &st;
  self.start_time_seconds = 1;
  std::string out;
  append_prometheus(out, s, kGaugeHelp, self);
  EXPECT_LE(out.size(), prometheus_size_estimate(s, kGaugeHelp));
  // A buffer reused from call to call does not allocate at all.
  const char* before = out.data();
  out.clear();
  append_prometheus(out, s, kGaugeHelp, self);
  EXPECT_EQ(out.data(), before);
}

// ------------------------------------------------------------ this machine

TEST(PrometheusLive, RealSampleIsValidAndConsistent) {
  Collector c("/");
  Snapshot s;
  c.sample_fast(s, mono_now());
  c.sample_slow(s);
  s.timestamp_us = wall_now_us();
  std::string out;
  ServerStats st;
  PrometheusSelf self;
  self.stats = &st;
  append_prometheus(out, s, {}, self);
  EXPECT_EQ(structural_problems(out), "");
  EXPECT_LE(out.size(), prometheus_size_estimate(s, {}));
  ASSERT_TRUE(s.cpu.ok) << s.cpu.error;
  ASSERT_TRUE(s.memory.ok) << s.memory.error;
  std::size_t cpu_samples = 0;
  double total = -1, available = -1;
  for (const auto& l : lines_of(out)) {
    if (l.rfind("node_cpu_seconds_total{", 0) == 0) ++cpu_samples;
    if (l.rfind("node_memory_MemTotal_bytes ", 0) == 0) total = parse_back(l.substr(l.find(' ') + 1));
    if (l.rfind("node_memory_MemAvailable_bytes ", 0) == 0) available = parse_back(l.substr(l.find(' ') + 1));
  }
  EXPECT_EQ(cpu_samples, s.cpu.core_times.size() * 8);
  for (unsigned id : s.cpu.core_ids)
    EXPECT_NE(out.find("node_cpu_seconds_total{cpu=\"" + std::to_string(id) + "\",mode=\"idle\"}"), std::string::npos)
        << id;
  EXPECT_GT(total, 0);
  EXPECT_GE(available, 0);
  EXPECT_LE(available, total);
  EXPECT_NE(out.find("node_network_receive_bytes_total{device=\"lo\"}"), std::string::npos);
}
