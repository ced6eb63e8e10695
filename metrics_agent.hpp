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
//
// Configuration macros (define before including to override):
//     METRICS_AGENT_VERSION            version string reported by /health
//     METRICS_AGENT_MAX_HEADER_BYTES   largest HTTP request head (else 431)
//     METRICS_AGENT_MAX_BODY_BYTES     largest HTTP request body (else 413)
//     METRICS_AGENT_MAX_BACKLOG_BYTES  output queued for one client before it is dropped
//     METRICS_AGENT_MAX_MESSAGE_BYTES  default largest inbound WebSocket message (else 1009)
//     METRICS_AGENT_MAX_FRAGMENTS      most fragments accepted in one message

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

#ifndef METRICS_AGENT_MAX_FRAGMENTS
#define METRICS_AGENT_MAX_FRAGMENTS 1000000
#endif

// ============================================================================
// Platform detection (the only place that looks at compiler/OS macros)
// ============================================================================

#if defined(_WIN32)
#define METRICS_AGENT_PLATFORM_WINDOWS 1
#elif defined(__linux__)
#define METRICS_AGENT_PLATFORM_LINUX 1
#define METRICS_AGENT_HAS_EPOLL 1
#else
#error "metrics-agent: this platform has no collector yet (see platform/)"
#endif  // _WIN32 / __linux__

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
#include <unordered_map>
#include <utility>
#include <vector>

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
  double user = 0, system = 0, idle = 0, iowait = 0, steal = 0;  // percent
  std::vector<double> per_core;       // usage percent per core
  std::vector<double> frequency_mhz;  // per core; empty where unknown
  std::vector<CpuTimes> core_times;   // cumulative, per core
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

struct Gauge {
  std::string name, help;
  double value = 0;
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
  std::vector<Gauge> custom;
};

}  // namespace metrics_agent

// ============================================================================
// Collector (one file per OS; each fills the Snapshot above)
// ============================================================================

#if defined(METRICS_AGENT_PLATFORM_LINUX)
#include "platform/linux.hpp"
#endif  // METRICS_AGENT_PLATFORM_LINUX

#endif  // METRICS_AGENT_HPP
