// Unit tests of alert rules (SPEC 5.4): parsing "--alert" texts, the error
// each bad one gets, durations, and the comparison each operator makes.
#include "metrics_agent.hpp"

#include <gtest/gtest.h>

#include "test_locales.hpp"

#include <cctype>
#include <clocale>
#include <cmath>
#include <limits>
#include <string>

using namespace metrics_agent;
using namespace metrics_agent::detail;

namespace {

AlertRule parse_ok(const std::string& text) {
  AlertRule r;
  std::string err;
  EXPECT_TRUE(parse_alert_rule(text, r, err)) << text << ": " << err;
  EXPECT_EQ(err, "") << text;
  return r;
}

std::string parse_error(const std::string& text) {
  AlertRule r;
  std::string err;
  EXPECT_FALSE(parse_alert_rule(text, r, err)) << "'" << text << "' was accepted";
  EXPECT_FALSE(err.empty()) << text;
  return err;
}

AlertRule rule(const char* op, double threshold) {
  AlertRule r;
  r.metric = "cpu";
  r.op = op;
  r.threshold = threshold;
  return r;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST(AlertRule, GoodRules) {
  AlertRule r = parse_ok("cpu>90:30s");
  EXPECT_EQ(r.metric, "cpu");
  EXPECT_EQ(r.op, ">");
  EXPECT_EQ(r.threshold, 90);
  EXPECT_EQ(r.hold_seconds, 30);
  EXPECT_EQ(r.level, "warning");  // the default level
  EXPECT_EQ(r.text, "cpu>90:30s");
  EXPECT_FALSE(r.firing);

  r = parse_ok("memory>=95:1m:critical");
  EXPECT_EQ(r.metric, "memory");
  EXPECT_EQ(r.op, ">=");
  EXPECT_EQ(r.threshold, 95);
  EXPECT_EQ(r.hold_seconds, 60);
  EXPECT_EQ(r.level, "critical");

  r = parse_ok("disk>90:critical");
  EXPECT_EQ(r.metric, "disk");
  EXPECT_EQ(r.op, ">");
  EXPECT_EQ(r.threshold, 90);
  EXPECT_EQ(r.hold_seconds, 0);
  EXPECT_EQ(r.level, "critical");

  r = parse_ok("load1<0.5:info");
  EXPECT_EQ(r.metric, "load1");
  EXPECT_EQ(r.op, "<");
  EXPECT_EQ(r.threshold, 0.5);
  EXPECT_EQ(r.hold_seconds, 0);
  EXPECT_EQ(r.level, "info");

  r = parse_ok("app_queue_depth>100:10s");
  EXPECT_EQ(r.metric, "app_queue_depth");
  EXPECT_EQ(r.op, ">");
  EXPECT_EQ(r.threshold, 100);
  EXPECT_EQ(r.hold_seconds, 10);
  EXPECT_EQ(r.level, "warning");
}

TEST(AlertRule, MoreGoodRules) {
  AlertRule r = parse_ok("swap<=5");
  EXPECT_EQ(r.op, "<=");
  EXPECT_EQ(r.threshold, 5);
  EXPECT_EQ(r.hold_seconds, 0);
  r = parse_ok("load5>4:2h:warning");
  EXPECT_EQ(r.hold_seconds, 7200);
  EXPECT_EQ(r.level, "warning");
  r = parse_ok("cpu>-1.5:0s");  // negative thresholds are numbers too
  EXPECT_EQ(r.threshold, -1.5);
  EXPECT_EQ(r.hold_seconds, 0);
  r = parse_ok("cpu>90:critical:45");  // level and duration in either order; bare seconds
  EXPECT_EQ(r.level, "critical");
  EXPECT_EQ(r.hold_seconds, 45);
  r = parse_ok("app.requests_per_sec>1e3:1.5m");
  EXPECT_EQ(r.metric, "app.requests_per_sec");
  EXPECT_EQ(r.threshold, 1000);
  EXPECT_EQ(r.hold_seconds, 90);
}

TEST(AlertRule, ParseResetsTheRule) {
  AlertRule r;
  r.firing = true;
  r.level = "critical";
  r.hold_seconds = 99;
  std::string err;
  ASSERT_TRUE(parse_alert_rule("cpu>1", r, err));
  EXPECT_FALSE(r.firing);
  EXPECT_EQ(r.level, "warning");
  EXPECT_EQ(r.hold_seconds, 0);
}

TEST(AlertRule, DefaultRulesParse) {
  auto defaults = default_alert_rules();
  ASSERT_EQ(defaults.size(), 3u);
  bool disk_critical = false;
  for (const auto& text : defaults) {
    AlertRule r = parse_ok(text);
    EXPECT_TRUE(builtin_alert_metric(r.metric)) << text;
    EXPECT_EQ(r.op, ">");
    EXPECT_EQ(r.threshold, 90);
    if (r.metric == "disk") disk_critical = r.level == "critical";
  }
  EXPECT_TRUE(disk_critical);  // SPEC 5.4: disk>90 (critical)
}

TEST(AlertRule, BadRulesNameTheProblem) {
  // No comparison at all: the error shows the expected form.
  for (const char* text : {"", "cpu", "cpu!90", "cpu=90", ":30s"}) {
    std::string err = parse_error(text);
    EXPECT_TRUE(contains(err, "'" + std::string(text) + "'")) << err;
    EXPECT_TRUE(contains(err, "cpu>90")) << "no example of the form in: " << err;
  }
  // No metric before the comparison.
  std::string err = parse_error(">90");
  EXPECT_TRUE(contains(err, "'>90'")) << err;
  EXPECT_TRUE(contains(err, "METRIC")) << err;
  // Threshold.
  for (const char* text : {"cpu>abc", "cpu>", "cpu>=", "cpu>90%", "cpu>nan", "cpu>inf", "cpu>>90", "cpu>1e999"}) {
    err = parse_error(text);
    EXPECT_TRUE(contains(err, "threshold")) << text << ": " << err;
  }
  // Duration or level.
  err = parse_error("cpu>90:xyz");
  EXPECT_TRUE(contains(err, "'xyz'")) << err;
  EXPECT_TRUE(contains(err, "duration")) << err;
  err = parse_error("cpu>90:-5s");
  EXPECT_TRUE(contains(err, "'-5s'")) << err;
  err = parse_error("cpu>90:30s:urgent");
  EXPECT_TRUE(contains(err, "'urgent'")) << err;
  EXPECT_TRUE(contains(err, "level")) << err;
  err = parse_error("cpu>90:");
  EXPECT_TRUE(contains(err, "duration")) << err;
  err = parse_error("cpu>90:8d");
  EXPECT_TRUE(contains(err, "'8d'")) << err;
  // Metric name.
  err = parse_error("cp u>9");
  EXPECT_TRUE(contains(err, "metric")) << err;
  EXPECT_TRUE(contains(err, "'cp u'")) << err;
  err = parse_error("cpu-1>9");
  EXPECT_TRUE(contains(err, "'cpu-1'")) << err;
  err = parse_error("cpu/0>9");
  EXPECT_TRUE(contains(err, "metric")) << err;
}

TEST(AlertRule, AnEmptyMetricNameIsRefused) {
  for (const char* text : {" <9", "  >1", "\t>=2:30s", " <9:critical"}) {
    std::string err = parse_error(text);
    EXPECT_TRUE(contains(err, "metric")) << text << ": " << err;
  }
}

// Metric names are ASCII letters, digits, '_' and '.', whatever the locale:
// under an 8-bit locale the C library counts letters such as 0xE9 as alnum.
TEST(AlertRule, MetricNamesAreAsciiInEveryLocale) {
  const std::string why = test_locales::provide("de_DE", "ISO-8859-1");
  if (!why.empty()) GTEST_SKIP() << "no ISO-8859-1 locale: " << why;
  test_locales::ScopedLocale latin1("de_DE.ISO-8859-1");
  ASSERT_TRUE(latin1.ok());
  ASSERT_TRUE(std::isalnum(0xE9)) << "the locale is not active";
  std::string err = parse_error("caf\xE9>1");
  EXPECT_TRUE(contains(err, "metric")) << err;
  parse_ok("cafe_2.x>1");
}

TEST(AlertRule, SignedThresholdIsOneNumber) {
  std::string err = parse_error("cpu>+-5");
  EXPECT_TRUE(contains(err, "threshold")) << err;
  parse_error("cpu>-+5");
}

TEST(AlertDuration, Units) {
  double s = -1;
  EXPECT_TRUE(parse_duration("30s", s));
  EXPECT_EQ(s, 30);
  EXPECT_TRUE(parse_duration("1m", s));
  EXPECT_EQ(s, 60);
  EXPECT_TRUE(parse_duration("2h", s));
  EXPECT_EQ(s, 7200);
  EXPECT_TRUE(parse_duration("45", s));
  EXPECT_EQ(s, 45);
  EXPECT_TRUE(parse_duration("0.5s", s));
  EXPECT_EQ(s, 0.5);
  EXPECT_TRUE(parse_duration("0", s));
  EXPECT_EQ(s, 0);
  // Up to a week.
  EXPECT_TRUE(parse_duration("604800s", s));
  EXPECT_EQ(s, 604800);
  EXPECT_TRUE(parse_duration("10080m", s));
  EXPECT_EQ(s, 604800);
  EXPECT_TRUE(parse_duration("168h", s));
  EXPECT_EQ(s, 604800);
  s = 123;
  for (const char* bad : {"", "s", "m", "-1s", "-5", "1d", "7 days", "abc", "1x", "604801", "10081m", "169h", "1e9s",
                          "nan", "infs", "1ms", "30ss"}) {
    EXPECT_FALSE(parse_duration(bad, s)) << bad;
  }
  EXPECT_EQ(s, 123) << "a refused duration leaves the output alone";
}

TEST(AlertHolds, EachOperator) {
  struct Case {
    const char* op;
    double below, equal, above;  // whether it holds at threshold-1, threshold, threshold+1
  };
  const Case cases[] = {{">", 0, 0, 1}, {">=", 0, 1, 1}, {"<", 1, 0, 0}, {"<=", 1, 1, 0}};
  for (const auto& c : cases) {
    AlertRule r = rule(c.op, 90);
    EXPECT_EQ(alert_holds(r, 89), c.below != 0) << c.op;
    EXPECT_EQ(alert_holds(r, 90), c.equal != 0) << c.op;
    EXPECT_EQ(alert_holds(r, 91), c.above != 0) << c.op;
    EXPECT_EQ(alert_holds(r, 89.999), c.below != 0) << c.op;
    EXPECT_EQ(alert_holds(r, 90.001), c.above != 0) << c.op;
    // A value that could not be read never holds.
    EXPECT_FALSE(alert_holds(r, std::nan(""))) << c.op;
  }
  // Through the parser, fractional thresholds.
  AlertRule low = parse_ok("load1<0.5:info");
  EXPECT_TRUE(alert_holds(low, 0.49));
  EXPECT_FALSE(alert_holds(low, 0.5));
  EXPECT_FALSE(alert_holds(low, 4));
  AlertRule high = parse_ok("memory>=95:1m:critical");
  EXPECT_TRUE(alert_holds(high, 95));
  EXPECT_TRUE(alert_holds(high, 100));
  EXPECT_FALSE(alert_holds(high, 94.99));
  EXPECT_TRUE(alert_holds(high, std::numeric_limits<double>::infinity()));
}
