// The answer parser of `metrics-agent check`: the same bytes give the same
// outcome however they are split into reads (every split point, and one byte
// at a time), as the server's own parsers are tested.
#include "metrics_agent.hpp"
#include "tools/check_client.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using metrics_agent::detail::HttpAnswer;
using metrics_agent::detail::HttpAnswerParser;

struct Outcome {
  HttpAnswerParser::Result result = HttpAnswerParser::NeedMore;
  int status = 0;
  std::string reason, body, error;
};

bool operator==(const Outcome& a, const Outcome& b) {
  return a.result == b.result && a.status == b.status && a.reason == b.reason && a.body == b.body &&
         a.error == b.error;
}

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  return os << "result " << int(o.result) << ", status " << o.status << ", reason '" << o.reason << "', body "
            << o.body.size() << " bytes '" << o.body.substr(0, 40) << "', error '" << o.error << "'";
}

constexpr std::size_t kMaxBody = 1024 * 1024;

// Feeds the growing buffer as health_check does: after each read, then with
// `eof` once the server has closed.
Outcome parse_in_reads(const std::string& answer, const std::vector<std::size_t>& cuts) {
  HttpAnswerParser parser(kMaxBody);
  HttpAnswer out;
  Outcome o;
  std::string raw;
  std::size_t at = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(answer.size());
  for (std::size_t end : ends) {
    raw.append(answer, at, end - at);
    at = end;
    o.result = parser.feed(raw, false, out, o.error);
    if (o.result != HttpAnswerParser::NeedMore) break;
  }
  if (o.result == HttpAnswerParser::NeedMore) o.result = parser.feed(raw, true, out, o.error);
  o.status = out.status;
  o.reason = out.reason;
  o.body = out.body;
  return o;
}

void expect_split_independent(const std::string& answer, const Outcome& expected) {
  const Outcome whole = parse_in_reads(answer, {});
  EXPECT_EQ(whole, expected);
  for (std::size_t cut = 1; cut < answer.size(); ++cut) {
    const Outcome split = parse_in_reads(answer, {cut});
    ASSERT_EQ(split, whole) << "split at byte " << cut;
  }
  std::vector<std::size_t> every;
  for (std::size_t cut = 1; cut < answer.size(); ++cut) every.push_back(cut);
  EXPECT_EQ(parse_in_reads(answer, every), whole) << "one byte at a time";
}

Outcome done(int status, std::string reason, std::string body) {
  Outcome o;
  o.result = HttpAnswerParser::Done;
  o.status = status;
  o.reason = std::move(reason);
  o.body = std::move(body);
  return o;
}

Outcome bad(std::string error, int status = 0, std::string reason = "") {
  Outcome o;
  o.result = HttpAnswerParser::Bad;
  o.error = std::move(error);
  o.status = status;
  o.reason = std::move(reason);
  return o;
}

TEST(CheckAnswerParser, ContentLength) {
  expect_split_independent("HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}",
                           done(200, "OK", "{\"status\":\"ok\"}"));
}

TEST(CheckAnswerParser, Chunked) {
  expect_split_independent(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\n{\"sta\r\nA\r\ntus\":\"ok\"}\r\n0\r\nX-Trailer: 1\r\n\r\n",
      done(200, "OK", "{\"status\":\"ok\"}"));
}

TEST(CheckAnswerParser, InterimAnswerThenTheRealOne) {
  expect_split_independent("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
                           done(200, "OK", "{}"));
}

TEST(CheckAnswerParser, OtherStatusIsDoneAtItsHead) {
  expect_split_independent("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 100\r\n\r\n{",
                           done(503, "Service Unavailable", ""));
}

TEST(CheckAnswerParser, ReadToTheEnd) {
  expect_split_independent("HTTP/1.0 200 OK\r\n\r\n{\"status\":\"ok\"}\n", done(200, "OK", "{\"status\":\"ok\"}\n"));
}

// The head ends at its first empty line, however the lines end. The body
// below holds a CRLF CRLF: it is not the end of the head.
TEST(CheckAnswerParser, BareLineFeedsEndTheHeadAtTheFirstEmptyLine) {
  expect_split_independent("HTTP/1.1 200 OK\nX-A: 1\n\n{\"a\":\r\n\r\n1}", done(200, "OK", "{\"a\":\r\n\r\n1}"));
  expect_split_independent("HTTP/1.1 200 OK\r\nContent-Length: 3\n\r\nabc", done(200, "OK", "abc"));
}

TEST(CheckAnswerParser, AHeadOverTheLimitIsRefusedWhetherOrNotItsEndIsIn) {
  std::string answer = "HTTP/1.1 200 OK\r\nX-Big: " + std::string(HttpAnswerParser::kMaxHead, 'a') +
                       "\r\nContent-Length: 2\r\n\r\n{}";
  const Outcome whole = parse_in_reads(answer, {});
  EXPECT_EQ(whole.result, HttpAnswerParser::Bad) << whole;
  EXPECT_NE(whole.error.find("64 KiB"), std::string::npos) << whole;
  for (std::size_t cut : {std::size_t(10), std::size_t(40000), HttpAnswerParser::kMaxHead, answer.size() - 10})
    EXPECT_EQ(parse_in_reads(answer, {cut}), whole) << "split at byte " << cut;
}

TEST(CheckAnswerParser, AChunkLineOverTheLimitIsRefusedWhetherOrNotItsEndIsIn) {
  std::string answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=" + std::string(5000, 'x') +
                       "\r\n{}\r\n0\r\n\r\n";
  const Outcome whole = parse_in_reads(answer, {});
  EXPECT_EQ(whole.result, HttpAnswerParser::Bad) << whole;
  EXPECT_NE(whole.error.find("too long"), std::string::npos) << whole;
  for (std::size_t cut = 40; cut < answer.size(); cut += 97)
    ASSERT_EQ(parse_in_reads(answer, {cut}), whole) << "split at byte " << cut;
}

TEST(CheckAnswerParser, MalformedAnswers) {
  expect_split_independent("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                           bad("malformed chunked answer: malformed chunk size", 200, "OK"));
  expect_split_independent("SSH-2.0-OpenSSH\r\n\r\n", bad("not an HTTP answer: SSH-2.0-OpenSSH"));
  expect_split_independent("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
                           bad("the server closed the connection before the end of the answer", 200, "OK"));
}

}  // namespace
