// libFuzzer harness for the MessagePack output. The input is read as JSON;
// whatever JsonToMsgpack accepts must decode (with the small decoder below,
// written from the specification) to exactly its whole length, and writing
// the decoded value back as JSON and converting again must give the same
// bytes. The input also drives MsgpackWriter directly: the values it writes
// must decode to themselves.
#include "metrics_agent.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

using metrics_agent::detail::JsonToMsgpack;
using metrics_agent::detail::MsgpackWriter;

[[noreturn]] void fail(const char* why) {
  std::fprintf(stderr, "fuzz_msgpack: %s\n", why);
  std::abort();
}

// Decodes one value at `p`, writing it as JSON (floats always with an
// exponent, so they stay floats) when `json` is not null.
class Decoder {
 public:
  explicit Decoder(std::string_view b) : b_(b) {}
  bool value(std::string* json, int depth = 0) {
    if (depth > 70 || p_ >= b_.size()) return false;
    const std::uint8_t t = std::uint8_t(b_[p_++]);
    std::uint64_t n = 0;
    if (t <= 0x7f) return num(json, t);
    if (t >= 0xe0) return snum(json, std::int8_t(t));
    if ((t & 0xf0) == 0x80) return container(json, t & 15, true, depth);
    if ((t & 0xf0) == 0x90) return container(json, t & 15, false, depth);
    if ((t & 0xe0) == 0xa0) return str(json, t & 31);
    switch (t) {
      case 0xc0: if (json) *json += "null"; return true;
      case 0xc2: if (json) *json += "false"; return true;
      case 0xc3: if (json) *json += "true"; return true;
      case 0xcc: return be(1, n) && num(json, n);
      case 0xcd: return be(2, n) && num(json, n);
      case 0xce: return be(4, n) && num(json, n);
      case 0xcf: return be(8, n) && num(json, n);
      case 0xd0: return be(1, n) && snum(json, std::int8_t(n));
      case 0xd1: return be(2, n) && snum(json, std::int16_t(n));
      case 0xd2: return be(4, n) && snum(json, std::int32_t(n));
      case 0xd3: return be(8, n) && snum(json, std::int64_t(n));
      case 0xcb: {
        if (!be(8, n)) return false;
        double d;
        std::memcpy(&d, &n, 8);
        if (json) {
          char buf[40];
          if (d != d) return false;  // JSON has no NaN: never produced
          if (d > 1.7976931348623157e308) std::snprintf(buf, sizeof buf, "1e999");
          else if (d < -1.7976931348623157e308) std::snprintf(buf, sizeof buf, "-1e999");
          else std::snprintf(buf, sizeof buf, "%.17e", d);
          *json += buf;
        }
        return true;
      }
      case 0xd9: return be(1, n) && n > 31 && str(json, n);
      case 0xda: return be(2, n) && n > 255 && str(json, n);
      case 0xdb: return be(4, n) && n > 65535 && str(json, n);
      case 0xdc: return be(2, n) && n > 15 && container(json, n, false, depth);
      case 0xdd: return be(4, n) && n > 65535 && container(json, n, false, depth);
      case 0xde: return be(2, n) && n > 15 && container(json, n, true, depth);
      case 0xdf: return be(4, n) && n > 65535 && container(json, n, true, depth);
      default: return false;  // a format we never emit
    }
  }
  bool done() const { return p_ == b_.size(); }

 private:
  bool be(int bytes, std::uint64_t& v) {
    if (b_.size() - p_ < std::size_t(bytes)) return false;
    v = 0;
    for (int i = 0; i < bytes; ++i) v = v << 8 | std::uint8_t(b_[p_++]);
    return true;
  }
  // The smallest-format rule: a non-negative value is never signed, and a
  // wider form never holds what a narrower one could.
  static bool num(std::string* json, std::uint64_t v) {
    if (json) *json += std::to_string(v);
    return true;
  }
  bool snum(std::string* json, std::int64_t v) {
    if (v >= 0) return false;
    if (json) *json += std::to_string(v);
    return true;
  }
  bool str(std::string* json, std::uint64_t n) {
    if (b_.size() - p_ < n) return false;
    if (json) {
      *json += '"';
      for (std::size_t i = 0; i < n; ++i) {
        unsigned char c = std::uint8_t(b_[p_ + i]);
        if (c == '"' || c == '\\' || c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          *json += buf;
        } else {
          *json += char(c);
        }
      }
      *json += '"';
    }
    p_ += std::size_t(n);
    return true;
  }
  bool container(std::string* json, std::uint64_t n, bool map, int depth) {
    if (json) *json += map ? '{' : '[';
    for (std::uint64_t i = 0; i < n; ++i) {
      if (json && i) *json += ',';
      if (map) {
        if (p_ >= b_.size()) return false;
        const std::uint8_t t = std::uint8_t(b_[p_]);
        if ((t & 0xe0) != 0xa0 && t != 0xd9 && t != 0xda && t != 0xdb) return false;  // keys are strings
        if (!value(json, depth + 1)) return false;
        if (json) *json += ':';
      }
      if (!value(json, depth + 1)) return false;
    }
    if (json) *json += map ? '}' : ']';
    return true;
  }
  std::string_view b_;
  std::size_t p_ = 0;
};

void json_round_trip(std::string_view in) {
  std::string bytes;
  if (!JsonToMsgpack::convert(in, bytes)) return;
  Decoder d(bytes);
  std::string json;
  if (!d.value(&json) || !d.done()) fail("the encoder's output does not decode to its whole length");
  std::string again;
  if (!JsonToMsgpack::convert(json, again)) fail("the decoded value is not JSON again");
  if (again != bytes) fail("JSON -> MessagePack -> JSON -> MessagePack changed the bytes");
}

// Writes values chosen by the input with MsgpackWriter; decodes them back.
void writer_round_trip(const std::uint8_t* data, std::size_t size) {
  std::string out, expect;
  MsgpackWriter w(out);
  std::size_t i = 0, values = 0;
  auto take = [&](int n) {
    std::uint64_t v = 0;
    for (int k = 0; k < n; ++k) v = v << 8 | (i < size ? data[i++] : 0);
    return v;
  };
  while (i < size && values < 32) {
    switch (data[i++] % 6) {
      case 0: { std::uint64_t v = take(8) >> (take(1) % 64); w.uint(v); expect += std::to_string(v); break; }
      case 1: {
        std::int64_t v = std::int64_t(take(8)) >> (take(1) % 64);
        w.integer(v);
        expect += std::to_string(v);
        break;
      }
      case 2: {
        std::size_t n = std::size_t(take(2)) % 300;  // fixstr, str 8 and str 16; str 32 is in the unit tests
        std::string s(n, 'x');
        w.str(s);
        expect += '"' + s + '"';
        break;
      }
      case 3: w.nil(); expect += "null"; break;
      case 4: { bool b = take(1) & 1; w.boolean(b); expect += b ? "true" : "false"; break; }
      default: {
        std::size_t n = std::size_t(take(2)) % 300;  // fixarray and array 16; array 32 is in the unit tests
        w.array_header(n);
        for (std::size_t k = 0; k < n; ++k) w.nil();
        expect += '[';
        for (std::size_t k = 0; k < n; ++k) expect += k ? ",null" : "null";
        expect += ']';
      }
    }
    ++values;
  }
  Decoder d(out);
  std::string got;
  for (std::size_t k = 0; k < values; ++k)
    if (!d.value(&got)) fail("a value written by MsgpackWriter does not decode");
  if (!d.done() || got != expect) fail("MsgpackWriter's values decode to something else");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  json_round_trip(std::string_view(reinterpret_cast<const char*>(data), size));
  if (size <= 256) writer_round_trip(data, size);
  return 0;
}
