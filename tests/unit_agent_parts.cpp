// Unit tests of the agent's parts, each alone: the stream table and the
// table of built-in metric names, the stream hub's fan-out (recording
// sockets), auth's login limits (injected clocks) and the alert engine's
// hold times.
#include "metrics_agent.hpp"
#include "test_hub.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

using namespace metrics_agent;
using namespace metrics_agent::detail;

namespace {

// ---- the tables ------------------------------------------------------------

TEST(AgentTables, StreamsArePublicOnlyWhereTheSpecSaysSo) {
  EXPECT_TRUE(public_stream_path("/api/system/metrics"));
  for (const char* p : {"/api/ws/metrics", "/api/ws/ws", "/api/ws/ws/alerts", "/health", "/api/ws/ws/other"})
    EXPECT_FALSE(public_stream_path(p)) << p;
  EXPECT_STREQ(stream_spec(Stream::Alerts).path, "/api/ws/ws/alerts");
  EXPECT_STREQ(stream_spec(Stream::Dashboard).name, "dashboard");
  EXPECT_EQ(stream_spec(Stream::Dashboard).fields, std::uint32_t(kRichDashboard));
}

TEST(AgentTables, BuiltinNamesFeedAlertsAndHistory) {
  EXPECT_EQ(builtin_alert_names(), "cpu, memory, disk, swap, load1, load5, load15");
  EXPECT_EQ(builtin_history_names(), "cpu, memory, disk, network, load");
  EXPECT_TRUE(builtin_alert_metric("load"));  // an alias of load1, not listed
  EXPECT_FALSE(builtin_alert_metric("network"));
  Snapshot s;
  s.load.ok = true;
  s.load.load1 = 1.5;
  double v = 0;
  EXPECT_TRUE(alert_value(s, "load", v));
  EXPECT_EQ(v, 1.5);
  EXPECT_FALSE(alert_value(s, "cpu", v));  // not collected
  EXPECT_EQ(rich_group_names(), "cpu, memory, network, disk, system, container, custom, sensors");
  EXPECT_EQ(rich_field("load"), std::uint32_t(kRichCpu));
}

// ---- the stream hub ----------------------------------------------------------

using test_hub::FakeSocket;

using Hub = BasicStreamHub<FakeSocket>;

using test_hub::small_snapshot;

constexpr std::int64_t kSecond = 1000000;
constexpr std::int64_t kT0 = 1700000010 * kSecond;  // a multiple of 2, 3 and 5 s

TEST(StreamHub, OneFramePerDistinctOutputSharedByItsClients) {
  Hub hub(1.0, false);
  FakeSocket a, b, cpu_only("metrics=cpu"), flat;
  hub.open(a, Stream::Rich);
  hub.open(b, Stream::Rich);
  hub.open(cpu_only, Stream::Rich);
  hub.open(flat, Stream::Flat);
  EXPECT_TRUE(a.r->frames.empty());  // nothing to send before the first tick
  const Snapshot s = small_snapshot();
  hub.fan_out(s, kT0);
  ASSERT_EQ(a.r->frames.size(), 1u);
  ASSERT_EQ(b.r->frames.size(), 1u);
  ASSERT_EQ(cpu_only.r->frames.size(), 1u);
  ASSERT_EQ(flat.r->frames.size(), 1u);
  EXPECT_EQ(a.r->frames[0].get(), b.r->frames[0].get());  // the same buffer
  EXPECT_NE(a.r->frames[0].get(), cpu_only.r->frames[0].get());
  EXPECT_EQ(*a.r->frames[0], *encode_text_frame(rich_json(s, kRichAll, kT0)));
  EXPECT_EQ(*cpu_only.r->frames[0], *encode_text_frame(rich_json(s, kRichCpu, kT0)));
  EXPECT_EQ(*flat.r->frames[0], *encode_text_frame(flat_json(s, kFlatAll)));
}

TEST(StreamHub, EachClientGetsTheTicksOfItsInterval) {
  Hub hub(1.0, false);
  FakeSocket flat, rich, every3("interval=3"), alerts;
  hub.open(flat, Stream::Flat);
  hub.open(rich, Stream::Rich);
  hub.open(every3, Stream::Dashboard);
  hub.open(alerts, Stream::Alerts);
  const Snapshot s = small_snapshot();
  for (int i = 1; i <= 10; ++i) hub.fan_out(s, kT0 + i * kSecond);
  EXPECT_EQ(flat.r->frames.size(), 10u);   // every tick
  EXPECT_EQ(rich.r->frames.size(), 2u);    // every 5 s: ticks 5 and 10
  EXPECT_EQ(every3.r->frames.size(), 3u);  // ticks 3, 6, 9
  EXPECT_TRUE(alerts.r->frames.empty());   // events and heartbeats only
  hub.heartbeat(kT0);
  EXPECT_EQ(alerts.r->frames.size(), 1u);
  EXPECT_EQ(flat.r->frames.size(), 10u);
}

TEST(StreamHub, ALateClientGetsTheLatestAtOnceAndACloseStopsTheFrames) {
  Hub hub(1.0, false);
  FakeSocket a, b, c;
  hub.open(a, Stream::Flat);
  const Snapshot s = small_snapshot();
  hub.fan_out(s, kT0);
  hub.open(b, Stream::Flat);
  hub.open(c, Stream::Flat);
  ASSERT_EQ(b.r->frames.size(), 1u);
  EXPECT_EQ(b.r->frames[0].get(), a.r->frames[0].get());  // the tick's frame
  hub.close(a);  // c takes a's place
  EXPECT_EQ(hub.size(), 2u);
  hub.fan_out(s, kT0 + kSecond);
  EXPECT_EQ(a.r->frames.size(), 1u);
  EXPECT_EQ(b.r->frames.size(), 2u);
  EXPECT_EQ(c.r->frames.size(), 2u);
  hub.close(a);  // twice: no effect
  EXPECT_EQ(hub.size(), 2u);
}

TEST(StreamHub, ControlMessagesChangeTheViewOrAnswerAnError) {
  Hub hub(1.0, false);
  FakeSocket a;
  hub.open(a, Stream::Rich);
  hub.control(a, R"({"type":"subscribe","metrics":["cpu","load"],"interval":2})", false);
  hub.control(a, R"({"type":"subscribe","metrics":["gpu"]})", false);
  hub.control(a, "{", false);
  ASSERT_EQ(a.r->texts.size(), 3u);
  EXPECT_EQ(a.r->texts[0], R"({"type":"subscribed","metrics":["cpu"],"interval":2})");
  EXPECT_NE(a.r->texts[1].find("unknown metric \\\"gpu\\\""), std::string::npos) << a.r->texts[1];
  EXPECT_NE(a.r->texts[2].find("\"type\":\"error\""), std::string::npos);
  const Snapshot s = small_snapshot();
  for (int i = 1; i <= 4; ++i) hub.fan_out(s, kT0 + i * kSecond);
  ASSERT_EQ(a.r->frames.size(), 2u);
  EXPECT_EQ(*a.r->frames[0], *encode_text_frame(rich_json(s, kRichCpu, kT0 + 2 * kSecond)));
}

// ---- auth --------------------------------------------------------------------

struct AuthFixture : ::testing::Test {
  std::int64_t wall_us = kT0;
  double mono = 1000;
  // One PBKDF2 round: a wrong password costs nothing here.
  Auth auth{"secret", {"ann:" + password_hash("right", 1)}, 3600};

  void SetUp() override {
    auth.set_clocks([this] { return wall_us; }, [this] { return mono; });
  }

  HttpResponse login(const std::string& address, const std::string& password, const std::string& user = "ann") {
    HttpRequest r;
    r.method = "POST";
    r.path = "/api/auth/login";
    r.headers = {{"content-type", "application/json"}};
    r.body = "{\"username\":\"" + user + "\",\"password\":\"" + password + "\"}";
    r.remote_address = address;
    return auth.login(r);
  }
};

TEST_F(AuthFixture, FailuresAreCountedPerAddressForAMinute) {
  for (int i = 0; i < Auth::kLoginMaxFailures; ++i) {
    mono += 1;  // the global bucket refills
    EXPECT_EQ(login("10.0.0.1", "wrong").status, 401);
  }
  mono += 1;
  HttpResponse r = login("10.0.0.1", "right");
  EXPECT_EQ(r.status, 429);
  EXPECT_NE(r.body.find("too many login attempts"), std::string::npos);
  EXPECT_EQ(login("10.0.0.2", "right").status, 200);  // another address
  EXPECT_EQ(auth.tracked_addresses(), 1u);
  wall_us += Auth::kLoginWindowSeconds * kSecond;  // the window has passed
  mono += 1;
  EXPECT_EQ(login("10.0.0.1", "right").status, 200);
  EXPECT_EQ(auth.tracked_addresses(), 0u);  // pruned
}

TEST_F(AuthFixture, PasswordChecksShareOneBucketAcrossAddresses) {
  const int burst = int(Auth::kLoginCheckBurst);
  for (int i = 0; i < burst; ++i) EXPECT_EQ(login("10.1.0." + std::to_string(i), "wrong").status, 401);
  HttpResponse r = login("10.2.0.1", "right");
  EXPECT_EQ(r.status, 429);
  EXPECT_NE(r.body.find("too many logins on this agent"), std::string::npos);
  EXPECT_EQ(auth.throttled(), 1u);
  mono += 1 / Auth::kLoginChecksPerSecond;  // one check's worth
  EXPECT_EQ(login("10.2.0.1", "right").status, 200);
  EXPECT_EQ(login("10.2.0.1", "right").status, 429);
}

TEST_F(AuthFixture, ATokenFromLoginPassesUntilItExpires) {
  HttpResponse r = login("127.0.0.1", "right");
  ASSERT_EQ(r.status, 200) << r.body;
  picojson::value v;
  ASSERT_EQ(parse_json(v, r.body), "");
  HttpRequest req;
  req.headers = {{"authorization", "Bearer " + v.get("access_token").get<std::string>()}};
  EXPECT_EQ(auth.failure(req), "");
  wall_us += 3601 * kSecond;
  EXPECT_NE(auth.failure(req).find("invalid token"), std::string::npos);
  EXPECT_NE(auth.failure(HttpRequest()).find("authentication required"), std::string::npos);
  Auth off("", {}, 3600);
  EXPECT_FALSE(off.enabled());
  EXPECT_EQ(off.failure(HttpRequest()), "");
}

// ---- the alert engine --------------------------------------------------------

TEST(AlertEngine, FiresAndResolvesOnceAfterTheHoldTime) {
  AlertEngine engine({"cpu>90:30s", "memory>50:critical", "bogus"});
  ASSERT_EQ(engine.rules().size(), 2u);
  std::vector<std::pair<std::string, std::uint8_t>> events;
  auto publish = [&](const std::string& json, std::uint8_t level) { events.emplace_back(json, level); };
  Snapshot s = small_snapshot();
  s.cpu.usage_percent = 95;
  s.memory.usage_percent = 60;
  engine.evaluate(s, kT0, publish);
  ASSERT_EQ(events.size(), 1u);  // memory at once, cpu must hold 30 s
  EXPECT_EQ(events[0].second, 4u);
  EXPECT_NE(events[0].first.find("\"metric\":\"memory\""), std::string::npos);
  engine.evaluate(s, kT0 + 29 * kSecond, publish);
  EXPECT_EQ(events.size(), 1u);
  engine.evaluate(s, kT0 + 30 * kSecond, publish);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].second, 2u);
  EXPECT_NE(events[1].first.find("\"state\":\"firing\""), std::string::npos);
  engine.evaluate(s, kT0 + 31 * kSecond, publish);
  EXPECT_EQ(events.size(), 2u);  // once

  std::vector<std::string> replay;
  engine.each_firing(4, [&](const std::string& json) { replay.push_back(json); });
  ASSERT_EQ(replay.size(), 1u);
  EXPECT_EQ(replay[0], events[0].first);

  s.cpu.ok = false;  // not collected: the rule keeps its state
  engine.evaluate(s, kT0 + 40 * kSecond, publish);
  s.cpu.ok = true;
  s.cpu.usage_percent = 10;
  engine.evaluate(s, kT0 + 50 * kSecond, publish);
  engine.evaluate(s, kT0 + 79 * kSecond, publish);
  EXPECT_EQ(events.size(), 2u);
  engine.evaluate(s, kT0 + 80 * kSecond, publish);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_NE(events[2].first.find("\"state\":\"resolved\""), std::string::npos);
  EXPECT_NE(events[2].first.find("cpu > 90 for 30s (resolved)"), std::string::npos) << events[2].first;
}

}  // namespace
