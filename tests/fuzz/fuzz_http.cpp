// The HTTP/1.1 request parser fed in random chunkings: the requests it
// completes and the error it stops at must not depend on where the reads
// split the bytes, and a completed request must stay within its bounds.
#include "metrics_agent.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace ma = metrics_agent;
namespace md = metrics_agent::detail;

namespace {

struct Outcome {
  std::vector<std::string> requests;  // method, target, headers and body of each
  int error_status = 0;
  bool operator==(const Outcome& o) const { return requests == o.requests && error_status == o.error_status; }
};

std::string describe(const ma::HttpRequest& r) {
  std::string s = r.method + ' ' + r.target + ' ' + r.version + (r.keep_alive ? " ka\n" : "\n");
  for (const auto& h : r.headers) s += h.first + ':' + h.second + '\n';
  return s + '\n' + r.body;
}

// What the event loop does: parse from the front of what has arrived, drop
// each completed request, stop at the first error.
bool drain(std::string& buf, Outcome& out, const md::HttpLimits& limits) {
  for (;;) {
    ma::HttpRequest req;
    md::HttpParseResult r = md::parse_http_request(buf, req, limits);
    if (r.status == md::HttpParseResult::Incomplete) return true;
    if (r.status == md::HttpParseResult::Error) {
      if (r.error_status < 400 || r.error_status > 599 || r.error.empty()) std::abort();
      out.error_status = r.error_status;
      return false;
    }
    if (r.consumed == 0 || r.consumed > buf.size()) std::abort();
    if (req.path.empty() || req.body.size() > limits.max_body_bytes) std::abort();
    if (req.headers.size() > limits.max_headers) std::abort();
    out.requests.push_back(describe(req));
    buf.erase(0, r.consumed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  md::HttpLimits limits;
  // Small limits too, so that 413 and 431 are reached by short inputs.
  if (fdp.ConsumeBool()) {
    limits.max_header_bytes = fdp.ConsumeIntegralInRange<std::size_t>(16, 512);
    limits.max_body_bytes = fdp.ConsumeIntegralInRange<std::size_t>(0, 256);
    limits.max_headers = fdp.ConsumeIntegralInRange<std::size_t>(1, 8);
  }
  std::vector<std::size_t> cuts;
  for (int i = fdp.ConsumeIntegralInRange(0, 16); i > 0; --i)
    cuts.push_back(fdp.ConsumeIntegralInRange<std::size_t>(1, 64));
  const std::string stream = fdp.ConsumeRemainingBytesAsString();

  Outcome whole;
  std::string buf = stream;
  drain(buf, whole, limits);

  Outcome chunked;
  buf.clear();
  std::size_t pos = 0, k = 0;
  while (pos < stream.size()) {
    std::size_t n = cuts.empty() ? 1 : cuts[k++ % cuts.size()];
    n = std::min(n, stream.size() - pos);
    buf.append(stream, pos, n);
    pos += n;
    if (!drain(buf, chunked, limits)) break;
  }
  if (!(whole == chunked)) std::abort();
  return 0;
}
