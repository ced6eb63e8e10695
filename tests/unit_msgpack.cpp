// Unit tests of the MessagePack output: every type and size class the agent
// emits against the byte layouts of the MessagePack specification, the JSON
// re-encoding (the msgpack.org front-page example, escapes, number classes,
// malformed input), golden files of every JSON golden message in MessagePack,
// and the stream hub's binary frames.
//
// Regenerate the MessagePack golden files on purpose with
//     METRICS_AGENT_REGENERATE=1 build/cmake/tests/unit_tests --gtest_filter='MsgpackGolden*'
#include "metrics_agent.hpp"
#include "test_hub.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>

using namespace metrics_agent::detail;
using metrics_agent::encode_text_frame;

namespace {

std::string spaced_hex(std::string_view b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    if (!s.empty()) s += ' ';
    s += d[c >> 4];
    s += d[c & 15];
  }
  return s;
}

template <class F>
std::string encoded(F f) {
  std::string out;
  MsgpackWriter w(out);
  f(w);
  return spaced_hex(out);
}

std::string head(const std::string& h, std::size_t bytes) { return h.substr(0, bytes * 3 - 1); }

std::string from_json(std::string_view json) {
  std::string out;
  EXPECT_TRUE(JsonToMsgpack::convert(json, out)) << json;
  return spaced_hex(out);
}

}  // namespace

TEST(MsgpackWriter, NilAndBooleans) {
  EXPECT_EQ(encoded([](auto& w) { w.nil(); }), "c0");
  EXPECT_EQ(encoded([](auto& w) { w.boolean(false); }), "c2");
  EXPECT_EQ(encoded([](auto& w) { w.boolean(true); }), "c3");
}

TEST(MsgpackWriter, UnsignedIntegersAtEveryBoundary) {
  auto u = [](std::uint64_t v) { return encoded([v](auto& w) { w.uint(v); }); };
  EXPECT_EQ(u(0), "00");    // positive fixint 0xxxxxxx
  EXPECT_EQ(u(127), "7f");
  EXPECT_EQ(u(128), "cc 80");  // uint 8
  EXPECT_EQ(u(255), "cc ff");
  EXPECT_EQ(u(256), "cd 01 00");  // uint 16, big-endian
  EXPECT_EQ(u(65535), "cd ff ff");
  EXPECT_EQ(u(65536), "ce 00 01 00 00");  // uint 32
  EXPECT_EQ(u(4294967295u), "ce ff ff ff ff");
  EXPECT_EQ(u(4294967296u), "cf 00 00 00 01 00 00 00 00");  // uint 64
  EXPECT_EQ(u(std::numeric_limits<std::uint64_t>::max()), "cf ff ff ff ff ff ff ff ff");
}

TEST(MsgpackWriter, SignedIntegersAtEveryBoundary) {
  auto i = [](std::int64_t v) { return encoded([v](auto& w) { w.integer(v); }); };
  EXPECT_EQ(i(5), "05");   // non-negative: the unsigned forms
  EXPECT_EQ(i(-1), "ff");  // negative fixint 111xxxxx
  EXPECT_EQ(i(-32), "e0");
  EXPECT_EQ(i(-33), "d0 df");  // int 8
  EXPECT_EQ(i(-128), "d0 80");
  EXPECT_EQ(i(-129), "d1 ff 7f");  // int 16
  EXPECT_EQ(i(-32768), "d1 80 00");
  EXPECT_EQ(i(-32769), "d2 ff ff 7f ff");  // int 32
  EXPECT_EQ(i(-2147483648LL), "d2 80 00 00 00");
  EXPECT_EQ(i(-2147483649LL), "d3 ff ff ff ff 7f ff ff ff");  // int 64
  EXPECT_EQ(i(std::numeric_limits<std::int64_t>::min()), "d3 80 00 00 00 00 00 00 00");
  EXPECT_EQ(i(std::numeric_limits<std::int64_t>::max()), "cf 7f ff ff ff ff ff ff ff");
}

TEST(MsgpackWriter, Float64IsBigEndianIeee754) {
  auto f = [](double v) { return encoded([v](auto& w) { w.float64(v); }); };
  EXPECT_EQ(f(1.5), "cb 3f f8 00 00 00 00 00 00");
  EXPECT_EQ(f(0.1), "cb 3f b9 99 99 99 99 99 9a");
  EXPECT_EQ(f(-2.0), "cb c0 00 00 00 00 00 00 00");
  EXPECT_EQ(f(25.5), "cb 40 39 80 00 00 00 00 00");
}

TEST(MsgpackWriter, StringsInEverySizeClass) {
  auto s = [](std::size_t n) { return encoded([n](auto& w) { w.str(std::string(n, 'a')); }); };
  EXPECT_EQ(s(0), "a0");  // fixstr 101xxxxx
  EXPECT_EQ(s(1), "a1 61");
  EXPECT_EQ(head(s(31), 2), "bf 61");
  EXPECT_EQ(head(s(32), 3), "d9 20 61");  // str 8
  EXPECT_EQ(head(s(255), 3), "d9 ff 61");
  EXPECT_EQ(head(s(256), 4), "da 01 00 61");  // str 16
  EXPECT_EQ(head(s(65535), 4), "da ff ff 61");
  EXPECT_EQ(head(s(65536), 6), "db 00 01 00 00 61");  // str 32
  EXPECT_EQ(s(65536).size(), (5 + 65536) * 3 - 1);
  EXPECT_EQ(encoded([](auto& w) { w.str("\xc3\xa9"); }), "a2 c3 a9");  // length in bytes
}

TEST(MsgpackWriter, MapAndArrayHeadersInEverySizeClass) {
  auto m = [](std::size_t n) { return encoded([n](auto& w) { w.map_header(n); }); };
  auto a = [](std::size_t n) { return encoded([n](auto& w) { w.array_header(n); }); };
  EXPECT_EQ(m(0), "80");  // fixmap 1000xxxx
  EXPECT_EQ(m(15), "8f");
  EXPECT_EQ(m(16), "de 00 10");  // map 16
  EXPECT_EQ(m(65535), "de ff ff");
  EXPECT_EQ(m(65536), "df 00 01 00 00");  // map 32
  EXPECT_EQ(a(0), "90");  // fixarray 1001xxxx
  EXPECT_EQ(a(15), "9f");
  EXPECT_EQ(a(16), "dc 00 10");  // array 16
  EXPECT_EQ(a(65536), "dd 00 01 00 00");  // array 32
}

TEST(JsonToMsgpack, TheSpecificationsFrontPageExample) {
  // msgpack.org: {"compact":true,"schema":0} is 18 bytes.
  EXPECT_EQ(from_json(R"({"compact":true,"schema":0})"),
            "82 a7 63 6f 6d 70 61 63 74 c3 a6 73 63 68 65 6d 61 00");
}

TEST(JsonToMsgpack, IntegersWhereJsonHasIntegersFloat64Otherwise) {
  EXPECT_EQ(from_json("25"), "19");
  EXPECT_EQ(from_json("-0"), "00");
  EXPECT_EQ(from_json("-33"), "d0 df");
  EXPECT_EQ(from_json("18446744073709551615"), "cf ff ff ff ff ff ff ff ff");
  EXPECT_EQ(from_json("-9223372036854775808"), "d3 80 00 00 00 00 00 00 00");
  EXPECT_EQ(from_json("25.5"), "cb 40 39 80 00 00 00 00 00");
  EXPECT_EQ(from_json("1e2"), "cb 40 59 00 00 00 00 00 00");  // an exponent: not an integer
  EXPECT_EQ(from_json("18446744073709551616"), "cb 43 f0 00 00 00 00 00 00");  // past uint64
  EXPECT_EQ(from_json("-9223372036854775809"), "cb c3 e0 00 00 00 00 00 00");  // past int64
  EXPECT_EQ(from_json("1e999"), "cb 7f f0 00 00 00 00 00 00");
}

TEST(JsonToMsgpack, NullBooleansArraysAndNesting) {
  EXPECT_EQ(from_json(R"({"cpu":null,"ok":false,"l":[1.5,true,[]],"m":{}})"),
            "84 a3 63 70 75 c0 a2 6f 6b c2 a1 6c 93 cb 3f f8 00 00 00 00 00 00 c3 90 a1 6d 80");
  EXPECT_EQ(from_json(" [ 1 , 2 ]\n"), "92 01 02");
  std::string big = "[";
  for (int i = 0; i < 16; ++i) big += i ? ",0" : "0";
  big += "]";
  EXPECT_EQ(head(from_json(big), 4), "dc 00 10 00");  // 16 elements: array 16 in front
}

TEST(JsonToMsgpack, StringEscapesBecomeUtf8) {
  EXPECT_EQ(from_json(R"("a\"\\\/\b\f\n\r\t")"), "a9 61 22 5c 2f 08 0c 0a 0d 09");
  EXPECT_EQ(from_json(R"("\u00e9\u20ac")"), "a5 c3 a9 e2 82 ac");
  EXPECT_EQ(from_json(R"("\ud83d\ude00")"), "a4 f0 9f 98 80");   // a surrogate pair
  EXPECT_EQ(from_json(R"("\ud83dx")"), "a4 ef bf bd 78");       // a lone one: U+FFFD
  EXPECT_EQ(from_json("\"\xc3\xa9\""), "a2 c3 a9");             // raw UTF-8 as is
}

TEST(JsonToMsgpack, MalformedTextIsRefused) {
  for (const char* bad : {"", " ", "{", "[1,]", "[1 2]", R"({"a"})", R"({"a":1,})", "{1:2}", "01", "-", "1.",
                          "1e", "nul", "tru", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\x01\"", "1 2", "[]]", "+1"}) {
    std::string out;
    EXPECT_FALSE(JsonToMsgpack::convert(bad, out)) << bad;
  }
  EXPECT_EQ(json_to_msgpack("{"), "");
  std::string deep(64, '['), out;
  deep += std::string(64, ']');
  EXPECT_TRUE(JsonToMsgpack::convert(deep, out));
  deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_FALSE(JsonToMsgpack::convert(deep, out));  // nesting bounded, no stack overflow
}

// ---- golden files --------------------------------------------------------------------------

namespace {

using test_util::kGoldenDir;

using test_util::slurp;

// Hex, 32 bytes a line: reviewable in a diff.
std::string hex_lines(const std::string& bytes) {
  std::string h = spaced_hex(bytes), out;
  for (std::size_t i = 0; i < h.size(); i += 96) out += h.substr(i, 95) + "\n";
  return out;
}

}  // namespace

// Every JSON golden message (flat, rich, failed groups, invalid UTF-8, the
// recorded /proc trees) has its MessagePack twin in tests/golden/msgpack/.
TEST(MsgpackGolden, EveryJsonGoldenMessageInMessagePack) {
  const bool regen = [] {
    const char* e = std::getenv("METRICS_AGENT_REGENERATE");
    return e && std::string(e) == "1";
  }();
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kGoldenDir)) {
    const auto p = entry.path();
    if (p.extension() != ".json") continue;
    std::string json = slurp(p.string());
    ASSERT_FALSE(json.empty());
    json.pop_back();  // the final newline of golden files
    std::string bytes = json_to_msgpack(json);
    ASSERT_FALSE(bytes.empty()) << p;
    const std::string golden = kGoldenDir + "/msgpack/" + p.stem().string() + ".msgpack.hex";
    ++n;
    if (regen) {
      std::filesystem::create_directories(kGoldenDir + "/msgpack");
      std::ofstream(golden, std::ios::binary | std::ios::trunc) << hex_lines(bytes);
      std::cout << "regenerated " << golden << "\n";
      continue;
    }
    EXPECT_EQ(hex_lines(bytes), slurp(golden))
        << "differs from " << golden << " (if intended: METRICS_AGENT_REGENERATE=1, then review the diff)";
  }
  EXPECT_GE(n, 10);
}

// ---- the hub's binary frames ---------------------------------------------------------------

namespace {

using MpSocket = test_hub::FakeSocket;

std::string binary_frame(std::string_view payload) { return encode_frame(WsOp::Binary, payload); }


}  // namespace

TEST(StreamHubMsgpack, OneBinaryFramePerDistinctOutputBesideTheJsonOne) {
  BasicStreamHub<MpSocket> hub(1.0, false);
  MpSocket text, bin1("format=msgpack"), bin2("interval=5&format=msgpack"), cpu("metrics=cpu&format=msgpack"), flat("format=msgpack"),
      odd("format=xml");
  hub.open(text, Stream::Rich);
  hub.open(bin1, Stream::Rich);
  hub.open(bin2, Stream::Rich);
  hub.open(cpu, Stream::Rich);
  hub.open(flat, Stream::Flat);
  hub.open(odd, Stream::Flat);
  constexpr std::int64_t t = 1700000010LL * 1000000;
  const auto s = test_hub::small_snapshot();
  hub.fan_out(s, t);
  ASSERT_EQ(bin1.r->frames.size(), 1u);
  EXPECT_NE(bin1.r->frames[0].get(), text.r->frames[0].get());
  EXPECT_EQ(*text.r->frames[0], *encode_text_frame(rich_json(s, kRichAll, t)));
  EXPECT_EQ(*bin1.r->frames[0], binary_frame(json_to_msgpack(rich_json(s, kRichAll, t))));
  EXPECT_EQ(*bin2.r->frames[0], binary_frame(json_to_msgpack(rich_json(s, kRichAll, t))));
  EXPECT_EQ(bin1.r->frames[0].get(), bin2.r->frames[0].get());  // same fields: the same buffer
  EXPECT_EQ(*cpu.r->frames[0], binary_frame(json_to_msgpack(rich_json(s, kRichCpu, t))));
  EXPECT_EQ(*flat.r->frames[0], binary_frame(json_to_msgpack(flat_json(s, kFlatAll))));
  EXPECT_EQ(*odd.r->frames[0], *encode_text_frame(flat_json(s, kFlatAll)));  // unknown format: JSON
}

TEST(StreamHubMsgpack, SubscribeSwitchesTheFormatAndRepliesInIt) {
  BasicStreamHub<MpSocket> hub(1.0, false);
  MpSocket a, alerts("format=msgpack");
  hub.open(a, Stream::Dashboard);
  hub.open(alerts, Stream::Alerts);
  hub.control(a, R"({"type":"subscribe","format":"yaml"})", false);
  ASSERT_EQ(a.r->texts.size(), 1u);
  EXPECT_NE(a.r->texts[0].find("\\\"format\\\" must be"), std::string::npos) << a.r->texts[0];
  hub.control(a, R"({"type":"subscribe","metrics":["cpu"],"format":"msgpack"})", false);
  ASSERT_EQ(a.r->frames.size(), 1u);  // the acknowledgement, already binary
  EXPECT_EQ(*a.r->frames[0],
            binary_frame(json_to_msgpack(R"({"type":"subscribed","metrics":["cpu"],"interval":5,"format":"msgpack"})")));
  hub.control(a, R"({"type":"ping"})", false);
  EXPECT_EQ(*a.r->frames[1], binary_frame(json_to_msgpack(R"({"type":"pong"})")));
  const auto s = test_hub::small_snapshot();
  constexpr std::int64_t t = 1700000010LL * 1000000;
  hub.fan_out(s, t);
  ASSERT_EQ(a.r->frames.size(), 3u);
  EXPECT_EQ(*a.r->frames[2], binary_frame(json_to_msgpack(rich_json(s, kRichCpu, t))));
  hub.control(a, R"({"type":"subscribe","format":"json"})", false);
  EXPECT_EQ(a.r->texts.back(), R"({"type":"subscribed","metrics":["cpu"],"interval":5})");
  hub.heartbeat(t);
  hub.alerts_control(alerts, R"({"type":"ping"})", false);
  ASSERT_EQ(alerts.r->frames.size(), 2u);
  EXPECT_EQ(*alerts.r->frames[0],
            binary_frame(json_to_msgpack(R"({"type":"heartbeat","timestamp":"2023-11-14T22:13:30Z"})")));
  EXPECT_EQ(*alerts.r->frames[1], binary_frame(json_to_msgpack(R"({"type":"pong"})")));
  EXPECT_TRUE(alerts.r->texts.empty());
}
