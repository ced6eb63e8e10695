// Unit tests of the project's own cryptography and text validation, against
// the published vectors of each specification.
#include "metrics_agent.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <string>
#include <vector>

namespace {

namespace ma = metrics_agent::detail;

std::string hex(std::string_view bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

template <std::size_t N>
std::string hex(const std::array<std::uint8_t, N>& a) {
  return hex(ma::as_bytes(a));
}

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
  return out;
}

std::string repeat(std::string_view s, std::size_t times) {
  std::string out;
  for (std::size_t i = 0; i < times; ++i) out += s;
  return out;
}

// A deterministic byte pattern for round trips.
std::string pattern(std::size_t n, unsigned seed) {
  std::string out(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : out) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 23);
  }
  return out;
}

const std::string kMillionA(1000000, 'a');
const char kTwoBlock[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

// ---- SHA-1 (RFC 3174 section 7.3) ----------------------------------------------------

TEST(CryptoSha1, Rfc3174Vectors) {
  EXPECT_EQ(hex(ma::sha1("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(hex(ma::sha1(kTwoBlock)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_EQ(hex(ma::sha1(kMillionA)), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  EXPECT_EQ(hex(ma::sha1(repeat("0123456701234567012345670123456701234567012345670123456701234567", 10))),
            "dea356a2cddd90c7a7ecedc5ebb563934f460452");
}

TEST(CryptoSha1, EmptyMessage) {
  EXPECT_EQ(hex(ma::sha1("")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

TEST(CryptoSha1, IncrementalMatchesOneShot) {
  ma::Sha1 h;
  std::size_t step = 1;
  for (std::size_t i = 0; i < kMillionA.size(); i += step, step = step % 131 + 7)
    h.update(std::string_view(kMillionA).substr(i, step));
  EXPECT_EQ(hex(h.finish()), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  h.update("abc");  // finish() leaves the object ready for a new message
  EXPECT_EQ(hex(h.finish()), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

// Messages of n 'a's whose lengths sit on either side of the padding
// boundaries (55 bytes is the longest that pads within one block). The
// values are those printed by coreutils' sha1sum and sha256sum.
TEST(CryptoSha, PaddingBoundaries) {
  struct Case {
    std::size_t n;
    const char* sha1;
    const char* sha256;
  };
  const Case cases[] = {
      {55, "c1c8bbdc22796e28c0e15163d20899b65621d65a", "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "c2db330f6083854c99d4b5bfb6e8f29f201be699", "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5", "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "0098ba824b5c16427bd7a1122a5a442a25ec644d", "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {65, "11655326c708d70319be2610e8a57d9a5b959d3b", "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
      {119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56", "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {120, "f34c1488385346a55709ba056ddd08280dd4c6d6", "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
  };
  for (const auto& c : cases) {
    std::string msg(c.n, 'a');
    EXPECT_EQ(hex(ma::sha1(msg)), c.sha1) << c.n;
    EXPECT_EQ(hex(ma::sha256(msg)), c.sha256) << c.n;
  }
}

// ---- base64 (RFC 4648 section 10) ------------------------------------------------------

TEST(CryptoBase64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},       {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(ma::base64_encode(plain), encoded);
    auto decoded = ma::base64_decode(encoded);
    ASSERT_TRUE(decoded) << encoded;
    EXPECT_EQ(*decoded, plain);
  }
}

TEST(CryptoBase64, UrlAlphabetWithoutPadding) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(ma::base64url_encode(plain), encoded);
    auto decoded = ma::base64url_decode(encoded);
    ASSERT_TRUE(decoded) << encoded;
    EXPECT_EQ(*decoded, plain);
  }
  // 0xfb 0xff uses the last two characters of each alphabet (RFC 4648 tables 1 and 2).
  EXPECT_EQ(ma::base64_encode("\xfb\xff"), "+/8=");
  EXPECT_EQ(ma::base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(ma::base64url_decode("-_8").value_or("x"), "\xfb\xff");
}

TEST(CryptoBase64, RoundTripEveryLength) {
  for (std::size_t n = 0; n < 300; ++n) {
    std::string bytes = pattern(n, static_cast<unsigned>(n));
    std::string std_text = ma::base64_encode(bytes);
    std::string url_text = ma::base64url_encode(bytes);
    EXPECT_EQ(std_text.size(), (n + 2) / 3 * 4);
    EXPECT_EQ(url_text.size(), (n * 4 + 2) / 3);
    EXPECT_EQ(ma::base64_decode(std_text).value_or("?"), bytes) << n;
    EXPECT_EQ(ma::base64url_decode(url_text).value_or("?"), bytes) << n;
  }
}

TEST(CryptoBase64, RejectsBadInput) {
  for (const char* bad : {"Zg", "Zg=", "Zg===", "Z===", "====", "=Zg=", "Zm9v=", "Zm9vY", "Zm9v\n",
                          "Zm 9v", "Zm9-", "Zm9_", "Zm9v\xc3\xa9", "Zh==", "Zm9=", "Zg=A"})
    EXPECT_FALSE(ma::base64_decode(bad)) << bad;
  for (const char* bad : {"Zg==", "Zg=", "Zm9vY", "Z", "Zm9+", "Zm9/", "Zm 9", "Zh", "Zm9", "Zm9v="})
    EXPECT_FALSE(ma::base64url_decode(bad)) << bad;
  EXPECT_FALSE(ma::base64_decode(std::string_view("Zm9v\0\0\0\0", 8)));
}

// ---- SHA-256 (FIPS 180-4; NIST example values) ----------------------------------------

TEST(CryptoSha256, NistVectors) {
  EXPECT_EQ(hex(ma::sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(ma::sha256(kTwoBlock)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hex(ma::sha256(kMillionA)),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(hex(ma::sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(CryptoSha256, SplitAtEveryBoundary) {
  std::string_view msg = kTwoBlock;
  for (std::size_t i = 0; i <= msg.size(); ++i) {
    ma::Sha256 h;
    h.update(msg.substr(0, i));
    h.update(msg.substr(i));
    EXPECT_EQ(hex(h.finish()), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") << i;
  }
  for (std::size_t n = 0; n < 200; ++n) {
    std::string bytes = pattern(n, 7);
    ma::Sha256 h;
    for (char c : bytes) h.update(&c, 1);
    EXPECT_EQ(hex(h.finish()), hex(ma::sha256(bytes))) << n;
  }
}

// ---- HMAC-SHA256 (RFC 4231 section 4) -----------------------------------------------------

TEST(CryptoHmac, Rfc4231Vectors) {
  struct Case {
    std::string key, data, mac;
  };
  const std::string key131(131, '\xaa');
  const Case cases[] = {
      {std::string(20, '\x0b'), "Hi There",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"Jefe", "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {std::string(20, '\xaa'), std::string(50, '\xdd'),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"), std::string(50, '\xcd'),
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      // Test case 5 publishes only the first 128 bits.
      {std::string(20, '\x0c'), "Test With Truncation", "a3b6167473100ee06e0c796c2955552b"},
      {key131, "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {key131,
       "This is a test using a larger than block-size key and a larger than block-size data. "
       "The key needs to be hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
  int n = 1;
  for (const auto& c : cases) {
    std::string mac = hex(ma::hmac_sha256(c.key, c.data));
    EXPECT_EQ(mac.substr(0, c.mac.size()), c.mac) << "test case " << n;
    ++n;
  }
}

TEST(CryptoHmac, ObjectIsReusableAndIncremental) {
  ma::HmacSha256 mac("Jefe");
  mac.update("what do ya want ");
  mac.update("for nothing?");
  EXPECT_EQ(hex(mac.finish()), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  mac.update("what do ya want for nothing?");
  EXPECT_EQ(hex(mac.finish()), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// ---- PBKDF2-HMAC-SHA256 (RFC 6070's inputs with SHA-256; RFC 7914 section 11) ----------

TEST(CryptoPbkdf2, PublishedVectors) {
  EXPECT_EQ(hex(ma::pbkdf2_hmac_sha256("password", "salt", 1, 32)),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
  EXPECT_EQ(hex(ma::pbkdf2_hmac_sha256("password", "salt", 2, 32)),
            "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43");
  EXPECT_EQ(hex(ma::pbkdf2_hmac_sha256("password", "salt", 4096, 32)),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
  EXPECT_EQ(hex(ma::pbkdf2_hmac_sha256("passwordPASSWORDpassword",
                                       "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096, 40)),
            "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9");
  EXPECT_EQ(hex(ma::pbkdf2_hmac_sha256(std::string_view("pass\0word", 9),
                                       std::string_view("sa\0lt", 5), 4096, 16)),
            "89b69d0516f829893c696226650a8687");
  EXPECT_EQ(hex(ma::pbkdf2_hmac_sha256("passwd", "salt", 1, 64)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
            "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
  EXPECT_EQ(hex(ma::pbkdf2_hmac_sha256("Password", "NaCl", 80000, 64)),
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
            "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d");
}

TEST(CryptoPbkdf2, LengthsAndZeroIterations) {
  std::string full = ma::pbkdf2_hmac_sha256("password", "salt", 2, 100);
  ASSERT_EQ(full.size(), 100u);
  for (std::size_t n : {0u, 1u, 31u, 32u, 33u, 64u, 99u})
    EXPECT_EQ(ma::pbkdf2_hmac_sha256("password", "salt", 2, n), full.substr(0, n)) << n;
  EXPECT_EQ(ma::pbkdf2_hmac_sha256("password", "salt", 0, 32), "");
}

// ---- constant-time comparison ------------------------------------------------------------

TEST(CryptoCompare, ConstantTimeEqual) {
  EXPECT_TRUE(ma::constant_time_equal("", ""));
  EXPECT_TRUE(ma::constant_time_equal("secret", "secret"));
  EXPECT_FALSE(ma::constant_time_equal("secret", "Secret"));
  EXPECT_FALSE(ma::constant_time_equal("secret", "secreT"));
  EXPECT_FALSE(ma::constant_time_equal("secret", "secret!"));
  EXPECT_FALSE(ma::constant_time_equal("secret!", "secret"));
  EXPECT_FALSE(ma::constant_time_equal("", "x"));
  EXPECT_FALSE(ma::constant_time_equal("x", ""));
  EXPECT_FALSE(ma::constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
  EXPECT_TRUE(ma::constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0b", 3)));
}

// ---- randomness ------------------------------------------------------------------------------

TEST(CryptoRandom, FillsBuffers) {
  std::string a(32, '\0'), b(32, '\0');
  ASSERT_TRUE(ma::random_bytes(a.data(), a.size()));
  ASSERT_TRUE(ma::random_bytes(b.data(), b.size()));
  EXPECT_NE(a, b);
  EXPECT_NE(a, std::string(32, '\0'));
  EXPECT_TRUE(ma::random_bytes(nullptr, 0));
  std::vector<unsigned char> big(1 << 20);
  ASSERT_TRUE(ma::random_bytes(big.data(), big.size()));
  std::size_t counts[256] = {};
  for (unsigned char c : big) ++counts[c];
  for (std::size_t c : counts) EXPECT_GT(c, 3000u);  // about 4096 each
}

// ---- WebSocket handshake (RFC 6455) --------------------------------------------------------

TEST(CryptoWebSocket, AcceptKeyFromRfc6455Section1_3) {
  EXPECT_EQ(ma::websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(CryptoWebSocket, KeyValidation) {
  EXPECT_TRUE(ma::valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_TRUE(ma::valid_websocket_key(ma::base64_encode(pattern(16, 3))));
  EXPECT_FALSE(ma::valid_websocket_key(""));
  EXPECT_FALSE(ma::valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ"));     // unpadded
  EXPECT_FALSE(ma::valid_websocket_key(" dGhlIHNhbXBsZSBub25jZQ=="));  // whitespace
  EXPECT_FALSE(ma::valid_websocket_key("dGhlIHNhbXBsZSBub25jZR=="));   // non-canonical
  EXPECT_FALSE(ma::valid_websocket_key("dGhlIHNhbXBsZSBub25j!Q=="));
  EXPECT_FALSE(ma::valid_websocket_key(ma::base64_encode(pattern(15, 3))));
  EXPECT_FALSE(ma::valid_websocket_key(ma::base64_encode(pattern(17, 3))));
  EXPECT_FALSE(ma::valid_websocket_key(ma::base64_encode(pattern(18, 3))));
}

// ---- UTF-8 (RFC 3629; cases in the style of Markus Kuhn's stress test) ------------------------

bool utf8_ok(std::string_view s) {
  ma::Utf8Validator v;
  return v.feed(s) && v.complete();
}

// An independent decoder for cross-checking: compute each code point, then
// apply RFC 3629's rules (shortest form, no surrogates, at most U+10FFFF).
bool reference_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    unsigned char b = static_cast<unsigned char>(s[i]);
    std::size_t len;
    std::uint32_t cp;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xe0) == 0xc0) {
      len = 2;
      cp = b & 0x1f;
    } else if ((b & 0xf0) == 0xe0) {
      len = 3;
      cp = b & 0x0f;
    } else if ((b & 0xf8) == 0xf0) {
      len = 4;
      cp = b & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      unsigned char c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    const std::uint32_t shortest[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < shortest[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return false;
    i += len;
  }
  return true;
}

const char* const kValidUtf8[] = {
    "",
    "plain ASCII text, long enough for the word-at-a-time path",
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",  // Greek "kosme"
    "\xc2\x80",                                      // U+0080, first two-byte
    "\xdf\xbf",                                      // U+07FF
    "\xe0\xa0\x80",                                  // U+0800, first three-byte
    "\xed\x9f\xbf",                                  // U+D7FF, before the surrogates
    "\xee\x80\x80",                                  // U+E000, after them
    "\xef\xbf\xbd",                                  // U+FFFD
    "\xef\xbf\xbf",                                  // U+FFFF
    "\xf0\x90\x80\x80",                              // U+10000, first four-byte
    "\xf4\x8f\xbf\xbf",                              // U+10FFFF, the last code point
    "\x7f\x00",
};

TEST(CryptoUtf8, ValidSequences) {
  for (const char* s : kValidUtf8) EXPECT_TRUE(utf8_ok(s)) << hex(s);
  EXPECT_TRUE(utf8_ok(std::string_view("a\0b", 3)));
}

TEST(CryptoUtf8, InvalidSequences) {
  const char* const invalid[] = {
      "\x80", "\xbf", "\x80\xbf",      // lone continuation bytes
      "\xc0\x80", "\xc1\xbf",          // overlong two-byte (NUL, U+007F)
      "\xe0\x80\xaf", "\xe0\x9f\xbf",  // overlong three-byte
      "\xf0\x80\x80\xaf", "\xf0\x8f\xbf\xbf",      // overlong four-byte
      "\xed\xa0\x80", "\xed\xbf\xbf",              // lone surrogates U+D800, U+DFFF
      "\xed\xa0\x80\xed\xb0\x80",                  // surrogate pair U+10000 in CESU form
      "\xf4\x90\x80\x80", "\xf7\xbf\xbf\xbf",      // above U+10FFFF
      "\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80",  // old 5- and 6-byte forms
      "\xfe", "\xff", "\xfe\xfe\xff\xff",
      "\xc2\x41", "\xe0\xa0\x41", "\xf0\x90\x80\x41",  // a non-continuation too early
      "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
  };
  for (const char* s : invalid) EXPECT_FALSE(utf8_ok(s)) << hex(s);
}

TEST(CryptoUtf8, TruncatedSequencesAreIncomplete) {
  for (const char* s : {"\xc2", "\xe0\xa0", "\xe1", "\xf0\x90\x80", "\xf4\x8f", "abc\xef\xbf"}) {
    ma::Utf8Validator v;
    EXPECT_TRUE(v.feed(s)) << hex(s);  // a continuation could still complete them
    EXPECT_FALSE(v.complete()) << hex(s);
  }
}

TEST(CryptoUtf8, FailsAtTheFirstImpossibleByte) {
  // RFC 6455 section 8.1: fail fast, before the rest of the message arrives.
  for (auto [head, bad] : {std::pair{"\xf4", "\x90"}, {"\xed", "\xa0"}, {"\xe0", "\x80"},
                           {"\xf0", "\x8f"}, {"\xc3", "("}, {"\xf1\x80", "\xc0"}}) {
    ma::Utf8Validator v;
    EXPECT_TRUE(v.feed(head)) << hex(head);
    EXPECT_FALSE(v.feed(bad)) << hex(head) << hex(bad);
    EXPECT_FALSE(v.complete());
    EXPECT_FALSE(v.feed("ok"));  // stays failed
    v.reset();
    EXPECT_TRUE(v.feed("ok"));
    EXPECT_TRUE(v.complete());
  }
}

TEST(CryptoUtf8, InvalidByteAtEveryOffsetOfAsciiRun) {
  for (std::size_t len = 1; len < 40; ++len)
    for (std::size_t pos = 0; pos < len; ++pos) {
      std::string s(len, 'x');
      s[pos] = '\x80';
      EXPECT_FALSE(utf8_ok(s)) << len << " " << pos;
      s[pos] = '\x7f';
      EXPECT_TRUE(utf8_ok(s)) << len << " " << pos;
    }
}

TEST(CryptoUtf8, SplitAtEveryByteBoundary) {
  std::string text = "ascii run longer than eight bytes ";
  for (const char* s : kValidUtf8) text += s;
  text += "\xe2\x82\xac and \xf0\x9d\x84\x9e end";  // EURO SIGN and MUSICAL SYMBOL G CLEF
  ASSERT_TRUE(reference_utf8(text));
  for (std::size_t i = 0; i <= text.size(); ++i)
    for (std::size_t j = i; j <= text.size(); ++j) {
      ma::Utf8Validator v;
      ASSERT_TRUE(v.feed(text.data(), i)) << i << " " << j;
      ASSERT_TRUE(v.feed(text.data() + i, j - i)) << i << " " << j;
      // The middle of a multi-byte character is never a place to end.
      EXPECT_EQ(v.complete(), j == text.size() || (static_cast<unsigned char>(text[j]) & 0xc0) != 0x80);
      ASSERT_TRUE(v.feed(text.data() + j, text.size() - j)) << i << " " << j;
      EXPECT_TRUE(v.complete());
    }
  ma::Utf8Validator bytewise;
  for (char c : text) ASSERT_TRUE(bytewise.feed(&c, 1));
  EXPECT_TRUE(bytewise.complete());
  std::string bad = text + "\xed\xa0\x80";
  for (std::size_t i = 0; i <= bad.size(); ++i) {
    ma::Utf8Validator v;
    bool ok = v.feed(bad.data(), i) && v.feed(bad.data() + i, bad.size() - i) && v.complete();
    EXPECT_FALSE(ok) << i;
  }
}

TEST(CryptoUtf8, AgreesWithReferenceOnAllShortStrings) {
  // Every string of one and two bytes, and every three-byte string that does
  // not start with ASCII (those reduce to the shorter cases).
  std::string s;
  for (int a = 0; a < 256; ++a) {
    s.assign(1, static_cast<char>(a));
    ASSERT_EQ(utf8_ok(s), reference_utf8(s)) << hex(s);
    for (int b = 0; b < 256; ++b) {
      s.assign({static_cast<char>(a), static_cast<char>(b)});
      ASSERT_EQ(utf8_ok(s), reference_utf8(s)) << hex(s);
      if (a < 0x80) continue;
      for (int c = 0; c < 256; ++c) {
        s.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
        ASSERT_EQ(utf8_ok(s), reference_utf8(s)) << hex(s);
      }
    }
  }
  // Four-byte strings around the interesting lead bytes.
  for (int a = 0xef; a <= 0xf8; ++a)
    for (int b = 0x70; b <= 0xc5; ++b)
      for (int c : {0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0})
        for (int d : {0x41, 0x80, 0xbf, 0xc0}) {
          s.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
                    static_cast<char>(d)});
          ASSERT_EQ(utf8_ok(s), reference_utf8(s)) << hex(s);
        }
}

// ---- JWT HS256 (RFC 7519, RFC 7515) ------------------------------------------------------------

const std::string kSecret = "correct horse battery staple";

// A token with any header and payload, correctly signed, for reaching the
// checks that come after the signature.
std::string sign_raw(std::string_view secret, std::string_view header_json,
                     std::string_view payload_json) {
  std::string input = ma::base64url_encode(header_json) + "." + ma::base64url_encode(payload_json);
  return input + "." + ma::base64url_encode(ma::as_bytes(ma::hmac_sha256(secret, input)));
}

std::string sign_segments(std::string_view secret, std::string_view header_b64,
                          std::string_view payload_b64) {
  std::string input = std::string(header_b64) + "." + std::string(payload_b64);
  return input + "." + ma::base64url_encode(ma::as_bytes(ma::hmac_sha256(secret, input)));
}

const char kHs256Header[] = R"({"alg":"HS256","typ":"JWT"})";

TEST(CryptoJwt, IssueAndVerify) {
  std::string token = ma::jwt_issue(kSecret, "alice", 1000, 3600);
  EXPECT_EQ(std::count(token.begin(), token.end(), '.'), 2);
  EXPECT_EQ(token.substr(0, token.find('.')), ma::base64url_encode(kHs256Header));
  auto r = ma::jwt_verify(kSecret, token, 2000);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.sub, "alice");
  EXPECT_EQ(r.iat, 1000);
  EXPECT_EQ(r.exp, 4600);
  EXPECT_TRUE(ma::jwt_verify(kSecret, token, 4599).ok);
  auto expired = ma::jwt_verify(kSecret, token, 4600);
  EXPECT_FALSE(expired.ok);
  EXPECT_EQ(expired.error, "token expired");
}

TEST(CryptoJwt, SubjectNeedingEscapes) {
  const std::string sub = "a\"b\\c\n\xce\xba/\x01";
  auto r = ma::jwt_verify(kSecret, ma::jwt_issue(kSecret, sub, 0, 60), 1);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.sub, sub);
}

TEST(CryptoJwt, SignWrapsPayload) {
  std::string token = ma::jwt_sign(kSecret, R"({"sub":"bob","exp":50})");
  auto payload = ma::base64url_decode(token.substr(token.find('.') + 1, token.rfind('.') - token.find('.') - 1));
  ASSERT_TRUE(payload);
  EXPECT_EQ(*payload, R"({"sub":"bob","exp":50})");
  auto r = ma::jwt_verify(kSecret, token, 49);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.sub, "bob");
  EXPECT_EQ(r.iat, 0);
}

TEST(CryptoJwt, Rfc7515AppendixA1) {
  const char token[] =
      "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
      ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
      ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  auto key = ma::base64url_decode(
      "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow");
  ASSERT_TRUE(key);
  ASSERT_EQ(key->size(), 64u);
  // exp is 1300819380 (March 2011): valid just before, expired today.
  auto before = ma::jwt_verify(*key, token, 1300819379);
  EXPECT_TRUE(before.ok) << before.error;
  EXPECT_EQ(before.exp, 1300819380);
  EXPECT_EQ(before.sub, "");
  auto now = ma::jwt_verify(*key, token, static_cast<std::int64_t>(std::time(nullptr)));
  EXPECT_FALSE(now.ok);
  EXPECT_EQ(now.error, "token expired");
  EXPECT_EQ(ma::jwt_verify("another key", token, 1300819379).error, "bad signature");
}

TEST(CryptoJwt, TamperedTokens) {
  std::string token = ma::jwt_issue(kSecret, "alice", 1000, 3600);
  std::size_t d1 = token.find('.'), d2 = token.rfind('.');
  std::string forged = token.substr(0, d1 + 1) +
                       ma::base64url_encode(R"({"sub":"admin","iat":1000,"exp":4600})") +
                       token.substr(d2);
  EXPECT_EQ(ma::jwt_verify(kSecret, forged, 2000).error, "bad signature");
  for (std::size_t i = d2 + 1; i < token.size(); ++i) {
    std::string flipped = token;
    flipped[i] = flipped[i] == 'A' ? 'B' : 'A';
    auto r = ma::jwt_verify(kSecret, flipped, 2000);
    EXPECT_FALSE(r.ok) << i;
    EXPECT_TRUE(r.error == "bad signature" || r.error == "bad base64url in signature") << r.error;
  }
  EXPECT_EQ(ma::jwt_verify(kSecret, token.substr(0, token.size() - 3), 2000).error, "bad signature");
  EXPECT_EQ(ma::jwt_verify(kSecret, token.substr(0, d2 + 1), 2000).error, "bad signature");
  EXPECT_EQ(ma::jwt_verify("wrong secret", token, 2000).error, "bad signature");
  EXPECT_EQ(ma::jwt_verify("", token, 2000).error, "no secret configured");
}

TEST(CryptoJwt, RefusesOtherAlgorithms) {
  const char payload[] = R"({"sub":"alice","exp":9999999999})";
  std::string none = ma::base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." +
                     ma::base64url_encode(payload) + ".";
  EXPECT_EQ(ma::jwt_verify(kSecret, none, 2000).error, "unsupported alg none");
  // Even correctly MACed, a header naming another algorithm is refused.
  EXPECT_EQ(ma::jwt_verify(kSecret, sign_raw(kSecret, R"({"alg":"none"})", payload), 2000).error,
            "unsupported alg none");
  EXPECT_EQ(ma::jwt_verify(kSecret, sign_raw(kSecret, R"({"alg":"HS512","typ":"JWT"})", payload), 2000).error,
            "unsupported alg HS512");
  EXPECT_EQ(ma::jwt_verify(kSecret, sign_raw(kSecret, R"({"alg":"hs256"})", payload), 2000).error,
            "unsupported alg hs256");
  EXPECT_EQ(ma::jwt_verify(kSecret, sign_raw(kSecret, R"({"typ":"JWT"})", payload), 2000).error,
            "missing alg");
  EXPECT_EQ(ma::jwt_verify(kSecret, sign_raw(kSecret, R"({"alg":256})", payload), 2000).error,
            "alg is not a string");
  // A name that is not a plain token is not echoed into the message.
  EXPECT_EQ(ma::jwt_verify(kSecret, sign_raw(kSecret, R"({"alg":"x\r\ny"})", payload), 2000).error,
            "unsupported alg");
  EXPECT_EQ(ma::jwt_verify(kSecret, sign_raw(kSecret, R"({"alg":"HS256","crit":["exp"]})", payload), 2000).error,
            "unsupported crit header");
  EXPECT_TRUE(ma::jwt_verify(kSecret, sign_raw(kSecret, R"({"alg":"HS256"})", payload), 2000).ok);
}

TEST(CryptoJwt, WrongNumberOfSegments) {
  std::string token = ma::jwt_issue(kSecret, "alice", 1000, 3600);
  std::string two = token.substr(0, token.rfind('.'));
  for (const std::string& bad : {std::string(), std::string("abc"), two, token + ".",
                                 token + ".xyz", std::string("a.b.c.d")})
    EXPECT_EQ(ma::jwt_verify(kSecret, bad, 2000).error, "token must have 3 segments") << bad;
  EXPECT_EQ(ma::jwt_verify(kSecret, "..", 2000).error, "header is not a JSON object");
}

TEST(CryptoJwt, BadBase64) {
  std::string token = ma::jwt_issue(kSecret, "alice", 1000, 3600);
  std::size_t d1 = token.find('.'), d2 = token.rfind('.');
  EXPECT_EQ(ma::jwt_verify(kSecret, "!" + token.substr(1), 2000).error, "bad base64url in header");
  EXPECT_EQ(ma::jwt_verify(kSecret, token.substr(0, d1) + "=" + token.substr(d1), 2000).error,
            "bad base64url in header");
  EXPECT_EQ(ma::jwt_verify(kSecret, token + "=", 2000).error, "bad base64url in signature");
  std::string payload_b64 = token.substr(d1 + 1, d2 - d1 - 1);
  EXPECT_EQ(ma::jwt_verify(kSecret, sign_segments(kSecret, token.substr(0, d1), payload_b64 + "*"), 2000).error,
            "bad base64url in payload");
  // "e30" is "{}"; "e31" differs only in bits that base64url leaves unused.
  EXPECT_EQ(ma::jwt_verify(kSecret, sign_segments(kSecret, token.substr(0, d1), "e31"), 2000).error,
            "bad base64url in payload");
  EXPECT_EQ(ma::jwt_verify(kSecret, sign_segments(kSecret, token.substr(0, d1), "e30"), 2000).error,
            "missing exp");
  EXPECT_TRUE(ma::jwt_verify(kSecret, sign_segments(kSecret, token.substr(0, d1), payload_b64), 2000).ok);
}

TEST(CryptoJwt, HeaderAndPayloadMustBeObjects) {
  const char payload[] = R"({"sub":"alice","exp":9999999999})";
  for (const char* header : {R"("HS256")", "[]", "not json", R"({"alg":"HS256"} x)", R"({"alg":"HS256")"})
    EXPECT_EQ(ma::jwt_verify(kSecret, sign_raw(kSecret, header, payload), 2000).error,
              "header is not a JSON object") << header;
  for (const char* body : {"[1,2]", "42", "null", R"("text")", "not json", R"({"exp":9999999999} {})", ""})
    EXPECT_EQ(ma::jwt_verify(kSecret, ma::jwt_sign(kSecret, body), 2000).error,
              "payload is not a JSON object") << body;
  EXPECT_TRUE(ma::jwt_verify(kSecret, ma::jwt_sign(kSecret, std::string(payload) + "\r\n"), 2000).ok);
}

TEST(CryptoJwt, ClaimTypes) {
  auto verify = [](const char* payload) { return ma::jwt_verify(kSecret, ma::jwt_sign(kSecret, payload), 2000); };
  EXPECT_EQ(verify(R"({"sub":42,"exp":9999})").error, "sub is not a string");
  EXPECT_EQ(verify(R"({"sub":null,"exp":9999})").error, "sub is not a string");
  EXPECT_EQ(verify(R"({"sub":"alice"})").error, "missing exp");
  EXPECT_EQ(verify(R"({"sub":"alice","exp":"9999"})").error, "exp is not a number");
  EXPECT_EQ(verify(R"({"sub":"alice","exp":null})").error, "exp is not a number");
  EXPECT_EQ(verify(R"({"sub":"alice","exp":1e400})").error, "payload is not a JSON object");
  EXPECT_EQ(verify(R"({"sub":"alice","exp":-1e300})").error, "exp is out of range");
  EXPECT_EQ(verify(R"({"sub":"alice","exp":9999,"iat":"1000"})").error, "iat is not a number");
  EXPECT_EQ(verify(R"({"sub":"alice","exp":9999,"nbf":3000})").error, "token not yet valid");
  EXPECT_EQ(verify(R"({"sub":"alice","exp":2000})").error, "token expired");
  EXPECT_EQ(verify(R"({"sub":"alice","exp":-5})").error, "token expired");
  auto fractional = verify(R"({"sub":"alice","exp":2000.5,"iat":1000.25,"nbf":2000})");
  EXPECT_TRUE(fractional.ok) << fractional.error;
  EXPECT_EQ(fractional.exp, 2000);
  EXPECT_EQ(fractional.iat, 1000);
}

TEST(CryptoJwt, RefusesHugeTokens) {
  std::string payload = R"({"sub":")" + std::string(5000, 'x') + R"(","exp":9999})";
  EXPECT_EQ(ma::jwt_verify(kSecret, ma::jwt_sign(kSecret, payload), 2000).error, "token too long");
}

TEST(CryptoJwt, IssueSaturatesExp) {
  // iat + ttl must not overflow; the result is then refused as out of range.
  auto r = ma::jwt_verify(kSecret, ma::jwt_issue(kSecret, "a", 1000, INT64_MAX), 2000);
  EXPECT_EQ(r.error, "exp is out of range");
  r = ma::jwt_verify(kSecret, ma::jwt_issue(kSecret, "a", INT64_MIN + 5, -100), 2000);
  EXPECT_EQ(r.error, "iat is out of range");
}

// ---- password hashes --------------------------------------------------------------------------

TEST(CryptoPassword, DefaultHashRoundTrip) {
  std::string encoded = ma::password_hash("hunter2");
  const std::string prefix = "pbkdf2-sha256$100000$";
  ASSERT_EQ(encoded.substr(0, prefix.size()), prefix) << encoded;
  std::size_t d = encoded.rfind('$');
  auto salt = ma::base64_decode(encoded.substr(prefix.size(), d - prefix.size()));
  auto hash = ma::base64_decode(encoded.substr(d + 1));
  ASSERT_TRUE(salt);
  ASSERT_TRUE(hash);
  EXPECT_EQ(salt->size(), 16u);
  EXPECT_EQ(*hash, ma::pbkdf2_hmac_sha256("hunter2", *salt, 100000, 32));
  EXPECT_TRUE(ma::password_verify("hunter2", encoded));
  EXPECT_FALSE(ma::password_verify("hunter3", encoded));
  EXPECT_FALSE(ma::password_verify("", encoded));
}

TEST(CryptoPassword, SaltsDiffer) {
  std::string a = ma::password_hash("same", 10), b = ma::password_hash("same", 10);
  EXPECT_NE(a, b);
  EXPECT_TRUE(ma::password_verify("same", a));
  EXPECT_TRUE(ma::password_verify("same", b));
  EXPECT_EQ(a.substr(0, 17), "pbkdf2-sha256$10$");
}

TEST(CryptoPassword, KnownAnswer) {
  // The PBKDF2 vector "password"/"salt"/4096 in this format.
  std::string encoded =
      "pbkdf2-sha256$4096$" + ma::base64_encode("salt") + "$" +
      ma::base64_encode(unhex("c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"));
  EXPECT_EQ(encoded, "pbkdf2-sha256$4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=");
  EXPECT_TRUE(ma::password_verify("password", encoded));
  EXPECT_FALSE(ma::password_verify("Password", encoded));
  EXPECT_TRUE(ma::password_verify(
      "password", "pbkdf2-sha256$04096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o="));
}

TEST(CryptoPassword, MalformedEncodings) {
  const char* const bad[] = {
      "",
      "hunter2",
      "pbkdf2-sha256",
      "pbkdf2-sha256$",
      "pbkdf2-sha256$4096$c2FsdA==",
      "pbkdf2-sha1$4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
      "PBKDF2-SHA256$4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
      "pbkdf2-sha256$4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=$",
      "pbkdf2-sha256$$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
      "pbkdf2-sha256$0$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
      "pbkdf2-sha256$-4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
      "pbkdf2-sha256$+4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
      "pbkdf2-sha256$ 4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
      "pbkdf2-sha256$4096x$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
      "pbkdf2-sha256$4e3$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
      "pbkdf2-sha256$10000001$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
      "pbkdf2-sha256$4294971392$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
      "pbkdf2-sha256$4096$$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
      "pbkdf2-sha256$4096$c2FsdA$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
      "pbkdf2-sha256$4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o",
      "pbkdf2-sha256$4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6AB!k4RpJY4c6qYE0o=",
      "pbkdf2-sha256$4096$c2FsdA==$xeR41ZKIyEGq",  // 9-byte hash: too short to mean anything
      "pbkdf2-sha256$4096$c2FsdA==$",
  };
  for (const char* encoded : bad) EXPECT_FALSE(ma::password_verify("password", encoded)) << encoded;
}

// Encodings whose hash matches but whose parameters are outside what we accept.
TEST(CryptoPassword, RefusesOutOfRangeParameters) {
  auto encode = [](std::string_view salt, std::uint32_t iterations) {
    return "pbkdf2-sha256$" + std::to_string(iterations) + "$" + ma::base64_encode(salt) + "$" +
           ma::base64_encode(ma::pbkdf2_hmac_sha256("pw", salt, iterations, 32));
  };
  EXPECT_TRUE(ma::password_verify("pw", encode("s", 3)));
  EXPECT_FALSE(ma::password_verify("pw", encode("", 3)));
  EXPECT_TRUE(ma::password_verify("pw", encode(std::string(256, 's'), 3)));
  EXPECT_FALSE(ma::password_verify("pw", encode(std::string(257, 's'), 3)));
  // An iteration count above the limit is refused before any work is done
  // (deriving 10000001 iterations would take seconds).
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(ma::password_verify(
      "password", "pbkdf2-sha256$10000001$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o="));
  EXPECT_FALSE(ma::password_verify(
      "password", "pbkdf2-sha256$99999999$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o="));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
}

TEST(CryptoPassword, IterationRange) {
  EXPECT_EQ(ma::password_hash("x", 0), "");
  EXPECT_EQ(ma::password_hash("x", -1), "");
  EXPECT_EQ(ma::password_hash("x", 10000001), "");
  std::string one = ma::password_hash("x", 1);
  EXPECT_EQ(one.substr(0, 16), "pbkdf2-sha256$1$");
  EXPECT_TRUE(ma::password_verify("x", one));
}

}  // namespace
