// load_client: the fan-out benchmark for metrics-agent.
//
// Opens thousands of WebSocket connections from one process (epoll,
// non-blocking sockets), holds them through a measurement window aligned to
// whole seconds, and reports how many connections held, how many of the
// agent's ticks reached every client, the delivery delay (receipt time minus
// the timestamp in the message) and the agent's CPU and memory from /proc.
//
//   load_client --port 54112 --clients 1000 --duration 20 --pid PID
//
// Linux only. The client side of RFC 6455 is written here on purpose rather
// than taken from metrics_agent.hpp, so the benchmark also checks the agent's
// handshake and framing against an independent implementation.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace {

// ------------------------------------------------------------------ options

struct Options {
    std::string host = "127.0.0.1";
    int port = 54112;
    std::string path = "/api/system/metrics";
    std::string rich_path = "/api/ws/metrics";
    int interval = 0;  // rich stream interval; 0 = from --rich-path, else 1
    long clients = 100;
    double duration = 10;
    double warmup = 2;
    double grace = 2;
    double connect_timeout = 10;
    long batch = 500;
    int pid = 0;
    double rich_fraction = 0;
    int source_ips = 1;
    bool json = false;
    bool keep_sched = false;  // --keep-sched: stay SCHED_OTHER
    long poll_us = 0;         // --poll-us N: poll instead of sleeping in epoll_wait
};

const char kUsage[] =
    "usage: load_client [options]\n"
    "  --host ADDR            agent address (default 127.0.0.1)\n"
    "  --port PORT            agent port (default 54112)\n"
    "  --path PATH            stream for most clients (default /api/system/metrics)\n"
    "  --clients N            connections to open (default 100)\n"
    "  --duration SECONDS     measurement window (default 10)\n"
    "  --warmup SECONDS       wait after all connected before the window (default 2)\n"
    "  --grace SECONDS        keep reading after the window for late messages (default 2)\n"
    "  --pid PID              agent process, for its CPU and memory\n"
    "  --rich-fraction F      share of clients on --rich-path instead (0..1, default 0)\n"
    "  --rich-path PATH       the rich stream (default /api/ws/metrics)\n"
    "  --interval N           rich stream interval in seconds (default 1)\n"
    "  --source-ips K         bind connections to 127.0.0.1 .. 127.0.0.K (default 1)\n"
    "  --batch N              connection attempts in flight at once (default 500)\n"
    "  --connect-timeout S    per connection, connect plus handshake (default 10)\n"
    "  --json                 one JSON line instead of the table\n";

[[noreturn]] void usage_error(const std::string& msg) {
    std::fprintf(stderr, "load_client: %s\n%s", msg.c_str(), kUsage);
    std::exit(2);
}

template <class T>
std::string shortest(T v) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

template <class T>
T parse_number(const std::string& flag, const std::string& text, T lo, T hi) {
    T v{};
    const char* end = text.data() + text.size();
    auto r = std::from_chars(text.data(), end, v);
    if (r.ec != std::errc() || r.ptr != end || v < lo || v > hi) {
        std::string range = shortest(lo) + ".." + shortest(hi);
        usage_error(flag + ": expected a number in " + range + ", got '" + text + "'");
    }
    return v;
}

Options parse_options(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        std::string value;
        bool has_value = false;
        if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = arg.substr(eq + 1);
            arg.resize(eq);
            has_value = true;
        }
        auto next = [&]() -> std::string {
            if (has_value) return value;
            if (i + 1 >= argc) usage_error(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--host") o.host = next();
        else if (arg == "--port") o.port = parse_number<int>(arg, next(), 1, 65535);
        else if (arg == "--path") o.path = next();
        else if (arg == "--rich-path") o.rich_path = next();
        else if (arg == "--interval") o.interval = parse_number<int>(arg, next(), 1, 3600);
        else if (arg == "--clients") o.clients = parse_number<long>(arg, next(), 1, 1000000);
        else if (arg == "--duration") o.duration = parse_number<double>(arg, next(), 1, 86400);
        else if (arg == "--warmup") o.warmup = parse_number<double>(arg, next(), 0, 3600);
        else if (arg == "--grace") o.grace = parse_number<double>(arg, next(), 0, 60);
        else if (arg == "--connect-timeout") o.connect_timeout = parse_number<double>(arg, next(), 0.1, 600);
        else if (arg == "--batch") o.batch = parse_number<long>(arg, next(), 1, 100000);
        else if (arg == "--pid") o.pid = parse_number<int>(arg, next(), 1, 1 << 30);
        else if (arg == "--rich-fraction") o.rich_fraction = parse_number<double>(arg, next(), 0, 1);
        else if (arg == "--source-ips") o.source_ips = parse_number<int>(arg, next(), 1, 254);
        else if (arg == "--json" && !has_value) o.json = true;
        else if (arg == "--keep-sched" && !has_value) o.keep_sched = true;
        else if (arg == "--poll-us") o.poll_us = parse_number<long>(arg, next(), 0, 100000);
        else if (arg == "--help" || arg == "-h") { std::fputs(kUsage, stdout); std::exit(0); }
        else usage_error("unknown option " + arg);
    }
    for (const std::string* p : {&o.path, &o.rich_path})
        if (p->empty() || (*p)[0] != '/') usage_error("paths must start with '/': " + *p);
    return o;
}

// ------------------------------------------------------------------ text and numbers

std::string fixed(double v, int precision) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, precision);
    return std::string(buf, r.ptr);
}

std::string num(int64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') { out += '\\'; out += c; }
        else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else out += c;
    }
    return out + "\"";
}

// The value of the first "key": "string" pair in a JSON text; empty if absent.
// Enough for the agent's flat messages; not a JSON parser.
std::string_view string_field(std::string_view msg, std::string_view quoted_key) {
    size_t p = msg.find(quoted_key);
    if (p == std::string_view::npos) return {};
    p += quoted_key.size();
    while (p < msg.size() && (msg[p] == ' ' || msg[p] == '\t')) ++p;
    if (p >= msg.size() || msg[p] != ':') return {};
    ++p;
    while (p < msg.size() && (msg[p] == ' ' || msg[p] == '\t')) ++p;
    if (p >= msg.size() || msg[p] != '"') return {};
    size_t end = msg.find('"', ++p);
    if (end == std::string_view::npos) return {};
    return msg.substr(p, end - p);
}

// ISO 8601 in UTC as the agent writes it: "2025-11-10T12:30:45.123456" (flat
// stream, no zone) or "2026-01-19T14:30:05Z" (rich stream); a fraction of any
// length and a "+HH:MM" offset are accepted too. Returns microseconds since
// the epoch.
bool parse_timestamp(std::string_view s, int64_t& out_us) {
    auto digits = [&](size_t pos, size_t n, int& v) {
        v = 0;
        if (pos + n > s.size()) return false;
        for (size_t i = 0; i < n; ++i) {
            char c = s[pos + i];
            if (c < '0' || c > '9') return false;
            v = v * 10 + (c - '0');
        }
        return true;
    };
    int year, mon, day, hour, min, sec;
    if (!digits(0, 4, year) || s.size() < 19 || s[4] != '-' || !digits(5, 2, mon) || s[7] != '-' ||
        !digits(8, 2, day) || (s[10] != 'T' && s[10] != ' ') || !digits(11, 2, hour) ||
        s[13] != ':' || !digits(14, 2, min) || s[16] != ':' || !digits(17, 2, sec))
        return false;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) return false;
    size_t p = 19;
    int64_t frac_us = 0;
    if (p < s.size() && s[p] == '.') {
        ++p;
        int64_t scale = 100000;
        size_t first = p;
        for (; p < s.size() && s[p] >= '0' && s[p] <= '9'; ++p) {
            frac_us += (s[p] - '0') * scale;
            scale /= 10;
        }
        if (p == first) return false;
    }
    int64_t offset_s = 0;
    if (p < s.size() && s[p] == 'Z') {
        ++p;
    } else if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
        int oh, om;
        if (!digits(p + 1, 2, oh) || p + 3 >= s.size() || s[p + 3] != ':' || !digits(p + 4, 2, om))
            return false;
        offset_s = (s[p] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
        p += 6;
    }
    if (p != s.size()) return false;
    tm t{};
    t.tm_year = year - 1900;
    t.tm_mon = mon - 1;
    t.tm_mday = day;
    t.tm_hour = hour;
    t.tm_min = min;
    t.tm_sec = sec;
    out_us = (int64_t(timegm(&t)) - offset_s) * 1000000 + frac_us;
    return true;
}

std::string format_utc(int64_t us) {
    time_t s = time_t(us / 1000000);
    tm t{};
    gmtime_r(&s, &t);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &t);
    return buf;
}

std::string errno_name(int err) {
    const char* name = strerrorname_np(err);
    return name ? name : "errno " + std::to_string(err);
}

int64_t wall_us() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// ------------------------------------------------------------------ handshake crypto

// SHA-1 (FIPS 180-4 §6.1), only for checking Sec-WebSocket-Accept.
std::array<uint8_t, 20> sha1(std::string_view input) {
    uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    std::string m(input);
    m += char(0x80);
    while (m.size() % 64 != 56) m += char(0);
    uint64_t bits = uint64_t(input.size()) * 8;
    for (int i = 7; i >= 0; --i) m += char(uint8_t(bits >> (8 * i)));
    auto rol = [](uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
    for (size_t block = 0; block < m.size(); block += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; ++i) {
            const auto* b = reinterpret_cast<const uint8_t*>(m.data() + block + 4 * i);
            w[i] = uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3];
        }
        for (int i = 16; i < 80; ++i) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; ++i) {
            uint32_t f, k;
            if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999u; }
            else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1u; }
            else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDCu; }
            else { f = b ^ c ^ d; k = 0xCA62C1D6u; }
            uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d; d = c; c = rol(b, 30); b = a; a = t;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }
    std::array<uint8_t, 20> out{};
    for (int i = 0; i < 20; ++i) out[i] = uint8_t(h[i / 4] >> (24 - 8 * (i % 4)));
    return out;
}

std::string base64(const uint8_t* p, size_t n) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = uint32_t(p[i]) << 16;
        if (i + 1 < n) v |= uint32_t(p[i + 1]) << 8;
        if (i + 2 < n) v |= p[i + 2];
        out += abc[(v >> 18) & 63];
        out += abc[(v >> 12) & 63];
        out += i + 1 < n ? abc[(v >> 6) & 63] : '=';
        out += i + 2 < n ? abc[v & 63] : '=';
    }
    return out;
}

std::string accept_for(std::string_view key) {
    auto d = sha1(std::string(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");  // RFC 6455 §1.3
    return base64(d.data(), d.size());
}

// Masking keys and handshake nonces (RFC 6455 §5.3, §4.1): seeded from the
// kernel, then xorshift64*, which is plenty for a load generator.
struct Random {
    uint64_t s;
    Random() {
        if (getrandom(&s, sizeof s, 0) != ssize_t(sizeof s)) s = uint64_t(wall_us()) * 0x9E3779B97F4A7C15ull;
        s |= 1;
    }
    uint64_t next() {
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
        return s * 0x2545F4914F6CDD1Dull;
    }
};

// ------------------------------------------------------------------ /proc

bool read_small_file(const std::string& path, char* buf, size_t cap, size_t& len) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    len = 0;
    for (;;) {
        ssize_t n = ::read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += size_t(n);
        if (len == cap - 1) break;
    }
    ::close(fd);
    buf[len] = 0;
    return len > 0;
}

// utime + stime of a process, in clock ticks (proc(5), /proc/pid/stat fields 14 and 15).
bool read_cpu_ticks(int pid, int64_t& ticks, int64_t* user_ticks = nullptr) {
    char buf[1024];
    size_t len = 0;
    if (!read_small_file("/proc/" + std::to_string(pid) + "/stat", buf, sizeof buf, len)) return false;
    const char* p = std::strrchr(buf, ')');  // the command name may contain spaces and ')'
    if (!p) return false;
    int64_t utime = 0, stime = 0;
    for (int field = 3; field <= 15 && *p; ++field) {  // field 3 (state) follows the name
        while (*p == ' ' || *p == ')') ++p;
        const char* start = p;
        while (*p && *p != ' ') ++p;
        if (field == 14) std::from_chars(start, p, utime);
        if (field == 15) std::from_chars(start, p, stime);
    }
    ticks = utime + stime;
    if (user_ticks) *user_ticks = utime;
    return true;
}

// VmRSS and VmHWM from /proc/pid/status, in KiB.
bool read_memory(int pid, int64_t& rss_kib, int64_t& hwm_kib) {
    char buf[8192];
    size_t len = 0;
    if (!read_small_file("/proc/" + std::to_string(pid) + "/status", buf, sizeof buf, len)) return false;
    std::string_view s(buf, len);
    auto field = [&](std::string_view name, int64_t& v) {
        size_t p = s.find(name);
        if (p == std::string_view::npos) return false;
        p += name.size();
        while (p < s.size() && (s[p] == ' ' || s[p] == '\t')) ++p;
        return std::from_chars(s.data() + p, s.data() + s.size(), v).ec == std::errc();
    };
    return field("VmRSS:", rss_kib) && field("VmHWM:", hwm_kib);
}

double self_cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// ------------------------------------------------------------------ state

// One stream (flat or rich) and everything measured about its clients.
struct Group {
    std::string name, path;
    int interval = 1;
    int64_t requested = 0, connected = 0, open_at_end = 0;
    int64_t connect_failed = 0, handshake_failed = 0, timeouts = 0;
    std::map<std::string, int64_t> connect_errors;  // errno name -> count
    std::map<int, int64_t> http_status;             // answers other than 101
    std::map<int, int64_t> server_closes;           // close code -> count, before our close
    int64_t resets = 0, eofs = 0, protocol_errors = 0;
    int64_t ticks = 0, expected = 0, received = 0, duplicates = 0, late = 0, other = 0;
    int64_t pings = 0, clean_closes = 0, unclean_closes = 0;
    std::vector<int32_t> delays_us;
};

enum class State : uint8_t { Idle, Connecting, Handshaking, Open, Closing, Done };

struct Conn {
    int fd = -1;
    State state = State::Idle;
    uint8_t group = 0;
    bool want_out = false;
    bool close_sent = false;
    bool close_received = false;
    bool we_closed = false;  // the close handshake was ours (end of run)
    bool frag_active = false;
    int64_t deadline_us = 0;
    int64_t last_tick = INT64_MIN;
    std::array<char, 28> accept{};
    std::vector<uint8_t> in;  // bytes of an incomplete response or frame
    std::string out;          // bytes the socket did not take yet
    std::string frag;         // a fragmented message being reassembled
};

enum class Phase { Connect, Warmup, Window, Grace, Closing, End };

class Bench {
public:
    explicit Bench(const Options& o) : opt_(o) {}
    int run();

private:
    bool resolve();
    void launch(size_t i);
    void on_event(size_t i, uint32_t events);
    void on_connected(Conn& c);
    void on_readable(Conn& c);
    void feed(Conn& c, const uint8_t* p, size_t n, int64_t now);
    void feed_handshake(Conn& c, const uint8_t* p, size_t n, int64_t now);
    size_t parse_frames(Conn& c, const uint8_t* p, size_t n, int64_t now);
    void on_frame(Conn& c, bool fin, int opcode, const uint8_t* p, size_t n, int64_t now);
    void on_message(Conn& c, std::string_view msg, int64_t now);
    void send_frame(Conn& c, int opcode, const void* payload, size_t n);
    void send_raw(Conn& c, std::string_view data);
    void flush(Conn& c);
    void update_interest(Conn& c);
    enum class End { Reset, Eof, Protocol, Timeout, Finished };
    void finish(Conn& c, End how, int err = 0);
    void sweep_timeouts(int64_t now);
    void start_closing(int64_t now);
    void sample(bool first, int64_t now);
    void report();

    Options opt_;
    std::vector<Group> groups_;
    std::vector<Conn> conns_;
    Random rng_;
    int epfd_ = -1;
    sockaddr_storage addr_{};
    socklen_t addr_len_ = 0;
    std::string request_head_[2];  // the GET line and headers up to the key, per group
    std::string request_host_;

    Phase phase_ = Phase::Connect;
    size_t launched_ = 0;
    long in_flight_ = 0;
    long active_ = 0;  // sockets not yet Done
    int64_t started_us_ = 0, connected_us_ = 0;
    int64_t window_start_ = 0, window_end_ = 0;
    int64_t sample0_at_ = 0, sample1_at_ = 0, grace_end_ = 0, close_deadline_ = 0;
    bool sampled0_ = false, sampled1_ = false;

    // agent and client cost over the window
    bool agent_cpu_ok_ = false, agent_mem_ok_ = false;
    int64_t agent_user0_ = 0, agent_user1_ = 0;  // user-mode share
    int64_t agent_ticks0_ = 0, agent_ticks1_ = 0, sample_wall0_ = 0, sample_wall1_ = 0;
    double self_cpu0_ = 0, self_cpu1_ = 0;
    int64_t rss_before_kib_ = -1, rss_kib_ = -1, hwm_kib_ = -1;
    long nofile_limit_ = 0;
};

bool Bench::resolve() {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&addr_);
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr_);
    std::string host = opt_.host;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(uint16_t(opt_.port));
        addr_len_ = sizeof *a4;
        request_host_ = host + ":" + std::to_string(opt_.port);
        return true;
    }
    if (inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(uint16_t(opt_.port));
        addr_len_ = sizeof *a6;
        request_host_ = "[" + host + "]:" + std::to_string(opt_.port);
        return true;
    }
    return false;
}

void Bench::launch(size_t i) {
    Conn& c = conns_[i];
    Group& g = groups_[c.group];
    c.deadline_us = wall_us() + int64_t(opt_.connect_timeout * 1e6);
    int fd = ::socket(addr_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c.state = State::Done;
        ++g.connect_failed;
        ++g.connect_errors[std::string("socket: ") + errno_name(errno)];
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt_.source_ips > 1 && addr_.ss_family == AF_INET) {
        // Let connect() pick the port per (source, destination) pair instead of
        // bind() reserving one per source address (ip(7)).
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        sockaddr_in local{};
        local.sin_family = AF_INET;
        local.sin_addr.s_addr = htonl(0x7F000001u + uint32_t(i % size_t(opt_.source_ips)));
        if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
            ++g.connect_failed;
            ++g.connect_errors[std::string("bind: ") + errno_name(errno)];
            ::close(fd);
            c.state = State::Done;
            return;
        }
    }
    c.fd = fd;
    ++active_;
    ++in_flight_;
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr_), addr_len_);
    epoll_event ev{};
    ev.data.u64 = i;
    if (rc == 0) {
        ev.events = EPOLLIN;
        epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
        on_connected(c);
    } else if (errno == EINPROGRESS) {
        c.state = State::Connecting;
        c.want_out = true;
        ev.events = EPOLLOUT;
        epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
    } else {
        c.state = State::Connecting;
        finish(c, End::Reset, errno);
    }
}

void Bench::on_connected(Conn& c) {
    c.state = State::Handshaking;
    uint8_t nonce[16];
    uint64_t r0 = rng_.next(), r1 = rng_.next();
    std::memcpy(nonce, &r0, 8);
    std::memcpy(nonce + 8, &r1, 8);
    std::string key = base64(nonce, sizeof nonce);
    std::string accept = accept_for(key);
    std::memcpy(c.accept.data(), accept.data(), c.accept.size());
    std::string req = request_head_[c.group];
    req += "Sec-WebSocket-Key: ";
    req += key;
    req += "\r\n\r\n";
    send_raw(c, req);
}

void Bench::update_interest(Conn& c) {
    bool want = !c.out.empty() || c.state == State::Connecting;
    if (c.fd < 0 || want == c.want_out) return;
    c.want_out = want;
    epoll_event ev{};
    ev.events = (c.state == State::Connecting ? 0u : uint32_t(EPOLLIN)) | (want ? uint32_t(EPOLLOUT) : 0u);
    ev.data.u64 = size_t(&c - conns_.data());
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void Bench::send_raw(Conn& c, std::string_view data) {
    if (c.fd < 0) return;
    c.out.append(data);
    flush(c);
}

void Bench::flush(Conn& c) {
    while (!c.out.empty() && c.fd >= 0) {
        ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n > 0) {
            c.out.erase(0, size_t(n));
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            finish(c, End::Reset, errno);
            return;
        }
    }
    update_interest(c);
}

// Client frames are always masked (RFC 6455 §5.3); ours are control frames
// and short texts, so the 7-bit and 16-bit length forms suffice.
void Bench::send_frame(Conn& c, int opcode, const void* payload, size_t n) {
    if (n > 0xFFFF) return;
    std::string f;
    f += char(0x80 | opcode);
    if (n < 126) {
        f += char(0x80 | n);
    } else {
        f += char(0x80 | 126);
        f += char(n >> 8);
        f += char(n & 0xFF);
    }
    uint32_t key = uint32_t(rng_.next());
    char mask[4];
    std::memcpy(mask, &key, 4);
    f.append(mask, 4);
    const auto* p = static_cast<const char*>(payload);
    for (size_t i = 0; i < n; ++i) f += char(p[i] ^ mask[i % 4]);
    send_raw(c, f);
}

void Bench::finish(Conn& c, End how, int err) {
    Group& g = groups_[c.group];
    switch (c.state) {
    case State::Connecting:
        --in_flight_;
        if (how == End::Timeout) ++g.timeouts;
        else {
            ++g.connect_failed;
            ++g.connect_errors[err ? errno_name(err) : "closed"];
        }
        break;
    case State::Handshaking:
        --in_flight_;
        if (how == End::Timeout) ++g.timeouts;
        else if (how != End::Finished) ++g.handshake_failed;
        break;
    case State::Open:
        if (how == End::Reset) ++g.resets;
        else if (how == End::Eof) ++g.eofs;
        else if (how == End::Protocol) ++g.protocol_errors;
        break;
    case State::Closing:
        if (c.we_closed) {
            if (c.close_received && how == End::Eof) ++g.clean_closes;
            else ++g.unclean_closes;
        } else if (how == End::Protocol) {
            ++g.protocol_errors;
        }
        break;
    case State::Idle:
    case State::Done:
        return;
    }
    if (c.fd >= 0) {
        ::close(c.fd);  // also removes it from the epoll set
        --active_;
    }
    c.fd = -1;
    c.state = State::Done;
    std::vector<uint8_t>().swap(c.in);
    std::string().swap(c.out);
    std::string().swap(c.frag);
}

void Bench::on_event(size_t i, uint32_t events) {
    Conn& c = conns_[i];
    if (c.fd < 0) return;
    if (c.state == State::Connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            finish(c, End::Reset, err);
            return;
        }
        if (!(events & EPOLLOUT)) {
            finish(c, End::Reset, ECONNABORTED);
            return;
        }
        c.want_out = false;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
        on_connected(c);
        return;
    }
    if (events & EPOLLOUT) flush(c);
    if (c.fd >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(c);
}

void Bench::on_readable(Conn& c) {
    static uint8_t buf[1 << 16];
    for (;;) {
        ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
        if (n > 0) {
            feed(c, buf, size_t(n), wall_us());
            if (c.fd < 0 || size_t(n) < sizeof buf) return;
        } else if (n == 0) {
            finish(c, End::Eof);
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            finish(c, End::Reset, errno);
            return;
        }
    }
}

void Bench::feed(Conn& c, const uint8_t* p, size_t n, int64_t now) {
    if (c.state == State::Handshaking) {
        feed_handshake(c, p, n, now);
        return;
    }
    if (c.state != State::Open && c.state != State::Closing) return;
    if (c.in.empty()) {
        size_t used = parse_frames(c, p, n, now);
        if (c.fd >= 0 && used < n) c.in.assign(p + used, p + n);
    } else {
        c.in.insert(c.in.end(), p, p + n);
        size_t used = parse_frames(c, c.in.data(), c.in.size(), now);
        if (c.fd >= 0) c.in.erase(c.in.begin(), c.in.begin() + ptrdiff_t(used));
    }
}

void Bench::feed_handshake(Conn& c, const uint8_t* p, size_t n, int64_t now) {
    Group& g = groups_[c.group];
    c.in.insert(c.in.end(), p, p + n);
    std::string_view s(reinterpret_cast<const char*>(c.in.data()), c.in.size());
    size_t end = s.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        if (s.size() > 16384) finish(c, End::Protocol);
        return;
    }
    std::string_view head = s.substr(0, end + 2);
    int status = 0;
    if (head.rfind("HTTP/1.1 ", 0) == 0 && head.size() >= 12)
        std::from_chars(head.data() + 9, head.data() + 12, status);
    if (status != 101) {
        ++g.http_status[status];
        c.state = State::Done;  // counted here, not as a handshake failure
        --in_flight_;
        ::close(c.fd);
        --active_;
        c.fd = -1;
        std::vector<uint8_t>().swap(c.in);
        return;
    }
    // Header names are case-insensitive (RFC 7230 §3.2); find the accept line.
    bool accept_ok = false;
    size_t line = head.find("\r\n");
    while (line != std::string_view::npos && line + 2 < head.size()) {
        size_t next = head.find("\r\n", line + 2);
        std::string_view h = head.substr(line + 2, next - line - 2);
        static const char name[] = "sec-websocket-accept:";
        if (h.size() > sizeof name - 1 &&
            strncasecmp(h.data(), name, sizeof name - 1) == 0) {
            std::string_view v = h.substr(sizeof name - 1);
            while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
            while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
            accept_ok = v == std::string_view(c.accept.data(), c.accept.size());
        }
        line = next;
    }
    if (!accept_ok) {
        finish(c, End::Protocol);
        return;
    }
    c.state = State::Open;
    --in_flight_;
    ++g.connected;
    std::vector<uint8_t> rest(c.in.begin() + ptrdiff_t(end + 4), c.in.end());
    c.in.clear();
    c.in.shrink_to_fit();
    if (!rest.empty()) feed(c, rest.data(), rest.size(), now);
}

size_t Bench::parse_frames(Conn& c, const uint8_t* p, size_t n, int64_t now) {
    size_t off = 0;
    while (c.fd >= 0 && n - off >= 2) {
        const uint8_t* f = p + off;
        bool fin = f[0] & 0x80;
        int opcode = f[0] & 0x0F;
        size_t header = 2;
        uint64_t len = f[1] & 0x7F;
        if (len == 126) {
            if (n - off < 4) break;
            len = uint64_t(f[2]) << 8 | f[3];
            header = 4;
        } else if (len == 127) {
            if (n - off < 10) break;
            len = 0;
            for (int i = 0; i < 8; ++i) len = len << 8 | f[2 + i];
            header = 10;
        }
        // A server must not mask (RFC 6455 §5.1) nor set RSV bits without an
        // extension (§5.2); a 64-bit length has its top bit clear (§5.2).
        if ((f[1] & 0x80) || (f[0] & 0x70) || (len >> 63) || len > (64u << 20)) {
            send_frame(c, 8, "\x03\xea", 2);  // 1002 protocol error
            finish(c, End::Protocol);
            return off;
        }
        if (n - off - header < len) break;
        on_frame(c, fin, opcode, f + header, size_t(len), now);
        off += header + size_t(len);
    }
    return off;
}

void Bench::on_frame(Conn& c, bool fin, int opcode, const uint8_t* p, size_t n, int64_t now) {
    Group& g = groups_[c.group];
    auto protocol_error = [&] {
        send_frame(c, 8, "\x03\xea", 2);
        finish(c, End::Protocol);
    };
    switch (opcode) {
    case 0x1:
    case 0x2:
        if (c.frag_active) return protocol_error();
        if (fin) on_message(c, std::string_view(reinterpret_cast<const char*>(p), n), now);
        else {
            c.frag.assign(reinterpret_cast<const char*>(p), n);
            c.frag_active = true;
        }
        return;
    case 0x0:
        if (!c.frag_active) return protocol_error();
        c.frag.append(reinterpret_cast<const char*>(p), n);
        if (fin) {
            c.frag_active = false;
            std::string msg;
            msg.swap(c.frag);
            on_message(c, msg, now);
        }
        return;
    case 0x8: {
        // Control frames: at most 125 bytes, never fragmented (RFC 6455 §5.5).
        if (!fin || n > 125 || n == 1) return protocol_error();
        int code = n >= 2 ? (p[0] << 8 | p[1]) : 1005;
        c.close_received = true;
        if (!c.close_sent) {
            if (c.state == State::Open) ++g.server_closes[code];
            c.close_sent = true;
            c.state = State::Closing;
            if (n >= 2) send_frame(c, 8, p, 2);  // echo the code (§5.5.1)
            else send_frame(c, 8, nullptr, 0);
        }
        return;  // the server closes the TCP connection first (§7.1.1)
    }
    case 0x9:
        if (!fin || n > 125) return protocol_error();
        ++g.pings;
        if (!c.close_sent) send_frame(c, 0xA, p, n);
        return;
    case 0xA:
        if (!fin || n > 125) return protocol_error();
        return;
    default:
        return protocol_error();  // reserved opcodes (§5.2)
    }
}

void Bench::on_message(Conn& c, std::string_view msg, int64_t now) {
    Group& g = groups_[c.group];
    std::string_view type = string_field(msg, "\"type\"");
    int64_t ts;
    if ((!type.empty() && type != "metrics") || !parse_timestamp(string_field(msg, "\"timestamp\""), ts)) {
        ++g.other;
        return;
    }
    // The tick is the second the message belongs to; round, since a timestamp
    // may be taken just before or after the boundary.
    int64_t tick = (ts + 500000) / 1000000 * 1000000;
    if (tick < window_start_ || tick >= window_end_ || window_start_ == 0) return;
    if (now >= grace_end_) {
        ++g.late;
        return;
    }
    if (tick == c.last_tick) {
        ++g.duplicates;
        return;
    }
    c.last_tick = tick;
    ++g.received;
    int64_t d = now - ts;
    g.delays_us.push_back(int32_t(std::clamp<int64_t>(d, INT32_MIN, INT32_MAX)));
}

void Bench::sweep_timeouts(int64_t now) {
    for (size_t i = 0; i < launched_; ++i) {
        Conn& c = conns_[i];
        if ((c.state == State::Connecting || c.state == State::Handshaking) && now >= c.deadline_us)
            finish(c, End::Timeout);
    }
}

void Bench::start_closing(int64_t now) {
    for (Group& g : groups_) g.open_at_end = 0;
    for (Conn& c : conns_) {
        if (c.state == State::Open) {
            ++groups_[c.group].open_at_end;
            c.state = State::Closing;
            c.we_closed = true;
            c.close_sent = true;
            send_frame(c, 8, "\x03\xe8" "benchmark done", 16);  // 1000 normal closure
        } else if (c.state == State::Connecting || c.state == State::Handshaking) {
            finish(c, End::Timeout);
        }
    }
    close_deadline_ = now + 3000000;
}

void Bench::sample(bool first, int64_t now) {
    if (first) {
        sample_wall0_ = now;
        self_cpu0_ = self_cpu_seconds();
        agent_cpu_ok_ = opt_.pid && read_cpu_ticks(opt_.pid, agent_ticks0_, &agent_user0_);
    } else {
        sample_wall1_ = now;
        self_cpu1_ = self_cpu_seconds();
        agent_cpu_ok_ = agent_cpu_ok_ && read_cpu_ticks(opt_.pid, agent_ticks1_, &agent_user1_);
        agent_mem_ok_ = opt_.pid && read_memory(opt_.pid, rss_kib_, hwm_kib_);
    }
}

int Bench::run() {
    if (!resolve()) {
        std::fprintf(stderr, "load_client: --host %s is not a numeric IPv4 or IPv6 address\n", opt_.host.c_str());
        return 2;
    }
    if (accept_for("dGhlIHNhbXBsZSBub25jZQ==") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {  // RFC 6455 §1.3
        std::fprintf(stderr, "load_client: SHA-1 self-check failed\n");
        return 1;
    }
    // The clients stand in for thousands of remote machines, which never
    // preempt the agent on its own CPU. As SCHED_BATCH this process does not
    // preempt it on wake-up either (see sched(7)), so the agent's figures are
    // not inflated by a context switch per delivered message.
    if (!opt_.keep_sched) {
        sched_param sp{};
        sched_setscheduler(0, SCHED_BATCH, &sp);
    }
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    nofile_limit_ = long(rl.rlim_cur);
    if (opt_.clients + 16 > nofile_limit_)
        std::fprintf(stderr, "load_client: warning: open-file limit %ld is below --clients %ld\n",
                     nofile_limit_, opt_.clients);

    // Groups: 0 = --path, 1 = --rich-path.
    auto interval_of = [](const std::string& path, int fallback) {
        size_t p = path.find("interval=");
        if (p == std::string::npos) return fallback;
        int v = 0;
        std::from_chars(path.data() + p + 9, path.data() + path.size(), v);
        return v > 0 ? v : fallback;
    };
    groups_.resize(2);
    groups_[0].name = "main";
    groups_[0].path = opt_.path;
    groups_[0].interval = interval_of(opt_.path, opt_.path.rfind("/api/system/metrics", 0) == 0 ? 1 : 5);
    groups_[1].name = "rich";
    groups_[1].path = opt_.rich_path;
    if (opt_.rich_path.find("interval=") == std::string::npos) {
        groups_[1].path += opt_.rich_path.find('?') == std::string::npos ? "?" : "&";
        groups_[1].path += "interval=" + std::to_string(opt_.interval ? opt_.interval : 1);
    } else if (opt_.interval) {
        usage_error("--interval conflicts with the interval in --rich-path");
    }
    groups_[1].interval = interval_of(groups_[1].path, 1);
    if (groups_[0].path.rfind("/api/system/metrics", 0) == 0) groups_[0].name = "flat";
    for (int gi = 0; gi < 2; ++gi) {
        request_head_[gi] = "GET " + groups_[gi].path + " HTTP/1.1\r\nHost: " + request_host_ +
                            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Version: 13\r\nUser-Agent: metrics-agent-load-client\r\n";
    }

    // Spread the rich clients evenly among the others.
    const long n = opt_.clients;
    const long rich = long(double(n) * opt_.rich_fraction + 0.5);
    conns_.resize(size_t(n));
    for (long i = 0; i < n; ++i) {
        bool is_rich = rich > 0 && (i + 1) * rich / n > i * rich / n;
        conns_[size_t(i)].group = is_rich ? 1 : 0;
        ++groups_[is_rich ? 1 : 0].requested;
    }

    if (opt_.pid) {
        int64_t hwm;
        if (!read_memory(opt_.pid, rss_before_kib_, hwm)) {
            std::fprintf(stderr, "load_client: cannot read /proc/%d/status\n", opt_.pid);
            return 1;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
        std::perror("load_client: epoll_create1");
        return 1;
    }

    started_us_ = wall_us();
    int64_t last_sweep = started_us_;
    std::vector<epoll_event> events(1024);
    while (phase_ != Phase::End) {
        int64_t now = wall_us();
        if (phase_ == Phase::Connect) {
            while (in_flight_ < opt_.batch && launched_ < conns_.size()) launch(launched_++);
            if (now - last_sweep >= 100000) {
                sweep_timeouts(now);
                last_sweep = now;
            }
            if (launched_ == conns_.size() && in_flight_ == 0) {
                connected_us_ = now;
                // Ticks fall on whole seconds: start the window on one, and
                // sample the agent's CPU half a second before the window's
                // first and after its last tick, so exactly `duration` ticks
                // (and their delivery) fall inside the sampled span.
                int64_t after = now + int64_t(opt_.warmup * 1e6);
                window_start_ = (after + 999999) / 1000000 * 1000000;
                window_end_ = window_start_ + int64_t(opt_.duration * 1e6);
                window_end_ = window_start_ + (window_end_ - window_start_ + 999999) / 1000000 * 1000000;
                sample0_at_ = window_start_ - 500000;
                sample1_at_ = window_end_ - 500000;
                grace_end_ = window_end_ + int64_t(opt_.grace * 1e6);
                phase_ = Phase::Warmup;
                if (groups_[0].connected + groups_[1].connected == 0) {
                    std::fprintf(stderr, "load_client: no client connected, no window to measure\n");
                    phase_ = Phase::End;
                    break;
                }
            }
        }
        if (phase_ == Phase::Warmup && now >= sample0_at_) {
            sample(true, now);
            sampled0_ = true;
            phase_ = Phase::Window;
        }
        if (phase_ == Phase::Window && now >= sample1_at_) {
            sample(false, now);
            sampled1_ = true;
            phase_ = Phase::Grace;
        }
        if (phase_ == Phase::Grace && now >= grace_end_) {
            start_closing(now);
            phase_ = Phase::Closing;
        }
        if (phase_ == Phase::Closing && (active_ == 0 || now >= close_deadline_)) {
            for (Conn& c : conns_) finish(c, End::Timeout);
            phase_ = Phase::End;
            break;
        }

        int64_t next = now + 100000;
        switch (phase_) {
        case Phase::Warmup: next = std::min(next, sample0_at_); break;
        case Phase::Window: next = std::min(next, sample1_at_); break;
        case Phase::Grace: next = std::min(next, grace_end_); break;
        case Phase::Closing: next = std::min(next, close_deadline_); break;
        default: break;
        }
        if (phase_ == Phase::Connect && in_flight_ < opt_.batch && launched_ < conns_.size()) next = now;
        int timeout_ms = int(std::max<int64_t>(0, (next - now + 999) / 1000));
        int got;
        if (opt_.poll_us > 0) {
            // Polling mode: never sleep inside epoll_wait, so the agent's send()
            // never has to wake this process (on a VM, an inter-processor
            // interrupt per message) -- remote clients cost the agent nothing
            // of the kind. Receipt times are then late by up to poll_us.
            got = epoll_wait(epfd_, events.data(), int(events.size()), 0);
            if (got == 0 && timeout_ms > 0) {
                timespec ts{0, long(std::min<int64_t>(opt_.poll_us, int64_t(timeout_ms) * 1000)) * 1000};
                nanosleep(&ts, nullptr);
            }
        } else {
            got = epoll_wait(epfd_, events.data(), int(events.size()), timeout_ms);
        }
        if (got < 0 && errno != EINTR) {
            std::perror("load_client: epoll_wait");
            return 1;
        }
        for (int k = 0; k < got; ++k) on_event(size_t(events[size_t(k)].data.u64), events[size_t(k)].events);
    }
    ::close(epfd_);

    for (Group& g : groups_) {
        g.ticks = 0;
        for (int64_t t = window_start_; t < window_end_; t += 1000000)
            if ((t / 1000000) % g.interval == 0) ++g.ticks;
        g.expected = g.connected * g.ticks;
    }
    report();
    int64_t connected = groups_[0].connected + groups_[1].connected;
    return connected > 0 ? 0 : 1;
}

// ------------------------------------------------------------------ report

struct Delays {
    int64_t count = 0;
    double p50 = 0, p99 = 0, max = 0;  // milliseconds
};

Delays summarize(std::vector<int32_t> v) {
    Delays d;
    d.count = int64_t(v.size());
    if (v.empty()) return d;
    std::sort(v.begin(), v.end());
    auto rank = [&](double q) {  // nearest-rank percentile
        size_t k = size_t(q * double(v.size()) + 0.999999);
        return double(v[std::min(v.size(), std::max<size_t>(k, 1)) - 1]) / 1000.0;
    };
    d.p50 = rank(0.50);
    d.p99 = rank(0.99);
    d.max = double(v.back()) / 1000.0;
    return d;
}

std::string percent(int64_t part, int64_t whole) {
    return whole > 0 ? fixed(100.0 * double(part) / double(whole), 2) + "%" : std::string("n/a");
}

std::string mib(int64_t kib) { return fixed(double(kib) / 1024.0, 1); }

void Bench::report() {
    struct Line {
        std::string label, path;
        int interval;
        int64_t requested, connected, at_end, expected, received;
        Delays d;
        const Group* g;
    };
    std::vector<Line> lines;
    Group total;
    std::vector<int32_t> all;
    for (const Group& g : groups_) {
        if (g.requested == 0) continue;
        lines.push_back({g.name, g.path, g.interval, g.requested, g.connected, g.open_at_end, g.expected,
                         g.received, summarize(g.delays_us), &g});
        total.requested += g.requested;
        total.connected += g.connected;
        total.open_at_end += g.open_at_end;
        total.expected += g.expected;
        total.received += g.received;
        all.insert(all.end(), g.delays_us.begin(), g.delays_us.end());
    }
    Delays td = summarize(std::move(all));
    double wall_s = double(sample_wall1_ - sample_wall0_) / 1e6;
    bool have_window = sampled0_ && sampled1_ && wall_s > 0;
    double agent_cpu = -1, agent_user_cpu = -1;
    if (agent_cpu_ok_ && have_window) {
        agent_cpu = 100.0 * double(agent_ticks1_ - agent_ticks0_) / double(sysconf(_SC_CLK_TCK)) / wall_s;
        agent_user_cpu = 100.0 * double(agent_user1_ - agent_user0_) / double(sysconf(_SC_CLK_TCK)) / wall_s;
    }
    double self_cpu = have_window ? 100.0 * (self_cpu1_ - self_cpu0_) / wall_s : -1;
    double connect_s = double(connected_us_ - started_us_) / 1e6;

    auto problems = [](const Group& g) {
        std::string s;
        auto add = [&](const std::string& what) { s += (s.empty() ? "" : ", ") + what; };
        for (auto& [k, v] : g.connect_errors) add("connect " + k + " x" + num(v));
        for (auto& [k, v] : g.http_status) add("HTTP " + num(k) + " x" + num(v));
        if (g.handshake_failed) add("bad handshake x" + num(g.handshake_failed));
        if (g.timeouts) add("connect timeout x" + num(g.timeouts));
        for (auto& [k, v] : g.server_closes) add("closed by agent " + num(k) + " x" + num(v));
        if (g.resets) add("reset x" + num(g.resets));
        if (g.eofs) add("eof without close x" + num(g.eofs));
        if (g.protocol_errors) add("protocol error x" + num(g.protocol_errors));
        if (g.duplicates) add("duplicate ticks x" + num(g.duplicates));
        if (g.late) add("late (after grace) x" + num(g.late));
        if (g.unclean_closes) add("unclean close at end x" + num(g.unclean_closes));
        return s;
    };

    if (opt_.json) {
        auto delays_json = [](const Delays& d) {
            return "{\"count\":" + num(d.count) + ",\"p50\":" + fixed(d.p50, 3) + ",\"p99\":" + fixed(d.p99, 3) +
                   ",\"max\":" + fixed(d.max, 3) + "}";
        };
        auto map_json = [](const auto& m) {
            std::string s = "{";
            for (auto& [k, v] : m) {
                if (s.size() > 1) s += ",";
                if constexpr (std::is_same_v<std::decay_t<decltype(k)>, std::string>) s += json_string(k);
                else s += json_string(num(k));
                s += ':';
                s += num(v);
            }
            return s + "}";
        };
        std::string j = "{\"clients\":" + num(total.requested) + ",\"connected\":" + num(total.connected) +
                        ",\"at_end\":" + num(total.open_at_end) + ",\"expected\":" + num(total.expected) +
                        ",\"received\":" + num(total.received) + ",\"delivery_percent\":" +
                        (total.expected ? fixed(100.0 * double(total.received) / double(total.expected), 3) : "null") +
                        ",\"delay_ms\":" + delays_json(td) + ",\"window\":{\"start\":" +
                        json_string(format_utc(window_start_)) + ",\"seconds\":" +
                        num((window_end_ - window_start_) / 1000000) + ",\"warmup\":" + fixed(opt_.warmup, 1) +
                        "},\"connect_seconds\":" + fixed(connect_s, 3) + ",\"agent\":{\"pid\":" + num(opt_.pid) +
                        ",\"cpu_percent\":" + (agent_cpu >= 0 ? fixed(agent_cpu, 2) : "null") +
                        ",\"rss_before_kib\":" + (rss_before_kib_ >= 0 ? num(rss_before_kib_) : "null") +
                        ",\"rss_kib\":" + (agent_mem_ok_ ? num(rss_kib_) : "null") +
                        ",\"peak_rss_kib\":" + (agent_mem_ok_ ? num(hwm_kib_) : "null") +
                        "},\"client_cpu_percent\":" + (self_cpu >= 0 ? fixed(self_cpu, 2) : "null") +
                        ",\"groups\":[";
        for (size_t k = 0; k < lines.size(); ++k) {
            const Line& l = lines[k];
            const Group& g = *l.g;
            j += (k ? "," : "") + std::string("{\"name\":") + json_string(l.label) + ",\"path\":" +
                 json_string(l.path) + ",\"interval\":" + num(l.interval) + ",\"ticks\":" + num(g.ticks) +
                 ",\"clients\":" + num(l.requested) + ",\"connected\":" + num(l.connected) +
                 ",\"at_end\":" + num(l.at_end) + ",\"expected\":" + num(l.expected) + ",\"received\":" +
                 num(l.received) + ",\"delay_ms\":" + delays_json(l.d) + ",\"connect_errors\":" +
                 map_json(g.connect_errors) + ",\"http_status\":" + map_json(g.http_status) +
                 ",\"handshake_failed\":" + num(g.handshake_failed) + ",\"timeouts\":" + num(g.timeouts) +
                 ",\"server_closes\":" + map_json(g.server_closes) + ",\"resets\":" + num(g.resets) +
                 ",\"eofs\":" + num(g.eofs) + ",\"protocol_errors\":" + num(g.protocol_errors) +
                 ",\"duplicates\":" + num(g.duplicates) + ",\"late\":" + num(g.late) + ",\"other\":" +
                 num(g.other) + ",\"pings\":" + num(g.pings) + ",\"clean_closes\":" + num(g.clean_closes) +
                 ",\"unclean_closes\":" + num(g.unclean_closes) + "}";
        }
        j += "]}\n";
        std::fputs(j.c_str(), stdout);
        return;
    }

    auto body = [](int64_t req, int64_t conn, int64_t at_end, int64_t exp, int64_t rec, const Delays& d) {
        return "clients " + num(conn) + "/" + num(req) + " connected, " + num(at_end) + " at end | messages " +
               num(rec) + "/" + num(exp) + " (" + percent(rec, exp) + ") | delay p50 " + fixed(d.p50, 1) +
               " ms p99 " + fixed(d.p99, 1) + " ms max " + fixed(d.max, 1) + " ms";
    };
    std::string window = "window " + format_utc(window_start_) + " + " +
                         num((window_end_ - window_start_) / 1000000) + " s after " + fixed(connect_s, 1) +
                         " s connecting and " + fixed(opt_.warmup, 1) + " s warmup";
    auto stream = [](const Line& l) {
        return l.path + " every " + num(l.interval) + " s (" + num(l.g->ticks) + " ticks)";
    };
    std::string out;
    if (lines.size() == 1) {
        out = stream(lines[0]) + ", " + window + "\n";
    } else {
        out = window + "\n";
        for (const Line& l : lines)
            out += l.label + " " + stream(l) + ": " +
                   body(l.requested, l.connected, l.at_end, l.expected, l.received, l.d) + "\n";
        out += "total ";
    }
    std::string agent = " | agent cpu " + (agent_cpu >= 0 ? fixed(agent_cpu, 1) + "% of one core (user " + fixed(agent_user_cpu, 1) + "%)" : std::string("n/a")) +
                        " | rss " + (agent_mem_ok_ ? mib(rss_kib_) + " MiB (peak " + mib(hwm_kib_) + " MiB)"
                                                   : std::string("n/a"));
    out += body(total.requested, total.connected, total.open_at_end, total.expected, total.received, td) + agent + "\n";
    for (const Line& l : lines) {
        std::string p = problems(*l.g);
        if (!p.empty()) out += (lines.size() > 1 ? l.label + ": " : std::string()) + p + "\n";
    }
    out += "agent rss before connecting " + (rss_before_kib_ >= 0 ? mib(rss_before_kib_) + " MiB" : std::string("n/a")) +
           " | load client cpu " + (self_cpu >= 0 ? fixed(self_cpu, 1) + "% of one core" : std::string("n/a")) + "\n";
    std::fputs(out.c_str(), stdout);
}

}  // namespace

int main(int argc, char** argv) {
    Bench bench(parse_options(argc, argv));
    return bench.run();
}
