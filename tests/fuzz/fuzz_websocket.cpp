// The WebSocket frame decoder fed in random chunkings: the events it gives
// (messages, control frames, the close code it fails with) must not depend
// on how the bytes were split, and what it delivers must obey RFC 6455.
#include "metrics_agent.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace md = metrics_agent::detail;

namespace {

struct Ev {
  int type;
  std::string payload;
  std::uint16_t code;
  bool operator==(const Ev& o) const { return type == o.type && payload == o.payload && code == o.code; }
};

class Feeder {
 public:
  Feeder(std::size_t max, bool require_mask) : dec_(max, require_mask), max_(max) {}

  // Appends a chunk and decodes what it can; false once the decoder failed.
  bool feed(const std::string& chunk) {
    buf_ += chunk;
    for (;;) {
      // Exactly the bytes that arrived, so that ASan sees a read past them.
      std::unique_ptr<char[]> exact(new char[buf_.size() + 1]);
      std::memcpy(exact.get(), buf_.data(), buf_.size());
      std::size_t consumed = 0;
      md::WsEvent ev;
      bool have = false;
      if (!dec_.next(exact.get(), buf_.size(), consumed, ev, have)) {
        if (consumed != 0 || have) std::abort();
        return true;
      }
      if (consumed > buf_.size()) std::abort();
      if (!have && consumed == 0) std::abort();  // no progress
      buf_.erase(0, consumed);
      if (!have) continue;
      events_.push_back(Ev{ev.type, std::string(ev.payload), ev.code});
      switch (ev.type) {
        case md::WsEvent::Error:
          if (ev.code != 1002 && ev.code != 1007 && ev.code != 1009) std::abort();
          return false;
        case md::WsEvent::Text:
          if (!md::valid_utf8(ev.payload)) std::abort();
          [[fallthrough]];
        case md::WsEvent::Binary:
          if (ev.payload.size() > max_) std::abort();
          break;
        case md::WsEvent::Close:
          if (ev.code != 1005 && !md::valid_close_code(ev.code)) std::abort();
          if (!md::valid_utf8(ev.payload)) std::abort();
          [[fallthrough]];
        default:
          if (ev.payload.size() > 125) std::abort();
      }
      dec_.shrink();
    }
  }
  const std::vector<Ev>& events() const { return events_; }

 private:
  md::WsDecoder dec_;
  std::size_t max_;
  std::string buf_;
  std::vector<Ev> events_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  const std::size_t max = fdp.ConsumeIntegralInRange<std::size_t>(0, 4096);
  const bool require_mask = fdp.ConsumeIntegralInRange(0, 7) != 0;
  std::vector<std::size_t> cuts;
  for (int i = fdp.ConsumeIntegralInRange(0, 16); i > 0; --i)
    cuts.push_back(fdp.ConsumeIntegralInRange<std::size_t>(1, 64));
  const std::string stream = fdp.ConsumeRemainingBytesAsString();

  Feeder whole(max, require_mask);
  whole.feed(stream);
  Feeder chunked(max, require_mask);
  std::size_t pos = 0, k = 0;
  while (pos < stream.size()) {
    std::size_t n = cuts.empty() ? 1 : cuts[k++ % cuts.size()];
    n = std::min(n, stream.size() - pos);
    if (!chunked.feed(stream.substr(pos, n))) break;
    pos += n;
  }
  if (!(whole.events() == chunked.events())) std::abort();
  return 0;
}
