// metrics-agent: the command line around metrics_agent.hpp (SPEC §3).
#include "metrics_agent.hpp"
#include "tools/check_client.hpp"

#include <csignal>
#include <cstdio>

namespace {

const char* const kUsage = R"(usage:
  metrics-agent [options]            run the agent (foreground; logs to stderr)
  metrics-agent --once               print one rich snapshot as JSON and exit
  metrics-agent check [URL]          GET URL/health (default http://127.0.0.1:54112); exit 0 if healthy
  metrics-agent hash-password        read a password on stdin, print a salted PBKDF2-SHA256 hash
  metrics-agent --version | --help

options (each also as an environment variable METRICS_AGENT_<NAME>, e.g. METRICS_AGENT_TICK=0.5;
repeatable options take a comma-separated list there):
  --listen ADDR:PORT         where to listen (default 127.0.0.1:54112; [::1]:PORT and 0.0.0.0:PORT work)
  --tick SECONDS             base tick, 0.1 to 60 (default 1)
  --disk PATH                filesystem whose usage is the flat stream's `disk` (default /)
  --scope host|container     what the flat stream's cpu and memory measure: the whole host (default),
                             or the agent's cgroup against its limits
  --host-root PATH           read /proc, /sys and filesystems under PATH, where the host's / is mounted
                             (e.g. /host in a container started with -v /:/host:ro --pid=host)
  --history SECONDS          history kept for /api/metrics/{name}, 0 to 604800 (default 3600)
  --jwt-secret-file FILE     enable authentication with the secret in FILE (env METRICS_AGENT_JWT_SECRET also works)
  --user NAME:HASH           a login account, HASH from `metrics-agent hash-password` (repeatable)
  --alert RULE               an alert rule such as cpu>90:30s or disk>95:1m:critical (repeatable;
                             default: cpu>90:30s, memory>90:30s, disk>90:30s:critical)
  --max-clients N            connections beyond this get HTTP 503 (default 10000)
  --max-clients-per-ip N     connections from one address beyond this get HTTP 503 (default 1000;
                             127.0.0.0/8 and ::1 exempt)
  --cors-origin ORIGIN       Access-Control-Allow-Origin for the REST API (default *); pages from other
                             origins may read the API and protected streams only when it covers them,
                             and may never broadcast (only the agent's own page, or exactly ORIGIN, may)
  --allowed-host NAME        accept requests whose Host header names NAME (repeatable; * = any). Always
                             accepted: localhost, 127.0.0.1, [::1] and the --listen address; listening on
                             0.0.0.0 or [::] without this option accepts any Host
  --heartbeat SECONDS        alerts-stream heartbeat period, 0 = off (default 30)
  --ws-ping SECONDS          ping clients idle this long; drop those silent for another period (default 30)
  --request-timeout SECONDS  close HTTP connections whose request stalls this long (default 10)
  --max-backlog BYTES        output queued for one client before it is dropped (default 1048576)
  --max-message BYTES        largest WebSocket message a client may send, 1 to 16777216 (default 65536)
  --fanout-threads N         threads that write the tick's frames, the loop's own included, 0 to 64;
                             0 = one per 1,000 clients due, up to the hardware threads (default 0)
  --fanout-io-uring on|off   submit those writes to io_uring in batches where the kernel offers it
                             (Linux 5.6+; else one send() each), or always send() (default on)
  --gauge NAME=FILE          publish the number in FILE as the application gauge NAME, read at every
                             tick (repeatable; for cron jobs and scripts; keep FILE on a local disk)
  --textfile-dir DIR         add the samples of DIR/*.prom (Prometheus text format) to /metrics, read when
                             scraped, as node_exporter's textfile collector does; each sample without
                             labels found at start is also a gauge of its name, read at every tick
  --peer NAME=URL            another agent shown on the /fleet page, e.g. web1=http://10.0.0.5:54112
                             (repeatable; this agent is always listed)
)";

metrics_agent::Agent* g_agent = nullptr;
std::vector<std::pair<std::string, std::string>> g_file_gauges;  // --gauge NAME=FILE

// stdio rather than iostreams throughout: <iostream> would link the whole
// locale machinery into the static binary (see "Static binaries" in README).
void print(std::FILE* to, const std::string& text) { std::fwrite(text.data(), 1, text.size(), to); }

// Up to `limit` bytes of a file, or of stdin for "" ; false when it cannot be opened.
bool read_file(const std::string& path, std::string& out, std::size_t limit) {
  std::FILE* f = path.empty() ? stdin : std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char buf[4096];
  std::size_t n = 0;
  while (out.size() < limit && (n = std::fread(buf, 1, std::min(sizeof buf, limit - out.size()), f)) > 0)
    out.append(buf, n);
  if (f != stdin) std::fclose(f);
  return true;
}

std::string first_line(std::string s) {
  std::size_t nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

// The number in a small file, NaN when it is missing or not a number.
double read_number_file(const std::string& path) {
  std::string text;
  double v = 0;
  return read_file(path, text, 4096) && metrics_agent::parse_number(first_line(text), v) ? v : std::nan("");
}

extern "C" void on_signal(int) {
  if (g_agent) g_agent->stop();  // async-signal-safe: an atomic store and a write(2)
}

struct UsageError {
  std::string message;
};

[[noreturn]] void usage_error(const std::string& message) { throw UsageError{message}; }

double number(const std::string& flag, const std::string& v, double lo, double hi, const char* unit) {
  double d = 0;
  if (!metrics_agent::parse_number(v, d) || d < lo || d > hi) {
    char range[64];
    std::snprintf(range, sizeof range, "%g and %g", lo, hi);
    usage_error(flag + ": '" + v + "' is not a number between " + range + " " + unit);
  }
  return d;
}

// The agent's flags are only parsed here: Agent::validate checks their ranges.
double seconds(const std::string& flag, const std::string& v) {
  double d = 0;
  if (!metrics_agent::parse_number(v, d)) usage_error(flag + ": '" + v + "' is not a number of seconds");
  return d;
}

std::size_t count(const std::string& flag, const std::string& v) {
  double d = 0;
  // Up to 2^53, where a double still holds every whole number.
  if (!metrics_agent::parse_number(v, d) || d < 0 || d > 9007199254740992.0 || d != std::floor(d))
    usage_error(flag + ": '" + v + "' is not a whole number");
  return std::size_t(d);
}

std::string read_secret_file(const std::string& path) {
  std::string s;
  if (path.empty() || !read_file(path, s, std::size_t(1) << 20))
    usage_error("--jwt-secret-file: cannot read '" + path + "'");
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  if (s.empty()) usage_error("--jwt-secret-file: '" + path + "' is empty");
  return s;
}

// Applies one option; `flag` is the long name without dashes.
void apply(metrics_agent::Options& o, const std::string& flag, const std::string& v) {
  const std::string f = "--" + flag;
  if (flag == "listen") {
    o.listen = v;
  } else if (flag == "tick") {
    o.tick_seconds = seconds(f, v);
  } else if (flag == "disk") {
    o.disk_path = v;
  } else if (flag == "scope") {
    o.scope = v;
  } else if (flag == "host-root") {
    o.host_root = v;
  } else if (flag == "history") {
    o.history_seconds = seconds(f, v);
  } else if (flag == "jwt-secret-file") {
    o.jwt_secret = read_secret_file(v);
  } else if (flag == "jwt-secret") {
    if (v.empty()) usage_error("METRICS_AGENT_JWT_SECRET is empty");
    o.jwt_secret = v;
  } else if (flag == "user") {
    o.users.push_back(v);
  } else if (flag == "alert") {
    o.alerts.push_back(v);
  } else if (flag == "max-clients") {
    o.max_clients = count(f, v);
  } else if (flag == "max-clients-per-ip") {
    o.max_clients_per_ip = count(f, v);
  } else if (flag == "cors-origin") {
    o.cors_origin = v;
  } else if (flag == "allowed-host") {
    if (v != "*" && !metrics_agent::valid_host(v))
      usage_error(f + ": expected a host name or address such as dash.example.org or [fd00::1], got '" + v + "'");
    o.allowed_hosts.push_back(v);
  } else if (flag == "heartbeat") {
    o.heartbeat_seconds = seconds(f, v);
  } else if (flag == "ws-ping") {
    o.ws_ping_seconds = seconds(f, v);
  } else if (flag == "request-timeout") {
    o.request_timeout_seconds = seconds(f, v);
  } else if (flag == "gauge") {
    std::size_t eq = v.find('=');
    std::string name = v.substr(0, eq);
    bool ok = eq != std::string::npos && eq > 0 && eq + 1 < v.size() && !std::isdigit(static_cast<unsigned char>(name[0]));
    for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (!ok) usage_error(f + ": expected NAME=FILE with NAME made of letters, digits and _, got '" + v + "'");
    g_file_gauges.emplace_back(name, v.substr(eq + 1));
  } else if (flag == "textfile-dir") {
    o.textfile_dir = v;
  } else if (flag == "peer") {
    if (!metrics_agent::valid_peer(v))
      usage_error(f + ": expected NAME=URL with URL http:// or https:// and a host, such as "
                      "web1=http://10.0.0.5:54112, got '" + v + "'");
    o.peers.push_back(v);
  } else if (flag == "max-backlog") {
    o.max_backlog_bytes = count(f, v);
  } else if (flag == "max-message") {
    o.max_message_bytes = count(f, v);
  } else if (flag == "fanout-io-uring") {
    if (v != "on" && v != "off") usage_error(f + ": must be on or off, got " + v);
    o.fanout_io_uring = v == "on";
  } else if (flag == "fanout-threads") {
    std::size_t n = count(f, v);
    if (n > 64) usage_error(f + ": must be between 0 (automatic) and 64, got " + v);
    o.fanout_threads = unsigned(n);
  } else {
    usage_error("unknown option " + f);
  }
}

const char* const kValueFlags[] = {"listen", "tick", "disk", "history", "jwt-secret-file", "user", "alert",
                                   "max-clients", "max-clients-per-ip", "cors-origin", "allowed-host", "heartbeat",
                                   "ws-ping", "request-timeout", "max-backlog", "gauge", "max-message", "scope",
                                   "host-root", "textfile-dir", "fanout-threads", "fanout-io-uring", "peer"};

bool repeatable(const std::string& flag) {
  return flag == "user" || flag == "alert" || flag == "gauge" || flag == "allowed-host" || flag == "peer";
}

// Environment first, then the command line over it.
void apply_environment(metrics_agent::Options& o) {
  auto env_name = [](std::string flag) {
    for (char& c : flag) c = c == '-' ? '_' : char(std::toupper(static_cast<unsigned char>(c)));
    return "METRICS_AGENT_" + flag;
  };
  for (const char* flag : kValueFlags) {
    const char* v = std::getenv(env_name(flag).c_str());
    if (!v) continue;
    if (!repeatable(flag)) {
      apply(o, flag, v);
      continue;
    }
    std::string list = v;
    std::size_t start = 0;
    while (start <= list.size()) {
      std::size_t comma = list.find(',', start);
      std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!item.empty()) apply(o, flag, item);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  if (const char* secret = std::getenv("METRICS_AGENT_JWT_SECRET")) apply(o, "jwt-secret", secret);
}

int hash_password() {
  std::string pw;
  read_file("", pw, 4096);
  pw = first_line(pw);
  if (!pw.empty() && pw.back() == '\r') pw.pop_back();
  if (pw.empty()) {
    print(stderr, "metrics-agent: hash-password: read an empty password from stdin\n");
    return 2;
  }
  std::string hash = metrics_agent::hash_password(pw);
  if (hash.empty()) {
    print(stderr, "metrics-agent: hash-password: no random source for the salt\n");
    return 1;
  }
  print(stdout, hash + "\n");
  return 0;
}

}  // namespace

int check_command(const std::vector<std::string>& args) {
  std::string url = "http://127.0.0.1:54112";
  double timeout = 3;
  bool have_url = false;
  try {
    for (std::size_t i = 1; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--timeout" || a.rfind("--timeout=", 0) == 0) {
        std::string v;
        if (a == "--timeout") {
          if (i + 1 >= args.size()) usage_error("check: --timeout: missing value");
          v = args[++i];
        } else {
          v = a.substr(10);
        }
        timeout = number("check: --timeout", v, 0.001, 3600, "seconds");
      } else if (a.rfind("--", 0) == 0 || have_url) {
        usage_error("check: unexpected argument '" + a + "'");
      } else {
        url = a;
        have_url = true;
      }
    }
  } catch (const UsageError& e) {
    print(stderr, "metrics-agent: " + e.message + "\n" + kUsage);
    return 2;
  }
  std::string message;
  const int rc = metrics_agent::check(url, timeout, message);
  if (rc == 2) {
    print(stderr, "metrics-agent: check: " + message + "\n" + kUsage);
    return 2;
  }
  if (rc == 0) {
    print(stdout, "ok: " + url + " " + message + "\n");
  } else {
    print(stdout, "unhealthy: " + message + "\n");
  }
  return rc;
}

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "hash-password") return hash_password();
  if (!args.empty() && args[0] == "check") return check_command(args);
  metrics_agent::Options opt;
  bool once = false;
  try {
    apply_environment(opt);
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--help" || a == "-h") {
        print(stdout, kUsage);
        return 0;
      }
      if (a == "--version") {
        print(stdout, "metrics-agent " METRICS_AGENT_VERSION "\n");
        return 0;
      }
      if (a == "--once") {
        once = true;
        continue;
      }
      if (a.rfind("--", 0) != 0) usage_error("unexpected argument '" + a + "'");
      std::string flag = a.substr(2), value;
      std::size_t eq = flag.find('=');
      if (eq != std::string::npos) {
        value = flag.substr(eq + 1);
        flag.resize(eq);
      } else {
        bool known = std::find(std::begin(kValueFlags), std::end(kValueFlags), flag) != std::end(kValueFlags);
        if (!known) usage_error("unknown option " + a);
        if (i + 1 >= args.size()) usage_error(a + ": missing value");
        value = args[++i];
      }
      if (flag == "jwt-secret") usage_error("unknown option --jwt-secret (use --jwt-secret-file)");
      apply(opt, flag, value);
    }
  } catch (const UsageError& e) {
    print(stderr, "metrics-agent: " + e.message + "\n" + kUsage);
    return 2;
  }

  metrics_agent::Agent agent(opt);
  for (const auto& g : g_file_gauges) {
    std::string path = g.second;
    agent.add_gauge(g.first, "Read from " + path + ".", [path] { return read_number_file(path); });
  }
  std::string why;
  if (!agent.validate(&why)) {
    print(stderr, "metrics-agent: " + why + "\n" + kUsage);
    return 2;
  }
  if (once) {
    print(stdout, agent.collect_once_json(1.0) + "\n");
    return 0;
  }
  g_agent = &agent;
  // SIGINT, SIGTERM (POSIX) or the console's Ctrl-C and close (Windows).
  metrics_agent::detail::net::on_termination(on_signal);
  // As many clients as the system allows (SPEC §2).
  metrics_agent::raise_open_file_limit();
  std::string err;
  if (!agent.listen(&err)) {
    print(stderr, "metrics-agent: " + err + "\n");
    return 1;
  }
  agent.server().log("listening on " + opt.listen + " (tick " + metrics_agent::format_duration(opt.tick_seconds) +
                     (opt.jwt_secret.empty() ? ", authentication off)" : ", authentication on)"));
  int rc = agent.run();
  g_agent = nullptr;
  return rc;
}
