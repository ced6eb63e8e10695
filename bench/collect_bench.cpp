// Cost of one collection on the machine it runs on (Google Benchmark).
//
//   g++ -std=c++17 -O2 -I. bench/collect_bench.cpp -o build/collect_bench -lbenchmark -pthread
//   build/collect_bench --benchmark_repetitions=10 --benchmark_report_aggregates_only=true
//
// sample_fast runs on the event loop every tick, so its CPU time is what the
// loop pays; sample_slow runs on a worker thread.
#include "metrics_agent.hpp"

#include <benchmark/benchmark.h>

namespace {

void BM_SampleFast(benchmark::State& state) {
  metrics_agent::detail::Collector collector;
  metrics_agent::Snapshot snapshot;  // reused, as the event loop does
  double now = 0;
  for (auto _ : state) {
    now += 1.0;
    collector.sample_fast(snapshot, now);
    benchmark::DoNotOptimize(snapshot.cpu.usage_percent);
  }
  if (!snapshot.cpu.ok || !snapshot.memory.ok || !snapshot.network.ok || !snapshot.disk.io_ok)
    state.SkipWithError("a metric group failed");
}
BENCHMARK(BM_SampleFast);

void BM_SampleSlow(benchmark::State& state) {
  metrics_agent::detail::Collector collector;
  metrics_agent::Snapshot snapshot;
  for (auto _ : state) {
    collector.sample_slow(snapshot);
    benchmark::DoNotOptimize(snapshot.disk.path.usage_percent);
  }
  if (!snapshot.disk.path.ok || !snapshot.disk.partitions_ok) state.SkipWithError("disk collection failed");
}
BENCHMARK(BM_SampleSlow);

}  // namespace

BENCHMARK_MAIN();
