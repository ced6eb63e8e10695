// scrape_bench: the time to serve one Prometheus scrape.
//
// Sends GET requests one after another over a single keep-alive HTTP/1.1
// connection, waits for each complete response (Content-Length, chunked or
// read-until-close bodies), and reports the latency distribution, the
// response size and how many connections the run needed (1 when keep-alive
// holds; a server that closes costs a reconnect, which is counted).
//
//   scrape_bench --port 54112 --requests 1000 --warmup 50 [--json]
//
// The request carries no Accept-Encoding, so every server answers in identity
// encoding and the sizes compare like for like. Each request is timed from
// just before its write to the last byte of its body on a monotonic clock;
// connection setup is not part of any request's time. Linux/POSIX only; the
// HTTP client side is written here rather than taken from metrics_agent.hpp
// so that the benchmark checks the agent against an independent parser.

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
    std::string host = "127.0.0.1";
    std::string port = "54112";
    std::string path = "/metrics";
    long requests = 1000;
    long warmup = 50;
    double timeout = 10;  // seconds allowed for one response
    bool json = false;
    std::string save;  // file for the last response body
};

[[noreturn]] void die(const std::string& message) {
    std::fprintf(stderr, "scrape_bench: %s\n", message.c_str());
    std::exit(1);
}

[[noreturn]] void usage(int status) {
    std::fprintf(status == 0 ? stdout : stderr,
                 "usage: scrape_bench [--host ADDR] [--port PORT] [--path PATH] [--requests N]\n"
                 "                    [--warmup N] [--timeout SECONDS] [--save FILE] [--json]\n"
                 "  Sends N sequential GET requests over one keep-alive HTTP/1.1 connection\n"
                 "  (defaults: 127.0.0.1, 54112, /metrics, 1000 requests after 50 untimed ones,\n"
                 "  10 s per response) and prints latency median/p90/p99/min/max in ms, the\n"
                 "  median response size and the number of connections used. --save writes\n"
                 "  the last response body to FILE.\n");
    std::exit(status);
}

long parse_count(std::string_view flag, std::string_view text, long min, long max) {
    long value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc() || ptr != end || value < min || value > max) {
        die(std::string(flag) + ": expected an integer from " + std::to_string(min) + " to " +
            std::to_string(max) + ", got '" + std::string(text) + "'");
    }
    return value;
}

double parse_seconds(std::string_view flag, std::string_view text) {
    double value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc() || ptr != end || !(value > 0) || value > 3600) {
        die(std::string(flag) + ": expected seconds in (0, 3600], got '" + std::string(text) + "'");
    }
    return value;
}

Options parse_options(int argc, char** argv) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") usage(0);
        if (arg == "--json") {
            options.json = true;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "scrape_bench: unknown option or missing value: %s\n", argv[i]);
            usage(2);
        }
        std::string_view value = argv[++i];
        if (arg == "--host") {
            options.host = std::string(value);
        } else if (arg == "--port") {
            options.port = std::to_string(parse_count(arg, value, 1, 65535));
        } else if (arg == "--path") {
            if (value.empty() || value.front() != '/' ||
                value.find_first_of(" \r\n") != std::string_view::npos) {
                die("--path: expected an absolute path without spaces, got '" + std::string(value) + "'");
            }
            options.path = std::string(value);
        } else if (arg == "--requests") {
            options.requests = parse_count(arg, value, 1, 10000000);
        } else if (arg == "--warmup") {
            options.warmup = parse_count(arg, value, 0, 10000000);
        } else if (arg == "--save") {
            options.save = std::string(value);
        } else if (arg == "--timeout") {
            options.timeout = parse_seconds(arg, value);
        } else {
            std::fprintf(stderr, "scrape_bench: unknown option: %s\n", argv[i - 1]);
            usage(2);
        }
    }
    return options;
}

// ------------------------------------------------------------------ connection

// A blocking socket read through a buffer, with a deadline per response.
class Connection {
public:
    explicit Connection(const Options& options) : options_(options) {}
    ~Connection() { close(); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    bool is_open() const { return fd_ >= 0; }

    void open() {
        close();
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* found = nullptr;
        int rc = getaddrinfo(options_.host.c_str(), options_.port.c_str(), &hints, &found);
        if (rc != 0) die("cannot resolve " + options_.host + ": " + gai_strerror(rc));
        int last_errno = 0;
        for (addrinfo* ai = found; ai != nullptr && fd_ < 0; ai = ai->ai_next) {
            int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            if (fd < 0) {
                last_errno = errno;
                continue;
            }
            if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
                last_errno = errno;
                ::close(fd);
                continue;
            }
            fd_ = fd;
        }
        freeaddrinfo(found);
        if (fd_ < 0) {
            die("cannot connect to " + options_.host + ":" + options_.port + ": " +
                std::strerror(last_errno));
        }
        // Requests are small and written once; without this, Nagle's algorithm
        // could hold one back behind the delayed ACK of the previous response.
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        buffer_.clear();
        start_ = 0;
        ++connections_;
    }

    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    long connections() const { return connections_; }

    void set_deadline(Clock::time_point deadline) { deadline_ = deadline; }

    // False if the peer closed the connection before anything of the request
    // could be written.
    bool write_all(std::string_view data) {
        while (!data.empty()) {
            wait_for(POLLOUT);
            ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EPIPE || errno == ECONNRESET) return false;
                die(std::string("send: ") + std::strerror(errno));
            }
            data.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    // Appends more bytes to the buffer; false at end of stream.
    bool fill() {
        if (start_ > 0 && start_ == buffer_.size()) {
            buffer_.clear();
            start_ = 0;
        } else if (start_ > 65536) {
            buffer_.erase(0, start_);
            start_ = 0;
        }
        char chunk[65536];
        for (;;) {
            wait_for(POLLIN);
            ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == ECONNRESET) return false;
                die(std::string("recv: ") + std::strerror(errno));
            }
            if (n == 0) return false;
            buffer_.append(chunk, static_cast<std::size_t>(n));
            wire_bytes_in_ += static_cast<std::uint64_t>(n);
            return true;
        }
    }

    // One line without its CRLF (a bare LF is tolerated); false at end of
    // stream before the line ends.
    bool read_line(std::string& line, std::size_t limit) {
        for (;;) {
            std::size_t eol = buffer_.find('\n', start_);
            if (eol != std::string::npos) {
                std::size_t end = eol;
                if (end > start_ && buffer_[end - 1] == '\r') --end;
                line.assign(buffer_, start_, end - start_);
                start_ = eol + 1;
                return true;
            }
            if (buffer_.size() - start_ > limit)
                die("response line longer than " + std::to_string(limit) + " bytes");
            if (!fill()) return false;
        }
    }

    // Appends exactly n bytes to out, or returns false at end of stream.
    bool read_exact(std::uint64_t n, std::string& out) {
        while (n > 0) {
            if (start_ == buffer_.size() && !fill()) return false;
            std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(n, buffer_.size() - start_));
            out.append(buffer_, start_, take);
            start_ += take;
            n -= take;
        }
        return true;
    }

    // Consumes everything until the peer closes.
    void read_to_end(std::string& out) {
        for (;;) {
            out.append(buffer_, start_, std::string::npos);
            start_ = buffer_.size();
            if (!fill()) return;
        }
    }

    bool has_buffered() const { return start_ < buffer_.size(); }
    std::uint64_t wire_bytes_in() const { return wire_bytes_in_; }

private:
    void wait_for(short events) {
        for (;;) {
            auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
            if (left <= 0) die("timed out waiting for a response (--timeout)");
            pollfd p{fd_, events, 0};
            int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
            if (rc > 0) return;
            if (rc < 0 && errno != EINTR) die(std::string("poll: ") + std::strerror(errno));
        }
    }

    const Options& options_;
    int fd_ = -1;
    std::string buffer_;
    std::size_t start_ = 0;
    long connections_ = 0;
    Clock::time_point deadline_;
    std::uint64_t wire_bytes_in_ = 0;
};

// ------------------------------------------------------------------ HTTP

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// True if the comma-separated header value lists token (RFC 9110 §5.6.1).
bool lists_token(std::string_view value, std::string_view token) {
    std::string v = lower(value);
    std::string_view rest = v;
    while (!rest.empty()) {
        std::size_t comma = rest.find(',');
        std::string_view item = trim(rest.substr(0, comma));
        if (item == token) return true;
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
    return false;
}

enum class Framing { length, chunked, close };

struct Response {
    int status = 0;
    std::string status_line;
    std::string content_type;
    std::string content_encoding;
    Framing framing = Framing::close;
    bool server_closes = false;
    std::string body;
};

enum class ReadResult { ok, closed_before_response };

constexpr std::size_t line_limit = 16384;
constexpr std::size_t header_limit = 200;

// Reads one complete response to a GET. Interim 1xx responses are skipped
// (RFC 9110 §15.2).
ReadResult read_response(Connection& conn, Response& r) {
    std::string line;
    for (;;) {
        r = Response{};
        if (!conn.read_line(line, line_limit)) {
            if (!conn.has_buffered()) return ReadResult::closed_before_response;
            die("connection closed inside a status line");
        }
        // RFC 9112 §4: HTTP-version SP status-code SP [reason-phrase]
        if (line.size() < 12 || line.compare(0, 7, "HTTP/1.") != 0 || line[8] != ' ' ||
            (line.size() > 12 && line[12] != ' ')) {
            die("malformed status line: '" + line.substr(0, 200) + "'");
        }
        bool http10 = line[7] == '0';
        int status = 0;
        auto [ptr, ec] = std::from_chars(line.data() + 9, line.data() + 12, status);
        if (ec != std::errc() || ptr != line.data() + 12) die("malformed status code: '" + line + "'");
        r.status = status;
        r.status_line = line;
        r.server_closes = http10;

        bool has_length = false;
        std::uint64_t length = 0;
        bool chunked = false;
        for (std::size_t count = 0;; ++count) {
            if (count > header_limit) die("more than " + std::to_string(header_limit) + " header fields");
            if (!conn.read_line(line, line_limit)) die("connection closed inside the headers");
            if (line.empty()) break;
            std::size_t colon = line.find(':');
            if (colon == std::string::npos || colon == 0)
                die("malformed header field: '" + line.substr(0, 200) + "'");
            std::string name = lower(std::string_view(line).substr(0, colon));
            std::string_view value = trim(std::string_view(line).substr(colon + 1));
            if (name == "content-length") {
                std::uint64_t n = 0;
                auto [p, e] = std::from_chars(value.data(), value.data() + value.size(), n);
                if (e != std::errc() || p != value.data() + value.size())
                    die("bad Content-Length: '" + std::string(value) + "'");
                if (has_length && n != length) die("conflicting Content-Length fields");
                has_length = true;
                length = n;
            } else if (name == "transfer-encoding") {
                std::string v = lower(value);
                // RFC 9112 §6.3: chunked must be the final coding; we send no
                // TE header, so nothing else is acceptable.
                if (v != "chunked") die("unsupported Transfer-Encoding: '" + std::string(value) + "'");
                chunked = true;
            } else if (name == "connection") {
                if (lists_token(value, "close")) r.server_closes = true;
                if (http10 && lists_token(value, "keep-alive")) r.server_closes = false;
            } else if (name == "content-type") {
                r.content_type = std::string(value);
            } else if (name == "content-encoding") {
                r.content_encoding = std::string(value);
            }
        }

        if (status >= 100 && status < 200) continue;

        // RFC 9112 §6.3: no body for 204 and 304; chunked wins over length.
        if (status == 204 || status == 304) {
            r.framing = Framing::length;
        } else if (chunked) {
            r.framing = Framing::chunked;
            for (;;) {
                if (!conn.read_line(line, line_limit)) die("connection closed inside a chunk size");
                std::string_view size_text = line;
                size_text = trim(size_text.substr(0, size_text.find(';')));
                std::uint64_t size = 0;
                auto [p, e] =
                    std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
                if (e != std::errc() || p != size_text.data() + size_text.size() || size_text.empty()) {
                    die("bad chunk size line: '" + line.substr(0, 200) + "'");
                }
                if (size == 0) break;
                if (!conn.read_exact(size, r.body)) die("connection closed inside a chunk");
                if (!conn.read_line(line, line_limit) || !line.empty()) die("chunk not followed by CRLF");
            }
            for (std::size_t count = 0;; ++count) {  // trailer section
                if (count > header_limit) die("too many trailer fields");
                if (!conn.read_line(line, line_limit)) die("connection closed inside the trailers");
                if (line.empty()) break;
            }
        } else if (has_length) {
            r.framing = Framing::length;
            if (!conn.read_exact(length, r.body))
                die("connection closed before Content-Length bytes arrived");
        } else {
            r.framing = Framing::close;
            r.server_closes = true;
            conn.read_to_end(r.body);
        }
        return ReadResult::ok;
    }
}

// Non-empty lines that are not comments: one per sample in the text
// exposition format.
long count_samples(std::string_view body) {
    long samples = 0;
    while (!body.empty()) {
        std::size_t eol = body.find('\n');
        std::string_view line = body.substr(0, eol);
        if (!trim(line).empty() && trim(line).front() != '#') ++samples;
        if (eol == std::string_view::npos) break;
        body.remove_prefix(eol + 1);
    }
    return samples;
}

// ------------------------------------------------------------------ output

std::string fixed(double value, int precision) {
    char buf[64];
    auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::fixed, precision);
    if (ec != std::errc()) return "0";
    return std::string(buf, ptr);
}

std::string integer(long long value) {
    char buf[32];
    auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, value);
    (void)ec;
    return std::string(buf, ptr);
}

std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        unsigned char u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20) {
            static const char hex[] = "0123456789abcdef";
            out += "\\u00";
            out += hex[u >> 4];
            out += hex[u & 15];
        } else {
            out += c;
        }
    }
    out += '"';
    return out;
}

// Nearest-rank percentile of sorted values.
template <typename T>
T percentile(const std::vector<T>& sorted, double p) {
    std::size_t n = sorted.size();
    std::size_t rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(n) + 0.999999999);
    rank = std::clamp<std::size_t>(rank, 1, n);
    return sorted[rank - 1];
}

const char* framing_name(Framing f) {
    switch (f) {
        case Framing::length:
            return "content-length";
        case Framing::chunked:
            return "chunked";
        case Framing::close:
            return "until-close";
    }
    return "?";
}

}  // namespace

int main(int argc, char** argv) {
    Options options = parse_options(argc, argv);
    ::signal(SIGPIPE, SIG_IGN);

    std::string host_header = options.host;
    if (host_header.find(':') != std::string::npos) host_header = "[" + host_header + "]";
    // No Accept-Encoding on purpose: servers then answer in identity encoding
    // (RFC 9110 §12.5.3), so sizes and costs compare without compression.
    const std::string request = "GET " + options.path + " HTTP/1.1\r\nHost: " + host_header + ":" +
                                options.port + "\r\nUser-Agent: scrape_bench\r\nAccept: */*\r\n\r\n";

    Connection conn(options);
    std::vector<double> latencies_ms;
    latencies_ms.reserve(static_cast<std::size_t>(options.requests));
    std::vector<std::size_t> body_sizes;
    std::vector<std::uint64_t> wire_sizes;
    body_sizes.reserve(static_cast<std::size_t>(options.requests));
    wire_sizes.reserve(static_cast<std::size_t>(options.requests));
    Response response;
    long samples = 0;
    long closes_announced = 0;
    long closes_silent = 0;

    const auto timeout =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.timeout));
    const long total = options.warmup + options.requests;
    const auto run_started = Clock::now();
    Clock::time_point timed_started = run_started;
    for (long i = 0; i < total; ++i) {
        if (i == options.warmup) timed_started = Clock::now();
        bool timed = i >= options.warmup;
        for (int attempt = 0;; ++attempt) {
            if (!conn.is_open()) conn.open();
            std::uint64_t wire_before = conn.wire_bytes_in();
            auto started = Clock::now();
            conn.set_deadline(started + timeout);
            bool sent = conn.write_all(request);
            ReadResult result = sent ? read_response(conn, response) : ReadResult::closed_before_response;
            auto finished = Clock::now();
            if (result == ReadResult::closed_before_response) {
                // An idle keep-alive connection closed by the server: retry
                // once on a new one (RFC 9112 §9.3.1 allows a safe method to
                // be retried), untimed.
                conn.close();
                ++closes_silent;
                if (attempt > 0) die("the server closed a fresh connection without answering");
                continue;
            }
            if (response.status != 200) die("unexpected status: '" + response.status_line + "'");
            if (!response.content_encoding.empty() && lower(response.content_encoding) != "identity") {
                die("the server answered with Content-Encoding: " + response.content_encoding);
            }
            if (timed) {
                latencies_ms.push_back(std::chrono::duration<double, std::milli>(finished - started).count());
                body_sizes.push_back(response.body.size());
                wire_sizes.push_back(conn.wire_bytes_in() - wire_before);
            }
            if (response.server_closes) {
                ++closes_announced;
                conn.close();
            }
            break;
        }
    }
    const auto run_finished = Clock::now();
    samples = count_samples(response.body);
    if (!options.save.empty()) {
        std::FILE* f = std::fopen(options.save.c_str(), "wb");
        if (f == nullptr ||
            std::fwrite(response.body.data(), 1, response.body.size(), f) != response.body.size() ||
            std::fclose(f) != 0) {
            die("cannot write " + options.save + ": " + std::strerror(errno));
        }
    }

    std::vector<double> sorted = latencies_ms;
    std::sort(sorted.begin(), sorted.end());
    std::sort(body_sizes.begin(), body_sizes.end());
    std::sort(wire_sizes.begin(), wire_sizes.end());
    double sum = 0;
    for (double v : sorted) sum += v;
    const double mean = sum / static_cast<double>(sorted.size());
    const double timed_seconds = std::chrono::duration<double>(run_finished - timed_started).count();
    const double rate = static_cast<double>(options.requests) / timed_seconds;
    const std::size_t body_median = percentile(body_sizes, 50);
    const std::uint64_t wire_median = percentile(wire_sizes, 50);

    if (options.json) {
        std::string out = "{";
        out += "\"host\":" + json_string(options.host);
        out += ",\"port\":" + options.port;
        out += ",\"path\":" + json_string(options.path);
        out += ",\"requests\":" + integer(options.requests);
        out += ",\"warmup\":" + integer(options.warmup);
        out += ",\"connections\":" + integer(conn.connections());
        out += ",\"closes_announced\":" + integer(closes_announced);
        out += ",\"closes_silent\":" + integer(closes_silent);
        out += ",\"median_ms\":" + fixed(percentile(sorted, 50), 3);
        out += ",\"p90_ms\":" + fixed(percentile(sorted, 90), 3);
        out += ",\"p99_ms\":" + fixed(percentile(sorted, 99), 3);
        out += ",\"min_ms\":" + fixed(sorted.front(), 3);
        out += ",\"max_ms\":" + fixed(sorted.back(), 3);
        out += ",\"mean_ms\":" + fixed(mean, 3);
        out += ",\"requests_per_s\":" + fixed(rate, 1);
        out += ",\"body_bytes_median\":" + integer(static_cast<long long>(body_median));
        out += ",\"body_bytes_min\":" + integer(static_cast<long long>(body_sizes.front()));
        out += ",\"body_bytes_max\":" + integer(static_cast<long long>(body_sizes.back()));
        out += ",\"wire_bytes_median\":" + integer(static_cast<long long>(wire_median));
        out += ",\"samples\":" + integer(samples);
        out += ",\"framing\":" + json_string(framing_name(response.framing));
        out += ",\"content_type\":" + json_string(response.content_type);
        out += "}\n";
        std::fputs(out.c_str(), stdout);
    } else {
        std::string out;
        out += "target         http://" + host_header + ":" + options.port + options.path + "\n";
        out += "requests       " + integer(options.requests) + " timed, sequential, after " +
               integer(options.warmup) + " untimed\n";
        out += "connections    " + integer(conn.connections()) + " (" + integer(closes_announced) +
               " closes announced by the server, " + integer(closes_silent) + " silent)\n";
        out += "latency ms     median " + fixed(percentile(sorted, 50), 3) + "  p90 " +
               fixed(percentile(sorted, 90), 3) + "  p99 " + fixed(percentile(sorted, 99), 3) + "  min " +
               fixed(sorted.front(), 3) + "  max " + fixed(sorted.back(), 3) + "  mean " + fixed(mean, 3) +
               "\n";
        out += "throughput     " + fixed(rate, 1) + " requests/s\n";
        out += "response       body " + integer(static_cast<long long>(body_median)) + " bytes median (min " +
               integer(static_cast<long long>(body_sizes.front())) + ", max " +
               integer(static_cast<long long>(body_sizes.back())) + "), on the wire " +
               integer(static_cast<long long>(wire_median)) + " bytes, " + framing_name(response.framing) +
               "\n";
        out += "samples        " + integer(samples) + " non-comment lines in the last response\n";
        out += "content type   " + response.content_type + "\n";
        std::fputs(out.c_str(), stdout);
    }
    return 0;
}
