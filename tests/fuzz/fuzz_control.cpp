// Client control messages of the rich and dashboard streams (ping,
// subscribe, anything else): whatever a client sends, the stream hub answers
// with one JSON object naming its type, keeps the client, and the next tick
// still delivers a well-formed frame to it.
#include "metrics_agent.hpp"
#include "../test_hub.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace ma = metrics_agent;
namespace md = metrics_agent::detail;

namespace {

using RecordingSocket = test_hub::FakeSocket;

bool json_object_with_type(const std::string& text) {
  picojson::value v;
  if (!md::parse_json(v, text).empty() || !v.is<picojson::object>()) return false;
  const auto& o = v.get<picojson::object>();
  auto t = o.find("type");
  return t != o.end() && t->second.is<std::string>() && md::valid_utf8(text);
}

// The payload of an unmasked server text frame.
std::string frame_text(const std::string& f) {
  if (f.size() < 2 || (static_cast<unsigned char>(f[0]) != 0x81)) std::abort();
  std::size_t n = static_cast<unsigned char>(f[1]) & 0x7f, h = 2;
  if (n == 126) h = 4;
  if (n == 127) h = 10;
  if (f.size() < h) std::abort();
  return f.substr(h);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  const double tick = fdp.ConsumeBool() ? 1.0 : 0.5;
  const md::Stream stream = fdp.ConsumeBool() ? md::Stream::Rich : md::Stream::Dashboard;
  RecordingSocket ws;
  ws.r->req.query = fdp.ConsumeRandomLengthString(128);
  md::BasicStreamHub<RecordingSocket> hub(tick, false);
  hub.open(ws, stream);

  ma::Snapshot snap = test_hub::small_snapshot();
  std::int64_t t = 1700000010000000;
  while (fdp.remaining_bytes() > 0) {
    const std::string msg = fdp.ConsumeRandomLengthString(512);
    const bool binary = fdp.ConsumeIntegralInRange(0, 15) == 0;
    const std::size_t before = ws.r->texts.size();
    hub.control(ws, msg, binary);
    if (ws.r->texts.size() != before + 1) std::abort();  // exactly one answer
    if (!json_object_with_type(ws.r->texts.back())) std::abort();
    if (hub.size() != 1) std::abort();
    const std::size_t frames = ws.r->frames.size();
    // Enough ticks for the longest interval a subscribe may ask for to come round.
    hub.fan_out(snap, t);
    t += 1000000;
    for (std::size_t i = frames; i < ws.r->frames.size(); ++i)
      if (!json_object_with_type(frame_text(*ws.r->frames[i]))) std::abort();
  }
  hub.close(ws);
  if (hub.size() != 0) std::abort();
  return 0;
}
