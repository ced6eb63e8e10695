// tools/check_client.hpp - the client behind `metrics-agent check`, opt-in.
//
// A minimal blocking HTTP/1.1 client of the agent's own, for health checks
// where no curl is installed (container HEALTHCHECK, systemd, scripts). The
// agent itself never needs it, so embedders of metrics_agent.hpp do not
// compile it unless they include this file, after the main header:
//
//     #include "metrics_agent.hpp"
//     #include "tools/check_client.hpp"
//     std::string message;
//     int rc = metrics_agent::check("http://127.0.0.1:54112", 3.0, message);

#ifndef METRICS_AGENT_CHECK_CLIENT_HPP
#define METRICS_AGENT_CHECK_CLIENT_HPP

#include "../metrics_agent.hpp"

// ============================================================================
// Implementation: `metrics-agent check`, a minimal blocking HTTP/1.1 client
//   (RFC 9112) of the agent's own: the static binary cannot link Debian's
//   shared cpp-httplib. Its OS calls are the client half of the socket shim.
// ============================================================================

namespace metrics_agent {
namespace detail {
namespace net {

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

#if defined(METRICS_AGENT_PLATFORM_POSIX)
// A numeric IPv4 or IPv6 address (no brackets, no zone) as an endpoint.
inline bool numeric_endpoint(const std::string& host, std::uint16_t port, Endpoint& e) {
  e = Endpoint{};
  auto* a4 = reinterpret_cast<sockaddr_in*>(&e.addr);
  if (::inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    e.len = sizeof(sockaddr_in);
    return true;
  }
  e = Endpoint{};
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&e.addr);
  if (::inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    e.len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// The addresses hosts(5) text gives `name` (compared without regard to case),
// in the order of its lines: "ADDRESS NAME [ALIAS...]", '#' starts a comment.
// Lines whose address is not numeric are skipped, as the C library skips them.
inline void hosts_file_lookup(std::string_view text, const std::string& name, std::uint16_t port,
                              std::vector<Endpoint>& out) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    line = line.substr(0, line.find('#'));
    std::vector<std::string_view> fields;
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && blank(line[i])) ++i;
      std::size_t b = i;
      while (i < line.size() && !blank(line[i])) ++i;
      if (i > b) fields.push_back(line.substr(b, i - b));
    }
    Endpoint e;
    if (fields.size() < 2 || !numeric_endpoint(std::string(fields[0]), port, e)) continue;
    for (std::size_t f = 1; f < fields.size(); ++f) {
      if (iequals(fields[f], name)) {
        out.push_back(e);
        break;
      }
    }
  }
}

#if defined(METRICS_AGENT_NO_GETADDRINFO)
// Static builds: getaddrinfo(3) would need the build machine's NSS modules at
// run time, so names come from /etc/hosts only (no DNS): numeric addresses,
// then the file, then "localhost" as 127.0.0.1 and ::1 if the file lacks it.
// "" or the reason; `not_numeric` as below.
inline std::string lookup(const std::string& host, std::uint16_t port, bool numeric_only,
                          std::vector<Endpoint>& out, bool* not_numeric = nullptr) {
  Endpoint e;
  const bool numeric = numeric_endpoint(host, port, e);
  if (not_numeric) *not_numeric = !numeric;
  if (numeric) {
    out.push_back(e);
    return "";
  }
  if (numeric_only) return "not a numeric address";
  std::string text;
  if (std::FILE* f = std::fopen("/etc/hosts", "rb")) {
    char buf[4096];
    std::size_t n;
    while (text.size() < (std::size_t(1) << 22) && (n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  hosts_file_lookup(text, host, port, out);
  if (out.empty() && iequals(host, "localhost")) {
    for (const char* a : {"127.0.0.1", "::1"})
      if (numeric_endpoint(a, port, e)) out.push_back(e);
  }
  if (!out.empty()) return "";
  return "'" + host + "' is not in /etc/hosts (this static build resolves names from /etc/hosts only, not DNS)";
}
#endif  // METRICS_AGENT_NO_GETADDRINFO

// A non-blocking socket with connect(2) under way; `err` is 0 (connected),
// pending (connect_pending: wait for writability, then connect_result) or an
// errno value.
inline socket_t connect_start(const Endpoint& e, int& err) {
  socket_t s = ::socket(e.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) {
    err = errno;
    return invalid_socket;
  }
  int rc;
  do {
    rc = ::connect(s, reinterpret_cast<const sockaddr*>(&e.addr), e.len);
  } while (rc != 0 && errno == EINTR);
  err = rc == 0 ? 0 : errno;
  return s;
}

inline int connect_result(socket_t s) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

// 1 when the socket is ready (or failed: the next call says how), 0 on timeout.
inline int wait_socket(socket_t s, bool for_write, int timeout_ms) {
  pollfd p{};
  p.fd = s;
  p.events = for_write ? POLLOUT : POLLIN;
  const int rc = ::poll(&p, 1, timeout_ms);
  if (rc < 0) return errno == EINTR ? 0 : 1;  // EINTR: the caller re-checks its deadline
  return rc;
}

inline bool refused(int e) { return e == ECONNREFUSED; }
inline bool connect_pending(int e) { return e == EINPROGRESS; }
inline std::string error_text(int e) { return std::strerror(e); }
inline bool resolver_ready() { return true; }
inline std::string resolver_error(int rc) { return rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc); }

#endif  // METRICS_AGENT_PLATFORM_POSIX

#if defined(METRICS_AGENT_PLATFORM_WINDOWS)
// A non-blocking socket with connect() under way; `err` is 0 (connected),
// pending (connect_pending) or a Winsock error code.
inline socket_t connect_start(const Endpoint& e, int& err) {
  socket_t s = ::socket(e.addr.ss_family, SOCK_STREAM, IPPROTO_TCP);
  if (s == INVALID_SOCKET) {
    err = last_error();
    return invalid_socket;
  }
  u_long nonblocking = 1;
  ::ioctlsocket(s, FIONBIO, &nonblocking);
  const int rc = ::connect(s, reinterpret_cast<const sockaddr*>(&e.addr), e.len);
  err = rc == 0 ? 0 : last_error();
  return s;
}

inline int connect_result(socket_t s) {
  int err = 0;
  int len = sizeof err;
  if (::getsockopt(s, SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&err), &len) != 0) return last_error();
  return err;
}

// 1 when the socket is ready (or failed: the next call says how), 0 on
// timeout. select, not WSAPoll: WSAPoll does not report a failed connect()
// before Windows 10 2004, and this waits for one socket.
inline int wait_socket(socket_t s, bool for_write, int timeout_ms) {
  fd_set set, failed;
  FD_ZERO(&set);
  FD_ZERO(&failed);
  FD_SET(s, &set);
  FD_SET(s, &failed);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  const int rc = ::select(0, for_write ? nullptr : &set, for_write ? &set : nullptr, &failed, &tv);
  return rc < 0 ? 1 : rc > 0 ? 1 : 0;
}

inline bool refused(int e) { return e == WSAECONNREFUSED; }
inline bool connect_pending(int e) { return e == WSAEWOULDBLOCK || e == WSAEINPROGRESS; }
inline std::string error_text(int e) { return winsock_error_text(e); }
inline bool resolver_ready() { return winsock_started(); }
inline std::string resolver_error(int rc) { return winsock_error_text(rc); }

#endif  // METRICS_AGENT_PLATFORM_WINDOWS

#if defined(METRICS_AGENT_PLATFORM_WINDOWS) || !defined(METRICS_AGENT_NO_GETADDRINFO)
// getaddrinfo; "" or the resolver's reason. With numeric_only it never
// touches DNS and fails with EAI_NONAME for a name.
inline std::string lookup(const std::string& host, std::uint16_t port, bool numeric_only,
                          std::vector<Endpoint>& out, bool* not_numeric = nullptr) {
  if (!resolver_ready()) return "WSAStartup failed";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (numeric_only ? AI_NUMERICHOST : 0);
  char service[8];
  std::snprintf(service, sizeof service, "%u", unsigned(port));
  addrinfo* list = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), service, &hints, &list);
  if (not_numeric) *not_numeric = rc == EAI_NONAME;
  if (rc != 0) return resolver_error(rc);
  for (const addrinfo* a = list; a; a = a->ai_next) {
    if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
    Endpoint e;
    std::memcpy(&e.addr, a->ai_addr, a->ai_addrlen);
    e.len = socklen_t(a->ai_addrlen);
    out.push_back(e);
  }
  ::freeaddrinfo(list);
  return out.empty() ? "no address" : "";
}
#endif

inline bool is_ipv6_literal(const std::string& host) {
  in6_addr a{};
  return inet_pton(AF_INET6, host.c_str(), &a) == 1;
}

inline std::string endpoint_text(const Endpoint& e) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (e.addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&e.addr);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&e.addr);
  inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
}

}  // namespace net

// ---------------------------------------------------------------- URL

struct HttpUrl {
  bool https = false;
  std::string host;         // without brackets
  std::uint16_t port = 80;
  std::string host_header;  // host[:port] as sent in Host (RFC 9110 section 7.2)
  std::string target;       // the /health request target
};

// "http://HOST[:PORT][/PREFIX]", HOST a name, an IPv4 address or [IPv6];
// the scheme may be left out. The target is PREFIX/health, or PREFIX itself
// when it already ends in /health. https parses (health_check then says it
// is not supported); other schemes, credentials and bad ports do not.
inline bool parse_http_url(std::string_view url, HttpUrl& out, std::string& error) {
  out = HttpUrl{};
  const std::string quoted = "'" + std::string(url) + "'";
  if (url.empty()) {
    error = "empty URL";
    return false;
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      error = "bad URL " + quoted + ": it contains blanks or control characters";
      return false;
    }
  }
  const std::size_t sep = url.find("://");
  if (sep != std::string_view::npos) {
    const std::string_view scheme = url.substr(0, sep);
    if (iequals(scheme, "https")) {
      out.https = true;
      out.port = 443;
    } else if (!iequals(scheme, "http")) {
      error = "bad URL " + quoted + ": scheme '" + std::string(scheme) + "' (only http:// is supported)";
      return false;
    }
    url.remove_prefix(sep + 3);
  }
  const std::size_t auth_end = url.find_first_of("/?#");
  std::string_view authority = url.substr(0, auth_end);
  std::string_view rest = auth_end == std::string_view::npos ? std::string_view() : url.substr(auth_end);
  if (authority.find('@') != std::string_view::npos) {
    error = "bad URL " + quoted + ": credentials in the URL are not supported";
    return false;
  }
  std::string_view host, port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "bad URL " + quoted + ": no ']' after the IPv6 address";
      return false;
    }
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        error = "bad URL " + quoted + ": unexpected text after ']'";
        return false;
      }
      has_port = true;
      port = after.substr(1);
    }
    if (!net::is_ipv6_literal(std::string(host))) {
      error = "bad URL " + quoted + ": '" + std::string(host) + "' is not an IPv6 address";
      return false;
    }
  } else {
    const std::size_t colon = authority.find(':');
    if (colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos) {
      error = "bad URL " + quoted + ": an IPv6 address needs brackets, as in http://[::1]:54112";
      return false;
    }
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port = authority.substr(colon + 1);
    }
    for (char c : host) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '-' || c == '_';
      if (!ok) {
        error = "bad URL " + quoted + ": bad character in the host name";
        return false;
      }
    }
  }
  if (host.empty()) {
    error = "bad URL " + quoted + ": no host";
    return false;
  }
  if (has_port) {
    std::uint64_t p = 0;
    if (port.empty() || port.find_first_not_of("0123456789") != std::string_view::npos || !to_u64(port, p) ||
        p == 0 || p > 65535) {
      error = "bad URL " + quoted + ": the port must be a number from 1 to 65535";
      return false;
    }
    out.port = std::uint16_t(p);
  }
  out.host = std::string(host);
  const bool v6 = out.host.find(':') != std::string::npos;
  out.host_header = v6 ? "[" + out.host + "]" : out.host;
  if (out.port != (out.https ? 443 : 80)) out.host_header += ":" + std::to_string(out.port);

  rest = rest.substr(0, rest.find('#'));
  const std::size_t q = rest.find('?');
  std::string_view path = rest.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view() : rest.substr(q);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  out.target = std::string(path);
  if (out.target.size() < 7 || out.target.compare(out.target.size() - 7, 7, "/health") != 0) out.target += "/health";
  out.target += query;
  return true;
}

// ---------------------------------------------------------------- the answer

struct HttpAnswer {
  int status = 0;
  std::string reason;
  std::string body;
};

// Up to `max` bytes of `s` on one line: control bytes become blanks.
inline std::string printable_prefix(std::string_view s, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    out += (c < 0x20 || c == 0x7f) ? ' ' : char(c);
  }
  if (s.size() > max) out += "...";
  return out;
}

// Decodes a chunked body (RFC 9112 section 7.1) as its bytes arrive; extensions
// and trailer fields are read and ignored.
class ChunkedDecoder {
 public:
  enum Result { NeedMore, Done, Bad };

  // `raw` is the whole body received so far (it only grows between calls).
  Result feed(std::string_view raw, std::string& out, std::size_t cap, std::string& error) {
    for (;;) {
      switch (state_) {
        case State::Size: {
          std::string_view line;
          if (const Result r = take_line(raw, line, error); r != Done) return r;
          std::size_t i = 0;
          std::uint64_t size = 0;
          for (; i < line.size() && hex_digit(line[i]) >= 0; ++i) {
            if (size >> 56) return bad(error, "chunk size too large");
            size = size * 16 + std::uint64_t(hex_digit(line[i]));
          }
          if (i == 0 || (i < line.size() && line[i] != ';' && line[i] != ' ' && line[i] != '\t'))
            return bad(error, "malformed chunk size");
          if (size == 0) {
            state_ = State::Trailer;
          } else {
            if (size > cap || out.size() + size > cap) return bad(error, "answer larger than the size limit");
            remaining_ = size;
            state_ = State::Data;
          }
          break;
        }
        case State::Data: {
          const std::size_t n = std::size_t(std::min<std::uint64_t>(remaining_, raw.size() - pos_));
          out.append(raw.data() + pos_, n);
          pos_ += n;
          remaining_ -= n;
          if (remaining_ != 0) return NeedMore;
          state_ = State::DataEnd;
          break;
        }
        case State::DataEnd: {
          std::string_view line;
          if (const Result r = take_line(raw, line, error); r != Done) return r;
          if (!line.empty()) return bad(error, "chunk longer than its size");
          state_ = State::Size;
          break;
        }
        case State::Trailer: {
          std::string_view line;
          if (const Result r = take_line(raw, line, error); r != Done) return r;
          if (line.empty()) return Done;
          break;
        }
      }
    }
  }

 private:
  enum class State { Size, Data, DataEnd, Trailer };

  static constexpr std::size_t kMaxLine = 4096;

  // A line ending in LF (a CR before it is dropped), from pos_: Done with
  // `line`, NeedMore until its end arrives. A line longer than kMaxLine is
  // Bad whether or not its end is in yet, so that the outcome never depends
  // on how the bytes were split.
  Result take_line(std::string_view raw, std::string_view& line, std::string& error) {
    const std::size_t lf = raw.find('\n', pos_);
    if ((lf == std::string_view::npos ? raw.size() : lf) - pos_ > kMaxLine) return bad(error, "chunk line too long");
    if (lf == std::string_view::npos) return NeedMore;
    line = raw.substr(pos_, lf - pos_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos_ = lf + 1;
    return Done;
  }
  static Result bad(std::string& error, const char* why) {
    error = std::string("malformed chunked answer: ") + why;
    return Bad;
  }

  State state_ = State::Size;
  std::size_t pos_ = 0;
  std::uint64_t remaining_ = 0;
};

// Parses a response from the bytes received so far. NeedMore until it is
// complete (`eof`: the server closed); Bad with a reason. A status other than
// 200 is Done as soon as its head is in: its body does not matter. The outcome
// depends only on the bytes, never on how they were split into reads.
class HttpAnswerParser {
 public:
  enum Result { NeedMore, Done, Bad };
  static constexpr std::size_t kMaxHead = 64 * 1024;

  explicit HttpAnswerParser(std::size_t max_body) : max_body_(max_body) {}

  Result feed(std::string_view data, bool eof, HttpAnswer& out, std::string& error) {
    while (body_at_ == 0) {
      const std::size_t end = head_end(data, head_at_);
      if ((end == std::string_view::npos ? data.size() : end) - head_at_ > kMaxHead)
        return fail(error, "the answer's header is larger than 64 KiB");
      if (end == std::string_view::npos) {
        if (eof) return fail(error, data.empty() ? "the server closed the connection without answering"
                                                 : "the server closed the connection in the middle of its header");
        return NeedMore;
      }
      const Result r = parse_head(data.substr(head_at_, end - head_at_), out, error);
      if (r == Bad) return Bad;
      if (out.status >= 100 && out.status < 200) {  // an interim answer: the real one follows
        head_at_ = end;
        continue;
      }
      body_at_ = end;
      if (out.status != 200) return Done;
    }
    const std::string_view body = data.substr(body_at_);
    if (chunked_) {
      const auto r = chunks_.feed(body, out.body, max_body_, error);
      if (r == ChunkedDecoder::Bad) return Bad;
      if (r == ChunkedDecoder::Done) return Done;
      return eof ? fail(error, "the server closed the connection in the middle of a chunked answer") : NeedMore;
    }
    if (has_length_) {
      if (length_ > max_body_) return fail(error, "answer larger than the size limit");
      if (body.size() >= length_) {
        out.body.assign(body.data(), std::size_t(length_));
        return Done;
      }
      return eof ? fail(error, "the server closed the connection before the end of the answer") : NeedMore;
    }
    if (body.size() > max_body_) return fail(error, "answer larger than the size limit");
    if (!eof) return NeedMore;
    out.body.assign(body.data(), body.size());
    return Done;
  }

 private:
  // Just past the first empty line after `from` (a line ends in LF, with or
  // without CR: RFC 9112 section 2.2), or npos while it has not arrived.
  static std::size_t head_end(std::string_view data, std::size_t from) {
    for (std::size_t lf = data.find('\n', from); lf != std::string_view::npos; lf = data.find('\n', lf + 1)) {
      if (lf + 1 < data.size() && data[lf + 1] == '\n') return lf + 2;
      if (lf + 2 < data.size() && data[lf + 1] == '\r' && data[lf + 2] == '\n') return lf + 3;
    }
    return std::string_view::npos;
  }

  Result parse_head(std::string_view head, HttpAnswer& out, std::string& error) {
    std::size_t nl = head.find('\n');
    std::string_view status_line = head.substr(0, nl);
    if (!status_line.empty() && status_line.back() == '\r') status_line.remove_suffix(1);
    // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 section 4)
    const auto digit = [&](std::size_t i) { return status_line[i] >= '0' && status_line[i] <= '9'; };
    if (status_line.size() < 12 || status_line.compare(0, 7, "HTTP/1.") != 0 || !digit(7) || status_line[8] != ' ' ||
        !digit(9) || !digit(10) || !digit(11) || (status_line.size() > 12 && status_line[12] != ' '))
      return fail(error, "not an HTTP answer: " + printable_prefix(status_line, 60));
    out.status = (status_line[9] - '0') * 100 + (status_line[10] - '0') * 10 + (status_line[11] - '0');
    out.reason = printable_prefix(trim_ows(status_line.substr(12)), 60);
    chunked_ = has_length_ = false;
    length_ = 0;
    while (nl != std::string_view::npos) {
      head.remove_prefix(nl + 1);
      nl = head.find('\n');
      std::string_view line = head.substr(0, nl);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      const std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view name = line.substr(0, colon), value = trim_ows(line.substr(colon + 1));
      if (iequals(name, "transfer-encoding")) {
        chunked_ = header_has_token(value, "chunked");
      } else if (iequals(name, "content-length")) {
        std::uint64_t n = 0;
        if (!to_u64(value, n) || (has_length_ && n != length_))
          return fail(error, "bad Content-Length '" + std::string(value) + "'");
        has_length_ = true;
        length_ = n;
      }
    }
    return NeedMore;
  }

  static Result fail(std::string& error, std::string why) {
    error = std::move(why);
    return Bad;
  }

  std::size_t max_body_;
  std::size_t head_at_ = 0, body_at_ = 0;
  bool chunked_ = false, has_length_ = false;
  std::uint64_t length_ = 0;
  ChunkedDecoder chunks_;
};

// ---------------------------------------------------------------- health_check

// A socket closed when it goes out of scope.
struct ClientSocket {
  net::socket_t s = net::invalid_socket;
  ~ClientSocket() { reset(); }
  void reset(net::socket_t n = net::invalid_socket) {
    if (s != net::invalid_socket) net::close_socket(s);
    s = n;
  }
};

class Deadline {
 public:
  explicit Deadline(double seconds)
      : end_(std::chrono::steady_clock::now() +
             std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds))) {}
  std::chrono::steady_clock::time_point end() const { return end_; }
  // Milliseconds left, rounded up so that poll never returns early; 0 when past.
  int remaining_ms() const {
    const auto left = end_ - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return 0;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(left).count() + 1;
    return ms > 3600000 ? 3600000 : int(ms);
  }
  bool passed() const { return std::chrono::steady_clock::now() >= end_; }

 private:
  std::chrono::steady_clock::time_point end_;
};

// Resolves within the deadline. getaddrinfo cannot be interrupted, so a name
// (not a numeric address) is looked up on a thread of its own, which is left
// to finish by itself if the deadline passes first.
inline std::string resolve_within(const std::string& host, std::uint16_t port, const Deadline& deadline,
                                  std::vector<net::Endpoint>& out, bool& timed_out) {
  timed_out = false;
  bool not_numeric = false;
  std::string error = net::lookup(host, port, true, out, &not_numeric);
  if (!not_numeric) return error;
  struct Shared {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::string error;
    std::vector<net::Endpoint> endpoints;
  };
  auto shared = std::make_shared<Shared>();
  try {
    std::thread([shared, host, port] {
      std::vector<net::Endpoint> eps;
      std::string err = net::lookup(host, port, false, eps);
      std::lock_guard<std::mutex> lock(shared->m);
      shared->endpoints = std::move(eps);
      shared->error = std::move(err);
      shared->done = true;
      shared->cv.notify_all();
    }).detach();
  } catch (const std::system_error&) {
    out.clear();
    return net::lookup(host, port, false, out);  // no thread to be had: wait for the resolver
  }
  std::unique_lock<std::mutex> lock(shared->m);
  if (!shared->cv.wait_until(lock, deadline.end(), [&] { return shared->done; })) {
    timed_out = true;
    return "resolving '" + host + "'";
  }
  out = std::move(shared->endpoints);
  return shared->error;
}

// GET <url>/health within `timeout_seconds` in all (resolving, connecting,
// sending, reading). Returns 0 when the agent answers 200 with JSON whose
// "status" is "ok" (`message`: "healthy (version X, N clients)"), 1 when it
// does not (`message`: the one-line reason), 2 when `url` is malformed or the
// timeout is not positive (a usage error).
inline int health_check(const std::string& url, double timeout_seconds, std::string& message) {
  message.clear();
  HttpUrl u;
  if (!parse_http_url(url, u, message)) return 2;
  if (!(timeout_seconds > 0) || timeout_seconds > 86400) {
    message = "the timeout must be between 0 and 86400 seconds";
    return 2;
  }
  if (u.https) {
    message = "https is not supported (the agent serves plain http)";
    return 1;
  }
  std::string seconds;
  append_number(seconds, timeout_seconds, 3);
  const std::string timed_out = "timed out after " + seconds + "s";
  const Deadline deadline(timeout_seconds);

  std::vector<net::Endpoint> endpoints;
  bool resolve_timeout = false;
  std::string error = resolve_within(u.host, u.port, deadline, endpoints, resolve_timeout);
  if (resolve_timeout) {
    message = timed_out + " " + error;
    return 1;
  }
  if (!error.empty()) {
    message = "cannot resolve '" + u.host + "': " + error;
    return 1;
  }

  // The addresses in the resolver's order (RFC 6724), until one accepts.
  ClientSocket sock;
  std::string peer;
  for (const net::Endpoint& e : endpoints) {
    peer = net::endpoint_text(e);
    int err = 0;
    sock.reset(net::connect_start(e, err));
    if (sock.s == net::invalid_socket) {
      error = "cannot connect to " + peer + ": " + net::error_text(err);
      continue;
    }
    if (net::connect_pending(err)) {
      while (!deadline.passed() && net::wait_socket(sock.s, true, deadline.remaining_ms()) == 0) {
      }
      if (deadline.passed() && net::wait_socket(sock.s, true, 0) == 0) {
        message = timed_out + " connecting to " + peer;
        return 1;
      }
      err = net::connect_result(sock.s);
    }
    if (err == 0) {
      error.clear();
      break;
    }
    error = net::refused(err) ? "connection refused by " + peer : "cannot connect to " + peer + ": " + net::error_text(err);
    sock.reset();
  }
  if (sock.s == net::invalid_socket) {
    message = error.empty() ? "no address to connect to" : error;
    return 1;
  }

  const std::string request = "GET " + u.target + " HTTP/1.1\r\nHost: " + u.host_header +
                              "\r\nUser-Agent: metrics-agent-check/" METRICS_AGENT_VERSION
                              "\r\nAccept: application/json\r\nConnection: close\r\n\r\n";
  std::size_t sent = 0;
  while (sent < request.size()) {
    const long n = net::send_some(sock.s, request.data() + sent, request.size() - sent);
    if (n > 0) {
      sent += std::size_t(n);
      continue;
    }
    const int err = net::last_error();
    if (n < 0 && !net::would_block(err)) {
      message = "cannot send the request to " + peer + ": " + net::error_text(err);
      return 1;
    }
    if (net::wait_socket(sock.s, true, deadline.remaining_ms()) == 0 && deadline.passed()) {
      message = timed_out + " sending the request to " + peer;
      return 1;
    }
  }

  constexpr std::size_t kMaxBody = 1024 * 1024;
  HttpAnswerParser parser(kMaxBody);
  HttpAnswer answer;
  std::string raw;
  char buf[16384];
  bool done = false;
  for (;;) {
    const long n = net::recv_some(sock.s, buf, sizeof buf);
    bool eof = false;
    if (n > 0) {
      raw.append(buf, std::size_t(n));
    } else if (n == 0) {
      eof = true;
    } else {
      const int err = net::last_error();
      if (!net::would_block(err)) {
        if (raw.empty()) {
          message = "connection to " + peer + " failed: " + net::error_text(err);
          return 1;
        }
        eof = true;  // a reset after the answer was sent: judge what arrived
      } else {
        if (net::wait_socket(sock.s, false, deadline.remaining_ms()) == 0 && deadline.passed()) break;
        continue;
      }
    }
    const auto r = parser.feed(raw, eof, answer, message);
    if (r == HttpAnswerParser::Bad) {
      if (message.rfind("answer larger", 0) == 0) message = "answer larger than 1 MiB";
      return 1;
    }
    if (r == HttpAnswerParser::Done) {
      done = true;
      break;
    }
    if (raw.size() > kMaxBody + HttpAnswerParser::kMaxHead) {
      message = "answer larger than 1 MiB";
      return 1;
    }
    if (deadline.passed()) break;  // a server that trickles bytes forever
  }
  if (!done) {
    message = timed_out + (raw.empty() ? " waiting for an answer from " : " reading the answer from ") + peer;
    return 1;
  }

  if (answer.status != 200) {
    message = "HTTP " + std::to_string(answer.status) + (answer.reason.empty() ? "" : " " + answer.reason);
    return 1;
  }
  picojson::value doc;
  std::size_t json_end = 0;
  const std::string json_error = parse_json(doc, answer.body, &json_end);
  if (!json_error.empty() || !json_blank_from(answer.body, json_end)) {
    message = "not JSON: " + (answer.body.empty() ? std::string("empty body")
                                                  : printable_prefix(answer.body, 60));
    return 1;
  }
  if (!doc.is<picojson::object>()) {
    message = "not a JSON object: " + printable_prefix(answer.body, 60);
    return 1;
  }
  const picojson::object& o = doc.get<picojson::object>();
  const auto status = o.find("status");
  if (status == o.end() || !status->second.is<std::string>()) {
    message = "no \"status\" in the answer: " + printable_prefix(answer.body, 60);
    return 1;
  }
  if (status->second.get<std::string>() != "ok") {
    message = "status is '" + printable_prefix(status->second.get<std::string>(), 60) + "'";
    return 1;
  }
  message = "healthy";
  std::string details;
  const auto version = o.find("version");
  if (version != o.end() && version->second.is<std::string>())
    details = "version " + printable_prefix(version->second.get<std::string>(), 40);
  const auto clients = o.find("clients");
  if (clients != o.end() && clients->second.is<double>()) {
    if (!details.empty()) details += ", ";
    append_number(details, clients->second.get<double>(), 0);
    details += clients->second.get<double>() == 1 ? " client" : " clients";
  }
  if (!details.empty()) message += " (" + details + ")";
  return 0;
}

}  // namespace detail

// What `metrics-agent check` does: GET <url>/health within `timeout_seconds`.
// 0 healthy (`message`: "healthy (version X, N clients)"), 1 unhealthy or
// unreachable (`message`: why), 2 a malformed URL or timeout.
inline int check(const std::string& url, double timeout_seconds, std::string& message) {
  return detail::health_check(url, timeout_seconds, message);
}

}  // namespace metrics_agent

#endif  // METRICS_AGENT_CHECK_CLIENT_HPP
