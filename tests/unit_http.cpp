// Unit tests of the HTTP/1.1 request parser (RFC 9112) and response
// serializer: every request is also replayed as a growing prefix, the way the
// event loop calls the parser while bytes arrive, and every limit is probed.
#include "metrics_agent.hpp"

#include <gtest/gtest.h>
#include <picojson.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace metrics_agent;
using namespace metrics_agent::detail;

namespace {

using Status = HttpParseResult::Status;

// Parses from an allocation of exactly buf's bytes, so that a sanitizer sees
// any read past them.
HttpParseResult parse(std::string_view buf, HttpRequest& req, const HttpLimits& limits = {}) {
  std::unique_ptr<char[]> exact(new char[buf.size()]);
  if (!buf.empty()) std::memcpy(exact.get(), buf.data(), buf.size());
  return parse_http_request(std::string_view(exact.get(), buf.size()), req, limits);
}

// The first verdict other than Incomplete when `raw` arrives one byte at a
// time (the parser sees the growing prefix); `at` is the prefix length.
struct Verdict {
  Status status = HttpParseResult::Incomplete;
  int error_status = 0;
  std::size_t at = 0;
  std::size_t consumed = 0;
};

Verdict first_verdict(const std::string& raw, const HttpLimits& limits = {}) {
  Verdict v;
  for (std::size_t k = 0; k <= raw.size(); ++k) {
    HttpRequest req;
    HttpParseResult r = parse(std::string_view(raw).substr(0, k), req, limits);
    if (r.status != HttpParseResult::Incomplete) {
      v.status = r.status;
      v.error_status = r.error_status;
      v.at = k;
      v.consumed = r.consumed;
      return v;
    }
  }
  v.at = raw.size();
  return v;
}

void expect_same_request(const HttpRequest& a, const HttpRequest& b) {
  EXPECT_EQ(a.method, b.method);
  EXPECT_EQ(a.target, b.target);
  EXPECT_EQ(a.path, b.path);
  EXPECT_EQ(a.query, b.query);
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.headers, b.headers);
  EXPECT_EQ(a.body, b.body);
  EXPECT_EQ(a.keep_alive, b.keep_alive);
}

// Re-chunking (every split point): each proper prefix is Incomplete, the whole
// request parses to the same result as in one piece, and bytes of a following
// request are left alone.
void expect_rechunks(const std::string& raw, const HttpLimits& limits = {}) {
  SCOPED_TRACE(testing::Message() << "request: " << testing::PrintToString(raw));
  HttpRequest whole;
  HttpParseResult r = parse(raw, whole, limits);
  ASSERT_EQ(r.status, HttpParseResult::Complete) << r.error;
  EXPECT_EQ(r.consumed, raw.size());
  for (std::size_t k = 0; k < raw.size(); ++k) {
    HttpRequest req;
    HttpParseResult p = parse(std::string_view(raw).substr(0, k), req, limits);
    ASSERT_EQ(p.status, HttpParseResult::Incomplete)
        << "prefix of " << k << " bytes: " << p.error_status << " " << p.error;
  }
  HttpRequest again;
  r = parse(raw + "GET /next HTTP/1.1\r\nHost: x\r\n\r\n", again, limits);
  ASSERT_EQ(r.status, HttpParseResult::Complete);
  EXPECT_EQ(r.consumed, raw.size());
  expect_same_request(whole, again);
}

void expect_error(const std::string& raw, int status, const HttpLimits& limits = {}) {
  SCOPED_TRACE(testing::Message() << "request: " << testing::PrintToString(raw));
  HttpRequest req;
  HttpParseResult r = parse(raw, req, limits);
  EXPECT_EQ(r.status, HttpParseResult::Error);
  EXPECT_EQ(r.error_status, status) << r.error;
  EXPECT_FALSE(r.error.empty());
  // Arriving byte by byte, it fails with the same status, at the latest when
  // the whole request is there.
  Verdict v = first_verdict(raw, limits);
  EXPECT_EQ(v.status, HttpParseResult::Error);
  EXPECT_EQ(v.error_status, status);
}

const std::string kHost = "Host: 127.0.0.1:54112\r\n";

std::string header_block(std::size_t count) {
  std::string h;
  for (std::size_t i = 0; i < count; ++i) h += "X-H" + std::to_string(i) + ": v\r\n";
  return h;
}

// A GET request whose head (request line through the final CRLF CRLF) is
// exactly `total` bytes long.
std::string request_with_head_size(std::size_t total) {
  std::string start = "GET / HTTP/1.1\r\n" + kHost + "X-Pad: ";
  std::string end = "\r\n\r\n";
  std::size_t pad = total - start.size() - end.size();
  return start + std::string(pad, 'a') + end;
}

}  // namespace

// ---- well-formed requests -----------------------------------------------------

TEST(HttpParser, SimpleGet) {
  std::string raw = "GET /health HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test/1.0\r\n\r\n";
  HttpRequest req;
  HttpParseResult r = parse(raw, req);
  ASSERT_EQ(r.status, HttpParseResult::Complete) << r.error;
  EXPECT_EQ(r.consumed, raw.size());
  EXPECT_EQ(r.error_status, 0);
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.target, "/health");
  EXPECT_EQ(req.path, "/health");
  EXPECT_EQ(req.query, "");
  EXPECT_EQ(req.version, "HTTP/1.1");
  ASSERT_EQ(req.headers.size(), 2u);
  EXPECT_EQ(req.headers[0], (std::pair<std::string, std::string>("host", "localhost")));
  EXPECT_EQ(req.headers[1], (std::pair<std::string, std::string>("user-agent", "test/1.0")));
  EXPECT_EQ(req.body, "");
  EXPECT_TRUE(req.keep_alive);
  EXPECT_EQ(req.header("content-length"), nullptr);
}

TEST(HttpParser, BareLineFeedsAccepted) {
  // RFC 9112 section 2.2: a recipient may take a lone LF as a line terminator.
  std::string raw = "GET /a HTTP/1.1\nHost: x\n\n";
  HttpRequest req;
  HttpParseResult r = parse(raw, req);
  ASSERT_EQ(r.status, HttpParseResult::Complete) << r.error;
  EXPECT_EQ(r.consumed, raw.size());
  EXPECT_EQ(req.path, "/a");
  ASSERT_NE(req.header("host"), nullptr);
  EXPECT_EQ(*req.header("host"), "x");
}

TEST(HttpParser, HeaderNamesAreCaseInsensitive) {
  std::string raw =
      "GET / HTTP/1.1\r\nhOsT: Example.COM\r\nX-Custom-HEADER:   Value With  Spaces \t\r\n"
      "CONTENT-LENGTH: 0\r\nSec-WebSocket-Key:dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  HttpRequest req;
  HttpParseResult r = parse(raw, req);
  ASSERT_EQ(r.status, HttpParseResult::Complete) << r.error;
  for (const auto& h : req.headers)
    for (char c : h.first) EXPECT_FALSE(c >= 'A' && c <= 'Z') << h.first;
  ASSERT_NE(req.header("host"), nullptr);
  EXPECT_EQ(*req.header("host"), "Example.COM");  // values keep their case
  ASSERT_NE(req.header("x-custom-header"), nullptr);
  EXPECT_EQ(*req.header("x-custom-header"), "Value With  Spaces");  // OWS trimmed, inner kept
  ASSERT_NE(req.header("sec-websocket-key"), nullptr);
  EXPECT_EQ(*req.header("sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(req.header("Host"), nullptr);  // lookups take lower-case names
  // Connection tokens are case-insensitive too.
  HttpRequest c;
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\nCONNECTION: Close\r\n\r\n", c).status,
            HttpParseResult::Complete);
  EXPECT_FALSE(c.keep_alive);
}

TEST(HttpParser, QuerySplitFromPath) {
  HttpRequest req;
  std::string raw = "GET /api/metrics/cpu?seconds=60&x=a%20b+c&flag HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(parse(raw, req).status, HttpParseResult::Complete);
  EXPECT_EQ(req.target, "/api/metrics/cpu?seconds=60&x=a%20b+c&flag");
  EXPECT_EQ(req.path, "/api/metrics/cpu");
  EXPECT_EQ(req.query, "seconds=60&x=a%20b+c&flag");
  EXPECT_EQ(req.param("seconds"), "60");
  EXPECT_EQ(req.param("x"), "a b c");
  EXPECT_TRUE(req.has_param("flag"));
  EXPECT_EQ(req.param("flag", "fallback"), "");
  EXPECT_FALSE(req.has_param("missing"));
  EXPECT_EQ(req.param("missing", "fallback"), "fallback");

  HttpRequest empty_query;
  ASSERT_EQ(parse("GET /path? HTTP/1.1\r\nHost: x\r\n\r\n", empty_query).status, HttpParseResult::Complete);
  EXPECT_EQ(empty_query.path, "/path");
  EXPECT_EQ(empty_query.query, "");

  HttpRequest two_marks;
  ASSERT_EQ(parse("GET /p?a=1?b HTTP/1.1\r\nHost: x\r\n\r\n", two_marks).status, HttpParseResult::Complete);
  EXPECT_EQ(two_marks.path, "/p");
  EXPECT_EQ(two_marks.query, "a=1?b");
  EXPECT_EQ(two_marks.param("a"), "1?b");

  HttpRequest star;
  ASSERT_EQ(parse("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", star).status, HttpParseResult::Complete);
  EXPECT_EQ(star.path, "*");
}

TEST(HttpText, PercentDecode) {
  EXPECT_EQ(percent_decode(""), "");
  EXPECT_EQ(percent_decode("plain"), "plain");
  EXPECT_EQ(percent_decode("%41%62%7e"), "Ab~");
  EXPECT_EQ(percent_decode("%2B+%20"), "+  ");
  EXPECT_EQ(percent_decode("a%2Cb%2cc"), "a,b,c");
  EXPECT_EQ(percent_decode("%00"), std::string(1, '\0'));
  EXPECT_EQ(percent_decode("%C3%A9"), "\xC3\xA9");
  // Malformed escapes pass through unchanged.
  EXPECT_EQ(percent_decode("%zz"), "%zz");
  EXPECT_EQ(percent_decode("%4"), "%4");
  EXPECT_EQ(percent_decode("%"), "%");
  EXPECT_EQ(percent_decode("100%"), "100%");
  EXPECT_EQ(percent_decode("%%41"), "%A");
}

TEST(HttpText, QueryLookup) {
  std::string v = "untouched";
  EXPECT_FALSE(query_lookup("", "a", &v));
  EXPECT_EQ(v, "untouched");
  EXPECT_TRUE(query_lookup("a=1&b=2", "b", &v));
  EXPECT_EQ(v, "2");
  EXPECT_TRUE(query_lookup("a=1&b=2", "a", &v));
  EXPECT_EQ(v, "1");
  EXPECT_FALSE(query_lookup("a=1&b=2", "c", &v));
  EXPECT_FALSE(query_lookup("ab=1", "a", &v));  // whole keys only
  EXPECT_TRUE(query_lookup("a=1&a=2", "a", &v));
  EXPECT_EQ(v, "1");  // the first of duplicates
  EXPECT_TRUE(query_lookup("&&flag&&x=", "flag", &v));
  EXPECT_EQ(v, "");
  EXPECT_TRUE(query_lookup("&&flag&&x=", "x", &v));
  EXPECT_EQ(v, "");
  EXPECT_TRUE(query_lookup("my%20key=a%3Db&z=1", "my key", &v));
  EXPECT_EQ(v, "a=b");  // '=' inside an encoded value
  EXPECT_TRUE(query_lookup("metrics=cpu,memory&token=x.y.z", "metrics", nullptr));
  EXPECT_TRUE(query_lookup("k=a=b", "k", &v));
  EXPECT_EQ(v, "a=b");  // only the first '=' separates
}

TEST(HttpParser, KeepAliveRules) {
  struct Case {
    const char* version;
    const char* connection;  // nullptr: no Connection header
    bool keep_alive;
  } cases[] = {
      {"HTTP/1.1", nullptr, true},
      {"HTTP/1.1", "close", false},
      {"HTTP/1.1", "Close", false},
      {"HTTP/1.1", "keep-alive", true},
      {"HTTP/1.1", "Upgrade", true},
      {"HTTP/1.1", "keep-alive, close", false},
      {"HTTP/1.1", "Upgrade ,  close", false},
      {"HTTP/1.1", "closed", true},  // tokens, not substrings
      {"HTTP/1.0", nullptr, false},
      {"HTTP/1.0", "keep-alive", true},
      {"HTTP/1.0", "Keep-Alive", true},
      {"HTTP/1.0", "close", false},
      {"HTTP/1.0", "te, keep-alive", true},
  };
  for (const auto& c : cases) {
    std::string raw = std::string("GET / ") + c.version + "\r\nHost: x\r\n";
    if (c.connection) raw += std::string("Connection: ") + c.connection + "\r\n";
    raw += "\r\n";
    HttpRequest req;
    HttpParseResult r = parse(raw, req);
    ASSERT_EQ(r.status, HttpParseResult::Complete) << raw;
    EXPECT_EQ(req.keep_alive, c.keep_alive) << raw;
  }
  // HTTP/1.0 needs no Host header.
  HttpRequest req;
  ASSERT_EQ(parse("GET / HTTP/1.0\r\n\r\n", req).status, HttpParseResult::Complete);
  EXPECT_EQ(req.version, "HTTP/1.0");
  EXPECT_FALSE(req.keep_alive);
}

TEST(HttpParser, PipelinedRequests) {
  std::string a = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string b = "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{\"a\":\"b\",\"c\"}";
  std::string c = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  std::string all = a + b + c;
  std::string_view rest = all;
  std::vector<HttpRequest> got;
  while (!rest.empty()) {
    HttpRequest req;
    HttpParseResult r = parse(rest, req);
    ASSERT_EQ(r.status, HttpParseResult::Complete) << r.error;
    ASSERT_GT(r.consumed, 0u);
    rest.remove_prefix(r.consumed);
    got.push_back(req);
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].path, "/health");
  EXPECT_EQ(got[1].method, "POST");
  EXPECT_EQ(got[1].body, "{\"a\":\"b\",\"c\"}");
  EXPECT_EQ(got[2].path, "/metrics");
  EXPECT_FALSE(got[2].keep_alive);

  // The consumed counts are exactly the requests' lengths.
  HttpRequest req;
  EXPECT_EQ(parse(all, req).consumed, a.size());
  EXPECT_EQ(parse(std::string_view(all).substr(a.size()), req).consumed, b.size());
  // A pipelined request cut short leaves the earlier ones parseable.
  std::string cut = a + b.substr(0, 20);
  HttpParseResult r = parse(cut, req);
  ASSERT_EQ(r.status, HttpParseResult::Complete);
  EXPECT_EQ(r.consumed, a.size());
  EXPECT_EQ(parse(std::string_view(cut).substr(r.consumed), req).status, HttpParseResult::Incomplete);
}

TEST(HttpParser, ContentLengthBodyArrivesInPieces) {
  std::string body = "{\"level\":\"info\",\"message\":\"hi\"}";
  std::string head = "POST /api/ws/broadcast/alert HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n";
  HttpRequest req;
  for (std::size_t k = 0; k < body.size(); ++k) {
    HttpParseResult r = parse(head + body.substr(0, k), req);
    EXPECT_EQ(r.status, HttpParseResult::Incomplete) << k;
  }
  HttpParseResult r = parse(head + body + "TRAILING", req);
  ASSERT_EQ(r.status, HttpParseResult::Complete);
  EXPECT_EQ(r.consumed, head.size() + body.size());
  EXPECT_EQ(req.body, body);
  // A body may contain anything, CR LF CR LF included.
  std::string odd = std::string("\r\n\r\n\0\xff", 6);
  HttpRequest o;
  r = parse("PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n" + odd, o);
  ASSERT_EQ(r.status, HttpParseResult::Complete);
  EXPECT_EQ(o.body, odd);
}

TEST(HttpParser, ContentLengthVariants) {
  HttpRequest req;
  HttpParseResult r = parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", req);
  ASSERT_EQ(r.status, HttpParseResult::Complete);
  EXPECT_EQ(req.body, "");
  // The same length twice is no conflict (RFC 9112 section 6.3 item 5).
  r = parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc", req);
  ASSERT_EQ(r.status, HttpParseResult::Complete) << r.error;
  EXPECT_EQ(req.body, "abc");
  r = parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length:  3  \r\n\r\nabc", req);
  ASSERT_EQ(r.status, HttpParseResult::Complete) << r.error;
  EXPECT_EQ(req.body, "abc");
}

TEST(HttpParser, LeadingEmptyLinesIgnored) {
  std::string raw = "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
  HttpRequest req;
  HttpParseResult r = parse(raw, req);
  ASSERT_EQ(r.status, HttpParseResult::Complete) << r.error;
  EXPECT_EQ(r.consumed, raw.size());
  EXPECT_EQ(req.path, "/");
}

TEST(HttpRechunk, EveryValidRequestAtEverySplit) {
  const std::string requests[] = {
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /api/system/metrics?interval=5&metrics=cpu,memory HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n",
      "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: 40\r\n\r\n{\"username\":\"admin\",\"password\":\"s3cr3t\"}",
      "GET /health HTTP/1.0\r\n\r\n",
      "\r\nGET /lf HTTP/1.1\nHost: x\n\n",
      "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      "DELETE /a%20b?c=%26 HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n",
      "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n\r\n\r\n\r\n\r\n",
      "GET /" + std::string(3000, 'p') + " HTTP/1.1\r\nHost: x\r\n" + header_block(99) + "\r\n",
  };
  for (const auto& raw : requests) expect_rechunks(raw);
}

// ---- limits ------------------------------------------------------------------------

TEST(HttpLimit, HeadOverLimitIs431) {
  std::string big = "GET / HTTP/1.1\r\n" + kHost + "X-Big: " + std::string(9000, 'a') + "\r\n\r\n";
  expect_error(big, 431);
  // Also while the head has not ended yet: no CR LF CR LF at all.
  std::string endless = "GET / HTTP/1.1\r\n" + kHost + "X-Big: " + std::string(9000, 'a');
  HttpRequest req;
  HttpParseResult r = parse(endless, req);
  EXPECT_EQ(r.status, HttpParseResult::Error);
  EXPECT_EQ(r.error_status, 431);
  Verdict v = first_verdict(endless);
  EXPECT_EQ(v.status, HttpParseResult::Error);
  EXPECT_EQ(v.error_status, 431);
  EXPECT_LE(v.at, std::size_t(METRICS_AGENT_MAX_HEADER_BYTES) + 4) << "refused only after " << v.at << " bytes";
  // An endless request line too.
  v = first_verdict("GET /" + std::string(9000, 'u'));
  EXPECT_EQ(v.error_status, 431);
  EXPECT_LE(v.at, std::size_t(METRICS_AGENT_MAX_HEADER_BYTES) + 4);
}

TEST(HttpLimit, HeadWithinLimitAccepted) {
  std::string raw = request_with_head_size(METRICS_AGENT_MAX_HEADER_BYTES);
  ASSERT_EQ(raw.size(), std::size_t(METRICS_AGENT_MAX_HEADER_BYTES));
  expect_rechunks(raw);
  expect_rechunks(request_with_head_size(METRICS_AGENT_MAX_HEADER_BYTES - 100));
}

// Whatever the exact boundary, a head accepted in one piece must not be
// refused while it is still arriving, and a refused one must be refused
// however it arrives.
TEST(HttpLimit, HeadLimitSameWhateverTheChunking) {
  const std::size_t limit = METRICS_AGENT_MAX_HEADER_BYTES;
  for (std::size_t total = limit - 4; total <= limit + 8; ++total) {
    std::string raw = request_with_head_size(total);
    HttpRequest req;
    HttpParseResult whole = parse(raw, req);
    ASSERT_NE(whole.status, HttpParseResult::Incomplete);
    for (std::size_t k = raw.size() - 64; k < raw.size(); ++k) {
      HttpParseResult p = parse(std::string_view(raw).substr(0, k), req);
      if (whole.status == HttpParseResult::Complete) {
        EXPECT_EQ(p.status, HttpParseResult::Incomplete)
            << "a head of " << total << " bytes is accepted whole but its first " << k
            << " bytes are answered " << p.error_status << " (" << p.error << ")";
      } else if (p.status == HttpParseResult::Error) {
        EXPECT_EQ(p.error_status, 431);
      }
    }
    if (total > limit + 4) {
      EXPECT_EQ(whole.error_status, 431) << total;
    }
  }
}

// The loop hands the parser whatever has arrived, so a stream must get the
// same answer however it is cut: every prefix is either still incomplete or
// already answered exactly as the whole stream is.
void expect_verdict_independent_of_chunking(const std::string& raw, const HttpLimits& limits) {
  SCOPED_TRACE(testing::Message() << "stream: " << testing::PrintToString(raw));
  HttpRequest req;
  HttpParseResult whole = parse(raw, req, limits);
  ASSERT_NE(whole.status, HttpParseResult::Incomplete);
  for (std::size_t k = 0; k < raw.size(); ++k) {
    HttpParseResult p = parse(std::string_view(raw).substr(0, k), req, limits);
    if (p.status == HttpParseResult::Incomplete) continue;
    ASSERT_EQ(p.status, whole.status) << "first " << k << " bytes";
    ASSERT_EQ(p.error_status, whole.error_status)
        << "the first " << k << " bytes are answered " << p.error_status << " (" << p.error
        << "), the whole stream " << whole.error_status << " (" << whole.error << ")";
  }
}

TEST(HttpLimit, VerdictIndependentOfChunking) {
  HttpLimits small;
  small.max_header_bytes = 64;
  const std::size_t limit = small.max_header_bytes;
  std::vector<std::string> streams;
  // A bad byte at every position around the limit, in the target, in the
  // version, in a header name and in a header value, with and without an end
  // of the head after it.
  const std::string bad_bytes[] = {std::string(1, '\x01'), std::string(1, '\0'), "\r", " ", "\x7f"};
  for (const auto& b : bad_bytes) {
    for (std::size_t at = 1; at <= limit + 8; ++at) {
      std::string target = "GET /" + std::string(limit + 16, 'a');
      target[std::min(at + 4, target.size() - 1)] = b[0];
      streams.push_back(target);
      streams.push_back(target + " HTTP/1.1\r\nHost: x\r\n\r\n");
      std::string value = "GET / HTTP/1.1\r\nHost: x\r\nX-V: " + std::string(limit + 16, 'v');
      std::size_t pos = std::min<std::size_t>(at, value.size() - 1);
      if (pos > 16) value[pos] = b[0];
      streams.push_back(value + "\r\n\r\n");
      std::string head = "GET / HTTP/1.1\r\nHost: x\r\n" + std::string(limit + 16, 'N') + ": v\r\n\r\n";
      pos = std::min<std::size_t>(at + 24, head.size() - 1);
      head[pos] = b[0];
      streams.push_back(head);
    }
  }
  // Malformed early, then long; long, then a bad version after the limit.
  streams.push_back("G\x01T /" + std::string(limit * 2, 'a'));
  streams.push_back("GET /" + std::string(limit * 2, 'a') + " HTTX/1.1\r\nHost: x\r\n\r\n");
  streams.push_back("GET /" + std::string(limit - 10, 'a') + " HTTP/1.1 junk" + std::string(limit, 'j'));
  streams.push_back(std::string(70, '\n') + "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  streams.push_back(std::string(limit + 4, '\r'));
  streams.push_back("GET / HTTP/1.1\r\nHost: x\r\nX-A: b\rc\r\n" + std::string(limit, 'z') + "\r\n\r\n");
  for (const auto& raw : streams) expect_verdict_independent_of_chunking(raw, small);
  // The same at the default limit, where the request line is the long part.
  const std::size_t big = METRICS_AGENT_MAX_HEADER_BYTES;
  for (std::size_t at : {big - 8, big - 1, big, big + 1, big + 100}) {
    std::string raw = "GET /" + std::string(big + 200, 'u');
    raw[at] = '\x01';
    expect_verdict_independent_of_chunking(raw, HttpLimits());
  }
}

TEST(HttpLimit, CustomHeaderLimit) {
  HttpLimits small;
  small.max_header_bytes = 64;
  std::string ok = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  HttpRequest req;
  EXPECT_EQ(parse(ok, req, small).status, HttpParseResult::Complete);
  expect_error("GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + std::string(60, 'z') + "\r\n\r\n", 431, small);
}

TEST(HttpLimit, TooManyHeadersIs431) {
  std::string hundred = "GET / HTTP/1.1\r\nHost: x\r\n" + header_block(99) + "\r\n";
  HttpRequest req;
  HttpParseResult r = parse(hundred, req);
  ASSERT_EQ(r.status, HttpParseResult::Complete) << r.error;
  EXPECT_EQ(req.headers.size(), 100u);
  expect_error("GET / HTTP/1.1\r\nHost: x\r\n" + header_block(100) + "\r\n", 431);
  expect_error("GET / HTTP/1.1\r\nHost: x\r\n" + header_block(500) + "\r\n", 431);
  HttpLimits few;
  few.max_headers = 2;
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n", req, few).status, HttpParseResult::Complete);
  expect_error("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n", 431, few);
}

TEST(HttpLimit, BodyOverLimitIs413FromTheHeadAlone) {
  const std::size_t max = METRICS_AGENT_MAX_BODY_BYTES;
  std::string head = "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(max + 1) +
                     "\r\n\r\n";
  // Decided before any byte of the body arrives.
  HttpRequest req;
  HttpParseResult r = parse(head, req);
  EXPECT_EQ(r.status, HttpParseResult::Error);
  EXPECT_EQ(r.error_status, 413);
  Verdict v = first_verdict(head);
  EXPECT_EQ(v.error_status, 413);
  EXPECT_EQ(v.at, head.size());
  expect_error("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n", 413);
  // Exactly the limit is fine.
  std::string at_limit = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(max) + "\r\n\r\n" +
                         std::string(max, 'b');
  r = parse(at_limit, req);
  ASSERT_EQ(r.status, HttpParseResult::Complete) << r.error;
  EXPECT_EQ(req.body.size(), max);
  HttpLimits small;
  small.max_body_bytes = 10;
  expect_error("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", 413, small);
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789", req, small).status,
            HttpParseResult::Complete);
}

TEST(HttpLimit, ChunkedBodiesAre501) {
  expect_error("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501);
  expect_error("POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n", 501);
}

TEST(HttpLimit, OtherVersionsAre505) {
  expect_error("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505);
  expect_error("GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505);
  expect_error("GET / HTTP/3\r\nHost: x\r\n\r\n", 505);
  expect_error("GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505);
}

// ---- malformed requests ---------------------------------------------------------------

TEST(HttpMalformed, RequestLines) {
  const std::string bad[] = {
      "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",          // two spaces
      "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",          // trailing space
      "GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",     // a fourth part
      "GET /\r\nHost: x\r\n\r\n",                    // no version
      "GET\r\nHost: x\r\n\r\n",                      // method only
      " GET / HTTP/1.1\r\nHost: x\r\n\r\n",          // leading space
      "G@T / HTTP/1.1\r\nHost: x\r\n\r\n",           // not a token
      "GET foo HTTP/1.1\r\nHost: x\r\n\r\n",         // not origin-form
      "GET /a\x01z HTTP/1.1\r\nHost: x\r\n\r\n",     // control byte in target
      "GET /a\x7fz HTTP/1.1\r\nHost: x\r\n\r\n",     // DEL in target
      "GET / http/1.1\r\nHost: x\r\n\r\n",           // version is case-sensitive
      "GET / HTTX/1.1\r\nHost: x\r\n\r\n",
      "GET / 1.1\r\nHost: x\r\n\r\n",
      "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n",
  };
  for (const auto& raw : bad) expect_error(raw, 400);
}

TEST(HttpMalformed, HeaderFields) {
  const std::string bad[] = {
      "GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",                 // space before the colon (RFC 9112 section 5.1)
      "GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nBad\x01Name: v\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n",  // obs-fold (RFC 9112 section 5.2)
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tfolded\r\n\r\n",
  };
  for (const auto& raw : bad) expect_error(raw, 400);
}

// RFC 9110 section 5.5: field values are visible characters, obs-text, SP and
// HTAB. A bare CR, a NUL or another control byte is refused.
TEST(HttpMalformed, ControlBytesInHeaderValues) {
  for (int c = 0; c < 0x20; ++c) {
    if (c == '\t' || c == '\n') continue;
    std::string raw = "GET / HTTP/1.1\r\nHost: x\r\nX-A: a" + std::string(1, char(c)) + "b\r\n\r\n";
    expect_error(raw, 400);
  }
  expect_error("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f" "b\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: x\r\nX-A: ab\r\r\n\r\n", 400);  // CR before CR LF
  expect_error("GET / HTTP/1.1\r\nHost: x" + std::string(1, '\0') + "y\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: x\r\nX-A: \rb\r\n\r\n", 400);
  // Tabs, spaces and obs-text remain acceptable.
  HttpRequest req;
  HttpParseResult r = parse("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\tb c\xe9\x80\xff\r\n\r\n", req);
  ASSERT_EQ(r.status, HttpParseResult::Complete) << r.error;
  ASSERT_NE(req.header("x-a"), nullptr);
  EXPECT_EQ(*req.header("x-a"), "a\tb c\xe9\x80\xff");
}

TEST(HttpMalformed, ContentLength) {
  expect_error("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400);
  expect_error("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400);
  expect_error("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400);
  expect_error("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", 400);
  expect_error("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400);
  expect_error("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\n", 400);
  expect_error("POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400);
  expect_error("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400);
}

TEST(HttpMalformed, MissingHostIn11) {
  expect_error("GET / HTTP/1.1\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHostname: x\r\n\r\n", 400);
  HttpRequest req;
  HttpParseResult r = parse("GET / HTTP/1.1\r\n\r\n", req);
  EXPECT_NE(r.error.find("Host"), std::string::npos) << r.error;
}

TEST(HttpMalformed, GarbageRejectedQuickly) {
  // Things that reach an HTTP port by mistake: a TLS ClientHello, an SSH
  // banner, binary noise. Each is refused within a few bytes, long before
  // 8 KiB, so it never holds a connection slot until the limit.
  const std::string garbage[] = {
      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + std::string(9000, '\x42'),
      std::string("\0\0\0\0", 4) + std::string(9000, '\0'),
      "\xff\xfe\xfd" + std::string(9000, '\x80'),
      "PRI\x01 * HTTP/2.0" + std::string(9000, 'y'),
  };
  for (const auto& raw : garbage) {
    Verdict v = first_verdict(raw);
    EXPECT_EQ(v.status, HttpParseResult::Error) << testing::PrintToString(raw.substr(0, 16));
    EXPECT_EQ(v.error_status, 400) << testing::PrintToString(raw.substr(0, 16));
    EXPECT_LE(v.at, 64u) << testing::PrintToString(raw.substr(0, 16));
  }
}

// A request line is "token SP target SP HTTP/1.x" (RFC 9112 section 3): a
// byte that cannot belong to it shows the stream is not HTTP as soon as it
// arrives, wherever it is, and so does a first line that is not one.
TEST(HttpMalformed, GarbageInsideRequestLineRejectedBefore8KiB) {
  const std::string garbage[] = {
      "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",          // a client waiting for our banner
      " \x01\x02\x03" + std::string(9000, '\x01'),     // leading space, then binary
      "GET \x01\x02\x03" + std::string(9000, '\x02'),  // binary target
      "GET /" + std::string(9000, '\0'),               // NULs in the target
      "GET / \xff\xfe" + std::string(9000, '\xff'),    // binary version
  };
  for (const auto& raw : garbage) {
    Verdict v = first_verdict(raw);
    EXPECT_EQ(v.error_status, 400) << testing::PrintToString(raw.substr(0, 8))
                                   << (v.status == HttpParseResult::Incomplete ? " still incomplete" : " answered ")
                                   << (v.status == HttpParseResult::Incomplete ? "" : std::to_string(v.error_status))
                                   << " after " << v.at << " bytes";
    EXPECT_LT(v.at, 64u) << testing::PrintToString(raw.substr(0, 8));
  }
}

TEST(HttpMalformed, RandomGarbageRejectedBefore8KiB) {
  // Deterministic: raw mt19937 output (the distributions are not portable).
  std::mt19937 rng(20251110);
  int late = 0;
  std::string first_late;
  for (int n = 0; n < 1000; ++n) {
    std::string raw(9000, '\0');
    for (char& c : raw) c = char(rng() & 0xFF);
    Verdict v = first_verdict(raw);
    EXPECT_EQ(v.status, HttpParseResult::Error);
    if (v.status != HttpParseResult::Error || v.error_status != 400 || v.at >= 8192) {
      if (late++ == 0)
        first_late = testing::PrintToString(raw.substr(0, 12)) + " -> " + std::to_string(v.error_status) +
                     " after " + std::to_string(v.at) + " bytes";
    }
  }
  EXPECT_EQ(late, 0) << "random streams not refused with 400 before 8 KiB, e.g. " << first_late;
}

// ---- responses ---------------------------------------------------------------------------

TEST(HttpResponseSerialize, JsonKeepAlive) {
  HttpResponse res = HttpResponse::json(200, "{\"status\":\"ok\"}");
  std::string out = serialize_response(res, true, false);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nServer: metrics-agent/" METRICS_AGENT_VERSION
                 "\r\nContent-Type: application/json\r\nContent-Length: 15\r\n"
                 "Connection: keep-alive\r\n\r\n{\"status\":\"ok\"}");
}

TEST(HttpResponseSerialize, CloseHeadAndExtraHeaders) {
  HttpResponse res = HttpResponse::error(405, "method not allowed");
  res.headers.emplace_back("Allow", "GET, HEAD");
  std::string full = serialize_response(res, false, false);
  std::string head = serialize_response(res, false, true);
  EXPECT_EQ(full.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u) << full;
  EXPECT_NE(full.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_NE(full.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_EQ(full.find("keep-alive"), std::string::npos);
  std::size_t end = full.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos);
  std::string body = full.substr(end + 4);
  EXPECT_NE(full.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos);
  // HEAD: the same head (Content-Length of the GET body), no body.
  EXPECT_EQ(head, full.substr(0, end + 4));
  picojson::value v;
  ASSERT_EQ(picojson::parse(v, body), "");
  ASSERT_TRUE(v.is<picojson::object>());
  EXPECT_EQ(v.get("error").to_str(), "method not allowed");
}

TEST(HttpResponseSerialize, ErrorBodyEscapes) {
  HttpResponse res = HttpResponse::error(400, "bad \"x\"\n\\");
  EXPECT_EQ(res.status, 400);
  picojson::value v;
  ASSERT_EQ(picojson::parse(v, res.body), "") << res.body;
  EXPECT_EQ(v.get("error").to_str(), "bad \"x\"\n\\");
}

TEST(HttpResponseSerialize, NoContentAndSwitchingProtocols) {
  HttpResponse nc;
  nc.status = 204;
  nc.body = "ignored";
  std::string out = serialize_response(nc, true, false);
  EXPECT_EQ(out, "HTTP/1.1 204 No Content\r\nServer: metrics-agent/" METRICS_AGENT_VERSION
                 "\r\nConnection: keep-alive\r\n\r\n");

  HttpResponse up;
  up.status = 101;
  up.content_type.clear();
  up.headers = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                {"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}};
  out = serialize_response(up, true, false);
  EXPECT_EQ(out, "HTTP/1.1 101 Switching Protocols\r\nServer: metrics-agent/" METRICS_AGENT_VERSION
                 "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
}

TEST(HttpResponseSerialize, StatusLines) {
  const std::pair<int, const char*> statuses[] = {
      {400, "Bad Request"}, {401, "Unauthorized"}, {404, "Not Found"},
      {413, "Content Too Large"}, {426, "Upgrade Required"}, {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"}, {501, "Not Implemented"},
      {503, "Service Unavailable"}, {505, "HTTP Version Not Supported"},
  };
  for (const auto& s : statuses) {
    HttpResponse res = HttpResponse::error(s.first, "e");
    std::string out = serialize_response(res, false, false);
    EXPECT_EQ(out.substr(0, out.find("\r\n")), "HTTP/1.1 " + std::to_string(s.first) + " " + s.second);
    EXPECT_EQ(out.compare(out.size() - res.body.size(), res.body.size(), res.body), 0);
  }
}
