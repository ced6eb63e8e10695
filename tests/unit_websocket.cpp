// Unit tests of the WebSocket frame codec (RFC 6455 section 5): every stream is
// replayed split at every point, each protocol error maps to its close code,
// and a deterministic fuzz checks that the decoder stays in bounds and that
// what it decodes never depends on how the bytes were chunked.
#include "metrics_agent.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace metrics_agent;
using namespace metrics_agent::detail;

namespace {

constexpr std::size_t kMax = METRICS_AGENT_MAX_MESSAGE_BYTES;

// An event copied out of the decoder (its payload is only valid until the
// next call).
struct Ev {
  WsEvent::Type type;
  std::string payload;
  std::uint16_t code;
  bool operator==(const Ev& o) const { return type == o.type && payload == o.payload && code == o.code; }
};

std::ostream& operator<<(std::ostream& os, const Ev& e) {
  static const char* names[] = {"Text", "Binary", "Ping", "Pong", "Close", "Error"};
  os << names[e.type] << "(" << e.code << ", ";
  if (e.payload.size() > 40)
    os << e.payload.size() << " bytes";
  else
    os << testing::PrintToString(e.payload);
  return os << ")";
}

Ev ev_of(WsEvent::Type t, std::string payload = {}, std::uint16_t code = 0) { return Ev{t, std::move(payload), code}; }
Ev text(std::string p) { return ev_of(WsEvent::Text, std::move(p)); }
Ev binary(std::string p) { return ev_of(WsEvent::Binary, std::move(p)); }
Ev ping(std::string p) { return ev_of(WsEvent::Ping, std::move(p)); }
Ev pong(std::string p) { return ev_of(WsEvent::Pong, std::move(p)); }
Ev close_ev(std::uint16_t code, std::string reason = {}) { return ev_of(WsEvent::Close, std::move(reason), code); }
Ev error_ev(std::uint16_t code) { return ev_of(WsEvent::Error, {}, code); }

// The event loop's side of the contract: append what arrived, call next()
// until it wants more bytes, drop what it consumed.
class Feeder {
 public:
  explicit Feeder(std::size_t max = kMax, bool require_mask = true) : dec_(max, require_mask), max_(max) {}

  void feed(std::string_view chunk) {
    buf_.append(chunk.data(), chunk.size());
    for (;;) {
      std::size_t consumed = 12345;
      WsEvent ev;
      bool have = true;
      // An allocation of exactly the bytes that arrived, so that a sanitizer
      // sees any read past them.
      std::unique_ptr<char[]> exact(new char[buf_.size()]);
      if (!buf_.empty()) std::memcpy(exact.get(), buf_.data(), buf_.size());
      bool more = dec_.next(exact.get(), buf_.size(), consumed, ev, have);
      if (!more) {
        EXPECT_EQ(consumed, 0u);
        EXPECT_FALSE(have);
        break;
      }
      EXPECT_LE(consumed, buf_.size());
      if (have) {
        events_.push_back(Ev{ev.type, std::string(ev.payload), ev.code});
        if (ev.type == WsEvent::Error) {
          EXPECT_NE(ev.error, nullptr);
          EXPECT_GT(std::strlen(ev.error), 0u);
          errored_ = true;
        } else if (ev.type == WsEvent::Text || ev.type == WsEvent::Binary) {
          EXPECT_LE(ev.payload.size(), max_);
        } else {
          EXPECT_LE(ev.payload.size(), 125u);
        }
      }
      if (consumed == 0 && !have) {
        ADD_FAILURE() << "next() reported progress without consuming or producing anything";
        break;
      }
      buf_.erase(0, consumed);
      if (errored_) {
        expect_dead();
        break;
      }
    }
  }

  // After an error the decoder refuses everything, forever.
  void expect_dead() {
    std::string valid = std::string("\x81\x80\0\0\0\0", 6);
    for (const std::string& data : {buf_, valid, valid + valid, std::string()}) {
      std::size_t consumed = 1;
      WsEvent ev;
      bool have = true;
      EXPECT_FALSE(dec_.next(data.data(), data.size(), consumed, ev, have));
      EXPECT_EQ(consumed, 0u);
      EXPECT_FALSE(have);
    }
  }

  const std::vector<Ev>& events() const { return events_; }
  std::size_t pending() const { return buf_.size(); }
  bool errored() const { return errored_; }
  WsDecoder& decoder() { return dec_; }

 private:
  WsDecoder dec_;
  std::size_t max_;
  std::string buf_;
  std::vector<Ev> events_;
  bool errored_ = false;
};

std::vector<Ev> decode(const std::string& stream, std::size_t max = kMax, bool require_mask = true) {
  Feeder f(max, require_mask);
  f.feed(stream);
  return f.events();
}

const std::uint8_t kMask[4] = {0x37, 0xfa, 0x21, 0x3d};

// A client frame (masked), as a browser would send it.
std::string cframe(WsOp op, std::string_view payload, bool fin = true, const std::uint8_t* mask = kMask) {
  return encode_frame(op, payload, fin, mask);
}

// A frame built field by field, for the invalid ones encode_frame cannot make.
// `len_bytes` forces the length encoding: 0 (shortest), 1, 2 or 8.
std::string raw_frame(std::uint8_t first_byte, bool masked, std::uint64_t length, std::string_view payload,
                      int len_bytes = 0) {
  std::string f;
  f += char(first_byte);
  std::uint8_t m = masked ? 0x80 : 0;
  if (len_bytes == 0) len_bytes = length < 126 ? 1 : length <= 0xFFFF ? 2 : 8;
  if (len_bytes == 1) {
    f += char(m | length);
  } else if (len_bytes == 2) {
    f += char(m | 126);
    f += char(length >> 8);
    f += char(length & 0xFF);
  } else {
    f += char(m | 127);
    for (int i = 7; i >= 0; --i) f += char((length >> (8 * i)) & 0xFF);
  }
  if (masked) {
    f.append(reinterpret_cast<const char*>(kMask), 4);
    for (std::size_t i = 0; i < payload.size(); ++i) f += char(payload[i] ^ kMask[i & 3]);
  } else {
    f.append(payload.data(), payload.size());
  }
  return f;
}

std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
  std::string p;
  p += char(code >> 8);
  p += char(code & 0xFF);
  p.append(reason.data(), reason.size());
  return p;
}

std::string noise(std::size_t n, std::uint32_t seed) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (char& c : s) {
    x = x * 1103515245u + 12345u;
    c = char(x >> 23);
  }
  return s;
}

// Asserts that `stream` decodes to `expected` however it is chunked: in one
// piece, one byte at a time, and split once at every offset.
void expect_decodes_rechunked(const std::string& stream, const std::vector<Ev>& expected, std::size_t max = kMax) {
  EXPECT_EQ(decode(stream, max), expected) << "in one piece";
  {
    Feeder f(max);
    for (char c : stream) f.feed(std::string_view(&c, 1));
    EXPECT_EQ(f.events(), expected) << "byte by byte";
  }
  for (std::size_t k = 0; k <= stream.size(); ++k) {
    Feeder f(max);
    f.feed(std::string_view(stream).substr(0, k));
    f.feed(std::string_view(stream).substr(k));
    ASSERT_EQ(f.events(), expected) << "split at " << k;
    if (!f.errored()) {
      EXPECT_EQ(f.pending(), 0u) << "split at " << k;
    }
  }
}

// The decoder fails with `code` on `stream`, and the same however it arrives.
void expect_fails(const std::string& stream, std::uint16_t code, std::size_t max = kMax) {
  SCOPED_TRACE(testing::Message() << "stream: " << testing::PrintToString(stream.substr(0, 24)));
  std::vector<Ev> got = decode(stream, max);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), error_ev(code));
  Feeder f(max);
  for (char c : stream) f.feed(std::string_view(&c, 1));
  EXPECT_EQ(f.events(), got);
}

}  // namespace

// ---- single frames -------------------------------------------------------------

TEST(WsEncode, Rfc6455Examples) {
  // Section 5.7: a single-frame unmasked and masked text message "Hello".
  EXPECT_EQ(encode_frame(WsOp::Text, "Hello"), "\x81\x05Hello");
  EXPECT_EQ(encode_frame(WsOp::Text, "Hello", true, kMask), "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
  // Fragmented unmasked text message, and an unmasked ping.
  EXPECT_EQ(encode_frame(WsOp::Text, "Hel", false), "\x01\x03Hel");
  EXPECT_EQ(encode_frame(WsOp::Continuation, "lo"), "\x80\x02lo");
  EXPECT_EQ(encode_frame(WsOp::Ping, "Hello"), "\x89\x05Hello");
  // 256 bytes and 64 KiB binary messages in a single unmasked frame.
  std::string f256 = encode_frame(WsOp::Binary, std::string(256, 'x'));
  EXPECT_EQ(f256.substr(0, 4), std::string("\x82\x7E\x01\x00", 4));
  EXPECT_EQ(f256.size(), 4u + 256u);
  std::string f64k = encode_frame(WsOp::Binary, std::string(65536, 'x'));
  EXPECT_EQ(f64k.substr(0, 10), std::string("\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10));
  EXPECT_EQ(f64k.size(), 10u + 65536u);
}

TEST(WsEncode, LengthBoundaries) {
  struct Case {
    std::size_t n;
    std::size_t header;
  } cases[] = {{0, 2}, {1, 2}, {125, 2}, {126, 4}, {127, 4}, {65535, 4}, {65536, 10}, {70000, 10}};
  for (const auto& c : cases) {
    std::string payload = noise(c.n, std::uint32_t(c.n));
    EXPECT_EQ(encode_frame(WsOp::Binary, payload).size(), c.header + c.n) << c.n;
    EXPECT_EQ(encode_frame(WsOp::Binary, payload, true, kMask).size(), c.header + 4 + c.n) << c.n;
  }
}

TEST(WsEncode, CloseFrames) {
  EXPECT_EQ(encode_close_frame(1000, "bye"), std::string("\x88\x05\x03\xe8" "bye", 7));
  EXPECT_EQ(encode_close_frame(4001, ""), std::string("\x88\x02\x0f\xa1", 4));
  EXPECT_EQ(encode_close_frame(0, "ignored"), std::string("\x88\x00", 2));
  // A long reason is cut so that the frame stays a valid control frame.
  std::string f = encode_close_frame(1001, std::string(300, 'r'));
  ASSERT_GE(f.size(), 2u);
  EXPECT_LE(std::uint8_t(f[1]), 125u);
  EXPECT_EQ(decode(f, kMax, false), (std::vector<Ev>{close_ev(1001, std::string(123, 'r'))}));
}

TEST(WsEncode, CloseReasonCutOnACharacterBoundary) {
  // Section 5.5.1: the reason is UTF-8; cutting it inside a character would
  // make our own close frame one that a peer must fail with 1007.
  std::string reason = std::string(122, 'a') + "\xc3\xa9" + "tail";  // 'é' straddles byte 123
  std::string f = encode_close_frame(1000, reason);
  std::vector<Ev> got = decode(f, kMax, false);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].type, WsEvent::Close) << got[0];
  EXPECT_TRUE(valid_utf8(std::string_view(f).substr(4)));
  EXPECT_EQ(got[0].payload.substr(0, 122), std::string(122, 'a'));
}

TEST(WsDecode, MaskedSingleFrames) {
  EXPECT_EQ(decode("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"), (std::vector<Ev>{text("Hello")}));
  for (std::size_t n : {0u, 1u, 125u, 126u, 127u, 1000u, 65535u, 65536u}) {
    std::string payload = noise(n, std::uint32_t(n) + 7);
    EXPECT_EQ(decode(cframe(WsOp::Binary, payload)), (std::vector<Ev>{binary(payload)})) << n;
    std::string txt(n, 'a');
    for (std::size_t i = 0; i < n; ++i) txt[i] = char('a' + i % 26);
    EXPECT_EQ(decode(cframe(WsOp::Text, txt)), (std::vector<Ev>{text(txt)})) << n;
  }
  // Every byte value survives masking and unmasking.
  std::string all(256, '\0');
  for (int i = 0; i < 256; ++i) all[std::size_t(i)] = char(i);
  EXPECT_EQ(decode(cframe(WsOp::Binary, all)), (std::vector<Ev>{binary(all)}));
  // UTF-8 text of 1-4 byte characters.
  std::string utf8 = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
  EXPECT_EQ(decode(cframe(WsOp::Text, utf8)), (std::vector<Ev>{text(utf8)}));
}

TEST(WsDecode, NeedsTheWholeFrame) {
  std::string f = cframe(WsOp::Text, std::string(300, 'q'));
  WsDecoder dec(kMax);
  for (std::size_t k = 0; k < f.size(); ++k) {
    std::size_t consumed = 99;
    WsEvent ev;
    bool have = true;
    EXPECT_FALSE(dec.next(f.data(), k, consumed, ev, have)) << k;
    EXPECT_EQ(consumed, 0u);
    EXPECT_FALSE(have);
  }
  std::size_t consumed = 0;
  WsEvent ev;
  bool have = false;
  ASSERT_TRUE(dec.next(f.data(), f.size(), consumed, ev, have));
  EXPECT_EQ(consumed, f.size());
  ASSERT_TRUE(have);
  EXPECT_EQ(ev.type, WsEvent::Text);
  EXPECT_EQ(ev.payload, std::string(300, 'q'));
}

// ---- streams and re-chunking --------------------------------------------------------

TEST(WsRechunk, StreamOfFramesAtEverySplit) {
  std::string big = noise(300, 3);  // 16-bit length
  std::string stream = cframe(WsOp::Text, "hi") + cframe(WsOp::Ping, "p1") + cframe(WsOp::Binary, big) +
                       cframe(WsOp::Text, "frag", false) + cframe(WsOp::Pong, "") +
                       cframe(WsOp::Continuation, "men", false) + cframe(WsOp::Ping, std::string(125, 'P')) +
                       cframe(WsOp::Continuation, "t\xc3\xa9", true) + cframe(WsOp::Binary, "") +
                       cframe(WsOp::Text, "") + cframe(WsOp::Close, close_payload(1000, "bye"));
  std::vector<Ev> expected = {text("hi"),        ping("p1"),   binary(big),
                              pong(""),          ping(std::string(125, 'P')),
                              text("frag" "men" "t\xc3\xa9"), binary(""), text(""),
                              close_ev(1000, "bye")};
  expect_decodes_rechunked(stream, expected);
}

TEST(WsRechunk, StreamWithSixtyFourBitFrameAtEverySplit) {
  std::string huge = noise(70000, 9);
  std::string stream = cframe(WsOp::Text, "a") + cframe(WsOp::Binary, huge) + cframe(WsOp::Ping, "z");
  std::vector<Ev> expected = {text("a"), binary(huge), ping("z")};
  EXPECT_EQ(decode(stream, 100000), expected);
  // Split points around every header and a sample inside the payload.
  std::vector<std::size_t> splits;
  for (std::size_t k = 0; k < 40; ++k) splits.push_back(k);
  for (std::size_t k = stream.size() - 40; k <= stream.size(); ++k) splits.push_back(k);
  for (std::size_t k = 40; k < stream.size() - 40; k += 997) splits.push_back(k);
  for (std::size_t k : splits) {
    Feeder f(100000);
    f.feed(std::string_view(stream).substr(0, k));
    f.feed(std::string_view(stream).substr(k));
    ASSERT_EQ(f.events(), expected) << "split at " << k;
  }
}

TEST(WsRechunk, ErrorsAtEverySplit) {
  // The stream up to an error decodes the same, and fails the same, however
  // it is chunked.
  std::string stream = cframe(WsOp::Text, "ok") + cframe(WsOp::Text, "x\xc3", false) +
                       cframe(WsOp::Ping, "mid") + cframe(WsOp::Continuation, "(", true) + cframe(WsOp::Text, "never");
  expect_decodes_rechunked(stream, {text("ok"), ping("mid"), error_ev(1007)});
}

// ---- fragmentation -------------------------------------------------------------------------

TEST(WsFragments, Reassembled) {
  std::string stream = cframe(WsOp::Text, "Hel", false) + cframe(WsOp::Continuation, "", false) +
                       cframe(WsOp::Continuation, "lo", true) + cframe(WsOp::Binary, "\x01\x02", false) +
                       cframe(WsOp::Continuation, std::string("\0\xff", 2), true);
  EXPECT_EQ(decode(stream), (std::vector<Ev>{text("Hello"), binary(std::string("\x01\x02\0\xff", 4))}));
}

TEST(WsFragments, TenThousandFragments) {
  std::string stream = cframe(WsOp::Text, "x", false);
  std::string expected = "x";
  for (int i = 1; i < 9999; ++i) {
    char c = char('a' + i % 26);
    stream += cframe(WsOp::Continuation, std::string(1, c), false);
    expected += c;
  }
  stream += cframe(WsOp::Continuation, "!", true);
  expected += '!';
  ASSERT_EQ(expected.size(), 10000u);
  EXPECT_EQ(decode(stream), (std::vector<Ev>{text(expected)}));
  Feeder f;
  for (std::size_t i = 0; i < stream.size(); i += 7) f.feed(std::string_view(stream).substr(i, 7));
  EXPECT_EQ(f.events(), (std::vector<Ev>{text(expected)}));
}

TEST(WsFragments, ControlFramesBetweenFragments) {
  std::string stream = cframe(WsOp::Binary, "ab", false) + cframe(WsOp::Ping, "1") +
                       cframe(WsOp::Continuation, "cd", false) + cframe(WsOp::Pong, "2") + cframe(WsOp::Ping, "") +
                       cframe(WsOp::Continuation, "ef", true);
  EXPECT_EQ(decode(stream), (std::vector<Ev>{ping("1"), pong("2"), ping(""), binary("abcdef")}));
  // A close in the middle of a message is delivered at once.
  std::string closing = cframe(WsOp::Text, "part", false) + cframe(WsOp::Close, close_payload(1001, "going"));
  EXPECT_EQ(decode(closing), (std::vector<Ev>{close_ev(1001, "going")}));
}

TEST(WsFragments, ContinuationWithoutStartIs1002) {
  expect_fails(cframe(WsOp::Continuation, "x"), 1002);
  expect_fails(cframe(WsOp::Continuation, "x", false), 1002);
  // Also right after a finished message.
  expect_fails(cframe(WsOp::Text, "done") + cframe(WsOp::Continuation, "more"), 1002);
}

TEST(WsFragments, NewDataFrameInsideAMessageIs1002) {
  expect_fails(cframe(WsOp::Text, "a", false) + cframe(WsOp::Text, "b"), 1002);
  expect_fails(cframe(WsOp::Text, "a", false) + cframe(WsOp::Binary, "b"), 1002);
  expect_fails(cframe(WsOp::Binary, "a", false) + cframe(WsOp::Continuation, "b", false) + cframe(WsOp::Text, "c"),
               1002);
}

// ---- control frames ---------------------------------------------------------------------------

TEST(WsControl, PingPongPayloads) {
  std::string p125 = noise(125, 1);
  EXPECT_EQ(decode(cframe(WsOp::Ping, p125)), (std::vector<Ev>{ping(p125)}));
  EXPECT_EQ(decode(cframe(WsOp::Ping, "")), (std::vector<Ev>{ping("")}));
  EXPECT_EQ(decode(cframe(WsOp::Pong, std::string("\xff\0", 2))), (std::vector<Ev>{pong(std::string("\xff\0", 2))}));
  // Ping payloads are binary: no UTF-8 requirement.
  EXPECT_EQ(decode(cframe(WsOp::Ping, "\xc3")), (std::vector<Ev>{ping("\xc3")}));
}

TEST(WsControl, ControlFrameRules) {
  expect_fails(cframe(WsOp::Ping, std::string(126, 'p')), 1002);  // over 125 (16-bit length)
  expect_fails(raw_frame(0x89, true, 126, std::string(126, 'p')), 1002);
  expect_fails(raw_frame(0x8A, true, 1u << 20, "", 8), 1002);  // decided from the header
  expect_fails(cframe(WsOp::Ping, "x", false), 1002);  // fragmented
  expect_fails(cframe(WsOp::Pong, "x", false), 1002);
  expect_fails(cframe(WsOp::Close, "", false), 1002);
}

TEST(WsControl, CloseCodes) {
  EXPECT_EQ(decode(cframe(WsOp::Close, "")), (std::vector<Ev>{close_ev(1005)}));  // section 7.1.5
  EXPECT_EQ(decode(cframe(WsOp::Close, close_payload(1000))), (std::vector<Ev>{close_ev(1000)}));
  EXPECT_EQ(decode(cframe(WsOp::Close, close_payload(1000, "done \xe2\x9c\x93"))),
            (std::vector<Ev>{close_ev(1000, "done \xe2\x9c\x93")}));
  for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4001, 4999}) {
    EXPECT_EQ(decode(cframe(WsOp::Close, close_payload(code, "r"))), (std::vector<Ev>{close_ev(code, "r")})) << code;
    EXPECT_TRUE(valid_close_code(code)) << code;
  }
  for (std::uint16_t code : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    expect_fails(cframe(WsOp::Close, close_payload(code)), 1002);
    EXPECT_FALSE(valid_close_code(code)) << code;
  }
  expect_fails(cframe(WsOp::Close, "\x03"), 1002);  // one byte: section 5.5.1
  expect_fails(cframe(WsOp::Close, close_payload(1000, "\xff")), 1007);
  expect_fails(cframe(WsOp::Close, close_payload(1000, "ab\xe2\x82")), 1007);
}

// ---- protocol errors -----------------------------------------------------------------------------

TEST(WsErrors, UnmaskedClientFrameIs1002) {
  expect_fails(encode_frame(WsOp::Text, "Hello"), 1002);
  expect_fails(encode_frame(WsOp::Ping, ""), 1002);
  expect_fails(cframe(WsOp::Text, "a", false) + encode_frame(WsOp::Continuation, "b"), 1002);
  // A decoder of server frames (require_mask = false) refuses masked ones.
  std::vector<Ev> got = decode(cframe(WsOp::Text, "x"), kMax, false);
  EXPECT_EQ(got, (std::vector<Ev>{error_ev(1002)}));
}

TEST(WsErrors, ReservedBitsAre1002) {
  for (std::uint8_t rsv : {0x40, 0x20, 0x10, 0x70}) {
    expect_fails(raw_frame(std::uint8_t(0x81 | rsv), true, 1, "a"), 1002);
    expect_fails(raw_frame(std::uint8_t(0x89 | rsv), true, 0, ""), 1002);
  }
}

TEST(WsErrors, ReservedOpcodesAre1002) {
  for (std::uint8_t op : {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    expect_fails(raw_frame(std::uint8_t(0x80 | op), true, 0, ""), 1002);
    expect_fails(raw_frame(std::uint8_t(0x80 | op), true, 2, "ab"), 1002);
    // Also in the middle of a fragmented message.
    expect_fails(cframe(WsOp::Text, "a", false) + raw_frame(std::uint8_t(0x80 | op), true, 0, ""), 1002);
  }
}

TEST(WsErrors, SixtyFourBitLengthWithTopBitIs1002) {
  std::string header = raw_frame(0x82, true, 0x8000000000000000ull, "", 8).substr(0, 10);
  expect_fails(header, 1002);
  header = raw_frame(0x82, true, 0xFFFFFFFFFFFFFFFFull, "", 8).substr(0, 10);
  expect_fails(header, 1002);
}

TEST(WsErrors, OverTheLimitIs1009FromTheHeaderAlone) {
  // Only the header bytes are given: the decision cannot wait for a payload
  // that would have to be buffered first.
  std::string h64 = raw_frame(0x82, true, kMax + 1, "", 8).substr(0, 10);
  expect_fails(h64, 1009);
  std::string h_huge = raw_frame(0x81, true, 0x7FFFFFFFFFFFFFFFull, "", 8).substr(0, 10);
  expect_fails(h_huge, 1009);
  // Even before the masking key has arrived.
  std::string h_nomask = h64.substr(0, 10);
  expect_fails(h_nomask, 1009);
  WsDecoder small(100);
  std::size_t consumed = 0;
  WsEvent ev;
  bool have = false;
  std::string h16 = raw_frame(0x82, true, 101, "", 2).substr(0, 4);
  ASSERT_TRUE(small.next(h16.data(), h16.size(), consumed, ev, have));
  ASSERT_TRUE(have);
  EXPECT_EQ(ev.type, WsEvent::Error);
  EXPECT_EQ(ev.code, 1009);
  // Exactly the limit is fine.
  std::string at_limit = noise(kMax, 5);
  EXPECT_EQ(decode(cframe(WsOp::Binary, at_limit)), (std::vector<Ev>{binary(at_limit)}));
  expect_fails(cframe(WsOp::Binary, noise(kMax + 1, 5)), 1009);
}

TEST(WsErrors, FragmentsAddUpToTheLimit) {
  std::string first = cframe(WsOp::Binary, noise(40000, 1), false);
  std::string second_header = raw_frame(0x00, true, 30000, "", 2).substr(0, 8);
  // The second fragment's header alone pushes the message over 64 KiB.
  expect_fails(first + second_header, 1009);
  // Fragments that add up to exactly the limit are fine.
  std::string a = noise(40000, 1), b = noise(kMax - 40000, 2);
  EXPECT_EQ(decode(cframe(WsOp::Binary, a, false) + cframe(WsOp::Continuation, b)),
            (std::vector<Ev>{binary(a + b)}));
  expect_fails(cframe(WsOp::Binary, a, false) + cframe(WsOp::Continuation, b, false) +
                   cframe(WsOp::Continuation, "1"),
               1009);
  // Small limit, many small fragments.
  std::string stream = cframe(WsOp::Text, "0123456789", false);
  for (int i = 0; i < 9; ++i) stream += cframe(WsOp::Continuation, "0123456789", false);
  stream += cframe(WsOp::Continuation, "", true);
  std::string hundred;
  for (int i = 0; i < 10; ++i) hundred += "0123456789";
  EXPECT_EQ(decode(stream, 100), (std::vector<Ev>{text(hundred)}));
  std::string over = stream.substr(0, stream.size() - 6) + cframe(WsOp::Continuation, "x", true);
  expect_fails(over, 1009, 100);
}

// ---- UTF-8 ------------------------------------------------------------------------------------------

TEST(WsUtf8, InvalidTextIs1007) {
  const std::string bad[] = {
      "\xff",              "\xfe",
      "\xc0\x80",          // overlong NUL
      "\xc1\xbf",          // overlong
      "\xe0\x80\xaf",      // overlong '/'
      "\xed\xa0\x80",      // surrogate U+D800
      "\xed\xbf\xbf",      // surrogate U+DFFF
      "\xf4\x90\x80\x80",  // above U+10FFFF
      "\xf5\x80\x80\x80",
      "\x80",              // lone continuation
      "abc\xe2\x82",       // truncated at the end
      "\xc3(",             // missing continuation
      "ok\xf0\x9f\x98",    // truncated 4-byte
  };
  for (const auto& s : bad) expect_fails(cframe(WsOp::Text, s), 1007);
  // The same bytes are fine in binary messages.
  for (const auto& s : bad) EXPECT_EQ(decode(cframe(WsOp::Binary, s)), (std::vector<Ev>{binary(s)}));
}

TEST(WsUtf8, CharactersSplitAcrossFragments) {
  // Valid: every split of a text with 2-, 3- and 4-byte characters.
  std::string t = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  for (std::size_t k = 0; k <= t.size(); ++k) {
    std::string stream = cframe(WsOp::Text, t.substr(0, k), false) + cframe(WsOp::Ping, "") +
                         cframe(WsOp::Continuation, t.substr(k), true);
    EXPECT_EQ(decode(stream), (std::vector<Ev>{ping(""), text(t)})) << k;
  }
  // Invalid across the boundary: a lead byte, then a fragment that does not continue it.
  expect_fails(cframe(WsOp::Text, "a\xc3", false) + cframe(WsOp::Continuation, "A", true), 1007);
  expect_fails(cframe(WsOp::Text, "\xe2\x82", false) + cframe(WsOp::Continuation, "", true), 1007);
  expect_fails(cframe(WsOp::Text, "\xed", false) + cframe(WsOp::Continuation, "\xa0\x80", true), 1007);
}

TEST(WsUtf8, DetectedInAnEarlyFragment) {
  // Section 8.1: fail as soon as the text cannot become valid, not at the end
  // of the message; the later fragments never arrive.
  std::vector<Ev> got = decode(cframe(WsOp::Text, "good \xff", false));
  EXPECT_EQ(got, (std::vector<Ev>{error_ev(1007)}));
  got = decode(cframe(WsOp::Text, "abc", false) + cframe(WsOp::Continuation, "\xc3\x28", false));
  EXPECT_EQ(got, (std::vector<Ev>{error_ev(1007)}));
  got = decode(cframe(WsOp::Text, "\xf4", false) + cframe(WsOp::Continuation, "\x90", false));
  EXPECT_EQ(got, (std::vector<Ev>{error_ev(1007)}));
  // A lead byte at the end of a fragment is not an error yet.
  got = decode(cframe(WsOp::Text, "abc\xe2", false));
  EXPECT_TRUE(got.empty());
}

// RFC 6455 section 8.1 within one frame: a frame whose payload arrives in
// several reads is checked as it arrives, so the 1007 does not wait for the
// rest of the frame (Autobahn cases 6.4.3 and 6.4.4).
TEST(WsUtf8, DetectedInsideAFrameStillArriving) {
  const std::string head = std::string(40, 'a') + "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
  const std::string tail(4000, 'z');
  const std::string bad_char = "\xf4\x90\x80\x80";  // above U+10FFFF: 0x90 is the first invalid octet
  // In a single text frame, and in the continuation of a text message.
  const std::string streams[] = {
      cframe(WsOp::Text, head + bad_char + tail),
      cframe(WsOp::Text, "\xce", false) + cframe(WsOp::Continuation, "\xba" + head + bad_char + tail, true),
  };
  for (const std::string& stream : streams) {
    const std::size_t octet = stream.size() - tail.size() - 3;
    // Three chunks; the invalid octet sits in the second.
    const std::size_t cut1 = octet - 10, cut2 = octet + 10;
    Feeder f;
    f.feed(stream.substr(0, cut1));
    EXPECT_TRUE(f.events().empty()) << "first chunk";
    f.feed(stream.substr(cut1, cut2 - cut1));
    EXPECT_EQ(f.events(), (std::vector<Ev>{error_ev(1007)})) << "the close must come before the third chunk";
  }
}

TEST(WsUtf8, ArrivingFrameSplitAtEveryPoint) {
  // Valid text split inside characters at every point of one frame: no error
  // before the end, the whole message after it.
  const std::string t = "x\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80y";
  const std::string f = cframe(WsOp::Text, t);
  for (std::size_t k = 0; k < f.size(); ++k) {
    Feeder feeder;
    feeder.feed(f.substr(0, k));
    EXPECT_TRUE(feeder.events().empty()) << k;
    feeder.feed(f.substr(k));
    EXPECT_EQ(feeder.events(), (std::vector<Ev>{text(t)})) << k;
  }
  // Invalid text fails at the first chunk that holds the bad octet, whatever
  // the split; the same bytes in a binary frame are a message.
  const std::string bad = std::string(10, 'a') + "\xed\xa0\x80" + std::string(10, 'b');
  const std::string fb = cframe(WsOp::Text, bad), fbin = cframe(WsOp::Binary, bad);
  const std::size_t octet = fb.size() - 10 - 2;  // the 0xa0 after 0xed
  for (std::size_t k = 0; k < fb.size(); ++k) {
    Feeder feeder;
    feeder.feed(fb.substr(0, k));
    EXPECT_EQ(feeder.events().size(), k > octet ? 1u : 0u) << k;
    feeder.feed(fb.substr(k));
    EXPECT_EQ(feeder.events(), (std::vector<Ev>{error_ev(1007)})) << k;
    Feeder binary_feeder;
    binary_feeder.feed(fbin.substr(0, k));
    binary_feeder.feed(fbin.substr(k));
    EXPECT_EQ(binary_feeder.events(), (std::vector<Ev>{binary(bad)})) << k;
  }
}

// ---- errors are final ------------------------------------------------------------------------------

TEST(WsErrors, FalseForeverAfterAnError) {
  WsDecoder dec(kMax);
  std::string bad = encode_frame(WsOp::Text, "unmasked");
  std::size_t consumed = 7;
  WsEvent ev;
  bool have = false;
  ASSERT_TRUE(dec.next(bad.data(), bad.size(), consumed, ev, have));
  ASSERT_TRUE(have);
  EXPECT_EQ(ev.type, WsEvent::Error);
  EXPECT_EQ(ev.code, 1002);
  std::string good = cframe(WsOp::Text, "fine") + cframe(WsOp::Close, close_payload(1000));
  for (int i = 0; i < 3; ++i) {
    have = true;
    consumed = 7;
    EXPECT_FALSE(dec.next(good.data(), good.size(), consumed, ev, have));
    EXPECT_FALSE(have);
    EXPECT_EQ(consumed, 0u);
  }
}

// ---- round trips ------------------------------------------------------------------------------------

TEST(WsRoundTrip, EncodeFrameThroughTheDecoder) {
  std::mt19937 rng(6455);
  for (int i = 0; i < 400; ++i) {
    std::size_t n = i < 200 ? rng() % 300 : rng() % 70000;
    std::string payload = noise(n, rng());
    std::uint8_t mask[4] = {std::uint8_t(rng()), std::uint8_t(rng()), std::uint8_t(rng()), std::uint8_t(rng())};
    std::string masked = encode_frame(WsOp::Binary, payload, true, mask);
    std::string plain = encode_frame(WsOp::Binary, payload);
    EXPECT_EQ(masked.size(), plain.size() + 4);
    EXPECT_EQ(decode(masked, 100000), (std::vector<Ev>{binary(payload)})) << n;
    EXPECT_EQ(decode(plain, 100000, false), (std::vector<Ev>{binary(payload)})) << n;
  }
  // Fragmented text, split at random places, each fragment with its own mask.
  std::string msg;
  for (int i = 0; i < 500; ++i) msg += "caf\xc3\xa9 \xe2\x82\xac ";
  std::string stream;
  std::size_t pos = 0;
  bool first = true;
  while (pos < msg.size()) {
    std::size_t n = std::min<std::size_t>(msg.size() - pos, 1 + rng() % 200);
    std::uint8_t mask[4] = {std::uint8_t(rng()), std::uint8_t(rng()), std::uint8_t(rng()), std::uint8_t(rng())};
    stream += encode_frame(first ? WsOp::Text : WsOp::Continuation, msg.substr(pos, n), pos + n == msg.size(), mask);
    first = false;
    pos += n;
  }
  EXPECT_EQ(decode(stream), (std::vector<Ev>{text(msg)}));
  // Close frames the server sends decode as what was sent.
  EXPECT_EQ(decode(encode_close_frame(4001, "authentication failed"), kMax, false),
            (std::vector<Ev>{close_ev(4001, "authentication failed")}));
  EXPECT_EQ(decode(encode_close_frame(0, ""), kMax, false), (std::vector<Ev>{close_ev(1005)}));
}

TEST(WsRoundTrip, ShrinkKeepsDecoding) {
  Feeder f;
  std::string big = noise(50000, 4);
  f.feed(cframe(WsOp::Binary, big));
  f.decoder().shrink();
  f.feed(cframe(WsOp::Text, "after"));
  f.decoder().shrink();
  f.feed(cframe(WsOp::Text, "frag", false));
  f.decoder().shrink();  // inside a message: keeps it
  f.feed(cframe(WsOp::Continuation, "ment"));
  EXPECT_EQ(f.events(), (std::vector<Ev>{binary(big), text("after"), text("fragment")}));
}

// ---- fuzz ------------------------------------------------------------------------------------------

namespace {

// Feeds `stream` in random chunks and checks the invariants of Feeder; returns
// the events.
std::vector<Ev> feed_randomly(const std::string& stream, std::mt19937& rng, std::size_t max) {
  Feeder f(max);
  std::size_t pos = 0;
  while (pos < stream.size()) {
    std::size_t n = 1 + rng() % (rng() % 4 == 0 ? 64 : 8);
    n = std::min(n, stream.size() - pos);
    f.feed(std::string_view(stream).substr(pos, n));
    pos += n;
  }
  return f.events();
}

std::string random_valid_stream(std::mt19937& rng) {
  std::string s;
  int frames = 1 + int(rng() % 8);
  bool in_message = false, in_text = false;
  for (int i = 0; i < frames; ++i) {
    std::uint32_t kind = rng() % 6;
    std::uint8_t mask[4] = {std::uint8_t(rng()), std::uint8_t(rng()), std::uint8_t(rng()), std::uint8_t(rng())};
    std::string payload = noise(rng() % (rng() % 8 == 0 ? 700 : 30), rng());
    if (kind == 0) {
      s += encode_frame(WsOp::Ping, payload.substr(0, 125), true, mask);
    } else if (kind == 1) {
      s += encode_frame(WsOp::Close, close_payload(1000, "x"), true, mask);
    } else {
      bool text = in_message ? in_text : kind == 2;
      if (text)
        for (char& c : payload) c = char('a' + std::uint8_t(c) % 26);
      bool fin = rng() % 2;
      s += encode_frame(in_message ? WsOp::Continuation : text ? WsOp::Text : WsOp::Binary, payload, fin, mask);
      in_message = !fin;
      in_text = text;
    }
  }
  return s;
}

}  // namespace

TEST(WsFuzz, RandomBytesAndMutationsNeverBreakTheDecoder) {
  std::mt19937 rng(0x6455);
  const std::size_t max = 1024;
  std::map<std::uint16_t, int> errors;
  int messages = 0, controls = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string stream;
    if (iter % 4 == 0) {
      stream.resize(rng() % 200);
      for (char& c : stream) c = char(rng());
    } else {
      stream = random_valid_stream(rng);
      int mutations = 1 + int(rng() % 4);
      for (int m = 0; m < mutations && !stream.empty(); ++m) {
        std::size_t at = rng() % stream.size();
        switch (rng() % 5) {
          case 0: stream[at] = char(stream[at] ^ (1u << (rng() % 8))); break;
          case 1: stream[at] = char(rng()); break;
          case 2: stream.insert(at, 1, char(rng())); break;
          case 3: stream.erase(at, 1 + rng() % 4); break;
          case 4: stream.resize(at); break;
        }
      }
    }
    std::vector<Ev> whole = decode(stream, max);
    std::vector<Ev> chunked = feed_randomly(stream, rng, max);
    ASSERT_EQ(whole, chunked) << "iteration " << iter << ": " << testing::PrintToString(stream);
    for (std::size_t i = 0; i < whole.size(); ++i) {
      if (whole[i].type == WsEvent::Text || whole[i].type == WsEvent::Binary)
        ++messages;
      else if (whole[i].type != WsEvent::Error)
        ++controls;
      if (whole[i].type == WsEvent::Error) {
        ++errors[whole[i].code];
        EXPECT_EQ(i + 1, whole.size());  // nothing after an error
        EXPECT_TRUE(whole[i].code == 1002 || whole[i].code == 1007 || whole[i].code == 1009) << whole[i];
      }
      if (whole[i].type == WsEvent::Text) {
        EXPECT_TRUE(valid_utf8(whole[i].payload));
      } else if (whole[i].type == WsEvent::Close) {
        EXPECT_TRUE(whole[i].code == 1005 || valid_close_code(whole[i].code)) << whole[i];
        EXPECT_TRUE(valid_utf8(whole[i].payload));
      }
    }
  }
  // The fuzz reached every kind of outcome.
  EXPECT_GT(errors[1002], 100);
  EXPECT_GT(errors[1007], 20);
  EXPECT_GT(errors[1009], 20);
  EXPECT_GT(messages, 1000);
  EXPECT_GT(controls, 1000);
  std::cout << "fuzz: " << messages << " messages, " << controls << " control frames, errors 1002/1007/1009: "
            << errors[1002] << "/" << errors[1007] << "/" << errors[1009] << "\n";
}

TEST(WsFuzz, UnmutatedStreamsDecodeWithoutErrors) {
  std::mt19937 rng(42);
  for (int iter = 0; iter < 500; ++iter) {
    std::string stream = random_valid_stream(rng);
    std::vector<Ev> got = feed_randomly(stream, rng, kMax);
    for (const auto& e : got) EXPECT_NE(e.type, WsEvent::Error) << e << " in iteration " << iter;
  }
}
