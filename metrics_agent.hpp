// metrics_agent.hpp - a header-only system-monitoring agent.
//
// metrics-agent streams live host metrics (CPU, memory, disk, network, ...)
// over WebSocket (RFC 6455) to any number of clients and answers the same data
// over plain HTTP, from one event loop in one process.
//
// Use:
//     #include "metrics_agent.hpp"     // with platform/ beside it
//     metrics_agent::Options opt;       // same fields as the command line
//     metrics_agent::Agent agent(opt);
//     agent.add_gauge("app_queue_depth", "jobs waiting", [&]{ return double(q.size()); });
//     agent.start();                    // background thread; agent.stop() ends it
//
// Link with -pthread. Parsing of client JSON uses picojson (Debian: picojson-dev).
// Windows (mingw-w64): link with -lws2_32 -liphlpapi -lpsapi -lbcrypt.
//
// Configuration macros (define before including to override):
//     METRICS_AGENT_VERSION            version string reported by /health
//     METRICS_AGENT_MAX_HEADER_BYTES   largest HTTP request head (else 431)
//     METRICS_AGENT_MAX_BODY_BYTES     largest HTTP request body (else 413)
//     METRICS_AGENT_MAX_BACKLOG_BYTES  output queued for one client before it is dropped
//     METRICS_AGENT_MAX_MESSAGE_BYTES  default largest inbound WebSocket message (else 1009)
//     METRICS_AGENT_MAX_FRAGMENTS      most fragments accepted in one message
//     METRICS_AGENT_SEPARATE_IMPLEMENTATION  defined in every translation unit: the
//                                      header declares the public API only, and the
//                                      one unit that also defines
//                                      METRICS_AGENT_IMPLEMENTATION compiles the rest
//     METRICS_AGENT_NO_DASHBOARD       defined: the dashboard page (about 47 KB) is
//                                      left out, and GET / answers 404 saying so
//     METRICS_AGENT_NO_IOSTREAM        defined: picojson's <iostream> is not included
//                                      (libstdc++), keeping iostreams and locales out
//                                      of a static binary that does not use them
//     METRICS_AGENT_NO_GETADDRINFO     defined: the `check` client resolves names from
//                                      /etc/hosts itself (static builds: no NSS)
//     METRICS_AGENT_SMALL_NUMBERS      defined: doubles are formatted with snprintf
//                                      rather than std::to_chars (137 KB smaller
//                                      static binary, same text, slower)
//     METRICS_AGENT_USE_POLL           defined: the event loop waits with poll(2)
//                                      instead of epoll on Linux (the portable backend)
//
// The client behind `metrics-agent check` is not part of this header: include
// "tools/check_client.hpp" after it for metrics_agent::check().
//
// Platform macros (defined by the header in "Platform detection", from the
// compiler's own; later code tests only these):
//     METRICS_AGENT_PLATFORM_WINDOWS   Windows: Winsock 2 and the collector of platform/windows.hpp
//     METRICS_AGENT_PLATFORM_POSIX     Linux and other Unix (the BSDs, macOS): POSIX sockets
//     METRICS_AGENT_PLATFORM_LINUX     Linux: the collector of platform/linux.hpp
//     METRICS_AGENT_HAS_EPOLL          the event loop's Poller uses epoll (Linux)
//     METRICS_AGENT_HAS_POLL           the event loop's Poller uses poll(2) (POSIX with
//                                      METRICS_AGENT_USE_POLL) or WSAPoll (Windows)
//     METRICS_AGENT_HAS_KQUEUE         kqueue exists (BSD, macOS); no backend uses it yet
//     METRICS_AGENT_HAS_GETRANDOM      getrandom(2) feeds random_bytes (else /dev/urandom)
//     METRICS_AGENT_HAS_STATVFS64      statvfs64 keeps 64-bit counts on 32-bit glibc targets
//     METRICS_AGENT_HAS_IO_URING       the fan-out may submit its sends through io_uring
//                                      (Linux; METRICS_AGENT_NO_IO_URING leaves it out)
// Include guards: METRICS_AGENT_HPP, METRICS_AGENT_PLATFORM_<OS>_HPP. The
// header defines no other macro.

#ifndef METRICS_AGENT_HPP
#define METRICS_AGENT_HPP

// ============================================================================
// Configuration defaults
// ============================================================================

#ifndef METRICS_AGENT_VERSION
#define METRICS_AGENT_VERSION "0.1.0"
#endif

#ifndef METRICS_AGENT_MAX_HEADER_BYTES
#define METRICS_AGENT_MAX_HEADER_BYTES 8192
#endif

#ifndef METRICS_AGENT_MAX_BODY_BYTES
#define METRICS_AGENT_MAX_BODY_BYTES 65536
#endif

#ifndef METRICS_AGENT_MAX_BACKLOG_BYTES
#define METRICS_AGENT_MAX_BACKLOG_BYTES (1024 * 1024)
#endif

#ifndef METRICS_AGENT_MAX_MESSAGE_BYTES
#define METRICS_AGENT_MAX_MESSAGE_BYTES 65536
#endif

// Header-only by default: every function is inline. In split mode the public
// functions are defined once, in the translation unit that defines
// METRICS_AGENT_IMPLEMENTATION, so they are not inline there.
#if defined(METRICS_AGENT_SEPARATE_IMPLEMENTATION)
#define METRICS_AGENT_API_INLINE
#else
#define METRICS_AGENT_API_INLINE inline
#endif  // METRICS_AGENT_SEPARATE_IMPLEMENTATION

#ifndef METRICS_AGENT_MAX_FRAGMENTS
#define METRICS_AGENT_MAX_FRAGMENTS 1000000
#endif

// ============================================================================
// Platform detection (the only place that looks at compiler/OS macros)
// ============================================================================

// <climits> is the first header: through <features.h> it tells a glibc build
// (__GLIBC__) before anything else is included.
#include <climits>

#if defined(_WIN32)
#define METRICS_AGENT_PLATFORM_WINDOWS 1
#elif defined(__unix__) || defined(__unix) || (defined(__APPLE__) && defined(__MACH__))
#define METRICS_AGENT_PLATFORM_POSIX 1
#if defined(__linux__)
#define METRICS_AGENT_PLATFORM_LINUX 1
#if !defined(METRICS_AGENT_USE_POLL)
#define METRICS_AGENT_HAS_EPOLL 1
#endif  // !METRICS_AGENT_USE_POLL
#define METRICS_AGENT_HAS_GETRANDOM 1
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__)
#define METRICS_AGENT_HAS_KQUEUE 1
#endif  // __linux__ / BSD and macOS
#if defined(__GLIBC__)
#define METRICS_AGENT_HAS_STATVFS64 1
#endif  // __GLIBC__
#if defined(__linux__)
#define METRICS_AGENT_HAS_NODE_READER 1  // platform/linux.hpp's NodeReader fills NodeDetail
#if defined(__has_include) && !defined(METRICS_AGENT_NO_IO_URING)
#if __has_include(<linux/io_uring.h>)
#define METRICS_AGENT_HAS_IO_URING 1
#endif  // <linux/io_uring.h>
#endif  // __has_include && !METRICS_AGENT_NO_IO_URING
#endif  // __linux__
#endif  // _WIN32 / POSIX

// The portable backend: poll(2) on POSIX systems when asked for, WSAPoll on
// Windows (which has no other readiness call that scales past FD_SETSIZE).
#if defined(METRICS_AGENT_PLATFORM_WINDOWS) || \
    (defined(METRICS_AGENT_PLATFORM_POSIX) && !defined(METRICS_AGENT_HAS_EPOLL))
#define METRICS_AGENT_HAS_POLL 1
#endif  // Windows, or POSIX without epoll

#if !defined(METRICS_AGENT_PLATFORM_LINUX) && !defined(METRICS_AGENT_PLATFORM_WINDOWS)
#error "metrics-agent: this platform has no collector and no event-loop backend yet (see platform/)"
#endif  // !METRICS_AGENT_PLATFORM_LINUX && !METRICS_AGENT_PLATFORM_WINDOWS

// ============================================================================
// Includes
// ============================================================================

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <csignal>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>
#include <limits>
#include <optional>
#include <cstddef>
#include <exception>

#if defined(METRICS_AGENT_PLATFORM_POSIX)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#endif  // METRICS_AGENT_PLATFORM_POSIX
#if defined(METRICS_AGENT_PLATFORM_WINDOWS)
// Windows headers, with the two macros that tame <windows.h> defined only for
// them: the includer's own choice stands, and none is left behind.
#if !defined(NOMINMAX)
#define NOMINMAX
#define METRICS_AGENT_UNDEF_NOMINMAX
#endif  // !NOMINMAX
#if !defined(WIN32_LEAN_AND_MEAN)
#define WIN32_LEAN_AND_MEAN
#define METRICS_AGENT_UNDEF_LEAN_AND_MEAN
#endif  // !WIN32_LEAN_AND_MEAN
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <bcrypt.h>
#include <iphlpapi.h>
#include <psapi.h>
#include <winioctl.h>
#if defined(METRICS_AGENT_UNDEF_NOMINMAX)
#undef NOMINMAX
#undef METRICS_AGENT_UNDEF_NOMINMAX
#endif  // METRICS_AGENT_UNDEF_NOMINMAX
#if defined(METRICS_AGENT_UNDEF_LEAN_AND_MEAN)
#undef WIN32_LEAN_AND_MEAN
#undef METRICS_AGENT_UNDEF_LEAN_AND_MEAN
#endif  // METRICS_AGENT_UNDEF_LEAN_AND_MEAN
#endif  // METRICS_AGENT_PLATFORM_WINDOWS
#if defined(METRICS_AGENT_HAS_EPOLL)
#include <sys/epoll.h>
#endif  // METRICS_AGENT_HAS_EPOLL
#if defined(METRICS_AGENT_HAS_GETRANDOM)
#include <sys/random.h>
#endif  // METRICS_AGENT_HAS_GETRANDOM
#if defined(METRICS_AGENT_HAS_IO_URING)
#include <linux/io_uring.h>
#include <sys/mman.h>
#endif  // METRICS_AGENT_HAS_IO_URING

// picojson includes <iostream>, whose static initializer links iostreams and
// every locale facet (about 500 KB) into a static binary. It only needs the
// stream declarations, so with METRICS_AGENT_NO_IOSTREAM (libstdc++) the
// <iostream> it asks for is skipped.
#if defined(METRICS_AGENT_NO_IOSTREAM) && defined(__GLIBCXX__) && !defined(_GLIBCXX_IOSTREAM)
#include <istream>
#include <ostream>
#define _GLIBCXX_IOSTREAM 1
#include <picojson.h>
#undef _GLIBCXX_IOSTREAM
#else
#include <picojson.h>
#endif

// ============================================================================
// Public API: the data model
// ============================================================================

namespace metrics_agent {

// Cumulative CPU time of one core since boot, in seconds (from /proc/stat).
struct CpuTimes {
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0,
         softirq = 0, steal = 0;
};

// Each group carries `ok` and, when collection failed, a one-line `error`.
struct CpuStats {
  bool ok = false;
  std::string error;
  double usage_percent = 0;  // non-idle share since the previous sample
  // Shares in percent with psutil's meanings; the eight add up to 100.
  double user = 0, nice = 0, system = 0, irq = 0, softirq = 0, idle = 0, iowait = 0, steal = 0;
  std::vector<double> per_core;       // usage percent per core
  std::vector<double> frequency_mhz;  // per core; empty where unknown
  std::vector<CpuTimes> core_times;   // cumulative, per core
  std::vector<unsigned> core_ids;     // the kernel's CPU number of each entry (gaps when offline)
};

struct LoadStats {
  bool ok = false;
  std::string error;
  double load1 = 0, load5 = 0, load15 = 0;
};

struct MemoryStats {
  bool ok = false;
  std::string error;
  double usage_percent = 0;  // (total - available) / total
  std::uint64_t total_bytes = 0, used_bytes = 0, available_bytes = 0,
                free_bytes = 0, cached_bytes = 0, buffers_bytes = 0;
  // /proc/meminfo's Cached and SReclaimable as they are (cached_bytes is
  // their sum, the "cache" of free(1)).
  std::uint64_t page_cache_bytes = 0, slab_reclaimable_bytes = 0;
  std::uint64_t swap_total_bytes = 0, swap_used_bytes = 0, swap_free_bytes = 0;
  double swap_percent = 0;
};

struct InterfaceStats {
  std::string name;
  double bytes_sent_per_sec = 0, bytes_recv_per_sec = 0;
  double packets_sent_per_sec = 0, packets_recv_per_sec = 0;
  std::uint64_t bytes_sent = 0, bytes_recv = 0;  // cumulative counters
  std::uint64_t packets_sent = 0, packets_recv = 0;
  std::uint64_t errors_in = 0, errors_out = 0, drops_in = 0, drops_out = 0;
};

struct NetworkStats {
  bool ok = false;
  std::string error;
  double bytes_sent_per_sec = 0, bytes_recv_per_sec = 0;  // all but loopback
  std::vector<InterfaceStats> interfaces;                 // includes loopback
};

struct PartitionStats {
  std::string mountpoint, device, fstype;
  bool ok = false;
  std::string error;
  std::uint64_t total_bytes = 0, used_bytes = 0;
  std::uint64_t free_bytes = 0;   // available to unprivileged users (f_bavail)
  std::uint64_t bfree_bytes = 0;  // free including the root reserve (f_bfree)
  std::uint64_t files = 0, files_free = 0;
  bool readonly = false;
  double usage_percent = 0;  // used / (used + free), as df shows it
};

struct DiskDeviceStats {
  std::string name;
  double read_bytes_per_sec = 0, write_bytes_per_sec = 0;
  double reads_per_sec = 0, writes_per_sec = 0;
  std::uint64_t read_bytes = 0, write_bytes = 0, reads = 0, writes = 0;
  double read_time_seconds = 0, write_time_seconds = 0, io_time_seconds = 0;
};

struct DiskStats {
  PartitionStats path;  // the --disk filesystem (flat stream's `disk`)
  bool partitions_ok = false;
  std::string partitions_error;
  std::vector<PartitionStats> partitions;
  bool io_ok = false;
  std::string io_error;
  double read_bytes_per_sec = 0, write_bytes_per_sec = 0;
  std::vector<DiskDeviceStats> devices;
};

struct SystemInfo {
  bool ok = false;
  std::string error;
  std::string hostname;
  double uptime_seconds = 0;
  double boot_time = 0;  // seconds since the epoch
};

// The agent's own cgroup measured against its limits (cgroup v2 or v1).
// Numbers are NaN where the kernel does not provide them, and limits are NaN
// where none is set; both are `null` in JSON. `present` is false outside any
// cgroup with a CPU, memory or pids limit: the group is then `null`, and that
// is not an error.
struct ContainerStats {
  bool present = false;
  bool ok = false;
  std::string error;
  int cgroup_version = 0;  // 1 or 2 (of the memory controller, else cpu's)
  std::string cgroup;      // the cgroup's path, as /proc/self/cgroup names it
  // CPU: the share of the quota (or of all host cores without one) used over
  // the last interval; cumulative usage and throttling since the cgroup began.
  double cpu_usage_percent = std::nan(""), cpu_limit_cores = std::nan("");
  double cpu_usage_seconds = std::nan(""), cpu_throttled_seconds = std::nan("");
  double cpu_quota_us = std::nan(""), cpu_period_us = std::nan("");
  double cpu_periods = std::nan(""), cpu_throttled_periods = std::nan("");
  // Memory: the working set (usage minus inactive page cache, as docker stats
  // and the kubelet count it), the kernel's usage, the limit, and the working
  // set's share of the limit (of host memory without one).
  double memory_used_bytes = std::nan(""), memory_usage_bytes = std::nan("");
  double memory_limit_bytes = std::nan(""), memory_usage_percent = std::nan("");
  double pids = std::nan(""), pids_limit = std::nan("");
};

struct Gauge {
  std::string name, help;
  double value = 0;
};

// A temperature sensor: hwmon's chip and sensor (temp1), or a thermal zone
// (chip thermal_zoneN in the rich stream, N on /metrics) and its type.
struct NodeTemperature {
  std::string chip, sensor;
  double celsius = 0;
};

// One sample of the whole host, filled by the collector of platform/<os>.hpp.
struct Snapshot {
  std::int64_t timestamp_us = 0;  // wall clock, microseconds since the epoch
  CpuStats cpu;
  LoadStats load;
  MemoryStats memory;
  NetworkStats network;
  DiskStats disk;
  SystemInfo system;
  ContainerStats container;
  std::vector<NodeTemperature> sensors;  // empty: none (the slow part reads them)
  std::vector<Gauge> custom;
};

// ---- what only /metrics shows -----------------------------------------------
//
// node_exporter's families beyond the Snapshot. A platform that has them
// defines detail::NodeReader (constructed from the proc and sys roots,
// `void read(NodeDetail&)`), which the /metrics route calls at most once per
// tick and only when scraped: a tick with nobody scraping never reads them.
// Names are node_exporter's; numbers it does not have here are NaN or absent.

struct NodeValue {  // one series of a family named by its source's field
  std::string name;  // the part after the family's prefix, e.g. "Active_anon_bytes"
  double value = 0;
};
struct NodeNetDev {  // every column of /proc/net/dev
  std::string device;
  std::uint64_t rx[8] = {}, tx[8] = {};
};
struct NodeNetClass {  // /sys/class/net/<device>
  std::string device, address, broadcast, duplex, ifalias, operstate;
  double mtu = std::nan(""), speed_bytes = std::nan(""), carrier = std::nan("");
};
struct NodeDisk {  // every column of /proc/diskstats (11, 15 or 17 of them)
  std::string device;
  std::uint64_t f[17] = {};
  int fields = 0;
};
struct NodeSoftnet {
  std::uint64_t processed = 0, dropped = 0, squeezed = 0;
};
struct NodeChip {
  std::string chip, name;
};
struct NodeCollector {  // how one reader fared, under node_exporter's collector name
  std::string name;
  double seconds = 0;
  bool ok = false;
};
struct NodeTimex {  // adjtimex(2), in node_exporter's units
  bool ok = false;
  double offset_seconds = 0, frequency_adjustment_ratio = 0, maxerror_seconds = 0, estimated_error_seconds = 0,
         status = 0, loop_time_constant = 0, tick_seconds = 0, pps_frequency_hertz = 0, pps_jitter_seconds = 0,
         pps_shift_seconds = 0, pps_stability_hertz = 0, pps_jitter_total = 0, pps_calibration_total = 0,
         pps_error_total = 0, pps_stability_exceeded_total = 0, tai_offset_seconds = 0, sync_status = 0;
};

struct NodeDetail {
  std::vector<NodeValue> meminfo, vmstat, netstat, sockstat;
  std::vector<NodeNetDev> netdev;  // without lo, as node_exporter's default filter
  std::vector<NodeNetClass> netclass;
  std::vector<NodeDisk> disks;  // node_exporter's default filter: whole devices, zram kept
  std::vector<NodeSoftnet> softnet;  // one per CPU line
  std::vector<NodeTemperature> hwmon, thermal;
  std::vector<NodeChip> hwmon_chips;
  std::vector<std::pair<std::string, std::uint64_t>> arp;  // device, entries
  // Pressure stall totals, seconds: cpu, io, memory x some ("waiting"), full ("stalled").
  double pressure[3][2] = {{std::nan(""), std::nan("")}, {std::nan(""), std::nan("")}, {std::nan(""), std::nan("")}};
  double context_switches = std::nan(""), interrupts = std::nan(""), forks = std::nan(""),
         procs_running = std::nan(""), procs_blocked = std::nan("");
  double entropy_available_bits = std::nan(""), entropy_pool_size_bits = std::nan("");
  double filefd_allocated = std::nan(""), filefd_maximum = std::nan("");
  double conntrack_entries = std::nan(""), conntrack_limit = std::nan("");
  NodeTimex timex;
  // The agent's own process, as every Prometheus exporter reports it.
  double process_cpu_seconds = std::nan(""), process_resident_bytes = std::nan(""),
         process_virtual_bytes = std::nan(""), process_virtual_max_bytes = std::nan(""),
         process_open_fds = std::nan(""), process_max_fds = std::nan("");
  bool uname_ok = false;
  std::string sysname, release, version, machine, nodename, domainname;
  bool os_ok = false;
  // os-release values in the order of node_os_info's labels: build_id, id,
  // id_like, image_id, image_version, name, pretty_name, variant, variant_id,
  // version, version_codename, version_id.
  std::array<std::string, 12> os;
  std::vector<NodeCollector> collectors;
};

// ---- the collector contract ---------------------------------------------------
//
// Each platform/<os>.hpp is guarded by its METRICS_AGENT_PLATFORM_* flag and
// defines one class, detail::Collector, that fills the Snapshot above. The
// agent uses nothing else of it (checked at compile time after the include):
//
//   Collector(std::string disk_path, std::string proc_root, std::string sys_root,
//             std::string host_root)
//       disk_path: the filesystem of disk.path (--disk). The roots say where
//       the host's kernel files and filesystems are seen (--host-root); an OS
//       without such files ignores them. Takes the baseline of every counter.
//
//   void sample_fast(Snapshot& s, double now)
//       The event-loop thread, every tick; never blocks on storage. Fills
//       timestamp_us, cpu (all but frequency_mhz), load, memory, network,
//       disk.io_ok/io_error/read_bytes_per_sec/write_bytes_per_sec/devices,
//       system and container. Rates are over `now` (seconds, a steady clock)
//       minus the previous call's.
//
//   struct SlowPart
//       What may block (statvfs of a dead NFS mount, a slow sysfs file), as
//       the collector's own type: default-constructible and movable. Today
//       disk.path, disk.partitions_ok/partitions_error/partitions and
//       cpu.frequency_mhz.
//   void sample_slow(SlowPart& p)
//       The slow sampler's worker thread; may run while sample_fast runs, so
//       the two share no mutable state. It may also hang, and outlive the
//       agent: the worker shares ownership of the Collector.
//   static void merge(const SlowPart& p, Snapshot& s)
//       Copies p into its fields of s (the loop thread, every tick).
//   static void merge_failed(const SlowPart& p, const std::string& why, Snapshot& s)
//       Marks those fields failed with `why` when no result is fresh enough
//       (none yet, or older than the sampler's deadline); p is the last result.
//
// Each group's `ok`/`error` says what failed; one failing file or mount marks
// its item, never the whole sample. A new OS is one platform file plus one
// Poller backend in the socket shim.

}  // namespace metrics_agent

// ============================================================================
// Public API: options, the generic HTTP/WebSocket server, the agent
// ============================================================================

namespace metrics_agent {

// Every field has a command-line flag of the same meaning (see --help).
struct Options {
  std::string listen = "127.0.0.1:54112";
  double tick_seconds = 1.0;         // 0.1 .. 60
  std::string disk_path = "/";       // the flat stream's `disk`
  // "host" or "container": whether the flat stream's cpu and memory are
  // host-wide or the agent's cgroup's share of its limits.
  std::string scope = "host";
  // Where the host's / is mounted (e.g. "/host" in a container): /proc, /sys
  // and filesystems are read under it. Empty: this system's own.
  std::string host_root;
  double history_seconds = 3600;     // history kept for /api/metrics/{name}
  std::string jwt_secret;            // empty: authentication off
  std::vector<std::string> users;    // "name:hash" from `hash-password`
  std::vector<std::string> alerts;   // rules; empty: the default rules
  std::size_t max_clients = 10000;
  std::size_t max_clients_per_ip = 1000;
  std::string cors_origin = "*";
  // Host header names accepted besides the listen address and localhost,
  // 127.0.0.1, [::1] (DNS rebinding); "*" accepts any. Listening on any address
  // (0.0.0.0, [::]) with this list empty accepts any Host.
  std::vector<std::string> allowed_hosts;
  // Other agents on the /fleet page, "NAME=URL" (http:// or https://); the
  // page always lists this agent first.
  std::vector<std::string> peers;
  double heartbeat_seconds = 30;
  double ws_ping_seconds = 30;
  double request_timeout_seconds = 10;
  std::size_t max_message_bytes = METRICS_AGENT_MAX_MESSAGE_BYTES;
  std::size_t max_backlog_bytes = METRICS_AGENT_MAX_BACKLOG_BYTES;
  // Threads that write the tick's frames, the loop's own included (0 .. 64);
  // 0: automatic (see Server::Config::fanout_threads).
  unsigned fanout_threads = 0;
  // The fan-out's writes through io_uring where the kernel has it (see
  // Server::Config::fanout_io_uring); false: one send() each.
  bool fanout_io_uring = true;
  double token_ttl_seconds = 3600;
  // A directory of *.prom files (Prometheus text format) whose samples
  // /metrics adds, as node_exporter's textfile collector does. Empty: none.
  std::string textfile_dir;
  // Where log lines go; empty: stderr. Called on the agent's thread.
  std::function<void(const std::string&)> logger;
};

class Responder;

namespace detail {
struct Conn;
class Loop;
struct DeferContext;
struct DeferredAnswer;

// Where HttpRequest::respond_later() finds its handler's connection. A copy
// of the request starts with none: only the request a handler was given can
// defer its answer, and only while the handler runs.
struct DeferSlot {
  DeferContext* context = nullptr;
  DeferSlot() = default;
  DeferSlot(const DeferSlot&) {}
  DeferSlot& operator=(const DeferSlot&) {
    context = nullptr;
    return *this;
  }
};
}  // namespace detail

struct HttpRequest {
  std::string method, target, path, query, version;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string remote_address;
  bool keep_alive = true;

  // The value of a header (name in lower case), or nullptr.
  const std::string* header(std::string_view name) const {
    for (const auto& h : headers)
      if (h.first == name) return &h.second;
    return nullptr;
  }
  // A query parameter, percent-decoded; `fallback` when absent.
  std::string param(std::string_view key, std::string fallback = {}) const;
  bool has_param(std::string_view key) const;

  // Called by an HTTP handler (on the loop thread, during the handler) that
  // answers later, e.g. from a worker thread: the value the handler returns is
  // then ignored, and the answer is whatever the Responder sends. Until then
  // the connection reads no further request (pipelined requests keep their
  // order). Outside a handler it returns an empty Responder.
  Responder respond_later() const;

 private:
  friend class detail::Loop;
  detail::DeferSlot defer_;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static HttpResponse json(int status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }
  static HttpResponse error(int status, std::string_view message);
};

// The answer to a request whose handler called HttpRequest::respond_later().
// Copyable; send() may be called from any thread, once (later calls do
// nothing). An answer for a connection that has closed in the meantime, or
// for a server that has stopped, is dropped. A Responder that is never sent
// leaves its connection waiting until the idle timeout.
class Responder {
 public:
  Responder() = default;
  void send(HttpResponse response) const;
  explicit operator bool() const { return state_ != nullptr; }

 private:
  friend struct HttpRequest;
  explicit Responder(std::shared_ptr<detail::DeferredAnswer> s) : state_(std::move(s)) {}
  std::shared_ptr<detail::DeferredAnswer> state_;
};

// A WebSocket connection as the on-message callbacks see it. The handle is
// valid until its on_close callback has returned.
class WebSocket {
 public:
  void send_text(std::string_view text);
  void send_binary(std::string_view data);
  // Queues a pre-built frame (see encode_text_frame); shared by many clients.
  void send_frame(const std::shared_ptr<const std::string>& frame);
  // send_frame for many sockets of one server at once, on its loop thread:
  // socket `to[i].first` gets `frames[to[i].second]`. The server may split
  // the writes over its fan-out threads (Server::Config::fanout_threads);
  // what a socket does not take at once is queued or dropped on the loop
  // thread as with send_frame, and every frame is written when it returns.
  static void send_frames(const std::vector<std::shared_ptr<const std::string>>& frames,
                          const std::vector<std::pair<WebSocket*, std::uint32_t>>& to);
  void close(std::uint16_t code = 1000, std::string_view reason = {});
  // The upgrade request: line, path, query and headers, for the connection's
  // life (its body, if any, only during on_open); during on_open only, and
  // empty after it, on a route with keep_request = false.
  const HttpRequest& request() const;
  std::uint64_t user_data() const;
  void set_user_data(std::uint64_t value);
  bool operator==(const WebSocket& o) const { return c_ == o.c_; }

 private:
  friend class detail::Loop;
  explicit WebSocket(detail::Conn* c) : c_(c) {}
  detail::Conn* c_;
};

// A text frame ready to hand to WebSocket::send_frame for any number of clients.
std::shared_ptr<const std::string> encode_text_frame(std::string_view text);

struct WebSocketRoute {
  // Called after the handshake; it may send, or close (e.g. 4001 for a bad token).
  // An exception thrown by on_open or on_message closes that connection with
  // 1011 (and is logged and counted); the server goes on serving the others.
  std::function<void(WebSocket&)> on_open;
  std::function<void(WebSocket&, std::string_view message, bool binary)> on_message;
  // `code` is the status code of the peer's close frame (1005 if it had none),
  // or 1006 when the connection ended without one (RFC 6455 §7.1.5).
  std::function<void(WebSocket&, std::uint16_t code)> on_close;
  std::size_t max_message_bytes = 0;  // 0: the server's default
  // false: WebSocket::request() holds the upgrade request during on_open
  // only, and an empty one after it, so that a connection that only listens
  // keeps no copy of its request line and headers (about 0.8 KB each; the
  // agent's own streams read their request in on_open and set this).
  bool keep_request = true;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct ServerStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t messages_sent = 0;  // WebSocket frames queued (data and control)
  std::uint64_t bytes_sent = 0;
  std::uint64_t http_requests = 0;
  std::uint64_t dropped_backlog = 0;   // a client that stopped reading
  std::uint64_t dropped_error = 0;     // socket errors and resets
  std::uint64_t dropped_protocol = 0;  // protocol violations
  std::uint64_t dropped_timeout = 0;   // stalled requests, unanswered pings
  std::uint64_t rejected_capacity = 0; // 503 over --max-clients(-per-ip)
  std::uint64_t accept_failures = 0;   // out of descriptors
  std::uint64_t callback_errors = 0;   // exceptions thrown by WebSocket callbacks
};

// The generic HTTP/1.1 + WebSocket server that the agent is built on: one
// event loop over non-blocking sockets. Routes are added before run()/start().
class Server {
 public:
  struct Config {
    std::string listen = "127.0.0.1:54112";
    std::size_t max_clients = 10000;
    std::size_t max_clients_per_ip = 1000;
    double request_timeout_seconds = 10;
    double ws_ping_seconds = 30;
    std::size_t max_message_bytes = METRICS_AGENT_MAX_MESSAGE_BYTES;
    std::size_t max_backlog_bytes = METRICS_AGENT_MAX_BACKLOG_BYTES;
    // Threads that call send() for a fan-out (WebSocket::send_frames), the
    // loop thread included, each over its own slice of the sockets. 1: the
    // loop alone. 0: automatic, one thread per 1,000 sockets written at once
    // (the loop alone below 1,000), at most the hardware threads.
    unsigned fanout_threads = 0;
    // Each fan-out thread submits its writes to io_uring in batches where the
    // kernel offers it (Linux 5.6+), falling back to one send() each; false:
    // send() always.
    bool fanout_io_uring = true;
    std::string cors_origin;  // Access-Control-Allow-Origin on HTTP answers; empty: none
    std::function<void(const std::string&)> logger;
    // Sees every request before it is routed, WebSocket upgrades included; an
    // answer returned here is sent instead (e.g. a Host or Origin refused).
    std::function<std::optional<HttpResponse>(const HttpRequest&)> screen;
  };

  Server();
  explicit Server(Config config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // `path` "*" takes every path that no other route serves. False (and
  // logged) when a WebSocket or HTTP route already serves `path`.
  bool websocket(std::string path, WebSocketRoute route);
  // `path` ending in "/*" matches every path below it. False (and logged)
  // when a route already serves this method and path, or a WebSocket route
  // serves the path.
  bool http(std::string method, std::string path, HttpHandler handler);
  // Called at every wall-clock multiple of `period_seconds` on the loop thread.
  void every(double period_seconds, std::function<void(std::int64_t tick_us)> fn);

  // Binds and listens; false with a reason (e.g. the port is in use).
  bool listen(std::string* error = nullptr);
  void run();    // serves until stop(); listens first if needed
  // Listens, then serves on a background thread; false with a reason (and
  // no thread) when it cannot listen. port() is valid once it returns.
  bool start(std::string* error = nullptr);
  // Thread-safe and async-signal-safe: WebSocket clients get close 1001.
  void stop();
  void join();
  // These four may be called from any thread. On the loop's thread (in a
  // handler) they are exact; elsewhere they are as of the loop's latest pass.
  int port() const;  // the bound port (useful with port 0)
  ServerStats stats() const;
  std::size_t client_count() const;  // connections open now
  std::size_t websocket_count(std::string_view path) const;
  void log(const std::string& line) const;
  // Thread-safe: runs `fn` on the loop thread at its next pass, e.g. to send
  // to a WebSocket from an application thread. Functions posted before the
  // loop runs wait for it; those still queued when it ends are discarded.
  void post(std::function<void()> fn);

 private:
  std::unique_ptr<detail::Loop> loop_;
  std::thread thread_;
};

// Raises this process's soft limit on open files to its hard limit, so that
// the server can hold as many connections as the system allows. A limit is
// the host program's business: the server never changes it by itself; the
// metrics-agent program calls this at start. False when it cannot.
bool raise_open_file_limit();

// Parses a whole string as a finite number, whatever the locale; false on
// anything else (trailing text, "nan", "inf").
bool parse_number(std::string_view text, double& out);

// A duration as the agent writes it in logs and alerts: "30s", "1.5s", "5m", "2h".
std::string format_duration(double seconds);

// Whether `host` is a host name or address as Options::allowed_hosts takes
// it (dash.example.org, 10.0.0.2, [fd00::1], with or without a port).
bool valid_host(std::string_view host);

// Whether `peer` is NAME=URL as Options::peers takes it: a name of printable
// characters without '=', and an http:// or https:// URL with a valid host
// (a path after it is allowed, a query or fragment is not).
bool valid_peer(std::string_view peer);

// A salted PBKDF2-SHA256 hash of `password` for Options::users (what
// `metrics-agent hash-password` prints); empty when the system has no random
// source for the salt.
std::string hash_password(std::string_view password);

// Whether `text` is an alert rule as Options::alerts takes it ("cpu>90:30s",
// "memory>=95:1m:critical"); false with the reason in `error`. The metric
// name is checked against the gauges by Agent::validate.
bool parse_alert_rule(std::string_view text, std::string* error = nullptr);

}  // namespace metrics_agent

namespace metrics_agent {

namespace detail {
class AgentCore;
}  // namespace detail

// The monitoring agent: the generic server plus the collector, the tick, the
// metrics endpoints of SPEC §4-§6, history and alerts.
class Agent {
 public:
  explicit Agent(Options options = {});
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Checks options (ranges, the listen address, alert rules, accounts);
  // false with a one-line reason naming the option.
  static bool validate(const Options& options, std::string* error);
  // The same for this agent's options, and every alert rule names a built-in
  // metric or one of the gauges added so far. listen() runs it first.
  bool validate(std::string* error = nullptr) const;

  // An application gauge, read on the agent's thread at every tick. Gauges
  // are added before listen()/start()/run(): afterwards the history rows and
  // the streams have their shape, and add_gauge refuses (false with a reason).
  bool add_gauge(std::string name, std::string help, std::function<double()> read, std::string* error = nullptr);

  // The underlying server: add routes of your own before start()/run().
  Server& server();

  // Validates (see validate()), prepares and binds; false with a reason when
  // the options are invalid or the address cannot be bound. run() and start()
  // call it when it has not been called.
  bool listen(std::string* error = nullptr);
  int run();    // serves until stop(); 0, or 1 when it cannot listen
  // Listens, then runs on a background thread; false with a reason (and no
  // thread) when it cannot listen. port() is valid once it returns.
  bool start(std::string* error = nullptr);
  void stop();  // thread-safe and async-signal-safe
  void join();
  int port() const;

  // One rich snapshot (SPEC §5.2 `data`) as JSON, with rates measured over
  // `interval_seconds`: what `metrics-agent --once` prints.
  std::string collect_once_json(double interval_seconds = 1.0);

  // Called on the agent's thread after each tick, once the tick's messages
  // are queued, with the snapshot they were made from. Added before
  // listen()/start()/run() (afterwards false with a reason, like add_gauge);
  // an exception it throws is logged and ignored.
  bool on_snapshot(std::function<void(const Snapshot&)> fn, std::string* error = nullptr);

 private:
  std::unique_ptr<detail::AgentCore> core_;
  std::thread thread_;
};

}  // namespace metrics_agent

#if !defined(METRICS_AGENT_SEPARATE_IMPLEMENTATION) || defined(METRICS_AGENT_IMPLEMENTATION)

// ============================================================================
// Collector (one file per OS; each fills the Snapshot above and keeps the
// collector contract written beside it, checked here)
// ============================================================================

namespace metrics_agent {
namespace detail {

inline std::int64_t wall_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline double mono_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline std::int64_t mono_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The seconds a collector's sample_fast covers: since its previous call by
// the caller's clock, and for the first call since the collector took its
// baseline (the caller's `now` may count from another origin).
class SampleInterval {
 public:
  void baseline() { baseline_ = mono_now(); }
  double next(double now) {
    const double elapsed = first_ ? mono_now() - baseline_ : now - prev_;
    first_ = false;
    prev_ = now;
    return elapsed;
  }

 private:
  double baseline_ = 0, prev_ = 0;
  bool first_ = true;
};

}  // namespace detail
}  // namespace metrics_agent

#if defined(METRICS_AGENT_PLATFORM_LINUX)
#include "platform/linux.hpp"
#endif  // METRICS_AGENT_PLATFORM_LINUX
#if defined(METRICS_AGENT_PLATFORM_WINDOWS)
#include "platform/windows.hpp"
#endif  // METRICS_AGENT_PLATFORM_WINDOWS

namespace metrics_agent {
namespace detail {
namespace contract {

template <class C, class = void>
struct samples_fast : std::false_type {};
template <class C>
struct samples_fast<C, std::void_t<decltype(std::declval<C&>().sample_fast(std::declval<Snapshot&>(), 0.0))>>
    : std::true_type {};

template <class C, class = void>
struct samples_slow : std::false_type {};
template <class C>
struct samples_slow<C, std::void_t<decltype(std::declval<C&>().sample_slow(
                           std::declval<typename C::SlowPart&>()))>> : std::true_type {};

template <class C, class = void>
struct merges : std::false_type {};
template <class C>
struct merges<C, std::void_t<decltype(C::merge(std::declval<const typename C::SlowPart&>(),
                                               std::declval<Snapshot&>())),
                             decltype(C::merge_failed(std::declval<const typename C::SlowPart&>(),
                                                      std::declval<const std::string&>(),
                                                      std::declval<Snapshot&>()))>> : std::true_type {};

static_assert(std::is_constructible<Collector, std::string, std::string, std::string, std::string>::value,
              "the collector contract: Collector(disk_path, proc_root, sys_root, host_root)");
static_assert(samples_fast<Collector>::value, "the collector contract: void sample_fast(Snapshot&, double now)");
static_assert(std::is_default_constructible<Collector::SlowPart>::value &&
                  std::is_move_assignable<Collector::SlowPart>::value,
              "the collector contract: a default-constructible, movable Collector::SlowPart");
static_assert(samples_slow<Collector>::value, "the collector contract: void sample_slow(SlowPart&)");
static_assert(merges<Collector>::value,
              "the collector contract: static merge(const SlowPart&, Snapshot&) and "
              "merge_failed(const SlowPart&, const std::string&, Snapshot&)");

}  // namespace contract
}  // namespace detail
}  // namespace metrics_agent

// ============================================================================
// Implementation: cryptography and text validation
//   SHA-1 (RFC 3174), SHA-256 (FIPS 180-4), HMAC (RFC 2104), PBKDF2 (RFC 8018),
//   base64 (RFC 4648), UTF-8 (RFC 3629), JWT HS256 (RFC 7515, RFC 7519) and the
//   WebSocket accept key (RFC 6455 section 4.2.2). Byte strings are std::string.
// ============================================================================

namespace metrics_agent {
namespace detail {

// ---- byte helpers -----------------------------------------------------------

inline std::uint32_t crypto_rotl(std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }
inline std::uint32_t crypto_rotr(std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

inline std::uint32_t crypto_load_be32(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) |
         (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

inline void crypto_store_be32(unsigned char* p, std::uint32_t v) {
  p[0] = static_cast<unsigned char>(v >> 24);
  p[1] = static_cast<unsigned char>(v >> 16);
  p[2] = static_cast<unsigned char>(v >> 8);
  p[3] = static_cast<unsigned char>(v);
}

// A digest (or any byte array) seen as a byte string.
template <std::size_t N>
inline std::string_view as_bytes(const std::array<std::uint8_t, N>& a) {
  return std::string_view(reinterpret_cast<const char*>(a.data()), N);
}

// ---- the Merkle-Damgard frame shared by SHA-1 and SHA-256 ---------------------

// 64-byte blocks, padded with 0x80, zeros and the 64-bit big-endian message
// length in bits (RFC 3174 section 4, FIPS 180-4 section 5.1.1). Core supplies
// the initial state, the compression function and the digest size.
template <typename Core>
class BlockHash {
 public:
  static constexpr std::size_t kDigestSize = Core::kDigestSize;
  using Digest = std::array<std::uint8_t, kDigestSize>;

  BlockHash() { core_.reset(); }

  void update(const void* data, std::size_t n) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    total_ += n;
    if (used_ > 0) {
      std::size_t take = std::min(n, sizeof buf_ - used_);
      std::memcpy(buf_ + used_, p, take);
      used_ += take;
      p += take;
      n -= take;
      if (used_ < sizeof buf_) return;
      core_.compress(buf_);
      used_ = 0;
    }
    for (; n >= sizeof buf_; p += sizeof buf_, n -= sizeof buf_) core_.compress(p);
    if (n > 0) std::memcpy(buf_, p, n);
    used_ = n;
  }
  void update(std::string_view s) { update(s.data(), s.size()); }

  // Returns the digest and leaves the object ready for a new message.
  Digest finish() {
    std::uint64_t bits = total_ * 8;
    buf_[used_++] = 0x80;
    if (used_ > 56) {
      std::memset(buf_ + used_, 0, sizeof buf_ - used_);
      core_.compress(buf_);
      used_ = 0;
    }
    std::memset(buf_ + used_, 0, 56 - used_);
    crypto_store_be32(buf_ + 56, static_cast<std::uint32_t>(bits >> 32));
    crypto_store_be32(buf_ + 60, static_cast<std::uint32_t>(bits));
    core_.compress(buf_);
    Digest out;
    for (std::size_t i = 0; i < kDigestSize / 4; ++i) crypto_store_be32(out.data() + 4 * i, core_.h[i]);
    core_.reset();
    used_ = 0;
    total_ = 0;
    return out;
  }

 private:
  Core core_;
  unsigned char buf_[64] = {};
  std::size_t used_ = 0;
  std::uint64_t total_ = 0;
};

// RFC 3174 section 6.1 (method 1).
struct Sha1Core {
  static constexpr std::size_t kDigestSize = 20;
  std::uint32_t h[5];

  void reset() {
    h[0] = 0x67452301;
    h[1] = 0xefcdab89;
    h[2] = 0x98badcfe;
    h[3] = 0x10325476;
    h[4] = 0xc3d2e1f0;
  }

  void compress(const unsigned char* block) {
    std::uint32_t w[80];
    for (int t = 0; t < 16; ++t) w[t] = crypto_load_be32(block + 4 * t);
    for (int t = 16; t < 80; ++t) w[t] = crypto_rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; ++t) {
      std::uint32_t f, k;
      if (t < 20) {
        f = (b & c) | (~b & d);
        k = 0x5a827999;
      } else if (t < 40) {
        f = b ^ c ^ d;
        k = 0x6ed9eba1;
      } else if (t < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8f1bbcdc;
      } else {
        f = b ^ c ^ d;
        k = 0xca62c1d6;
      }
      std::uint32_t temp = crypto_rotl(a, 5) + f + e + w[t] + k;
      e = d;
      d = c;
      c = crypto_rotl(b, 30);
      b = a;
      a = temp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }
};

// FIPS 180-4 sections 4.2.2, 5.3.3 and 6.2.2.
struct Sha256Core {
  static constexpr std::size_t kDigestSize = 32;
  std::uint32_t h[8];

  void reset() {
    static constexpr std::uint32_t kInit[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::memcpy(h, kInit, sizeof h);
  }

  void compress(const unsigned char* block) {
    static constexpr std::uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
    std::uint32_t w[64];
    for (int t = 0; t < 16; ++t) w[t] = crypto_load_be32(block + 4 * t);
    for (int t = 16; t < 64; ++t) {
      std::uint32_t s0 = crypto_rotr(w[t - 15], 7) ^ crypto_rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      std::uint32_t s1 = crypto_rotr(w[t - 2], 17) ^ crypto_rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; ++t) {
      std::uint32_t sum1 = crypto_rotr(e, 6) ^ crypto_rotr(e, 11) ^ crypto_rotr(e, 25);
      std::uint32_t ch = (e & f) ^ (~e & g);
      std::uint32_t t1 = hh + sum1 + ch + k[t] + w[t];
      std::uint32_t sum0 = crypto_rotr(a, 2) ^ crypto_rotr(a, 13) ^ crypto_rotr(a, 22);
      std::uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      std::uint32_t t2 = sum0 + maj;
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
  }
};

using Sha1 = BlockHash<Sha1Core>;
using Sha256 = BlockHash<Sha256Core>;

inline std::array<std::uint8_t, 20> sha1(std::string_view data) {
  Sha1 h;
  h.update(data);
  return h.finish();
}

inline std::array<std::uint8_t, 32> sha256(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

// ---- HMAC-SHA256 and PBKDF2 -------------------------------------------------------

// RFC 2104. The key's inner and outer pads are absorbed once, so each further
// message (PBKDF2's iterations) costs only its own blocks.
class HmacSha256 {
 public:
  explicit HmacSha256(std::string_view key) {
    unsigned char block[64] = {};
    if (key.size() > sizeof block) {
      auto d = sha256(key);
      std::memcpy(block, d.data(), d.size());
    } else if (!key.empty()) {
      std::memcpy(block, key.data(), key.size());
    }
    unsigned char pad[64];
    for (std::size_t i = 0; i < sizeof pad; ++i) pad[i] = block[i] ^ 0x36;
    inner_start_.update(pad, sizeof pad);
    for (std::size_t i = 0; i < sizeof pad; ++i) pad[i] = block[i] ^ 0x5c;
    outer_start_.update(pad, sizeof pad);
    inner_ = inner_start_;
  }

  void update(const void* data, std::size_t n) { inner_.update(data, n); }
  void update(std::string_view s) { inner_.update(s); }

  // Returns the MAC and starts a new message under the same key.
  Sha256::Digest finish() {
    Sha256::Digest inner = inner_.finish();
    Sha256 outer = outer_start_;
    outer.update(inner.data(), inner.size());
    inner_ = inner_start_;
    return outer.finish();
  }

 private:
  Sha256 inner_start_, outer_start_, inner_;
};

inline std::array<std::uint8_t, 32> hmac_sha256(std::string_view key, std::string_view message) {
  HmacSha256 mac(key);
  mac.update(message);
  return mac.finish();
}

// RFC 8018 section 5.2 with PRF = HMAC-SHA256. Empty when iterations is 0.
inline std::string pbkdf2_hmac_sha256(std::string_view password, std::string_view salt,
                                      std::uint32_t iterations, std::size_t dk_len) {
  std::string out;
  if (iterations == 0) return out;
  out.reserve(dk_len);
  HmacSha256 mac(password);
  for (std::uint32_t block = 1; out.size() < dk_len; ++block) {
    unsigned char index[4];
    crypto_store_be32(index, block);
    mac.update(salt);
    mac.update(index, sizeof index);
    Sha256::Digest u = mac.finish();
    Sha256::Digest t = u;
    for (std::uint32_t i = 1; i < iterations; ++i) {
      mac.update(u.data(), u.size());
      u = mac.finish();
      for (std::size_t j = 0; j < t.size(); ++j) t[j] ^= u[j];
    }
    out.append(as_bytes(t).substr(0, std::min(t.size(), dk_len - out.size())));
  }
  return out;
}

// ---- comparison and randomness ------------------------------------------------------

// Every byte is examined whatever the first difference; only the length leaks.
inline bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  // volatile keeps the compiler from turning the loop into an early exit.
  volatile unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff = static_cast<unsigned char>(diff | (static_cast<unsigned char>(a[i]) ^
                                              static_cast<unsigned char>(b[i])));
  return diff == 0;
}

// Fills out with bytes from the kernel's CSPRNG; false if none could be had.
inline bool random_bytes(void* out, std::size_t n) {
  unsigned char* p = static_cast<unsigned char*>(out);
#if defined(METRICS_AGENT_HAS_GETRANDOM)
  while (n > 0) {
    ssize_t got = ::getrandom(p, n, 0);
    if (got > 0) {
      p += got;
      n -= static_cast<std::size_t>(got);
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // ENOSYS before Linux 3.17, or a seccomp filter: try the device
    }
  }
  if (n == 0) return true;
#endif  // METRICS_AGENT_HAS_GETRANDOM
#if defined(METRICS_AGENT_PLATFORM_WINDOWS)
  // Windows has no /dev/urandom; the system's preferred generator is its CSPRNG.
  while (n > 0) {
    const ULONG chunk = ULONG(std::min<std::size_t>(n, 1u << 30));
    if (::BCryptGenRandom(nullptr, p, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) < 0) return false;
    p += chunk;
    n -= chunk;
  }
  return true;
#endif  // METRICS_AGENT_PLATFORM_WINDOWS
  std::FILE* f = std::fopen("/dev/urandom", "rb");
  if (f == nullptr) return false;
  std::size_t got = std::fread(p, 1, n, f);
  std::fclose(f);
  return got == n;
}

// ---- base64 and base64url (RFC 4648 sections 4 and 5) -----------------------------

inline std::string crypto_base64_encode(std::string_view in, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    std::uint32_t v = (std::uint32_t(p[i]) << 16) | (std::uint32_t(p[i + 1]) << 8) | p[i + 2];
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  std::size_t rest = in.size() - i;
  if (rest > 0) {
    std::uint32_t v = std::uint32_t(p[i]) << 16;
    if (rest == 2) v |= std::uint32_t(p[i + 1]) << 8;
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    if (rest == 2) out += alphabet[(v >> 6) & 63];
    if (pad) out.append(3 - rest, '=');
  }
  return out;
}

inline int crypto_base64_value(char c, bool url) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == (url ? '-' : '+')) return 62;
  if (c == (url ? '_' : '/')) return 63;
  return -1;
}

// Strict: no whitespace, padding exactly where RFC 4648 puts it, and the
// unused low bits of the last character zero (section 3.5), so that every
// byte string has exactly one accepted encoding.
inline std::optional<std::string> crypto_base64_decode(std::string_view in, bool url) {
  if (!url) {
    if (in.size() % 4 != 0) return std::nullopt;
    if (!in.empty() && in.back() == '=') in.remove_suffix(1);
    if (!in.empty() && in.back() == '=') in.remove_suffix(1);
  }
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = crypto_base64_value(c, url);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

inline std::string base64_encode(std::string_view bytes) {
  return crypto_base64_encode(
      bytes, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", true);
}

inline std::optional<std::string> base64_decode(std::string_view text) {
  return crypto_base64_decode(text, false);
}

inline std::string base64url_encode(std::string_view bytes) {
  return crypto_base64_encode(
      bytes, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", false);
}

inline std::optional<std::string> base64url_decode(std::string_view text) {
  return crypto_base64_decode(text, true);
}

// ---- WebSocket handshake (RFC 6455 section 4.2.2) ------------------------------------

inline std::string websocket_accept(std::string_view key) {
  Sha1 h;
  h.update(key);
  h.update("258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  return base64_encode(as_bytes(h.finish()));
}

// Section 4.2.1 item 5: a base64-encoded value that decodes to 16 bytes.
inline bool valid_websocket_key(std::string_view key) {
  if (key.size() != 24) return false;
  auto raw = base64_decode(key);
  return raw && raw->size() == 16;
}

// ---- UTF-8 (RFC 3629 section 4) ---------------------------------------------------------

// The table of section 4 for a lead byte: how many continuation bytes follow
// and the range allowed for the first of them. C0, C1 and E0/F0 with a low
// second byte are overlong, ED A0..BF are surrogates, F4 90.. and F5..FF
// exceed U+10FFFF. False for a byte that cannot start a sequence.
struct Utf8Lead {
  unsigned need = 0;
  unsigned char lo = 0x80, hi = 0xbf;
};

inline bool utf8_lead(unsigned char c, Utf8Lead& lead) {
  lead = Utf8Lead();
  if (c < 0x80) return true;
  if (c < 0xc2 || c > 0xf4) return false;
  lead.need = c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
  if (c == 0xe0) lead.lo = 0xa0;
  if (c == 0xed) lead.hi = 0x9f;
  if (c == 0xf0) lead.lo = 0x90;
  if (c == 0xf4) lead.hi = 0x8f;
  return true;
}

// Checks text arriving in pieces (WebSocket fragments). feed() fails at the
// first byte after which no continuation could make the text valid, as RFC
// 6455 section 8.1 asks; complete() says whether the text may end here.
class Utf8Validator {
 public:
  bool feed(const char* data, std::size_t n) {
    if (failed_) return false;
    if (n == 0) return true;
    const auto* p = reinterpret_cast<const unsigned char*>(data);
    const auto* end = p + n;
    while (p < end) {
      if (need_ == 0) {
        while (end - p >= 8) {
          std::uint64_t word;
          std::memcpy(&word, p, sizeof word);
          if (word & 0x8080808080808080ull) break;
          p += 8;
        }
        if (p == end) break;
        unsigned char c = *p++;
        if (c < 0x80) continue;
        Utf8Lead lead;
        if (!utf8_lead(c, lead)) return fail();
        need_ = lead.need;
        lo_ = lead.lo;
        hi_ = lead.hi;
      } else {
        unsigned char c = *p++;
        if (c < lo_ || c > hi_) return fail();
        lo_ = 0x80;
        hi_ = 0xbf;
        --need_;
      }
    }
    return true;
  }
  bool feed(std::string_view s) { return feed(s.data(), s.size()); }

  bool complete() const { return !failed_ && need_ == 0; }

  void reset() {
    need_ = 0;
    lo_ = 0x80;
    hi_ = 0xbf;
    failed_ = false;
  }

 private:
  bool fail() {
    failed_ = true;
    return false;
  }

  unsigned need_ = 0;  // continuation bytes still expected
  unsigned char lo_ = 0x80, hi_ = 0xbf;  // range allowed for the next one
  bool failed_ = false;
};

inline bool valid_utf8(std::string_view s) {
  Utf8Validator v;
  return v.feed(s) && v.complete();
}

// Length of the well-formed UTF-8 sequence that starts at s[i], or 0 (the
// table of RFC 3629 section 4: no overlongs, no surrogates, nothing past U+10FFFF).
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  Utf8Lead lead;
  if (!utf8_lead(byte(i), lead)) return 0;
  const std::size_t need = lead.need;
  if (need == 0) return 1;
  if (s.size() - i <= need) return 0;
  if (byte(i + 1) < lead.lo || byte(i + 1) > lead.hi) return 0;
  for (std::size_t k = 2; k <= need; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  return need + 1;
}

// `s` with each byte that does not start a well-formed sequence replaced by
// U+FFFD: what a WebSocket text frame may carry (RFC 6455 section 8.1).
inline std::string utf8_substituted(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
  return out;
}

// ---- JWT HS256 (RFC 7519, RFC 7515) -----------------------------------------------------

struct JwtResult {
  bool ok = false;
  std::string error;  // why the token was refused; empty when ok
  std::string sub;    // empty when the token has no subject
  std::int64_t iat = 0, exp = 0;
};

// Longer tokens are refused unread; ours are about 150 bytes.
inline constexpr std::size_t kJwtMaxBytes = 4096;

inline std::string crypto_int_to_string(std::int64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

// picojson reports most errors as a string but throws for some (numbers out
// of range such as 1e999): the one entry point that never throws. Empty on
// success, else the reason; `consumed`, when given, receives how many bytes
// the value took (what follows is the caller's to judge).
inline std::string parse_json(picojson::value& v, std::string_view text, std::size_t* consumed = nullptr) {
  try {
    std::string err;
    const auto end = picojson::parse(v, text.begin(), text.end(), &err);
    if (consumed) *consumed = std::size_t(end - text.begin());
    return err;
  } catch (const std::exception& e) {
    return std::string("malformed JSON: ") + e.what();
  }
}

// True when `text` from `pos` on is only JSON whitespace (RFC 8259 section 2).
inline bool json_blank_from(std::string_view text, std::size_t pos) {
  for (; pos < text.size(); ++pos)
    if (text[pos] != ' ' && text[pos] != '\t' && text[pos] != '\r' && text[pos] != '\n') return false;
  return true;
}

// A JSON text that is exactly one object (nothing after it but whitespace).
inline bool crypto_parse_json_object(std::string_view text, picojson::value* out) {
  std::size_t used = 0;
  if (!parse_json(*out, text, &used).empty() || !out->is<picojson::object>()) return false;
  return json_blank_from(text, used);
}

// A NumericDate claim (RFC 7519 section 2): seconds, possibly fractional,
// within the range a double holds exactly. Empty on success, else the reason.
inline std::string crypto_numeric_date(const picojson::object& claims, const char* name,
                                       double* out) {
  auto it = claims.find(name);
  if (it == claims.end()) return std::string("missing ") + name;
  if (!it->second.is<double>()) return std::string(name) + " is not a number";
  double d = it->second.get<double>();
  if (!std::isfinite(d) || std::fabs(d) > 9.0e15) return std::string(name) + " is out of range";
  *out = d;
  return std::string();
}

inline std::string jwt_sign(std::string_view secret, std::string_view payload_json) {
  std::string token = base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  token += '.';
  token += base64url_encode(payload_json);
  auto mac = hmac_sha256(secret, token);
  token += '.';
  token += base64url_encode(as_bytes(mac));
  return token;
}

inline std::string jwt_issue(std::string_view secret, std::string_view sub, std::int64_t iat,
                             std::int64_t ttl_seconds) {
  using limits = std::numeric_limits<std::int64_t>;
  std::int64_t exp = ttl_seconds > 0 && iat > limits::max() - ttl_seconds   ? limits::max()
                     : ttl_seconds < 0 && iat < limits::min() - ttl_seconds ? limits::min()
                                                                            : iat + ttl_seconds;
  std::string payload = R"({"sub":)";
  payload += picojson::value(std::string(sub)).serialize();
  payload += R"(,"iat":)";
  payload += crypto_int_to_string(iat);
  payload += R"(,"exp":)";
  payload += crypto_int_to_string(exp);
  payload += '}';
  return jwt_sign(secret, payload);
}

inline JwtResult jwt_verify(std::string_view secret, std::string_view token,
                            std::int64_t now_seconds) {
  JwtResult r;
  auto refuse = [&r](std::string why) {
    r.error = std::move(why);
    return r;
  };
  if (secret.empty()) return refuse("no secret configured");
  if (token.size() > kJwtMaxBytes) return refuse("token too long");
  std::size_t dot1 = token.find('.');
  std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return refuse("token must have 3 segments");

  auto header_json = base64url_decode(token.substr(0, dot1));
  if (!header_json) return refuse("bad base64url in header");
  picojson::value header;
  if (!crypto_parse_json_object(*header_json, &header))
    return refuse("header is not a JSON object");
  const picojson::object& h = header.get<picojson::object>();
  auto alg = h.find("alg");
  if (alg == h.end()) return refuse("missing alg");
  if (!alg->second.is<std::string>()) return refuse("alg is not a string");
  const std::string& name = alg->second.get<std::string>();
  // RFC 8725 section 3.1: accept only the one algorithm we sign with.
  if (name != "HS256") {
    bool printable = name.size() <= 16 && !name.empty() &&
                     std::all_of(name.begin(), name.end(), [](char c) {
                       return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '+';
                     });
    return refuse(printable ? "unsupported alg " + name : std::string("unsupported alg"));
  }
  // RFC 7515 section 4.1.11: extensions we do not understand must be refused.
  if (h.count("crit") != 0) return refuse("unsupported crit header");

  auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!signature) return refuse("bad base64url in signature");
  auto mac = hmac_sha256(secret, token.substr(0, dot2));
  if (!constant_time_equal(*signature, as_bytes(mac))) return refuse("bad signature");

  auto payload_json = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload_json) return refuse("bad base64url in payload");
  picojson::value payload;
  if (!crypto_parse_json_object(*payload_json, &payload))
    return refuse("payload is not a JSON object");
  const picojson::object& claims = payload.get<picojson::object>();

  auto sub = claims.find("sub");
  if (sub != claims.end()) {
    if (!sub->second.is<std::string>()) return refuse("sub is not a string");
    r.sub = sub->second.get<std::string>();
  }
  double date = 0;
  std::string bad;
  if (claims.count("iat") != 0) {
    if (!(bad = crypto_numeric_date(claims, "iat", &date)).empty()) return refuse(bad);
    r.iat = static_cast<std::int64_t>(std::floor(date));
  }
  if (claims.count("nbf") != 0) {
    if (!(bad = crypto_numeric_date(claims, "nbf", &date)).empty()) return refuse(bad);
    if (static_cast<double>(now_seconds) < date) return refuse("token not yet valid");
  }
  if (!(bad = crypto_numeric_date(claims, "exp", &date)).empty()) return refuse(bad);
  r.exp = static_cast<std::int64_t>(std::floor(date));
  // RFC 7519 section 4.1.4: the current time must be before exp.
  if (static_cast<double>(now_seconds) >= date) return refuse("token expired");
  r.ok = true;
  return r;
}

// ---- password hashes: pbkdf2-sha256$<iterations>$<salt>$<hash> -------------------------

// 100000 iterations take about 60 ms on an x86-64 core and a few hundred on a
// Raspberry-Pi-class board, paid at every login (rate-limited per address,
// section 4) but by an offline guesser at every guess. OWASP's 600000 would
// cost seconds per login on the small ARM and RISC-V hosts this agent targets.
inline constexpr int kPasswordIterations = 100000;
inline constexpr int kPasswordMaxIterations = 10000000;

// Empty if iterations is out of [1, kPasswordMaxIterations] or the system has
// no randomness to give.
inline std::string password_hash(std::string_view password, int iterations = kPasswordIterations) {
  if (iterations < 1 || iterations > kPasswordMaxIterations) return std::string();
  char salt[16];
  if (!random_bytes(salt, sizeof salt)) return std::string();
  std::string_view salt_bytes(salt, sizeof salt);
  std::string hash =
      pbkdf2_hmac_sha256(password, salt_bytes, static_cast<std::uint32_t>(iterations), 32);
  return "pbkdf2-sha256$" + crypto_int_to_string(iterations) + "$" + base64_encode(salt_bytes) +
         "$" + base64_encode(hash);
}

inline bool password_verify(std::string_view password, std::string_view encoded) {
  constexpr std::string_view kScheme = "pbkdf2-sha256$";
  if (encoded.substr(0, kScheme.size()) != kScheme) return false;
  encoded.remove_prefix(kScheme.size());
  std::size_t d1 = encoded.find('$');
  std::size_t d2 = d1 == std::string_view::npos ? d1 : encoded.find('$', d1 + 1);
  if (d2 == std::string_view::npos || encoded.find('$', d2 + 1) != std::string_view::npos)
    return false;
  std::string_view count = encoded.substr(0, d1);
  if (count.empty() || count.size() > 8 || count[0] < '0' || count[0] > '9') return false;
  std::uint32_t iterations = 0;
  auto parsed = std::from_chars(count.data(), count.data() + count.size(), iterations);
  if (parsed.ec != std::errc() || parsed.ptr != count.data() + count.size()) return false;
  if (iterations < 1 || iterations > static_cast<std::uint32_t>(kPasswordMaxIterations)) return false;
  auto salt = base64_decode(encoded.substr(d1 + 1, d2 - d1 - 1));
  auto hash = base64_decode(encoded.substr(d2 + 1));
  if (!salt || salt->empty() || salt->size() > 256) return false;
  if (!hash || hash->size() < 16 || hash->size() > 64) return false;
  return constant_time_equal(pbkdf2_hmac_sha256(password, *salt, iterations, hash->size()), *hash);
}

}  // namespace detail
}  // namespace metrics_agent

// ============================================================================
// Implementation: text helpers, JSON output, time
// ============================================================================

namespace metrics_agent {
namespace detail {

inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True when the comma-separated header value `list` contains `token`.
inline bool header_has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    if (iequals(trim_ows(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

inline int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
      out += char(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

// Finds `key` in an application/x-www-form-urlencoded query string.
inline bool query_lookup(std::string_view query, std::string_view key, std::string* value) {
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    std::size_t eq = pair.find('=');
    if (percent_decode(pair.substr(0, eq)) == key) {
      if (value) *value = eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
      return true;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

// Parses a whole string as a finite double (no locale, no trailing junk).
inline bool parse_double(std::string_view s, double& out) {
  s = trim_ows(s);
  if (s.empty()) return false;
  const char* b = s.data();
  if (*b == '+') ++b;
  if (b != s.data() && s.size() > 1 && (b[0] == '-' || b[0] == '+')) return false;
  auto r = std::from_chars(b, s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(out);
}

inline bool to_u64(std::string_view s, std::uint64_t& out) {
  s = trim_ows(s);
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Doubles as text, std::to_chars's way and without the locale: to_double_chars
// writes the shortest form that reads back to the same value (fixed or
// scientific, whichever is shorter), to_fixed_chars `decimals` places.
// With METRICS_AGENT_SMALL_NUMBERS they are built on snprintf and strtod
// instead: std::to_chars for doubles is about 137 KB of a static binary,
// the C library's printf is linked anyway. Same text, slower (a few
// snprintf calls per number); the release builds use it.
#if defined(METRICS_AGENT_SMALL_NUMBERS)
// The decimal digits of `v` (> 0, finite) rounded to `precision` significant
// ones, and the decimal exponent of the first; any locale's decimal point is skipped.
inline void scientific_digits(double v, int precision, std::string& digits, int& exponent) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*e", precision - 1, v);
  digits.clear();
  const char* p = buf;
  for (; *p && *p != 'e'; ++p)
    if (*p >= '0' && *p <= '9') digits.push_back(*p);
  exponent = std::atoi(*p ? p + 1 : p);
}

inline std::to_chars_result to_double_chars(char* first, char* last, double v) {
  std::string text;
  if (v == 0) {
    text = std::signbit(v) ? "-0" : "0";
  } else {
    const double a = std::fabs(v);
    // The fewest significant digits that read back as `a`: the correctly
    // rounded p-digit value round-trips for every p from the shortest up.
    std::string digits;
    int exponent = 0, lo = 1, hi = 17;
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      char pattern[48];
      std::snprintf(pattern, sizeof pattern, "%.*e", mid - 1, a);  // the locale's own spelling for strtod
      if (std::strtod(pattern, nullptr) == a) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    scientific_digits(a, lo, digits, exponent);
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    const int n = int(digits.size());
    std::string sci = digits.substr(0, 1);
    if (n > 1) sci += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exponent < 0 ? '-' : '+', exponent < 0 ? -exponent : exponent);
    sci += e;
    std::string fixed;
    if (exponent >= n - 1) {
      // Digits beyond the shortest ones: the exact integer, as std::to_chars writes it.
      char big[400];
      std::snprintf(big, sizeof big, "%.0f", a);
      fixed = big;
    } else if (exponent >= 0) {
      fixed = digits.substr(0, std::size_t(exponent) + 1) + "." + digits.substr(std::size_t(exponent) + 1);
    } else {
      fixed = "0." + std::string(std::size_t(-exponent - 1), '0') + digits;
    }
    text = (v < 0 ? "-" : "") + (fixed.size() <= sci.size() ? fixed : sci);
  }
  if (text.size() > std::size_t(last - first)) return {last, std::errc::value_too_large};
  std::memcpy(first, text.data(), text.size());
  return {first + text.size(), std::errc()};
}

inline std::to_chars_result to_fixed_chars(char* first, char* last, double v, int decimals) {
  char buf[400];  // DBL_MAX has 309 digits
  const int n = std::snprintf(buf, sizeof buf, "%.*f", decimals < 60 ? decimals : 60, v);
  if (n < 0 || std::size_t(n) >= sizeof buf || n > last - first) return {last, std::errc::value_too_large};
  for (int i = 0; i < n; ++i) first[i] = (buf[i] >= '0' && buf[i] <= '9') || buf[i] == '-' ? buf[i] : '.';
  return {first + n, std::errc()};
}
#else
inline std::to_chars_result to_double_chars(char* first, char* last, double v) {
  return std::to_chars(first, last, v);
}

inline std::to_chars_result to_fixed_chars(char* first, char* last, double v, int decimals) {
  return std::to_chars(first, last, v, std::chars_format::fixed, decimals);
}
#endif  // METRICS_AGENT_SMALL_NUMBERS

// Appends a number the way JSON wants it: `decimals` places, trailing zeros
// trimmed, "null" for NaN and infinities. std::to_chars ignores the locale.
inline void append_number(std::string& out, double v, int decimals = 2) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[64];
  auto r = to_fixed_chars(buf, buf + sizeof buf, v, decimals);
  if (r.ec != std::errc()) {
    r = to_double_chars(buf, buf + sizeof buf, v);
  } else if (decimals > 0) {
    while (r.ptr[-1] == '0') --r.ptr;
    if (r.ptr[-1] == '.') --r.ptr;
  }
  std::string_view s(buf, std::size_t(r.ptr - buf));
  if (s == "-0") s = "0";
  out.append(s.data(), s.size());
}

inline void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, std::size_t(r.ptr - buf));
}

// JSON text must be UTF-8 (RFC 8259 section 8.1) and so must a WebSocket text
// frame, yet mount points and interface names may hold any bytes: each byte
// that does not start a well-formed sequence becomes U+FFFD, as in /metrics.
inline void append_json_string(std::string& out, std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  out += '"';
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else if (c < 0x80) {
          out += char(c);
        } else if (const std::size_t n = utf8_sequence_length(s, i)) {
          out.append(s.data() + i, n);
          i += n - 1;
        } else {
          out += "\xEF\xBF\xBD";
        }
    }
  }
  out += '"';
}

inline std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

// A small streaming JSON writer: commas and keys are its business.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}
  JsonWriter& begin_object() { sep(); out_ += '{'; first_ = true; return *this; }
  JsonWriter& end_object() { out_ += '}'; first_ = false; return *this; }
  JsonWriter& begin_array() { sep(); out_ += '['; first_ = true; return *this; }
  JsonWriter& end_array() { out_ += ']'; first_ = false; return *this; }
  JsonWriter& key(std::string_view k) {
    sep();
    append_json_string(out_, k);
    out_ += ':';
    first_ = true;  // the value follows without a comma
    return *this;
  }
  JsonWriter& num(double v, int decimals = 2) { sep(); append_number(out_, v, decimals); return *this; }
  JsonWriter& uint(std::uint64_t v) { sep(); append_uint(out_, v); return *this; }
  JsonWriter& str(std::string_view s) { sep(); append_json_string(out_, s); return *this; }
  JsonWriter& boolean(bool b) { sep(); out_ += b ? "true" : "false"; return *this; }
  JsonWriter& null() { sep(); out_ += "null"; return *this; }
  JsonWriter& raw(std::string_view json) { sep(); out_ += json; return *this; }

 private:
  void sep() {
    if (!first_) out_ += ',';
    first_ = false;
  }
  std::string& out_;
  bool first_ = true;
};

// Civil date from days since 1970-01-01 (proleptic Gregorian; H. Hinnant's
// well-known days_from_civil inverse), so no gmtime() and no locale.
inline void civil_from_days(std::int64_t z, int& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = unsigned(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = int(std::int64_t(yoe) + era * 400 + (m <= 2));
}

enum class TimeFormat {
  Micro,    // 2025-11-10T12:30:45.123456   (flat stream: no zone suffix)
  Seconds,  // 2026-01-19T14:30:05Z
  Millis,   // 2026-01-19T14:30:05.500Z
};

inline void append_timestamp(std::string& out, std::int64_t us, TimeFormat f) {
  std::int64_t secs = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
  std::int64_t frac = us - secs * 1000000;
  std::int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  std::int64_t sod = secs - days * 86400;
  int y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  char buf[40];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d", y, m, d, int(sod / 3600),
                        int(sod / 60 % 60), int(sod % 60));
  out.append(buf, std::size_t(n));
  if (f == TimeFormat::Micro) {
    n = std::snprintf(buf, sizeof buf, ".%06d", int(frac));
    out.append(buf, std::size_t(n));
  } else if (f == TimeFormat::Millis) {
    n = std::snprintf(buf, sizeof buf, ".%03dZ", int(frac / 1000));
    out.append(buf, std::size_t(n));
  } else {
    out += 'Z';
  }
}

inline std::string format_timestamp(std::int64_t us, TimeFormat f) {
  std::string s;
  append_timestamp(s, us, f);
  return s;
}

// ============================================================================
// Implementation: MessagePack output (the msgpack specification, "formats")
// ============================================================================

// A MessagePack encoder: each call appends one value or one container header,
// always in the smallest format the specification offers for it.
class MsgpackWriter {
 public:
  explicit MsgpackWriter(std::string& out) : out_(out) {}
  void nil() { byte(0xc0); }
  void boolean(bool b) { byte(b ? 0xc3 : 0xc2); }
  void uint(std::uint64_t v) {
    if (v < 0x80) byte(std::uint8_t(v));  // positive fixint
    else if (v <= 0xff) { byte(0xcc); be(v, 1); }
    else if (v <= 0xffff) { byte(0xcd); be(v, 2); }
    else if (v <= 0xffffffffu) { byte(0xce); be(v, 4); }
    else { byte(0xcf); be(v, 8); }
  }
  void integer(std::int64_t v) {
    if (v >= 0) return uint(std::uint64_t(v));
    if (v >= -32) byte(std::uint8_t(v));  // negative fixint 111xxxxx
    else if (v >= -128) { byte(0xd0); be(std::uint64_t(v), 1); }
    else if (v >= -32768) { byte(0xd1); be(std::uint64_t(v), 2); }
    else if (v >= -2147483648LL) { byte(0xd2); be(std::uint64_t(v), 4); }
    else { byte(0xd3); be(std::uint64_t(v), 8); }
  }
  void float64(double v) {
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    byte(0xcb);
    be(bits, 8);
  }
  void str(std::string_view s) {
    str_header(s.size());
    out_.append(s.data(), s.size());
  }
  void str_header(std::size_t n) { header(n, 0xa0, 31, 0xd9, 0xda, 0xdb); }
  void array_header(std::size_t n) { header(n, 0x90, 15, 0, 0xdc, 0xdd); }
  void map_header(std::size_t n) { header(n, 0x80, 15, 0, 0xde, 0xdf); }

  // Bytes of the header header(n, ...) writes: room to reserve before the
  // elements are counted.
  static std::size_t container_header_size(std::size_t n) { return n <= 15 ? 1 : n <= 0xffff ? 3 : 5; }

 private:
  void byte(std::uint8_t b) { out_ += char(b); }
  void be(std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) byte(std::uint8_t(v >> (8 * i)));
  }
  // fix: small counts in the type byte; then 8-bit (str only), 16- and 32-bit
  // counts. Lengths above 2^32-1 cannot be represented and are clamped; no
  // output of ours comes near.
  void header(std::size_t n, std::uint8_t fix, std::size_t fix_max, std::uint8_t b8, std::uint8_t b16,
              std::uint8_t b32) {
    if (n <= fix_max) byte(std::uint8_t(fix | n));
    else if (b8 && n <= 0xff) { byte(b8); be(n, 1); }
    else if (n <= 0xffff) { byte(b16); be(n, 2); }
    else { byte(b32); be(std::min<std::uint64_t>(n, 0xffffffffu), 4); }
  }
  std::string& out_;
};

// Re-encodes a JSON text as MessagePack with exactly its structure: objects
// become maps (keys in order), arrays arrays, strings str (escapes decoded to
// UTF-8), numbers without fraction or exponent integers (int64 or uint64 as
// they fit), every other number float64, null nil. Our serializers write the
// JSON once per distinct output; this turns it into the binary form, so the
// two formats cannot disagree. Returns false (and leaves `out` unspecified)
// for text that is not one JSON value or nests deeper than 64.
class JsonToMsgpack {
 public:
  static bool convert(std::string_view json, std::string& out) {
    JsonToMsgpack c(json, out);
    c.ws();
    if (!c.value(0)) return false;
    c.ws();
    return c.pos_ == c.in_.size();
  }

 private:
  JsonToMsgpack(std::string_view in, std::string& out) : in_(in), out_(out), w_(out) {}

  void ws() {
    while (pos_ < in_.size() && (in_[pos_] == ' ' || in_[pos_] == '\t' || in_[pos_] == '\n' || in_[pos_] == '\r'))
      ++pos_;
  }
  bool eat(char c) {
    ws();
    if (pos_ < in_.size() && in_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view word) {
    if (in_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  bool value(int depth) {
    ws();
    if (pos_ >= in_.size() || depth > 64) return false;
    switch (in_[pos_]) {
      case '{': return container(depth, true);
      case '[': return container(depth, false);
      case '"': return string();
      case 'n': if (!literal("null")) return false; w_.nil(); return true;
      case 't': if (!literal("true")) return false; w_.boolean(true); return true;
      case 'f': if (!literal("false")) return false; w_.boolean(false); return true;
      default: return number();
    }
  }

  // The elements are written first after room for the largest header, then
  // the header goes in front and the elements move up to meet it.
  bool container(int depth, bool object) {
    ++pos_;
    const std::size_t at = out_.size();
    out_.append(5, '\0');
    std::size_t n = 0;
    if (!eat(object ? '}' : ']')) {
      do {
        if (object) {
          ws();
          if (pos_ >= in_.size() || in_[pos_] != '"' || !string() || !eat(':')) return false;
        }
        if (!value(depth + 1)) return false;
        ++n;
      } while (eat(','));
      if (!eat(object ? '}' : ']')) return false;
    }
    std::string head;
    MsgpackWriter hw(head);
    object ? hw.map_header(n) : hw.array_header(n);
    out_.replace(at, 5, head);
    return true;
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(std::uint32_t& u) {
    if (in_.size() - pos_ < 4) return false;
    u = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex(in_[pos_ + std::size_t(i)]);
      if (h < 0) return false;
      u = u * 16 + std::uint32_t(h);
    }
    pos_ += 4;
    return true;
  }
  void utf8(std::uint32_t cp) {
    if (cp < 0x80) text_ += char(cp);
    else if (cp < 0x800) { text_ += char(0xc0 | (cp >> 6)); text_ += char(0x80 | (cp & 0x3f)); }
    else if (cp < 0x10000) {
      text_ += char(0xe0 | (cp >> 12));
      text_ += char(0x80 | ((cp >> 6) & 0x3f));
      text_ += char(0x80 | (cp & 0x3f));
    } else {
      text_ += char(0xf0 | (cp >> 18));
      text_ += char(0x80 | ((cp >> 12) & 0x3f));
      text_ += char(0x80 | ((cp >> 6) & 0x3f));
      text_ += char(0x80 | (cp & 0x3f));
    }
  }

  // RFC 8259 section 7; a lone surrogate becomes U+FFFD.
  bool string() {
    ++pos_;
    text_.clear();
    for (;;) {
      if (pos_ >= in_.size()) return false;
      char c = in_[pos_++];
      if (c == '"') break;
      if (std::uint8_t(c) < 0x20) return false;
      if (c != '\\') {
        text_ += c;
        continue;
      }
      if (pos_ >= in_.size()) return false;
      char e = in_[pos_++];
      switch (e) {
        case '"': case '\\': case '/': text_ += e; break;
        case 'b': text_ += '\b'; break;
        case 'f': text_ += '\f'; break;
        case 'n': text_ += '\n'; break;
        case 'r': text_ += '\r'; break;
        case 't': text_ += '\t'; break;
        case 'u': {
          std::uint32_t u;
          if (!hex4(u)) return false;
          if (u >= 0xd800 && u < 0xdc00 && in_.substr(pos_, 2) == "\\u") {
            std::size_t save = pos_;
            pos_ += 2;
            std::uint32_t lo;
            if (hex4(lo) && lo >= 0xdc00 && lo < 0xe000) {
              utf8(0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00));
              break;
            }
            pos_ = save;
          }
          utf8(u >= 0xd800 && u < 0xe000 ? 0xfffd : u);
          break;
        }
        default: return false;
      }
    }
    w_.str(text_);
    return true;
  }

  bool number() {
    const std::size_t start = pos_;
    auto digits = [&] {
      std::size_t s = pos_;
      while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') ++pos_;
      return pos_ > s;
    };
    bool neg = pos_ < in_.size() && in_[pos_] == '-';
    if (neg) ++pos_;
    if (pos_ < in_.size() && in_[pos_] == '0') ++pos_;
    else if (!digits()) return false;
    bool integral = true;
    if (pos_ < in_.size() && in_[pos_] == '.') {
      ++pos_;
      integral = false;
      if (!digits()) return false;
    }
    if (pos_ < in_.size() && (in_[pos_] == 'e' || in_[pos_] == 'E')) {
      ++pos_;
      integral = false;
      if (pos_ < in_.size() && (in_[pos_] == '+' || in_[pos_] == '-')) ++pos_;
      if (!digits()) return false;
    }
    const char* b = in_.data() + start;
    const char* e = in_.data() + pos_;
    if (integral) {
      if (neg) {
        std::int64_t v;
        auto r = std::from_chars(b, e, v);
        if (r.ec == std::errc() && r.ptr == e) return w_.integer(v), true;
      } else {
        std::uint64_t v;
        auto r = std::from_chars(b, e, v);
        if (r.ec == std::errc() && r.ptr == e) return w_.uint(v), true;
      }
    }
    // Out of the 64-bit range or fractional: float64, as a JSON reader would.
    double d = 0;
    auto r = std::from_chars(b, e, d);
    if (r.ec == std::errc::result_out_of_range) d = neg ? -HUGE_VAL : HUGE_VAL;
    else if (r.ec != std::errc() || r.ptr != e) return false;
    w_.float64(d);
    return true;
  }

  std::string_view in_;
  std::string& out_;
  MsgpackWriter w_;
  std::size_t pos_ = 0;
  std::string text_;
};

inline std::string json_to_msgpack(std::string_view json) {
  std::string out;
  out.reserve(json.size());
  if (!JsonToMsgpack::convert(json, out)) out.clear();
  return out;
}

// The wire format a stream client asked for (?format=, "format" in subscribe).
enum class WireFormat : std::uint8_t { Json, Msgpack };

inline bool parse_wire_format(std::string_view s, WireFormat& f) {
  if (s == "json") f = WireFormat::Json;
  else if (s == "msgpack") f = WireFormat::Msgpack;
  else return false;
  return true;
}

// ============================================================================
// Implementation: HTTP/1.1 request parser (RFC 9112) with hard limits
// ============================================================================

inline bool is_tchar(char c) {
  // RFC 9110 §5.6.2 token characters.
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

// False when `line` (a request line, possibly still arriving) can no longer
// become `method SP request-target SP HTTP/d.d CRLF` (RFC 9112 §3).
inline bool request_line_prefix_ok(std::string_view line) {
  std::size_t i = 0, n = line.size();
  while (i < n && line[i] != ' ') {
    if (line[i] == '\r' || line[i] == '\n') return false;  // a line without a target
    if (!is_tchar(line[i++])) return false;
  }
  if (i == 0 && n > 0) return false;  // no method
  if (i++ >= n) return true;
  std::size_t t = i;
  while (i < n && line[i] != ' ') {
    unsigned char c = static_cast<unsigned char>(line[i]);
    if (c <= 0x20 || c >= 0x7f) return false;
    if (i == t && c != '/' && c != '*' && c != 'h' && c != 'H') return false;
    ++i;
  }
  if (i == t && i < n) return false;  // an empty target
  if (i++ >= n) return true;
  // "HTTP/" DIGIT [ "." DIGIT ]; versions other than 1.x get 505 later.
  static const char pattern[] = "HTTP/0.0";  // '0' stands for any digit
  for (std::size_t k = 0; k < 8 && i < n; ++k, ++i) {
    char c = line[i];
    if (k == 6 && (c == '\r' || c == '\n')) break;
    if (pattern[k] == '0' ? !(c >= '0' && c <= '9') : c != pattern[k]) return false;
  }
  if (i < n && line[i] == '\r') ++i;
  return i >= n || line[i] == '\n';
}

struct HttpParseResult {
  enum Status { Incomplete, Complete, Error } status = Incomplete;
  std::size_t consumed = 0;  // bytes of the request, when Complete
  int error_status = 0;      // 400, 413, 431, 501, 505 when Error
  std::string error;
};

struct HttpLimits {
  std::size_t max_header_bytes = METRICS_AGENT_MAX_HEADER_BYTES;
  std::size_t max_body_bytes = METRICS_AGENT_MAX_BODY_BYTES;
  std::size_t max_headers = 100;
};

// Parses one request from the start of `buf`. Pure: buffers nothing itself,
// so it can be called again with more bytes after Incomplete.
inline HttpParseResult parse_http_request(std::string_view buf, HttpRequest& req,
                                          const HttpLimits& limits = {}) {
  HttpParseResult r;
  auto fail = [&](int status, const char* why) {
    r.status = HttpParseResult::Error;
    r.error_status = status;
    r.error = why;
    return r;
  };
  // Leading empty lines before a request are ignored (RFC 9112 §2.2).
  std::size_t start = 0;
  while (start < buf.size() && (buf[start] == '\r' || buf[start] == '\n') && start < 64) ++start;
  std::size_t head_end = std::string_view::npos, body_start = 0;
  for (std::size_t i = start; i < buf.size(); ++i) {
    if (buf[i] != '\n') continue;
    if (i + 1 < buf.size() && buf[i + 1] == '\n') {
      head_end = i + 1;
      body_start = i + 2;
      break;
    }
    if (i + 2 < buf.size() && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
      head_end = i + 1;
      body_start = i + 3;
      break;
    }
  }
  // Garbage is refused as soon as the request line cannot become valid,
  // not after 8 KiB of it have been buffered. Only the bytes within the head
  // limit are judged: arriving one at a time, the stream is refused with 431
  // when the limit is reached, so bytes past it must not turn that into 400
  // when they arrive in the same read.
  std::string_view window = buf.substr(0, limits.max_header_bytes);
  if (start < window.size() && !request_line_prefix_ok(window.substr(start)))
    return fail(400, "malformed request line");
  // The head's size counts through its blank line, so the verdict does not
  // depend on how the bytes arrived: without the blank line yet, the head
  // will be at least one byte longer than what is buffered.
  if (head_end == std::string_view::npos) {
    if (buf.size() >= limits.max_header_bytes) return fail(431, "request header fields too large");
    return r;
  }
  if (body_start > limits.max_header_bytes) return fail(431, "request header fields too large");

  std::string_view head = buf.substr(start, head_end - start);
  auto next_line = [&head]() {
    std::size_t nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    head.remove_prefix(nl == std::string_view::npos ? head.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };
  std::string_view line = next_line();
  std::size_t sp1 = line.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == 0 || sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
      line.find(' ', sp2 + 1) != std::string_view::npos)
    return fail(400, "malformed request line");
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  for (char c : method)
    if (!is_tchar(c)) return fail(400, "malformed method");
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
      return fail(400, "malformed request target");
  // RFC 9112 §3.2.2: a server must accept the absolute form; keep its path.
  if (target.size() > 7 && (iequals(target.substr(0, 7), "http://") || iequals(target.substr(0, 8), "https://"))) {
    std::size_t slash = target.find('/', target.find("//") + 2);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  if (target.empty() || (target[0] != '/' && target != "*")) return fail(400, "malformed request target");
  if (version.size() != 8 || version.substr(0, 7) != "HTTP/1.") {
    if (version.substr(0, 5) == "HTTP/") return fail(505, "HTTP version not supported");
    return fail(400, "malformed HTTP version");
  }
  if (version[7] != '0' && version[7] != '1') return fail(505, "HTTP version not supported");

  req = HttpRequest();
  req.method.assign(method);
  req.target.assign(target);
  req.version.assign(version);
  std::size_t q = target.find('?');
  req.path.assign(target.substr(0, q));
  if (q != std::string_view::npos) req.query.assign(target.substr(q + 1));

  std::uint64_t content_length = 0;
  bool have_length = false;
  while (!head.empty()) {
    line = next_line();
    if (line.empty()) break;
    if (line[0] == ' ' || line[0] == '\t') return fail(400, "obsolete header line folding");
    std::size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return fail(400, "malformed header field");
    std::string_view name = line.substr(0, colon);
    for (char c : name)
      if (!is_tchar(c)) return fail(400, "malformed header field name");
    std::string_view value = trim_ows(line.substr(colon + 1));
    // RFC 9110 §5.5: a field value is VCHAR, obs-text, SP and HTAB; a bare CR,
    // a NUL or another control byte must not reach the handlers.
    for (char c : value) {
      unsigned char u = static_cast<unsigned char>(c);
      if ((u < 0x20 && u != '\t') || u == 0x7f) return fail(400, "malformed header field value");
    }
    if (req.headers.size() >= limits.max_headers) return fail(431, "too many header fields");
    std::string lname(name);
    for (char& c : lname) c = ascii_lower(c);
    if (lname == "content-length") {
      std::uint64_t n = 0;
      if (!to_u64(value, n)) return fail(400, "malformed Content-Length");
      if (have_length && n != content_length) return fail(400, "conflicting Content-Length");
      have_length = true;
      content_length = n;
    } else if (lname == "transfer-encoding") {
      return fail(501, "chunked request bodies are not supported; send Content-Length");
    }
    req.headers.emplace_back(std::move(lname), std::string(value));
  }
  const std::string* conn = req.header("connection");
  if (req.version == "HTTP/1.0")
    req.keep_alive = conn && header_has_token(*conn, "keep-alive");
  else
    req.keep_alive = !(conn && header_has_token(*conn, "close"));
  if (req.version == "HTTP/1.1" && !req.header("host")) return fail(400, "missing Host header");
  if (content_length > limits.max_body_bytes) return fail(413, "request body too large");
  if (buf.size() - body_start < content_length) return r;  // the body is still arriving
  req.body.assign(buf.substr(body_start, std::size_t(content_length)));
  r.status = HttpParseResult::Complete;
  r.consumed = body_start + std::size_t(content_length);
  return r;
}

inline const char* http_reason(int status) {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 421: return "Misdirected Request";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

inline std::string serialize_response(const HttpResponse& res, bool keep_alive, bool head_only) {
  std::string out;
  out.reserve(160 + res.body.size());
  out += "HTTP/1.1 ";
  append_uint(out, std::uint64_t(res.status));
  out += ' ';
  out += http_reason(res.status);
  out += "\r\nServer: metrics-agent/" METRICS_AGENT_VERSION "\r\n";
  if (!res.content_type.empty() && res.status != 204) {
    out += "Content-Type: ";
    out += res.content_type;
    out += "\r\n";
  }
  for (const auto& h : res.headers) {
    out += h.first;
    out += ": ";
    out += h.second;
    out += "\r\n";
  }
  if (res.status != 204 && res.status != 101) {
    out += "Content-Length: ";
    append_uint(out, res.body.size());
    out += "\r\n";
  }
  if (res.status != 101) out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  out += "\r\n";
  if (!head_only && res.status != 204) out += res.body;
  return out;
}

// ============================================================================
// Implementation: WebSocket frames (RFC 6455 §5), pure and incremental
// ============================================================================

enum class WsOp : std::uint8_t {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xA,
};

inline std::string encode_frame(WsOp op, std::string_view payload, bool fin = true,
                                const std::uint8_t* mask = nullptr) {
  std::string f;
  f.reserve(payload.size() + 14);
  f += char((fin ? 0x80 : 0x00) | std::uint8_t(op));
  std::uint8_t m = mask ? 0x80 : 0x00;
  std::size_t n = payload.size();
  if (n < 126) {
    f += char(m | n);
  } else if (n <= 0xFFFF) {
    f += char(m | 126);
    f += char(n >> 8);
    f += char(n & 0xFF);
  } else {
    f += char(m | 127);
    for (int i = 7; i >= 0; --i) f += char((std::uint64_t(n) >> (8 * i)) & 0xFF);
  }
  if (mask) {
    f.append(reinterpret_cast<const char*>(mask), 4);
    for (std::size_t i = 0; i < n; ++i) f += char(payload[i] ^ mask[i & 3]);
  } else {
    f.append(payload.data(), payload.size());
  }
  return f;
}

inline std::string encode_close_frame(std::uint16_t code, std::string_view reason) {
  std::string p;
  if (code != 0) {
    p += char(code >> 8);
    p += char(code & 0xFF);
    // At most 123 bytes fit a control frame; never cut a character in two.
    std::size_t cut = std::min<std::size_t>(reason.size(), 123);
    while (cut > 0 && cut < reason.size() && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
    p.append(reason.substr(0, cut));
  }
  return encode_frame(WsOp::Close, p);
}

// RFC 6455 §7.4: codes an endpoint may put on the wire.
inline bool valid_close_code(std::uint16_t code) {
  if (code >= 3000 && code <= 4999) return true;
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
}

struct WsEvent {
  enum Type { Text, Binary, Ping, Pong, Close, Error } type = Error;
  std::string_view payload;       // message, ping/pong data, or close reason
  std::uint16_t code = 0;         // close code received, or the code to fail with
  const char* error = "";         // why, for Error
};

// Decodes client-to-server frames. next() consumes bytes from the front of
// the caller's buffer; it needs a whole frame to act on it, but checks the
// announced length against the limit before any payload is buffered.
class WsDecoder {
 public:
  explicit WsDecoder(std::size_t max_message, bool require_mask = true)
      : max_message_(max_message), require_mask_(require_mask) {}

  // Returns false when more bytes are needed. Otherwise `consumed` bytes were
  // used and, when `have_event`, `ev` is set (payload valid until next call).
  bool next(const char* data, std::size_t len, std::size_t& consumed, WsEvent& ev, bool& have_event) {
    consumed = 0;
    have_event = false;
    if (failed_) return false;
    if (len < 2) return false;
    const auto* p = reinterpret_cast<const std::uint8_t*>(data);
    bool fin = p[0] & 0x80;
    std::uint8_t rsv = p[0] & 0x70, opcode = p[0] & 0x0F;
    bool masked = p[1] & 0x80;
    std::uint64_t plen = p[1] & 0x7F;
    std::size_t hlen = 2;
    // §5.2: RSV1-3 must be 0 unless an extension was negotiated (none is).
    if (rsv) return fail(ev, have_event, 1002, "reserved bits set");
    bool control = opcode & 0x08;
    // §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved.
    if (opcode > 0x2 && opcode != 0x8 && opcode != 0x9 && opcode != 0xA)
      return fail(ev, have_event, 1002, "reserved opcode");
    // §5.1: a client must mask every frame it sends.
    if (masked != require_mask_) return fail(ev, have_event, 1002, masked ? "masked frame" : "unmasked frame");
    // §5.5: control frames are at most 125 bytes and never fragmented.
    if (control && (!fin || plen > 125)) return fail(ev, have_event, 1002, "bad control frame");
    if (plen == 126) {
      if (len < 4) return false;
      plen = (std::uint64_t(p[2]) << 8) | p[3];
      hlen = 4;
    } else if (plen == 127) {
      if (len < 10) return false;
      plen = 0;
      for (int i = 0; i < 8; ++i) plen = (plen << 8) | p[2 + i];
      hlen = 10;
      // §5.2: the most significant bit of a 64-bit length must be 0.
      if (plen >> 63) return fail(ev, have_event, 1002, "bad frame length");
    }
    if (!control) {
      // §5.4: continuation only inside a message; no new message inside one.
      if (opcode == 0x0 && !in_message_) return fail(ev, have_event, 1002, "continuation without a message");
      if (opcode != 0x0 && in_message_) return fail(ev, have_event, 1002, "new message inside a fragmented one");
      std::uint64_t total = (opcode == 0x0 ? message_.size() : 0) + plen;
      if (total > max_message_) return fail(ev, have_event, 1009, "message too big");
      if (opcode == 0x0 && fragments_ + 1 > METRICS_AGENT_MAX_FRAGMENTS)
        return fail(ev, have_event, 1009, "too many fragments");
    }
    if (masked) hlen += 4;
    if (len < hlen) return false;
    const std::uint8_t* mask = masked ? p + hlen - 4 : nullptr;
    const char* payload = data + hlen;
    const bool text_frame = opcode == 0x1 || (opcode == 0x0 && text_);
    if (len - hlen < plen) {
      // §8.1 asks to fail as soon as text cannot become valid: the part of a
      // frame that has arrived is checked now, not when the frame is whole,
      // so a peer cannot hold a 1007 back behind a slow payload.
      if (text_frame && len - hlen > checked_) {
        if (checked_ == 0 && opcode == 0x1) utf8_.reset();
        if (!feed_unmasked(payload, checked_, len - hlen, mask))
          return fail(ev, have_event, 1007, "invalid UTF-8 in text message");
        checked_ = len - hlen;
      }
      return false;
    }
    consumed = hlen + std::size_t(plen);

    if (control) {
      control_.assign(payload, std::size_t(plen));
      unmask(&control_[0], control_.size(), mask);
      have_event = true;
      ev = WsEvent();
      ev.payload = control_;
      if (opcode == 0x9) {
        ev.type = WsEvent::Ping;
      } else if (opcode == 0xA) {
        ev.type = WsEvent::Pong;
      } else {
        ev.type = WsEvent::Close;
        ev.code = 1005;  // §7.1.5: no status code present
        if (plen == 1) return fail(ev, have_event, 1002, "close payload of one byte");
        if (plen >= 2) {
          ev.code = std::uint16_t((std::uint8_t(control_[0]) << 8) | std::uint8_t(control_[1]));
          if (!valid_close_code(ev.code)) return fail(ev, have_event, 1002, "invalid close code");
          Utf8Validator v;
          if (!v.feed(control_.data() + 2, control_.size() - 2) || !v.complete())
            return fail(ev, have_event, 1007, "close reason is not UTF-8");
          ev.payload = std::string_view(control_).substr(2);
        }
      }
      return true;
    }
    // The payload bytes already checked while the frame was arriving.
    const std::size_t checked = checked_;
    checked_ = 0;
    if (opcode != 0x0) {
      in_message_ = true;
      text_ = opcode == 0x1;
      message_.clear();
      fragments_ = 0;
      if (checked == 0) utf8_.reset();
    }
    ++fragments_;
    std::size_t old = message_.size();
    message_.append(payload, std::size_t(plen));
    unmask(&message_[0] + old, std::size_t(plen), mask);
    // §8.1: text must be valid UTF-8; fail as soon as it cannot become valid.
    if (text_frame && !utf8_.feed(message_.data() + old + checked, std::size_t(plen) - checked))
      return fail(ev, have_event, 1007, "invalid UTF-8 in text message");
    if (!fin) return true;
    in_message_ = false;
    if (text_ && !utf8_.complete()) return fail(ev, have_event, 1007, "invalid UTF-8 in text message");
    have_event = true;
    ev = WsEvent();
    ev.type = text_ ? WsEvent::Text : WsEvent::Binary;
    ev.payload = message_;
    return true;
  }

  // Releases the memory of a large finished message.
  void shrink() {
    if (!in_message_ && message_.capacity() > 4096) std::string().swap(message_);
  }

 private:
  static void unmask(char* d, std::size_t n, const std::uint8_t* mask) {
    if (!mask) return;
    for (std::size_t i = 0; i < n; ++i) d[i] = char(d[i] ^ mask[i & 3]);
  }
  // Feeds payload bytes [from, to) of a frame still arriving to the UTF-8
  // validator, unmasked through a small buffer: the frame itself stays in the
  // caller's buffer until it is whole.
  bool feed_unmasked(const char* payload, std::size_t from, std::size_t to, const std::uint8_t* mask) {
    char block[256];
    while (from < to) {
      std::size_t n = std::min(to - from, sizeof block);
      for (std::size_t i = 0; i < n; ++i)
        block[i] = mask ? char(payload[from + i] ^ mask[(from + i) & 3]) : payload[from + i];
      if (!utf8_.feed(block, n)) return false;
      from += n;
    }
    return true;
  }
  bool fail(WsEvent& ev, bool& have_event, std::uint16_t code, const char* why) {
    failed_ = true;
    have_event = true;
    ev = WsEvent();
    ev.type = WsEvent::Error;
    ev.code = code;
    ev.error = why;
    return true;
  }

  std::size_t max_message_;
  bool require_mask_;
  bool failed_ = false;
  bool in_message_ = false;
  bool text_ = false;
  std::size_t fragments_ = 0;
  std::size_t checked_ = 0;  // payload bytes of the arriving frame fed to utf8_
  std::string message_, control_;
  Utf8Validator utf8_;
};

}  // namespace detail
}  // namespace metrics_agent

// ============================================================================
// Implementation: socket shim (the only OS calls the event loop makes)
// ============================================================================

namespace metrics_agent {
namespace detail {
namespace net {

// The peer of an accepted connection as text, and whether it is loopback
// (127.0.0.0/8, ::1, or ::ffff:127.x.y.z): both socket APIs below.
inline void describe_peer(const sockaddr_storage& ss, std::string& remote, bool& loopback) {
  char buf[INET6_ADDRSTRLEN] = "";
  loopback = false;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127);
  }
  remote = buf;
}

// ---- POSIX sockets (Linux, the BSDs, macOS) -------------------------------

#if defined(METRICS_AGENT_PLATFORM_POSIX)
using socket_t = int;
constexpr socket_t invalid_socket = -1;
inline void close_socket(socket_t s) { ::close(s); }
inline int last_error() { return errno; }
inline bool would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK || e == EINTR; }
inline bool out_of_descriptors(int e) { return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM; }
inline long send_some(socket_t s, const void* p, std::size_t n) { return long(::send(s, p, n, MSG_NOSIGNAL)); }
inline long recv_some(socket_t s, void* p, std::size_t n) { return long(::recv(s, p, n, 0)); }
inline long send_vec(socket_t s, const struct iovec* v, int n) {
  struct msghdr m {};
  m.msg_iov = const_cast<struct iovec*>(v);
  m.msg_iovlen = std::size_t(n);
  return long(::sendmsg(s, &m, MSG_NOSIGNAL));
}
inline void shutdown_write(socket_t s) { ::shutdown(s, SHUT_WR); }
inline int poll_sockets(pollfd* p, std::size_t n, int timeout_ms) { return ::poll(p, nfds_t(n), timeout_ms); }

// Raises the open-file limit to the hard limit (SPEC §2).
inline bool raise_fd_limit() {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
  if (rl.rlim_cur >= rl.rlim_max) return true;
  rl.rlim_cur = rl.rlim_max;
  return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

// Lowers the calling thread's scheduling priority (nice +10), for background
// work that must yield the CPU to the event loop. On Linux a thread id given
// to setpriority(2) names that thread alone (see its NOTES).
inline void lower_thread_priority() { ::setpriority(PRIO_PROCESS, id_t(::syscall(SYS_gettid)), 10); }

inline socket_t accept_nonblocking(socket_t l, std::string& remote, bool& loopback) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  socket_t s = ::accept4(l, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (s < 0) return invalid_socket;
  int one = 1;
  ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  describe_peer(ss, remote, loopback);
  return s;
}

using iovec = ::iovec;

// Calls stop (async-signal-safe) on SIGINT and SIGTERM. A write to a socket
// the peer has closed then fails with EPIPE instead of raising SIGPIPE.
inline void on_termination(void (*stop)(int)) {
  std::signal(SIGINT, stop);
  std::signal(SIGTERM, stop);
  std::signal(SIGPIPE, SIG_IGN);
}
#endif  // METRICS_AGENT_PLATFORM_POSIX

// ---- Winsock 2 (Windows) ------------------------------------------------------

#if defined(METRICS_AGENT_PLATFORM_WINDOWS)
using socket_t = SOCKET;
constexpr socket_t invalid_socket = INVALID_SOCKET;
// The POSIX shape for send_vec's callers; WSABUF orders its fields the other
// way round, so send_vec copies.
struct iovec {
  void* iov_base;
  std::size_t iov_len;
};
inline void close_socket(socket_t s) { ::closesocket(s); }
inline int last_error() { return ::WSAGetLastError(); }
inline bool would_block(int e) { return e == WSAEWOULDBLOCK || e == WSAEINTR || e == WSAEINPROGRESS; }
inline bool out_of_descriptors(int e) { return e == WSAEMFILE || e == WSAENOBUFS; }
inline long send_some(socket_t s, const void* p, std::size_t n) {
  return long(::send(s, static_cast<const char*>(p), int(std::min<std::size_t>(n, INT_MAX)), 0));
}
inline long recv_some(socket_t s, void* p, std::size_t n) {
  return long(::recv(s, static_cast<char*>(p), int(std::min<std::size_t>(n, INT_MAX)), 0));
}
inline long send_vec(socket_t s, const iovec* v, int n) {
  WSABUF bufs[16];
  if (n > 16) n = 16;
  for (int i = 0; i < n; ++i) {
    bufs[i].buf = static_cast<char*>(v[i].iov_base);
    bufs[i].len = ULONG(std::min<std::size_t>(v[i].iov_len, ULONG_MAX));
  }
  DWORD sent = 0;
  return ::WSASend(s, bufs, DWORD(n), &sent, 0, nullptr, nullptr) == 0 ? long(sent) : -1;
}
inline void shutdown_write(socket_t s) { ::shutdown(s, SD_SEND); }
// WSAPoll, not select: select's FD_SETSIZE (64 by default) caps the clients,
// and WSAPoll's known bug (a failed connect() is not reported, fixed in
// Windows 10 2004) concerns outgoing connections, which the server never makes.
inline int poll_sockets(pollfd* p, std::size_t n, int timeout_ms) { return ::WSAPoll(p, ULONG(n), timeout_ms); }

// Windows has no per-process limit on sockets to raise.
inline bool raise_fd_limit() { return true; }
inline void lower_thread_priority() { ::SetThreadPriority(::GetCurrentThread(), THREAD_PRIORITY_BELOW_NORMAL); }

inline socket_t accept_nonblocking(socket_t l, std::string& remote, bool& loopback) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  socket_t s = ::accept(l, reinterpret_cast<sockaddr*>(&ss), &len);
  if (s == INVALID_SOCKET) return invalid_socket;
  u_long nonblocking = 1;
  ::ioctlsocket(s, FIONBIO, &nonblocking);
  BOOL one = TRUE;
  ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
  describe_peer(ss, remote, loopback);
  return s;
}

// The system's text for a Winsock (or Win32) error code, in English where the
// system has it.
inline std::string winsock_error_text(int e) {
  char buf[256];
  DWORD n = ::FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr, DWORD(e),
                             MAKELANGID(LANG_ENGLISH, SUBLANG_ENGLISH_US), buf, sizeof buf, nullptr);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '.')) --n;
  return n > 0 ? std::string(buf, n) : "Winsock error " + std::to_string(e);
}

// WSAStartup once per process, before the first socket.
inline bool winsock_started() {
  static const bool ok = [] {
    WSADATA d;
    return ::WSAStartup(MAKEWORD(2, 2), &d) == 0;
  }();
  return ok;
}
#endif  // METRICS_AGENT_PLATFORM_WINDOWS

// ---- many sends at once: io_uring where it exists ------------------------------

// Writes many buffers, each to its own socket, for the fan-out: add() one
// write, then finish(); each write's outcome (bytes taken, or -errno) is
// stored in its `result` by the time finish() returns. With io_uring (Linux
// 5.6 and later, and not refused by a seccomp policy, as some container
// runtimes do) the writes go to the kernel in batches of kBatch
// IORING_OP_SEND entries, one io_uring_enter() per batch submitting them and
// collecting their completions, instead of one send() call each: the same
// non-blocking writes (MSG_DONTWAIT: a full socket answers -EAGAIN at once),
// a fraction of the system calls. Without io_uring, or once it has failed,
// each add() is one send_some(). One BatchSend belongs to one sender at a
// time; the rings are made by the first add() and kept.
class BatchSend {
 public:
  static constexpr unsigned kBatch = 256;

  BatchSend() = default;
  BatchSend(const BatchSend&) = delete;
  BatchSend& operator=(const BatchSend&) = delete;
  ~BatchSend() { release(); }

  // false: every write goes through send(), as where io_uring does not exist.
  void set_enabled(bool on) {
    if (!on) release();
    tried_ = !on;
  }
  bool uses_io_uring() const { return ring_ >= 0; }

  void add(socket_t s, const char* data, std::uint32_t len, std::int32_t* result) {
#if defined(METRICS_AGENT_HAS_IO_URING)
    if (!tried_) setup();
    if (ring_ >= 0) {
      if (queued_ == entries_) finish();
      if (ring_ >= 0) {
        const unsigned slot = (*sq_tail_ + queued_) & sq_mask_;
        io_uring_sqe& e = sqes_[slot];
        std::memset(&e, 0, sizeof e);
        e.opcode = IORING_OP_SEND;
        e.fd = s;
        e.addr = reinterpret_cast<std::uintptr_t>(data);
        e.len = len;
        e.msg_flags = MSG_NOSIGNAL | MSG_DONTWAIT;
        e.user_data = reinterpret_cast<std::uintptr_t>(result);
        sq_array_[slot] = slot;
        pending_[queued_++] = Pending{s, data, len, result};
        *result = kPending;
        return;
      }
    }
#endif  // METRICS_AGENT_HAS_IO_URING
    long w = send_some(s, data, len);
    *result = w >= 0 ? std::int32_t(w) : -std::max(1, last_error());
  }

  // Submits what add() queued and waits for every outcome.
  void finish() {
#if defined(METRICS_AGENT_HAS_IO_URING)
    if (ring_ < 0 || queued_ == 0) return;
    const unsigned n = queued_;
    __atomic_store_n(sq_tail_, *sq_tail_ + n, __ATOMIC_RELEASE);
    queued_ = 0;
    unsigned submitted = 0, reaped = 0;
    int failures = 0;
    while (reaped < n) {
      const unsigned to_submit = n - submitted;
      long r = ::syscall(__NR_io_uring_enter, ring_, to_submit, n - reaped, IORING_ENTER_GETEVENTS, nullptr, 0);
      if (r >= 0) {
        submitted += unsigned(r);
      } else if (errno != EINTR && errno != EAGAIN && errno != EBUSY) {
        break;
      } else if (++failures > 1000) {
        break;
      }
      unsigned head = *cq_head_;
      const unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
      for (; head != tail; ++head, ++reaped) {
        const io_uring_cqe& c = cqes_[head & cq_mask_];
        *reinterpret_cast<std::int32_t*>(std::uintptr_t(c.user_data)) = c.res;
      }
      __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
    }
    if (reaped < n) {
      // The ring failed (which a working kernel never does): a write with no
      // outcome may have been made in part, so writing it again could break
      // the stream; it counts as failed, which drops that client. send()
      // from now on.
      for (unsigned i = 0; i < n; ++i)
        if (*pending_[i].result == kPending) *pending_[i].result = -EIO;
      release();
      tried_ = true;
      return;
    }
    // IORING_OP_SEND unknown to the kernel (before 5.6): send() from now on.
    for (unsigned i = 0; i < n; ++i) {
      if (*pending_[i].result != -EINVAL) continue;
      release();
      tried_ = true;
      for (unsigned j = i; j < n; ++j) {
        if (*pending_[j].result != -EINVAL) continue;
        long w = send_some(pending_[j].s, pending_[j].data, pending_[j].len);
        *pending_[j].result = w >= 0 ? std::int32_t(w) : -std::max(1, last_error());
      }
      return;
    }
#endif  // METRICS_AGENT_HAS_IO_URING
  }

 private:
  static constexpr std::int32_t kPending = std::numeric_limits<std::int32_t>::min() + 1;
#if defined(METRICS_AGENT_HAS_IO_URING)
  struct Pending {
    socket_t s;
    const char* data;
    std::uint32_t len;
    std::int32_t* result;
  };
  void setup() {
    tried_ = true;
    io_uring_params p{};
    long fd = ::syscall(__NR_io_uring_setup, kBatch, &p);
    if (fd < 0) return;  // ENOSYS, or EPERM under a seccomp policy: send() it is
    ring_ = int(fd);
    sq_len_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    cq_len_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
    const bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single) sq_len_ = cq_len_ = std::max(sq_len_, cq_len_);
    sqes_len_ = p.sq_entries * sizeof(io_uring_sqe);
    sq_ = map(sq_len_, IORING_OFF_SQ_RING);
    cq_ = single ? sq_ : map(cq_len_, IORING_OFF_CQ_RING);
    void* sqes = map(sqes_len_, IORING_OFF_SQES);
    if (!sq_ || !cq_ || !sqes) {
      if (sqes) ::munmap(sqes, sqes_len_);
      release();
      return;
    }
    sqes_ = static_cast<io_uring_sqe*>(sqes);
    auto at = [](void* base, unsigned off) { return reinterpret_cast<unsigned*>(static_cast<char*>(base) + off); };
    sq_tail_ = at(sq_, p.sq_off.tail);
    sq_mask_ = *at(sq_, p.sq_off.ring_mask);
    sq_array_ = at(sq_, p.sq_off.array);
    cq_head_ = at(cq_, p.cq_off.head);
    cq_tail_ = at(cq_, p.cq_off.tail);
    cq_mask_ = *at(cq_, p.cq_off.ring_mask);
    cqes_ = reinterpret_cast<io_uring_cqe*>(static_cast<char*>(cq_) + p.cq_off.cqes);
    entries_ = std::min<unsigned>(p.sq_entries, kBatch);
    pending_.reset(new Pending[entries_]);
  }
  void* map(std::size_t len, off_t what) {
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_, what);
    return p == MAP_FAILED ? nullptr : p;
  }
#endif  // METRICS_AGENT_HAS_IO_URING
  void release() {
#if defined(METRICS_AGENT_HAS_IO_URING)
    if (sqes_) ::munmap(sqes_, sqes_len_);
    if (cq_ && cq_ != sq_) ::munmap(cq_, cq_len_);
    if (sq_) ::munmap(sq_, sq_len_);
    if (ring_ >= 0) ::close(ring_);
    sqes_ = nullptr;
    sq_ = cq_ = nullptr;
    queued_ = 0;
#endif  // METRICS_AGENT_HAS_IO_URING
    ring_ = -1;
  }

  bool tried_ = false;
  int ring_ = -1;
#if defined(METRICS_AGENT_HAS_IO_URING)
  std::size_t sq_len_ = 0, cq_len_ = 0, sqes_len_ = 0;
  void *sq_ = nullptr, *cq_ = nullptr;
  io_uring_sqe* sqes_ = nullptr;
  io_uring_cqe* cqes_ = nullptr;
  unsigned *sq_tail_ = nullptr, *sq_array_ = nullptr, *cq_head_ = nullptr, *cq_tail_ = nullptr;
  unsigned sq_mask_ = 0, cq_mask_ = 0, entries_ = 0, queued_ = 0;
  std::unique_ptr<Pending[]> pending_;
#endif  // METRICS_AGENT_HAS_IO_URING
};

// ---- shared by both socket APIs ----------------------------------------------

// Parses "HOST:PORT" where HOST is an IPv4 address, [IPv6], "localhost" or
// "*" (all IPv4 addresses). False with a reason.
inline bool parse_listen_address(const std::string& spec, sockaddr_storage& ss, socklen_t& len,
                                 std::string& error) {
  std::size_t colon = spec.rfind(':');
  if (colon == std::string::npos) {
    error = "expected ADDR:PORT, got '" + spec + "'";
    return false;
  }
  std::string host = spec.substr(0, colon), port_s = spec.substr(colon + 1);
  std::uint64_t port = 0;
  // Digits only: to_u64 would also take the spaces around them.
  if (port_s.find_first_not_of("0123456789") != std::string::npos || !to_u64(port_s, port) ||
      port > 65535) {
    error = "bad port in '" + spec + "' (0-65535)";
    return false;
  }
  ss = sockaddr_storage{};
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(std::uint16_t(port));
    if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a->sin6_addr) != 1) {
      error = "bad IPv6 address in '" + spec + "'";
      return false;
    }
    len = sizeof *a;
    return true;
  }
  if (host == "localhost") host = "127.0.0.1";
  if (host.empty() || host == "*") host = "0.0.0.0";
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  a->sin_port = htons(std::uint16_t(port));
  if (inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1) {
    error = "bad IPv4 address in '" + spec + "' (IPv6 goes in brackets: [::1]:PORT)";
    return false;
  }
  len = sizeof *a;
  return true;
}

inline bool valid_listen_address(const std::string& spec, std::string& error) {
  sockaddr_storage ss;
  socklen_t len = 0;
  return parse_listen_address(spec, ss, len, error);
}

inline int bound_port(socket_t s) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(s, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

#if defined(METRICS_AGENT_PLATFORM_POSIX)

// Listens on `spec` (see parse_listen_address). Returns invalid_socket and a
// reason on failure.
inline socket_t listen_on(const std::string& spec, std::string& error) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!parse_listen_address(spec, ss, len, error)) return invalid_socket;
  socket_t s = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return invalid_socket;
  }
  int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6) ::setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(s, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int e = errno;
    error = "cannot listen on " + spec + ": " + std::strerror(e) +
            (e == EADDRINUSE ? " (another process holds the port)" : "");
    ::close(s);
    return invalid_socket;
  }
  if (::listen(s, 4096) != 0) {
    error = std::string("listen: ") + std::strerror(errno);
    ::close(s);
    return invalid_socket;
  }
  return s;
}

// A wake-up channel another thread or a signal handler can poke.
struct Waker {
  int fds[2] = {-1, -1};
  Waker() {
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) fds[0] = fds[1] = -1;
  }
  ~Waker() {
    if (fds[0] >= 0) ::close(fds[0]);
    if (fds[1] >= 0) ::close(fds[1]);
  }
  void wake() const {
    char c = 1;
    ssize_t r = ::write(fds[1], &c, 1);  // async-signal-safe
    (void)r;
  }
  void drain() const {
    char buf[64];
    while (::read(fds[0], buf, sizeof buf) > 0) {
    }
  }
  int fd() const { return fds[0]; }
};

// A spare descriptor, closed to accept-and-shed one connection when the
// process is out of descriptors, so the listener does not spin (SPEC §2).
struct ReserveFd {
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ~ReserveFd() {
    if (fd >= 0) ::close(fd);
  }
  void shed_one(socket_t listener) {
    if (fd >= 0) ::close(fd);
    int s = ::accept(listener, nullptr, nullptr);
    if (s >= 0) ::close(s);
    fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
};
#endif  // METRICS_AGENT_PLATFORM_POSIX

#if defined(METRICS_AGENT_PLATFORM_WINDOWS)
// Listens on `spec` (see parse_listen_address). Returns invalid_socket and a
// reason on failure.
inline socket_t listen_on(const std::string& spec, std::string& error) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!parse_listen_address(spec, ss, len, error)) return invalid_socket;
  if (!winsock_started()) {
    error = "WSAStartup failed";
    return invalid_socket;
  }
  socket_t s = ::socket(ss.ss_family, SOCK_STREAM, IPPROTO_TCP);
  if (s == INVALID_SOCKET) {
    error = "socket: " + winsock_error_text(last_error());
    return invalid_socket;
  }
  u_long nonblocking = 1;
  ::ioctlsocket(s, FIONBIO, &nonblocking);
  // SO_REUSEADDR on Windows would let another process take the port over;
  // SO_EXCLUSIVEADDRUSE refuses that, and the port is free again at once.
  BOOL one = TRUE;
  ::setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, reinterpret_cast<const char*>(&one), sizeof one);
  if (ss.ss_family == AF_INET6)
    ::setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, reinterpret_cast<const char*>(&one), sizeof one);
  if (::bind(s, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int e = last_error();
    error = "cannot listen on " + spec + ": " + winsock_error_text(e) +
            (e == WSAEADDRINUSE || e == WSAEACCES ? " (another process holds the port)" : "");
    ::closesocket(s);
    return invalid_socket;
  }
  if (::listen(s, SOMAXCONN) != 0) {
    error = "listen: " + winsock_error_text(last_error());
    ::closesocket(s);
    return invalid_socket;
  }
  return s;
}

// A wake-up channel another thread or the console handler can poke: a
// connected loopback pair, since WSAPoll waits on sockets only.
struct Waker {
  socket_t rd = invalid_socket, wr = invalid_socket;
  Waker() {
    std::string error;
    socket_t l = listen_on("127.0.0.1:0", error);
    if (l == invalid_socket) return;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(std::uint16_t(bound_port(l)));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    wr = ::socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (wr != INVALID_SOCKET && ::connect(wr, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      // The listener is non-blocking, and the connection may not be queued yet.
      for (int i = 0; i < 1000 && rd == invalid_socket; ++i) {
        rd = ::accept(l, nullptr, nullptr);
        if (rd == INVALID_SOCKET) ::Sleep(1);
      }
    }
    ::closesocket(l);
    if (rd == invalid_socket) {
      if (wr != INVALID_SOCKET) ::closesocket(wr);
      wr = invalid_socket;
      return;
    }
    u_long nonblocking = 1;
    ::ioctlsocket(rd, FIONBIO, &nonblocking);
    ::ioctlsocket(wr, FIONBIO, &nonblocking);
    BOOL one = TRUE;
    ::setsockopt(wr, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
  }
  ~Waker() {
    if (rd != invalid_socket) ::closesocket(rd);
    if (wr != invalid_socket) ::closesocket(wr);
  }
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;
  void wake() const {
    char c = 1;
    ::send(wr, &c, 1, 0);
  }
  void drain() const {
    char buf[64];
    while (::recv(rd, buf, sizeof buf, 0) > 0) {
    }
  }
  socket_t fd() const { return rd; }
};

// Sockets are handles without a per-process descriptor limit, so nothing is
// held in reserve: on WSAEMFILE/WSAENOBUFS one pending connection is accepted
// and closed, so the listener does not spin.
struct ReserveFd {
  void shed_one(socket_t listener) {
    socket_t s = ::accept(listener, nullptr, nullptr);
    if (s != INVALID_SOCKET) ::closesocket(s);
  }
};

// Calls stop(SIGINT) on Ctrl-C, Ctrl-Break and the console's close, logoff
// and shutdown events. The handler runs on a thread of its own; for the last
// three the process ends when it returns, so it waits for main() to finish
// the clean shutdown (Windows allows about five seconds).
inline void (*&termination_handler())(int) {
  static void (*handler)(int) = nullptr;
  return handler;
}
inline BOOL WINAPI console_event(DWORD event) {
  if (termination_handler()) termination_handler()(SIGINT);
  if (event == CTRL_CLOSE_EVENT || event == CTRL_LOGOFF_EVENT || event == CTRL_SHUTDOWN_EVENT) ::Sleep(INFINITE);
  return TRUE;
}
inline void on_termination(void (*stop)(int)) {
  termination_handler() = stop;
  ::SetConsoleCtrlHandler(console_event, TRUE);
}
#endif  // METRICS_AGENT_PLATFORM_WINDOWS

// ---- readiness: the Poller ---------------------------------------------------
//
// One backend per build, chosen by a METRICS_AGENT_HAS_* flag; the event loop
// uses nothing else to wait. Every backend is level-triggered and provides:
//   Poller();                          ok() says whether it could be set up
//   bool add(socket_t s, void* ptr, bool want_write = false);
//                                      watch s for reading (and writing); events carry ptr
//   bool modify(socket_t s, void* ptr, bool want_write, bool want_read = true);
//   void remove(socket_t s);           called before s is closed
//   int wait(std::vector<Event>& out, int timeout_ms);
//                                      clears out, then fills it with the ready sockets;
//                                      returns their number (0 on timeout or EINTR)
//   using Event = PollEvent;
// epoll is the Linux backend; poll(2) is the portable one (any POSIX system
// with METRICS_AGENT_USE_POLL, and Windows through WSAPoll); kqueue (BSD,
// macOS) would fit the same interface.

// One ready socket. `readable` includes a hang-up, so that the read that
// follows sees the end of the stream.
struct PollEvent {
  void* ptr;
  bool readable, writable, error, hangup;
};

#if defined(METRICS_AGENT_HAS_EPOLL)
// epoll(7), level-triggered.
class Poller {
 public:
  using Event = PollEvent;
  Poller() : ep_(::epoll_create1(EPOLL_CLOEXEC)) {}
  ~Poller() {
    if (ep_ >= 0) ::close(ep_);
  }
  bool ok() const { return ep_ >= 0; }
  bool add(socket_t s, void* ptr, bool want_write = false) { return ctl(EPOLL_CTL_ADD, s, ptr, want_write); }
  bool modify(socket_t s, void* ptr, bool want_write, bool want_read = true) {
    return ctl(EPOLL_CTL_MOD, s, ptr, want_write, want_read);
  }
  void remove(socket_t s) { ::epoll_ctl(ep_, EPOLL_CTL_DEL, s, nullptr); }
  // Waits up to timeout_ms; returns the number of events in `out`.
  int wait(std::vector<Event>& out, int timeout_ms) {
    epoll_event evs[256];
    int n = ::epoll_wait(ep_, evs, 256, timeout_ms);
    out.clear();
    for (int i = 0; i < n; ++i)
      out.push_back({evs[i].data.ptr, (evs[i].events & (EPOLLIN | EPOLLHUP)) != 0,
                     (evs[i].events & EPOLLOUT) != 0, (evs[i].events & EPOLLERR) != 0,
                     (evs[i].events & EPOLLHUP) != 0});
    return n < 0 ? 0 : n;
  }

 private:
  bool ctl(int op, socket_t s, void* ptr, bool want_write, bool want_read = true) {
    epoll_event ev{};
    ev.events = (want_read ? EPOLLIN : 0u) | (want_write ? EPOLLOUT : 0u);
    ev.data.ptr = ptr;
    return ::epoll_ctl(ep_, op, s, &ev) == 0;
  }
  int ep_;
};
#endif  // METRICS_AGENT_HAS_EPOLL

#if defined(METRICS_AGENT_HAS_POLL)
// poll(2) (WSAPoll on Windows), level-triggered like the epoll backend. The
// watched sockets live in one array handed to the kernel on every wait, so a
// wake-up costs O(watched sockets) rather than O(ready sockets): fine for
// hundreds of clients, measured against epoll in the README for thousands.
class Poller {
 public:
  using Event = PollEvent;
  bool ok() const { return true; }
  bool add(socket_t s, void* ptr, bool want_write = false) {
    if (index_.count(s)) return false;
    index_.emplace(s, fds_.size());
    pollfd p{};
    p.fd = s;
    p.events = mask(want_write, true);
    fds_.push_back(p);
    ptrs_.push_back(ptr);
    return true;
  }
  bool modify(socket_t s, void* ptr, bool want_write, bool want_read = true) {
    auto it = index_.find(s);
    if (it == index_.end()) return false;
    fds_[it->second].events = mask(want_write, want_read);
    ptrs_[it->second] = ptr;
    return true;
  }
  // The last entry takes the removed one's place, so removal is O(1).
  void remove(socket_t s) {
    auto it = index_.find(s);
    if (it == index_.end()) return;
    const std::size_t i = it->second, last = fds_.size() - 1;
    index_.erase(it);
    if (i != last) {
      fds_[i] = fds_[last];
      ptrs_[i] = ptrs_[last];
      index_[fds_[i].fd] = i;
    }
    fds_.pop_back();
    ptrs_.pop_back();
  }
  // Waits up to timeout_ms; returns the number of events in `out`.
  int wait(std::vector<Event>& out, int timeout_ms) {
    out.clear();
    int n = poll_sockets(fds_.data(), fds_.size(), timeout_ms);
    for (std::size_t i = 0; i < fds_.size() && n > 0; ++i) {
      const auto r = fds_[i].revents;
      if (r == 0) continue;
      --n;
      // POLLNVAL: a socket closed without remove(); report it as an error so
      // the loop drops its connection instead of polling it forever.
      const bool err = (r & (POLLERR | POLLNVAL)) != 0, hup = (r & POLLHUP) != 0;
      out.push_back({ptrs_[i], (r & POLLIN) != 0 || hup, (r & POLLOUT) != 0, err, hup});
    }
    return int(out.size());
  }

 private:
  // A read interest of zero still reports errors and hang-ups, as epoll does.
  static short mask(bool want_write, bool want_read) {
    return short((want_read ? POLLIN : 0) | (want_write ? POLLOUT : 0));
  }
  std::vector<pollfd> fds_;
  std::vector<void*> ptrs_;
  std::unordered_map<socket_t, std::size_t> index_;
};
#endif  // METRICS_AGENT_HAS_POLL

// The interface above, checked for whichever backend was built.
static_assert(std::is_same<decltype(std::declval<Poller&>().add(socket_t(), nullptr, false)), bool>::value &&
                  std::is_same<decltype(std::declval<Poller&>().modify(socket_t(), nullptr, false, true)),
                               bool>::value &&
                  std::is_same<decltype(std::declval<Poller&>().remove(socket_t())), void>::value &&
                  std::is_same<decltype(std::declval<Poller&>().wait(std::declval<std::vector<PollEvent>&>(), 0)),
                               int>::value &&
                  std::is_same<Poller::Event, PollEvent>::value,
              "the Poller interface: add, modify, remove, wait and Event = PollEvent");

}  // namespace net

// ============================================================================
// Implementation: the event loop
// ============================================================================

struct OutChunk {
  std::shared_ptr<const std::string> buf;
  std::size_t offset;
};

struct Conn {
  enum class State : std::uint8_t { Http, WebSocket, Closing, Draining };
  net::socket_t fd = net::invalid_socket;
  State state = State::Http;
  bool dead = false;
  bool write_armed = false;
  bool read_paused = false;        // input left unread until the output drains
  bool pong_queued = false;        // the last queued chunk is a pong not yet begun
  bool close_after_flush = false;  // HTTP "Connection: close", or after a close frame
  bool ping_outstanding = false;
  bool loopback = false;
  bool served = false;             // an HTTP request was answered on it
  std::uint16_t close_code = 1006; // the peer's close frame's code; 1006: none yet
  std::string in;
  std::vector<OutChunk> out;
  std::size_t out_bytes = 0;
  std::size_t in_cap = 0;          // most input buffered before reading pauses
  std::unique_ptr<WsDecoder> decoder;
  struct RouteEntry* route = nullptr;
  std::unique_ptr<HttpRequest> request;  // the upgrade request, for WebSocket::request()
  std::shared_ptr<DeferredAnswer> awaiting;  // a deferred answer not sent yet
  double last_rx = 0, partial_since = 0, ping_sent = 0, deadline = 0;
  double out_since = 0;            // last progress of queued output
  std::uint64_t user = 0;
  std::size_t index = 0;
  std::uint64_t fanout_mark = 0;   // the last fan-out that wrote to it directly
  std::string remote;
  class Loop* loop = nullptr;
};

// The threads that share a fan-out's send() calls with the loop thread.
// run(parts, fn) calls fn(0) on the calling thread and fn(1) .. fn(parts-1)
// on the pool's threads, and returns once every call has returned (the
// barrier). The threads are started by the first run() that needs them and
// sleep on a condition variable in between; a thread that cannot be started
// leaves its part to the caller.
class FanOutPool {
 public:
  FanOutPool() = default;
  FanOutPool(const FanOutPool&) = delete;
  FanOutPool& operator=(const FanOutPool&) = delete;
  ~FanOutPool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }

  template <class Fn>
  void run(unsigned parts, Fn&& fn) {
    start_threads(parts > 0 ? parts - 1 : 0);
    unsigned helpers = std::min<unsigned>(parts > 0 ? parts - 1 : 0, unsigned(threads_.size()));
    if (helpers == 0) {
      for (unsigned p = 0; p < parts; ++p) fn(p);
      return;
    }
    std::function<void(unsigned)> job(std::ref(fn));
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &job;
      helpers_ = helpers;
      pending_ = helpers;
      ++generation_;
    }
    wake_.notify_all();
    fn(0);
    for (unsigned p = helpers + 1; p < parts; ++p) fn(p);
    std::unique_lock<std::mutex> lk(mu_);
    done_.wait(lk, [this] { return pending_ == 0; });
    job_ = nullptr;
  }

  std::size_t threads() const { return threads_.size(); }

 private:
  void start_threads(unsigned want) {
    while (threads_.size() < want) {
      unsigned part = unsigned(threads_.size()) + 1;
      try {
        threads_.emplace_back([this, part] { work(part); });
      } catch (const std::system_error&) {
        return;
      }
    }
  }

  void work(unsigned part) {
    std::uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      wake_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (part > helpers_) continue;
      const std::function<void(unsigned)>* job = job_;
      lk.unlock();
      (*job)(part);
      lk.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::uint64_t generation_ = 0;
  unsigned helpers_ = 0, pending_ = 0;
  bool stop_ = false;
  const std::function<void(unsigned)>* job_ = nullptr;
  std::vector<std::thread> threads_;
};

// How many threads write a fan-out of `sends` direct writes: `configured`
// when set (never more than one per write), else one per 1,000 writes, the
// loop thread alone below 1,000, at most `hardware` (0: unknown, one).
inline unsigned fanout_parts(unsigned configured, std::size_t sends, unsigned hardware) {
  if (sends == 0) return 1;
  if (configured > 0) return unsigned(std::min<std::size_t>(configured, sends));
  std::size_t want = 1 + sends / 1000;
  return unsigned(std::max<std::size_t>(1, std::min<std::size_t>(want, hardware)));
}

struct RouteEntry {
  WebSocketRoute route;
  std::atomic<std::size_t> clients{0};  // also read by Server::websocket_count
};

struct HttpRoute {
  std::string method, path;
  bool prefix;
  HttpHandler handler;
};

// Admission against --max-clients and --max-clients-per-ip (loopback is
// exempt from the latter, SPEC §3). Every accepted connection is counted,
// whatever the verdict, because every one is released when it closes.
class ClientAdmission {
 public:
  // nullptr when the connection may stay, else why not; `open` includes it.
  const char* admit(const std::string& remote, bool loopback, std::size_t open, std::size_t max_clients,
                    std::size_t max_per_address) {
    std::size_t from_address = loopback ? 0 : ++per_address_[remote];
    if (open > max_clients) return "too many clients";
    if (from_address > max_per_address) return "too many clients from this address";
    return nullptr;
  }
  void release(const std::string& remote, bool loopback) {
    if (loopback) return;
    auto it = per_address_.find(remote);
    if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
  }
  std::size_t open_from(const std::string& remote) const {
    auto it = per_address_.find(remote);
    return it == per_address_.end() ? 0 : it->second;
  }

 private:
  std::unordered_map<std::string, std::size_t> per_address_;
};

// When a periodic tick is due. The wait is measured on the monotonic clock,
// so a step of the wall clock (NTP, an operator) neither freezes the ticks for
// as long as the step nor bursts them; the ticks fall on wall-clock multiples
// of the period, and are re-aligned as soon as a step shows as a jump in the
// difference between the two clocks. Pure: the caller supplies the readings.
struct TickSchedule {
  std::int64_t period_us = 1000000;
  std::int64_t next_wall_us = 0;  // wall-clock time of the next tick
  std::int64_t next_mono_us = 0;  // when it is due on the monotonic clock
  std::int64_t offset_us = 0;     // wall minus monotonic at the last reading
  bool started = false;

  // A larger change of the clocks' difference between two readings is a
  // step; slewing moves it by at most 0.5 ms a second (adjtimex(2)).
  static constexpr std::int64_t kStepUs = 20000;

  // Schedules the first wall-clock multiple of the period after `wall_us`.
  void align(std::int64_t wall_us, std::int64_t mono_us) {
    started = true;
    offset_us = wall_us - mono_us;
    next_wall_us = floor_to_period(wall_us) + period_us;
    next_mono_us = mono_us + (next_wall_us - wall_us);
  }

  // Monotonic microseconds until the next tick is due.
  std::int64_t wait_us(std::int64_t mono_us) const {
    return next_mono_us > mono_us ? next_mono_us - mono_us : 0;
  }

  // True when a tick is due at these readings, with its wall-clock time in
  // `tick_wall_us`. Ticks missed while the process was not scheduled are
  // skipped (no bursts): the next one is the first after the current time.
  bool due(std::int64_t wall_us, std::int64_t mono_us, std::int64_t& tick_wall_us) {
    if (!started) {
      align(wall_us, mono_us);
      return false;
    }
    std::int64_t jump = (wall_us - mono_us) - offset_us;
    if (jump > kStepUs || jump < -kStepUs) {
      align(wall_us, mono_us);
      return false;
    }
    offset_us = wall_us - mono_us;
    if (mono_us < next_mono_us) return false;
    tick_wall_us = std::max(next_wall_us, floor_to_period(wall_us));
    // While the wall clock is slewed it may still read just before this
    // tick; the next one follows it all the same.
    next_wall_us = std::max(floor_to_period(wall_us), tick_wall_us) + period_us;
    next_mono_us = mono_us + (next_wall_us - wall_us);
    return true;
  }

  std::int64_t floor_to_period(std::int64_t t) const {
    std::int64_t q = t / period_us;
    if (t % period_us < 0) --q;
    return q * period_us;
  }
};

struct Ticker {
  std::int64_t period_us;
  std::function<void(std::int64_t)> fn;
  TickSchedule schedule;
};

// Functions posted to the loop from any thread (Server::post, Responder),
// run on the loop thread when the waker fires. Closed when the loop is
// destroyed: later posts are dropped, and so is what was still queued.
class PostQueue {
 public:
  explicit PostQueue(const net::Waker& waker) : waker_(&waker) {}
  void post(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    fns_.push_back(std::move(fn));
    pending_.store(true);
    waker_->wake();
  }
  std::vector<std::function<void()>> take() {
    std::vector<std::function<void()>> out;
    if (!pending_.load()) return out;
    std::lock_guard<std::mutex> lock(mu_);
    out.swap(fns_);
    pending_.store(false);
    return out;
  }
  void close() {
    std::vector<std::function<void()>> dropped;
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    dropped.swap(fns_);
  }

 private:
  std::mutex mu_;
  std::vector<std::function<void()>> fns_;
  std::atomic<bool> pending_{false};
  bool closed_ = false;
  const net::Waker* waker_;
};

// A deferred HTTP answer, shared by the Responders and the connection that
// awaits it. `conn` is read and written on the loop thread only; it is
// cleared when the connection closes, so that a late answer does nothing.
struct DeferredAnswer {
  std::shared_ptr<PostQueue> queue;
  Loop* loop = nullptr;
  Conn* conn = nullptr;
  bool keep_alive = true, head_only = false;
  std::atomic<bool> sent{false};
};

struct DeferContext {
  Loop* loop;
  Conn* conn;
  bool keep_alive, head_only;
  std::shared_ptr<DeferredAnswer> answer;  // made by the first respond_later()
};

class Loop {
 public:
  explicit Loop(Server::Config cfg) : cfg_(std::move(cfg)) {
    rbuf_.resize(64 * 1024);
    hardware_threads_ = std::max(1u, std::thread::hardware_concurrency());
  }
  ~Loop() {
    posted_->close();
    for (auto& c : conns_)
      if (c->fd != net::invalid_socket) net::close_socket(c->fd);
    if (listener_ != net::invalid_socket) net::close_socket(listener_);
  }

  Server::Config cfg_;
  std::map<std::string, RouteEntry, std::less<>> ws_routes_;
  std::vector<HttpRoute> http_routes_;
  std::vector<Ticker> tickers_;
  ServerStats stats_;

  void log(const std::string& line) const {
    if (cfg_.logger) {
      cfg_.logger(line);
      return;
    }
    std::string s;
    append_timestamp(s, wall_now_us(), TimeFormat::Seconds);
    s += " metrics-agent: ";
    s += line;
    s += '\n';
    std::fwrite(s.data(), 1, s.size(), stderr);
  }

  bool listen(std::string* error) {
    if (listener_ != net::invalid_socket) return true;
    std::string err;
    listener_ = net::listen_on(cfg_.listen, err);
    if (listener_ == net::invalid_socket) {
      if (error) *error = err;
      return false;
    }
    if (!poller_.ok() || !poller_.add(listener_, &listener_) || !poller_.add(waker_.fd(), &waker_)) {
      if (error) *error = "cannot set up the event loop";
      return false;
    }
    port_.store(net::bound_port(listener_));
    return true;
  }

  int port() const { return port_.load(); }

  // The loop thread reads its own state; other threads read the copy that
  // publish() leaves at the end of every pass.
  std::atomic<std::thread::id> loop_thread_{};
  bool on_loop_thread() const { return loop_thread_.load() == std::this_thread::get_id(); }
  ServerStats stats() const {
    if (on_loop_thread()) return stats_;
    std::lock_guard<std::mutex> lock(published_mutex_);
    return published_stats_;
  }
  std::size_t client_count() const {
    if (on_loop_thread()) return conns_.size();
    std::lock_guard<std::mutex> lock(published_mutex_);
    return published_clients_;
  }

  void request_stop() {
    stop_requested_.store(true);
    waker_.wake();
  }

  void run() {
    std::vector<net::Poller::Event> events;
    for (auto& t : tickers_) {
      t.schedule.period_us = t.period_us;
      t.schedule.align(wall_now_us(), mono_now_us());
    }
    double next_housekeeping = mono_now() + 0.25;
    double shutdown_deadline = 0;
    run_posted();
    for (;;) {
      if (stop_requested_.load() && shutdown_deadline == 0) {
        begin_shutdown();
        shutdown_deadline = mono_now() + 0.75;
      }
      if (shutdown_deadline != 0 && (conns_.empty() || mono_now() >= shutdown_deadline)) break;
      // At most 250 ms, which is also how soon a step of the wall clock is seen.
      int timeout_ms = 250;
      std::int64_t mono_us = mono_now_us();
      for (auto& t : tickers_) {
        std::int64_t wait_us = std::min<std::int64_t>(t.schedule.wait_us(mono_us), 250000);
        timeout_ms = std::min(timeout_ms, int((wait_us + 999) / 1000));
      }
      if (shutdown_deadline != 0) timeout_ms = std::min(timeout_ms, 20);
      poller_.wait(events, timeout_ms);
      for (const auto& ev : events) {
        if (ev.ptr == &listener_) {
          accept_all();
        } else if (ev.ptr == &waker_) {
          waker_.drain();
          run_posted();
        } else {
          Conn* c = static_cast<Conn*>(ev.ptr);
          if (c->dead) continue;
          if (c->read_paused) {
            // Only a hang-up or an error is awaited from a connection that is
            // not being read: the peer is gone, and so is any use of its answers.
            if (ev.error) {
              drop(c, &ServerStats::dropped_error, nullptr);
            } else if (ev.hangup) {
              kill(c);
            }
          } else if (ev.readable || ev.error) {
            on_readable(c);
          }
          if (!c->dead && ev.writable) flush(c);
        }
      }
      std::int64_t wall_us = wall_now_us();
      mono_us = mono_now_us();
      for (auto& t : tickers_) {
        std::int64_t tick_us = 0;
        if (t.schedule.due(wall_us, mono_us, tick_us) && shutdown_deadline == 0) run_ticker(t, tick_us);
      }
      double mono = mono_now();
      if (mono >= next_housekeeping) {
        housekeeping(mono);
        next_housekeeping = mono + 1.0;  // timeouts are whole seconds
      }
      reap();
    }
    for (auto& c : conns_)
      if (!c->dead) kill(c.get());
    reap();
    if (listener_ != net::invalid_socket) {
      poller_.remove(listener_);
      net::close_socket(listener_);
      listener_ = net::invalid_socket;
    }
  }

  std::shared_ptr<PostQueue> posted_ = std::make_shared<PostQueue>(waker_);

  void run_posted() {
    for (auto& fn : posted_->take()) {
      try {
        fn();
      } catch (const std::exception& e) {
        log(std::string("a function posted to the loop failed: ") + e.what());
      } catch (...) {
        log("a function posted to the loop failed");
      }
    }
  }

  // Sends a deferred answer (on the loop thread), then goes on with the
  // requests that waited behind it on the same connection.
  void finish_deferred(DeferredAnswer& a, HttpResponse res) {
    Conn* c = a.conn;
    a.conn = nullptr;
    if (!c || c->dead) return;
    c->awaiting.reset();
    if (!cfg_.cors_origin.empty()) res.headers.push_back({"Access-Control-Allow-Origin", cfg_.cors_origin});
    respond(c, res, a.keep_alive, a.head_only);
    if (c->dead) return;
    process(c);
    update_interest(c);
  }

  // ---- sending -----------------------------------------------------------

  // A WebSocket frame (any opcode): counted in messages_sent.
  void send_shared(Conn* c, const std::shared_ptr<const std::string>& frame) {
    if (c->dead || c->state == Conn::State::Draining) return;
    ++stats_.messages_sent;
    enqueue(c, frame);
  }

  void send_owned(Conn* c, std::string data) {
    send_shared(c, std::make_shared<const std::string>(std::move(data)));
  }

  // Bytes of any kind (HTTP answers, the handshake, frames): written now if
  // the socket takes them, else queued up to the backlog limit.
  void enqueue(Conn* c, const std::shared_ptr<const std::string>& frame) {
    if (c->dead || c->state == Conn::State::Draining) return;
    c->pong_queued = false;
    if (c->out.empty()) {
      long n = net::send_some(c->fd, frame->data(), frame->size());
      settle_write(c, frame, n, n < 0 ? net::last_error() : 0);
      return;
    }
    c->out.push_back({frame, 0});
    c->out_bytes += frame->size();
    if (backlog(c) > cfg_.max_backlog_bytes) {
      drop(c, &ServerStats::dropped_backlog, "stopped reading (backlog over the limit)");
      return;
    }
    if (!c->read_paused && backed_up(c)) update_interest(c);
  }

  // The outcome of writing `frame` to an idle connection: `n` bytes taken,
  // or -1 with `error`. The rest is queued; an error other than a full
  // socket drops the connection.
  void settle_write(Conn* c, const std::shared_ptr<const std::string>& frame, long n, int error) {
    if (n == long(frame->size())) {
      stats_.bytes_sent += std::uint64_t(n);
      return;
    }
    if (n < 0 && !net::would_block(error)) {
      drop(c, &ServerStats::dropped_error, nullptr);
      return;
    }
    std::size_t off = n > 0 ? std::size_t(n) : 0;
    stats_.bytes_sent += off;
    c->out.push_back({frame, off});
    c->out_bytes += frame->size() - off;
    c->out_since = mono_now();
    update_interest(c);
  }

  // ---- the fan-out -------------------------------------------------------

  // WebSocket::send_frames. Connections with output already queued get the
  // frame queued behind it on the loop thread; the idle ones are written
  // directly, `to` split into contiguous slices over the fan-out threads,
  // and their outcomes settled here, after the barrier, in order. The
  // outcome of to[i] is fanout_results_[i] (4 bytes a client): bytes taken,
  // -errno, or kFanOutSkip for a client not written directly. A sender
  // thread reads to[i], the connection's fd and the frame, and writes its
  // own results only; nothing of a connection is written off the loop
  // thread, and the loop thread writes none of it while the senders run.
  static constexpr std::int32_t kFanOutSkip = std::numeric_limits<std::int32_t>::min();

  void send_frames(const std::vector<std::shared_ptr<const std::string>>& frames,
                   const std::vector<std::pair<WebSocket*, std::uint32_t>>& to) {
    ++fanout_seq_;
    fanout_results_.assign(to.size(), kFanOutSkip);
    fanout_later_.clear();
    std::size_t direct = 0;
    for (std::size_t i = 0; i < to.size(); ++i) {
      Conn* c = to[i].first->c_;
      if (c->dead || c->state != Conn::State::WebSocket) continue;
      if (c->fanout_mark == fanout_seq_) {
        fanout_later_.push_back({c, to[i].second});  // a second frame for it: after the first
        continue;
      }
      if (!c->out.empty()) {
        send_shared(c, frames[to[i].second]);
        continue;
      }
      c->fanout_mark = fanout_seq_;
      c->pong_queued = false;
      ++stats_.messages_sent;
      fanout_results_[i] = 0;
      ++direct;
    }
    std::int32_t* results = fanout_results_.data();
    const std::pair<WebSocket*, std::uint32_t>* dest = to.data();
    const std::shared_ptr<const std::string>* frame = frames.data();
    std::size_t n = to.size();
    unsigned parts = fanout_parts(cfg_.fanout_threads, direct, hardware_threads_);
    // One batch sender per slice, made here on the loop thread and kept.
    while (fanout_senders_.size() < parts) {
      fanout_senders_.push_back(std::make_unique<net::BatchSend>());
      fanout_senders_.back()->set_enabled(cfg_.fanout_io_uring);
    }
    std::unique_ptr<net::BatchSend>* senders = fanout_senders_.data();
    auto write_part = [results, dest, frame, n, parts, senders](unsigned part) {
      std::size_t begin = n * part / parts, end = n * (part + 1) / parts;
      net::BatchSend& out = *senders[part];
      for (std::size_t i = begin; i < end; ++i) {
        if (results[i] == kFanOutSkip) continue;
        const std::string& buf = *frame[dest[i].second];
        // At most 2 GiB in one call, so that the count fits; the rest is
        // queued like any partial write.
        std::size_t len = std::min<std::size_t>(buf.size(), std::numeric_limits<std::int32_t>::max());
        out.add(dest[i].first->c_->fd, buf.data(), std::uint32_t(len), &results[i]);
      }
      out.finish();
    };
    if (parts <= 1) {
      write_part(0);
    } else {
      fanout_pool_.run(parts, write_part);
    }
    for (std::size_t i = 0; i < n; ++i) {
      std::int32_t r = results[i];
      if (r == kFanOutSkip) continue;
      settle_write(to[i].first->c_, frames[to[i].second], r >= 0 ? long(r) : -1L, r >= 0 ? 0 : -r);
    }
    for (const auto& l : fanout_later_) send_shared(l.first, frames[l.second]);
  }

  std::size_t fanout_threads_started() const { return fanout_pool_.threads(); }
  // Whether the first fan-out slice writes through io_uring (after a fan-out).
  bool fanout_uses_io_uring() const { return !fanout_senders_.empty() && fanout_senders_[0]->uses_io_uring(); }

  // The memory a connection's queued output holds: its bytes, plus for each
  // chunk the queue slot and the string and shared control block of a buffer
  // (allocator headers included), so that a backlog of tiny frames is counted
  // at its real cost.
  static constexpr std::size_t kChunkOverhead = 2 * sizeof(OutChunk) + sizeof(std::string) + 64;
  static std::size_t backlog(const Conn* c) { return c->out_bytes + c->out.size() * kChunkOverhead; }

  // Above this much queued output a connection's input is neither read nor
  // parsed; both resume once the output has drained to half of it.
  std::size_t pause_bytes() const { return std::min<std::size_t>(64 * 1024, cfg_.max_backlog_bytes / 2); }
  bool backed_up(const Conn* c) const { return backlog(c) > pause_bytes(); }

  void close_ws(Conn* c, std::uint16_t code, std::string_view reason) {
    if (c->dead || c->state != Conn::State::WebSocket) return;
    send_owned(c, encode_close_frame(code, reason));
    if (c->dead) return;
    c->state = Conn::State::Closing;
    c->deadline = mono_now() + 2.0;
  }

 private:
  // ---- connections -------------------------------------------------------

  void accept_all() {
    for (int i = 0; i < 256; ++i) {
      std::string remote;
      bool loopback = false;
      net::socket_t s = net::accept_nonblocking(listener_, remote, loopback);
      if (s == net::invalid_socket) {
        int e = net::last_error();
        if (net::out_of_descriptors(e)) {
          ++stats_.accept_failures;
          if (!fd_exhausted_logged_) {
            log("out of file descriptors: shedding new connections (raise ulimit -n or lower --max-clients)");
            fd_exhausted_logged_ = true;
          }
          reserve_.shed_one(listener_);
          continue;
        }
        return;  // EAGAIN, or a connection that died in the backlog
      }
      fd_exhausted_logged_ = false;
      ++stats_.connections_accepted;
      auto c = std::make_unique<Conn>();
      c->fd = s;
      c->loop = this;
      c->remote = std::move(remote);
      c->loopback = loopback;
      c->last_rx = mono_now();
      c->in_cap = http_input_cap();
      c->index = conns_.size();
      Conn* raw = c.get();
      if (!poller_.add(s, raw)) {
        net::close_socket(s);
        continue;
      }
      conns_.push_back(std::move(c));
      const char* over =
          admission_.admit(raw->remote, loopback, conns_.size(), cfg_.max_clients, cfg_.max_clients_per_ip);
      if (over) {
        ++stats_.rejected_capacity;
        respond(raw, HttpResponse::error(503, over), false, false);
      }
    }
  }

  // The largest complete HTTP request the parser accepts: more buffered
  // input waits in the kernel until the requests before it are answered.
  static std::size_t http_input_cap() {
    HttpLimits limits;
    return limits.max_header_bytes + limits.max_body_bytes;
  }

  void on_readable(Conn* c) {
    for (int round = 0; round < 4; ++round) {
      bool discard = c->state == Conn::State::Draining;
      std::size_t room = discard ? rbuf_.size() : c->in_cap - std::min(c->in_cap, c->in.size());
      room = std::min(room, rbuf_.size());
      if (room == 0) break;  // full: reading pauses until process() makes room
      long n = net::recv_some(c->fd, rbuf_.data(), room);
      if (n > 0) {
        c->last_rx = mono_now();
        if (discard) continue;
        c->in.append(rbuf_.data(), std::size_t(n));
        if (std::size_t(n) < room) break;
        continue;
      }
      if (n == 0) {  // the peer closed its side
        kill(c);
        return;
      }
      if (net::would_block(net::last_error())) break;
      drop(c, &ServerStats::dropped_error, nullptr);
      return;
    }
    process(c);
    update_interest(c);
  }

  void process(Conn* c) {
    double now = mono_now();
    while (!c->dead && c->state == Conn::State::Http && !c->in.empty() && !c->close_after_flush &&
           !c->awaiting && !backed_up(c)) {
      HttpRequest req;
      HttpLimits limits;
      auto r = parse_http_request(c->in, req, limits);
      if (r.status == HttpParseResult::Incomplete) {
        if (c->partial_since == 0) c->partial_since = now;
        return;
      }
      c->partial_since = 0;
      if (r.status == HttpParseResult::Error) {
        ++stats_.http_requests;
        respond(c, HttpResponse::error(r.error_status, r.error), false, false);
        c->in.clear();
        return;
      }
      c->in.erase(0, r.consumed);
      req.remote_address = c->remote;
      handle_request(c, std::move(req));
    }
    if (!c->dead && (c->state == Conn::State::WebSocket || c->state == Conn::State::Closing)) process_frames(c);
    // An emptied buffer is let go when large, and always once the connection
    // is a WebSocket: a client that only listens then holds no input buffer.
    if (c->in.empty() && (c->in.capacity() > 4096 || c->state != Conn::State::Http)) std::string().swap(c->in);
  }

  void process_frames(Conn* c) {
    std::size_t pos = 0;
    WsEvent ev;
    for (;;) {
      std::size_t used = 0;
      bool have = false;
      if (!c->decoder->next(c->in.data() + pos, c->in.size() - pos, used, ev, have)) break;
      pos += used;
      if (!have) continue;
      if (ev.type == WsEvent::Error) {
        c->in.clear();
        ++stats_.dropped_protocol;
        if (c->state == Conn::State::WebSocket) {
          close_ws(c, ev.code, ev.error);
          c->close_after_flush = true;
          if (!c->dead && c->out.empty()) begin_drain(c);
        } else {
          kill(c);
        }
        return;
      }
      if (ev.type == WsEvent::Close) {
        c->close_code = ev.code;
        if (c->state == Conn::State::WebSocket) {
          // §5.5.1: answer with the same status code, then close TCP.
          send_owned(c, ev.code == 1005 ? encode_frame(WsOp::Close, {}) : encode_close_frame(ev.code, {}));
          if (c->dead) return;
          c->state = Conn::State::Closing;
          c->close_after_flush = true;
          if (c->out.empty()) begin_drain(c);
        } else {
          kill(c);  // the answer to our close: the handshake is complete
        }
        c->in.clear();
        return;
      }
      if (c->state != Conn::State::WebSocket) continue;  // closing: data is dropped
      if (ev.type == WsEvent::Ping) {
        // §5.5.3: a pong may answer only the most recent ping, so a pong
        // still waiting in the queue is replaced rather than joined.
        if (c->pong_queued && !c->out.empty() && c->out.back().offset == 0) {
          auto pong = std::make_shared<const std::string>(encode_frame(WsOp::Pong, ev.payload));
          c->out_bytes = c->out_bytes - c->out.back().buf->size() + pong->size();
          c->out.back().buf = std::move(pong);
        } else {
          send_owned(c, encode_frame(WsOp::Pong, ev.payload));
          c->pong_queued = !c->dead && !c->out.empty();
        }
      } else if (ev.type == WsEvent::Pong) {
        c->ping_outstanding = false;
      } else if (c->route && c->route->route.on_message) {
        WebSocket ws(c);
        guarded(c, "on_message", [&] { c->route->route.on_message(ws, ev.payload, ev.type == WsEvent::Binary); });
      }
      if (c->dead) return;
      if (backed_up(c)) break;  // the rest waits until the output drains
    }
    c->in.erase(0, pos);
    c->decoder->shrink();
  }

  void handle_request(Conn* c, HttpRequest req) {
    ++stats_.http_requests;
    c->served = true;
    if (cfg_.screen) {
      if (auto refusal = cfg_.screen(req)) {
        respond(c, *refusal, req.keep_alive, req.method == "HEAD");
        return;
      }
    }
    auto ws = ws_routes_.find(req.path);
    if (ws != ws_routes_.end()) {
      upgrade(c, std::move(req), ws->second);
      return;
    }
    bool head = req.method == "HEAD";
    std::string allow;
    const HttpRoute* match = nullptr;
    for (const auto& r : http_routes_) {
      bool path_ok = r.prefix ? req.path.compare(0, r.path.size(), r.path) == 0 : req.path == r.path;
      if (!path_ok) continue;
      if (r.method == req.method || (head && r.method == "GET")) {
        match = &r;
        break;
      }
      if (allow.find(r.method) == std::string::npos) allow += (allow.empty() ? "" : ", ") + r.method;
      if (r.method == "GET" && allow.find("HEAD") == std::string::npos) allow += ", HEAD";
    }
    HttpResponse res;
    if (!match && allow.empty()) {
      auto any = ws_routes_.find("*");
      if (any != ws_routes_.end()) {
        upgrade(c, std::move(req), any->second);
        return;
      }
    }
    if (match) {
      DeferContext defer{this, c, req.keep_alive, head, nullptr};
      req.defer_.context = &defer;
      try {
        res = match->handler(req);
      } catch (const std::exception& e) {
        log(std::string("handler for ") + req.path + " failed: " + e.what());
        res = HttpResponse::error(500, "internal error");
      } catch (...) {
        log(std::string("handler for ") + req.path + " failed: an exception not derived from std::exception");
        res = HttpResponse::error(500, "internal error");
        defer.answer.reset();
        defer.answer.reset();  // its Responders send nothing
      }
      req.defer_.context = nullptr;
      if (defer.answer) {
        defer.answer->conn = c;
        c->awaiting = std::move(defer.answer);
        return;
      }
    } else if (!allow.empty() && req.method == "OPTIONS") {
      // CORS preflight (Fetch standard): say what the path accepts.
      res.status = 204;
      res.content_type.clear();
      res.headers.push_back({"Allow", allow + ", OPTIONS"});
      res.headers.push_back({"Access-Control-Allow-Methods", allow + ", OPTIONS"});
      res.headers.push_back({"Access-Control-Allow-Headers", "Authorization, Content-Type"});
      res.headers.push_back({"Access-Control-Max-Age", "600"});
    } else if (!allow.empty()) {
      res = HttpResponse::error(405, "method " + req.method + " not allowed on " + req.path);
      res.headers.push_back({"Allow", allow});
    } else {
      res = HttpResponse::error(404, "no such path: " + req.path);
    }
    if (!cfg_.cors_origin.empty()) res.headers.push_back({"Access-Control-Allow-Origin", cfg_.cors_origin});
    respond(c, res, req.keep_alive, head);
  }

  void upgrade(Conn* c, HttpRequest req, RouteEntry& route) {
    const std::string* up = req.header("upgrade");
    const std::string* conn = req.header("connection");
    if (req.method != "GET" || !up || !header_has_token(*up, "websocket")) {
      HttpResponse res = HttpResponse::error(426, "this is a WebSocket endpoint: connect with a WebSocket client");
      res.headers.push_back({"Upgrade", "websocket"});
      res.headers.push_back({"Sec-WebSocket-Version", "13"});
      respond(c, res, req.keep_alive, req.method == "HEAD");
      return;
    }
    // RFC 6455 §4.2.1 and §4.4: only version 13 is spoken.
    const std::string* version = req.header("sec-websocket-version");
    if (!version || *version != "13") {
      HttpResponse res = HttpResponse::error(426, "unsupported WebSocket version; this server speaks 13");
      res.headers.push_back({"Sec-WebSocket-Version", "13"});
      respond(c, res, false, false);
      return;
    }
    const std::string* key = req.header("sec-websocket-key");
    if (!key || !valid_websocket_key(*key)) {
      respond(c, HttpResponse::error(400, "missing or invalid Sec-WebSocket-Key"), false, false);
      return;
    }
    if (!conn || !header_has_token(*conn, "upgrade")) {
      respond(c, HttpResponse::error(400, "the Connection header must include Upgrade"), false, false);
      return;
    }
    std::string head =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        websocket_accept(*key) + "\r\n\r\n";
    enqueue(c, std::make_shared<const std::string>(std::move(head)));
    if (c->dead) return;
    c->state = Conn::State::WebSocket;
    c->route = &route;
    ++route.clients;
    std::size_t limit = route.route.max_message_bytes ? route.route.max_message_bytes : cfg_.max_message_bytes;
    c->decoder = std::make_unique<WsDecoder>(limit);
    // One whole frame (header included): the decoder acts on complete frames.
    c->in_cap = limit > SIZE_MAX - 14 ? SIZE_MAX : limit + 14;
    c->request = std::make_unique<HttpRequest>(std::move(req));
    if (route.route.on_open) {
      WebSocket ws(c);
      guarded(c, "on_open", [&] { route.route.on_open(ws); });
    }
    // WebSocket::request() keeps the line and headers (bounded by the head
    // limit) for the connection's life, unless the route says otherwise; the
    // body served on_open only.
    if (route.route.keep_request)
      std::string().swap(c->request->body);
    else
      c->request.reset();
  }

  // Runs a WebSocket callback. An exception it throws closes that connection
  // with 1011, "an unexpected condition" (RFC 6455 §7.4.1), instead of the
  // process; it is counted, and logged at most every 10 seconds.
  template <class F>
  void guarded(Conn* c, const char* which, F&& fn) {
    const char* why = nullptr;
    std::string what;
    try {
      fn();
      return;
    } catch (const std::exception& e) {
      what = e.what();
      why = what.c_str();
    } catch (...) {
      why = "an exception not derived from std::exception";
    }
    callback_failed("WebSocket " + std::string(which) + " callback failed for " + c->remote + ": " + why);
    close_ws(c, 1011, "internal error");
  }

  // A timer callback (Server::every) that throws: counted and logged like a
  // WebSocket callback; the timer keeps its schedule.
  void run_ticker(Ticker& t, std::int64_t tick_us) {
    try {
      t.fn(tick_us);
    } catch (const std::exception& e) {
      callback_failed(std::string("timer callback failed: ") + e.what());
    } catch (...) {
      callback_failed("timer callback failed: an exception not derived from std::exception");
    }
  }

  void callback_failed(std::string line) {
    ++stats_.callback_errors;
    double now = mono_now();
    if (now >= callback_log_next_) {
      if (callback_log_skipped_) line += " (" + std::to_string(callback_log_skipped_) + " more not logged)";
      log(line);
      callback_log_next_ = now + 10;
      callback_log_skipped_ = 0;
    } else {
      ++callback_log_skipped_;
    }
  }

  void respond(Conn* c, const HttpResponse& res, bool keep_alive, bool head_only) {
    enqueue(c, std::make_shared<const std::string>(serialize_response(res, keep_alive, head_only)));
    if (c->dead) return;
    if (!keep_alive) {
      c->close_after_flush = true;
      if (c->out.empty()) begin_drain(c);
    }
  }

  // Whether to read from `c` now: not once its last answer is queued (HTTP
  // close, or the answer to a close frame), nor while its output is backed
  // up or its input buffer is full. What waits is parsed once output drains.
  bool wants_read(const Conn* c) const {
    if (c->state == Conn::State::Draining) return true;  // discarded until the deadline
    if (c->close_after_flush || c->in.size() >= c->in_cap) return false;
    return backlog(c) <= (c->read_paused ? pause_bytes() / 2 : pause_bytes());
  }

  void update_interest(Conn* c) {
    if (c->dead) return;
    bool read = wants_read(c), write = !c->out.empty();
    if (read == !c->read_paused && write == c->write_armed) return;
    c->read_paused = !read;
    c->write_armed = write;
    poller_.modify(c->fd, c, write, read);
  }

  void flush(Conn* c) {
    while (!c->out.empty()) {
      net::iovec iov[16];
      int n = 0;
      for (auto& o : c->out) {
        if (n == 16) break;
        iov[n].iov_base = const_cast<char*>(o.buf->data() + o.offset);
        iov[n].iov_len = o.buf->size() - o.offset;
        ++n;
      }
      long w = net::send_vec(c->fd, iov, n);
      if (w < 0) {
        if (net::would_block(net::last_error())) break;
        drop(c, &ServerStats::dropped_error, nullptr);
        return;
      }
      c->out_since = mono_now();
      stats_.bytes_sent += std::uint64_t(w);
      c->out_bytes -= std::size_t(w);
      std::size_t done = 0;
      std::size_t left = std::size_t(w);
      for (auto& o : c->out) {
        std::size_t rem = o.buf->size() - o.offset;
        if (left < rem) {
          o.offset += left;
          break;
        }
        left -= rem;
        ++done;
      }
      c->out.erase(c->out.begin(), c->out.begin() + long(done));
    }
    if (c->out.empty()) {
      if (c->out.capacity() > 16) std::vector<OutChunk>().swap(c->out);
      if (c->close_after_flush && c->state != Conn::State::Draining) begin_drain(c);
    }
    // Requests or frames that waited for the output to drain.
    if (c->read_paused && !c->in.empty() && backlog(c) <= pause_bytes() / 2) process(c);
    update_interest(c);
  }

  // Half-close and discard what the peer still sends, so that our last
  // bytes are not destroyed by an RST (RFC 9112 §9.6, RFC 6455 §7.1.1).
  void begin_drain(Conn* c) {
    if (c->dead) return;
    net::shutdown_write(c->fd);
    c->state = Conn::State::Draining;
    c->in.clear();
    c->deadline = mono_now() + 2.0;
    update_interest(c);
  }

  void begin_shutdown() {
    if (listener_ != net::invalid_socket) {
      poller_.remove(listener_);
      net::close_socket(listener_);
      listener_ = net::invalid_socket;
    }
    for (auto& c : conns_) {
      if (c->dead) continue;
      if (c->state == Conn::State::WebSocket) {
        close_ws(c.get(), 1001, "server shutting down");
      } else if (c->state == Conn::State::Http && c->out.empty()) {
        kill(c.get());
      }
    }
  }

  void housekeeping(double now) {
    double ping = cfg_.ws_ping_seconds;
    for (auto& up : conns_) {
      Conn* c = up.get();
      if (c->dead) continue;
      switch (c->state) {
        case Conn::State::Http:
          if (!c->out.empty()) {
            // A client that takes none of its answers for this long (while
            // its further requests wait unread) is not coming back for them.
            if (now - c->out_since > cfg_.request_timeout_seconds)
              drop(c, &ServerStats::dropped_timeout, "did not read its answers");
            break;
          }
          if (c->partial_since != 0 && now - c->partial_since > cfg_.request_timeout_seconds) {
            ++stats_.dropped_timeout;
            respond(c, HttpResponse::error(408, "request timed out"), false, false);
          } else if (!c->served && now - c->last_rx > cfg_.request_timeout_seconds) {
            ++stats_.dropped_timeout;
            kill(c);
          } else if (now - c->last_rx > std::max(60.0, cfg_.request_timeout_seconds)) {
            kill(c);  // idle keep-alive
          }
          break;
        case Conn::State::WebSocket:
          if (ping > 0 && !c->out.empty() && now - c->out_since > 2 * ping) {
            // Pings alone cannot tell: a client may keep sending them
            // while it reads nothing.
            drop(c, &ServerStats::dropped_timeout, "took no output for two ping periods");
          } else if (ping <= 0 || now - c->last_rx < ping) {
            c->ping_outstanding = false;
          } else if (!c->ping_outstanding) {
            c->ping_outstanding = true;
            c->ping_sent = now;
            send_owned(c, encode_frame(WsOp::Ping, {}));
          } else if (now - c->ping_sent > ping) {
            drop(c, &ServerStats::dropped_timeout, "did not answer ping");
          }
          break;
        case Conn::State::Closing:
        case Conn::State::Draining:
          if (now > c->deadline) kill(c);
          break;
      }
    }
  }

  void drop(Conn* c, std::uint64_t ServerStats::*counter, const char* why) {
    if (c->dead) return;
    ++(stats_.*counter);
    if (why) log("dropped client " + c->remote + ": " + why);
    kill(c);
  }

  // Closes the socket now; callbacks and memory are released by reap(), so
  // that a drop in the middle of a fan-out never invalidates its iteration.
  void kill(Conn* c) {
    if (c->dead) return;
    c->dead = true;
    if (c->awaiting) {
      c->awaiting->conn = nullptr;
      c->awaiting.reset();
    }
    poller_.remove(c->fd);
    net::close_socket(c->fd);
    c->fd = net::invalid_socket;
    graveyard_.push_back(c);
  }

  void reap() {
    while (!graveyard_.empty()) {
      std::vector<Conn*> dead;
      dead.swap(graveyard_);
      for (Conn* c : dead) {
        if (c->route) {
          --c->route->clients;
          if (c->route->route.on_close) {
            WebSocket ws(c);
            guarded(c, "on_close", [&] { c->route->route.on_close(ws, c->close_code); });
          }
        }
        admission_.release(c->remote, c->loopback);
        std::size_t i = c->index;
        if (i != conns_.size() - 1) {
          conns_[i] = std::move(conns_.back());
          conns_[i]->index = i;
        }
        conns_.pop_back();
      }
    }
    publish();
  }

  // Called at the end of every pass (reap() is its last step).
  void publish() {
    std::lock_guard<std::mutex> lock(published_mutex_);
    published_stats_ = stats_;
    published_clients_ = conns_.size();
  }

  net::Poller poller_;
  net::Waker waker_;
  net::ReserveFd reserve_;
  net::socket_t listener_ = net::invalid_socket;
  std::atomic<int> port_{0};
  std::atomic<bool> stop_requested_{false};
  mutable std::mutex published_mutex_;
  ServerStats published_stats_;
  std::size_t published_clients_ = 0;
  double callback_log_next_ = 0;
  std::uint64_t callback_log_skipped_ = 0;
  bool fd_exhausted_logged_ = false;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> graveyard_;
  ClientAdmission admission_;
  std::vector<char> rbuf_;
  unsigned hardware_threads_ = 1;
  std::uint64_t fanout_seq_ = 0;
  std::vector<std::int32_t> fanout_results_;
  std::vector<std::pair<Conn*, std::uint32_t>> fanout_later_;
  FanOutPool fanout_pool_;
  std::vector<std::unique_ptr<net::BatchSend>> fanout_senders_;  // one per slice
};

}  // namespace detail

// ============================================================================
// Implementation: public server API
// ============================================================================

METRICS_AGENT_API_INLINE std::string HttpRequest::param(std::string_view key, std::string fallback) const {
  std::string v;
  return detail::query_lookup(query, key, &v) ? v : fallback;
}

METRICS_AGENT_API_INLINE bool HttpRequest::has_param(std::string_view key) const {
  return detail::query_lookup(query, key, nullptr);
}

METRICS_AGENT_API_INLINE HttpResponse HttpResponse::error(int status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = "{\"error\":" + detail::json_string(message) + "}";
  return r;
}

// A text frame is valid UTF-8 by construction: peers fail the connection with
// 1007 otherwise (RFC 6455 section 8.1), and would reconnect into the same frame.
METRICS_AGENT_API_INLINE std::shared_ptr<const std::string> encode_text_frame(std::string_view text) {
  if (!detail::valid_utf8(text))
    return std::make_shared<const std::string>(detail::encode_frame(detail::WsOp::Text, detail::utf8_substituted(text)));
  return std::make_shared<const std::string>(detail::encode_frame(detail::WsOp::Text, text));
}

// RFC 6455 §5.5.1: no data frames after our close frame.
METRICS_AGENT_API_INLINE void WebSocket::send_text(std::string_view text) {
  if (c_->state == detail::Conn::State::WebSocket)
    c_->loop->send_owned(c_, detail::valid_utf8(text)
                                 ? detail::encode_frame(detail::WsOp::Text, text)
                                 : detail::encode_frame(detail::WsOp::Text, detail::utf8_substituted(text)));
}
METRICS_AGENT_API_INLINE void WebSocket::send_binary(std::string_view data) {
  if (c_->state == detail::Conn::State::WebSocket)
    c_->loop->send_owned(c_, detail::encode_frame(detail::WsOp::Binary, data));
}
METRICS_AGENT_API_INLINE void WebSocket::send_frame(const std::shared_ptr<const std::string>& frame) {
  if (c_->state == detail::Conn::State::WebSocket) c_->loop->send_shared(c_, frame);
}
METRICS_AGENT_API_INLINE void WebSocket::send_frames(const std::vector<std::shared_ptr<const std::string>>& frames,
                                                     const std::vector<std::pair<WebSocket*, std::uint32_t>>& to) {
  if (!to.empty()) to.front().first->c_->loop->send_frames(frames, to);
}
METRICS_AGENT_API_INLINE void WebSocket::close(std::uint16_t code, std::string_view reason) { c_->loop->close_ws(c_, code, reason); }
METRICS_AGENT_API_INLINE const HttpRequest& WebSocket::request() const {
  static const HttpRequest none{};  // after on_open, on a route with keep_request = false
  return c_->request ? *c_->request : none;
}
METRICS_AGENT_API_INLINE std::uint64_t WebSocket::user_data() const { return c_->user; }
METRICS_AGENT_API_INLINE void WebSocket::set_user_data(std::uint64_t value) { c_->user = value; }

METRICS_AGENT_API_INLINE Server::Server() : Server(Config()) {}
METRICS_AGENT_API_INLINE Server::Server(Config config) : loop_(new detail::Loop(std::move(config))) {}
METRICS_AGENT_API_INLINE Server::~Server() {
  stop();
  join();
}
METRICS_AGENT_API_INLINE Responder HttpRequest::respond_later() const {
  detail::DeferContext* d = defer_.context;
  if (!d) return Responder();
  if (!d->answer) {
    d->answer = std::make_shared<detail::DeferredAnswer>();
    d->answer->queue = d->loop->posted_;
    d->answer->loop = d->loop;
    d->answer->keep_alive = d->keep_alive;
    d->answer->head_only = d->head_only;
  }
  return Responder(d->answer);
}

// The loop runs posted functions only while it exists (the queue is closed
// when it is destroyed), so `loop` is valid whenever the function runs.
METRICS_AGENT_API_INLINE void Responder::send(HttpResponse response) const {
  if (!state_ || state_->sent.exchange(true)) return;
  auto s = state_;
  s->queue->post([s, r = std::move(response)]() mutable { s->loop->finish_deferred(*s, std::move(r)); });
}

// A route that could never be reached, or that would silently replace
// another, is refused: the first registration stays.
METRICS_AGENT_API_INLINE bool Server::websocket(std::string path, WebSocketRoute route) {
  bool taken = loop_->ws_routes_.count(path) != 0;
  for (const auto& r : loop_->http_routes_)
    taken = taken || (!r.prefix && r.path == path);
  if (taken) {
    loop_->log("WebSocket route " + path + " not added: the path is already served");
    return false;
  }
  loop_->ws_routes_[std::move(path)].route = std::move(route);
  return true;
}
METRICS_AGENT_API_INLINE bool Server::http(std::string method, std::string path, HttpHandler handler) {
  bool prefix = path.size() >= 2 && path.compare(path.size() - 2, 2, "/*") == 0;
  if (prefix) path.pop_back();
  bool taken = !prefix && path != "*" && loop_->ws_routes_.count(path) != 0;
  for (const auto& r : loop_->http_routes_)
    taken = taken || (r.method == method && r.path == path && r.prefix == prefix);
  if (taken) {
    loop_->log("HTTP route " + method + " " + path + (prefix ? "*" : "") + " not added: it is already served");
    return false;
  }
  loop_->http_routes_.push_back({std::move(method), std::move(path), prefix, std::move(handler)});
  return true;
}
METRICS_AGENT_API_INLINE void Server::post(std::function<void()> fn) { loop_->posted_->post(std::move(fn)); }
METRICS_AGENT_API_INLINE void Server::every(double period_seconds, std::function<void(std::int64_t)> fn) {
  auto us = std::int64_t(std::llround(period_seconds * 1e6));
  loop_->tickers_.push_back({std::max<std::int64_t>(us, 1000), std::move(fn), detail::TickSchedule()});
}
METRICS_AGENT_API_INLINE bool Server::listen(std::string* error) { return loop_->listen(error); }
METRICS_AGENT_API_INLINE void Server::run() {
  std::string err;
  if (!loop_->listen(&err)) {
    loop_->log(err);
    return;
  }
  loop_->loop_thread_.store(std::this_thread::get_id());
  loop_->run();
  loop_->loop_thread_.store(std::thread::id());
}
METRICS_AGENT_API_INLINE bool Server::start(std::string* error) {
  if (thread_.joinable()) return true;
  std::string err;
  if (!loop_->listen(&err)) {
    if (error)
      *error = err;
    else
      loop_->log(err);
    return false;
  }
  thread_ = std::thread([this] { run(); });
  return true;
}
METRICS_AGENT_API_INLINE void Server::stop() { loop_->request_stop(); }
METRICS_AGENT_API_INLINE void Server::join() {
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}
METRICS_AGENT_API_INLINE int Server::port() const { return loop_->port(); }
METRICS_AGENT_API_INLINE ServerStats Server::stats() const { return loop_->stats(); }
METRICS_AGENT_API_INLINE std::size_t Server::client_count() const { return loop_->client_count(); }
METRICS_AGENT_API_INLINE std::size_t Server::websocket_count(std::string_view path) const {
  auto it = loop_->ws_routes_.find(path);
  return it == loop_->ws_routes_.end() ? 0 : it->second.clients.load();
}
METRICS_AGENT_API_INLINE void Server::log(const std::string& line) const { loop_->log(line); }

METRICS_AGENT_API_INLINE bool raise_open_file_limit() { return detail::net::raise_fd_limit(); }

METRICS_AGENT_API_INLINE bool parse_number(std::string_view text, double& out) { return detail::parse_double(text, out); }

}  // namespace metrics_agent

// ============================================================================
// Implementation: Prometheus text exposition (format 0.0.4, GET /metrics)
//   Metric names, label names, units and types are node_exporter's for every
//   family we collect, so its dashboards and alert rules work unchanged.
//   Counters are the kernel's cumulative totals, never rates.
// ============================================================================

namespace metrics_agent {
namespace detail {

inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// The agent's own numbers, gathered by whoever serves /metrics.
struct PrometheusSelf {
  std::size_t clients_flat = 0, clients_rich = 0, clients_dashboard = 0, clients_alerts = 0,
              http_connections = 0;
  const ServerStats* stats = nullptr;  // null: the server counters are left out
  double collect_seconds = 0;          // duration of the last collection
  double start_time_seconds = 0;       // process start, seconds since the epoch
  std::size_t history_points = 0;
  bool auth = false;                          // the login families below are written
  std::size_t login_tracked_addresses = 0;    // addresses with recent failed logins
  std::uint64_t login_throttled = 0;          // logins answered 429 by the global rate
};

// Escapes per the text format: backslash and newline everywhere, the double
// quote in label values only. Prometheus refuses a scrape whose label values
// are not UTF-8 (a mount point may hold any bytes), so each byte that does not
// start a well-formed sequence becomes U+FFFD.
inline void append_prom_escaped(std::string& out, std::string_view v, bool quote) {
  // Bytes that stay as they are go out in runs, one append each.
  std::size_t run = 0;
  for (std::size_t i = 0; i < v.size();) {
    const char c = v[i];
    std::string_view replacement;
    if (c == '\\') {
      replacement = "\\\\";
    } else if (c == '\n') {
      replacement = "\\n";
    } else if (c == '"' && quote) {
      replacement = "\\\"";
    } else if (static_cast<unsigned char>(c) < 0x80) {
      ++i;
      continue;
    } else {
      const std::size_t n = utf8_sequence_length(v, i);
      if (n != 0) {
        i += n;
        continue;
      }
      replacement = "\xEF\xBF\xBD";
    }
    out.append(v.data() + run, i - run);
    out += replacement;
    run = ++i;
  }
  out.append(v.data() + run, v.size() - run);
}

inline void append_label_value(std::string& out, std::string_view v) { append_prom_escaped(out, v, true); }

// Whole numbers below 1e15 are written as plain integers (a byte counter of
// 1000000 reads "1000000", not "1e+06"); every other finite value in the
// shortest form that reads back to the same double (std::to_chars, no locale).
inline void append_prom_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[40];
  std::to_chars_result r;
  if (std::fabs(v) < 1e15 && v == std::trunc(v)) {
    r = std::to_chars(buf, buf + sizeof buf, static_cast<std::int64_t>(v));  // -0.0 prints "0"
  } else {
    r = to_double_chars(buf, buf + sizeof buf, v);
  }
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

// Metric names match [a-zA-Z_:][a-zA-Z0-9_:]*. Every other byte becomes '_',
// and so does ':', which the Prometheus documentation reserves for recording
// rules; a leading digit gets a '_' in front. "queue.depth-1" -> "queue_depth_1",
// "5xx" -> "_5xx", "" -> "_".
inline void append_metric_name(std::string& out, std::string_view name) {
  if (name.empty() || (name.front() >= '0' && name.front() <= '9')) out += '_';
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    out += ok ? c : '_';
  }
}

struct PromLabel {
  std::string_view name, value;
};

inline void append_prom_family(std::string& out, std::string_view name, std::string_view type,
                               std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  append_prom_escaped(out, help, false);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// `name{a="x",b="y"} ` (label names in node_exporter's order: sorted).
inline void append_prom_series(std::string& out, std::string_view name, std::initializer_list<PromLabel> labels) {
  out += name;
  if (labels.size() != 0) {
    char sep = '{';
    for (const PromLabel& l : labels) {
      out += sep;
      out += l.name;
      out += "=\"";
      append_label_value(out, l.value);
      out += '"';
      sep = ',';
    }
    out += '}';
  }
  out += ' ';
}

inline void append_prom_sample(std::string& out, std::string_view name, std::initializer_list<PromLabel> labels,
                               double v) {
  append_prom_series(out, name, labels);
  append_prom_number(out, v);
  out += '\n';
}

// Kernel counters are 64-bit integers: written exactly, whatever their size.
inline void append_prom_count(std::string& out, std::string_view name, std::initializer_list<PromLabel> labels,
                              std::uint64_t v) {
  append_prom_series(out, name, labels);
  append_uint(out, v);
  out += '\n';
}

// True when `text` holds a "# TYPE <name> " line.
inline bool prom_family_present(std::string_view text, std::string_view name) {
  static constexpr std::string_view kType = "# TYPE ";
  for (std::size_t at = text.find(kType); at != std::string_view::npos; at = text.find(kType, at + 1)) {
    if ((at == 0 || text[at - 1] == '\n') && text.compare(at + kType.size(), name.size(), name) == 0 &&
        text.size() > at + kType.size() + name.size() && text[at + kType.size() + name.size()] == ' ')
      return true;
  }
  return false;
}

// An upper bound of append_prometheus's output for typical names, so that one
// reservation covers it (a buffer kept between calls then never grows).
inline std::size_t prometheus_size_estimate(const Snapshot& s, const std::vector<std::string>& gauge_help) {
  std::size_t n = 8192 + s.cpu.core_times.size() * 8 * 64 + s.cpu.frequency_mhz.size() * 64;
  for (const InterfaceStats& i : s.network.interfaces) n += 8 * (64 + i.name.size());
  for (const DiskDeviceStats& d : s.disk.devices) n += 7 * (64 + d.name.size());
  for (const PartitionStats& p : s.disk.partitions)
    n += 7 * (96 + 2 * (p.device.size() + p.fstype.size() + p.mountpoint.size()));
  for (const Gauge& g : s.custom) n += 128 + 3 * g.name.size() + 2 * g.help.size();
  for (const std::string& h : gauge_help) n += 2 * h.size();
  return n + s.system.hostname.size() * 2;
}

// ---- the families, as data ---------------------------------------------------
// Every family of /metrics is one row of prom::kFamilies: its name, type,
// label names, when it is written, how its series are read from the snapshot,
// and its help text. One writer, append_prometheus, walks the rows in order;
// the golden files pin its output byte for byte. A new family is one row,
// plus a reader function where none of the generic ones fits.

struct TextfileScrape;

namespace prom {

// What a family is read from: the snapshot, and the agent's own numbers.
struct Input {
  const Snapshot& s;
  const PrometheusSelf& self;
  const NodeDetail* node = nullptr;             // read when scraped; null: not on this platform
  const TextfileScrape* textfile = nullptr;  // null: no --textfile-dir
};

class Series;
using When = bool (*)(const Input&);
using Read = void (*)(Series&, const Input&);

inline constexpr std::string_view kCounter = "counter", kGauge = "gauge";

struct Family {
  std::string_view name;
  std::string_view type;                   // kCounter or kGauge
  std::array<std::string_view, 12> labels;  // names in node_exporter's order (sorted); unused ones empty
  When when;                               // false: the family is left out
  Read read;                               // writes the family's series
  std::string_view help;
};

// The series of one family. Each sample gives the values of the family's
// labels in the order they are named. Integers (kernel counters) are written
// exactly, whatever their size; doubles as append_prom_number writes them.
class Series {
 public:
  Series(std::string& out, const Family& f) : out_(out), f_(f) {}

  template <class T>
  void sample(T v) {
    out_ += f_.name;
    out_ += ' ';
    value(v);
  }

  template <class T>
  void sample(std::initializer_list<std::string_view> label_values, T v) {
    series(label_values);
    value(v);
  }

 private:
  void series(std::initializer_list<std::string_view> label_values) {
    out_ += f_.name;
    char sep = '{';
    std::size_t i = 0;
    for (std::string_view value_of_label : label_values) {
      out_ += sep;
      out_ += f_.labels[i++];
      out_ += "=\"";
      append_label_value(out_, value_of_label);
      out_ += '"';
      sep = ',';
    }
    out_ += "} ";
  }

  template <class T>
  void value(T v) {
    if constexpr (std::numeric_limits<T>::is_integer) {
      append_uint(out_, static_cast<std::uint64_t>(v));
    } else {
      append_prom_number(out_, static_cast<double>(v));
    }
    out_ += '\n';
  }

  std::string& out_;
  const Family& f_;
};

// ---- when a family is written
inline bool always(const Input&) { return true; }
template <auto Group>
bool ok(const Input& in) { return (in.s.*Group).ok; }
inline bool cpu_times(const Input& in) { return in.s.cpu.ok && !in.s.cpu.core_times.empty(); }
inline bool cpu_frequency(const Input& in) { return !in.s.cpu.frequency_mhz.empty(); }
inline bool disk_io(const Input& in) { return in.s.disk.io_ok; }
inline bool filesystems(const Input& in) { return in.s.disk.partitions_ok && !in.s.disk.partitions.empty(); }
// The statistics families need one filesystem that could be read.
inline bool filesystems_read(const Input& in) {
  if (!in.s.disk.partitions_ok) return false;
  for (const PartitionStats& p : in.s.disk.partitions)
    if (p.ok) return true;
  return false;
}
inline bool booted(const Input& in) { return in.s.system.ok && in.s.system.boot_time > 0; }
inline bool timestamped(const Input& in) { return in.s.timestamp_us > 0; }
inline bool named(const Input& in) { return !in.s.system.hostname.empty(); }
inline bool container(const Input& in) { return in.s.container.present && in.s.container.ok; }
// A cgroup number the kernel does not provide (NaN) leaves its family out.
template <auto Field>
bool container_has(const Input& in) { return container(in) && std::isfinite(in.s.container.*Field); }
inline bool container_period(const Input& in) {
  return container_has<&ContainerStats::cpu_quota_us>(in) && std::isfinite(in.s.container.cpu_period_us);
}
inline bool server_stats(const Input& in) { return in.self.stats != nullptr; }
inline bool auth(const Input& in) { return in.self.auth; }
inline bool started(const Input& in) { return in.self.start_time_seconds > 0; }

// ---- how its series are read: the common shapes
// One unlabeled value of a snapshot group.
template <auto Group, auto Field>
void value(Series& w, const Input& in) { w.sample((in.s.*Group).*Field); }
// One series per network interface, disk device, or filesystem that could be read.
template <auto Field>
void each_interface(Series& w, const Input& in) {
  for (const InterfaceStats& n : in.s.network.interfaces) w.sample({n.name}, n.*Field);
}
template <auto Field>
void each_disk(Series& w, const Input& in) {
  for (const DiskDeviceStats& d : in.s.disk.devices) w.sample({d.name}, d.*Field);
}
template <auto Field>
void each_filesystem(Series& w, const Input& in) {
  for (const PartitionStats& p : in.s.disk.partitions)
    if (p.ok) w.sample({p.device, p.fstype, p.mountpoint}, p.*Field);
}
// The agent's cgroup, under cAdvisor's `id` label; `OrZero` writes cAdvisor's
// 0 for "no limit".
template <auto Field, bool OrZero = false>
void cgroup(Series& w, const Input& in) {
  const double v = in.s.container.*Field;
  w.sample({in.s.container.cgroup}, OrZero && !std::isfinite(v) ? 0.0 : v);
}
template <auto Field>
void self_value(Series& w, const Input& in) { w.sample(in.self.*Field); }
template <auto Field>
void server_count(Series& w, const Input& in) { w.sample(in.self.stats->*Field); }

// ---- how its series are read: the families of their own shape

// Small integers as label values ("0", "1", ...), without allocating.
struct Index {
  char buf[24];
  std::string_view text;
  explicit Index(std::size_t i) {
    const auto r = std::to_chars(buf, buf + sizeof buf, static_cast<std::uint64_t>(i));
    text = std::string_view(buf, static_cast<std::size_t>(r.ptr - buf));
  }
};

// The cpu label is the kernel's CPU number (core_ids; with offline cores
// there are gaps), as node_exporter's is. Both lists hold the online cores
// in the same order.
inline std::size_t cpu_id(const CpuStats& c, std::size_t i) { return i < c.core_ids.size() ? c.core_ids[i] : i; }

inline void cpu_seconds(Series& w, const Input& in) {
  for (std::size_t i = 0; i < in.s.cpu.core_times.size(); ++i) {
    const CpuTimes& t = in.s.cpu.core_times[i];
    const Index cpu(cpu_id(in.s.cpu, i));
    const std::pair<std::string_view, double> modes[] = {
        {"idle", t.idle},       {"iowait", t.iowait}, {"irq", t.irq},       {"nice", t.nice},
        {"softirq", t.softirq}, {"steal", t.steal},   {"system", t.system}, {"user", t.user}};
    for (const auto& m : modes) w.sample({cpu.text, m.first}, m.second);
  }
}

inline void cpu_hertz(Series& w, const Input& in) {
  const CpuStats& c = in.s.cpu;
  const bool same_cores = c.frequency_mhz.size() == c.core_ids.size();
  for (std::size_t i = 0; i < c.frequency_mhz.size(); ++i) {
    const Index cpu(same_cores ? cpu_id(c, i) : i);
    // The kernel reports kHz (cpufreq) or MHz with three decimals (cpuinfo):
    // a whole number of hertz either way.
    w.sample({cpu.text}, std::round(c.frequency_mhz[i] * 1e6));
  }
}

inline void filesystem_error(Series& w, const Input& in) {
  for (const PartitionStats& p : in.s.disk.partitions) w.sample({p.device, p.fstype, p.mountpoint}, p.ok ? 0 : 1);
}

inline void time_seconds(Series& w, const Input& in) { w.sample(static_cast<double>(in.s.timestamp_us) / 1e6); }
inline void uname(Series& w, const Input& in) { w.sample({in.s.system.hostname}, 1); }

// Under node_exporter's collector names.
inline void collector_success(Series& w, const Input& in) {
  const Snapshot& s = in.s;
  const std::pair<std::string_view, bool> collectors[] = {
      {"cpu", s.cpu.ok},      {"diskstats", s.disk.io_ok}, {"filesystem", s.disk.partitions_ok},
      {"loadavg", s.load.ok}, {"meminfo", s.memory.ok},    {"netdev", s.network.ok},
      {"stat", s.system.ok}};
  for (const auto& c : collectors) w.sample({c.first}, c.second ? 1 : 0);
}

inline void build_info(Series& w, const Input&) { w.sample({METRICS_AGENT_VERSION}, 1); }

inline void clients(Series& w, const Input& in) {
  w.sample({"alerts"}, in.self.clients_alerts);
  w.sample({"dashboard"}, in.self.clients_dashboard);
  w.sample({"flat"}, in.self.clients_flat);
  w.sample({"rich"}, in.self.clients_rich);
}

inline void clients_dropped(Series& w, const Input& in) {
  const ServerStats& st = *in.self.stats;
  w.sample({"backlog"}, st.dropped_backlog);
  w.sample({"error"}, st.dropped_error);
  w.sample({"protocol"}, st.dropped_protocol);
  w.sample({"timeout"}, st.dropped_timeout);
}

inline void connections_rejected(Series& w, const Input& in) {
  w.sample({"capacity"}, in.self.stats->rejected_capacity);
}

// ---- the table, in the order of the exposition (container_* are cAdvisor's names)
inline constexpr Family kFamilies[] = {
    // cpu
    {"node_cpu_seconds_total", kCounter, {"cpu", "mode"}, cpu_times, cpu_seconds,
     "Seconds each CPU spent in each mode since boot."},
    {"node_cpu_scaling_frequency_hertz", kGauge, {"cpu"}, cpu_frequency, cpu_hertz,
     "Current frequency of each CPU in hertz."},
    // load
    {"node_load1", kGauge, {}, ok<&Snapshot::load>, value<&Snapshot::load, &LoadStats::load1>,
     "Load average over the last minute."},
    {"node_load5", kGauge, {}, ok<&Snapshot::load>, value<&Snapshot::load, &LoadStats::load5>,
     "Load average over the last 5 minutes."},
    {"node_load15", kGauge, {}, ok<&Snapshot::load>, value<&Snapshot::load, &LoadStats::load15>,
     "Load average over the last 15 minutes."},
    // memory (node_exporter keeps /proc/meminfo's field names)
    {"node_memory_Buffers_bytes", kGauge, {}, ok<&Snapshot::memory>,
     value<&Snapshot::memory, &MemoryStats::buffers_bytes>, "Buffers from /proc/meminfo, in bytes."},
    {"node_memory_Cached_bytes", kGauge, {}, ok<&Snapshot::memory>,
     value<&Snapshot::memory, &MemoryStats::page_cache_bytes>, "Cached from /proc/meminfo, in bytes."},
    {"node_memory_MemAvailable_bytes", kGauge, {}, ok<&Snapshot::memory>,
     value<&Snapshot::memory, &MemoryStats::available_bytes>, "MemAvailable from /proc/meminfo, in bytes."},
    {"node_memory_MemFree_bytes", kGauge, {}, ok<&Snapshot::memory>,
     value<&Snapshot::memory, &MemoryStats::free_bytes>, "MemFree from /proc/meminfo, in bytes."},
    {"node_memory_MemTotal_bytes", kGauge, {}, ok<&Snapshot::memory>,
     value<&Snapshot::memory, &MemoryStats::total_bytes>, "MemTotal from /proc/meminfo, in bytes."},
    {"node_memory_SReclaimable_bytes", kGauge, {}, ok<&Snapshot::memory>,
     value<&Snapshot::memory, &MemoryStats::slab_reclaimable_bytes>, "SReclaimable from /proc/meminfo, in bytes."},
    {"node_memory_SwapFree_bytes", kGauge, {}, ok<&Snapshot::memory>,
     value<&Snapshot::memory, &MemoryStats::swap_free_bytes>, "SwapFree from /proc/meminfo, in bytes."},
    {"node_memory_SwapTotal_bytes", kGauge, {}, ok<&Snapshot::memory>,
     value<&Snapshot::memory, &MemoryStats::swap_total_bytes>, "SwapTotal from /proc/meminfo, in bytes."},
    // network
    {"node_network_receive_bytes_total", kCounter, {"device"}, ok<&Snapshot::network>,
     each_interface<&InterfaceStats::bytes_recv>, "Bytes received by the network device."},
    {"node_network_receive_drop_total", kCounter, {"device"}, ok<&Snapshot::network>,
     each_interface<&InterfaceStats::drops_in>, "Received packets the network device dropped."},
    {"node_network_receive_errs_total", kCounter, {"device"}, ok<&Snapshot::network>,
     each_interface<&InterfaceStats::errors_in>, "Receive errors of the network device."},
    {"node_network_receive_packets_total", kCounter, {"device"}, ok<&Snapshot::network>,
     each_interface<&InterfaceStats::packets_recv>, "Packets received by the network device."},
    {"node_network_transmit_bytes_total", kCounter, {"device"}, ok<&Snapshot::network>,
     each_interface<&InterfaceStats::bytes_sent>, "Bytes sent by the network device."},
    {"node_network_transmit_drop_total", kCounter, {"device"}, ok<&Snapshot::network>,
     each_interface<&InterfaceStats::drops_out>, "Outgoing packets the network device dropped."},
    {"node_network_transmit_errs_total", kCounter, {"device"}, ok<&Snapshot::network>,
     each_interface<&InterfaceStats::errors_out>, "Transmit errors of the network device."},
    {"node_network_transmit_packets_total", kCounter, {"device"}, ok<&Snapshot::network>,
     each_interface<&InterfaceStats::packets_sent>, "Packets sent by the network device."},
    // disk I/O
    {"node_disk_read_bytes_total", kCounter, {"device"}, disk_io, each_disk<&DiskDeviceStats::read_bytes>,
     "Bytes read from the disk device."},
    {"node_disk_reads_completed_total", kCounter, {"device"}, disk_io, each_disk<&DiskDeviceStats::reads>,
     "Reads completed by the disk device."},
    {"node_disk_writes_completed_total", kCounter, {"device"}, disk_io, each_disk<&DiskDeviceStats::writes>,
     "Writes completed by the disk device."},
    {"node_disk_written_bytes_total", kCounter, {"device"}, disk_io, each_disk<&DiskDeviceStats::write_bytes>,
     "Bytes written to the disk device."},
    {"node_disk_io_time_seconds_total", kCounter, {"device"}, disk_io, each_disk<&DiskDeviceStats::io_time_seconds>,
     "Seconds the disk device spent doing I/O."},
    {"node_disk_read_time_seconds_total", kCounter, {"device"}, disk_io,
     each_disk<&DiskDeviceStats::read_time_seconds>, "Seconds spent by all reads of the disk device."},
    {"node_disk_write_time_seconds_total", kCounter, {"device"}, disk_io,
     each_disk<&DiskDeviceStats::write_time_seconds>, "Seconds spent by all writes of the disk device."},
    // filesystems
    {"node_filesystem_device_error", kGauge, {"device", "fstype", "mountpoint"}, filesystems, filesystem_error,
     "1 when the filesystem's statistics could not be read, else 0."},
    {"node_filesystem_avail_bytes", kGauge, {"device", "fstype", "mountpoint"}, filesystems_read,
     each_filesystem<&PartitionStats::free_bytes>, "Filesystem space available to unprivileged users, in bytes."},
    {"node_filesystem_files", kGauge, {"device", "fstype", "mountpoint"}, filesystems_read,
     each_filesystem<&PartitionStats::files>, "Inodes (file nodes) on the filesystem."},
    {"node_filesystem_files_free", kGauge, {"device", "fstype", "mountpoint"}, filesystems_read,
     each_filesystem<&PartitionStats::files_free>, "Free inodes on the filesystem."},
    {"node_filesystem_free_bytes", kGauge, {"device", "fstype", "mountpoint"}, filesystems_read,
     each_filesystem<&PartitionStats::bfree_bytes>, "Free filesystem space in bytes, root's reserve included."},
    {"node_filesystem_size_bytes", kGauge, {"device", "fstype", "mountpoint"}, filesystems_read,
     each_filesystem<&PartitionStats::total_bytes>, "Filesystem size in bytes."},
    {"node_filesystem_readonly", kGauge, {"device", "fstype", "mountpoint"}, filesystems_read,
     each_filesystem<&PartitionStats::readonly>, "1 when the filesystem is mounted read-only, else 0."},
    // system; node_exporter's uname carries more labels, nodename is the one
    // dashboards select hosts by
    {"node_boot_time_seconds", kGauge, {}, booted, value<&Snapshot::system, &SystemInfo::boot_time>,
     "When the system booted, in seconds since the epoch."},
    {"node_time_seconds", kGauge, {}, timestamped, time_seconds,
     "Wall-clock time of the collection, in seconds since the epoch."},
    {"node_uname_info", kGauge, {"nodename"}, named, uname, "Constant 1 labeled with the host's name."},
    {"node_scrape_collector_success", kGauge, {"collector"}, always, collector_success,
     "1 when the collector succeeded in the last collection, 0 when its metrics are missing."},
    // the agent's cgroup, with cAdvisor's names
    {"container_cpu_usage_seconds_total", kCounter, {"id"}, container_has<&ContainerStats::cpu_usage_seconds>,
     cgroup<&ContainerStats::cpu_usage_seconds>, "Cumulative CPU time consumed, in seconds."},
    {"container_cpu_cfs_periods_total", kCounter, {"id"}, container_has<&ContainerStats::cpu_periods>,
     cgroup<&ContainerStats::cpu_periods>, "Number of elapsed enforcement periods."},
    {"container_cpu_cfs_throttled_periods_total", kCounter, {"id"},
     container_has<&ContainerStats::cpu_throttled_periods>, cgroup<&ContainerStats::cpu_throttled_periods>,
     "Number of throttled period intervals."},
    {"container_cpu_cfs_throttled_seconds_total", kCounter, {"id"},
     container_has<&ContainerStats::cpu_throttled_seconds>, cgroup<&ContainerStats::cpu_throttled_seconds>,
     "Total time duration the container has been throttled, in seconds."},
    {"container_spec_cpu_quota", kGauge, {"id"}, container_has<&ContainerStats::cpu_quota_us>,
     cgroup<&ContainerStats::cpu_quota_us>, "CPU quota of the container, in microseconds per period."},
    {"container_spec_cpu_period", kGauge, {"id"}, container_period, cgroup<&ContainerStats::cpu_period_us>,
     "CPU period of the container, in microseconds."},
    {"container_spec_memory_limit_bytes", kGauge, {"id"}, container,
     cgroup<&ContainerStats::memory_limit_bytes, true>, "Memory limit for the container, 0 when unlimited."},
    {"container_memory_usage_bytes", kGauge, {"id"}, container_has<&ContainerStats::memory_usage_bytes>,
     cgroup<&ContainerStats::memory_usage_bytes>,
     "Current memory usage in bytes, including all memory regardless of when it was accessed."},
    {"container_memory_working_set_bytes", kGauge, {"id"}, container_has<&ContainerStats::memory_used_bytes>,
     cgroup<&ContainerStats::memory_used_bytes>, "Current working set in bytes."},
    {"container_threads", kGauge, {"id"}, container_has<&ContainerStats::pids>, cgroup<&ContainerStats::pids>,
     "Number of threads (tasks) running inside the container."},
    {"container_threads_max", kGauge, {"id"}, container, cgroup<&ContainerStats::pids_limit, true>,
     "Maximum number of threads allowed inside the container, 0 when unlimited."},
    // the agent itself
    {"metrics_agent_build_info", kGauge, {"version"}, always, build_info,
     "Constant 1 labeled with the metrics-agent version."},
    {"metrics_agent_clients", kGauge, {"endpoint"}, always, clients, "WebSocket clients connected, by endpoint."},
    {"metrics_agent_http_connections", kGauge, {}, always, self_value<&PrometheusSelf::http_connections>,
     "Open connections that are not WebSocket streams."},
    {"metrics_agent_connections_accepted_total", kCounter, {}, server_stats,
     server_count<&ServerStats::connections_accepted>, "Connections accepted."},
    {"metrics_agent_http_requests_total", kCounter, {}, server_stats, server_count<&ServerStats::http_requests>,
     "HTTP requests answered."},
    {"metrics_agent_messages_sent_total", kCounter, {}, server_stats, server_count<&ServerStats::messages_sent>,
     "WebSocket frames (data and control) queued to clients."},
    {"metrics_agent_bytes_sent_total", kCounter, {}, server_stats, server_count<&ServerStats::bytes_sent>,
     "Bytes written to client sockets."},
    {"metrics_agent_clients_dropped_total", kCounter, {"reason"}, server_stats, clients_dropped,
     "Clients disconnected by the agent: backlog (stopped reading), error (socket error), "
     "protocol (violation), timeout (stalled request or unanswered ping)."},
    {"metrics_agent_connections_rejected_total", kCounter, {"reason"}, server_stats, connections_rejected,
     "Connections answered 503 because of --max-clients or --max-clients-per-ip."},
    {"metrics_agent_accept_failures_total", kCounter, {}, server_stats, server_count<&ServerStats::accept_failures>,
     "Connections that could not be accepted for lack of file descriptors."},
    {"metrics_agent_callback_errors_total", kCounter, {}, server_stats, server_count<&ServerStats::callback_errors>,
     "Exceptions thrown by WebSocket callbacks; each closed its connection with 1011."},
    {"metrics_agent_collection_duration_seconds", kGauge, {}, always, self_value<&PrometheusSelf::collect_seconds>,
     "Seconds the last collection took."},
    {"metrics_agent_history_points", kGauge, {}, always, self_value<&PrometheusSelf::history_points>,
     "Snapshots held in the history buffer."},
    {"metrics_agent_login_tracked_addresses", kGauge, {}, auth, self_value<&PrometheusSelf::login_tracked_addresses>,
     "Addresses whose failed logins of the last minute are remembered."},
    {"metrics_agent_login_throttled_total", kCounter, {}, auth, self_value<&PrometheusSelf::login_throttled>,
     "Logins answered 429 because password checks across all addresses were over their rate."},
    {"process_start_time_seconds", kGauge, {}, started, self_value<&PrometheusSelf::start_time_seconds>,
     "When the process started, in seconds since the epoch."},
};

}  // namespace prom

// ---- node_exporter's further families (NodeDetail, the textfile directory) ----
// Read only when /metrics is scraped (see NodeExposition). When they are
// there, they replace the snapshot's node_memory_*, node_network_{receive,
// transmit}_*, node_disk_*, node_uname_info and node_scrape_collector_*
// families (superseded), which hold a subset of the same numbers.

// One sample of a textfile: the name, its labels already written as
// `a="x",b="y"` (escaped), and the value.
struct TextSample {
  std::string name, labels;
  double value = 0;
};
struct TextFamily {
  std::string name, help, type;  // type: counter, gauge, histogram, summary or untyped
  std::vector<TextSample> samples;
};
struct TextfileFile {
  std::string path;
  double mtime = 0;
};
struct TextfileScrape {
  std::vector<TextfileFile> files;  // the files whose samples are exposed
  std::vector<TextFamily> families;
  bool error = false;               // a file could not be read or parsed
};

inline bool starts_with_text(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

namespace prom {

inline constexpr std::string_view kUntyped = "untyped";

// Whether a family of the snapshot gives way to its NodeDetail version.
inline bool superseded(std::string_view name, const NodeDetail& d) {
  auto has = [&](const char* collector) {
    for (const NodeCollector& c : d.collectors)
      if (c.name == collector) return c.ok;
    return false;
  };
  if (starts_with_text(name, "node_memory_")) return has("meminfo");
  if (starts_with_text(name, "node_network_receive_") || starts_with_text(name, "node_network_transmit_"))
    return has("netdev");
  if (starts_with_text(name, "node_disk_")) return has("diskstats");
  if (name == "node_uname_info") return d.uname_ok;
  return name == "node_scrape_collector_success";
}

// ---- when
template <auto Field>
bool node_has(const Input& in) { return in.node != nullptr && std::isfinite(in.node->*Field); }
template <auto Member>
bool node_any(const Input& in) { return in.node != nullptr && !(in.node->*Member).empty(); }
inline bool node_timex(const Input& in) { return in.node != nullptr && in.node->timex.ok; }
inline bool node_uname(const Input& in) { return in.node != nullptr && in.node->uname_ok; }
inline bool node_os(const Input& in) { return in.node != nullptr && in.node->os_ok; }
inline bool node_present(const Input& in) { return in.node != nullptr; }
template <int Resource, int Kind>
bool node_pressure(const Input& in) { return in.node != nullptr && std::isfinite(in.node->pressure[Resource][Kind]); }
template <auto Field>
bool node_netclass_has(const Input& in) {
  if (in.node == nullptr) return false;
  for (const NodeNetClass& c : in.node->netclass)
    if (std::isfinite(c.*Field)) return true;
  return false;
}
// A diskstats column that the kernel prints (discards since 4.18, flushes since 5.5).
template <int Column>
bool node_disk_column(const Input& in) {
  if (in.node == nullptr) return false;
  for (const NodeDisk& d : in.node->disks)
    if (d.fields > Column) return true;
  return false;
}
inline bool textfile(const Input& in) { return in.textfile != nullptr; }
inline bool textfile_files(const Input& in) { return in.textfile != nullptr && !in.textfile->files.empty(); }

// ---- read
template <auto Field>
void node_value(Series& w, const Input& in) { w.sample(in.node->*Field); }
template <auto Field>
void node_timex_value(Series& w, const Input& in) { w.sample(in.node->timex.*Field); }
template <int Resource, int Kind>
void node_pressure_value(Series& w, const Input& in) { w.sample(in.node->pressure[Resource][Kind]); }
template <int Column>
void node_netdev(Series& w, const Input& in) {
  for (const NodeNetDev& d : in.node->netdev) w.sample({d.device}, Column < 8 ? d.rx[Column] : d.tx[Column - 8]);
}
template <auto Field>
void node_netclass(Series& w, const Input& in) {
  for (const NodeNetClass& c : in.node->netclass)
    if (std::isfinite(c.*Field)) w.sample({c.device}, c.*Field);
}
inline void node_network_up(Series& w, const Input& in) {
  for (const NodeNetClass& c : in.node->netclass) w.sample({c.device}, c.operstate == "up" ? 1 : 0);
}
inline void node_network_info(Series& w, const Input& in) {
  for (const NodeNetClass& c : in.node->netclass)
    w.sample({c.address, c.broadcast, c.device, c.duplex, c.ifalias, c.operstate}, 1);
}
// Column of /proc/diskstats; Scale turns sectors into bytes (512) or
// milliseconds into seconds (0.001).
template <int Column, int Scale = 1>
void node_disk(Series& w, const Input& in) {
  for (const NodeDisk& d : in.node->disks) {
    if (d.fields <= Column) continue;
    if (Scale == 1) {
      w.sample({d.device}, d.f[Column]);
    } else if (Scale > 0) {
      w.sample({d.device}, d.f[Column] * static_cast<std::uint64_t>(Scale));
    } else {
      w.sample({d.device}, static_cast<double>(d.f[Column]) / 1000.0);
    }
  }
}
template <int Column>
void node_softnet(Series& w, const Input& in) {
  for (std::size_t i = 0; i < in.node->softnet.size(); ++i) {
    const NodeSoftnet& s = in.node->softnet[i];
    w.sample({Index(i).text}, Column == 0 ? s.processed : Column == 1 ? s.dropped : s.squeezed);
  }
}
inline void node_arp(Series& w, const Input& in) {
  for (const auto& a : in.node->arp) w.sample({a.first}, a.second);
}
inline void node_hwmon_temp(Series& w, const Input& in) {
  for (const NodeTemperature& t : in.node->hwmon) w.sample({t.chip, t.sensor}, t.celsius);
}
inline void node_hwmon_chips(Series& w, const Input& in) {
  for (const NodeChip& c : in.node->hwmon_chips) w.sample({c.chip, c.name}, 1);
}
inline void node_thermal(Series& w, const Input& in) {
  for (const NodeTemperature& t : in.node->thermal) w.sample({t.sensor, t.chip}, t.celsius);
}
inline void node_uname_all(Series& w, const Input& in) {
  const NodeDetail& d = *in.node;
  w.sample({d.domainname, d.machine, d.nodename, d.release, d.sysname, d.version}, 1);
}
inline void node_os_info(Series& w, const Input& in) {
  const auto& o = in.node->os;
  w.sample({o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], o[8], o[9], o[10], o[11]}, 1);
}
// The snapshot's collectors (no duration of their own: they ran in the
// tick), then each NodeDetail reader with the time it took.
inline void node_collector_duration(Series& w, const Input& in) {
  for (const NodeCollector& c : in.node->collectors) w.sample({c.name}, c.seconds);
}
inline void node_collector_success(Series& w, const Input& in) {
  const Snapshot& s = in.s;
  const std::pair<std::string_view, bool> tick[] = {
      {"cpu", s.cpu.ok}, {"filesystem", s.disk.partitions_ok}, {"loadavg", s.load.ok}};
  for (const auto& c : tick) w.sample({c.first}, c.second ? 1 : 0);
  for (const NodeCollector& c : in.node->collectors) w.sample({c.name}, c.ok ? 1 : 0);
  if (in.textfile != nullptr) w.sample({"textfile"}, in.textfile->error ? 0 : 1);
}
inline void textfile_mtime(Series& w, const Input& in) {
  for (const TextfileFile& f : in.textfile->files) w.sample({f.path}, f.mtime);
}
inline void textfile_error(Series& w, const Input& in) { w.sample(in.textfile->error ? 1 : 0); }

#define METRICS_AGENT_TIMEX_(name, type, field, help) \
  {"node_timex_" name, type, {}, node_timex, node_timex_value<&NodeTimex::field>, help}
#define METRICS_AGENT_DISK_(name, column, scale, help, when) \
  {"node_disk_" name, kCounter, {"device"}, when, node_disk<column, scale>, help}
#define METRICS_AGENT_NETDEV_(dir, col, column) \
  {"node_network_" dir "_" col "_total", kCounter, {"device"}, node_any<&NodeDetail::netdev>, \
   node_netdev<column>, "Column " col " of /proc/net/dev (" dir ")."}

inline constexpr Family kNodeFamilies[] = {
    // /proc/stat
    {"node_context_switches_total", kCounter, {}, node_has<&NodeDetail::context_switches>,
     node_value<&NodeDetail::context_switches>, "Context switches since boot."},
    {"node_intr_total", kCounter, {}, node_has<&NodeDetail::interrupts>, node_value<&NodeDetail::interrupts>,
     "Interrupts serviced since boot."},
    {"node_forks_total", kCounter, {}, node_has<&NodeDetail::forks>, node_value<&NodeDetail::forks>,
     "Processes and threads created since boot."},
    {"node_procs_running", kGauge, {}, node_has<&NodeDetail::procs_running>, node_value<&NodeDetail::procs_running>,
     "Tasks runnable now."},
    {"node_procs_blocked", kGauge, {}, node_has<&NodeDetail::procs_blocked>, node_value<&NodeDetail::procs_blocked>,
     "Tasks waiting for I/O now."},
    // small /proc/sys files
    {"node_entropy_available_bits", kGauge, {}, node_has<&NodeDetail::entropy_available_bits>,
     node_value<&NodeDetail::entropy_available_bits>, "Entropy the kernel's random pool holds, in bits."},
    {"node_entropy_pool_size_bits", kGauge, {}, node_has<&NodeDetail::entropy_pool_size_bits>,
     node_value<&NodeDetail::entropy_pool_size_bits>, "Size of the kernel's random pool, in bits."},
    {"node_filefd_allocated", kGauge, {}, node_has<&NodeDetail::filefd_allocated>,
     node_value<&NodeDetail::filefd_allocated>, "File handles the kernel has allocated (fs/file-nr)."},
    {"node_filefd_maximum", kGauge, {}, node_has<&NodeDetail::filefd_maximum>,
     node_value<&NodeDetail::filefd_maximum>, "Most file handles the kernel will allocate (fs/file-nr)."},
    {"node_nf_conntrack_entries", kGauge, {}, node_has<&NodeDetail::conntrack_entries>,
     node_value<&NodeDetail::conntrack_entries>, "Connection-tracking entries in use."},
    {"node_nf_conntrack_entries_limit", kGauge, {}, node_has<&NodeDetail::conntrack_limit>,
     node_value<&NodeDetail::conntrack_limit>, "Size of the connection-tracking table."},
    {"node_arp_entries", kGauge, {"device"}, node_any<&NodeDetail::arp>, node_arp,
     "Entries of the ARP table, by device."},
    // pressure stall information (Documentation/accounting/psi.rst)
    {"node_pressure_cpu_waiting_seconds_total", kCounter, {}, node_pressure<0, 0>, node_pressure_value<0, 0>,
     "Seconds in which some task waited for a CPU."},
    {"node_pressure_cpu_stalled_seconds_total", kCounter, {}, node_pressure<0, 1>, node_pressure_value<0, 1>,
     "Seconds in which all non-idle tasks waited for a CPU."},
    {"node_pressure_io_waiting_seconds_total", kCounter, {}, node_pressure<1, 0>, node_pressure_value<1, 0>,
     "Seconds in which some task waited for I/O."},
    {"node_pressure_io_stalled_seconds_total", kCounter, {}, node_pressure<1, 1>, node_pressure_value<1, 1>,
     "Seconds in which all non-idle tasks waited for I/O."},
    {"node_pressure_memory_waiting_seconds_total", kCounter, {}, node_pressure<2, 0>, node_pressure_value<2, 0>,
     "Seconds in which some task waited for memory."},
    {"node_pressure_memory_stalled_seconds_total", kCounter, {}, node_pressure<2, 1>, node_pressure_value<2, 1>,
     "Seconds in which all non-idle tasks waited for memory."},
    // softnet
    {"node_softnet_processed_total", kCounter, {"cpu"}, node_any<&NodeDetail::softnet>, node_softnet<0>,
     "Packets the CPU's network softirq processed."},
    {"node_softnet_dropped_total", kCounter, {"cpu"}, node_any<&NodeDetail::softnet>, node_softnet<1>,
     "Packets dropped because the CPU's backlog queue was full."},
    {"node_softnet_times_squeezed_total", kCounter, {"cpu"}, node_any<&NodeDetail::softnet>, node_softnet<2>,
     "Times the CPU's network softirq ran out of budget with work left."},
    // the kernel clock, adjtimex(2)
    METRICS_AGENT_TIMEX_("offset_seconds", kGauge, offset_seconds, "Offset of the clock from its reference."),
    METRICS_AGENT_TIMEX_("frequency_adjustment_ratio", kGauge, frequency_adjustment_ratio,
                         "Rate of the clock relative to its nominal rate."),
    METRICS_AGENT_TIMEX_("maxerror_seconds", kGauge, maxerror_seconds, "Largest error the clock may have."),
    METRICS_AGENT_TIMEX_("estimated_error_seconds", kGauge, estimated_error_seconds, "Estimated error of the clock."),
    METRICS_AGENT_TIMEX_("status", kGauge, status, "The clock's status bits (adjtimex STA_*)."),
    METRICS_AGENT_TIMEX_("loop_time_constant", kGauge, loop_time_constant, "Time constant of the clock's PLL."),
    METRICS_AGENT_TIMEX_("tick_seconds", kGauge, tick_seconds, "Time between two clock ticks."),
    METRICS_AGENT_TIMEX_("pps_frequency_hertz", kGauge, pps_frequency_hertz, "Frequency of the PPS signal."),
    METRICS_AGENT_TIMEX_("pps_jitter_seconds", kGauge, pps_jitter_seconds, "Jitter of the PPS signal."),
    METRICS_AGENT_TIMEX_("pps_shift_seconds", kGauge, pps_shift_seconds, "PPS calibration interval, log2 seconds."),
    METRICS_AGENT_TIMEX_("pps_stability_hertz", kGauge, pps_stability_hertz, "Stability of the PPS signal."),
    METRICS_AGENT_TIMEX_("pps_jitter_total", kCounter, pps_jitter_total, "PPS samples over the jitter limit."),
    METRICS_AGENT_TIMEX_("pps_calibration_total", kCounter, pps_calibration_total, "PPS calibration intervals."),
    METRICS_AGENT_TIMEX_("pps_error_total", kCounter, pps_error_total, "PPS calibration errors."),
    METRICS_AGENT_TIMEX_("pps_stability_exceeded_total", kCounter, pps_stability_exceeded_total,
                         "PPS samples over the stability limit."),
    METRICS_AGENT_TIMEX_("tai_offset_seconds", kGauge, tai_offset_seconds, "Offset of TAI from UTC."),
    METRICS_AGENT_TIMEX_("sync_status", kGauge, sync_status, "1 when the clock is synchronized, else 0."),
    // every column of /proc/net/dev
    METRICS_AGENT_NETDEV_("receive", "bytes", 0), METRICS_AGENT_NETDEV_("receive", "packets", 1),
    METRICS_AGENT_NETDEV_("receive", "errs", 2), METRICS_AGENT_NETDEV_("receive", "drop", 3),
    METRICS_AGENT_NETDEV_("receive", "fifo", 4), METRICS_AGENT_NETDEV_("receive", "frame", 5),
    METRICS_AGENT_NETDEV_("receive", "compressed", 6), METRICS_AGENT_NETDEV_("receive", "multicast", 7),
    METRICS_AGENT_NETDEV_("transmit", "bytes", 8), METRICS_AGENT_NETDEV_("transmit", "packets", 9),
    METRICS_AGENT_NETDEV_("transmit", "errs", 10), METRICS_AGENT_NETDEV_("transmit", "drop", 11),
    METRICS_AGENT_NETDEV_("transmit", "fifo", 12), METRICS_AGENT_NETDEV_("transmit", "colls", 13),
    METRICS_AGENT_NETDEV_("transmit", "carrier", 14), METRICS_AGENT_NETDEV_("transmit", "compressed", 15),
    // /sys/class/net
    {"node_network_mtu_bytes", kGauge, {"device"}, node_netclass_has<&NodeNetClass::mtu>,
     node_netclass<&NodeNetClass::mtu>, "MTU of the network device, in bytes."},
    {"node_network_speed_bytes", kGauge, {"device"}, node_netclass_has<&NodeNetClass::speed_bytes>,
     node_netclass<&NodeNetClass::speed_bytes>, "Link speed of the network device, in bytes per second."},
    {"node_network_carrier", kGauge, {"device"}, node_netclass_has<&NodeNetClass::carrier>,
     node_netclass<&NodeNetClass::carrier>, "1 when the network device has a carrier, else 0."},
    {"node_network_up", kGauge, {"device"}, node_any<&NodeDetail::netclass>, node_network_up,
     "1 when the network device's operstate is up, else 0."},
    {"node_network_info", kGauge, {"address", "broadcast", "device", "duplex", "ifalias", "operstate"},
     node_any<&NodeDetail::netclass>, node_network_info, "Constant 1 labeled with the network device's properties."},
    // every column of /proc/diskstats (Documentation/admin-guide/iostats.rst)
    METRICS_AGENT_DISK_("reads_completed_total", 0, 1, "Reads completed by the disk device.", node_disk_column<0>),
    METRICS_AGENT_DISK_("reads_merged_total", 1, 1, "Adjacent reads merged.", node_disk_column<1>),
    METRICS_AGENT_DISK_("read_bytes_total", 2, 512, "Bytes read from the disk device.", node_disk_column<2>),
    METRICS_AGENT_DISK_("read_time_seconds_total", 3, -1, "Seconds spent by all reads.", node_disk_column<3>),
    METRICS_AGENT_DISK_("writes_completed_total", 4, 1, "Writes completed by the disk device.", node_disk_column<4>),
    METRICS_AGENT_DISK_("writes_merged_total", 5, 1, "Adjacent writes merged.", node_disk_column<5>),
    METRICS_AGENT_DISK_("written_bytes_total", 6, 512, "Bytes written to the disk device.", node_disk_column<6>),
    METRICS_AGENT_DISK_("write_time_seconds_total", 7, -1, "Seconds spent by all writes.", node_disk_column<7>),
    {"node_disk_io_now", kGauge, {"device"}, node_disk_column<8>, node_disk<8>, "I/Os in progress now."},
    METRICS_AGENT_DISK_("io_time_seconds_total", 9, -1, "Seconds the disk device spent doing I/O.",
                        node_disk_column<9>),
    METRICS_AGENT_DISK_("io_time_weighted_seconds_total", 10, -1,
                        "Seconds spent doing I/O, weighted by the I/Os in progress.", node_disk_column<10>),
    METRICS_AGENT_DISK_("discards_completed_total", 11, 1, "Discards completed.", node_disk_column<11>),
    METRICS_AGENT_DISK_("discards_merged_total", 12, 1, "Adjacent discards merged.", node_disk_column<12>),
    METRICS_AGENT_DISK_("discarded_sectors_total", 13, 1, "Sectors discarded.", node_disk_column<13>),
    METRICS_AGENT_DISK_("discard_time_seconds_total", 14, -1, "Seconds spent by all discards.",
                        node_disk_column<14>),
    METRICS_AGENT_DISK_("flush_requests_total", 15, 1, "Flush requests completed.", node_disk_column<15>),
    METRICS_AGENT_DISK_("flush_requests_time_seconds_total", 16, -1, "Seconds spent by all flush requests.",
                        node_disk_column<16>),
    // temperatures
    {"node_hwmon_temp_celsius", kGauge, {"chip", "sensor"}, node_any<&NodeDetail::hwmon>, node_hwmon_temp,
     "Temperature of a hardware-monitoring sensor, in degrees Celsius."},
    {"node_hwmon_chip_names", kGauge, {"chip", "chip_name"}, node_any<&NodeDetail::hwmon_chips>, node_hwmon_chips,
     "Constant 1 naming each hardware-monitoring chip."},
    {"node_thermal_zone_temp", kGauge, {"type", "zone"}, node_any<&NodeDetail::thermal>, node_thermal,
     "Temperature of a thermal zone, in degrees Celsius."},
    // the system
    {"node_uname_info", kGauge, {"domainname", "machine", "nodename", "release", "sysname", "version"}, node_uname,
     node_uname_all, "Constant 1 labeled with what uname(2) says."},
    {"node_os_info", kGauge,
     {"build_id", "id", "id_like", "image_id", "image_version", "name", "pretty_name", "variant", "variant_id",
      "version", "version_codename", "version_id"},
     node_os, node_os_info, "Constant 1 labeled with the values of os-release(5)."},
    {"node_scrape_collector_duration_seconds", kGauge, {"collector"}, node_present, node_collector_duration,
     "Seconds each reader took in the last scrape."},
    {"node_scrape_collector_success", kGauge, {"collector"}, node_present, node_collector_success,
     "1 when the collector succeeded, 0 when its metrics are missing."},
    {"node_textfile_mtime_seconds", kGauge, {"file"}, textfile_files, textfile_mtime,
     "Modification time of each textfile read, in seconds since the epoch."},
    {"node_textfile_scrape_error", kGauge, {}, textfile, textfile_error,
     "1 when a textfile could not be read or parsed, else 0."},
    // the agent's process, as every exporter reports it
    {"process_cpu_seconds_total", kCounter, {}, node_has<&NodeDetail::process_cpu_seconds>,
     node_value<&NodeDetail::process_cpu_seconds>, "CPU time of the process, user and system, in seconds."},
    {"process_resident_memory_bytes", kGauge, {}, node_has<&NodeDetail::process_resident_bytes>,
     node_value<&NodeDetail::process_resident_bytes>, "Resident memory of the process, in bytes."},
    {"process_virtual_memory_bytes", kGauge, {}, node_has<&NodeDetail::process_virtual_bytes>,
     node_value<&NodeDetail::process_virtual_bytes>, "Virtual memory of the process, in bytes."},
    {"process_virtual_memory_max_bytes", kGauge, {}, node_has<&NodeDetail::process_virtual_max_bytes>,
     node_value<&NodeDetail::process_virtual_max_bytes>, "Limit of the process's virtual memory, in bytes."},
    {"process_open_fds", kGauge, {}, node_has<&NodeDetail::process_open_fds>,
     node_value<&NodeDetail::process_open_fds>, "File descriptors the process has open."},
    {"process_max_fds", kGauge, {}, node_has<&NodeDetail::process_max_fds>, node_value<&NodeDetail::process_max_fds>,
     "Most file descriptors the process may open."},
};

#undef METRICS_AGENT_TIMEX_
#undef METRICS_AGENT_DISK_
#undef METRICS_AGENT_NETDEV_

// Families named by their source's fields: one family per field, e.g.
// node_memory_Active_anon_bytes from /proc/meminfo's "Active(anon)".
struct KeyedFamilies {
  std::string_view prefix;
  std::vector<NodeValue> NodeDetail::*values;
  std::string_view type;
  std::string_view source;  // for the help text
};

inline constexpr KeyedFamilies kNodeKeyedFamilies[] = {
    {"node_memory_", &NodeDetail::meminfo, kGauge, "/proc/meminfo"},
    {"node_vmstat_", &NodeDetail::vmstat, kUntyped, "/proc/vmstat"},
    {"node_netstat_", &NodeDetail::netstat, kUntyped, "/proc/net/{netstat,snmp,snmp6}"},
    {"node_sockstat_", &NodeDetail::sockstat, kGauge, "/proc/net/sockstat(6)"},
};

}  // namespace prom

// The NodeDetail families: the rows of kNodeFamilies, then the keyed ones.
inline void append_node_families(std::string& out, const prom::Input& in) {
  for (const prom::Family& f : prom::kNodeFamilies) {
    if (!f.when(in)) continue;
    append_prom_family(out, f.name, f.type, f.help);
    prom::Series series(out, f);
    f.read(series, in);
  }
  if (in.node != nullptr) {
    std::string name, help;
    for (const prom::KeyedFamilies& k : prom::kNodeKeyedFamilies) {
      for (const NodeValue& v : in.node->*k.values) {
        name.assign(k.prefix.data(), k.prefix.size());
        append_metric_name(name, v.name);
        help = "Field ";
        help += v.name;
        help += " of ";
        help += k.source;
        help += '.';
        append_prom_family(out, name, k.type, help);
        out += name;
        out += ' ';
        append_prom_number(out, v.value);
        out += '\n';
      }
    }
  }
}

// The textfiles' families; one whose name this exposition (from `begin`)
// already has is left out, since Prometheus refuses a family given twice.
inline void append_textfile_families(std::string& out, std::size_t begin, const TextfileScrape& t) {
  for (const TextFamily& f : t.families) {
    if (prom_family_present(std::string_view(out.data() + begin, out.size() - begin), f.name)) continue;
    append_prom_family(out, f.name, f.type, f.help.empty() ? std::string_view("Read from a textfile.") : f.help);
    for (const TextSample& s : f.samples) {
      out += s.name;
      if (!s.labels.empty()) {
        out += '{';
        out += s.labels;
        out += '}';
      }
      out += ' ';
      append_prom_number(out, s.value);
      out += '\n';
    }
  }
}

// ---- the text format, read (the textfile directory) --------------------------
// Our own parser of the Prometheus text exposition format 0.0.4, for the
// *.prom files of --textfile-dir. Pure: text in, families or the reason out.
// Refused, as node_exporter's textfile collector refuses them: samples with
// timestamps, a second TYPE or HELP for a family, a TYPE after the family's
// samples, a family whose samples are not contiguous, a series given twice,
// and anything outside the grammar.

inline bool prom_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; }
inline bool prom_name_char(char c) { return prom_name_start(c) || (c >= '0' && c <= '9'); }

inline bool valid_metric_name(std::string_view n) {
  if (n.empty() || !prom_name_start(n[0])) return false;
  for (char c : n)
    if (!prom_name_char(c)) return false;
  return true;
}

inline bool valid_label_name(std::string_view n) {
  if (n.empty() || n[0] == ':' || !prom_name_start(n[0])) return false;
  for (char c : n)
    if (!prom_name_char(c) || c == ':') return false;
  return true;
}

// A sample value: a decimal or exponent float, NaN, +Inf, -Inf (Go's ParseFloat
// spellings that the format allows). Locale-free.
inline bool parse_prom_value(std::string_view t, double& v) {
  if (t == "NaN" || t == "nan") {
    v = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (t == "+Inf" || t == "Inf" || t == "+inf" || t == "inf") {
    v = std::numeric_limits<double>::infinity();
    return true;
  }
  if (t == "-Inf" || t == "-inf") {
    v = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (t.empty()) return false;
  std::string_view u = t;
  if (u[0] == '+') u.remove_prefix(1);  // from_chars takes no '+'
  if (u.empty() || u[0] == '+') return false;
  const auto r = std::from_chars(u.data(), u.data() + u.size(), v);
  return r.ec == std::errc() && r.ptr == u.data() + u.size() && std::isfinite(v);
}

inline std::string_view prom_family_of(std::string_view sample, const TextFamily* current) {
  if (current != nullptr && (current->type == "histogram" || current->type == "summary")) {
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (suffix == "_bucket" && current->type != "histogram") continue;
      if (sample.size() == current->name.size() + suffix.size() && starts_with_text(sample, current->name) &&
          sample.substr(current->name.size()) == suffix)
        return current->name;
    }
  }
  return sample;
}

// Parses `text` into `out` (appended). Returns "" or why it was refused,
// with the line number.
inline std::string parse_prom_text(std::string_view text, std::vector<TextFamily>& out) {
  const std::size_t first = out.size();
  std::unordered_set<std::string> keys;    // name{labels} of every series, to refuse repeats
  std::unordered_set<std::string> closed;  // families whose samples are behind us
  std::unordered_set<std::string> help_seen, type_seen;
  std::unordered_map<std::string, std::size_t> index;  // family name -> position in out
  TextFamily* current = nullptr;
  bool current_has_samples = false;
  std::size_t line_no = 0;
  auto fail = [&](const char* why) {
    out.resize(first);
    return "line " + std::to_string(line_no) + ": " + why;
  };
  auto find = [&](std::string_view name) -> TextFamily* {
    const auto it = index.find(std::string(name));
    return it == index.end() ? nullptr : &out[it->second];
  };
  auto is_closed = [&](std::string_view name) {
    return closed.count(std::string(name)) != 0;
  };
  // Makes `name` the current family, creating it if new.
  auto enter = [&](std::string_view name) -> bool {
    if (current != nullptr && current->name == name) return true;
    if (current != nullptr && current_has_samples) closed.insert(current->name);
    if (is_closed(name)) return false;
    TextFamily* f = find(name);
    if (f == nullptr) {
      index.emplace(std::string(name), out.size());
      out.push_back(TextFamily{std::string(name), {}, "untyped", {}});
      f = &out.back();
    }
    current = f;
    current_has_samples = !f->samples.empty();
    return true;
  };
  while (!text.empty()) {
    ++line_no;
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    auto skip_ws = [](std::string_view& s) {
      while (!s.empty() && (s[0] == ' ' || s[0] == '\t')) s.remove_prefix(1);
    };
    auto token = [&](std::string_view& s) {
      skip_ws(s);
      std::size_t n = 0;
      while (n < s.size() && s[n] != ' ' && s[n] != '\t') ++n;
      const std::string_view t = s.substr(0, n);
      s.remove_prefix(n);
      return t;
    };
    skip_ws(line);
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::string_view rest = line.substr(1);
      const std::string_view kw = token(rest);
      if (kw != "HELP" && kw != "TYPE") continue;  // a comment
      const std::string_view name = token(rest);
      if (!valid_metric_name(name)) return fail("invalid metric name in HELP or TYPE");
      if (kw == "TYPE") {
        const std::string_view type = token(rest);
        skip_ws(rest);
        if (!rest.empty()) return fail("text after the type");
        if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" && type != "untyped")
          return fail("unknown type");
        TextFamily* f = find(name);
        if (f != nullptr && !f->samples.empty()) return fail("TYPE after the family's samples");
        if (type_seen.count(std::string(name)) != 0) return fail("second TYPE for a family");
        if (!enter(name)) return fail("family is not contiguous");
        current->type.assign(type.data(), type.size());
        type_seen.insert(current->name);
      } else {
        if (help_seen.count(std::string(name)) != 0) return fail("second HELP for a family");
        if (!enter(name)) return fail("family is not contiguous");
        if (!rest.empty() && (rest[0] == ' ' || rest[0] == '\t')) rest.remove_prefix(1);
        std::string help;
        for (std::size_t i = 0; i < rest.size(); ++i) {
          if (rest[i] == '\\' && i + 1 < rest.size() && (rest[i + 1] == '\\' || rest[i + 1] == 'n')) {
            help += rest[i + 1] == 'n' ? '\n' : '\\';
            ++i;
          } else {
            help += rest[i];
          }
        }
        current->help = std::move(help);
        help_seen.insert(current->name);
      }
      continue;
    }
    // A sample: name, optional {labels}, value, no timestamp.
    std::size_t n = 0;
    while (n < line.size() && prom_name_char(line[n])) ++n;
    const std::string_view name = line.substr(0, n);
    if (!valid_metric_name(name)) return fail("invalid metric name");
    line.remove_prefix(n);
    TextSample s;
    s.name.assign(name.data(), name.size());
    std::vector<std::string_view> label_names;
    const std::size_t before_blank = line.size();
    skip_ws(line);
    bool blank_before_value = line.size() != before_blank;
    if (!line.empty() && line[0] == '{') {
      line.remove_prefix(1);
      for (;;) {
        skip_ws(line);
        if (!line.empty() && line[0] == '}') {
          line.remove_prefix(1);
          break;
        }
        std::size_t k = 0;
        while (k < line.size() && prom_name_char(line[k])) ++k;
        const std::string_view label = line.substr(0, k);
        if (!valid_label_name(label) || starts_with_text(label, "__")) return fail("invalid label name");
        for (std::string_view l : label_names)
          if (l == label) return fail("label given twice");
        label_names.push_back(label);
        line.remove_prefix(k);
        skip_ws(line);
        if (line.size() < 2 || line[0] != '=' ) return fail("expected '=' after a label name");
        line.remove_prefix(1);
        skip_ws(line);
        if (line.empty() || line[0] != '"') return fail("expected a quoted label value");
        line.remove_prefix(1);
        std::string value;
        bool closed_quote = false;
        while (!line.empty()) {
          const char c = line[0];
          line.remove_prefix(1);
          if (c == '"') {
            closed_quote = true;
            break;
          }
          if (c == '\\') {
            if (line.empty()) break;
            const char e = line[0];
            line.remove_prefix(1);
            if (e == 'n') {
              value += '\n';
            } else if (e == '\\' || e == '"') {
              value += e;
            } else {
              return fail("invalid escape in a label value");
            }
          } else {
            value += c;
          }
        }
        if (!closed_quote) return fail("unterminated label value");
        if (!s.labels.empty()) s.labels += ',';
        s.labels.append(label.data(), label.size());
        s.labels += "=\"";
        append_prom_escaped(s.labels, value, true);
        s.labels += '"';
        skip_ws(line);
        if (!line.empty() && line[0] == ',') {
          line.remove_prefix(1);
        } else if (line.empty() || line[0] != '}') {
          return fail("expected ',' or '}' after a label");
        }
      }
      blank_before_value = !line.empty() && (line[0] == ' ' || line[0] == '\t');
    }
    if (line.empty() || !blank_before_value) return fail("expected a value after the series");
    const std::string_view value = token(line);
    if (!parse_prom_value(value, s.value)) return fail("invalid sample value");
    skip_ws(line);
    if (!line.empty()) return fail("timestamps and trailing text are not supported");
    const std::string_view family = prom_family_of(name, current);
    if (family != name && current != nullptr && current->type == "histogram" &&
        name.size() > 7 && name.substr(name.size() - 7) == "_bucket" &&
        std::find(label_names.begin(), label_names.end(), "le") == label_names.end())
      return fail("histogram bucket without le");
    if (!enter(family)) return fail("family is not contiguous");
    std::string key = s.name + "{" + s.labels;
    if (!keys.insert(std::move(key)).second) return fail("series given twice");
    current->samples.push_back(std::move(s));
    current_has_samples = true;
  }
  // Families with a TYPE or HELP but no sample are dropped, as node_exporter drops them.
  out.erase(std::remove_if(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
                           [](const TextFamily& f) { return f.samples.empty(); }),
            out.end());
  return {};
}

// Application gauges come last, so that a name clash with any family before
// them is seen: a gauge whose sanitized name is already taken (by a family or
// an earlier gauge) is left out rather than duplicated, which Prometheus would
// reject. `begin` is where this exposition starts in `out`. The first
// `from_textfiles` gauges are the textfiles' samples, whose own families
// stand for them.
inline void append_application_gauges(std::string& out, std::size_t begin, const std::vector<Gauge>& gauges,
                                      const std::vector<std::string>& gauge_help, std::size_t from_textfiles = 0) {
  for (std::size_t i = from_textfiles; i < gauges.size(); ++i) {
    const Gauge& g = gauges[i];
    const std::size_t mark = out.size();
    out += "# HELP ";
    const std::size_t name_at = out.size();
    append_metric_name(out, g.name);
    const std::size_t name_len = out.size() - name_at;
    if (prom_family_present(std::string_view(out.data() + begin, mark - begin),
                            std::string_view(out.data() + name_at, name_len))) {
      out.resize(mark);
      continue;
    }
    std::string_view help = i < gauge_help.size() ? std::string_view(gauge_help[i]) : std::string_view();
    if (help.empty()) help = g.help;
    out += ' ';
    if (help.empty()) {
      out += "Application gauge.";
    } else {
      append_prom_escaped(out, help, false);
    }
    // The name is copied from `out` itself: reserve first so that no append moves it.
    out.reserve(out.size() + 2 * name_len + 64);
    out += "\n# TYPE ";
    out.append(out, name_at, name_len);
    out += " gauge\n";
    out.append(out, name_at, name_len);
    out += ' ';
    append_prom_number(out, g.value);
    out += '\n';
  }
}

// One snapshot as Prometheus text exposition 0.0.4: the rows of
// prom::kFamilies, then the application gauges. A group that failed to
// collect is left out, and node_scrape_collector_success{collector} says so.
// `gauge_help[i]` is the help text of s.custom[i].
// `node` and `textfile`, where given, add node_exporter's further families
// and the textfile directory's; the first `textfile_gauges` gauges are its
// samples (see TextfileGauges) and are left to its families.
inline void append_prometheus(std::string& out, const Snapshot& s, const std::vector<std::string>& gauge_help,
                              const PrometheusSelf& self, const NodeDetail* node = nullptr,
                              const TextfileScrape* textfile = nullptr, std::size_t textfile_gauges = 0) {
  const std::size_t begin = out.size();
  out.reserve(begin + prometheus_size_estimate(s, gauge_help) + (node != nullptr ? 32768 : 0));
  const prom::Input in{s, self, node, textfile};
  for (const prom::Family& f : prom::kFamilies) {
    if (!f.when(in) || (node != nullptr && prom::superseded(f.name, *node))) continue;
    append_prom_family(out, f.name, f.type, f.help);
    prom::Series series(out, f);
    f.read(series, in);
  }
  append_node_families(out, in);
  if (textfile != nullptr) append_textfile_families(out, begin, *textfile);
  append_application_gauges(out, begin, s.custom, gauge_help, textfile_gauges);
}

}  // namespace detail
}  // namespace metrics_agent

// ============================================================================
// Implementation: serialization of snapshots (once per tick per distinct output)
// ============================================================================

namespace metrics_agent {
namespace detail {

enum FlatField : std::uint32_t { kFlatCpu = 1, kFlatMemory = 2, kFlatDisk = 4, kFlatAll = 7 };
enum RichField : std::uint32_t {
  kRichCpu = 1,
  kRichMemory = 2,
  kRichNetwork = 4,
  kRichDisk = 8,
  kRichSystem = 16,
  kRichCustom = 32,
  kRichContainer = 64,
  kRichSensors = 128,
  kRichAll = 255,
  kRichDashboard = kRichCpu | kRichMemory | kRichNetwork | kRichDisk,
};

inline std::uint32_t flat_field(std::string_view name) {
  if (name == "cpu") return kFlatCpu;
  if (name == "memory") return kFlatMemory;
  if (name == "disk") return kFlatDisk;
  return 0;
}

// The rich stream's groups, in the order a subscription names them back.
struct RichGroup {
  const char* name;
  std::uint32_t bit;
};

inline constexpr RichGroup kRichGroups[] = {
    {"cpu", kRichCpu},       {"memory", kRichMemory},       {"network", kRichNetwork}, {"disk", kRichDisk},
    {"system", kRichSystem}, {"container", kRichContainer}, {"custom", kRichCustom},
    {"sensors", kRichSensors},
};

inline std::uint32_t rich_field(std::string_view name) {
  if (name == "load") return kRichCpu;  // the load averages are in the cpu group
  for (const auto& g : kRichGroups)
    if (name == g.name) return g.bit;
  return 0;
}

// "cpu, memory, network, disk, system, container, custom".
inline std::string rich_group_names() {
  std::string out;
  for (const auto& g : kRichGroups) out += (out.empty() ? "" : ", ") + std::string(g.name);
  return out;
}

// {"cpu": 25.5, "memory": 60.2, "disk": 45.3, "timestamp": "..."}: spacing
// as existing clients of this endpoint receive it from Python's json.dumps.
// With `container_scope`, cpu and memory are the agent's cgroup's shares of
// its limits (when it has any; host-wide otherwise).
inline std::string flat_json(const Snapshot& s, std::uint32_t fields, bool container_scope = false) {
  std::string out = "{";
  std::string errors;
  bool any_ok = false, any = false;
  auto field = [&](std::uint32_t bit, const char* name, bool ok, double v, const std::string& err) {
    if (!(fields & bit)) return;
    if (any) out += ", ";
    any = true;
    out += '"';
    out += name;
    out += "\": ";
    if (ok) {
      append_number(out, v, 2);
      any_ok = true;
    } else {
      out += "null";
      if (!errors.empty()) errors += "; ";
      errors += name;
      errors += ": ";
      errors += err.empty() ? "unavailable" : err;
    }
  };
  const ContainerStats& c = s.container;
  if (container_scope && c.present) {
    const std::string why = "the cgroup does not report it";
    field(kFlatCpu, "cpu", std::isfinite(c.cpu_usage_percent), c.cpu_usage_percent, c.ok ? why : c.error);
    field(kFlatMemory, "memory", std::isfinite(c.memory_usage_percent), c.memory_usage_percent, c.ok ? why : c.error);
  } else {
    field(kFlatCpu, "cpu", s.cpu.ok, s.cpu.usage_percent, s.cpu.error);
    field(kFlatMemory, "memory", s.memory.ok, s.memory.usage_percent, s.memory.error);
  }
  field(kFlatDisk, "disk", s.disk.path.ok, s.disk.path.usage_percent, s.disk.path.error);
  if (!errors.empty()) {
    if (!any_ok && any) out = "{";
    else out += ", ";
    out += "\"error\": ";
    append_json_string(out, "Metric collection failed: " + errors);
  }
  out += out.size() > 1 ? ", \"timestamp\": \"" : "\"timestamp\": \"";
  append_timestamp(out, s.timestamp_us, TimeFormat::Micro);
  out += "\"}";
  return out;
}

inline void write_partition(JsonWriter& w, const PartitionStats& p) {
  w.begin_object();
  w.key("device").str(p.device).key("fstype").str(p.fstype);
  if (p.ok) {
    w.key("total_bytes").uint(p.total_bytes).key("used_bytes").uint(p.used_bytes);
    w.key("free_bytes").uint(p.free_bytes).key("usage_percent").num(p.usage_percent);
  } else {
    w.key("total_bytes").null().key("used_bytes").null().key("free_bytes").null();
    w.key("usage_percent").null().key("error").str(p.error);
  }
  w.end_object();
}

// The `data` object of SPEC §5.2, limited to `fields`.
inline void write_rich_data(std::string& out, const Snapshot& s, std::uint32_t fields) {
  JsonWriter w(out);
  w.begin_object();
  if (fields & kRichCpu) {
    w.key("cpu");
    if (!s.cpu.ok) {
      w.null();
    } else {
      const CpuStats& c = s.cpu;
      w.begin_object().key("usage_percent").num(c.usage_percent);
      w.key("per_core").begin_array();
      for (double v : c.per_core) w.num(v);
      w.end_array();
      w.key("user").num(c.user).key("system").num(c.system).key("idle").num(c.idle);
      w.key("iowait").num(c.iowait).key("steal").num(c.steal).key("nice").num(c.nice);
      w.key("irq").num(c.irq).key("softirq").num(c.softirq);
      w.key("frequency_mhz").begin_array();
      for (double v : c.frequency_mhz) w.num(v, 1);
      w.end_array();
      w.key("load_avg");
      if (s.load.ok)
        w.begin_array().num(s.load.load1).num(s.load.load5).num(s.load.load15).end_array();
      else
        w.null();
      w.key("core_count").uint(c.per_core.size());
      w.end_object();
    }
  }
  if (fields & kRichMemory) {
    w.key("memory");
    if (!s.memory.ok) {
      w.null();
    } else {
      const MemoryStats& m = s.memory;
      w.begin_object().key("usage_percent").num(m.usage_percent);
      w.key("total_bytes").uint(m.total_bytes).key("used_bytes").uint(m.used_bytes);
      w.key("available_bytes").uint(m.available_bytes).key("free_bytes").uint(m.free_bytes);
      w.key("cached_bytes").uint(m.cached_bytes).key("buffers_bytes").uint(m.buffers_bytes);
      w.key("swap_total_bytes").uint(m.swap_total_bytes).key("swap_used_bytes").uint(m.swap_used_bytes);
      w.key("swap_free_bytes").uint(m.swap_free_bytes).key("swap_percent").num(m.swap_percent);
      w.end_object();
    }
  }
  if (fields & kRichNetwork) {
    w.key("network");
    if (!s.network.ok) {
      w.null();
    } else {
      w.begin_object();
      w.key("bytes_sent_per_sec").num(s.network.bytes_sent_per_sec);
      w.key("bytes_recv_per_sec").num(s.network.bytes_recv_per_sec);
      w.key("interfaces").begin_object();
      for (const auto& i : s.network.interfaces) {
        w.key(i.name).begin_object();
        w.key("bytes_sent_per_sec").num(i.bytes_sent_per_sec).key("bytes_recv_per_sec").num(i.bytes_recv_per_sec);
        w.key("packets_sent_per_sec").num(i.packets_sent_per_sec);
        w.key("packets_recv_per_sec").num(i.packets_recv_per_sec);
        w.key("bytes_sent").uint(i.bytes_sent).key("bytes_recv").uint(i.bytes_recv);
        w.key("packets_sent").uint(i.packets_sent).key("packets_recv").uint(i.packets_recv);
        w.key("errors_in").uint(i.errors_in).key("errors_out").uint(i.errors_out);
        w.key("drops_in").uint(i.drops_in).key("drops_out").uint(i.drops_out);
        w.end_object();
      }
      w.end_object().end_object();
    }
  }
  if (fields & kRichDisk) {
    w.key("disk").begin_object();
    w.key("partitions");
    if (!s.disk.partitions_ok) {
      w.null();
    } else {
      w.begin_object();
      for (const auto& p : s.disk.partitions) {
        w.key(p.mountpoint);
        write_partition(w, p);
      }
      w.end_object();
    }
    w.key("io");
    if (!s.disk.io_ok) {
      w.null();
    } else {
      w.begin_object();
      w.key("read_bytes_per_sec").num(s.disk.read_bytes_per_sec);
      w.key("write_bytes_per_sec").num(s.disk.write_bytes_per_sec);
      w.key("devices").begin_object();
      for (const auto& d : s.disk.devices) {
        w.key(d.name).begin_object();
        w.key("read_bytes_per_sec").num(d.read_bytes_per_sec).key("write_bytes_per_sec").num(d.write_bytes_per_sec);
        w.key("reads_per_sec").num(d.reads_per_sec).key("writes_per_sec").num(d.writes_per_sec);
        w.end_object();
      }
      w.end_object().end_object();
    }
    w.end_object();
  }
  if (fields & kRichSystem) {
    w.key("system");
    if (!s.system.ok) {
      w.null();
    } else {
      w.begin_object().key("hostname").str(s.system.hostname);
      w.key("uptime_seconds").num(s.system.uptime_seconds, 0).end_object();
    }
  }
  if (fields & kRichContainer) {
    w.key("container");
    const ContainerStats& c = s.container;
    if (!c.present || !c.ok) {
      w.null();
    } else {
      w.begin_object().key("cgroup").str(c.cgroup).key("cgroup_version").uint(unsigned(c.cgroup_version));
      w.key("cpu_usage_percent").num(c.cpu_usage_percent).key("cpu_limit_cores").num(c.cpu_limit_cores, 3);
      w.key("cpu_throttled_seconds").num(c.cpu_throttled_seconds, 3);
      w.key("memory_used_bytes").num(c.memory_used_bytes, 0).key("memory_limit_bytes").num(c.memory_limit_bytes, 0);
      w.key("memory_usage_percent").num(c.memory_usage_percent);
      w.key("pids").num(c.pids, 0).key("pids_limit").num(c.pids_limit, 0);
      w.end_object();
    }
  }
  if (fields & kRichSensors) {
    // Temperatures in degrees Celsius, null on a host without sensors.
    w.key("sensors");
    if (s.sensors.empty()) {
      w.null();
    } else {
      w.begin_object().key("temperatures").begin_array();
      for (const NodeTemperature& t : s.sensors)
        w.begin_object().key("chip").str(t.chip).key("sensor").str(t.sensor).key("celsius").num(t.celsius, 1).end_object();
      w.end_array().end_object();
    }
  }
  if (fields & kRichCustom) {
    w.key("custom").begin_object();
    for (const auto& g : s.custom) {
      w.key(g.name).num(g.value, 6);
    }
    w.end_object();
  }
  w.end_object();
}

// Errors of the groups in `fields`, joined; empty when all went well.
inline std::string rich_errors(const Snapshot& s, std::uint32_t fields) {
  std::string e;
  auto add = [&](bool bad, const char* name, const std::string& why) {
    if (!bad) return;
    if (!e.empty()) e += "; ";
    e += name;
    e += ": ";
    e += why.empty() ? "unavailable" : why;
  };
  if (fields & kRichCpu) add(!s.cpu.ok, "cpu", s.cpu.error);
  if (fields & kRichMemory) add(!s.memory.ok, "memory", s.memory.error);
  if (fields & kRichNetwork) add(!s.network.ok, "network", s.network.error);
  if (fields & kRichDisk) {
    add(!s.disk.partitions_ok, "disk partitions", s.disk.partitions_error);
    add(!s.disk.io_ok, "disk io", s.disk.io_error);
  }
  if (fields & kRichSystem) add(!s.system.ok, "system", s.system.error);
  if (fields & kRichContainer) add(s.container.present && !s.container.ok, "container", s.container.error);
  return e;
}

inline TimeFormat tick_format(std::int64_t tick_us) {
  return tick_us % 1000000 == 0 ? TimeFormat::Seconds : TimeFormat::Millis;
}

inline std::string rich_json(const Snapshot& s, std::uint32_t fields, std::int64_t tick_us) {
  std::string out = "{\"type\":\"metrics\",\"timestamp\":\"";
  append_timestamp(out, tick_us, tick_format(tick_us));
  out += "\",\"data\":";
  write_rich_data(out, s, fields);
  std::string err = rich_errors(s, fields);
  if (!err.empty()) {
    out += ",\"error\":";
    append_json_string(out, "Metric collection failed: " + err);
  }
  out += '}';
  return out;
}

// ============================================================================
// Implementation: history (compact numbers, not JSON)
// ============================================================================

class History {
 public:
  enum Series { Cpu, Memory, Disk, NetSent, NetRecv, Load1, Load5, Load15, kBuiltin };

  void reset(std::size_t capacity, std::size_t gauges) {
    cap_ = std::max<std::size_t>(capacity, 1);
    stride_ = kBuiltin + gauges;
    values_.assign(cap_ * stride_, std::nanf(""));
    times_.assign(cap_, 0);
    head_ = count_ = 0;
  }

  void push(const Snapshot& s, std::int64_t tick_us) {
    float* v = &values_[head_ * stride_];
    auto f = [](bool ok, double x) { return ok ? float(x) : std::nanf(""); };
    v[Cpu] = f(s.cpu.ok, s.cpu.usage_percent);
    v[Memory] = f(s.memory.ok, s.memory.usage_percent);
    v[Disk] = f(s.disk.path.ok, s.disk.path.usage_percent);
    v[NetSent] = f(s.network.ok, s.network.bytes_sent_per_sec);
    v[NetRecv] = f(s.network.ok, s.network.bytes_recv_per_sec);
    v[Load1] = f(s.load.ok, s.load.load1);
    v[Load5] = f(s.load.ok, s.load.load5);
    v[Load15] = f(s.load.ok, s.load.load15);
    for (std::size_t g = 0; g + kBuiltin < stride_ && g < s.custom.size(); ++g) v[kBuiltin + g] = float(s.custom[g].value);
    times_[head_] = tick_us;
    head_ = (head_ + 1) % cap_;
    count_ = std::min(count_ + 1, cap_);
  }

  std::size_t size() const { return count_; }
  std::size_t memory_bytes() const { return values_.capacity() * sizeof(float) + times_.capacity() * 8; }

  // Calls fn(tick_us, values) for the points not older than `since_us`, oldest first.
  template <class F>
  void each_since(std::int64_t since_us, F fn) const {
    for (std::size_t i = 0; i < count_; ++i) {
      std::size_t idx = (head_ + cap_ - count_ + i) % cap_;
      if (times_[idx] >= since_us) fn(times_[idx], &values_[idx * stride_]);
    }
  }

 private:
  std::size_t cap_ = 1, stride_ = kBuiltin, head_ = 0, count_ = 0;
  std::vector<float> values_;
  std::vector<std::int64_t> times_;
};

// ============================================================================
// Implementation: built-in metric names (alert rules, history, their messages)
// ============================================================================

// The built-in metrics a user names: in an alert rule (--alert cpu>90) and in
// the history route (/api/metrics/cpu). Every list of them (the alert rule
// check, the history route, the messages naming the known ones) reads this
// table; application gauges come after them in each.
enum class Builtin : std::uint8_t { Cpu, Memory, Disk, Swap, Network, Load1, Load5, Load15 };
enum class AlertName : std::uint8_t { None, Listed, Alias };

struct BuiltinMetric {
  const char* name;
  Builtin value;          // what an alert rule compares (builtin_value)
  AlertName alert;        // Alias: accepted, but not named in messages
  int history_series;     // a History::Series, or -1: no history route
  const char* history_unit;
};

inline constexpr BuiltinMetric kBuiltinMetrics[] = {
    {"cpu", Builtin::Cpu, AlertName::Listed, History::Cpu, "percent"},
    {"memory", Builtin::Memory, AlertName::Listed, History::Memory, "percent"},
    {"disk", Builtin::Disk, AlertName::Listed, History::Disk, "percent"},
    {"swap", Builtin::Swap, AlertName::Listed, -1, ""},
    {"network", Builtin::Network, AlertName::None, History::NetSent, "bytes_per_second"},
    {"load", Builtin::Load1, AlertName::Alias, History::Load1, "load"},
    {"load1", Builtin::Load1, AlertName::Listed, -1, ""},
    {"load5", Builtin::Load5, AlertName::Listed, -1, ""},
    {"load15", Builtin::Load15, AlertName::Listed, -1, ""},
};

inline const BuiltinMetric* builtin_metric(std::string_view name) {
  for (const auto& b : kBuiltinMetrics)
    if (name == b.name) return &b;
  return nullptr;
}

// The current value of a built-in metric; false when it is not available now.
inline bool builtin_value(const Snapshot& s, Builtin which, double& v) {
  switch (which) {
    case Builtin::Cpu: return v = s.cpu.usage_percent, s.cpu.ok;
    case Builtin::Memory: return v = s.memory.usage_percent, s.memory.ok;
    case Builtin::Disk: return v = s.disk.path.usage_percent, s.disk.path.ok;
    case Builtin::Swap: return v = s.memory.swap_percent, s.memory.ok;
    case Builtin::Network: return v = s.network.bytes_sent_per_sec + s.network.bytes_recv_per_sec, s.network.ok;
    case Builtin::Load1: return v = s.load.load1, s.load.ok;
    case Builtin::Load5: return v = s.load.load5, s.load.ok;
    case Builtin::Load15: return v = s.load.load15, s.load.ok;
  }
  return false;
}

// "cpu, memory, disk, swap, load1, load5, load15": the names alert rules take.
inline std::string builtin_alert_names() {
  std::string out;
  for (const auto& b : kBuiltinMetrics)
    if (b.alert == AlertName::Listed) out += (out.empty() ? "" : ", ") + std::string(b.name);
  return out;
}

// "cpu, memory, disk, network, load": the names the history route serves.
inline std::string builtin_history_names() {
  std::string out;
  for (const auto& b : kBuiltinMetrics)
    if (b.history_series >= 0) out += (out.empty() ? "" : ", ") + std::string(b.name);
  return out;
}
// ============================================================================
// Implementation: alert rules (SPEC §5.4)
// ============================================================================

struct AlertRule {
  std::string metric, op, text;
  double threshold = 0, hold_seconds = 0;
  std::string level = "warning";
  // State.
  bool firing = false;
  std::int64_t holding_since = 0, clearing_since = 0, fired_at = 0;
  double last_value = 0;
};

inline bool parse_duration(std::string_view s, double& seconds) {
  double mult = 1;
  if (!s.empty() && (s.back() == 's' || s.back() == 'm' || s.back() == 'h')) {
    mult = s.back() == 'm' ? 60 : s.back() == 'h' ? 3600 : 1;
    s.remove_suffix(1);
  }
  double v;
  if (!parse_double(s, v) || v < 0 || v > 86400 * 7 / mult) return false;
  seconds = v * mult;
  return true;
}

// "cpu>90:30s", "memory>=95:1m:critical", "disk>90:critical", "load1>4".
inline bool parse_alert_rule(std::string_view text, AlertRule& rule, std::string& error) {
  rule = AlertRule();
  rule.text.assign(text);
  std::vector<std::string_view> parts;
  std::string_view rest = text;
  for (;;) {
    std::size_t c = rest.find(':');
    parts.push_back(rest.substr(0, c));
    if (c == std::string_view::npos) break;
    rest.remove_prefix(c + 1);
  }
  std::string_view cond = parts[0];
  std::size_t op = cond.find_first_of("<>");
  if (op == std::string_view::npos || op == 0) {
    error = "alert rule '" + std::string(text) + "': expected METRIC>THRESHOLD[:DURATION][:LEVEL], e.g. cpu>90:30s";
    return false;
  }
  rule.metric.assign(trim_ows(cond.substr(0, op)));
  std::size_t oplen = (op + 1 < cond.size() && cond[op + 1] == '=') ? 2 : 1;
  rule.op.assign(cond.substr(op, oplen));
  if (!parse_double(cond.substr(op + oplen), rule.threshold)) {
    error = "alert rule '" + std::string(text) + "': the threshold is not a number";
    return false;
  }
  for (std::size_t i = 1; i < parts.size(); ++i) {
    std::string_view p = trim_ows(parts[i]);
    if (p == "warning" || p == "critical" || p == "info") {
      rule.level.assign(p);
    } else if (!parse_duration(p, rule.hold_seconds)) {
      error = "alert rule '" + std::string(text) + "': '" + std::string(p) +
              "' is neither a duration (30s, 5m, 1h) nor a level (info, warning, critical)";
      return false;
    }
  }
  // ASCII only, whatever the locale: std::isalnum would also take letters of
  // the C library's current locale.
  const auto name_char = [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.';
  };
  if (rule.metric.empty() || !std::all_of(rule.metric.begin(), rule.metric.end(), name_char)) {
    error = "alert rule '" + std::string(text) + "': bad metric name '" + rule.metric + "'";
    return false;
  }
  return true;
}

inline bool alert_holds(const AlertRule& r, double v) {
  if (r.op == ">") return v > r.threshold;
  if (r.op == ">=") return v >= r.threshold;
  if (r.op == "<") return v < r.threshold;
  return v <= r.threshold;
}

inline std::vector<std::string> default_alert_rules() {
  return {"cpu>90:30s", "memory>90:30s", "disk>90:30s:critical"};
}

inline bool builtin_alert_metric(std::string_view m) {
  const BuiltinMetric* b = builtin_metric(m);
  return b && b->alert != AlertName::None;
}

// The value an alert rule looks at; false when it is not available now.
inline bool alert_value(const Snapshot& s, std::string_view m, double& v) {
  if (const BuiltinMetric* b = builtin_metric(m); b && b->alert != AlertName::None) return builtin_value(s, b->value, v);
  for (const auto& g : s.custom)
    if (g.name == m) return v = g.value, std::isfinite(g.value);
  return false;
}

inline std::string format_duration(double s) {
  std::string out;
  if (s >= 3600 && std::fmod(s, 3600) == 0) append_number(out, s / 3600, 0), out += 'h';
  else if (s >= 60 && std::fmod(s, 60) == 0) append_number(out, s / 60, 0), out += 'm';
  else append_number(out, s, 1), out += 's';
  return out;
}

inline std::uint8_t level_bit(std::string_view level) {
  if (level == "info") return 1;
  if (level == "warning") return 2;
  if (level == "critical") return 4;
  return 0;
}

// ============================================================================
// Implementation: the slow sampler (the collector's blocking part, off the loop)
// ============================================================================

// Runs the collector's blocking part (statvfs, slow sysfs files) on its own
// thread, so a dead NFS mount delays only the disk numbers, never the loop.
// What it samples and how that enters a Snapshot is the collector's
// (C::SlowPart, C::merge, C::merge_failed; see the collector contract).
// The worker shares ownership of everything it touches (the sample function
// and what it captures, its scratch part, the results): a worker left behind
// in the kernel by the destructor finds all of it alive when the call returns.
template <class C>
class BasicSlowSampler {
 public:
  using Part = typename C::SlowPart;
  // `sample` fills a Part (C::sample_slow). It may outlive the sampler (see
  // ~BasicSlowSampler): what it uses, it must own.
  explicit BasicSlowSampler(std::function<void(Part&)> sample) : state_(std::make_shared<State>()) {
    state_->sample = std::move(sample);
    thread_ = std::thread([state = state_] { work(*state); });
  }
  ~BasicSlowSampler() {
    State& st = *state_;
    std::unique_lock<std::mutex> lk(st.mu);
    st.stop = true;
    st.cv.notify_all();
    // A worker in the middle of a sample is not interrupted: after a quarter
    // second, leave it rather than delay the shutdown (SPEC §3: exit within
    // one second). The collector bounds each of its blocking calls (Linux:
    // helper processes, see BlockingCalls), so a left worker ends soon after.
    st.done_cv.wait_for(lk, std::chrono::milliseconds(250), [&st] { return !st.busy; });
    bool stuck = st.busy;
    lk.unlock();
    if (stuck)
      thread_.detach();
    else
      thread_.join();
  }
  BasicSlowSampler(const BasicSlowSampler&) = delete;
  BasicSlowSampler& operator=(const BasicSlowSampler&) = delete;

  void kick() {
    {
      std::lock_guard<std::mutex> lk(state_->mu);
      state_->wanted = true;
    }
    state_->cv.notify_all();
  }
  // Waits up to `seconds` for a first result.
  void wait_first(double seconds) {
    State& st = *state_;
    std::unique_lock<std::mutex> lk(st.mu);
    st.done_cv.wait_for(lk, std::chrono::duration<double>(seconds), [&st] { return st.have; });
  }
  // Copies the latest results into `s`; marks them failed when older than max_age.
  void merge_into(Snapshot& s, double now, double max_age) {
    State& st = *state_;
    std::lock_guard<std::mutex> lk(st.mu);
    if (!st.have || now - st.taken > max_age) {
      C::merge_failed(st.result,
                      st.have ? "filesystem statistics did not answer within " + format_duration(max_age)
                              : "filesystem statistics not collected yet",
                      s);
      return;
    }
    C::merge(st.result, s);
  }

 private:
  struct State {
    std::function<void(Part&)> sample;
    std::mutex mu;
    std::condition_variable cv, done_cv;
    bool wanted = false, stop = false, have = false, busy = false;
    double taken = 0;
    Part local;   // the worker's scratch, filled outside the lock
    Part result;  // the latest complete sample, under mu
  };

  static void work(State& st) {
    Part& local = st.local;
    std::unique_lock<std::mutex> lk(st.mu);
    for (;;) {
      st.cv.wait(lk, [&st] { return st.wanted || st.stop; });
      if (st.stop) return;
      st.wanted = false;
      st.busy = true;
      lk.unlock();
      local = Part();
      st.sample(local);
      double t = mono_now();
      lk.lock();
      st.busy = false;
      std::swap(st.result, local);
      st.taken = t;
      st.have = true;
      st.done_cv.notify_all();
    }
  }

  std::shared_ptr<State> state_;
  std::thread thread_;
};

using SlowSampler = BasicSlowSampler<Collector>;

// ============================================================================
// Implementation: streams (the stream table and the hub)
// ============================================================================

enum class Stream : std::uint8_t { Flat, Rich, Dashboard, Alerts };

// One row per WebSocket stream (SPEC §5), in the order of `Stream`: the
// routes, /health's "streams" object and /metrics' metrics_agent_clients all
// read it.
struct StreamSpec {
  Stream kind;
  const char* path;
  const char* name;           // the key in /health, the endpoint label in /metrics
  std::uint32_t fields;       // default FlatField or RichField bits
  double interval_seconds;    // default; 0: every tick
  bool needs_token;           // when authentication is on (SPEC §6)
};

inline constexpr StreamSpec kStreams[] = {
    {Stream::Flat, "/api/system/metrics", "flat", kFlatAll, 0, false},
    {Stream::Rich, "/api/ws/metrics", "rich", kRichAll, 5, true},
    {Stream::Dashboard, "/api/ws/ws", "dashboard", kRichDashboard, 5, true},
    {Stream::Alerts, "/api/ws/ws/alerts", "alerts", 0, 5, true},
};

inline constexpr bool streams_in_order() {
  for (std::size_t i = 0; i < sizeof kStreams / sizeof kStreams[0]; ++i)
    if (std::size_t(kStreams[i].kind) != i) return false;
  return true;
}
static_assert(streams_in_order(), "kStreams is indexed by Stream");

inline const StreamSpec& stream_spec(Stream s) { return kStreams[std::size_t(s)]; }

// True for a path that any page may read (a stream without a token).
inline bool public_stream_path(std::string_view path) {
  for (const auto& s : kStreams)
    if (path == s.path) return !s.needs_token;
  return false;
}

inline std::string stream_error_message(std::string_view why) {
  return "{\"type\":\"error\",\"error\":" + json_string(why) + "}";
}
// Checks passwords (100,000 PBKDF2 rounds, tens of milliseconds each) on one
// worker thread of its own, so that logins never hold up the event loop.
// `done` runs on the worker; jobs still queued when it is destroyed are
// dropped. The thread starts with the first job.
class PasswordChecker {
 public:
  PasswordChecker() = default;
  PasswordChecker(const PasswordChecker&) = delete;
  PasswordChecker& operator=(const PasswordChecker&) = delete;
  ~PasswordChecker() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  void submit(std::string password, std::string hash, std::function<void(bool)> done) {
    std::lock_guard<std::mutex> lk(mu_);
    jobs_.push_back({std::move(password), std::move(hash), std::move(done)});
    if (!thread_.joinable())
      thread_ = std::thread([this] {
        net::lower_thread_priority();
        work();
      });
    cv_.notify_one();
  }

 private:
  struct Job {
    std::string password, hash;
    std::function<void(bool)> done;
  };

  void work() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      cv_.wait(lk, [this] { return stop_ || !jobs_.empty(); });
      if (stop_) return;
      Job job = std::move(jobs_.front());
      jobs_.pop_front();
      lk.unlock();
      job.done(password_verify(job.password, job.hash));
      lk.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stop_ = false;
  std::thread thread_;
};


// Writes a tick's frames: `to[i].first` gets `frames[to[i].second]`. The
// agent's sockets go through WebSocket::send_frames (the parallel fan-out);
// a test's recording sockets one send_frame at a time.
template <class Socket>
void send_tick_frames(const std::vector<std::shared_ptr<const std::string>>& frames,
                      const std::vector<std::pair<Socket*, std::uint32_t>>& to) {
  for (const auto& t : to) t.first->send_frame(frames[t.second]);
}
inline void send_tick_frames(const std::vector<std::shared_ptr<const std::string>>& frames,
                             const std::vector<std::pair<WebSocket*, std::uint32_t>>& to) {
  WebSocket::send_frames(frames, to);
}

template <class Socket>
struct BasicSubscriber {
  Socket ws;
  Stream stream;
  std::uint8_t levels;       // alerts stream: bit per level
  std::uint32_t fields;      // FlatField or RichField bits
  std::uint32_t every_ticks; // send on ticks divisible by this
  WireFormat format = WireFormat::Json;
};

// One message in the client's format: a text frame of JSON, or one binary
// frame of the same message in MessagePack.
template <class Socket>
void send_message(Socket& ws, std::string_view json, WireFormat format) {
  if (format == WireFormat::Msgpack)
    ws.send_frame(std::make_shared<const std::string>(encode_frame(WsOp::Binary, json_to_msgpack(json))));
  else
    ws.send_text(json);
}

// The clients of the streams and the tick's fan-out: one frame per distinct
// output (format x fields), built on first use and shared by every client
// due on that tick. It owns the subscribers and their views (interval,
// fields, levels) and answers their control messages; authentication is
// checked before open(). A template only so that tests can drive it with
// recording sockets; the agent uses StreamHub.
template <class Socket>
class BasicStreamHub {
 public:
  using Subscriber = BasicSubscriber<Socket>;

  BasicStreamHub(double tick_seconds, bool container_scope)
      : tick_seconds_(tick_seconds),
        tick_us_(std::int64_t(std::llround(tick_seconds * 1e6))),
        container_scope_(container_scope) {}

  // Adds a client of `stream` with the view its request asks for (?interval,
  // ?metrics, ?level) and sends it the latest snapshot, if any. The result is
  // valid until the next open() or close().
  Subscriber& open(Socket& ws, Stream stream) {
    const HttpRequest& req = ws.request();
    const StreamSpec& spec = stream_spec(stream);
    Subscriber s{ws, stream, 0, spec.fields, 1};
    s.every_ticks = interval_ticks(spec.interval_seconds > 0 ? spec.interval_seconds : tick_seconds_);
    if (req.has_param("interval")) {
      double iv;
      if (parse_double(req.param("interval"), iv) && iv > 0) s.every_ticks = interval_ticks(iv);
    }
    if (req.has_param("metrics")) {
      std::uint32_t f = parse_fields(req.param("metrics"), stream);
      if (f) s.fields = f;
    }
    if (req.has_param("format")) parse_wire_format(req.param("format"), s.format);  // else JSON
    s.levels = 7;
    if (stream == Stream::Alerts && req.has_param("level")) {
      std::uint8_t lv = 0;
      std::string list = req.param("level");
      std::string_view rest = list;
      while (!rest.empty()) {
        std::size_t c = rest.find(',');
        lv |= level_bit(trim_ows(rest.substr(0, c)));
        if (c == std::string_view::npos) break;
        rest.remove_prefix(c + 1);
      }
      if (lv) s.levels = lv;
    }
    ws.set_user_data(subs_.size());
    subs_.push_back(s);
    if (stream != Stream::Alerts && latest_)
      ws.send_frame(frame_for(subs_.back()));  // a new client gets the latest snapshot at once
    return subs_.back();
  }

  void close(Socket& ws) {
    std::size_t i = std::size_t(ws.user_data());
    if (i >= subs_.size() || !(subs_[i].ws == ws)) return;  // refused at open
    if (i != subs_.size() - 1) {
      subs_[i] = subs_.back();
      subs_[i].ws.set_user_data(i);
    }
    subs_.pop_back();
  }

  // The tick's fan-out: `snap` stays the latest until the next call. The
  // frames are built here, then written all at once (send_frames), which
  // the server may split over its fan-out threads.
  void fan_out(const Snapshot& snap, std::int64_t tick_us) {
    latest_ = &snap;
    latest_tick_us_ = tick_us;
    frames_.clear();
    frame_keys_.clear();
    due_.clear();
    std::int64_t index = tick_us / tick_us_;
    for (std::size_t i = 0; i < subs_.size(); ++i) {
      Subscriber& s = subs_[i];
      if (s.stream == Stream::Alerts || index % std::int64_t(s.every_ticks) != 0) continue;
      due_.emplace_back(&s.ws, frame_index(s));
    }
    send_tick_frames(frames_, due_);
  }

  void heartbeat(std::int64_t tick_us) {
    std::string json = "{\"type\":\"heartbeat\",\"timestamp\":\"";
    append_timestamp(json, tick_us, tick_format(tick_us));
    json += "\"}";
    Frames frames(json);
    for (auto& s : subs_)
      if (s.stream == Stream::Alerts) s.ws.send_frame(frames.get(s.format));
  }

  // Sends an alert event to the alerts clients that want `level`; how many.
  std::size_t publish_alert(const std::string& json, std::uint8_t level) {
    Frames frames(json);
    std::size_t n = 0;
    for (auto& s : subs_)
      if (s.stream == Stream::Alerts && (s.levels & level)) {
        s.ws.send_frame(frames.get(s.format));
        ++n;
      }
    return n;
  }

  std::size_t size() const { return subs_.size(); }

  // Control messages of SPEC §5.2 (the rich and dashboard streams).
  void control(Socket& ws, std::string_view text, bool binary) {
    Subscriber* s = subscriber(ws);
    if (!s) return;
    if (binary) {
      reply(ws, *s, stream_error_message("binary messages are not understood; send JSON text"));
      return;
    }
    picojson::value v;
    std::string err = parse_json(v, text);
    if (!err.empty() || !v.is<picojson::object>()) {
      reply(ws, *s, stream_error_message(err.empty() ? "expected a JSON object" : "malformed JSON: " + err));
      return;
    }
    const auto& o = v.get<picojson::object>();
    auto type = o.find("type");
    if (type == o.end() || !type->second.is<std::string>()) {
      reply(ws, *s, stream_error_message("missing \"type\""));
      return;
    }
    const std::string& t = type->second.get<std::string>();
    if (t == "ping") {
      reply(ws, *s, "{\"type\":\"pong\"}");
      return;
    }
    if (t != "subscribe") {
      reply(ws, *s, stream_error_message("unknown message type '" + t + "' (ping, subscribe)"));
      return;
    }
    std::uint32_t fields = s->fields, every = s->every_ticks;
    auto m = o.find("metrics");
    if (m != o.end()) {
      if (!m->second.is<picojson::array>()) {
        reply(ws, *s, stream_error_message("\"metrics\" must be an array of names"));
        return;
      }
      fields = 0;
      for (const auto& x : m->second.get<picojson::array>()) {
        std::uint32_t bit = x.is<std::string>() ? rich_field(x.get<std::string>()) : 0;
        if (!bit) {
          reply(ws, *s, stream_error_message("unknown metric " + x.serialize() + " (" + rich_group_names() + ")"));
          return;
        }
        fields |= bit;
      }
      if (!fields) fields = kRichAll;
    }
    WireFormat format = s->format;
    auto fm = o.find("format");
    if (fm != o.end() && !(fm->second.is<std::string>() && parse_wire_format(fm->second.get<std::string>(), format))) {
      reply(ws, *s, stream_error_message("\"format\" must be \"json\" or \"msgpack\""));
      return;
    }
    auto iv = o.find("interval");
    if (iv != o.end()) {
      if (!iv->second.is<double>() || !(iv->second.get<double>() > 0)) {
        reply(ws, *s, stream_error_message("\"interval\" must be a positive number of seconds"));
        return;
      }
      every = interval_ticks(iv->second.get<double>());
    }
    s->fields = fields;
    s->every_ticks = every;
    s->format = format;
    std::string ack = "{\"type\":\"subscribed\",\"metrics\":[";
    bool first = true;
    for (const auto& g : kRichGroups) {
      if (!(fields & g.bit)) continue;
      if (!first) ack += ',';
      first = false;
      ack += '"';
      ack += g.name;
      ack += '"';
    }
    ack += "],\"interval\":";
    append_number(ack, every * tick_seconds_, 3);
    if (format == WireFormat::Msgpack) ack += ",\"format\":\"msgpack\"";
    ack += '}';
    reply(ws, *s, ack);
  }

  // The alerts stream takes only pings.
  void alerts_control(Socket& ws, std::string_view text, bool binary) {
    const Subscriber* s = subscriber(ws);
    const WireFormat format = s ? s->format : WireFormat::Json;
    picojson::value v;
    if (!binary && parse_json(v, text).empty() && v.is<picojson::object>() && v.get("type").is<std::string>() &&
        v.get("type").get<std::string>() == "ping")
      send_message(ws, "{\"type\":\"pong\"}", format);
    else
      send_message(ws, stream_error_message("the alerts stream understands only {\"type\":\"ping\"}"), format);
  }

  // The format `ws` asked for; JSON for a socket the hub does not hold.
  WireFormat format_of(Socket& ws) {
    const Subscriber* s = subscriber(ws);
    return s ? s->format : WireFormat::Json;
  }

 private:
  static void reply(Socket& ws, const Subscriber& s, std::string_view json) { send_message(ws, json, s.format); }

  // One event's frames, each format built on first use.
  struct Frames {
    explicit Frames(const std::string& j) : json(j) {}
    const std::string& json;
    std::shared_ptr<const std::string> text, binary;
    const std::shared_ptr<const std::string>& get(WireFormat f) {
      if (f == WireFormat::Msgpack) {
        if (!binary) binary = std::make_shared<const std::string>(encode_frame(WsOp::Binary, json_to_msgpack(json)));
        return binary;
      }
      if (!text) text = encode_text_frame(json);
      return text;
    }
  };


  std::shared_ptr<const std::string> frame_for(const Subscriber& s) { return frames_[frame_index(s)]; }

  std::uint32_t frame_index(const Subscriber& s) {
    std::uint32_t key = (s.stream == Stream::Flat ? 0x10000u : 0x20000u) | s.fields |
                        (s.format == WireFormat::Msgpack ? 0x40000u : 0u);
    for (std::size_t i = 0; i < frame_keys_.size(); ++i)
      if (frame_keys_[i] == key) return std::uint32_t(i);
    std::string json = s.stream == Stream::Flat ? flat_json(*latest_, s.fields, container_scope_)
                                                : rich_json(*latest_, s.fields, latest_tick_us_);
    frame_keys_.push_back(key);
    // The MessagePack frame is re-encoded from the JSON text, so both formats
    // carry the same message.
    frames_.push_back(s.format == WireFormat::Msgpack
                          ? std::make_shared<const std::string>(encode_frame(WsOp::Binary, json_to_msgpack(json)))
                          : encode_text_frame(json));
    return std::uint32_t(frames_.size() - 1);
  }

  std::uint32_t interval_ticks(double seconds) const {
    double t = std::round(std::min(seconds, 86400.0) / tick_seconds_);
    return std::uint32_t(std::max(1.0, t));
  }

  static std::uint32_t parse_fields(std::string_view list, Stream stream) {
    std::uint32_t f = 0;
    while (!list.empty()) {
      std::size_t c = list.find(',');
      std::string_view name = trim_ows(list.substr(0, c));
      f |= stream == Stream::Flat ? flat_field(name) : rich_field(name);
      if (c == std::string_view::npos) break;
      list.remove_prefix(c + 1);
    }
    return f;
  }

  Subscriber* subscriber(Socket& ws) {
    std::size_t i = std::size_t(ws.user_data());
    return i < subs_.size() && subs_[i].ws == ws ? &subs_[i] : nullptr;
  }

  double tick_seconds_;
  std::int64_t tick_us_;
  bool container_scope_;
  std::vector<Subscriber> subs_;
  std::vector<std::uint32_t> frame_keys_;  // (stream, fields, format) of each frame
  std::vector<std::shared_ptr<const std::string>> frames_;
  std::vector<std::pair<Socket*, std::uint32_t>> due_;  // this tick's sends
  const Snapshot* latest_ = nullptr;  // null until the first tick
  std::int64_t latest_tick_us_ = 0;
};

using StreamHub = BasicStreamHub<WebSocket>;

// ============================================================================
// Implementation: request policy (Host, Origin, request bodies, tokens)
// ============================================================================

// The name in a Host header or an --allowed-host value, lower case, without
// the port or a final dot: "LocalHost.:8080" -> "localhost", "[::1]:80" ->
// "[::1]". Empty when it is no host name (RFC 3986 section 3.2.2).
inline std::string host_name_part(std::string_view host) {
  host = trim_ows(host);
  std::string_view name = host, port;
  if (!host.empty() && host.front() == '[') {
    std::size_t close = host.find(']');
    if (close == std::string_view::npos) return {};
    name = host.substr(0, close + 1);
    port = host.substr(close + 1);
    if (!port.empty() && port.front() != ':') return {};
  } else if (std::size_t colon = host.find(':'); colon != std::string_view::npos) {
    name = host.substr(0, colon);
    port = host.substr(colon);
  }
  if (!port.empty()) port.remove_prefix(1);
  for (char c : port)
    if (c < '0' || c > '9') return {};
  if (name.size() > 1 && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 255) return {};
  const bool bracketed = name.front() == '[';
  std::string out;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = ascii_lower(name[i]);
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                    (bracketed && (c == ':' || ((c == '[' || c == ']') && (i == 0 || i + 1 == name.size()))));
    if (!ok) return {};
    out += c;
  }
  return out;
}

// Which Host values reach the agent, and which cross-origin pages may use it.
// DNS rebinding gives a hostile page the agent's address under the page's own
// name: its requests carry that name in Host, which this refuses.
class RequestPolicy {
 public:
  RequestPolicy(const std::string& listen, const std::vector<std::string>& allowed_hosts, std::string cors_origin)
      : cors_origin_(std::move(cors_origin)) {
    std::string listen_host = listen.substr(0, listen.rfind(':'));
    bool any_address = listen_host.empty() || listen_host == "*" || listen_host == "0.0.0.0" || listen_host == "[::]";
    any_host_ = any_address && allowed_hosts.empty();
    names_ = {"localhost", "127.0.0.1", "[::1]"};
    if (!any_address) names_.push_back(host_name_part(listen_host));
    for (const auto& h : allowed_hosts) {
      if (h == "*") any_host_ = true;
      names_.push_back(host_name_part(h));
    }
  }

  bool host_allowed(std::string_view host) const {
    if (any_host_) return true;
    std::string name = host_name_part(host);
    return !name.empty() && std::find(names_.begin(), names_.end(), name) != names_.end();
  }

  // An Origin equal to the scheme plus the request's own Host: the agent's page.
  static bool same_origin(std::string_view origin, const std::string* host) {
    if (!host) return false;
    for (std::string_view scheme : {"http://", "https://"})
      if (origin.size() == scheme.size() + host->size() && iequals(origin.substr(0, scheme.size()), scheme) &&
          iequals(origin.substr(scheme.size()), *host))
        return true;
    return false;
  }

  // `strict`: "*" does not cover it (a request that changes what others see).
  bool origin_allowed(std::string_view origin, const std::string* host, bool strict) const {
    if (same_origin(origin, host)) return true;
    if (cors_origin_ == "*") return !strict;
    return !cors_origin_.empty() && iequals(origin, cors_origin_);
  }

 private:
  std::string cors_origin_;
  bool any_host_ = false;
  std::vector<std::string> names_;
};

// The one route that changes what others see (SPEC §4): a page from another
// site may never call it, whatever --cors-origin says.
inline constexpr std::string_view kBroadcastPath = "/api/ws/broadcast/alert";

// Every request, upgrades included, before routing. A page from another
// site may read what --cors-origin allows; it may never broadcast, since
// "*" would let any page the user visits alert every dashboard.
inline std::optional<HttpResponse> screen_request(const RequestPolicy& policy, const HttpRequest& req) {
  const std::string* host = req.header("host");
  if (host && !policy.host_allowed(*host))
    return HttpResponse::error(421, "Host '" + host->substr(0, 100) + "'" +
                                        " is not a name of this agent (add it with --allowed-host)");
  const std::string* origin = req.header("origin");
  // A public stream (the flat one, SPEC §5.1) is for any page to read.
  if (origin && !public_stream_path(req.path) &&
      !policy.origin_allowed(*origin, host, req.path == kBroadcastPath))
    return HttpResponse::error(403, "requests from origin '" + origin->substr(0, 100) + "'" +
                                        " are not allowed here (see --cors-origin)");
  return std::nullopt;
}

// The JSON object in a POST body: Content-Type application/json (so a
// cross-site form or text/plain fetch, which skip the CORS preflight, cannot
// send one), UTF-8 text, an object. Empty when fine; else the answer.
inline std::optional<HttpResponse> json_body(const HttpRequest& req, picojson::value& v, std::string_view shape) {
  const std::string* type = req.header("content-type");
  std::string_view media = type ? trim_ows(std::string_view(*type).substr(0, type->find(';'))) : std::string_view();
  if (!iequals(media, "application/json")) {
    HttpResponse r = HttpResponse::error(415, "Content-Type must be application/json");
    r.headers.push_back({"Accept-Post", "application/json"});
    return r;
  }
  if (!valid_utf8(req.body)) return HttpResponse::error(400, "the body is not valid UTF-8");
  std::string err = parse_json(v, req.body);
  if (!err.empty() || !v.is<picojson::object>())
    return HttpResponse::error(400, "expected a JSON object " + std::string(shape));
  return std::nullopt;
}

// The token of a request: ?token= or Authorization: Bearer.
inline std::string request_token(const HttpRequest& req) {
  std::string t = req.param("token");
  if (!t.empty()) return t;
  const std::string* auth = req.header("authorization");
  if (auth && auth->size() > 7 && iequals(std::string_view(*auth).substr(0, 7), "bearer "))
    return std::string(trim_ows(std::string_view(*auth).substr(7)));
  return {};
}

// ============================================================================
// Implementation: authentication (tokens, login, its rate limits)
// ============================================================================

struct LoginAttempts {
  std::int64_t window_start = 0;
  int failures = 0;
};

// The JWT secret and the accounts (SPEC §6): checks tokens and answers
// logins, with a global rate of password checks and a per-address count of
// failures. Off (every request passes, login is 404) without a secret.
class Auth {
 public:
  Auth(std::string secret, const std::vector<std::string>& users, double token_ttl_seconds)
      : secret_(std::move(secret)), token_ttl_seconds_(token_ttl_seconds) {
    for (const auto& u : users) {
      std::size_t c = u.find(':');
      if (c != std::string::npos) users_.emplace_back(u.substr(0, c), u.substr(c + 1));
    }
  }

  bool enabled() const { return !secret_.empty(); }

  // Empty when the request may pass; else why not.
  std::string failure(const HttpRequest& req) const {
    if (secret_.empty()) return {};
    std::string token = request_token(req);
    if (token.empty()) return "authentication required: pass a token in ?token= or Authorization: Bearer";
    auto r = jwt_verify(secret_, token, wall_us() / 1000000);
    if (!r.ok) return "invalid token: " + r.error;
    return {};
  }

  std::size_t tracked_addresses() const { return attempts_.size(); }
  std::uint64_t throttled() const { return login_throttled_; }

  // For tests: clocks to use instead of wall_now_us and mono_now.
  void set_clocks(std::function<std::int64_t()> wall_us, std::function<double()> mono) {
    wall_clock_ = std::move(wall_us);
    mono_clock_ = std::move(mono);
  }

  // Each password check is 100,000 PBKDF2 rounds (tens of milliseconds) on the
  // loop, so checks across all addresses share one token bucket: at most
  // kLoginChecksPerSecond on average, kLoginCheckBurst at once; beyond that 429
  // at once. That bounds the loop's share spent on logins, whatever number of
  // source addresses send them. Failed logins are remembered per address for a
  // minute, for at most kLoginTrackedMax addresses.
  static constexpr double kLoginChecksPerSecond = 4, kLoginCheckBurst = 4;
  static constexpr std::size_t kLoginTrackedMax = 10000;
  static constexpr std::int64_t kLoginWindowSeconds = 60;
  static constexpr int kLoginMaxFailures = 5;

  static HttpResponse too_many_logins(std::string_view why, std::int64_t retry_after) {
    HttpResponse r = HttpResponse::error(429, why);
    r.headers.push_back({"Retry-After", std::to_string(std::max<std::int64_t>(1, retry_after))});
    return r;
  }

  void prune_login_attempts(std::int64_t now) {
    for (auto it = attempts_.begin(); it != attempts_.end();)
      it = now - it->second.window_start >= kLoginWindowSeconds ? attempts_.erase(it) : std::next(it);
    last_login_prune_ = now;
  }

  // How a checked login gets back to the loop thread (Server::post). Without
  // one (unit tests), passwords are checked in place.
  void set_post(std::function<void(std::function<void()>)> post) { post_ = std::move(post); }

  bool take_login_check() {
    double t = mono();
    login_tokens_ = std::min(kLoginCheckBurst, login_tokens_ + (t - login_tokens_at_) * kLoginChecksPerSecond);
    login_tokens_at_ = t;
    if (login_tokens_ < 1) return false;
    login_tokens_ -= 1;
    return true;
  }

  HttpResponse login(const HttpRequest& req) {
    if (secret_.empty()) return HttpResponse::error(404, "authentication is not enabled on this agent");
    // Nothing is remembered about a request until it is a well-formed login.
    picojson::value v;
    if (auto refusal = json_body(req, v, "{\"username\":...,\"password\":...}")) return *refusal;
    const auto& o = v.get<picojson::object>();
    auto u = o.find("username"), p = o.find("password");
    if (u == o.end() || p == o.end() || !u->second.is<std::string>() || !p->second.is<std::string>())
      return HttpResponse::error(400, "username and password must be strings");
    std::int64_t now = wall_us() / 1000000;
    if (now - last_login_prune_ >= kLoginWindowSeconds) prune_login_attempts(now);
    auto known = attempts_.find(req.remote_address);
    if (known != attempts_.end() && now - known->second.window_start >= kLoginWindowSeconds) {
      attempts_.erase(known);
      known = attempts_.end();
    }
    if (known != attempts_.end() && known->second.failures >= kLoginMaxFailures)
      return too_many_logins("too many login attempts; try again later",
                             kLoginWindowSeconds - (now - known->second.window_start));
    if (!take_login_check()) {
      ++login_throttled_;
      return too_many_logins("too many logins on this agent right now; try again in a second", 1);
    }
    const std::string& name = u->second.get<std::string>();
    // An unknown name costs the same PBKDF2 work as a known one, so response
    // times do not reveal which accounts exist.
    const std::string* hash = &dummy_hash_;
    for (const auto& acct : users_)
      if (acct.first == name) hash = &acct.second;
    const bool known_name = hash != &dummy_hash_;
    if (post_) {
      // 100,000 PBKDF2 rounds on the PasswordChecker's thread; the answer
      // comes back to the loop, where the failures are counted.
      Responder answer = req.respond_later();
      checker_.submit(p->second.get<std::string>(), *hash,
                      [this, answer, known_name, name, remote = req.remote_address](bool match) {
                        post_([this, answer, ok = match && known_name, name, remote] {
                          answer.send(login_checked(remote, name, ok));
                        });
                      });
      return HttpResponse();  // the answer is sent by login_checked
    }
    return login_checked(req.remote_address, name,
                         password_verify(p->second.get<std::string>(), *hash) && known_name);
  }

  // The end of a login, on the loop thread once its password is checked.
  HttpResponse login_checked(const std::string& remote, const std::string& name, bool ok) {
    std::int64_t now = wall_us() / 1000000;
    if (!ok) {
      auto known = attempts_.find(remote);
      if (known != attempts_.end() && now - known->second.window_start >= kLoginWindowSeconds) {
        attempts_.erase(known);
        known = attempts_.end();
      }
      if (known == attempts_.end()) {
        if (attempts_.size() >= kLoginTrackedMax) prune_login_attempts(now);
        // Still full: failures from this many addresses within a minute are
        // an attack; new addresses wait until the oldest windows expire.
        if (attempts_.size() >= kLoginTrackedMax)
          return too_many_logins("too many addresses are failing to log in; try again later", kLoginWindowSeconds);
        known = attempts_.emplace(remote, LoginAttempts{now, 0}).first;
      }
      ++known->second.failures;
      return HttpResponse::error(401, "invalid credentials");
    }
    std::int64_t ttl = std::int64_t(token_ttl_seconds_);
    std::string out = "{\"access_token\":" + json_string(jwt_issue(secret_, name, now, ttl)) +
                      ",\"token_type\":\"bearer\",\"expires_in\":" + std::to_string(ttl) + "}";
    return HttpResponse::json(200, out);
  }

 private:
  std::int64_t wall_us() const { return wall_clock_ ? wall_clock_() : wall_now_us(); }
  double mono() const { return mono_clock_ ? mono_clock_() : mono_now(); }

  std::string secret_;
  double token_ttl_seconds_;
  std::vector<std::pair<std::string, std::string>> users_;
  std::unordered_map<std::string, LoginAttempts> attempts_;
  std::int64_t last_login_prune_ = 0;
  double login_tokens_ = kLoginCheckBurst, login_tokens_at_ = 0;
  std::uint64_t login_throttled_ = 0;
  std::string dummy_hash_ = "pbkdf2-sha256$100000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  std::function<std::int64_t()> wall_clock_;
  std::function<double()> mono_clock_;
  std::function<void(std::function<void()>)> post_;
  // Last: destroyed (its thread joined) before anything its jobs use.
  PasswordChecker checker_;
};

// ============================================================================
// Implementation: alert engine (rule state per tick, events)
// ============================================================================

// The alert rules and their state: each tick's snapshot moves every rule
// towards firing or resolving after its hold time, and each change becomes
// one event handed to `publish` (the agent sends it to the alerts stream).
class AlertEngine {
 public:
  using Publish = std::function<void(const std::string& json, std::uint8_t level)>;

  // Rules that do not parse are left out: Agent::validate reports them.
  explicit AlertEngine(const std::vector<std::string>& texts) {
    for (const auto& text : texts) {
      AlertRule r;
      std::string err;
      if (parse_alert_rule(text, r, err)) rules_.push_back(r);
    }
  }

  const std::vector<AlertRule>& rules() const { return rules_; }

  void evaluate(const Snapshot& snap, std::int64_t tick_us, const Publish& publish) {
    std::int64_t hold_us;
    for (auto& r : rules_) {
      double v;
      if (!alert_value(snap, r.metric, v)) continue;
      r.last_value = v;
      hold_us = std::int64_t(r.hold_seconds * 1e6);
      bool holds = alert_holds(r, v);
      if (!r.firing) {
        r.clearing_since = 0;
        if (!holds) {
          r.holding_since = 0;
          continue;
        }
        if (r.holding_since == 0) r.holding_since = tick_us;
        if (tick_us - r.holding_since >= hold_us) {
          r.firing = true;
          r.fired_at = tick_us;
          publish(event_json(r, "firing", tick_us), level_bit(r.level));
        }
      } else {
        r.holding_since = 0;
        if (holds) {
          r.clearing_since = 0;
          continue;
        }
        if (r.clearing_since == 0) r.clearing_since = tick_us;
        if (tick_us - r.clearing_since >= hold_us) {
          r.firing = false;
          publish(event_json(r, "resolved", tick_us), level_bit(r.level));
        }
      }
    }
  }

  // The firing alerts a new client of `levels` sees at once, as events.
  template <class F>
  void each_firing(std::uint8_t levels, F fn) const {
    for (const auto& r : rules_)
      if (r.firing && (levels & level_bit(r.level))) fn(event_json(r, "firing", r.fired_at));
  }

  static std::string event_json(const AlertRule& r, const char* state, std::int64_t at_us) {
    std::string out;
    JsonWriter w(out);
    w.begin_object().key("type").str("alert").key("state").str(state).key("level").str(r.level);
    w.key("metric").str(r.metric).key("value").num(r.last_value).key("threshold").num(r.threshold);
    std::string msg = r.metric + " " + r.op + " ";
    append_number(msg, r.threshold, 2);
    if (r.hold_seconds > 0) msg += " for " + format_duration(r.hold_seconds);
    if (std::string(state) == "resolved") msg += " (resolved)";
    w.key("message").str(msg);
    std::string ts;
    append_timestamp(ts, at_us, TimeFormat::Seconds);
    w.key("timestamp").str(ts).end_object();
    return out;
  }

 private:
  std::vector<AlertRule> rules_;
};

// ============================================================================
// Implementation: REST API (routes of SPEC §4)
// ============================================================================

// What the agent's sampling leaves for the routes to read: the latest
// snapshot, the history and the gauges. Written by the tick, read by the
// routes, both on the loop thread.
struct Sampling {
  Snapshot snap;
  bool have_tick = false;     // a tick has happened
  bool have_initial = false;  // the baseline sample exists
  std::int64_t last_tick_us = 0, started_us = 0;
  double started_mono = 0, collect_seconds = 0;
  History history;
  std::vector<std::pair<std::string, std::function<double()>>> gauge_fns;
  std::vector<std::string> gauge_help;
  std::size_t textfile_gauges = 0;  // the first gauges: --textfile-dir's samples
};

// ============================================================================
// Implementation: node_exporter's further families and the textfile directory,
// read for /metrics (the textfiles' samples also as gauges, at every tick)
// ============================================================================

// ---- the textfile directory, read ---------------------------------------------

// Adds one file's families to the ones before it, or says why it cannot.
inline std::string merge_textfile(std::vector<TextFamily>& parsed, std::vector<TextFamily>& all,
                                  std::unordered_set<std::string>& series) {
  std::vector<std::string> keys;
  for (const TextFamily& f : parsed) {
    for (const TextFamily& g : all)
      if (g.name == f.name && g.type != f.type) return "family " + f.name + " has another type in an earlier file";
    for (const TextSample& s : f.samples) {
      std::string key = s.name + "{" + s.labels;
      if (series.count(key) != 0) return "series " + s.name + " is already in an earlier file";
      keys.push_back(std::move(key));
    }
  }
  for (std::string& k : keys) series.insert(std::move(k));
  for (TextFamily& f : parsed) {
    auto it = std::find_if(all.begin(), all.end(), [&](const TextFamily& g) { return g.name == f.name; });
    if (it == all.end()) {
      all.push_back(std::move(f));
    } else {
      for (TextSample& s : f.samples) it->samples.push_back(std::move(s));
      if (it->help.empty()) it->help = std::move(f.help);
    }
  }
  return {};
}

inline constexpr std::size_t kMaxTextfileBytes = std::size_t(4) << 20;
inline constexpr std::size_t kMaxTextfiles = 1000;
// Read on the loop thread: all files together stay small.
inline constexpr std::size_t kMaxTextfileTotalBytes = std::size_t(16) << 20;

#if defined(METRICS_AGENT_HAS_NODE_READER)
// Every *.prom file of `dir`, in name order, into `t`. A file that cannot be
// read or parsed, or whose families contradict an earlier file's, sets the
// error and is left out; the others are kept. Returns why the last file that
// failed was refused ("" when none failed).
inline std::string read_textfile_dir(const std::string& dir, TextfileScrape& t) {
  t = TextfileScrape{};
  std::string problem;
  std::vector<std::string> names;
  if (!list_files_with_suffix(dir, ".prom", kMaxTextfiles, names)) {
    t.error = true;
    return "cannot list " + dir;
  }
  std::unordered_set<std::string> series;
  std::vector<TextFamily> parsed;
  std::size_t total = 0;
  for (const std::string& n : names) {
    const std::string path = dir + "/" + n;
    std::string text;
    double mtime = 0;
    std::string why = read_regular_file(path, kMaxTextfileBytes, text, mtime);
    total += text.size();
    if (why.empty() && total > kMaxTextfileTotalBytes) why = "the directory's files exceed 16 MiB together";
    parsed.clear();
    if (why.empty()) why = parse_prom_text(text, parsed);
    if (why.empty()) why = merge_textfile(parsed, t.families, series);
    if (!why.empty()) {
      t.error = true;
      problem = path + ": " + why;
      continue;
    }
    t.files.push_back({path, mtime});
  }
  return problem;
}
#endif  // METRICS_AGENT_HAS_NODE_READER

// The textfiles' samples as gauges (streams, history, alert rules). Each
// sample without labels whose name is also an alert rule's metric name
// (letters, digits, '_', no ':') becomes a gauge of that name; labelled
// samples (a name per label set would not be stable to type) stay on
// /metrics only. The set is fixed when the agent is built, as every gauge's
// is; a sample that appears later is on /metrics only until a restart. The
// directory is read at most once per tick, only when --textfile-dir is set,
// with /metrics' limits; a gauge whose sample is missing this tick (its file
// is gone, malformed or contradicts another) reads NaN, and the others keep
// their values.
class TextfileGauges {
 public:
  explicit TextfileGauges(std::string dir) : dir_(std::move(dir)) {}

  // The gauge names of one reading, in family order.
  static std::vector<std::pair<std::string, std::string>> names(const TextfileScrape& t) {
    std::vector<std::pair<std::string, std::string>> out;  // name, help
    for (const TextFamily& f : t.families)
      for (const TextSample& s : f.samples) {
        const bool ok = !s.name.empty() && std::all_of(s.name.begin(), s.name.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        });
        if (s.labels.empty() && ok) out.emplace_back(s.name, f.help);
      }
    return out;
  }
  // The value of the unlabelled sample `name` in `t`; NaN when it is not there.
  static double value_of(const TextfileScrape& t, std::string_view name) {
    for (const TextFamily& f : t.families)
      for (const TextSample& s : f.samples)
        if (s.labels.empty() && s.name == name) return s.value;
    return std::nan("");
  }

  // Reads the directory and keeps the values of `tracked` names.
  void refresh() {
    std::lock_guard<std::mutex> lk(mu_);
#if defined(METRICS_AGENT_HAS_NODE_READER)
    read_textfile_dir(dir_, scrape_);
#endif  // METRICS_AGENT_HAS_NODE_READER
    values_.assign(tracked_.size(), std::nan(""));
    for (std::size_t i = 0; i < tracked_.size(); ++i) values_[i] = value_of(scrape_, tracked_[i]);
  }
  // The names found now (at construction of the agent).
  std::vector<std::pair<std::string, std::string>> discover() {
    std::lock_guard<std::mutex> lk(mu_);
#if defined(METRICS_AGENT_HAS_NODE_READER)
    read_textfile_dir(dir_, scrape_);
#endif  // METRICS_AGENT_HAS_NODE_READER
    return names(scrape_);
  }
  std::size_t track(std::string name) {
    std::lock_guard<std::mutex> lk(mu_);
    tracked_.push_back(std::move(name));
    values_.push_back(value_of(scrape_, tracked_.back()));
    return tracked_.size() - 1;
  }
  double value(std::size_t i) {
    std::lock_guard<std::mutex> lk(mu_);
    return i < values_.size() ? values_[i] : std::nan("");
  }

 private:
  std::mutex mu_;
  std::string dir_;
  TextfileScrape scrape_;
  std::vector<std::string> tracked_;
  std::vector<double> values_;
};

// Reads NodeDetail and the textfile directory when /metrics is scraped, at
// most once per snapshot (the tick): scrapes within one tick share the
// reading. A tick with nobody scraping reads none of it.
class NodeExposition {
 public:

  NodeExposition(const std::string& host_root, std::string textfile_dir)
      : textfile_dir_(std::move(textfile_dir))
#if defined(METRICS_AGENT_HAS_NODE_READER)
        ,
        reader_(root(host_root) + "/proc", root(host_root) + "/sys", root(host_root))
#endif  // METRICS_AGENT_HAS_NODE_READER
  {
    (void)host_root;
  }

  // Brings the readings up to the snapshot taken at `snapshot_us`.
  void refresh(std::int64_t snapshot_us) {
    if (have_ && snapshot_us == read_for_us_) return;
    have_ = true;
    read_for_us_ = snapshot_us;
#if defined(METRICS_AGENT_HAS_NODE_READER)
    reader_.read(detail_);
#endif  // METRICS_AGENT_HAS_NODE_READER
#if defined(METRICS_AGENT_HAS_NODE_READER)
    if (!textfile_dir_.empty()) read_textfiles(textfile_dir_, textfile_);
#endif  // METRICS_AGENT_HAS_NODE_READER
  }

  const NodeDetail* node() const {
#if defined(METRICS_AGENT_HAS_NODE_READER)
    return &detail_;
#else
    return nullptr;
#endif  // METRICS_AGENT_HAS_NODE_READER
  }
  const TextfileScrape* textfile() const { return textfile_dir_.empty() || !have_ ? nullptr : &textfile_; }
  // Why the last textfile that failed was refused ("" when none failed).
  const std::string& textfile_problem() const { return problem_; }
  // The problem, once each time it changes (for the log).
  std::string new_textfile_problem() {
    if (problem_ == logged_problem_) return {};
    logged_problem_ = problem_;
    return problem_;
  }

#if defined(METRICS_AGENT_HAS_NODE_READER)
  void read_textfiles(const std::string& dir, TextfileScrape& t) { problem_ = read_textfile_dir(dir, t); }
#endif  // METRICS_AGENT_HAS_NODE_READER

 private:
  static std::string root(std::string r) {
    while (!r.empty() && r.back() == '/') r.pop_back();
    return r;
  }

  std::string textfile_dir_;
  bool have_ = false;
  std::int64_t read_for_us_ = 0;
  TextfileScrape textfile_;
  std::string problem_, logged_problem_;
#if defined(METRICS_AGENT_HAS_NODE_READER)
  NodeReader reader_;
  NodeDetail detail_;
#endif  // METRICS_AGENT_HAS_NODE_READER
};

// Who may call a route. A route needs a token (when authentication is on)
// unless it says otherwise.
enum class Access : std::uint8_t {
  Token,
  Public,
  TokenOrLoopback,  // without authentication, loopback callers only
};

// The HTTP routes: each handler reads the agent's state through the parts
// it is given and answers; access is checked before the handler runs.
class RestApi {
 public:
  RestApi(const Options& opt, Server& server, const Sampling& sampling, Auth& auth, const AlertEngine& alerts,
          StreamHub& hub)
      : opt_(opt),
        server_(server),
        sampling_(sampling),
        auth_(auth),
        alerts_(alerts),
        hub_(hub),
        node_(opt.host_root, opt.textfile_dir) {}

  void install() {
    route("GET", "/health", &RestApi::health, Access::Public);
    route("GET", "/metrics", &RestApi::prometheus, Access::Public);
    route("GET", "/api/metrics/current", &RestApi::current);
    route("GET", "/api/metrics/*", &RestApi::history);
    route("POST", "/api/auth/login", &RestApi::login, Access::Public);
    route("POST", std::string(kBroadcastPath), &RestApi::broadcast, Access::TokenOrLoopback);
    route("GET", "/", &RestApi::dashboard, Access::Public);
    route("GET", "/fleet", &RestApi::fleet, Access::Public);
  }

#if !defined(METRICS_AGENT_NO_DASHBOARD)
  static std::string dashboard_html();
  static std::string fleet_html();
#endif  // !METRICS_AGENT_NO_DASHBOARD

 private:
  using Handler = HttpResponse (RestApi::*)(const HttpRequest&);

  void route(std::string method, std::string path, Handler handle, Access access = Access::Token) {
    server_.http(std::move(method), std::move(path), [this, handle, access](const HttpRequest& req) {
      if (auto refusal = admit(req, access)) return *refusal;
      return (this->*handle)(req);
    });
  }

  std::optional<HttpResponse> admit(const HttpRequest& req, Access access) const {
    if (access == Access::Public) return std::nullopt;
    if (access == Access::TokenOrLoopback && !auth_.enabled()) {
      bool loopback = req.remote_address.rfind("127.", 0) == 0 || req.remote_address == "::1" ||
                      req.remote_address.rfind("::ffff:127.", 0) == 0;
      if (!loopback) return HttpResponse::error(403, "broadcast is accepted from loopback only when authentication is off");
      return std::nullopt;
    }
    std::string why = auth_.failure(req);
    if (!why.empty()) return HttpResponse::error(401, why);
    return std::nullopt;
  }

  HttpResponse health(const HttpRequest&) {
    const Snapshot& snap = sampling_.snap;
    std::string out;
    JsonWriter w(out);
    w.begin_object().key("status").str("ok").key("version").str(METRICS_AGENT_VERSION);
    if (snap.system.ok) w.key("hostname").str(snap.system.hostname);
    w.key("uptime_seconds").num(mono_now() - sampling_.started_mono, 1);
    w.key("clients").uint(server_.client_count());
    w.key("streams").begin_object();
    for (const auto& s : kStreams) w.key(s.name).uint(server_.websocket_count(s.path));
    w.end_object();
    w.key("auth").boolean(auth_.enabled());
    w.key("tick_seconds").num(opt_.tick_seconds, 3);
    w.key("alerts").begin_object().key("rules").uint(alerts_.rules().size()).key("firing").begin_array();
    for (const auto& r : alerts_.rules()) {
      if (!r.firing) continue;
      std::string since;
      append_timestamp(since, r.fired_at, TimeFormat::Seconds);
      w.begin_object().key("metric").str(r.metric).key("level").str(r.level);
      w.key("value").num(r.last_value).key("threshold").num(r.threshold).key("since").str(since).end_object();
    }
    w.end_array().end_object().end_object();
    return HttpResponse::json(200, out);
  }

  HttpResponse prometheus(const HttpRequest&) {
    auto clients = [this](Stream s) { return server_.websocket_count(stream_spec(s).path); };
    PrometheusSelf self;
    self.clients_flat = clients(Stream::Flat);
    self.clients_rich = clients(Stream::Rich);
    self.clients_dashboard = clients(Stream::Dashboard);
    self.clients_alerts = clients(Stream::Alerts);
    const std::size_t ws = self.clients_flat + self.clients_rich + self.clients_dashboard + self.clients_alerts;
    const std::size_t all = server_.client_count();
    self.http_connections = all > ws ? all - ws : 0;
    const ServerStats stats = server_.stats();
    self.stats = &stats;
    self.collect_seconds = sampling_.collect_seconds;
    self.start_time_seconds = double(sampling_.started_us) / 1e6;
    self.history_points = sampling_.history.size();
    self.auth = auth_.enabled();
    self.login_tracked_addresses = auth_.tracked_addresses();
    self.login_throttled = auth_.throttled();
    HttpResponse r;
    r.content_type = std::string(kPrometheusContentType);
    node_.refresh(sampling_.snap.timestamp_us);
    const std::string problem = node_.new_textfile_problem();
    if (!problem.empty()) server_.log("textfile left out: " + problem);
    append_prometheus(r.body, sampling_.snap, sampling_.gauge_help, self, node_.node(), node_.textfile(),
                      sampling_.textfile_gauges);
    return r;
  }

  HttpResponse current(const HttpRequest&) {
    const Sampling& s = sampling_;
    if (!s.have_tick && !s.have_initial) return HttpResponse::error(503, "no snapshot yet");
    std::string out = "{\"timestamp\":\"";
    if (s.have_tick)
      append_timestamp(out, s.last_tick_us, tick_format(s.last_tick_us));
    else
      append_timestamp(out, s.snap.timestamp_us, TimeFormat::Millis);
    out += "\",\"data\":";
    write_rich_data(out, s.snap, kRichAll);
    out += '}';
    return HttpResponse::json(200, out);
  }

  HttpResponse history(const HttpRequest& req) {
    std::string name = req.path.substr(std::string("/api/metrics/").size());
    const auto& gauges = sampling_.gauge_fns;
    int series = -1;
    const char* unit = "";
    if (const BuiltinMetric* b = builtin_metric(name); b && b->history_series >= 0)
      series = b->history_series, unit = b->history_unit;
    for (std::size_t g = 0; series < 0 && g < gauges.size(); ++g)
      if (gauges[g].first == name) series = int(History::kBuiltin + g), unit = "value";
    if (series < 0) {
      std::string known = builtin_history_names();
      for (const auto& g : gauges) known += ", " + g.first;
      return HttpResponse::error(404, "unknown metric '" + name + "'; known: " + known);
    }
    double seconds = 300;
    if (req.has_param("seconds") &&
        (!parse_double(req.param("seconds"), seconds) || seconds <= 0 || seconds > 31536000))
      return HttpResponse::error(400, "seconds must be a number of seconds between 1 and 31536000");
    seconds = std::min(seconds, opt_.history_seconds);
    std::string out;
    JsonWriter w(out);
    w.begin_object().key("metric").str(name).key("unit").str(unit);
    w.key("seconds").num(seconds, 3).key("points").begin_array();
    std::int64_t since = sampling_.last_tick_us - std::int64_t(seconds * 1e6) + 1;
    sampling_.history.each_since(since, [&](std::int64_t t, const float* v) {
      std::string ts;
      append_timestamp(ts, t, tick_format(t));
      w.begin_object().key("timestamp").str(ts);
      if (series == History::NetSent) {
        w.key("value").num(double(v[History::NetSent]) + double(v[History::NetRecv]));
        w.key("sent").num(v[History::NetSent]).key("recv").num(v[History::NetRecv]);
      } else if (series == History::Load1) {
        w.key("value").num(v[History::Load1]).key("load5").num(v[History::Load5]).key("load15").num(v[History::Load15]);
      } else {
        w.key("value").num(v[series], 6);
      }
      w.end_object();
    });
    w.end_array().end_object();
    return HttpResponse::json(200, out);
  }

  HttpResponse login(const HttpRequest& req) { return auth_.login(req); }

  HttpResponse broadcast(const HttpRequest& req) {
    picojson::value v;
    if (auto refusal = json_body(req, v, "{\"level\":...,\"message\":...}")) return *refusal;
    const auto& o = v.get<picojson::object>();
    auto msg = o.find("message");
    if (msg == o.end() || !msg->second.is<std::string>() || msg->second.get<std::string>().empty())
      return HttpResponse::error(400, "\"message\" must be a non-empty string");
    std::string level = "info";
    auto lv = o.find("level");
    if (lv != o.end()) {
      if (!lv->second.is<std::string>() || !level_bit(lv->second.get<std::string>()))
        return HttpResponse::error(400, "\"level\" must be info, warning or critical");
      level = lv->second.get<std::string>();
    }
    picojson::object event = o;
    event["type"] = picojson::value("alert");
    event["level"] = picojson::value(level);
    if (event.find("state") == event.end()) event["state"] = picojson::value("firing");
    event["source"] = picojson::value("broadcast");
    event["timestamp"] = picojson::value(format_timestamp(wall_now_us(), TimeFormat::Seconds));
    std::size_t n = hub_.publish_alert(picojson::value(event).serialize(), level_bit(level));
    return HttpResponse::json(200, "{\"delivered\":" + std::to_string(n) + "}");
  }

  HttpResponse dashboard(const HttpRequest&) {
#if defined(METRICS_AGENT_NO_DASHBOARD)
    return HttpResponse::error(404, "this agent is built without the dashboard (METRICS_AGENT_NO_DASHBOARD)");
#else
    HttpResponse r;
    r.content_type = "text/html; charset=utf-8";
    r.body = dashboard_html();
    r.headers.push_back({"Cache-Control", "no-cache"});
    return r;
#endif  // METRICS_AGENT_NO_DASHBOARD
  }

  // The fleet page with the --peer list written into it as JSON (names and
  // URLs only; '<' escaped so that no value can end the script element).
  HttpResponse fleet(const HttpRequest&) {
#if defined(METRICS_AGENT_NO_DASHBOARD)
    return HttpResponse::error(404, "this agent is built without the dashboard (METRICS_AGENT_NO_DASHBOARD)");
#else
    std::string peers = "[";
    for (const auto& p : opt_.peers) {
      std::size_t eq = p.find('=');
      if (eq == std::string::npos) continue;
      if (peers.size() > 1) peers += ',';
      peers += "{\"name\":" + json_string(std::string_view(p).substr(0, eq)) +
               ",\"url\":" + json_string(std::string_view(p).substr(eq + 1)) + "}";
    }
    peers += ']';
    std::string safe;
    for (char c : peers) safe += c == '<' ? std::string("\\u003c") : std::string(1, c);
    HttpResponse r;
    r.content_type = "text/html; charset=utf-8";
    r.body = fleet_html();
    const std::string_view slot = "[/*PEERS*/]";
    std::size_t at = r.body.find(slot);
    if (at != std::string::npos) r.body.replace(at, slot.size(), safe);
    r.headers.push_back({"Cache-Control", "no-cache"});
    return r;
#endif  // METRICS_AGENT_NO_DASHBOARD
  }

  const Options& opt_;
  Server& server_;
  const Sampling& sampling_;
  Auth& auth_;
  const AlertEngine& alerts_;
  StreamHub& hub_;
  NodeExposition node_;
};

// ============================================================================
// Implementation: the agent (sampling and the tick; wires the parts above)
// ============================================================================

// Owns the collector, the options and the server, and wires the parts: the
// stream hub, auth, the alert engine and the REST routes. What it does
// itself is sampling: the collector, the slow sampler, the gauges, the tick.
class AgentCore {
 public:
  explicit AgentCore(Options o)
      : opt_(std::move(o)),
        policy_(opt_.listen, opt_.allowed_hosts, opt_.cors_origin),
        server_(server_config(opt_)),
        collector_(std::make_shared<Collector>(opt_.disk_path, host_path(opt_.host_root, "/proc"),
                                               host_path(opt_.host_root, "/sys"), host_path(opt_.host_root, ""))),
        auth_(opt_.jwt_secret, opt_.users, opt_.token_ttl_seconds),
        alerts_(opt_.alerts.empty() ? default_alert_rules() : opt_.alerts),
        hub_(opt_.tick_seconds, opt_.scope == "container"),
        rest_(opt_, server_, sampling_, auth_, alerts_, hub_) {
    for (const auto& spec : kStreams) server_.websocket(spec.path, stream_route(spec));
    rest_.install();
    auth_.set_post([this](std::function<void()> fn) { server_.post(std::move(fn)); });
    if (!opt_.textfile_dir.empty()) adopt_textfile_gauges();
  }

  // The textfiles' samples found now become gauges (see TextfileGauges); a
  // name the alert rules already know (cpu, load1, ...) stays on /metrics.
  // Added before any add_gauge can be, they are the first gauges.
  void adopt_textfile_gauges() {
    textgauges_ = std::make_shared<TextfileGauges>(opt_.textfile_dir);
    for (auto& [name, help] : textgauges_->discover()) {
      if (builtin_alert_metric(name)) continue;
      const std::size_t i = textgauges_->track(name);
      textfile_gauges_.push_back(name);
      ++sampling_.textfile_gauges;
      sampling_.gauge_fns.emplace_back(std::move(name), [tg = textgauges_, i] { return tg->value(i); });
      sampling_.gauge_help.push_back(help.empty() ? "Read from a textfile in " + opt_.textfile_dir + "." : std::move(help));
    }
  }

  // `path` under the host root ("/host" + "/proc"); the root without a
  // trailing slash, so that "/" and "" both mean this system's own.
  static std::string host_path(std::string root, const char* path) {
    while (!root.empty() && root.back() == '/') root.pop_back();
    return root + path;
  }

  Server::Config server_config(const Options& o) {
    Server::Config c;
    c.listen = o.listen;
    c.max_clients = o.max_clients;
    c.max_clients_per_ip = o.max_clients_per_ip;
    c.request_timeout_seconds = o.request_timeout_seconds;
    c.ws_ping_seconds = o.ws_ping_seconds;
    c.max_message_bytes = o.max_message_bytes;
    c.max_backlog_bytes = o.max_backlog_bytes;
    c.fanout_threads = o.fanout_threads;
    c.fanout_io_uring = o.fanout_io_uring;
    c.cors_origin = o.cors_origin;
    c.logger = o.logger;
    c.screen = [this](const HttpRequest& r) { return screen_request(policy_, r); };
    return c;
  }

  Options opt_;
  RequestPolicy policy_;
  Server server_;
  // Shared with the slow sampler's worker, which may outlive this object.
  std::shared_ptr<Collector> collector_;
  std::unique_ptr<SlowSampler> slow_;
  Sampling sampling_;
  Auth auth_;
  AlertEngine alerts_;
  StreamHub hub_;
  RestApi rest_;
  // Orders add_gauge against prepare(): once prepared_ is set, the gauges
  // never change (the history rows are that wide).
  std::mutex setup_mu_;
  bool prepared_ = false;
  std::vector<std::function<void(const Snapshot&)>> snapshot_fns_;
  // --textfile-dir's samples as gauges; null without the option.
  std::shared_ptr<TextfileGauges> textgauges_;
  std::vector<std::string> textfile_gauges_;  // their names, while no add_gauge replaced them

  // Options and alert rules (each rule's metric is built in or a gauge).
  bool validate(std::string* error) const {
    if (!Agent::validate(opt_, error)) return false;
    const auto& gauges = sampling_.gauge_fns;
    for (const auto& r : alerts_.rules()) {
      bool gauge = std::any_of(gauges.begin(), gauges.end(), [&](const auto& g) { return g.first == r.metric; });
      if (!builtin_alert_metric(r.metric) && !gauge) {
        if (error)
          *error = "--alert: alert rule '" + r.text + "': unknown metric '" + r.metric + "' (" +
                   builtin_alert_names() + ", or an application gauge)";
        return false;
      }
    }
    return true;
  }

  bool add_gauge(std::string name, std::string help, std::function<double()> read, std::string* error) {
    std::lock_guard<std::mutex> lk(setup_mu_);
    if (prepared_) {
      if (error) *error = "add_gauge('" + name + "'): gauges are added before listen()/start()/run()";
      return false;
    }
    // A gauge added by name takes the place of a textfile's sample of that name.
    auto tf = std::find(textfile_gauges_.begin(), textfile_gauges_.end(), name);
    if (tf != textfile_gauges_.end()) {
      textfile_gauges_.erase(tf);
      --sampling_.textfile_gauges;
      auto& fns = sampling_.gauge_fns;
      for (std::size_t g = 0; g < fns.size(); ++g)
        if (fns[g].first == name) {
          fns.erase(fns.begin() + std::ptrdiff_t(g));
          sampling_.gauge_help.erase(sampling_.gauge_help.begin() + std::ptrdiff_t(g));
          break;
        }
    }
    sampling_.gauge_fns.emplace_back(std::move(name), std::move(read));
    sampling_.gauge_help.push_back(std::move(help));
    return true;
  }

  bool on_snapshot(std::function<void(const Snapshot&)> fn, std::string* error) {
    std::lock_guard<std::mutex> lk(setup_mu_);
    if (prepared_) {
      if (error) *error = "on_snapshot: observers are added before listen()/start()/run()";
      return false;
    }
    snapshot_fns_.push_back(std::move(fn));
    return true;
  }

  // Validates, then fixes the shape (history width, gauges) and starts the
  // sampler and the tick, once. A failed validation leaves the agent as it
  // was: a missing gauge can still be added and listen() tried again.
  bool prepare(std::string* error) {
    std::lock_guard<std::mutex> lk(setup_mu_);
    if (prepared_) return true;
    if (!validate(error)) return false;
    prepared_ = true;
    sampling_.history.reset(std::size_t(std::ceil(opt_.history_seconds / opt_.tick_seconds)),
                            sampling_.gauge_fns.size());
    sampling_.started_us = wall_now_us();
    sampling_.started_mono = mono_now();
    slow_ = std::make_unique<SlowSampler>(
        [collector = collector_](Collector::SlowPart& p) { collector->sample_slow(p); });
    slow_->kick();
    slow_->wait_first(1.0);
    // The first tick's CPU share must cover a real interval (/proc/stat counts
    // in 10 ms steps): when the next boundary is very close, let it pass.
    const std::int64_t tick_us = std::int64_t(std::llround(opt_.tick_seconds * 1e6));
    std::int64_t now = wall_now_us(), next = (now / tick_us + 1) * tick_us;
    if (next - now < tick_us / 4) std::this_thread::sleep_for(std::chrono::microseconds(next - now + 1000));
    // The baseline, also served by /api/metrics/current until the first tick
    // (its CPU shares are the averages since boot).
    sample(sampling_.snap);
    sampling_.have_initial = true;
    server_.every(opt_.tick_seconds, [this](std::int64_t t) { on_tick(t); });
    if (opt_.heartbeat_seconds > 0) server_.every(opt_.heartbeat_seconds, [this](std::int64_t t) { hub_.heartbeat(t); });
    if (!opt_.jwt_secret.empty() && opt_.listen.rfind("127.", 0) != 0 && opt_.listen.rfind("[::1]", 0) != 0 &&
        opt_.listen.rfind("localhost", 0) != 0)
      server_.log("warning: authentication is on and " + opt_.listen +
                  " is not a loopback address: tokens and passwords cross the network in clear text "
                  "unless a TLS proxy fronts the agent");
    return true;
  }

  // ---- the tick ------------------------------------------------------------

  void sample(Snapshot& s) {
    const auto& gauges = sampling_.gauge_fns;
    collector_->sample_fast(s, mono_now());
    if (slow_) slow_->merge_into(s, mono_now(), std::max(3.0, 3 * opt_.tick_seconds));
    s.timestamp_us = wall_now_us();
    if (textgauges_ && !textfile_gauges_.empty()) textgauges_->refresh();
    s.custom.resize(gauges.size());
    for (std::size_t i = 0; i < gauges.size(); ++i) {
      s.custom[i].name = gauges[i].first;
      double v = std::nan("");
      try {
        v = gauges[i].second();
      } catch (...) {
      }
      s.custom[i].value = v;
    }
  }

  // SPEC §2: collect once, keep it, judge the alert rules, then one frame per
  // distinct output to every client due on this tick.
  void on_tick(std::int64_t tick_us) {
    Sampling& s = sampling_;
    double t0 = mono_now();
    sample(s.snap);
    if (slow_) slow_->kick();
    s.have_tick = true;
    s.last_tick_us = tick_us;
    s.history.push(s.snap, tick_us);
    alerts_.evaluate(s.snap, tick_us, [this](const std::string& json, std::uint8_t level) { hub_.publish_alert(json, level); });
    hub_.fan_out(s.snap, tick_us);
    s.collect_seconds = mono_now() - t0;
    for (auto& fn : snapshot_fns_) notify(fn, s.snap);
  }

  // An embedder's observer that throws is logged; the tick goes on.
  void notify(const std::function<void(const Snapshot&)>& fn, const Snapshot& snap) {
    try {
      fn(snap);
    } catch (const std::exception& e) {
      server_.log(std::string("on_snapshot callback failed: ") + e.what());
    } catch (...) {
      server_.log("on_snapshot callback failed");
    }
  }

  // ---- stream routes -------------------------------------------------------

  WebSocketRoute stream_route(const StreamSpec& spec) {
    const Stream kind = spec.kind;
    WebSocketRoute r;
    r.keep_request = false;  // read in open_stream() only
    r.on_open = [this, kind](WebSocket& ws) { open_stream(ws, kind); };
    r.on_close = [this](WebSocket& ws, std::uint16_t) { hub_.close(ws); };
    if (kind == Stream::Rich || kind == Stream::Dashboard)
      r.on_message = [this](WebSocket& ws, std::string_view m, bool b) { hub_.control(ws, m, b); };
    else if (kind == Stream::Alerts)
      r.on_message = [this](WebSocket& ws, std::string_view m, bool b) { hub_.alerts_control(ws, m, b); };
    return r;
  }

  void open_stream(WebSocket& ws, Stream kind) {
    if (stream_spec(kind).needs_token) {
      std::string why = auth_.failure(ws.request());
      if (!why.empty()) {
        ws.close(4001, why);
        return;
      }
    }
    const std::uint8_t levels = hub_.open(ws, kind).levels;
    if (kind == Stream::Alerts) {
      const WireFormat format = hub_.format_of(ws);
      alerts_.each_firing(levels, [&ws, format](const std::string& json) { send_message(ws, json, format); });
    }
  }
};

}  // namespace detail

// ============================================================================
// Implementation: public agent API
// ============================================================================

METRICS_AGENT_API_INLINE std::string format_duration(double seconds) { return detail::format_duration(seconds); }

METRICS_AGENT_API_INLINE bool valid_host(std::string_view host) { return !detail::host_name_part(host).empty(); }

METRICS_AGENT_API_INLINE bool valid_peer(std::string_view peer) {
  const std::size_t eq = peer.find('=');
  if (eq == 0 || eq == std::string_view::npos || eq > 64) return false;
  for (char c : peer.substr(0, eq))
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  std::string_view url = peer.substr(eq + 1);
  for (std::string_view scheme : {"http://", "https://"}) {
    if (url.substr(0, scheme.size()) != scheme) continue;
    std::string_view rest = url.substr(scheme.size());
    if (rest.find_first_of("?#\"'<> \\") != std::string_view::npos) return false;
    return valid_host(rest.substr(0, rest.find('/')));
  }
  return false;
}

METRICS_AGENT_API_INLINE std::string hash_password(std::string_view password) { return detail::password_hash(password); }

METRICS_AGENT_API_INLINE bool parse_alert_rule(std::string_view text, std::string* error) {
  detail::AlertRule rule;
  std::string why;
  if (detail::parse_alert_rule(text, rule, why)) return true;
  if (error) *error = std::move(why);
  return false;
}

METRICS_AGENT_API_INLINE Agent::Agent(Options options) : core_(new detail::AgentCore(std::move(options))) {}

METRICS_AGENT_API_INLINE Agent::~Agent() {
  stop();
  join();
}

METRICS_AGENT_API_INLINE bool Agent::validate(const Options& o, std::string* error) {
  auto fail = [&](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  std::string why;
  if (!detail::net::valid_listen_address(o.listen, why)) return fail("--listen: " + why);
  if (!(o.tick_seconds >= 0.1 && o.tick_seconds <= 60)) return fail("--tick must be between 0.1 and 60 seconds");
  if (o.disk_path.empty()) return fail("--disk must name a path");
  if (o.scope != "host" && o.scope != "container") return fail("--scope must be host or container, got '" + o.scope + "'");
  if (!o.host_root.empty() && !detail::is_directory((o.host_root + "/proc").c_str()))
    return fail("--host-root: '" + o.host_root + "/proc' is not a directory (mount the host's / there)");
  if (!(o.history_seconds >= 0 && o.history_seconds <= 7 * 86400))
    return fail("--history must be between 0 and 604800 seconds");
  if (o.max_clients < 1 || o.max_clients > 1000000) return fail("--max-clients must be between 1 and 1000000");
  if (o.max_clients_per_ip < 1 || o.max_clients_per_ip > 1000000)
    return fail("--max-clients-per-ip must be between 1 and 1000000");
  if (!(o.heartbeat_seconds >= 0 && o.heartbeat_seconds <= 3600))
    return fail("--heartbeat must be between 0 (off) and 3600 seconds");
  if (!(o.ws_ping_seconds >= 0 && o.ws_ping_seconds <= 3600))
    return fail("--ws-ping must be between 0 (off) and 3600 seconds");
  if (!(o.request_timeout_seconds >= 0.1 && o.request_timeout_seconds <= 3600))
    return fail("--request-timeout must be between 0.1 and 3600 seconds");
  if (o.max_backlog_bytes < 1024 || o.max_backlog_bytes > (std::size_t(1) << 30))
    return fail("--max-backlog must be between 1024 and 1073741824 bytes");
  if (o.fanout_threads > 64) return fail("--fanout-threads must be between 0 (automatic) and 64");
  if (o.max_message_bytes < 1 || o.max_message_bytes > (std::size_t(16) << 20))
    return fail("--max-message must be between 1 and 16777216 bytes");
  if (!(o.token_ttl_seconds >= 1 && o.token_ttl_seconds <= 366 * 86400.0))
    return fail("token_ttl_seconds must be between 1 and 31622400");
  for (const auto& u : o.users) {
    std::size_t c = u.find(':');
    if (c == std::string::npos || c == 0 || u.compare(c + 1, 14, "pbkdf2-sha256$") != 0)
      return fail("--user must be NAME:HASH with HASH from `metrics-agent hash-password`, got '" + u.substr(0, c) + ":...'");
  }
  if (!o.users.empty() && o.jwt_secret.empty())
    return fail("--user needs --jwt-secret-file (or METRICS_AGENT_JWT_SECRET) to issue tokens");
  for (const auto& a : o.alerts) {
    detail::AlertRule r;
    if (!detail::parse_alert_rule(a, r, why)) return fail("--alert: " + why);
  }
  for (const auto& h : o.allowed_hosts)
    if (h != "*" && detail::host_name_part(h).empty())
      return fail("--allowed-host must be a host name or address such as dash.example.org or [fd00::1], got '" +
                  h + "'");
  return true;
}

METRICS_AGENT_API_INLINE bool Agent::validate(std::string* error) const { return core_->validate(error); }

METRICS_AGENT_API_INLINE bool Agent::add_gauge(std::string name, std::string help, std::function<double()> read, std::string* error) {
  return core_->add_gauge(std::move(name), std::move(help), std::move(read), error);
}

METRICS_AGENT_API_INLINE Server& Agent::server() { return core_->server_; }

METRICS_AGENT_API_INLINE bool Agent::listen(std::string* error) {
  return core_->prepare(error) && core_->server_.listen(error);
}

METRICS_AGENT_API_INLINE int Agent::run() {
  std::string err;
  if (!listen(&err)) {
    core_->server_.log(err);
    return 1;
  }
  core_->server_.run();
  return 0;
}

METRICS_AGENT_API_INLINE bool Agent::start(std::string* error) {
  if (thread_.joinable()) return true;
  std::string err;
  if (!listen(&err)) {
    if (error)
      *error = err;
    else
      core_->server_.log(err);
    return false;
  }
  thread_ = std::thread([this] { run(); });
  return true;
}

METRICS_AGENT_API_INLINE void Agent::stop() { core_->server_.stop(); }

METRICS_AGENT_API_INLINE void Agent::join() {
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

METRICS_AGENT_API_INLINE int Agent::port() const { return core_->server_.port(); }

METRICS_AGENT_API_INLINE bool Agent::on_snapshot(std::function<void(const Snapshot&)> fn, std::string* error) {
  return core_->on_snapshot(std::move(fn), error);
}

METRICS_AGENT_API_INLINE std::string Agent::collect_once_json(double interval_seconds) {
  Snapshot* s = &core_->sampling_.snap;
  std::this_thread::sleep_for(std::chrono::duration<double>(interval_seconds));
  core_->sample(*s);  // the fast part and the gauges
  detail::Collector::SlowPart slow;
  core_->collector_->sample_slow(slow);
  detail::Collector::merge(slow, *s);
  std::string out = "{\"timestamp\":\"";
  detail::append_timestamp(out, s->timestamp_us, detail::TimeFormat::Seconds);
  out += "\",\"data\":";
  detail::write_rich_data(out, *s, detail::kRichAll);
  out += '}';
  return out;
}

}  // namespace metrics_agent

// ============================================================================
// Dashboard (SPEC §7): one self-contained page, no external resources
//   Authored as dashboard/index.html; scripts/gen_dashboard.py writes it
//   here. Edit the page there, not below.
// ============================================================================

#if !defined(METRICS_AGENT_NO_DASHBOARD)

namespace metrics_agent {
namespace detail {

inline std::string RestApi::dashboard_html() {
  return R"DASHBOARD(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="color-scheme" content="dark light">
<link rel="icon" href="data:,">
<title>metrics-agent</title>
<!--
  metrics-agent dashboard: one self-contained page, no external resources.
  Uses /health, /api/metrics/{cpu,memory,network}, /api/auth/login, /api/ws/ws, /api/ws/ws/alerts.
  Stable DOM hooks for tests:
    body[data-updates]   metrics messages received      body[data-history]  points in the last history fetch
    body[data-state]     connecting|live|reconnecting|offline|login
    #conn-status         "live" while streaming; else "connecting", "reconnecting in Ns", "offline" + retry, "sign-in required"
    #last-update         time of the last message (datetime attribute: ISO UTC)
    #hostname #uptime #version
    #cpu-value #mem-value #disk-value #net-value #load-value  tile values (#cpu-sub etc.: the line below)
    #tile-ccpu #tile-cmem (#ccpu-value #cmem-value)  the agent's cgroup against its limits; hidden without one
    .tile.custom[data-gauge=NAME] .t-value                    application gauges (data.custom)
    #cpu-chart #mem-chart #net-chart #io-chart  canvases, data-points = points in view
    #cores-chart[data-cores]  #disk-list > .part[data-mount]  #net-ifs > .if[data-iface]
    #alerts-list > li.alert[data-state=firing|resolved|event][data-level]  newest first;  #alerts-count
    #login #login-form #login-user #login-pass #login-error
-->
<script>
{let p='auto';try{p=localStorage.getItem('metrics-agent.theme')||p}catch(e){}
document.documentElement.dataset.theme=p==='auto'?(matchMedia('(prefers-color-scheme: light)').matches?'light':'dark'):p}
</script>
<style>
:root{--bg:#0d1117;--panel:#151b23;--border:#252d3a;--text:#e6edf3;--muted:#8b96a8;--grid:#222a36;--track:#232b38;--cpu:#4c9aff;--mem:#a78bfa;
--rx:#2dd4a4;--tx:#f5a623;--read:#38bdf8;--write:#f472b6;--ok:#2fbf71;--warn:#f5a524;--crit:#f25555;--warn-bg:#f5a5241a;--crit-bg:#f255551f;--shadow:none}
:root[data-theme=light]{--bg:#f3f5f8;--panel:#fff;--border:#dde2ea;--text:#16202c;--muted:#5c6779;--grid:#e8ecf1;--track:#e6eaf0;--cpu:#1f6feb;--mem:#7c3aed;
--rx:#0a9b72;--tx:#d77a00;--read:#0284c7;--write:#db2777;--ok:#1a9a55;--warn:#c27c00;--crit:#d92d20;--warn-bg:#c27c0017;--crit-bg:#d92d2014;--shadow:0 1px 2px #1018280d}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;background:var(--bg);color:var(--text);font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Ubuntu,"Noto Sans",Arial,sans-serif;font-variant-numeric:tabular-nums}
.ell{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.mut{color:var(--muted)}
[data-level=warning],[data-level=warn]{--lv:var(--warn);--lv-bg:var(--warn-bg);--on-lv:#1b1300}
[data-level=critical],[data-level=crit]{--lv:var(--crit);--lv-bg:var(--crit-bg);--on-lv:#fff}
[data-level=info]{--lv:var(--cpu);--lv-bg:transparent;--on-lv:#fff}
header{display:flex;align-items:center;gap:14px;height:58px;padding:0 20px;background:var(--panel);border-bottom:1px solid var(--border);position:sticky;top:0;z-index:5}
.brand{color:var(--cpu);display:flex}
.host{font-size:17px;font-weight:650;max-width:42vw;line-height:22px}
.meta{font-size:12.5px;white-space:nowrap}
.spacer{flex:1}
#notice{color:var(--warn);font-size:12.5px;max-width:30vw}
.pill{display:inline-flex;align-items:center;justify-content:center;gap:8px;min-width:14em;height:28px;padding:0 12px;border:1px solid var(--border);border-radius:99px;font-size:13px;font-weight:550;white-space:nowrap}
.dot{width:9px;height:9px;border-radius:50%;background:var(--muted);flex:none}
[data-state=live] .pill .dot,[data-on="1"] .dot{background:var(--ok);box-shadow:0 0 0 3px #2fbf7138}
[data-state=reconnecting] .pill .dot,[data-state=connecting] .pill .dot{background:var(--warn)}
[data-state=offline] .pill{color:var(--crit)}[data-state=offline] .pill .dot{background:var(--crit)}
#last-update{display:inline-block;min-width:5.2em}
#last-update.stale{color:var(--warn)}
.btn{font:inherit;font-size:12.5px;color:var(--muted);background:none;border:1px solid var(--border);border-radius:7px;height:28px;padding:0 10px;cursor:pointer}
.btn:hover{color:var(--text)}
main{padding:14px 20px 20px;max-width:1900px;margin:0 auto}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin-bottom:12px}
.tile,.card{background:var(--panel);border:1px solid var(--border);border-radius:10px;box-shadow:var(--shadow);min-width:0}
.tile{position:relative;height:104px;padding:11px 14px;overflow:hidden}
.t-label,h2{font-size:11.5px;font-weight:600;letter-spacing:.07em;text-transform:uppercase;color:var(--muted)}
.t-label{height:17px}
.custom .t-label{text-transform:none;letter-spacing:.02em;font-size:12.5px}
.t-value{font-size:30px;font-weight:620;line-height:40px;height:40px;white-space:nowrap}
.t-value.two{font-size:17px;line-height:20px;display:flex;flex-direction:column}
.two b{display:inline-block;width:1.1em}
.rx{color:var(--rx)}.tx{color:var(--tx)}
.t-sub{font-size:12px;height:18px}
.meter{position:absolute;left:0;right:0;bottom:0;height:4px;background:var(--track)}
.meter i,.bar i{display:block;height:100%;width:0;background:var(--lv,var(--cpu));transition:width .5s}
#tile-mem:not([data-level^=c]):not([data-level^=w]) .meter i{background:var(--mem)}
.tile[data-alert=warning],.tile[data-alert=critical]{border-color:var(--al);background:linear-gradient(var(--al-bg),var(--al-bg)),var(--panel)}
.tile[data-alert=warning]{--al:var(--warn);--al-bg:var(--warn-bg)}.tile[data-alert=critical]{--al:var(--crit);--al-bg:var(--crit-bg)}
.na .t-value{color:var(--muted)}
.card.na .extra,.card.na .legend b,.card.na #disk-list{opacity:.4}
body:not([data-state=live]) :is(.t-value,.legend b){opacity:.5}
.grid{display:grid;gap:12px;grid-template-columns:repeat(3,minmax(0,1fr));grid-template-areas:"cpu cpu alerts" "mem net disk"}
#card-cpu{grid-area:cpu}#card-alerts{grid-area:alerts}#card-mem{grid-area:mem}#card-net{grid-area:net}#card-disk{grid-area:disk}
@media (max-width:1150px){.grid{grid-template-columns:repeat(2,minmax(0,1fr));grid-template-areas:"cpu cpu" "mem net" "disk alerts"}}
@media (max-width:720px){.grid{grid-template-columns:minmax(0,1fr);grid-template-areas:"cpu" "alerts" "mem" "net" "disk"}
header{height:auto;flex-wrap:wrap;padding:8px 14px;gap:8px}.spacer{flex-basis:100%}main{padding:12px}#card-alerts{height:300px}.upd{display:none}}
.card{padding:12px 14px 14px;display:flex;flex-direction:column}
h2{margin:0 0 8px;height:20px;display:flex;align-items:center;gap:10px;white-space:nowrap}
.legend,.astream{margin-left:auto;display:flex;align-items:center;gap:14px;font-size:12.5px;font-weight:500;letter-spacing:0;text-transform:none;color:var(--text);overflow:hidden}
.sw{display:inline-block;width:10px;height:10px;border-radius:3px;margin-right:6px;vertical-align:-1px}
.chart{position:relative;height:150px}
#card-cpu .chart{height:196px}
.chart.small{height:auto;flex:1;min-height:80px}
canvas{position:absolute;left:0;top:0;width:100%;height:100%}
.cores{position:relative;height:54px;margin-top:10px}
.tip{position:absolute;top:6px;pointer-events:none;background:var(--panel);border:1px solid var(--border);border-radius:7px;padding:6px 9px;font-size:12px;line-height:1.5;white-space:nowrap;box-shadow:0 4px 14px #0004}
.extra{height:74px;margin-top:10px;font-size:12.5px;color:var(--muted);overflow:hidden}
.stack{display:flex;height:10px;border-radius:5px;overflow:hidden;background:var(--track);margin:4px 0 8px}
.stack i{background:var(--mem)}
.kv{display:grid;grid-template-columns:1fr 1fr;gap:2px 16px}
.kv div{display:flex;justify-content:space-between;white-space:nowrap}
.kv b,.if .n{font-weight:550;color:var(--text)}
.ifs{overflow-y:auto}
.if{display:grid;grid-template-columns:minmax(0,1fr) 8.5em 8.5em;gap:8px;height:24px;align-items:center;border-bottom:1px solid var(--grid);text-align:right}
.if .n{text-align:left}.if .bad{color:var(--warn)}
#disk-list{height:118px;overflow-y:auto;margin-bottom:8px}
.part{height:36px;padding-top:2px}
.part .l{display:flex;gap:8px;align-items:baseline;font-size:12.5px;white-space:nowrap}
.part .m{font-weight:600;max-width:45%}
.part .d{flex:1}
.part .p{font-weight:600;min-width:3.6em;text-align:right;color:var(--lv)}
.bar{height:6px;border-radius:3px;background:var(--track);margin-top:4px;overflow:hidden}
.part:not([data-level^=c]):not([data-level^=w]) .bar i{background:var(--read)}
#alerts-count{padding:1px 8px;border-radius:99px;letter-spacing:0;text-transform:none;background:var(--lv);color:var(--on-lv)}
#alerts-count:empty{display:none}
.astream{gap:6px;font-size:11.5px}
.astream .dot{width:7px;height:7px}
#alerts-list{list-style:none;margin:0;padding:0;flex:1 1 0;min-height:0;overflow-y:auto}
#alerts-list li{border-left:3px solid var(--border);padding:7px 10px;margin-bottom:6px;border-radius:4px;background:var(--bg)}
#alerts-list .empty{border:0;background:none;color:var(--muted);text-align:center;padding-top:40px}
.a-top{display:flex;align-items:center;gap:8px}
.badge{font-size:10.5px;font-weight:700;letter-spacing:.05em;text-transform:uppercase;padding:1px 6px;border-radius:4px;background:var(--track);color:var(--muted)}
.a-msg{flex:1;font-weight:550}
.a-time,.a-det{color:var(--muted);font-size:12px}
li.alert:not([data-state=resolved]){border-color:var(--lv);background:var(--lv-bg)}
li.alert:not([data-state=resolved]) .badge{background:var(--lv);color:var(--on-lv)}
li.alert[data-state=resolved]{opacity:.55}
[data-state=resolved] .a-msg{font-weight:400}
.overlay{position:fixed;inset:0;display:flex;align-items:center;justify-content:center;background:#05080c8c;backdrop-filter:blur(3px);z-index:10}
.login{width:320px;background:var(--panel);border:1px solid var(--border);border-radius:12px;padding:22px;box-shadow:0 10px 40px #0006}
.login h1{font-size:18px;margin:0 0 4px}
.login p{margin:0 0 14px;font-size:13px}
.login label{display:block;font-size:12.5px;color:var(--muted);margin-bottom:10px}
.login input{display:block;width:100%;margin-top:4px;font:inherit;color:var(--text);background:var(--bg);border:1px solid var(--border);border-radius:7px;padding:8px 10px}
.login input:focus{outline:2px solid var(--cpu);outline-offset:-1px}
.login button{width:100%;font:inherit;font-weight:600;color:#fff;background:var(--cpu);border:0;border-radius:7px;padding:9px;cursor:pointer}
.login button:disabled{opacity:.6}
#login-error{min-height:20px;color:var(--crit);font-size:12.5px;margin-bottom:6px}
</style>
</head>
<body data-updates="0" data-state="connecting" data-history="0">
<header>
  <div class="brand"><svg viewBox="0 0 24 24" width="24" height="24" aria-hidden="true"><path d="M2 13h4l2.5-7 4.5 13 3-9 1.5 3H22" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" stroke-linejoin="round"/></svg></div>
  <div>
    <div class="host ell" id="hostname">&ndash;</div>
    <div class="meta mut"><span id="uptime">up &ndash;</span> &middot; <span id="version">metrics-agent</span></div>
  </div>
  <div class="spacer"></div>
  <div class="ell" id="notice" hidden></div>
  <div class="pill" title="Live stream from the agent"><span class="dot"></span><span id="conn-status">connecting&hellip;</span></div>
  <div class="meta mut upd">updated <time id="last-update">&ndash;</time></div>
  <button class="btn" id="theme" type="button" title="Colours: follow the system, dark or light">auto</button>
  <button class="btn" id="logout" type="button" hidden>Sign out</button>
</header>
<main>
  <section class="tiles" id="tiles">
    <div class="tile" id="tile-cpu"><div class="t-label ell">CPU</div><div class="t-value" id="cpu-value">&ndash;</div><div class="t-sub ell mut" id="cpu-sub">&nbsp;</div><div class="meter"><i id="cpu-meter"></i></div></div>
    <div class="tile" id="tile-mem"><div class="t-label ell">Memory</div><div class="t-value" id="mem-value">&ndash;</div><div class="t-sub ell mut" id="mem-sub">&nbsp;</div><div class="meter"><i id="mem-meter"></i></div></div>
    <div class="tile" id="tile-disk"><div class="t-label ell" id="disk-label">Disk</div><div class="t-value" id="disk-value">&ndash;</div><div class="t-sub ell mut" id="disk-sub">&nbsp;</div><div class="meter"><i id="disk-meter"></i></div></div>
    <div class="tile" id="tile-net"><div class="t-label ell">Network</div><div class="t-value two" id="net-value"><span class="rx"><b>&darr;</b><span id="net-rx">&ndash;</span></span> <span class="tx"><b>&uarr;</b><span id="net-tx">&ndash;</span></span></div><div class="t-sub ell mut" id="net-sub">&nbsp;</div></div>
    <div class="tile" id="tile-load"><div class="t-label ell">Load average</div><div class="t-value" id="load-value">&ndash;</div><div class="t-sub ell mut" id="load-sub">&nbsp;</div><div class="meter"><i id="load-meter"></i></div></div>
    <div class="tile" id="tile-ccpu" hidden><div class="t-label ell">Container CPU</div><div class="t-value" id="ccpu-value">&ndash;</div><div class="t-sub ell mut" id="ccpu-sub">&nbsp;</div><div class="meter"><i id="ccpu-meter"></i></div></div>
    <div class="tile" id="tile-cmem" hidden><div class="t-label ell">Container memory</div><div class="t-value" id="cmem-value">&ndash;</div><div class="t-sub ell mut" id="cmem-sub">&nbsp;</div><div class="meter"><i id="cmem-meter"></i></div></div>
  </section>
  <section class="grid">
    <article class="card" id="card-cpu">
      <h2>CPU <span class="legend"><span><i class="sw" style="background:var(--cpu)"></i>total <b id="cpu-leg-total">&ndash;</b></span><span id="cpu-leg-info"></span></span></h2>
      <div class="chart"><canvas id="cpu-chart" data-points="0"></canvas></div>
      <div class="cores"><canvas id="cores-chart" data-cores="0"></canvas></div>
    </article>
    <article class="card" id="card-alerts">
      <h2>Alerts <span id="alerts-count"></span><span class="astream" id="alerts-stream" title="Alerts stream"><span class="dot"></span><span id="alerts-stream-text">connecting</span></span></h2>
      <ol id="alerts-list"></ol>
    </article>
    <article class="card" id="card-mem">
      <h2>Memory <span class="legend"><span><i class="sw" style="background:var(--mem)"></i>used <b id="mem-leg">&ndash;</b></span></span></h2>
      <div class="chart"><canvas id="mem-chart" data-points="0"></canvas></div>
      <div class="extra">
        <div class="stack" id="mem-stack"><i></i><i style="opacity:.4"></i></div>
        <div class="kv">
          <div>used <b id="mem-used">&ndash;</b></div><div>available <b id="mem-avail">&ndash;</b></div>
          <div>cache + buffers <b id="mem-cache">&ndash;</b></div><div>swap <b id="mem-swap">&ndash;</b></div>
        </div>
      </div>
    </article>
    <article class="card" id="card-net">
      <h2>Network <span class="legend"><span><i class="sw" style="background:var(--rx)"></i>in <b id="net-leg-rx">&ndash;</b></span><span><i class="sw" style="background:var(--tx)"></i>out <b id="net-leg-tx">&ndash;</b></span></span></h2>
      <div class="chart"><canvas id="net-chart" data-points="0"></canvas></div>
      <div class="extra ifs" id="net-ifs"></div>
    </article>
    <article class="card" id="card-disk">
      <h2>Disk <span class="legend"><span><i class="sw" style="background:var(--read)"></i>read <b id="io-leg-r">&ndash;</b></span><span><i class="sw" style="background:var(--write)"></i>write <b id="io-leg-w">&ndash;</b></span></span></h2>
      <div id="disk-list"></div>
      <div class="chart small"><canvas id="io-chart" data-points="0"></canvas></div>
    </article>
  </section>
</main>
<div class="overlay" id="login" hidden>
  <form class="login" id="login-form">
    <h1>Sign in</h1>
    <p class="mut">This agent requires authentication.</p>
    <label>User name<input id="login-user" name="username" autocomplete="username" required></label>
    <label>Password<input id="login-pass" name="password" type="password" autocomplete="current-password" required></label>
    <div id="login-error" role="alert"></div>
    <button id="login-submit" type="submit">Sign in</button>
  </form>
</div>
<noscript><p>This dashboard needs JavaScript.</p></noscript>
<script>
'use strict';
{
const $ = id => document.getElementById(id);
const WIN = 600e3, KEEP = WIN + 120e3, STALL = 15e3, TK = 'metrics-agent.token';
const S = { cpu: [], mem: [], net: [], io: [] };
let skew = 0, updates = 0, lastMsgAt = 0, gapEst = 1000, cores = [], everLive = false, authOn = false, host = '', token = '';
const store = (k, v) => { try { if (v == null) sessionStorage.removeItem(k); else sessionStorage.setItem(k, v); } catch (e) { /* storage off */ } };
try { token = sessionStorage.getItem(TK) || ''; if (+sessionStorage.getItem(TK + '.exp') < Date.now()) token = ''; } catch (e) { /* storage off */ }
const nowS = () => Date.now() + skew;

/* ---------- formatting ---------- */
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; };
const setText = (id, s) => { const e = $(id); if (e.textContent !== s) e.textContent = s; };
const fin = v => typeof v === 'number' && isFinite(v);
const DASH = '\u2013', DOT = ' \u00b7 ';
const parseTs = s => {
  if (typeof s !== 'string') return nowS();
  const t = Date.parse(/(z|[+-]\d\d:?\d\d)$/i.test(s) ? s : s + 'Z');
  return isNaN(t) ? nowS() : t;
};
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
const n3 = v => Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
const unitOf = b => { let k = 0, d = 1; while (Math.abs(b) / d >= 1000 && k < 5) { d *= 1024; k++; } return [k, d]; };
const fmtBytes = b => { if (!fin(b)) return DASH; const [k, d] = unitOf(b); return (k ? n3(b / d) : Math.round(b)) + ' ' + UNITS[k]; };
const fmtRate = b => fin(b) ? fmtBytes(b) + '/s' : DASH;
const fx = n => v => fin(v) ? v.toFixed(n) : DASH;
const f1 = fx(1), f2 = fx(2);
const fmtPct = v => fin(v) ? v.toFixed(1) + '%' : DASH;
const fmtPair = (u, t) => { if (!fin(u) || !fin(t)) return ''; const [k, d] = unitOf(t); return `${n3(u / d)} / ${n3(t / d)} ${UNITS[k]}`; };
const fmtNum = v => !fin(v) ? (v == null ? DASH : String(v)) : Number.isInteger(v) ? String(v)
  : Math.abs(v) >= 1000 ? v.toFixed(0) : Math.abs(v) >= 100 ? v.toFixed(1) : String(+v.toPrecision(4));
const fmtDur = s => {
  if (!fin(s)) return DASH;
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
};
const p2 = n => String(n).padStart(2, '0');
const fmtClock = (t, sec = true) => { const d = new Date(t); return p2(d.getHours()) + ':' + p2(d.getMinutes()) + (sec ? ':' + p2(d.getSeconds()) : ''); };
const level = p => !fin(p) ? '' : p >= 90 ? 'crit' : p >= 75 ? 'warn' : '';
const clamp = p => Math.max(0, Math.min(100, fin(p) ? p : 0));

/* ---------- theme ---------- */
const P = {};
let FONT = 'sans-serif';
const mq = matchMedia('(prefers-color-scheme: light)');
const themePref = () => { try { return localStorage.getItem('metrics-agent.theme') || 'auto'; } catch (e) { return 'auto'; } };
function applyTheme() {
  const pref = themePref();
  document.documentElement.dataset.theme = pref === 'auto' ? (mq.matches ? 'light' : 'dark') : pref;
  $('theme').textContent = { auto: '\u25d0 auto', dark: '\u25cf dark', light: '\u25cb light' }[pref] || pref;
  const cs = getComputedStyle(document.documentElement);
  for (const k of ['grid', 'track', 'muted', 'cpu', 'mem', 'rx', 'tx', 'read', 'write', 'warn', 'crit']) P[k] = cs.getPropertyValue('--' + k).trim();
  FONT = getComputedStyle(document.body).fontFamily;
  scheduleDraw();
}
$('theme').onclick = () => {
  const order = ['auto', 'dark', 'light'];
  try { localStorage.setItem('metrics-agent.theme', order[(order.indexOf(themePref()) + 1) % 3]); } catch (e) { /* storage off */ }
  applyTheme();
};
mq.addEventListener?.('change', applyTheme);
const rgba = (hex, a) => {
  let h = (/^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(hex) || [])[1];
  if (!h) return hex;
  if (h.length === 3) h = h.replace(/./g, '$&$&');
  const n = parseInt(h, 16);
  return `rgba(${n >> 16},${n >> 8 & 255},${n & 255},${a})`;
};

/* ---------- series ---------- */
const trim = a => { const cut = nowS() - KEEP; let i = 0; while (i < a.length && a[i].t < cut) i++; return i ? a.slice(i) : a; };
function merge(a, b) {
  if (!b.length) return a;
  const m = new Map(b.map(p => [p.t, p]));
  for (const p of a) m.set(p.t, Object.assign(m.get(p.t) || {}, p));
  return trim([...m.values()].sort((x, y) => x.t - y.t));
}
function push(a, p) {
  const last = a[a.length - 1];
  if (last && p.t <= last.t) {
    if (p.t === last.t) { Object.assign(last, p); return a; }
    return merge(a, [p]);
  }
  a.push(p);
  return a[0].t < nowS() - KEEP ? trim(a) : a;
}

/* ---------- charts ---------- */
const nice = x => { const e = 10 ** Math.floor(Math.log10(x)), f = x / e; return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * e; };
function yScale(kind, m) {
  if (kind === 'pct') return { max: 100, ticks: [0, 25, 50, 75, 100], lab: v => v + '%' };
  let u = 1, k = 0, step, max;
  if (!(m > 0)) m = 1024;
  for (;;) {
    step = nice(m / u / 4); max = Math.ceil(m / u / step) * step;
    if (max < 1000 || k >= 5) break;
    u *= 1024; k++;
  }
  const ticks = [];
  for (let v = 0; v <= max + step / 2; v += step) ticks.push(v * u);
  return { max: max * u, ticks, lab: v => v === 0 ? '0' : +(v / u).toFixed(2) + ['', 'K', 'M', 'G', 'T', 'P'][k] };
}
function fitCanvas(c) {
  const dpr = devicePixelRatio || 1, W = c.clientWidth, H = c.clientHeight;
  if (!W || !H) return null;
  const pw = Math.round(W * dpr), ph = Math.round(H * dpr);
  if (c.width !== pw || c.height !== ph) { c.width = pw; c.height = ph; }
  const x = c.getContext('2d');
  x.setTransform(dpr, 0, 0, dpr, 0, 0);
  x.clearRect(0, 0, W, H);
  return { x, W, H };
}
const bsearch = (a, t) => { let lo = 0, hi = a.length; while (lo < hi) { const mid = (lo + hi) >> 1; if (a[mid].t < t) lo = mid + 1; else hi = mid; } return lo; };
const fmtBy = kind => kind === 'pct' ? fmtPct : fmtRate;

class Chart {
  constructor(id, o) {
    this.c = $(id); this.o = o; this.hx = null;
    this.tip = el('div', 'tip'); this.tip.hidden = true;
    this.c.parentNode.appendChild(this.tip);
    this.c.onmousemove = e => { this.hx = e.clientX - this.c.getBoundingClientRect().left; scheduleDraw(); };
    this.c.onmouseleave = () => { this.hx = null; scheduleDraw(); };
  }
  draw() {
    const f = fitCanvas(this.c); if (!f) return;
    const { x } = f, o = this.o, L = 44, R = 6, T = 6, B = o.small ? 4 : 20, w = f.W - L - R, h = f.H - T - B;
    const t1 = nowS(), t0 = t1 - WIN, a = S[o.data];
    const vis = a.slice(Math.max(0, bsearch(a, t0) - 1)), dts = [];
    let n = 0, m = 0;
    vis.forEach((p, i) => {
      for (const s of o.series) if (fin(p[s.k])) m = Math.max(m, p[s.k]);
      if (p.t >= t0) n++;
      if (i) dts.push(p.t - vis[i - 1].t);
    });
    this.c.dataset.points = n;
    dts.sort((p, q) => p - q);
    /* a hole in the data (agent down, collection failed) stays a hole, not a straight line */
    const gap = Math.max(6000, 4 * (dts[dts.length >> 1] || 1000));
    const sc = yScale(o.kind, m);
    const X = t => L + (t - t0) / WIN * w, Y = v => T + h - Math.min(v, sc.max) / sc.max * h;
    x.font = '11px ' + FONT; x.lineWidth = 1; x.textAlign = 'right'; x.textBaseline = 'middle';
    for (const v of o.small ? [0, sc.ticks[sc.ticks.length - 1]] : sc.ticks) {
      const y = Math.round(Y(v)) + 0.5;
      x.strokeStyle = P.grid; x.beginPath(); x.moveTo(L, y); x.lineTo(L + w, y); x.stroke();
      x.fillStyle = P.muted; x.fillText(sc.lab(v), L - 7, Math.min(Math.max(y, T + 5), T + h - 4));
    }
    if (!o.small) {
      const step = w > 560 ? 60e3 : 120e3;
      x.textAlign = 'center'; x.textBaseline = 'alphabetic';
      for (let tt = Math.ceil(t0 / step) * step; tt <= t1; tt += step) {
        const xx = Math.round(X(tt)) + 0.5;
        x.strokeStyle = P.grid; x.beginPath(); x.moveTo(xx, T); x.lineTo(xx, T + h); x.stroke();
        if (xx > L + 16 && xx < L + w - 16) { x.fillStyle = P.muted; x.fillText(fmtClock(tt, false), xx, f.H - 5); }
      }
    }
    x.save(); x.beginPath(); x.rect(L, T - 2, w + 2, h + 4); x.clip();
    for (const s of o.series) {
      const col = P[s.c], segs = [];
      let seg = null, prev = -Infinity;
      for (const p of vis) {
        const v = p[s.k];
        if (!fin(v)) { seg = null; continue; }
        if (!seg || p.t - prev > gap) segs.push(seg = []);
        seg.push([X(p.t), Y(v)]); prev = p.t;
      }
      const g = x.createLinearGradient(0, T, 0, T + h);
      g.addColorStop(0, rgba(col, s.fill)); g.addColorStop(1, rgba(col, 0.01));
      for (const sg of segs) {
        if (sg.length === 1) { x.fillStyle = col; x.beginPath(); x.arc(sg[0][0], sg[0][1], 1.6, 0, 7); x.fill(); continue; }
        x.beginPath(); x.moveTo(sg[0][0], T + h);
        for (const q of sg) x.lineTo(q[0], q[1]);
        x.lineTo(sg[sg.length - 1][0], T + h); x.closePath();
        x.fillStyle = g; x.fill();
        x.beginPath(); sg.forEach((q, i) => i ? x.lineTo(q[0], q[1]) : x.moveTo(q[0], q[1]));
        x.strokeStyle = col; x.lineWidth = 1.6; x.lineJoin = 'round'; x.stroke();
      }
    }
    x.restore();
    if (!n) {
      x.fillStyle = P.muted; x.textAlign = 'center'; x.textBaseline = 'middle'; x.font = '12px ' + FONT;
      x.fillText(o.empty || 'waiting for data\u2026', L + w / 2, T + h / 2);
    }
    const tip = this.tip;
    tip.hidden = true;
    if (this.hx == null || !n || this.hx < L) return;
    const tq = t0 + (this.hx - L) / w * WIN;
    let j = bsearch(vis, tq);
    if (j >= vis.length || (j > 0 && tq - vis[j - 1].t < vis[j].t - tq)) j--;
    const p = vis[Math.max(0, j)], px = X(p.t);
    if (px < L) return;
    x.strokeStyle = P.muted; x.setLineDash([3, 3]);
    x.beginPath(); x.moveTo(Math.round(px) + 0.5, T); x.lineTo(Math.round(px) + 0.5, T + h); x.stroke(); x.setLineDash([]);
    tip.replaceChildren(el('div', 'mut', fmtClock(p.t)));
    for (const s of o.series) {
      if (fin(p[s.k])) { x.fillStyle = P[s.c]; x.beginPath(); x.arc(px, Y(p[s.k]), 3, 0, 7); x.fill(); }
      const d = el('div'), sw = el('i', 'sw');
      sw.style.background = P[s.c];
      d.append(sw, s.label + ' ' + fmtBy(o.kind)(p[s.k]));
      tip.append(d);
    }
    tip.hidden = false;
    const tw = tip.offsetWidth;
    tip.style.left = (px + 12 + tw > f.W ? px - 12 - tw : px + 12) + 'px';
  }
}

const charts = [
  new Chart('cpu-chart', { data: 'cpu', kind: 'pct', series: [{ k: 'v', c: 'cpu', label: 'cpu', fill: 0.3 }] }),
  new Chart('mem-chart', { data: 'mem', kind: 'pct', series: [{ k: 'v', c: 'mem', label: 'used', fill: 0.3 }] }),
  new Chart('net-chart', { data: 'net', kind: 'rate', series: [{ k: 'rx', c: 'rx', label: 'in', fill: 0.25 }, { k: 'tx', c: 'tx', label: 'out', fill: 0.12 }] }),
  new Chart('io-chart', { data: 'io', kind: 'rate', small: true, empty: 'disk I/O appears with the live stream',
    series: [{ k: 'r', c: 'read', label: 'read', fill: 0.2 }, { k: 'w', c: 'write', label: 'write', fill: 0.1 }] })
];

function drawCores() {
  const c = $('cores-chart'), f = fitCanvas(c); if (!f) return;
  const { x } = f, n = cores.length;
  c.dataset.cores = n;
  x.font = '10px ' + FONT;
  if (!n) { x.fillStyle = P.muted; x.textAlign = 'center'; x.textBaseline = 'middle'; x.fillText('per-core usage appears with the live stream', f.W / 2, f.H / 2); return; }
  const bh = f.H - 14, gap = n > 32 ? 2 : 4, bw = (f.W - gap * (n - 1)) / n, every = Math.max(1, Math.ceil(22 / (bw + gap)));
  x.textAlign = 'center'; x.textBaseline = 'alphabetic';
  cores.forEach((v, i) => {
    v = clamp(v);
    const x0 = i * (bw + gap), hh = Math.max(1, v / 100 * bh), lv = level(v);
    x.fillStyle = P.track; x.fillRect(x0, 0, bw, bh);
    x.fillStyle = lv === 'crit' ? P.crit : lv === 'warn' ? P.warn : P.cpu;
    x.fillRect(x0, bh - hh, bw, hh);
    if (i % every === 0) { x.fillStyle = P.muted; x.fillText(String(i), x0 + bw / 2, f.H - 2); }
  });
}
$('cores-chart').onmousemove = function (e) {
  const n = cores.length, r = this.getBoundingClientRect();
  if (n) { const i = Math.min(n - 1, Math.max(0, Math.floor((e.clientX - r.left) / r.width * n))); this.title = `core ${i}: ${fmtPct(cores[i])}`; }
};

let drawPending = false;
function scheduleDraw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => { drawPending = false; for (const c of charts) c.draw(); drawCores(); });
}
new ResizeObserver(scheduleDraw).observe(document.querySelector('main'));

/* ---------- tiles and panels ---------- */
function tile(k, val, sub, pct) {
  const t = $('tile-' + k);
  if (val != null) setText(k + '-value', val);
  setText(k + '-sub', sub || '\u00a0');
  if (pct !== undefined) { $(k + '-meter').style.width = clamp(pct) + '%'; t.dataset.level = level(pct); }
  t.classList.toggle('na', val === DASH);
}
function unavailable(k) {
  if (k === 'net') { setText('net-rx', DASH); setText('net-tx', DASH); }
  tile(k, k === 'net' ? null : DASH, 'collection failed', k === 'net' ? undefined : 0);
  $('tile-' + k).classList.add('na');
}
/* reuse one element per key so rows never flicker or lose their scroll position */
function keyed(box, cls, attr, keys, make) {
  const have = {};
  for (const e of box.children) if (e.dataset[attr] != null) have[e.dataset[attr]] = e;
  for (const k of keys) if (!have[k]) { const e = make(k); e.classList.add(cls); e.dataset[attr] = k; box.append(e); have[k] = e; }
  for (const k in have) if (!keys.includes(k)) have[k].remove();
  return have;
}
const mkPart = () => { const e = el('div'), l = el('div', 'l'), b = el('div', 'bar'); l.append(el('span', 'm ell'), el('span', 'd ell mut'), el('span', 'mut'), el('span', 'p')); b.append(el('i')); e.append(l, b); return e; };
const mkIf = () => { const e = el('div'); e.append(el('span', 'n ell'), el('span', 'rx'), el('span', 'tx')); return e; };
const mkGauge = name => { const e = el('div', 'tile'), lab = el('div', 't-label ell', name.replace(/_/g, ' ')); lab.title = name; e.append(lab, el('div', 't-value'), el('div', 't-sub ell mut', 'application gauge')); return e; };
const group = (k, g) => { if (g !== undefined) $('card-' + k).classList.toggle('na', !g); return g; };

function onMetrics(m) {
  const t = parseTs(m.timestamp), d = m.data || {}, err = m.error ? String(m.error) : '';
  skew = t - Date.now(); lastMsgAt = Date.now();
  document.body.dataset.updates = ++updates;
  const lu = $('last-update');
  lu.textContent = fmtClock(t); lu.dateTime = new Date(t).toISOString(); lu.classList.remove('stale');

  const c = group('cpu', d.cpu);
  if (c) {
    S.cpu = push(S.cpu, { t, v: c.usage_percent });
    cores = Array.isArray(c.per_core) ? c.per_core : [];
    tile('cpu', fmtPct(c.usage_percent), 'user ' + f1(c.user) + DOT + 'sys ' + f1(c.system), c.usage_percent);
    $('cpu-sub').title = `user ${fmtPct(c.user)}, system ${fmtPct(c.system)}, iowait ${fmtPct(c.iowait)}, steal ${fmtPct(c.steal)}, idle ${fmtPct(c.idle)}`;
    setText('cpu-leg-total', fmtPct(c.usage_percent));
    const fq = (c.frequency_mhz || []).filter(fin);
    const info = [];
    if (cores.length) info.push(cores.length + (cores.length === 1 ? ' core' : ' cores'));
    if (fq.length) info.push((fq.reduce((a, b) => a + b, 0) / fq.length / 1000).toFixed(2) + ' GHz');
    if (c.steal > 0.5) info.push('steal ' + fmtPct(c.steal));
    setText('cpu-leg-info', info.join(DOT));
    const la = c.load_avg || [];
    if (la.length >= 3) {
      tile('load', f2(la[0]), `5m ${f2(la[1])}${DOT}15m ${f2(la[2])}`, cores.length ? la[0] / cores.length * 100 : undefined);
      $('load-sub').title = 'load average over 1, 5 and 15 minutes' + (cores.length ? ` on ${cores.length} cores` : '');
    }
    document.title = fmtPct(c.usage_percent) + ' CPU' + DOT + (host || 'metrics-agent');
  } else if (c === null) {
    S.cpu = push(S.cpu, { t, v: null }); cores = [];
    unavailable('cpu'); unavailable('load'); setText('cpu-leg-total', DASH);
  }

  const mm = group('mem', d.memory);
  if (mm) {
    S.mem = push(S.mem, { t, v: mm.usage_percent });
    tile('mem', fmtPct(mm.usage_percent), fmtPair(mm.used_bytes, mm.total_bytes), mm.usage_percent);
    setText('mem-leg', fmtPct(mm.usage_percent));
    const tot = mm.total_bytes || 0, cache = (mm.cached_bytes || 0) + (mm.buffers_bytes || 0), segs = $('mem-stack').children;
    if (tot > 0) {
      segs[0].style.width = clamp(mm.used_bytes / tot * 100) + '%';
      segs[1].style.width = clamp(Math.min(cache, tot - mm.used_bytes) / tot * 100) + '%';
    }
    setText('mem-used', fmtBytes(mm.used_bytes)); setText('mem-avail', fmtBytes(mm.available_bytes)); setText('mem-cache', fmtBytes(cache));
    setText('mem-swap', mm.swap_total_bytes ? fmtPair(mm.swap_used_bytes, mm.swap_total_bytes) : 'none');
  } else if (mm === null) {
    S.mem = push(S.mem, { t, v: null }); unavailable('mem'); setText('mem-leg', DASH);
  }

  const nw = group('net', d.network);
  if (nw) {
    const rx = fmtRate(nw.bytes_recv_per_sec), tx = fmtRate(nw.bytes_sent_per_sec);
    S.net = push(S.net, { t, rx: nw.bytes_recv_per_sec, tx: nw.bytes_sent_per_sec });
    setText('net-rx', rx); setText('net-tx', tx); setText('net-leg-rx', rx); setText('net-leg-tx', tx);
    const ifs = nw.interfaces || {}, names = Object.keys(ifs).sort();
    tile('net', null, names.length ? names.length + (names.length === 1 ? ' interface' : ' interfaces') : 'no interfaces');
    const rows = keyed($('net-ifs'), 'if', 'iface', names, mkIf);
    for (const k of names) {
      const i = ifs[k] || {}, r = rows[k].children;
      const errs = (i.errors_in || 0) + (i.errors_out || 0), drops = (i.drops_in || 0) + (i.drops_out || 0);
      r[0].textContent = k; r[0].classList.toggle('bad', errs + drops > 0);
      r[0].title = k + (errs + drops ? `${DOT}errors ${errs}, drops ${drops}` : '');
      r[1].textContent = '\u2193 ' + fmtRate(i.bytes_recv_per_sec); r[2].textContent = '\u2191 ' + fmtRate(i.bytes_sent_per_sec);
    }
  } else if (nw === null) {
    S.net = push(S.net, { t, rx: null, tx: null }); unavailable('net'); setText('net-leg-rx', DASH); setText('net-leg-tx', DASH);
  }

  const dk = group('disk', d.disk);
  if (dk) {
    const parts = dk.partitions || {}, mounts = Object.keys(parts).sort();
    let full = null;
    for (const k of mounts) if (fin(parts[k]?.usage_percent) && (!full || parts[k].usage_percent > parts[full].usage_percent)) full = k;
    if (full) {
      const fp = parts[full];
      setText('disk-label', 'Disk' + DOT + full); $('disk-label').title = 'fullest partition: ' + full;
      tile('disk', fmtPct(fp.usage_percent), fmtPair(fp.used_bytes, fp.total_bytes), fp.usage_percent);
    } else tile('disk', DASH, 'no partitions', 0);
    const rows = keyed($('disk-list'), 'part', 'mount', mounts, mkPart);
    for (const k of mounts) {
      const p = parts[k] || {}, r = rows[k], l = r.firstChild.children;
      l[0].textContent = l[0].title = k;
      l[1].textContent = [p.device, p.fstype].filter(Boolean).join(DOT);
      l[2].textContent = fmtPair(p.used_bytes, p.total_bytes);
      l[3].textContent = fmtPct(p.usage_percent);
      r.lastChild.firstChild.style.width = clamp(p.usage_percent) + '%';
      r.dataset.level = level(p.usage_percent);
    }
    const io = dk.io;
    if (io) {
      S.io = push(S.io, { t, r: io.read_bytes_per_sec, w: io.write_bytes_per_sec });
      setText('io-leg-r', fmtRate(io.read_bytes_per_sec)); setText('io-leg-w', fmtRate(io.write_bytes_per_sec));
    }
  } else if (dk === null) {
    S.io = push(S.io, { t, r: null, w: null }); unavailable('disk');
  }

  const sy = d.system;
  if (sy) {
    if (sy.hostname && sy.hostname !== host) { host = String(sy.hostname); setText('hostname', host); $('hostname').title = host; }
    if (fin(sy.uptime_seconds)) setText('uptime', 'up ' + fmtDur(sy.uptime_seconds));
  }

  // The container beside the host: shown only inside a cgroup with limits.
  if (d.container !== undefined) {
    const ct = d.container;
    $('tile-ccpu').hidden = $('tile-cmem').hidden = !ct;
    if (ct) {
      const cores = fin(ct.cpu_limit_cores) ? `of ${ct.cpu_limit_cores} cores` : 'no quota: of all cores';
      tile('ccpu', fmtPct(ct.cpu_usage_percent), cores + (ct.cpu_throttled_seconds > 0 ? `${DOT}throttled ${f1(ct.cpu_throttled_seconds)} s` : ''), ct.cpu_usage_percent);
      tile('cmem', fmtPct(ct.memory_usage_percent), fin(ct.memory_limit_bytes) ? fmtPair(ct.memory_used_bytes, ct.memory_limit_bytes) : fmtBytes(ct.memory_used_bytes) + ' (no limit)', ct.memory_usage_percent);
      $('cmem-sub').title = `cgroup v${ct.cgroup_version} ${ct.cgroup}` + (fin(ct.pids_limit) ? `; ${ct.pids} of ${ct.pids_limit} tasks` : '');
    }
  }

  // Temperatures, one tile per sensor, on hosts that have any (null: none).
  if (d.sensors !== undefined) {
    const ts = d.sensors && Array.isArray(d.sensors.temperatures) ? d.sensors.temperatures : [];
    const names = ts.map(x => `${x.chip} ${x.sensor}`);
    const tiles = keyed($('tiles'), 'sensor', 'sensor', names, mkGauge);
    ts.forEach((x, i) => {
      const ch = tiles[names[i]].children;
      ch[1].textContent = fin(x.celsius) ? f1(x.celsius) + ' \u00b0C' : DASH;
      ch[2].textContent = 'temperature';
    });
  }

  const cu = d.custom;
  if (cu && typeof cu === 'object') {
    const gs = keyed($('tiles'), 'custom', 'gauge', Object.keys(cu), mkGauge);
    for (const k in cu) {
      let v = cu[k];
      const ch = gs[k].children;
      if (v && typeof v === 'object') { if (v.help) ch[2].textContent = v.help; v = v.value; }
      ch[1].textContent = fmtNum(v);
      gs[k].classList.toggle('na', !fin(v));
    }
  }

  const no = $('notice');
  no.hidden = !err; no.textContent = err ? '\u26a0 ' + err : ''; no.title = err;
  scheduleDraw();
}

/* ---------- alerts ---------- */
let alerts = [];
const ALERT_CAP = 60, TILE_OF = { cpu: 'cpu', memory: 'mem', disk: 'disk', network: 'net', load: 'load' };
const akey = a => `${a.metric || ''}|${a.level || ''}|${a.threshold ?? ''}`;
const findFiring = m => alerts.find(a => a.state === 'firing' && akey(a) === akey(m))
  || (m.metric ? alerts.find(a => a.state === 'firing' && a.metric === m.metric && (!m.level || a.level === m.level)) : null);
function onAlert(m, quiet) {
  const t = parseTs(m.timestamp || m.since), st = m.state === 'firing' || m.state === 'resolved' ? m.state : 'event';
  const f = st !== 'event' && findFiring(m);
  if (f) {
    if (st === 'resolved') { f.state = 'resolved'; f.rt = t; f.note = ''; }
    if (fin(m.value)) f.value = m.value;
  } else {
    alerts.unshift({
      state: st, level: ['critical', 'warning'].includes(m.level) ? m.level : 'info', metric: m.metric ? String(m.metric) : '',
      value: m.value, threshold: m.threshold, message: m.message ? String(m.message) : '', t, rt: st === 'resolved' ? t : 0
    });
    while (alerts.length > ALERT_CAP) {
      let j = alerts.length - 1;
      while (j > 0 && alerts[j].state === 'firing') j--;
      alerts.splice(j, 1);
    }
  }
  if (!quiet) renderAlerts();
}
function syncFiring(list, asked) {
  for (const a of list) onAlert({ ...a, state: 'firing' }, true);
  for (const a of alerts) {
    /* only alerts older than the question: one that fired since is not in this answer yet */
    if (a.state !== 'firing' || a.t > asked - 2000) continue;
    if (!list.some(b => (b.metric || '') === a.metric && (!b.level || b.level === a.level))) { a.state = 'resolved'; a.rt = nowS(); a.note = 'no longer firing'; }
  }
  renderAlerts();
}
function renderAlerts() {
  const ul = $('alerts-list'), onTile = {};
  let firing = 0, worst = '';
  ul.replaceChildren(...alerts.length ? [] : [el('li', 'empty', 'No alerts so far.')]);
  for (const a of alerts) {
    const li = el('li', 'alert'), top = el('div', 'a-top'), det = [];
    li.dataset.state = a.state; li.dataset.level = a.level;
    top.append(el('span', 'badge', a.state === 'resolved' ? 'resolved' : a.level), el('span', 'a-msg ell', a.message || a.metric || 'alert'), el('time', 'a-time', fmtClock(a.t)));
    if (a.metric) det.push(a.metric);
    if (a.value != null) det.push('value ' + fmtNum(a.value));
    if (a.threshold != null) det.push('threshold ' + fmtNum(a.threshold));
    if (a.state === 'resolved') det.push(a.note || 'resolved ' + fmtClock(a.rt));
    li.append(top, el('div', 'a-det ell', det.join(DOT)));
    li.title = a.message + '\n' + det.join(DOT);
    ul.append(li);
    if (a.state === 'firing') {
      firing++;
      if (a.level === 'critical' || (a.level === 'warning' && worst !== 'critical') || !worst) worst = a.level;
      const tk = TILE_OF[a.metric] || a.metric;
      if (onTile[tk] !== 'critical' && a.level !== 'info') onTile[tk] = a.level;
    }
  }
  const cnt = $('alerts-count');
  cnt.textContent = firing ? firing + ' firing' : ''; cnt.dataset.level = worst;
  document.body.dataset.alertsFiring = firing;
  for (const t of document.querySelectorAll('.tile')) {
    const lv = onTile[t.dataset.gauge || t.id.slice(5)] || '';
    if ((t.dataset.alert || '') !== lv) t.dataset.alert = lv;
  }
}

/* ---------- connections ---------- */
/* 0.5 s doubling to 30 s, with +-25 % jitter so that many dashboards do not reconnect in lockstep */
class Backoff {
  n = 0;
  next() { return Math.round(Math.min(30000, 500 * 2 ** Math.min(this.n++, 8) * (0.75 + Math.random() * 0.5))); }
  reset() { this.n = 0; }
}
const wsUrl = p => (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + p
  + (token ? (p.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token) : '');
async function getJSON(path, auth) {
  const headers = { Accept: 'application/json' };
  if (auth && token) headers.Authorization = 'Bearer ' + token;
  const r = await fetch(path, { headers, cache: 'no-store', signal: AbortSignal.timeout?.(8000) });
  if (r.status === 401) throw Object.assign(new Error('unauthorized'), { auth: true });
  if (!r.ok) throw new Error('HTTP ' + r.status);
  return r.json();
}

const conn = { state: 'connecting', until: 0, down: 0 };
function setConn(state, until = 0) {
  Object.assign(conn, { state, until });
  if (state === 'live') conn.down = 0; else conn.down ||= Date.now();
  renderConn();
}
function renderConn() {
  let st = conn.state, txt = { live: 'live', login: 'sign-in required', connecting: 'connecting\u2026' }[st];
  if (!txt) {
    const s = Math.max(0, Math.ceil((conn.until - Date.now()) / 1000));
    const off = !navigator.onLine || Date.now() - conn.down > 30000;
    st = off ? 'offline' : 'reconnecting';
    txt = off ? (s ? `offline${DOT}retry in ${s}s` : `offline${DOT}retrying\u2026`) : (s ? `reconnecting in ${s}s` : 'reconnecting\u2026');
  }
  setText('conn-status', txt);
  if (document.body.dataset.state !== st) document.body.dataset.state = st;
}

async function health() {
  const asked = nowS(), h = await getJSON('/health');
  if (h.version) { setText('version', 'v' + String(h.version).replace(/^v/, '')); $('version').title = 'agent up ' + fmtDur(h.uptime_seconds) + (fin(h.clients) ? `${DOT}${h.clients} clients` : ''); }
  authOn = h.auth === true;
  $('logout').hidden = !authOn;
  if (Array.isArray(h.alerts?.firing)) syncFiring(h.alerts.firing, asked);
}

let histBusy = false;
async function loadHistory() {
  if (histBusy) return;
  histBusy = true;
  const rs = await Promise.all(['cpu', 'memory', 'network'].map(n =>
    getJSON(`/api/metrics/${n}?seconds=${WIN / 1000}`, true).then(j => Array.isArray(j?.points) ? j.points : [], e => e)));
  histBusy = false;
  if (rs.some(r => r?.auth)) return authFailed();
  let total = 0;
  const conv = (i, f) => Array.isArray(rs[i]) ? (total += rs[i].length, rs[i].map(p => ({ ...f(p), t: parseTs(p.timestamp) }))) : [];
  S.cpu = merge(S.cpu, conv(0, p => ({ v: p.value })));
  S.mem = merge(S.mem, conv(1, p => ({ v: p.value })));
  S.net = merge(S.net, conv(2, p => ({ rx: p.recv, tx: p.sent })));
  document.body.dataset.history = total;
  scheduleDraw();
}

/* one WebSocket that reconnects by itself; a connection that delivered data or lived a while resets the backoff */
class Stream {
  constructor(path, on) { Object.assign(this, { path, on, back: new Backoff(), ws: null, timer: 0, openAt: 0, last: 0 }); }
  open() {
    clearTimeout(this.timer);
    if (this.ws) return;
    this.on.connecting();
    let ws;
    try { ws = new WebSocket(wsUrl(this.path)); } catch (e) { return this.retry(); }
    Object.assign(this, { ws, openAt: Date.now(), last: 0, opened: false });
    ws.onopen = () => { this.opened = true; this.openAt = Date.now(); this.on.open?.(); };
    ws.onmessage = ev => {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      const prev = this.last;
      this.last = Date.now();
      this.on.msg(m, prev);
    };
    ws.onclose = ev => {
      this.ws = null;
      if (ev.code === 4001) return authFailed();
      if (this.last || (this.opened && Date.now() - this.openAt > 5000)) this.back.reset();
      this.retry();
    };
  }
  retry() { const d = this.back.next(); this.on.wait(d); this.timer = setTimeout(() => this.open(), d); }
  stop() {
    const ws = this.ws;
    this.ws = null; clearTimeout(this.timer);
    if (ws) { ws.onclose = ws.onmessage = ws.onopen = null; ws.close(); }
  }
}

const metrics = new Stream('/api/ws/ws?interval=1&metrics=cpu,memory,disk,network,system,container,custom,sensors', {
  connecting: () => setConn(everLive ? 'reconnecting' : 'connecting'),
  wait: d => setConn('reconnecting', Date.now() + d),
  msg(m, prev) {
    if (m.type && m.type !== 'metrics') return;
    if (prev) gapEst = Math.min(120e3, Math.max(200, 0.8 * gapEst + 0.2 * (metrics.last - prev)));
    else {
      /* first message of a connection: the latest snapshot, sent at once (not a tick) */
      everLive = true; setConn('live');
      health().catch(() => {});
      loadHistory();
      alertsWs.open();
    }
    onMetrics(m);
  }
});
const alertStream = (on, txt) => { $('alerts-stream').dataset.on = on ? 1 : 0; setText('alerts-stream-text', txt); };
const alertsWs = new Stream('/api/ws/ws/alerts', {
  connecting: () => alertStream(false, 'connecting'),
  open: () => alertStream(true, 'live'),
  wait: d => alertStream(false, `retry in ${Math.ceil(d / 1000)}s`),
  msg(m) {
    if (m.type === 'heartbeat') $('alerts-stream').title = 'Alerts stream' + DOT + 'last heartbeat ' + fmtClock(parseTs(m.timestamp));
    else if (m.type === 'alert' || m.level || m.state) onAlert(m);
  }
});

function stopAll() { metrics.stop(); alertsWs.stop(); clearTimeout(bootTimer); }
function signOut(msg) {
  stopAll();
  token = ''; store(TK, null);
  setConn('login'); alertStream(false, 'signed out');
  $('login').hidden = false;
  setText('login-error', msg);
  ($('login-user').value ? $('login-pass') : $('login-user')).focus();
}
function authFailed() { if ($('login').hidden) signOut(token ? 'Your session has expired. Please sign in again.' : ''); }

$('login-form').onsubmit = async ev => {
  ev.preventDefault();
  const btn = $('login-submit');
  btn.disabled = true; setText('login-error', '');
  try {
    const r = await fetch('/api/auth/login', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, cache: 'no-store',
      body: JSON.stringify({ username: $('login-user').value, password: $('login-pass').value })
    });
    const j = await r.json().catch(() => ({}));
    if (r.ok && j.access_token) {
      token = j.access_token;
      store(TK, token); store(TK + '.exp', Date.now() + (fin(j.expires_in) ? j.expires_in * 1000 : 864e5));
      $('login-pass').value = ''; $('login').hidden = true;
      metrics.back.reset(); alertsWs.back.reset();
      metrics.open(); alertsWs.open();
    } else setText('login-error', r.status === 429 ? 'Too many attempts. Wait a minute and try again.'
      : r.status === 401 ? 'Wrong user name or password.' : j.error ? String(j.error) : `Sign-in failed (HTTP ${r.status}).`);
  } catch (e) {
    setText('login-error', 'The agent is not reachable.');
  }
  btn.disabled = false;
};
$('logout').onclick = () => signOut('Signed out.');

/* ---------- start ---------- */
let bootTimer = 0, ticks = 0;
const bootBack = new Backoff();
function boot() {
  health().then(() => {
    if (authOn && !token) signOut('');
    else { metrics.open(); alertsWs.open(); }
  }, () => { const d = bootBack.next(); setConn('reconnecting', Date.now() + d); bootTimer = setTimeout(boot, d); });
}
setInterval(() => {
  renderConn();
  if (metrics.ws && Date.now() - (metrics.last || metrics.openAt) > Math.max(STALL, 4 * gapEst)) {
    /* nothing for a long time: the peer vanished without closing; start over */
    stopAll(); metrics.retry(); alertsWs.retry();
  }
  if (lastMsgAt && Date.now() - lastMsgAt > Math.max(5000, 3 * gapEst)) $('last-update').classList.add('stale');
  if (conn.state === 'live' && ++ticks % 60 === 0) health().catch(() => {});
  scheduleDraw();
}, 1000);
addEventListener('online', () => { if (!metrics.ws && conn.state !== 'login') { metrics.back.reset(); metrics.open(); } });
document.addEventListener('visibilitychange', scheduleDraw);
applyTheme();
renderAlerts();
boot();
}
</script>
</body>
</html>
)DASHBOARD";
}

// The /fleet page, authored as dashboard/fleet.html; the agent writes its
// --peer list in place of the PEERS marker.
inline std::string RestApi::fleet_html() {
  return R"FLEET(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fleet · metrics-agent</title>
<link rel="icon" href="data:,">
<style>
:root { --bg:#0f1419; --panel:#182029; --line:#2a3441; --text:#d8dee6; --dim:#8a96a3;
        --live:#3fb950; --wait:#d29922; --down:#f85149; --bar:#4c8dff; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
       font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
body > header { display: flex; align-items: baseline; gap: 16px; padding: 14px 20px;
                border-bottom: 1px solid var(--line); }
h1 { font-size: 18px; margin: 0; font-weight: 600; }
#summary { color: var(--dim); }
#tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 12px; padding: 16px 20px; }
.tile { background: var(--panel); border: 1px solid var(--line); border-left: 4px solid var(--wait);
        border-radius: 6px; padding: 10px 12px; cursor: pointer; contain: layout paint; }
.tile:hover { border-color: #3b4756; }
.tile[data-state=live] { border-left-color: var(--live); }
.tile[data-state=unreachable] { border-left-color: var(--down); }
.tile[data-state=login] { border-left-color: var(--down); cursor: default; }
.tile[data-state=reconnecting] .vals, .tile[data-state=unreachable] .vals { opacity: .45; }
.tile > header { display: flex; justify-content: space-between; gap: 8px; align-items: baseline; }
.name { color: var(--text); font-weight: 600; text-decoration: none; overflow: hidden;
        text-overflow: ellipsis; white-space: nowrap; }
.state { font-size: 12px; color: var(--dim); white-space: nowrap; }
.tile[data-state=live] .state { color: var(--live); }
.tile[data-state=unreachable] .state, .tile[data-state=login] .state { color: var(--down); }
.sub { color: var(--dim); font-size: 12px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.vals { display: grid; grid-template-columns: 58px 1fr; gap: 3px 8px; margin: 8px 0 0; font-variant-numeric: tabular-nums; }
.vals dt { color: var(--dim); }
.vals dd { margin: 0; position: relative; }
.vals dd .bar { position: absolute; left: 0; bottom: -1px; height: 2px; background: var(--bar); width: 0; }
.alerts.firing { color: var(--down); font-weight: 600; }
.custom { color: var(--dim); font-size: 12px; margin-top: 6px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.login { margin-top: 8px; display: grid; gap: 6px; cursor: default; }
.login[hidden] { display: none; }
.login input, .login button { font: inherit; padding: 4px 6px; border-radius: 4px; border: 1px solid var(--line);
                              background: var(--bg); color: var(--text); }
.login button { background: #23324a; cursor: pointer; }
.login .err { color: var(--down); font-size: 12px; min-height: 1em; }
#empty { padding: 20px; color: var(--dim); }
</style>
</head>
<body data-hosts="0" data-live="0">
<header><h1>Fleet</h1><span id="summary">loading…</span></header>
<main id="tiles"></main>
<template id="tile-tpl">
  <article class="tile" data-state="connecting" data-updates="0">
    <header><a class="name" target="_blank" rel="noopener"></a><span class="state">connecting</span></header>
    <div class="sub"></div>
    <dl class="vals">
      <dt>CPU</dt><dd class="cpu">–<span class="bar"></span></dd>
      <dt>Memory</dt><dd class="mem">–<span class="bar"></span></dd>
      <dt>Disk</dt><dd class="disk">–<span class="bar"></span></dd>
      <dt>Network</dt><dd class="net">–</dd>
      <dt>Alerts</dt><dd class="alerts">–</dd>
    </dl>
    <div class="custom"></div>
    <form class="login" hidden>
      <input name="username" placeholder="user" autocomplete="username" required>
      <input name="password" type="password" placeholder="password" autocomplete="current-password" required>
      <button type="submit">Log in to this agent</button>
      <div class="err"></div>
    </form>
  </article>
</template>
<script>
'use strict';
// The --peer list of the agent that served this page (written in by it).
const PEERS = [/*PEERS*/];
const FIELDS = 'cpu,memory,disk,network,system,custom';
const UNREACHABLE_AFTER = 6;   // failed attempts in a row (about 30 s of backoff)
const MAX_DELAY_MS = 30000;

function parseHost(s) {
  let name = '', url = s.trim();
  const eq = url.indexOf('=');
  if (eq > 0 && !/^https?:\/\//i.test(url)) { name = url.slice(0, eq); url = url.slice(eq + 1); }
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
    return { name: name || u.host, url: u.origin + u.pathname.replace(/\/+$/, '') };
  } catch (e) { return null; }
}

// ?hosts=NAME=URL,URL,... replaces the list; otherwise this agent, then its peers.
function hostList() {
  const q = new URLSearchParams(location.search).get('hosts');
  if (q !== null) return q.split(',').map(parseHost).filter(Boolean);
  const self = { name: 'this agent', url: location.origin, self: true };
  return [self, ...PEERS.map(p => parseHost(p.name + '=' + p.url)).filter(Boolean)];
}

const pct = v => (typeof v === 'number' && isFinite(v)) ? v.toFixed(1) + '%' : '–';
function rate(v) {
  if (typeof v !== 'number' || !isFinite(v)) return '–';
  const u = ['B/s', 'KB/s', 'MB/s', 'GB/s'];
  let i = 0;
  while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
  return (i ? v.toFixed(1) : Math.round(v)) + ' ' + u[i];
}

// Redraws at most once a frame, only the tiles whose data changed.
const dirty = new Set();
let frameQueued = false;
function markDirty(h) {
  dirty.add(h);
  if (!frameQueued) { frameQueued = true; requestAnimationFrame(flush); }
}
function flush() {
  frameQueued = false;
  for (const h of dirty) h.render();
  dirty.clear();
  summary();
}

class Host {
  constructor(spec) {
    this.spec = spec;
    this.key = 'fleet-token:' + spec.url;
    this.token = sessionStorage.getItem(this.key) || '';
    this.state = 'connecting';
    this.failures = 0;
    this.gen = 0;
    this.updates = 0;
    this.data = null;
    this.firing = new Map();
    this.sockets = [];
    const el = document.getElementById('tile-tpl').content.firstElementChild.cloneNode(true);
    this.el = el;
    el.dataset.host = spec.name;
    this.q = sel => el.querySelector(sel);
    const a = this.q('.name');
    a.textContent = spec.name;
    a.href = spec.url + '/';
    this.q('.sub').textContent = spec.url;
    el.addEventListener('click', e => {
      if (e.target.closest('form') || e.target.closest('a')) return;
      window.open(spec.url + '/', '_blank', 'noopener');
    });
    this.q('form').addEventListener('submit', e => { e.preventDefault(); this.login(); });
  }

  wsUrl(path) {
    const u = new URL(this.spec.url + path);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    if (this.token) u.searchParams.set('token', this.token);
    return u;
  }

  connect() {
    const gen = ++this.gen;
    const ok = () => gen === this.gen;
    const metrics = this.wsUrl('/api/ws/ws');
    metrics.searchParams.set('interval', '1');
    metrics.searchParams.set('metrics', FIELDS);
    let ws, al;
    try {
      ws = new WebSocket(metrics);
      al = new WebSocket(this.wsUrl('/api/ws/ws/alerts'));
    } catch (e) { this.retry(gen); return; }
    this.sockets = [ws, al];
    ws.onmessage = e => {
      if (!ok()) return;
      let m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      if (m.type !== 'metrics' || !m.data) return;
      this.data = m.data;
      this.failures = 0;
      this.updates++;
      this.setState('live');
    };
    al.onmessage = e => {
      if (!ok()) return;
      let m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      if (m.type !== 'alert' || m.source === 'broadcast') return;
      const k = m.metric + '|' + m.level + '|' + m.threshold;
      if (m.state === 'firing') this.firing.set(k, m); else this.firing.delete(k);
      markDirty(this);
    };
    const closed = e => {
      if (!ok()) return;
      if (e.code === 4001) { this.needLogin(e.reason); return; }
      this.retry(gen);
    };
    ws.onclose = closed;
    al.onclose = closed;
  }

  drop() {
    this.gen++;
    for (const s of this.sockets) { s.onclose = s.onmessage = null; try { s.close(); } catch (e) {} }
    this.sockets = [];
  }

  // Exponential backoff with jitter, each tile on its own.
  retry() {
    this.drop();
    this.failures++;
    this.firing.clear();
    this.setState(this.failures >= UNREACHABLE_AFTER ? 'unreachable' : 'reconnecting');
    const delay = Math.min(MAX_DELAY_MS, 500 * 2 ** (this.failures - 1)) * (0.8 + 0.4 * Math.random());
    setTimeout(() => this.connect(), delay);
  }

  needLogin(reason) {
    this.drop();
    if (this.token) sessionStorage.removeItem(this.key);
    this.token = '';
    this.q('.err').textContent = reason && reason !== 'missing token' ? reason : '';
    this.setState('login');
  }

  async login() {
    const f = this.q('form'), err = this.q('.err');
    err.textContent = '';
    try {
      const r = await fetch(this.spec.url + '/api/auth/login', {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username: f.username.value, password: f.password.value }) });
      const body = await r.json().catch(() => ({}));
      if (!r.ok || !body.access_token) { err.textContent = body.error || ('login failed: HTTP ' + r.status); return; }
      this.token = body.access_token;
      sessionStorage.setItem(this.key, this.token);
      f.password.value = '';
      this.failures = 0;
      this.setState('connecting');
      this.connect();
    } catch (e) {
      err.textContent = 'cannot reach ' + this.spec.url + ' (is --cors-origin set?)';
    }
  }

  setState(s) {
    this.state = s;
    markDirty(this);
  }

  render() {
    const el = this.el, d = this.data;
    el.dataset.state = this.state;
    el.dataset.updates = this.updates;
    this.q('.state').textContent = this.state === 'login' ? 'login needed' : this.state;
    this.q('form').hidden = this.state !== 'login';
    if (!d) return;
    const bar = (sel, v) => {
      const dd = this.q(sel);
      dd.firstChild.nodeValue = pct(v);
      dd.lastChild.style.width = (typeof v === 'number' ? Math.max(0, Math.min(100, v)) : 0) + '%';
    };
    bar('.cpu', d.cpu && d.cpu.usage_percent);
    bar('.mem', d.memory && d.memory.usage_percent);
    let disk = null;
    const parts = (d.disk && d.disk.partitions) || {};
    for (const k in parts) {
      const v = parts[k] && parts[k].usage_percent;
      if (typeof v === 'number' && (disk === null || v > disk)) disk = v;
    }
    bar('.disk', disk);
    const n = d.network;
    this.q('.net').textContent = n ? '↓ ' + rate(n.bytes_recv_per_sec) + '  ↑ ' + rate(n.bytes_sent_per_sec) : '–';
    const al = this.q('.alerts');
    al.textContent = this.firing.size ? this.firing.size + ' firing' : 'none';
    al.classList.toggle('firing', this.firing.size > 0);
    if (d.system && d.system.hostname) this.q('.sub').textContent = d.system.hostname + ' · ' + this.spec.url;
    const c = d.custom || {};
    this.q('.custom').textContent = Object.keys(c).map(k => k + ' ' + (c[k] === null ? '–' : c[k])).join(' · ');
  }
}

let hosts = [];
function summary() {
  const count = s => hosts.filter(h => h.state === s).length;
  const live = count('live');
  document.body.dataset.hosts = hosts.length;
  document.body.dataset.live = live;
  const parts = [hosts.length + (hosts.length === 1 ? ' host' : ' hosts'), live + ' live'];
  for (const s of ['connecting', 'reconnecting', 'unreachable', 'login']) {
    const n = count(s);
    if (n) parts.push(n + ' ' + (s === 'login' ? 'need login' : s));
  }
  document.getElementById('summary').textContent = parts.join(' · ');
}

function start() {
  const list = hostList();
  const main = document.getElementById('tiles');
  if (!list.length) {
    main.innerHTML = '<p id="empty">No hosts: start the agent with --peer NAME=URL, or open /fleet?hosts=NAME=URL,…</p>';
  }
  hosts = list.map(s => new Host(s));
  for (const h of hosts) { main.appendChild(h.el); h.connect(); }
  summary();
}
start();
</script>
</body>
</html>
)FLEET";
}

}  // namespace detail
}  // namespace metrics_agent

#endif  // !METRICS_AGENT_NO_DASHBOARD

#endif  // !METRICS_AGENT_SEPARATE_IMPLEMENTATION || METRICS_AGENT_IMPLEMENTATION

#endif  // METRICS_AGENT_HPP

// metrics-agent is distributed under the MIT License: Copyright (c) 2026 The
// metrics-agent authors. See LICENSE for the full text.
