// The sampler thread that keeps blocking collection (statvfs on a dead NFS
// mount, slow sysfs files) away from the event loop: the loop never waits
// for it, and stale results turn into errors instead of old numbers.
#include "metrics_agent.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace {

using metrics_agent::Snapshot;
using metrics_agent::detail::mono_now;
using metrics_agent::detail::SlowSampler;
using SlowPart = metrics_agent::detail::Collector::SlowPart;

// A slow sample that blocks until the test lets it go, like a hung mount.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = true;
  std::atomic<int> calls{0}, entered{0};
  double usage = 42.0;

  void sample(SlowPart& p) {
    ++entered;
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [this] { return open; });
    ++calls;
    p.disk_path.ok = true;
    p.disk_path.mountpoint = "/";
    p.disk_path.usage_percent = usage;
    p.partitions_ok = true;
    p.partitions.push_back(p.disk_path);
    p.frequency_mhz = {1000.0, 2000.0};
  }
  void set_open(bool o) {
    {
      std::lock_guard<std::mutex> lk(mu);
      open = o;
    }
    cv.notify_all();
  }
};

bool wait_calls(const Gate& g, int n) {
  for (int i = 0; i < 500 && g.calls.load() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return g.calls.load() >= n;
}

TEST(SlowSampler, FreshResultsAreMerged) {
  Gate gate;
  SlowSampler sampler([&](SlowPart& p) { gate.sample(p); });
  sampler.kick();
  sampler.wait_first(5.0);
  Snapshot s;
  sampler.merge_into(s, mono_now(), 3.0);
  ASSERT_TRUE(s.disk.path.ok);
  EXPECT_EQ(s.disk.path.usage_percent, 42.0);
  EXPECT_TRUE(s.disk.partitions_ok);
  ASSERT_EQ(s.disk.partitions.size(), 1u);
  EXPECT_EQ(s.cpu.frequency_mhz.size(), 2u);
}

TEST(SlowSampler, NothingYetIsAnErrorNotAZero) {
  Gate gate;
  gate.set_open(false);
  SlowSampler sampler([&](SlowPart& p) { gate.sample(p); });
  sampler.kick();
  Snapshot s;
  sampler.merge_into(s, mono_now(), 3.0);
  EXPECT_FALSE(s.disk.path.ok);
  EXPECT_FALSE(s.disk.partitions_ok);
  EXPECT_FALSE(s.disk.path.error.empty());
  gate.set_open(true);  // let the worker finish before the sampler goes
  ASSERT_TRUE(wait_calls(gate, 1));
}

TEST(SlowSampler, AHungSampleNeverBlocksTheCallerAndGoesStale) {
  Gate gate;
  SlowSampler sampler([&](SlowPart& p) { gate.sample(p); });
  sampler.kick();
  sampler.wait_first(5.0);
  ASSERT_EQ(gate.calls.load(), 1);

  gate.set_open(false);  // the next sample hangs, as on a dead NFS mount
  gate.usage = 50.0;
  sampler.kick();
  // The loop's side keeps going: kicks and merges return at once.
  double t0 = mono_now();
  for (int i = 0; i < 100; ++i) {
    sampler.kick();
    Snapshot s;
    sampler.merge_into(s, mono_now(), 3.0);
    EXPECT_TRUE(s.disk.path.ok);  // still fresh enough
  }
  EXPECT_LT(mono_now() - t0, 1.0);

  // Three seconds later (simulated), the old result is stale: an error with a
  // reason, never the old number passed off as new.
  Snapshot stale;
  sampler.merge_into(stale, mono_now() + 10.0, 3.0);
  EXPECT_FALSE(stale.disk.path.ok);
  EXPECT_NE(stale.disk.path.error.find("did not answer"), std::string::npos) << stale.disk.path.error;
  EXPECT_FALSE(stale.disk.partitions_ok);
  EXPECT_TRUE(stale.disk.partitions.empty());
  EXPECT_TRUE(stale.cpu.frequency_mhz.empty());

  // The mount comes back: the new value arrives.
  gate.set_open(true);
  ASSERT_TRUE(wait_calls(gate, 2));
  Snapshot fresh;
  for (int i = 0; i < 500; ++i) {
    sampler.merge_into(fresh, mono_now(), 3.0);
    if (fresh.disk.path.ok && fresh.disk.path.usage_percent == 50.0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(fresh.disk.path.ok);
  EXPECT_EQ(fresh.disk.path.usage_percent, 50.0);
}

// The destructor leaves a worker that is stuck in the kernel behind. When the
// call returns, the worker must find everything it touches still alive: the
// sample function (and what it captures) and the part it fills.
TEST(SlowSampler, AWorkerLeftInAHungSampleOutlivesTheSampler) {
  Gate gate;  // outlives everything below
  gate.set_open(false);
  auto token = std::make_shared<int>(0);  // captured by the sample function
  std::weak_ptr<int> watch = token;
  auto sampler = std::make_unique<SlowSampler>([&gate, token](SlowPart& p) { gate.sample(p); });
  token.reset();
  sampler->kick();
  for (int i = 0; i < 500 && gate.entered.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(gate.entered.load(), 1);

  sampler.reset();  // waits a second, then leaves the hung worker
  EXPECT_FALSE(watch.expired()) << "the sample function died with the sampler while its worker still runs it";

  gate.set_open(true);  // the mount answers: the worker fills its part and stores the result
  ASSERT_TRUE(wait_calls(gate, 1));
  for (int i = 0; i < 500 && !watch.expired(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(watch.expired()) << "the worker did not finish after its sample returned";
}

// The sampler knows a collector's slow part only through the collector
// contract (SlowPart, merge, merge_failed), so any collector fits.
struct TestCollector {
  struct SlowPart {
    double mhz = 0;
  };
  void sample_fast(Snapshot&, double) {}
  void sample_slow(SlowPart& p) { p.mhz = 1234.0; }
  static void merge(const SlowPart& p, Snapshot& s) { s.cpu.frequency_mhz = {p.mhz}; }
  static void merge_failed(const SlowPart&, const std::string& why, Snapshot& s) {
    s.cpu.frequency_mhz.clear();
    s.cpu.error = why;
  }
};
struct NotACollector {};

namespace contract = metrics_agent::detail::contract;
static_assert(contract::samples_fast<TestCollector>::value && contract::samples_slow<TestCollector>::value &&
                  contract::merges<TestCollector>::value,
              "a collector that keeps the contract passes its checks");
static_assert(!contract::samples_fast<NotACollector>::value && !contract::samples_slow<NotACollector>::value &&
                  !contract::merges<NotACollector>::value,
              "a class without the entry points fails them");

TEST(SlowSampler, AnyCollectorsSlowPartGoesThroughItsMerge) {
  metrics_agent::detail::BasicSlowSampler<TestCollector> sampler(
      [](TestCollector::SlowPart& p) { TestCollector().sample_slow(p); });
  Snapshot before;
  sampler.merge_into(before, mono_now(), 3.0);
  EXPECT_TRUE(before.cpu.frequency_mhz.empty());
  EXPECT_NE(before.cpu.error.find("not collected yet"), std::string::npos) << before.cpu.error;

  sampler.kick();
  sampler.wait_first(5.0);
  Snapshot after;
  sampler.merge_into(after, mono_now(), 3.0);
  ASSERT_EQ(after.cpu.frequency_mhz.size(), 1u);
  EXPECT_EQ(after.cpu.frequency_mhz[0], 1234.0);
}

}  // namespace
