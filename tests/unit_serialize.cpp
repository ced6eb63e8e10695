// Unit tests of what the agent writes: JSON numbers and strings, timestamps,
// the flat (SPEC 5.1) and rich (SPEC 5.2) messages compared byte for byte with
// the golden files in tests/golden, and the history ring.
//
// Regenerate the golden files on purpose with
//     METRICS_AGENT_REGENERATE=1 build/cmake/tests/unit_tests --gtest_filter='SerializeGolden*'
// and review the diff before committing it.
#include "metrics_agent.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"
#include <picojson.h>

#include "test_locales.hpp"

#include <clocale>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <locale>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace metrics_agent;
using namespace metrics_agent::detail;

namespace {

std::string num(double v, int decimals = 2) {
  std::string s;
  append_number(s, v, decimals);
  return s;
}

picojson::value parse_json(const std::string& text) {
  picojson::value v;
  std::string err = picojson::parse(v, text);
  EXPECT_EQ(err, "") << text;
  return v;
}

// printf's rounding in the C locale, trailing zeros trimmed: an independent
// oracle for append_number.
std::string printf_number(double v, int decimals) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

// A locale whose decimal point is a comma: de_DE, built if need be; else
// false with the reason.
bool set_comma_locale(std::string& why) {
  why = test_locales::provide("de_DE", "UTF-8");
  for (const char* name : {"de_DE.UTF-8", "de_DE.utf8", "de_DE", "fr_FR.UTF-8", "fr_FR.utf8", "nl_NL.UTF-8",
                           "ru_RU.UTF-8", "es_ES.UTF-8", "it_IT.UTF-8"}) {
    if (std::setlocale(LC_ALL, name) && std::string(std::localeconv()->decimal_point) == ",") {
      try {
        std::locale::global(std::locale(name));
      } catch (const std::exception&) {
      }
      return true;
    }
  }
  std::setlocale(LC_ALL, "C");
  return false;
}

void restore_c_locale() {
  std::setlocale(LC_ALL, "C");
  std::locale::global(std::locale::classic());
}

}  // namespace

// ---- numbers ---------------------------------------------------------------------

TEST(SerializeNumber, TwoDecimalsTrimmed) {
  EXPECT_EQ(num(45.678), "45.68");
  EXPECT_EQ(num(45.2), "45.2");
  EXPECT_EQ(num(45.0), "45");
  EXPECT_EQ(num(100), "100");
  EXPECT_EQ(num(0), "0");
  EXPECT_EQ(num(0.5), "0.5");
  EXPECT_EQ(num(0.05), "0.05");
  EXPECT_EQ(num(0.001), "0");
  EXPECT_EQ(num(99.995), "100");  // rounding carries into the integer part
  EXPECT_EQ(num(0.1 + 0.2), "0.3");
  EXPECT_EQ(num(1234.5678), "1234.57");
  EXPECT_EQ(num(-12.345), "-12.35");
  EXPECT_EQ(num(-3.5), "-3.5");
  EXPECT_EQ(num(1e-7), "0");
  EXPECT_EQ(num(5e-324), "0");
  EXPECT_EQ(num(123456789012.345), "123456789012.35");
  EXPECT_EQ(num(1e20), "100000000000000000000");
  // Other precisions.
  EXPECT_EQ(num(2400.04, 1), "2400");
  EXPECT_EQ(num(3100.26, 1), "3100.3");
  EXPECT_EQ(num(45.678, 0), "46");
  EXPECT_EQ(num(100, 0), "100");
  EXPECT_EQ(num(0.3333333333, 6), "0.333333");
  EXPECT_EQ(num(12, 6), "12");
  EXPECT_EQ(num(1.25, 3), "1.25");
}

TEST(SerializeNumber, NegativeZeroIsZero) {
  EXPECT_EQ(num(-0.0), "0");
  EXPECT_EQ(num(-0.001), "0");
  EXPECT_EQ(num(-0.004), "0");
  EXPECT_EQ(num(-0.0, 0), "0");
  EXPECT_EQ(num(-0.4, 0), "0");
  EXPECT_EQ(num(-1e-300, 6), "0");
}

TEST(SerializeNumber, NonFiniteIsNull) {
  EXPECT_EQ(num(std::nan("")), "null");
  EXPECT_EQ(num(-std::nan("")), "null");
  EXPECT_EQ(num(std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(num(-std::numeric_limits<double>::infinity()), "null");
  std::string out = "[";
  append_number(out, std::nan(""));
  out += "]";
  EXPECT_EQ(out, "[null]");
}

TEST(SerializeNumber, HugeValuesStayValidJson) {
  for (double v : {1e60, 1e62, 1e100, 1e300, -1e300, std::numeric_limits<double>::max(),
                   -std::numeric_limits<double>::max(), 18446744073709551616.0}) {
    std::string s = num(v);
    picojson::value j = parse_json("[" + s + "]");
    ASSERT_TRUE(j.is<picojson::array>());
    ASSERT_TRUE(j.get(0).is<double>()) << s;
    EXPECT_EQ(j.get(0).get<double>(), v) << s;
    EXPECT_EQ(s.find(','), std::string::npos) << s;
  }
}

TEST(SerializeNumber, MatchesPrintfRounding) {
  std::mt19937_64 rng(5);
  for (int i = 0; i < 100000; ++i) {
    // Magnitudes from 1e-6 to 1e15, both signs, and exact cents.
    double mag = std::pow(10.0, double(rng() % 22) - 6.0);
    double v = double(rng() % 1000000007) / 1000000007.0 * mag;
    if (i % 3 == 0) v = double(std::int64_t(rng() % 2000000) - 1000000) / 100.0;
    if (rng() & 1) v = -v;
    int decimals = i % 7 == 0 ? int(rng() % 7) : 2;
    ASSERT_EQ(num(v, decimals), printf_number(v, decimals)) << v << " with " << decimals << " decimals";
  }
}

TEST(SerializeNumber, LocaleIndependent) {
  std::string why;
  if (!set_comma_locale(why)) GTEST_SKIP() << "no locale with a decimal comma: " << why;
  char probe[32];
  std::snprintf(probe, sizeof probe, "%.1f", 0.5);
  EXPECT_STREQ(probe, "0,5");  // the locale really is active
  EXPECT_EQ(num(0.5), "0.5");
  EXPECT_EQ(num(1234.56), "1234.56");
  EXPECT_EQ(num(-7.25, 3), "-7.25");
  double d = 0;
  EXPECT_TRUE(parse_double("0.5", d));
  EXPECT_EQ(d, 0.5);
  EXPECT_FALSE(parse_double("0,5", d));
  std::string out;
  JsonWriter(out).begin_array().num(1.5).num(2.25, 1).end_array();
  EXPECT_EQ(out, "[1.5,2.2]");
  EXPECT_EQ(format_timestamp(1762777845123456, TimeFormat::Micro), "2025-11-10T12:30:45.123456");
  Snapshot s;
  s.timestamp_us = 1762777845123456;
  s.cpu.ok = s.memory.ok = s.disk.path.ok = true;
  s.cpu.usage_percent = 25.5;
  s.memory.usage_percent = 60.2;
  s.disk.path.usage_percent = 45.3;
  std::string flat = flat_json(s, kFlatAll);
  restore_c_locale();
  EXPECT_EQ(flat, "{\"cpu\": 25.5, \"memory\": 60.2, \"disk\": 45.3, \"timestamp\": \"2025-11-10T12:30:45.123456\"}");
}

TEST(SerializeNumber, ParseDouble) {
  double d = -1;
  EXPECT_TRUE(parse_double("1.5", d));
  EXPECT_EQ(d, 1.5);
  EXPECT_TRUE(parse_double(" 2 ", d));
  EXPECT_EQ(d, 2);
  EXPECT_TRUE(parse_double("+3", d));
  EXPECT_EQ(d, 3);
  EXPECT_TRUE(parse_double("-4.25", d));
  EXPECT_EQ(d, -4.25);
  EXPECT_TRUE(parse_double("1e3", d));
  EXPECT_EQ(d, 1000);
  EXPECT_TRUE(parse_double("0.1", d));
  EXPECT_EQ(d, 0.1);
  d = 77;
  for (const char* bad : {"", " ", "abc", "1.5x", "x1", "nan", "NaN", "inf", "-inf", "1e400", "0x10", "1,5", "--5",
                          "++5", "+-5", "-+5", "+", "-", ".", "1 2"}) {
    EXPECT_FALSE(parse_double(bad, d)) << "'" << bad << "' parsed as " << d;
  }
}

TEST(SerializeNumber, ToU64) {
  std::uint64_t v = 0;
  EXPECT_TRUE(to_u64("0", v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(to_u64("18446744073709551615", v));
  EXPECT_EQ(v, 18446744073709551615ull);
  EXPECT_TRUE(to_u64(" 7\t", v));
  EXPECT_EQ(v, 7u);
  for (const char* bad : {"", "18446744073709551616", "-1", "+1", "7a", "0x7", "1.0", " ", "1 2"})
    EXPECT_FALSE(to_u64(bad, v)) << bad;
}

// ---- strings ---------------------------------------------------------------------

TEST(SerializeJsonString, Escapes) {
  EXPECT_EQ(json_string(""), "\"\"");
  EXPECT_EQ(json_string("plain text"), "\"plain text\"");
  EXPECT_EQ(json_string("say \"hi\""), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(json_string("C:\\path\\"), "\"C:\\\\path\\\\\"");
  EXPECT_EQ(json_string("a\nb\rc\td"), "\"a\\nb\\rc\\td\"");
  EXPECT_EQ(json_string(std::string("\0", 1)), "\"\\u0000\"");
  EXPECT_EQ(json_string("\x01\x1f"), "\"\\u0001\\u001f\"");
  EXPECT_EQ(json_string("\x1b[0m"), "\"\\u001b[0m\"");
  EXPECT_EQ(json_string("/ \x7f"), "\"/ \x7f\"");  // neither needs escaping
  EXPECT_EQ(json_string("caf\xc3\xa9 \xe2\x82\xac"), "\"caf\xc3\xa9 \xe2\x82\xac\"");  // UTF-8 passes through
  std::string out = "prefix:";
  append_json_string(out, "x");
  EXPECT_EQ(out, "prefix:\"x\"");
}

TEST(SerializeJsonString, EveryAsciiByteRoundTrips) {
  std::string all;
  for (int c = 0; c < 128; ++c) all += char(c);
  all += "\xc3\xa9\xf0\x9f\x98\x80";
  std::string j = json_string(all);
  for (std::size_t i = 1; i + 1 < j.size(); ++i)
    EXPECT_GE(static_cast<unsigned char>(j[i]), 0x20) << "raw control byte at " << i;
  picojson::value v = parse_json(j);
  ASSERT_TRUE(v.is<std::string>());
  EXPECT_EQ(v.get<std::string>(), all);
}

TEST(SerializeJsonWriter, Nesting) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  w.key("a").num(1);
  w.key("b").begin_array().num(1.5).uint(2).begin_object().key("c").null().end_object().begin_array().end_array();
  w.end_array();
  w.key("d").begin_object().end_object();
  w.key("e").begin_array().end_array();
  w.key("f").str("x\"y");
  w.key("g").boolean(true).key("h").boolean(false);
  w.key("i").uint(18446744073709551615ull);
  w.key("j").raw("{\"pre\":[1]}");
  w.key("k\n").num(std::nan(""));
  w.key("l").begin_object().key("m").begin_object().key("n").begin_array().num(0.125, 3).end_array().end_object();
  w.end_object();
  w.end_object();
  EXPECT_EQ(out,
            "{\"a\":1,\"b\":[1.5,2,{\"c\":null},[]],\"d\":{},\"e\":[],\"f\":\"x\\\"y\",\"g\":true,\"h\":false,"
            "\"i\":18446744073709551615,\"j\":{\"pre\":[1]},\"k\\n\":null,\"l\":{\"m\":{\"n\":[0.125]}}}");
  picojson::value v = parse_json(out);
  EXPECT_EQ(v.get("f").get<std::string>(), "x\"y");
  EXPECT_TRUE(v.get("k\n").is<picojson::null>());
  EXPECT_EQ(v.get("l").get("m").get("n").get(0).get<double>(), 0.125);

  std::string arr;
  JsonWriter a(arr);
  a.begin_array();
  for (int i = 0; i < 3; ++i) a.begin_object().key("i").uint(std::uint64_t(i)).end_object();
  a.str("").end_array();
  EXPECT_EQ(arr, "[{\"i\":0},{\"i\":1},{\"i\":2},\"\"]");
  parse_json(arr);
}

// ---- time ----------------------------------------------------------------------------

TEST(SerializeTime, KnownEpochs) {
  EXPECT_EQ(format_timestamp(0, TimeFormat::Micro), "1970-01-01T00:00:00.000000");
  EXPECT_EQ(format_timestamp(0, TimeFormat::Seconds), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_timestamp(0, TimeFormat::Millis), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_timestamp(1762777845123456, TimeFormat::Micro), "2025-11-10T12:30:45.123456");
  EXPECT_EQ(format_timestamp(1762777845123456, TimeFormat::Millis), "2025-11-10T12:30:45.123Z");
  EXPECT_EQ(format_timestamp(1762777845123456, TimeFormat::Seconds), "2025-11-10T12:30:45Z");
  EXPECT_EQ(format_timestamp(1768833005000000, TimeFormat::Seconds), "2026-01-19T14:30:05Z");  // SPEC 5.2
  EXPECT_EQ(format_timestamp(1768833005500000, TimeFormat::Millis), "2026-01-19T14:30:05.500Z");
  // Leap days: 2024 (divisible by 4), 2000 (by 400); 2100 is not a leap year.
  EXPECT_EQ(format_timestamp(1709164800000000, TimeFormat::Seconds), "2024-02-29T00:00:00Z");
  EXPECT_EQ(format_timestamp(1709251199999999, TimeFormat::Micro), "2024-02-29T23:59:59.999999");
  EXPECT_EQ(format_timestamp(1709251200000000, TimeFormat::Seconds), "2024-03-01T00:00:00Z");
  EXPECT_EQ(format_timestamp(951825600000000, TimeFormat::Seconds), "2000-02-29T12:00:00Z");
  EXPECT_EQ(format_timestamp(4107542400000000 - 1000000, TimeFormat::Seconds), "2100-02-28T23:59:59Z");
  EXPECT_EQ(format_timestamp(4107542400000000, TimeFormat::Seconds), "2100-03-01T00:00:00Z");
  EXPECT_EQ(format_timestamp(253402300799999999, TimeFormat::Micro), "9999-12-31T23:59:59.999999");
  // Fractions are truncated, never rounded up into the next second.
  EXPECT_EQ(format_timestamp(1762777845999999, TimeFormat::Millis), "2025-11-10T12:30:45.999Z");
  EXPECT_EQ(format_timestamp(1762777845999999, TimeFormat::Seconds), "2025-11-10T12:30:45Z");
  EXPECT_EQ(format_timestamp(1762777845000001, TimeFormat::Micro), "2025-11-10T12:30:45.000001");
}

TEST(SerializeTime, BeforeTheEpoch) {
  EXPECT_EQ(format_timestamp(-1, TimeFormat::Micro), "1969-12-31T23:59:59.999999");
  EXPECT_EQ(format_timestamp(-1, TimeFormat::Millis), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_timestamp(-1000000, TimeFormat::Seconds), "1969-12-31T23:59:59Z");
  EXPECT_EQ(format_timestamp(-1000001, TimeFormat::Micro), "1969-12-31T23:59:58.999999");
  EXPECT_EQ(format_timestamp(-86400000000, TimeFormat::Micro), "1969-12-31T00:00:00.000000");
  EXPECT_EQ(format_timestamp(-315619200000000, TimeFormat::Seconds), "1960-01-01T00:00:00Z");
  EXPECT_EQ(format_timestamp(-2203891200000000, TimeFormat::Seconds), "1900-03-01T00:00:00Z");
}

TEST(SerializeTime, AgreesWithGmtime) {
  std::mt19937_64 rng(1970);
  const std::int64_t lo = -62135596800;  // 0001-01-01T00:00:00Z
  const std::int64_t hi = 253402300799;  // 9999-12-31T23:59:59Z
  for (int i = 0; i < 20000; ++i) {
    std::int64_t secs = lo + std::int64_t(rng() % std::uint64_t(hi - lo + 1));
    std::int64_t us = secs * 1000000 + std::int64_t(rng() % 1000000);
    std::time_t t = std::time_t(secs);
    std::tm tm{};
    ASSERT_NE(gmtime_r(&t, &tm), nullptr);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06d", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(us - secs * 1000000));
    ASSERT_EQ(format_timestamp(us, TimeFormat::Micro), buf) << us;
  }
  std::string out = "t=";
  append_timestamp(out, 0, TimeFormat::Seconds);
  EXPECT_EQ(out, "t=1970-01-01T00:00:00Z");
}

// ---- golden files ------------------------------------------------------------------------

namespace {

using test_util::expect_golden;
using test_util::regenerating;

constexpr std::int64_t kSampleUs = 1762777845123456;  // 2025-11-10T12:30:45.123456Z

// A snapshot with fixed values in every group: two cores, two interfaces, a
// partition, a disk device, two application gauges.
Snapshot sample_snapshot() {
  Snapshot s;
  s.timestamp_us = kSampleUs;
  CpuStats& c = s.cpu;
  c.ok = true;
  c.usage_percent = 45.678;
  c.user = 30.5;
  c.system = 14.7;
  c.idle = 54.322;
  c.iowait = 0.25;
  c.steal = 0;
  c.per_core = {40.0, 51.356};
  c.frequency_mhz = {2400.04, 3100.26};
  c.core_times.resize(2);
  s.load.ok = true;
  s.load.load1 = 1.5;
  s.load.load5 = 1.25;
  s.load.load15 = 0.9;
  MemoryStats& m = s.memory;
  m.ok = true;
  m.usage_percent = 62.4;
  m.total_bytes = 16777216000;
  m.available_bytes = 6308233216;
  m.used_bytes = m.total_bytes - m.available_bytes;
  m.free_bytes = 2147483648;
  m.cached_bytes = 4294967296;
  m.buffers_bytes = 268435456;
  m.swap_total_bytes = 2147483648;
  m.swap_used_bytes = 536870912;
  m.swap_free_bytes = 1610612736;
  m.swap_percent = 25;
  NetworkStats& n = s.network;
  n.ok = true;
  n.bytes_sent_per_sec = 1234.5678;
  n.bytes_recv_per_sec = 98765.4321;
  InterfaceStats eth0;
  eth0.name = "eth0";
  eth0.bytes_sent_per_sec = 1234.5678;
  eth0.bytes_recv_per_sec = 98765.4321;
  eth0.packets_sent_per_sec = 10.5;
  eth0.packets_recv_per_sec = 80.25;
  eth0.bytes_sent = 123456789;
  eth0.bytes_recv = 987654321012;
  eth0.packets_sent = 1000;
  eth0.packets_recv = 2000;
  eth0.errors_in = 1;
  eth0.errors_out = 2;
  eth0.drops_in = 3;
  eth0.drops_out = 4;
  InterfaceStats lo;
  lo.name = "lo";
  lo.bytes_sent_per_sec = lo.bytes_recv_per_sec = 512;
  lo.packets_sent_per_sec = lo.packets_recv_per_sec = 4;
  lo.bytes_sent = lo.bytes_recv = 4096;
  lo.packets_sent = lo.packets_recv = 32;
  n.interfaces = {eth0, lo};
  PartitionStats root;
  root.mountpoint = "/";
  root.device = "/dev/sda1";
  root.fstype = "ext4";
  root.ok = true;
  root.total_bytes = 250000000000;
  root.used_bytes = 106000000000;
  root.free_bytes = 128000000000;
  root.bfree_bytes = 144000000000;
  root.files = 15000000;
  root.files_free = 14000000;
  root.usage_percent = 45.2991452991453;  // used / (used + free)
  s.disk.path = root;
  s.disk.partitions_ok = true;
  s.disk.partitions = {root};
  s.disk.io_ok = true;
  s.disk.read_bytes_per_sec = 4096;
  s.disk.write_bytes_per_sec = 123456.789;
  DiskDeviceStats sda;
  sda.name = "sda";
  sda.read_bytes_per_sec = 4096;
  sda.write_bytes_per_sec = 123456.789;
  sda.reads_per_sec = 1;
  sda.writes_per_sec = 12.5;
  sda.read_bytes = 1ull << 40;
  sda.write_bytes = 1ull << 41;
  s.disk.devices = {sda};
  s.system.ok = true;
  s.system.hostname = "host-01";
  s.system.uptime_seconds = 123456.7;
  s.system.boot_time = 1762654388.4;
  s.custom = {{"app_queue_depth", "jobs waiting", 12}, {"cache_hit_ratio", "hits / lookups", 0.3333333333}};
  return s;
}

// The same snapshot where the network and system groups and a second
// (stale NFS) partition failed.
Snapshot failed_group_snapshot() {
  Snapshot s = sample_snapshot();
  s.network = NetworkStats();
  s.network.ok = false;
  s.network.error = "cannot read /proc/net/dev: No such file or directory";
  s.system.ok = false;
  s.system.error = "uname failed";
  PartitionStats nfs;
  nfs.mountpoint = "/mnt/nfs";
  nfs.device = "server:/export";
  nfs.fstype = "nfs4";
  nfs.ok = false;
  nfs.error = "statvfs timed out after 1 s";
  s.disk.partitions.push_back(nfs);
  return s;
}

const picojson::object& obj(const picojson::value& v) { return v.get<picojson::object>(); }

std::vector<std::string> keys_in_order(const std::string& json_object_text) {
  // picojson's object is a std::map, so order is checked on the text.
  std::vector<std::string> keys;
  int depth = 0;
  bool in_string = false;
  std::string cur;
  bool expect_key = false;
  for (std::size_t i = 0; i < json_object_text.size(); ++i) {
    char c = json_object_text[i];
    if (in_string) {
      if (c == '\\') {
        cur += json_object_text[++i];
      } else if (c == '"') {
        in_string = false;
        if (expect_key && depth == 1) keys.push_back(cur);
        expect_key = false;
      } else {
        cur += c;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      cur.clear();
    } else if (c == '{' || c == '[') {
      ++depth;
      if (c == '{' && depth == 1) expect_key = true;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 1) {
      expect_key = true;
    }
  }
  return keys;
}

}  // namespace

TEST(SerializeGolden, FlatSpecExample) {
  // The exact message of SPEC 5.1, as existing clients receive it.
  Snapshot s;
  s.timestamp_us = kSampleUs;
  s.cpu.ok = s.memory.ok = s.disk.path.ok = true;
  s.cpu.usage_percent = 25.5;
  s.memory.usage_percent = 60.2;
  s.disk.path.usage_percent = 45.3;
  EXPECT_EQ(flat_json(s, kFlatAll),
            "{\"cpu\": 25.5, \"memory\": 60.2, \"disk\": 45.3, \"timestamp\": \"2025-11-10T12:30:45.123456\"}");
}

TEST(SerializeGolden, FlatAllFields) {
  std::string j = flat_json(sample_snapshot(), kFlatAll);
  expect_golden("flat_all.json", j);
  picojson::value v = parse_json(j);
  EXPECT_EQ(keys_in_order(j), (std::vector<std::string>{"cpu", "memory", "disk", "timestamp"}));
  EXPECT_EQ(v.get("cpu").get<double>(), 45.68);
  EXPECT_EQ(v.get("memory").get<double>(), 62.4);
  EXPECT_EQ(v.get("disk").get<double>(), 45.3);
  EXPECT_EQ(v.get("timestamp").get<std::string>(), "2025-11-10T12:30:45.123456");
  EXPECT_FALSE(v.contains("error"));
}

TEST(SerializeGolden, FlatOnlyCpu) {
  std::string j = flat_json(sample_snapshot(), kFlatCpu);
  expect_golden("flat_cpu.json", j);
  EXPECT_EQ(keys_in_order(j), (std::vector<std::string>{"cpu", "timestamp"}));
  EXPECT_EQ(parse_json(j).get("cpu").get<double>(), 45.68);
  // Only disk and memory, in the fixed order whatever the request's order.
  EXPECT_EQ(keys_in_order(flat_json(sample_snapshot(), kFlatDisk | kFlatMemory)),
            (std::vector<std::string>{"memory", "disk", "timestamp"}));
  // No field at all still says when.
  std::string none = flat_json(sample_snapshot(), 0);
  EXPECT_EQ(none, "{\"timestamp\": \"2025-11-10T12:30:45.123456\"}");
}

TEST(SerializeGolden, FlatFailedMemory) {
  Snapshot s = sample_snapshot();
  s.memory.ok = false;
  s.memory.error = "cannot read /proc/meminfo: Permission denied";
  std::string j = flat_json(s, kFlatAll);
  expect_golden("flat_memory_failed.json", j);
  picojson::value v = parse_json(j);
  EXPECT_EQ(keys_in_order(j), (std::vector<std::string>{"cpu", "memory", "disk", "error", "timestamp"}));
  EXPECT_EQ(v.get("cpu").get<double>(), 45.68);
  EXPECT_TRUE(v.get("memory").is<picojson::null>());
  EXPECT_EQ(v.get("disk").get<double>(), 45.3);
  const std::string& err = v.get("error").get<std::string>();
  EXPECT_EQ(err.rfind("Metric collection failed: ", 0), 0u) << err;
  EXPECT_NE(err.find("memory"), std::string::npos) << err;
  EXPECT_NE(err.find("Permission denied"), std::string::npos) << err;
  // A failed group that was not asked for is not reported.
  EXPECT_EQ(flat_json(s, kFlatCpu), flat_json(sample_snapshot(), kFlatCpu));
}

TEST(SerializeGolden, FlatAllFailed) {
  Snapshot s = sample_snapshot();
  s.cpu.ok = false;
  s.cpu.error = "cannot read /proc/stat";
  s.memory.ok = false;
  s.memory.error = "cannot read /proc/meminfo";
  s.disk.path.ok = false;
  s.disk.path.error = "statvfs(\"/\"): Input/output error";
  std::string j = flat_json(s, kFlatAll);
  expect_golden("flat_all_failed.json", j);
  picojson::value v = parse_json(j);
  // SPEC 5.1: when nothing can be collected, only the error and the time.
  EXPECT_EQ(keys_in_order(j), (std::vector<std::string>{"error", "timestamp"}));
  const std::string& err = v.get("error").get<std::string>();
  EXPECT_EQ(err.rfind("Metric collection failed: ", 0), 0u) << err;
  for (const char* part : {"cpu", "memory", "disk", "/proc/stat", "\"/\""})
    EXPECT_NE(err.find(part), std::string::npos) << part << " in " << err;
  EXPECT_EQ(v.get("timestamp").get<std::string>(), "2025-11-10T12:30:45.123456");
  // The same when the only field asked for failed.
  EXPECT_EQ(keys_in_order(flat_json(s, kFlatCpu)), (std::vector<std::string>{"error", "timestamp"}));
  // A group failing without a reason still says which.
  s.cpu.error.clear();
  EXPECT_NE(parse_json(flat_json(s, kFlatCpu)).get("error").get<std::string>().find("cpu"), std::string::npos);
}

TEST(SerializeGolden, RichAllFields) {
  const std::int64_t tick = 1762777845000000;  // on a whole second
  std::string j = rich_json(sample_snapshot(), kRichAll, tick);
  expect_golden("rich_all.json", j);
  picojson::value v = parse_json(j);
  EXPECT_EQ(keys_in_order(j), (std::vector<std::string>{"type", "timestamp", "data"}));
  EXPECT_EQ(v.get("type").get<std::string>(), "metrics");
  EXPECT_EQ(v.get("timestamp").get<std::string>(), "2025-11-10T12:30:45Z");
  const picojson::value& d = v.get("data");
  EXPECT_EQ(obj(d).size(), 8u);
  const picojson::value& cpu = d.get("cpu");
  EXPECT_EQ(cpu.get("usage_percent").get<double>(), 45.68);
  ASSERT_EQ(cpu.get("per_core").get<picojson::array>().size(), 2u);
  EXPECT_EQ(cpu.get("per_core").get(1).get<double>(), 51.36);
  EXPECT_EQ(cpu.get("core_count").get<double>(), 2);
  EXPECT_EQ(cpu.get("frequency_mhz").get(1).get<double>(), 3100.3);
  ASSERT_EQ(cpu.get("load_avg").get<picojson::array>().size(), 3u);
  EXPECT_EQ(cpu.get("load_avg").get(0).get<double>(), 1.5);
  EXPECT_EQ(cpu.get("load_avg").get(1).get<double>(), 1.25);
  EXPECT_EQ(cpu.get("load_avg").get(2).get<double>(), 0.9);
  for (const char* k : {"user", "system", "idle", "iowait", "steal"}) EXPECT_TRUE(cpu.get(k).is<double>()) << k;
  const picojson::value& mem = d.get("memory");
  EXPECT_EQ(mem.get("total_bytes").get<double>(), 16777216000.0);
  EXPECT_EQ(mem.get("used_bytes").get<double>() + mem.get("available_bytes").get<double>(), 16777216000.0);
  EXPECT_EQ(mem.get("swap_percent").get<double>(), 25);
  const picojson::value& net = d.get("network");
  EXPECT_EQ(net.get("bytes_recv_per_sec").get<double>(), 98765.43);
  EXPECT_EQ(obj(net.get("interfaces")).size(), 2u);
  EXPECT_EQ(net.get("interfaces").get("eth0").get("bytes_recv").get<double>(), 987654321012.0);
  EXPECT_EQ(net.get("interfaces").get("lo").get("packets_sent").get<double>(), 32);
  const picojson::value& root = d.get("disk").get("partitions").get("/");
  EXPECT_EQ(root.get("device").get<std::string>(), "/dev/sda1");
  EXPECT_EQ(root.get("fstype").get<std::string>(), "ext4");
  EXPECT_EQ(root.get("usage_percent").get<double>(), 45.3);
  EXPECT_EQ(root.get("total_bytes").get<double>(), 250000000000.0);
  const picojson::value& io = d.get("disk").get("io");
  EXPECT_EQ(io.get("write_bytes_per_sec").get<double>(), 123456.79);
  EXPECT_EQ(io.get("devices").get("sda").get("writes_per_sec").get<double>(), 12.5);
  EXPECT_EQ(d.get("system").get("hostname").get<std::string>(), "host-01");
  EXPECT_EQ(d.get("system").get("uptime_seconds").get<double>(), 123457);
  EXPECT_EQ(d.get("custom").get("app_queue_depth").get<double>(), 12);
  EXPECT_EQ(d.get("custom").get("cache_hit_ratio").get<double>(), 0.333333);
  EXPECT_FALSE(v.contains("error"));
  // write_rich_data is the `data` object itself.
  std::string data;
  write_rich_data(data, sample_snapshot(), kRichAll);
  EXPECT_EQ(j, "{\"type\":\"metrics\",\"timestamp\":\"2025-11-10T12:30:45Z\",\"data\":" + data + "}");
}

TEST(SerializeGolden, RichFiltered) {
  const std::int64_t tick = 1762777845500000;  // half-second tick: milliseconds
  std::string j = rich_json(sample_snapshot(), kRichCpu | kRichNetwork, tick);
  expect_golden("rich_cpu_network.json", j);
  picojson::value v = parse_json(j);
  EXPECT_EQ(v.get("timestamp").get<std::string>(), "2025-11-10T12:30:45.500Z");
  std::string data;
  write_rich_data(data, sample_snapshot(), kRichCpu | kRichNetwork);
  EXPECT_EQ(keys_in_order(data), (std::vector<std::string>{"cpu", "network"}));
  // The dashboard's set (SPEC 5.3).
  data.clear();
  write_rich_data(data, sample_snapshot(), kRichDashboard);
  EXPECT_EQ(keys_in_order(data), (std::vector<std::string>{"cpu", "memory", "network", "disk"}));
  data.clear();
  write_rich_data(data, sample_snapshot(), 0);
  EXPECT_EQ(data, "{}");
}

TEST(SerializeGolden, RichWithFailedGroups) {
  std::string j = rich_json(failed_group_snapshot(), kRichAll, 1762777845000000);
  expect_golden("rich_failed_groups.json", j);
  picojson::value v = parse_json(j);
  const picojson::value& d = v.get("data");
  EXPECT_TRUE(d.get("network").is<picojson::null>());
  EXPECT_TRUE(d.get("system").is<picojson::null>());
  EXPECT_TRUE(d.get("cpu").is<picojson::object>());
  const picojson::value& nfs = d.get("disk").get("partitions").get("/mnt/nfs");
  EXPECT_TRUE(nfs.get("usage_percent").is<picojson::null>());
  EXPECT_TRUE(nfs.get("total_bytes").is<picojson::null>());
  EXPECT_EQ(nfs.get("error").get<std::string>(), "statvfs timed out after 1 s");
  EXPECT_EQ(nfs.get("device").get<std::string>(), "server:/export");
  EXPECT_EQ(d.get("disk").get("partitions").get("/").get("usage_percent").get<double>(), 45.3);
  const std::string& err = v.get("error").get<std::string>();
  EXPECT_EQ(err.rfind("Metric collection failed: ", 0), 0u) << err;
  EXPECT_NE(err.find("network: cannot read /proc/net/dev"), std::string::npos) << err;
  EXPECT_NE(err.find("system: uname failed"), std::string::npos) << err;
  // Filtered to healthy groups, the message carries no error.
  std::string ok = rich_json(failed_group_snapshot(), kRichCpu | kRichMemory, 1762777845000000);
  EXPECT_FALSE(parse_json(ok).contains("error")) << ok;
  // A load average that failed alone leaves the cpu object with a null.
  Snapshot s = sample_snapshot();
  s.load.ok = false;
  std::string data;
  write_rich_data(data, s, kRichCpu);
  EXPECT_TRUE(parse_json(data).get("cpu").get("load_avg").is<picojson::null>());
}

TEST(SerializeGolden, EscapedNames) {
  // Interface, mount and gauge names come from the system or the embedder.
  Snapshot s = sample_snapshot();
  s.network.interfaces[0].name = "we\"ird\\if";
  s.disk.partitions[0].mountpoint = "/mnt/with space\t";
  s.custom[0].name = "app\nqueue";
  s.system.hostname = "h\x01";
  std::string j = rich_json(s, kRichAll, 1762777845000000);
  picojson::value v = parse_json(j);
  EXPECT_TRUE(v.get("data").get("network").get("interfaces").contains("we\"ird\\if"));
  EXPECT_TRUE(v.get("data").get("disk").get("partitions").contains("/mnt/with space\t"));
  EXPECT_TRUE(v.get("data").get("custom").contains("app\nqueue"));
  EXPECT_EQ(v.get("data").get("system").get("hostname").get<std::string>(), "h\x01");
  s.cpu.ok = false;
  s.cpu.error = "quote \" and newline \n";
  picojson::value f = parse_json(flat_json(s, kFlatAll));
  EXPECT_NE(f.get("error").get<std::string>().find("quote \" and newline \n"), std::string::npos);
}

TEST(SerializeGolden, RichInvalidUtf8Names) {
  // A mount point and an interface name are bytes, not text: a byte that
  // starts no well-formed sequence becomes U+FFFD, so the frame stays valid
  // UTF-8 (browsers close a connection with 1007 otherwise). Valid multi-byte
  // names pass through unchanged.
  Snapshot s = sample_snapshot();
  s.network.interfaces[0].name = "eth\xff\xfe";
  s.disk.partitions[0].mountpoint = "/mnt/caf\xe9/\xc3\xa9t\xc3\xa9\xe2\x82";
  s.disk.partitions[0].device = "/dev/\xed\xa0\x80sdb";  // an encoded surrogate
  s.system.hostname = "h\xf0\x9f\x98\x80st";
  std::string j = rich_json(s, kRichAll, 1762777845000000);
  expect_golden("rich_invalid_utf8.json", j);
  EXPECT_TRUE(valid_utf8(j));
  picojson::value v = parse_json(j);
  const picojson::value& d = v.get("data");
  EXPECT_TRUE(d.get("network").get("interfaces").contains("eth\xEF\xBF\xBD\xEF\xBF\xBD"));
  const std::string mount = "/mnt/caf\xEF\xBF\xBD/\xc3\xa9t\xc3\xa9\xEF\xBF\xBD\xEF\xBF\xBD";
  ASSERT_TRUE(d.get("disk").get("partitions").contains(mount)) << j;
  EXPECT_EQ(d.get("disk").get("partitions").get(mount).get("device").get<std::string>(),
            "/dev/\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDsdb");
  EXPECT_EQ(d.get("system").get("hostname").get<std::string>(), "h\xf0\x9f\x98\x80st");
  EXPECT_TRUE(valid_utf8(flat_json(s, kFlatAll)));
}

TEST(SerializeJson, TextFramesAreValidUtf8) {
  // Whatever an embedder or a route hands over, a text frame carries UTF-8.
  auto frame = encode_text_frame("bad \xff\xfe end");
  ASSERT_GE(frame->size(), 2u);
  std::string payload = frame->substr(2);
  EXPECT_EQ(payload, "bad \xEF\xBF\xBD\xEF\xBF\xBD end");
  EXPECT_EQ(encode_text_frame("ok \xc3\xa9")->substr(2), "ok \xc3\xa9");
  EXPECT_EQ(utf8_substituted("\xc3"), "\xEF\xBF\xBD");
  EXPECT_EQ(json_string("\x80"), "\"\xEF\xBF\xBD\"");
}

TEST(SerializeGolden, NonFiniteValuesAreNull) {
  Snapshot s = sample_snapshot();
  s.cpu.usage_percent = std::nan("");
  s.custom[0].value = std::numeric_limits<double>::infinity();
  picojson::value f = parse_json(flat_json(s, kFlatAll));
  EXPECT_TRUE(f.get("cpu").is<picojson::null>());
  picojson::value r = parse_json(rich_json(s, kRichAll, 1762777845000000));
  EXPECT_TRUE(r.get("data").get("cpu").get("usage_percent").is<picojson::null>());
  EXPECT_TRUE(r.get("data").get("custom").get("app_queue_depth").is<picojson::null>());
}

// ---- history ----------------------------------------------------------------------------------

namespace {

Snapshot history_point(double cpu, std::size_t gauges = 1) {
  Snapshot s;
  s.cpu.ok = s.memory.ok = s.disk.path.ok = s.network.ok = s.load.ok = true;
  s.cpu.usage_percent = cpu;
  s.memory.usage_percent = cpu + 1;
  s.disk.path.usage_percent = cpu + 2;
  s.network.bytes_sent_per_sec = cpu * 10;
  s.network.bytes_recv_per_sec = cpu * 20;
  s.load.load1 = cpu / 100;
  s.load.load5 = cpu / 200;
  s.load.load15 = cpu / 400;
  for (std::size_t g = 0; g < gauges; ++g) s.custom.push_back({"g" + std::to_string(g), "", cpu * 3 + double(g)});
  return s;
}

struct Point {
  std::int64_t t;
  std::vector<float> v;
};

std::vector<Point> points_since(const History& h, std::int64_t since, std::size_t stride) {
  std::vector<Point> out;
  h.each_since(since, [&](std::int64_t t, const float* v) { out.push_back({t, std::vector<float>(v, v + stride)}); });
  return out;
}

}  // namespace

TEST(SerializeHistory, OldestFirstSince) {
  History h;
  h.reset(10, 1);
  EXPECT_EQ(h.size(), 0u);
  EXPECT_TRUE(points_since(h, 0, History::kBuiltin + 1).empty());
  for (int i = 1; i <= 4; ++i) h.push(history_point(10.0 * i), std::int64_t(i) * 1000000);
  EXPECT_EQ(h.size(), 4u);
  std::vector<Point> all = points_since(h, 0, History::kBuiltin + 1);
  ASSERT_EQ(all.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    double cpu = 10.0 * double(i + 1);
    EXPECT_EQ(all[i].t, std::int64_t(i + 1) * 1000000);
    EXPECT_EQ(all[i].v[History::Cpu], float(cpu));
    EXPECT_EQ(all[i].v[History::Memory], float(cpu + 1));
    EXPECT_EQ(all[i].v[History::Disk], float(cpu + 2));
    EXPECT_EQ(all[i].v[History::NetSent], float(cpu * 10));
    EXPECT_EQ(all[i].v[History::NetRecv], float(cpu * 20));
    EXPECT_EQ(all[i].v[History::Load1], float(cpu / 100));
    EXPECT_EQ(all[i].v[History::Load5], float(cpu / 200));
    EXPECT_EQ(all[i].v[History::Load15], float(cpu / 400));
    EXPECT_EQ(all[i].v[History::kBuiltin], float(cpu * 3));
  }
  // Inclusive lower bound.
  std::vector<Point> recent = points_since(h, 3000000, History::kBuiltin + 1);
  ASSERT_EQ(recent.size(), 2u);
  EXPECT_EQ(recent[0].t, 3000000);
  EXPECT_EQ(recent[1].t, 4000000);
  EXPECT_EQ(points_since(h, 3000001, History::kBuiltin + 1).size(), 1u);
  EXPECT_TRUE(points_since(h, 5000000, History::kBuiltin + 1).empty());
}

TEST(SerializeHistory, WrapsAtCapacity) {
  History h;
  h.reset(5, 0);
  for (int i = 1; i <= 13; ++i) {
    h.push(history_point(double(i), 0), std::int64_t(i) * 1000000);
    EXPECT_EQ(h.size(), std::min<std::size_t>(std::size_t(i), 5));
    std::vector<Point> all = points_since(h, 0, History::kBuiltin);
    ASSERT_EQ(all.size(), h.size());
    for (std::size_t k = 0; k < all.size(); ++k) {
      int expect = i - int(all.size()) + 1 + int(k);  // the last five, oldest first
      EXPECT_EQ(all[k].t, std::int64_t(expect) * 1000000) << "after " << i << " pushes";
      EXPECT_EQ(all[k].v[History::Cpu], float(expect));
    }
  }
  std::vector<Point> last = points_since(h, 11000000, History::kBuiltin);
  ASSERT_EQ(last.size(), 3u);
  EXPECT_EQ(last[0].t, 11000000);
  // Reset empties it; a zero capacity holds one point.
  h.reset(0, 0);
  EXPECT_EQ(h.size(), 0u);
  h.push(history_point(1, 0), 1);
  h.push(history_point(2, 0), 2);
  std::vector<Point> one = points_since(h, 0, History::kBuiltin);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].t, 2);
  EXPECT_EQ(one[0].v[History::Cpu], 2.0f);
  EXPECT_GT(h.memory_bytes(), 0u);
}

TEST(SerializeHistory, FailedGroupsAreNaN) {
  History h;
  h.reset(4, 2);
  Snapshot s = history_point(50, 2);
  s.cpu.ok = false;
  s.network.ok = false;
  s.load.ok = false;
  s.custom[1].value = std::nan("");
  h.push(s, 1000000);
  h.push(history_point(60, 2), 2000000);
  std::vector<Point> p = points_since(h, 0, History::kBuiltin + 2);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_TRUE(std::isnan(p[0].v[History::Cpu]));
  EXPECT_EQ(p[0].v[History::Memory], 51.0f);
  EXPECT_EQ(p[0].v[History::Disk], 52.0f);
  EXPECT_TRUE(std::isnan(p[0].v[History::NetSent]));
  EXPECT_TRUE(std::isnan(p[0].v[History::NetRecv]));
  EXPECT_TRUE(std::isnan(p[0].v[History::Load1]));
  EXPECT_TRUE(std::isnan(p[0].v[History::Load5]));
  EXPECT_TRUE(std::isnan(p[0].v[History::Load15]));
  EXPECT_EQ(p[0].v[History::kBuiltin], 150.0f);
  EXPECT_TRUE(std::isnan(p[0].v[History::kBuiltin + 1]));
  // The next point is whole again.
  EXPECT_EQ(p[1].v[History::Cpu], 60.0f);
  EXPECT_EQ(p[1].v[History::Load1], 0.6f);
  EXPECT_EQ(p[1].v[History::kBuiltin + 1], 181.0f);
  // Memory and disk fail separately.
  Snapshot m = history_point(70, 2);
  m.memory.ok = false;
  m.disk.path.ok = false;
  h.push(m, 3000000);
  p = points_since(h, 3000000, History::kBuiltin + 2);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].v[History::Cpu], 70.0f);
  EXPECT_TRUE(std::isnan(p[0].v[History::Memory]));
  EXPECT_TRUE(std::isnan(p[0].v[History::Disk]));
}
