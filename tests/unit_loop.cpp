// Unit tests of the event loop's pure decisions: admission against the client
// limits, and the tick schedule under wall-clock steps.
#include "metrics_agent.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

using namespace metrics_agent::detail;

namespace {

// Models the loop: one admit() per accepted connection and one release() per
// closed one, rejected or not.
struct Clients {
  ClientAdmission admission;
  std::vector<std::string> open;  // remotes of the connections still open
  std::size_t max_clients, max_per_address;

  Clients(std::size_t total, std::size_t per_address) : max_clients(total), max_per_address(per_address) {}

  // True when admitted; a rejected connection is closed again at once.
  bool connect(const std::string& remote, bool loopback = false) {
    open.push_back(remote);
    const char* over = admission.admit(remote, loopback, open.size(), max_clients, max_per_address);
    if (over) disconnect(remote, loopback);
    return over == nullptr;
  }
  void disconnect(const std::string& remote, bool loopback = false) {
    for (auto it = open.end(); it != open.begin();) {
      --it;
      if (*it == remote) {
        open.erase(it);
        break;
      }
    }
    admission.release(remote, loopback);
  }
};

}  // namespace

TEST(ClientAdmission, RejectedByTheTotalStillCountsPerAddress) {
  Clients c(3, 2);
  EXPECT_TRUE(c.connect("192.0.2.7"));
  EXPECT_TRUE(c.connect("192.0.2.7"));
  EXPECT_TRUE(c.connect("198.51.100.1"));
  EXPECT_FALSE(c.connect("192.0.2.7"));  // over --max-clients
  EXPECT_EQ(c.admission.open_from("192.0.2.7"), 2u);
  c.disconnect("198.51.100.1");
  // A slot is free in total, but the address already holds its two.
  EXPECT_FALSE(c.connect("192.0.2.7"));
  EXPECT_EQ(c.admission.open_from("192.0.2.7"), 2u);
  EXPECT_TRUE(c.connect("198.51.100.1"));
}

TEST(ClientAdmission, CountsReturnToZero) {
  Clients c(3, 2);
  for (int round = 0; round < 3; ++round) {
    EXPECT_TRUE(c.connect("192.0.2.7"));
    EXPECT_TRUE(c.connect("192.0.2.7"));
    EXPECT_FALSE(c.connect("192.0.2.7"));   // per address
    EXPECT_TRUE(c.connect("198.51.100.1"));
    EXPECT_FALSE(c.connect("198.51.100.1"));  // total
    c.disconnect("192.0.2.7");
    c.disconnect("192.0.2.7");
    c.disconnect("198.51.100.1");
    EXPECT_EQ(c.admission.open_from("192.0.2.7"), 0u);
    EXPECT_EQ(c.admission.open_from("198.51.100.1"), 0u);
  }
}

TEST(ClientAdmission, LoopbackIsExemptPerAddressButNotFromTheTotal) {
  Clients c(3, 1);
  EXPECT_TRUE(c.connect("127.0.0.1", true));
  EXPECT_TRUE(c.connect("127.0.0.1", true));
  EXPECT_TRUE(c.connect("127.0.0.1", true));
  EXPECT_FALSE(c.connect("127.0.0.1", true));
  EXPECT_EQ(c.admission.open_from("127.0.0.1"), 0u);
}

namespace {

constexpr std::int64_t kSec = 1000000;

// A fake pair of clocks driven the way Loop::run drives the schedule: it
// sleeps until the next tick is due, but never longer than 250 ms.
struct FakeClocks {
  std::int64_t mono = 5 * kSec;
  std::int64_t wall = 1700000000 * kSec + 300000;  // 0.3 s past a second
  std::int64_t jitter_us = 0;                      // added to every sleep

  struct Tick {
    std::int64_t mono, wall, stamp;
  };

  void sleep(std::int64_t us) {
    mono += us;
    wall += us;
  }

  // Runs the loop for `duration` of monotonic time; returns the ticks.
  std::vector<Tick> run(TickSchedule& s, std::int64_t duration) {
    std::vector<Tick> ticks;
    std::int64_t end = mono + duration;
    while (mono < end) {
      std::int64_t stamp = 0;
      if (s.due(wall, mono, stamp)) ticks.push_back({mono, wall, stamp});
      sleep(std::min<std::int64_t>(s.wait_us(mono), 250000) + jitter_us);
    }
    return ticks;
  }
};

TickSchedule schedule(std::int64_t period_us, const FakeClocks& c) {
  TickSchedule s;
  s.period_us = period_us;
  s.align(c.wall, c.mono);
  return s;
}

void expect_consecutive(const std::vector<FakeClocks::Tick>& ticks, std::int64_t period) {
  for (std::size_t i = 0; i < ticks.size(); ++i) {
    EXPECT_EQ(ticks[i].stamp % period, 0) << "tick " << i;
    if (i > 0) {
      EXPECT_EQ(ticks[i].stamp, ticks[i - 1].stamp + period) << "tick " << i;
    }
  }
}

}  // namespace

TEST(TickSchedule, TicksOnWallClockBoundaries) {
  FakeClocks c;
  TickSchedule s = schedule(kSec, c);
  std::int64_t stamp = 0;
  EXPECT_FALSE(s.due(c.wall, c.mono, stamp));
  EXPECT_EQ(s.wait_us(c.mono), 700000);
  auto ticks = c.run(s, 10 * kSec);
  ASSERT_EQ(ticks.size(), 10u);
  EXPECT_EQ(ticks[0].stamp, 1700000001 * kSec);
  for (const auto& t : ticks) EXPECT_EQ(t.wall, t.stamp);  // due exactly on the boundary
  expect_consecutive(ticks, kSec);
}

TEST(TickSchedule, StepBackDoesNotFreezeTheTicks) {
  FakeClocks c;
  TickSchedule s = schedule(kSec, c);
  auto before = c.run(s, 3 * kSec);
  ASSERT_EQ(before.size(), 3u);
  std::int64_t step_at = c.mono;
  c.wall -= 60 * kSec + 400000;  // NTP steps the clock back a minute
  auto after = c.run(s, 5 * kSec);
  // Within one period and one 250 ms wake-up of the step, then every period.
  ASSERT_GE(after.size(), 4u);
  EXPECT_LE(after[0].mono - step_at, kSec + 250000);
  EXPECT_LT(after[0].stamp, before.back().stamp - 58 * kSec);
  EXPECT_LE(after[0].stamp - after[0].wall, kSec);
  for (std::size_t i = 1; i < after.size(); ++i) EXPECT_EQ(after[i].mono - after[i - 1].mono, kSec);
  for (const auto& t : after) EXPECT_EQ(t.wall, t.stamp);  // re-aligned to the boundaries
  expect_consecutive(after, kSec);
}

TEST(TickSchedule, StepForwardNeitherBurstsNorWaits) {
  FakeClocks c;
  TickSchedule s = schedule(kSec, c);
  auto before = c.run(s, 3 * kSec);
  std::int64_t step_at = c.mono;
  c.wall += 3600 * kSec + 250000;
  auto after = c.run(s, 5 * kSec);
  ASSERT_GE(after.size(), 4u);
  EXPECT_GE(after[0].mono - before.back().mono, kSec / 2);  // no burst of missed ticks
  EXPECT_LE(after[0].mono - step_at, kSec + 250000);
  EXPECT_GT(after[0].stamp, before.back().stamp + 3600 * kSec);
  for (const auto& t : after) EXPECT_EQ(t.wall, t.stamp);
  expect_consecutive(after, kSec);
}

TEST(TickSchedule, NoBurstAfterAStall) {
  FakeClocks c;
  TickSchedule s = schedule(kSec, c);
  auto before = c.run(s, 2 * kSec);
  c.sleep(10 * kSec + 100000);  // the process was not scheduled for 10 s
  std::int64_t stamp = 0;
  ASSERT_TRUE(s.due(c.wall, c.mono, stamp));
  EXPECT_EQ(stamp, s.floor_to_period(c.wall));  // the latest boundary, not a stale one
  EXPECT_FALSE(s.due(c.wall, c.mono, stamp));   // and only one
  EXPECT_EQ(s.next_wall_us, stamp + kSec);
}

TEST(TickSchedule, SlewAndJitterKeepEveryTickOnce) {
  FakeClocks c;
  c.jitter_us = 1300;
  TickSchedule s = schedule(100000, c);
  std::vector<FakeClocks::Tick> ticks;
  for (int i = 0; i < 2000; ++i) {
    // The wall clock runs 0.05% slow (the most adjtimex slews), read just
    // around each wake-up.
    std::int64_t stamp = 0;
    if (s.due(c.wall, c.mono, stamp)) ticks.push_back({c.mono, c.wall, stamp});
    std::int64_t d = std::min<std::int64_t>(s.wait_us(c.mono), 250000) + c.jitter_us;
    c.mono += d;
    c.wall += d - d / 2000;
  }
  ASSERT_GT(ticks.size(), 100u);
  expect_consecutive(ticks, 100000);
  for (const auto& t : ticks) EXPECT_LT(std::llabs(t.wall - t.stamp), 5000);
}

TEST(TickSchedule, SmallStepBackRepeatsNoTick) {
  FakeClocks c;
  TickSchedule s = schedule(kSec, c);
  auto before = c.run(s, 3 * kSec);
  c.wall -= 15000;  // below the step threshold
  auto after = c.run(s, 3 * kSec);
  ASSERT_GE(after.size(), 2u);
  EXPECT_EQ(after[0].stamp, before.back().stamp + kSec);
  expect_consecutive(after, kSec);
}
