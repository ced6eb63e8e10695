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

// What one tick pays per distinct output: serializing a live snapshot and
// framing it (done once, however many clients share that output).
metrics_agent::Snapshot live_snapshot() {
  metrics_agent::detail::Collector collector;
  metrics_agent::Snapshot s;
  collector.sample_fast(s, 1.0);
  collector.sample_slow(s);
  collector.sample_fast(s, 2.0);
  return s;
}

void BM_FlatFrame(benchmark::State& state) {
  const metrics_agent::Snapshot s = live_snapshot();
  for (auto _ : state) {
    auto frame = metrics_agent::encode_text_frame(metrics_agent::detail::flat_json(s, metrics_agent::detail::kFlatAll));
    benchmark::DoNotOptimize(frame);
  }
}
BENCHMARK(BM_FlatFrame);

void BM_RichFrame(benchmark::State& state) {
  const metrics_agent::Snapshot s = live_snapshot();
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto frame = metrics_agent::encode_text_frame(
        metrics_agent::detail::rich_json(s, metrics_agent::detail::kRichAll, 1000000));
    bytes = frame->size();
    benchmark::DoNotOptimize(frame);
  }
  state.counters["bytes"] = double(bytes);
}
BENCHMARK(BM_RichFrame);

// The same outputs as binary MessagePack frames (?format=msgpack): the JSON
// text re-encoded, then framed. Counters: the frame's bytes and those of the
// JSON frame of the same message.
template <bool Rich>
void BM_MsgpackFrame(benchmark::State& state) {
  const metrics_agent::Snapshot s = live_snapshot();
  auto json_of = [&s] {
    return Rich ? metrics_agent::detail::rich_json(s, metrics_agent::detail::kRichAll, 1000000)
                : metrics_agent::detail::flat_json(s, metrics_agent::detail::kFlatAll);
  };
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto frame = std::make_shared<const std::string>(metrics_agent::detail::encode_frame(
        metrics_agent::detail::WsOp::Binary, metrics_agent::detail::json_to_msgpack(json_of())));
    bytes = frame->size();
    benchmark::DoNotOptimize(frame);
  }
  state.counters["bytes"] = double(bytes);
  state.counters["json_bytes"] = double(metrics_agent::encode_text_frame(json_of())->size());
}
BENCHMARK_TEMPLATE(BM_MsgpackFrame, false)->Name("BM_FlatFrameMsgpack");
BENCHMARK_TEMPLATE(BM_MsgpackFrame, true)->Name("BM_RichFrameMsgpack");

// The re-encoding alone, JSON text in, MessagePack out.
template <bool Rich>
void BM_JsonToMsgpack(benchmark::State& state) {
  const metrics_agent::Snapshot s = live_snapshot();
  const std::string json = Rich ? metrics_agent::detail::rich_json(s, metrics_agent::detail::kRichAll, 1000000)
                                : metrics_agent::detail::flat_json(s, metrics_agent::detail::kFlatAll);
  for (auto _ : state) {
    auto out = metrics_agent::detail::json_to_msgpack(json);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK_TEMPLATE(BM_JsonToMsgpack, false)->Name("BM_FlatJsonToMsgpack");
BENCHMARK_TEMPLATE(BM_JsonToMsgpack, true)->Name("BM_RichJsonToMsgpack");

void BM_PrometheusText(benchmark::State& state) {
  const metrics_agent::Snapshot s = live_snapshot();
  metrics_agent::ServerStats stats;
  metrics_agent::detail::PrometheusSelf self;
  self.stats = &stats;
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string out;
    metrics_agent::detail::append_prometheus(out, s, {}, self);
    bytes = out.size();
    benchmark::DoNotOptimize(out);
  }
  state.counters["bytes"] = double(bytes);
}
BENCHMARK(BM_PrometheusText);

// What a scrape pays on the first /metrics of a tick: reading NodeDetail
// (node_exporter's further families), and then the whole exposition with
// them. Later scrapes in the same tick pay only the exposition.
void BM_NodeRead(benchmark::State& state) {
  metrics_agent::detail::NodeReader reader;
  metrics_agent::NodeDetail d;
  for (auto _ : state) {
    reader.read(d);
    benchmark::DoNotOptimize(d.meminfo.size());
  }
}
BENCHMARK(BM_NodeRead);

void BM_PrometheusTextWithNode(benchmark::State& state) {
  const metrics_agent::Snapshot s = live_snapshot();
  metrics_agent::detail::NodeReader reader;
  metrics_agent::NodeDetail d;
  reader.read(d);
  metrics_agent::ServerStats stats;
  metrics_agent::detail::PrometheusSelf self;
  self.stats = &stats;
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string out;
    metrics_agent::detail::append_prometheus(out, s, {}, self, &d);
    bytes = out.size();
    benchmark::DoNotOptimize(out);
  }
  state.counters["bytes"] = double(bytes);
}
BENCHMARK(BM_PrometheusTextWithNode);

}  // namespace

BENCHMARK_MAIN();
