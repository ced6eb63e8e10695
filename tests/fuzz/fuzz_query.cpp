// Query strings (?interval=, ?metrics=, ?level=, ?token=): percent-decoding
// inverts percent-encoding, a lookup finds the first pair with its key
// whatever else the string holds, and any query opens a stream with a sane
// view (a known set of fields, an interval of at least one tick).
#include "metrics_agent.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace ma = metrics_agent;
namespace md = metrics_agent::detail;

namespace {

std::string encode(const std::string& s) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out += char(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

struct NullSocket {
  ma::HttpRequest req;
  std::uint64_t data = 0;
  void send_frame(const std::shared_ptr<const std::string>&) {}
  void send_text(std::string_view) {}
  const ma::HttpRequest& request() const { return req; }
  std::uint64_t user_data() const { return data; }
  void set_user_data(std::uint64_t v) { data = v; }
  bool operator==(const NullSocket& o) const { return this == &o; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  const std::string raw = fdp.ConsumeRandomLengthString(256);
  std::vector<std::pair<std::string, std::string>> pairs;
  while (fdp.remaining_bytes() > 0 && pairs.size() < 8)
    pairs.emplace_back(fdp.ConsumeRandomLengthString(16), fdp.ConsumeRandomLengthString(32));

  // Raw bytes: decoding never grows, lookups agree with the request's accessors.
  if (md::percent_decode(raw).size() > raw.size()) std::abort();
  ma::HttpRequest req;
  req.query = raw;
  for (const char* key : {"interval", "metrics", "level", "token", ""}) {
    std::string v;
    const bool found = md::query_lookup(raw, key, &v);
    if (found != req.has_param(key)) std::abort();
    if (found && req.param(key, "\x01") != v) std::abort();
  }

  // Encoded pairs: each key finds the value of its first pair.
  std::string query;
  for (const auto& p : pairs) {
    if (md::percent_decode(encode(p.first)) != p.first) std::abort();
    if (!query.empty()) query += '&';
    query += encode(p.first) + '=' + encode(p.second);
  }
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    bool first = true;
    for (std::size_t j = 0; j < i; ++j) first = first && pairs[j].first != pairs[i].first;
    std::string v;
    if (!md::query_lookup(query, pairs[i].first, &v)) std::abort();
    if (first && v != pairs[i].second) std::abort();
  }

  // Any query opens any stream with a sane view.
  for (md::Stream s : {md::Stream::Flat, md::Stream::Rich, md::Stream::Dashboard, md::Stream::Alerts}) {
    for (const std::string* q : {&raw, static_cast<const std::string*>(&query)}) {
      NullSocket ws;
      ws.req.query = *q;
      md::BasicStreamHub<NullSocket> hub(0.5, false);
      const auto& sub = hub.open(ws, s);
      if (sub.every_ticks < 1 || sub.levels == 0 || sub.levels > 7) std::abort();
      if (s != md::Stream::Alerts && sub.fields == 0) std::abort();
    }
  }
  return 0;
}
