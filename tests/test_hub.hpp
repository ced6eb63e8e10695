// A stand-in for WebSocket in the stream hub's unit tests (BasicStreamHub is
// a template over its socket type): it records what the hub sends. Copies
// share one record, as WebSocket handles share one connection. Also used by
// the control-message fuzzer (tests/fuzz/fuzz_control.cpp).
#ifndef METRICS_AGENT_TEST_HUB_HPP
#define METRICS_AGENT_TEST_HUB_HPP

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace test_hub {

struct FakeSocket {
  struct Record {
    metrics_agent::HttpRequest req;
    std::uint64_t data = 0;
    std::vector<std::shared_ptr<const std::string>> frames;
    std::vector<std::string> texts;
  };
  std::shared_ptr<Record> r = std::make_shared<Record>();

  explicit FakeSocket(std::string query = {}) { r->req.query = std::move(query); }
  void send_frame(const std::shared_ptr<const std::string>& f) { r->frames.push_back(f); }
  void send_text(std::string_view t) { r->texts.emplace_back(t); }
  const metrics_agent::HttpRequest& request() const { return r->req; }
  std::uint64_t user_data() const { return r->data; }
  void set_user_data(std::uint64_t v) { r->data = v; }
  bool operator==(const FakeSocket& o) const { return r == o.r; }
};

// A snapshot with two groups collected (cpu 12.5 %, memory 40 %) at a fixed time.
inline metrics_agent::Snapshot small_snapshot() {
  metrics_agent::Snapshot s;
  s.timestamp_us = 1700000000000000;
  s.cpu.ok = true;
  s.cpu.usage_percent = 12.5;
  s.memory.ok = true;
  s.memory.usage_percent = 40;
  return s;
}

}  // namespace test_hub

#endif  // METRICS_AGENT_TEST_HUB_HPP
