// platform/linux.hpp - the Linux collector: /proc, /sys and statvfs.
//
// Included by metrics_agent.hpp; fills metrics_agent::Snapshot and implements
// the collector contract written down beside Snapshot there.
//
//   sample_fast (event-loop thread, every tick; kernel counters only):
//     <proc>/stat, loadavg, meminfo, net/dev, diskstats, uptime, sys/kernel/hostname,
//     <sys>/class/block/<dev>/{partition,slaves} (once per newly seen device)
//   sample_slow (worker thread; may block on storage; fills a SlowPart):
//     <proc>/self/mountinfo, <proc>/filesystems, statvfs of each mount,
//     <sys>/devices/system/cpu/cpuN/cpufreq/scaling_cur_freq, <proc>/cpuinfo,
//     <sys>/class/{hwmon,thermal} temperatures,
//     each call made in a helper process with a 1 s deadline (BlockingCalls)
//   NodeReader (the /metrics route, at most once per tick, only when scraped):
//     <proc>/{meminfo,vmstat,stat,net/*,pressure/*,sys/...,self/*}, adjtimex(2),
//     uname(2), <sys>/class/{net,hwmon,thermal}, <root>/etc/os-release
//
// The two may run at the same time: they share no mutable state.
// Every file is parsed by a pure function over its text (parse_proc_stat,
// parse_meminfo, parse_net_dev, parse_diskstats, parse_mountinfo, ...), which
// the unit tests run on recorded files (tests/fixtures/linux).
#ifndef METRICS_AGENT_PLATFORM_LINUX_HPP
#define METRICS_AGENT_PLATFORM_LINUX_HPP
#if defined(METRICS_AGENT_PLATFORM_LINUX)

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <sys/utsname.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace metrics_agent {
namespace detail {

// ============================================================================
// Reading files
// ============================================================================

inline int open_readonly(const char* path) {
  int fd;
  do {
    fd = ::open(path, O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// Reads whole files into a buffer the caller keeps between calls; it grows
// only when a file outgrows it, so steady ticks never allocate.
class FileReader {
 public:
  explicit FileReader(std::size_t initial_bytes = 16384) : buf_(initial_bytes ? initial_bytes : 1) {}

  // Returns 0 and points `text` into the buffer (valid until the next read),
  // or returns an errno value.
  int read(const char* path, std::string_view& text) {
    const int fd = open_readonly(path);
    if (fd < 0) return errno;
    const int err = read_fd(fd, text);
    ::close(fd);
    return err;
  }

  // The whole file from offset 0, whatever the descriptor's position.
  int read_fd(int fd, std::string_view& text) {
    std::size_t len = 0;
    for (;;) {
      if (len == buf_.size()) {
        if (buf_.size() >= kMaxBytes) return EFBIG;
        buf_.resize(buf_.size() * 2);
      }
      const ssize_t n = ::pread(fd, buf_.data() + len, buf_.size() - len, static_cast<off_t>(len));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      if (n == 0) break;
      len += static_cast<std::size_t>(n);
    }
    text = std::string_view(buf_.data(), len);
    return 0;
  }

 private:
  static constexpr std::size_t kMaxBytes = std::size_t(64) << 20;
  std::vector<char> buf_;
};

// A /proc file kept open between ticks and read again from offset 0: seq_file
// and sysctl files generate their text afresh for each read from the start,
// and the open (a path walk, a new proc inode) costs as much as the read.
// After a failure the file is opened again on the next call.
class KeptFile {
 public:
  explicit KeptFile(std::string path) : path_(std::move(path)) {}
  ~KeptFile() { close(); }
  KeptFile(const KeptFile&) = delete;
  KeptFile& operator=(const KeptFile&) = delete;
  KeptFile(KeptFile&& other) noexcept : path_(std::move(other.path_)), fd_(other.fd_) { other.fd_ = -1; }
  KeptFile& operator=(KeptFile&&) = delete;

  const std::string& path() const { return path_; }

  int read(FileReader& reader, std::string_view& text) {
    if (fd_ >= 0) {
      if (reader.read_fd(fd_, text) == 0) return 0;
      close();  // e.g. ESPIPE from a file that cannot seek: open it afresh below
    }
    fd_ = open_readonly(path_.c_str());
    if (fd_ < 0) return errno;
    const int err = reader.read_fd(fd_, text);
    if (err != 0) close();
    return err;
  }

 private:
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::string path_;
  int fd_ = -1;
};

inline bool is_directory(const char* path) {
  struct stat st;
  return ::stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

inline std::string read_error(const std::string& path, int err) {
  return "cannot read " + path + ": " + std::strerror(err);
}

inline std::string parse_error(const std::string& path, const char* why) {
  return "cannot parse " + path + ": " + why;
}

// ============================================================================
// Text scanning (no locale: /proc prints plain ASCII decimals)
// ============================================================================

class LineReader {
 public:
  explicit LineReader(std::string_view text) : rest_(text) {}
  bool next(std::string_view& line) {
    if (rest_.empty()) return false;
    const std::size_t nl = rest_.find('\n');
    if (nl == std::string_view::npos) {
      line = rest_;
      rest_ = std::string_view();
    } else {
      line = rest_.substr(0, nl);
      rest_.remove_prefix(nl + 1);
    }
    return true;
  }

 private:
  std::string_view rest_;
};

inline bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

inline void skip_blanks(std::string_view& s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
}

inline std::string_view trim(std::string_view s) {
  skip_blanks(s);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

inline std::string_view next_token(std::string_view& s) {
  skip_blanks(s);
  std::size_t n = 0;
  while (n < s.size() && !is_blank(s[n])) ++n;
  const std::string_view token = s.substr(0, n);
  s.remove_prefix(n);
  return token;
}

inline bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

template <class Unsigned>
inline bool parse_unsigned(std::string_view& s, Unsigned& v) {
  skip_blanks(s);
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc()) return false;
  s.remove_prefix(static_cast<std::size_t>(r.ptr - s.data()));
  return true;
}

inline bool parse_u64(std::string_view& s, std::uint64_t& v) { return parse_unsigned(s, v); }

// An unsigned decimal such as "0.24" or "7370.33". Written by hand rather
// than with floating-point std::from_chars, which older toolchains lack.
inline bool parse_decimal(std::string_view& s, double& v) {
  skip_blanks(s);
  const char* p = s.data();
  const char* const end = p + s.size();
  std::uint64_t whole = 0;
  const auto r = std::from_chars(p, end, whole);
  if (r.ec != std::errc()) return false;
  p = r.ptr;
  double frac = 0, scale = 1;
  if (p < end && *p == '.') {
    for (++p; p < end && *p >= '0' && *p <= '9'; ++p) {
      if (scale < 1e18) {
        frac = frac * 10 + (*p - '0');
        scale *= 10;
      }
    }
  }
  v = static_cast<double>(whole) + frac / scale;
  s.remove_prefix(static_cast<std::size_t>(p - s.data()));
  return true;
}

// ============================================================================
// Rates and percentages
// ============================================================================

// Many kernel counters are `unsigned long`, 32 bits wide on 32-bit kernels.
// A value below the previous one is a wrap when the previous one fit in 32
// bits; otherwise the counter was reset (interface re-created, driver
// reloaded) and the interval has no meaningful delta.
inline std::uint64_t counter_delta(std::uint64_t prev, std::uint64_t cur) {
  if (cur >= prev) return cur - prev;
  if (prev <= 0xffffffffULL) return (0x100000000ULL - prev) + cur;
  return 0;
}

inline double per_second(double amount, double seconds) {
  if (!(seconds > 0) || !std::isfinite(seconds) || !(amount >= 0)) return 0;
  const double r = amount / seconds;
  return std::isfinite(r) ? r : 0;
}

inline double counter_rate(std::uint64_t prev, std::uint64_t cur, double seconds) {
  return per_second(static_cast<double>(counter_delta(prev, cur)), seconds);
}

inline double percent_of(double part, double whole) {
  if (!(whole > 0)) return 0;
  const double p = part / whole * 100.0;
  if (!(p > 0)) return 0;  // also NaN
  return p < 100.0 ? p : 100.0;
}

// ============================================================================
// /proc/stat (Documentation/filesystems/proc.rst, "Miscellaneous kernel statistics")
// ============================================================================

// Clock ticks (USER_HZ) since boot.
struct CpuTicks {
  std::uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0,
                softirq = 0, steal = 0;
};

struct CoreTicks {
  unsigned id = 0;  // N of the cpuN line
  CpuTicks ticks;
};

struct ProcStat {
  CpuTicks total;
  std::vector<CoreTicks> cores;  // cpuN lines in file order; offline cores are absent
  std::uint64_t btime = 0;       // boot time, seconds since the epoch; 0 if absent
};

// guest and guest_nice are not read: the kernel already adds them to user and nice.
inline bool parse_cpu_fields(std::string_view s, CpuTicks& t) {
  t = CpuTicks{};
  std::uint64_t* const fields[] = {&t.user, &t.nice,    &t.system,  &t.idle,
                                   &t.iowait, &t.irq, &t.softirq, &t.steal};
  int n = 0;
  for (std::uint64_t* f : fields) {
    if (!parse_u64(s, *f)) break;
    ++n;
  }
  return n >= 4;  // Linux 2.4 printed only user, nice, system and idle.
}

// Returns false when the text has no aggregate "cpu" line.
inline bool parse_proc_stat(std::string_view text, ProcStat& out) {
  out.total = CpuTicks{};
  out.cores.clear();
  out.btime = 0;
  bool have_total = false;
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    if (starts_with(line, "cpu")) {
      std::string_view rest = line.substr(3);
      if (!rest.empty() && is_blank(rest.front())) {
        have_total = parse_cpu_fields(rest, out.total);
        continue;
      }
      CoreTicks core;
      const auto r = std::from_chars(rest.data(), rest.data() + rest.size(), core.id);
      if (r.ec != std::errc()) continue;
      rest.remove_prefix(static_cast<std::size_t>(r.ptr - rest.data()));
      if (parse_cpu_fields(rest, core.ticks)) out.cores.push_back(core);
    } else if (starts_with(line, "btime ")) {
      std::string_view rest = line.substr(6);
      if (!parse_u64(rest, out.btime)) out.btime = 0;
    }
  }
  return have_total;
}

struct CpuShares {
  double usage = 0, user = 0, nice = 0, system = 0, irq = 0, softirq = 0, idle = 0, iowait = 0,
         steal = 0;  // percent
};

inline std::uint64_t tick_delta(std::uint64_t prev, std::uint64_t cur) {
  return cur > prev ? cur - prev : 0;
}

// Shares of the time between two readings, with psutil's meanings (user
// without nice, system without irq and softirq), so that the eight shares add
// up to 100. A field that went backwards counts as zero (proc.rst warns that
// iowait can decrease). usage is the non-idle share, iowait counting as idle.
// Returns false when no time passed.
inline bool cpu_shares(const CpuTicks& prev, const CpuTicks& cur, CpuShares& out) {
  const double user = static_cast<double>(tick_delta(prev.user, cur.user));
  const double nice = static_cast<double>(tick_delta(prev.nice, cur.nice));
  const double system = static_cast<double>(tick_delta(prev.system, cur.system));
  const double irq = static_cast<double>(tick_delta(prev.irq, cur.irq));
  const double softirq = static_cast<double>(tick_delta(prev.softirq, cur.softirq));
  const double idle = static_cast<double>(tick_delta(prev.idle, cur.idle));
  const double iowait = static_cast<double>(tick_delta(prev.iowait, cur.iowait));
  const double steal = static_cast<double>(tick_delta(prev.steal, cur.steal));
  const double total = user + nice + system + irq + softirq + idle + iowait + steal;
  if (!(total > 0)) return false;
  out.user = percent_of(user, total);
  out.nice = percent_of(nice, total);
  out.system = percent_of(system, total);
  out.irq = percent_of(irq, total);
  out.softirq = percent_of(softirq, total);
  out.idle = percent_of(idle, total);
  out.iowait = percent_of(iowait, total);
  out.steal = percent_of(steal, total);
  out.usage = percent_of(total - idle - iowait, total);
  return true;
}

inline CpuTimes cpu_times_seconds(const CpuTicks& t, double ticks_per_second) {
  const double hz = ticks_per_second > 0 ? ticks_per_second : 100.0;
  CpuTimes s;
  s.user = static_cast<double>(t.user) / hz;
  s.nice = static_cast<double>(t.nice) / hz;
  s.system = static_cast<double>(t.system) / hz;
  s.idle = static_cast<double>(t.idle) / hz;
  s.iowait = static_cast<double>(t.iowait) / hz;
  s.irq = static_cast<double>(t.irq) / hz;
  s.softirq = static_cast<double>(t.softirq) / hz;
  s.steal = static_cast<double>(t.steal) / hz;
  return s;
}

// ============================================================================
// /proc/loadavg, /proc/uptime
// ============================================================================

inline bool parse_loadavg(std::string_view text, LoadStats& out) {
  return parse_decimal(text, out.load1) && parse_decimal(text, out.load5) &&
         parse_decimal(text, out.load15);
}

inline bool parse_uptime(std::string_view text, double& uptime_seconds) {
  return parse_decimal(text, uptime_seconds);
}

// ============================================================================
// /proc/meminfo (proc.rst, "meminfo")
// ============================================================================

struct MemInfo {  // bytes
  std::uint64_t total = 0, free = 0, available = 0, buffers = 0, cached = 0,
                sreclaimable = 0, swap_total = 0, swap_free = 0;
  bool has_total = false, has_available = false;
};

// Returns false without a non-zero MemTotal.
inline bool parse_meminfo(std::string_view text, MemInfo& m) {
  m = MemInfo{};
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, colon);
    std::string_view rest = line.substr(colon + 1);
    std::uint64_t value = 0;
    if (!parse_u64(rest, value)) continue;
    if (trim(rest) == "kB") value *= 1024;
    if (key == "MemTotal") {
      m.total = value;
      m.has_total = true;
    } else if (key == "MemFree") {
      m.free = value;
    } else if (key == "MemAvailable") {
      m.available = value;
      m.has_available = true;
    } else if (key == "Buffers") {
      m.buffers = value;
    } else if (key == "Cached") {
      m.cached = value;
    } else if (key == "SReclaimable") {
      m.sreclaimable = value;
    } else if (key == "SwapTotal") {
      m.swap_total = value;
    } else if (key == "SwapFree") {
      m.swap_free = value;
    }
  }
  return m.has_total && m.total > 0;
}

inline void memory_stats(const MemInfo& m, MemoryStats& out) {
  out.total_bytes = m.total;
  out.free_bytes = m.free;
  out.buffers_bytes = m.buffers;
  // Page cache plus reclaimable slab: the "cache" column of procps-ng free(1).
  out.cached_bytes = m.cached + m.sreclaimable;
  out.page_cache_bytes = m.cached;
  out.slab_reclaimable_bytes = m.sreclaimable;
  std::uint64_t available = m.available;
  // MemAvailable appeared in Linux 3.14; before it, the classic estimate of
  // what can be had without swapping is free + buffers + cache.
  if (!m.has_available) available = m.free + m.buffers + out.cached_bytes;
  if (available > m.total) available = m.total;
  out.available_bytes = available;
  out.used_bytes = m.total - available;
  out.usage_percent = percent_of(static_cast<double>(out.used_bytes), static_cast<double>(m.total));
  out.swap_total_bytes = m.swap_total;
  out.swap_free_bytes = m.swap_free < m.swap_total ? m.swap_free : m.swap_total;
  out.swap_used_bytes = m.swap_total - out.swap_free_bytes;
  out.swap_percent = percent_of(static_cast<double>(out.swap_used_bytes), static_cast<double>(m.swap_total));
}

// ============================================================================
// /proc/net/dev
// ============================================================================

struct NetDevCounters {
  std::string_view name;  // points into the parsed text
  std::uint64_t rx_bytes = 0, rx_packets = 0, rx_errors = 0, rx_drops = 0;
  std::uint64_t tx_bytes = 0, tx_packets = 0, tx_errors = 0, tx_drops = 0;
};

// Interface names cannot contain ':' (dev_valid_name), so the first colon ends
// the name; Linux 2.6 printed no blank after it ("eth0:123 ...").
inline void parse_net_dev(std::string_view text, std::vector<NetDevCounters>& out) {
  out.clear();
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // the two header lines
    NetDevCounters c;
    c.name = trim(line.substr(0, colon));
    if (c.name.empty()) continue;
    std::string_view rest = line.substr(colon + 1);
    std::uint64_t v[16];
    int n = 0;
    while (n < 16 && parse_u64(rest, v[n])) ++n;
    if (n < 16) continue;
    // Receive: bytes packets errs drop fifo frame compressed multicast;
    // transmit: bytes packets errs drop fifo colls carrier compressed.
    c.rx_bytes = v[0];
    c.rx_packets = v[1];
    c.rx_errors = v[2];
    c.rx_drops = v[3];
    c.tx_bytes = v[8];
    c.tx_packets = v[9];
    c.tx_errors = v[10];
    c.tx_drops = v[11];
    out.push_back(c);
  }
}

// ============================================================================
// /proc/diskstats (Documentation/admin-guide/iostats.rst)
// ============================================================================

struct DiskstatsEntry {
  unsigned major = 0, minor = 0;
  std::string_view name;  // points into the parsed text
  std::uint64_t reads = 0, reads_merged = 0, read_sectors = 0, read_ms = 0;
  std::uint64_t writes = 0, writes_merged = 0, write_sectors = 0, write_ms = 0;
  std::uint64_t in_flight = 0, io_ms = 0, weighted_io_ms = 0;
};

// Sectors in /proc/diskstats are always 512 bytes, whatever the device's
// sector size (iostats.rst).
constexpr std::uint64_t kDiskstatsSectorBytes = 512;

// Eleven fields follow the name (4.18 appends four discard fields and 5.5 two
// flush fields, not read here). Kernels before 2.6.25 printed partitions with
// four: reads, sectors read, writes, sectors written.
inline void parse_diskstats(std::string_view text, std::vector<DiskstatsEntry>& out) {
  out.clear();
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    DiskstatsEntry e;
    if (!parse_unsigned(line, e.major) || !parse_unsigned(line, e.minor)) continue;
    e.name = next_token(line);
    if (e.name.empty()) continue;
    std::uint64_t v[11];
    int n = 0;
    while (n < 11 && parse_u64(line, v[n])) ++n;
    if (n == 11) {
      e.reads = v[0];
      e.reads_merged = v[1];
      e.read_sectors = v[2];
      e.read_ms = v[3];
      e.writes = v[4];
      e.writes_merged = v[5];
      e.write_sectors = v[6];
      e.write_ms = v[7];
      e.in_flight = v[8];
      e.io_ms = v[9];
      e.weighted_io_ms = v[10];
    } else if (n == 4) {
      e.reads = v[0];
      e.read_sectors = v[1];
      e.writes = v[2];
      e.write_sectors = v[3];
    } else {
      continue;
    }
    out.push_back(e);
  }
}

// Block devices whose I/O is not storage I/O of their own: loop (files already
// counted on the disk below), ram and zram (memory), fd (floppy). dm-* and md*
// are kept, as psutil does, but see is_stacked_device_name.
inline bool is_memory_or_loop_device(std::string_view name) {
  const std::string_view prefixes[] = {"loop", "ram", "zram", "fd"};
  for (std::string_view p : prefixes) {
    if (starts_with(name, p) && name.size() > p.size() &&
        name[p.size()] >= '0' && name[p.size()] <= '9')
      return true;
  }
  return false;
}

inline bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// Fallback for hosts without sysfs: the names of partitions of the common
// drivers, sda1 / vdb2 / xvda1 / hda3 (letters, then digits) and nvme0n1p2 /
// mmcblk0p1 (digits, 'p', digits).
inline bool looks_like_partition(std::string_view name) {
  std::string_view rest;
  if (starts_with(name, "xvd")) {
    rest = name.substr(3);
  } else if (name.size() > 2 && (name[0] == 's' || name[0] == 'v' || name[0] == 'h') && name[1] == 'd') {
    rest = name.substr(2);
  }
  if (!rest.empty() && rest[0] >= 'a' && rest[0] <= 'z') {
    std::size_t i = 0;
    while (i < rest.size() && rest[i] >= 'a' && rest[i] <= 'z') ++i;
    return all_digits(rest.substr(i));
  }
  if (starts_with(name, "nvme") || starts_with(name, "mmcblk")) {
    const std::size_t p = name.rfind('p');
    return p != std::string_view::npos && p > 0 && name[p - 1] >= '0' && name[p - 1] <= '9' &&
           all_digits(name.substr(p + 1));
  }
  return false;
}

// Fallback for hosts without sysfs: device-mapper and md arrays sit on top of
// other disks.
inline bool is_stacked_device_name(std::string_view name) {
  return starts_with(name, "dm-") || (starts_with(name, "md") && all_digits(name.substr(2)));
}

// ============================================================================
// /proc/self/mountinfo (proc.rst, "/proc/<pid>/mountinfo") and /proc/filesystems
// ============================================================================

struct MountEntry {
  unsigned major = 0, minor = 0;
  std::string root, mountpoint, options, fstype, source, super_options;
};

// The kernel escapes space, tab, newline and backslash in paths as \ooo.
inline std::string decode_mount_escapes(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool escape = s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' &&
                        s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7';
    if (escape) {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue":
// id, parent, major:minor, root, mount point, options, optional fields up to
// "-", then type, source, super options.
inline bool parse_mountinfo_line(std::string_view line, MountEntry& e) {
  std::uint64_t id = 0, parent = 0;
  if (!parse_u64(line, id) || !parse_u64(line, parent)) return false;
  skip_blanks(line);
  if (!parse_unsigned(line, e.major) || line.empty() || line.front() != ':') return false;
  line.remove_prefix(1);
  if (!parse_unsigned(line, e.minor)) return false;
  const std::string_view root = next_token(line);
  const std::string_view mountpoint = next_token(line);
  const std::string_view options = next_token(line);
  if (root.empty() || mountpoint.empty()) return false;
  for (;;) {
    const std::string_view optional = next_token(line);
    if (optional.empty()) return false;
    if (optional == "-") break;
  }
  const std::string_view fstype = next_token(line);
  const std::string_view source = next_token(line);
  const std::string_view super_options = next_token(line);
  if (fstype.empty()) return false;
  e.root = decode_mount_escapes(root);
  e.mountpoint = decode_mount_escapes(mountpoint);
  e.options.assign(options.data(), options.size());
  e.fstype = decode_mount_escapes(fstype);
  e.source = decode_mount_escapes(source);
  e.super_options.assign(super_options.data(), super_options.size());
  return true;
}

inline void parse_mountinfo(std::string_view text, std::vector<MountEntry>& out) {
  out.clear();
  LineReader lines(text);
  std::string_view line;
  MountEntry e;
  while (lines.next(line)) {
    if (parse_mountinfo_line(line, e)) out.push_back(e);
  }
}

// Filesystem types backed by a block device: /proc/filesystems lines without
// "nodev", plus zfs, which registers as nodev. This is the rule of psutil's
// disk_partitions(all=False).
inline void parse_filesystems(std::string_view text, std::vector<std::string>& out) {
  out.clear();
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    std::string_view rest = line;
    std::string_view first = next_token(rest);
    if (first.empty()) continue;
    if (first == "nodev") {
      if (next_token(rest) == "zfs") out.emplace_back("zfs");
      continue;
    }
    out.emplace_back(first);
  }
}

inline bool has_mount_option(std::string_view options, std::string_view name) {
  while (!options.empty()) {
    const std::size_t comma = options.find(',');
    const std::string_view opt = options.substr(0, comma);
    if (opt == name) return true;
    if (comma == std::string_view::npos) break;
    options.remove_prefix(comma + 1);
  }
  return false;
}

// The mounts reported as partitions: a real source device, a block-backed
// type (see parse_filesystems; with no list, a source that is a path), never
// squashfs (read-only images such as snaps, always full), and only the first
// mount of each device, so bind mounts and btrfs subvolumes appear once.
//
// The mount at index `watched` (the --disk filesystem) is always kept, whatever
// its type (overlay, tmpfs, NFS, ...), unless a kept mount has its mount point.
inline std::vector<std::size_t> select_partitions(const std::vector<MountEntry>& mounts,
                                                  const std::vector<std::string>& block_fstypes,
                                                  std::size_t watched = std::size_t(-1)) {
  std::vector<std::size_t> keep;
  for (std::size_t i = 0; i < mounts.size(); ++i) {
    const MountEntry& m = mounts[i];
    if (i == watched) {
      bool shown = false;
      for (std::size_t k : keep)
        if (mounts[k].mountpoint == m.mountpoint) shown = true;
      if (!shown) keep.push_back(i);
      continue;
    }
    if (watched < mounts.size() && m.mountpoint == mounts[watched].mountpoint) continue;
    if (m.source.empty() || m.source == "none" || m.fstype == "squashfs") continue;
    bool block_backed = false;
    if (block_fstypes.empty()) {
      block_backed = m.source.front() == '/';
    } else {
      for (const std::string& t : block_fstypes)
        if (t == m.fstype) block_backed = true;
    }
    if (!block_backed) continue;
    bool duplicate = false;
    for (std::size_t k : keep)
      if (mounts[k].source == m.source) duplicate = true;
    if (!duplicate) keep.push_back(i);
  }
  return keep;
}

// True when `path` is `mountpoint` or below it.
inline bool path_is_under(std::string_view path, std::string_view mountpoint) {
  if (mountpoint == "/") return !path.empty() && path.front() == '/';
  if (!starts_with(path, mountpoint)) return false;
  return path.size() == mountpoint.size() || path[mountpoint.size()] == '/';
}

// The mount that holds `path`: the longest mount point above it; of equal
// ones the last, which is the one on top.
inline const MountEntry* find_mount_for(const std::vector<MountEntry>& mounts, std::string_view path) {
  const MountEntry* best = nullptr;
  for (const MountEntry& m : mounts) {
    if (!path_is_under(path, m.mountpoint)) continue;
    if (!best || m.mountpoint.size() >= best->mountpoint.size()) best = &m;
  }
  return best;
}

// ============================================================================
// Filesystem usage (statvfs)
// ============================================================================

struct FsCounts {
  std::uint64_t block_size = 0, blocks = 0, blocks_free = 0, blocks_avail = 0;
  std::uint64_t files = 0, files_free = 0;
  bool readonly = false;
};

// Returns 0 or an errno value. glibc's statvfs64 keeps 64-bit counts on 32-bit
// targets; musl's statvfs always does.
inline int filesystem_counts(const char* path, FsCounts& c) {
#if defined(METRICS_AGENT_HAS_STATVFS64)
  struct statvfs64 st;
  if (::statvfs64(path, &st) != 0) return errno;
#else   // !METRICS_AGENT_HAS_STATVFS64
  struct statvfs st;
  if (::statvfs(path, &st) != 0) return errno;
#endif  // METRICS_AGENT_HAS_STATVFS64
  c.block_size = st.f_frsize ? st.f_frsize : st.f_bsize;
  c.blocks = st.f_blocks;
  c.blocks_free = st.f_bfree;
  c.blocks_avail = st.f_bavail;
  c.files = st.f_files;
  c.files_free = st.f_ffree;
  c.readonly = (st.f_flag & ST_RDONLY) != 0;
  return 0;
}

// Usage as df(1) shows it: used / (used + available to unprivileged users),
// so the root reserve does not count as free.
inline void partition_usage(const FsCounts& c, PartitionStats& p) {
  const std::uint64_t bfree = c.blocks_free < c.blocks ? c.blocks_free : c.blocks;
  p.total_bytes = c.blocks * c.block_size;
  p.used_bytes = (c.blocks - bfree) * c.block_size;
  p.free_bytes = c.blocks_avail * c.block_size;
  p.bfree_bytes = bfree * c.block_size;
  p.files = c.files;
  p.files_free = c.files_free;
  p.readonly = p.readonly || c.readonly;
  p.usage_percent = percent_of(static_cast<double>(p.used_bytes),
                               static_cast<double>(p.used_bytes) + static_cast<double>(p.free_bytes));
}

// ============================================================================
// Blocking calls in helper processes
// ============================================================================

// Why processes and not threads: a thread inside statvfs on a hung FUSE or
// NFS mount sleeps uninterruptibly once the request has reached the server
// (fs/fuse/dev.c, request_wait_answer), and the kernel reports a process dead
// only when its last thread is: the agent's exit status would wait for the
// filesystem (54 s in one measured run). So the sampler thread makes its
// blocking calls (statvfs, realpath, reads of sysfs and /proc files) through
// small helper processes and waits for each answer at most kCallDeadline. A
// helper that does not answer is abandoned with its call; the next call goes
// to another helper, and calls naming the same path fail at once until the
// late answer arrives, so one hung mount never delays or blanks the others.
//
// The header is also embedded in other programs, so a helper is never an exec
// of some binary: it is a fork of the calling thread that only runs
// async-signal-safe system calls on fixed buffers (statvfs, open, read, write;
// realpath with a caller's buffer), fit for a child of a multithreaded process.
// It is forked twice, so init reaps it and the embedder never sees its exit.
// It keeps only its two pipe ends (a listening socket held by a helper stuck
// in the kernel would block a restart on the same port), and ends when its
// request pipe reports end of file: when the sampler closes it or its process
// dies, hence without PR_SET_PDEATHSIG, which would follow the forking thread.
// Where fork fails (a sandbox), the calls run directly, as before.
class BlockingCalls {
 public:
  static constexpr double kCallDeadline = 1.0;  // seconds
  static constexpr std::size_t kMaxHung = 8;    // helpers left waiting in the kernel

  BlockingCalls() = default;
  ~BlockingCalls() {
    for (Helper& h : idle_) h.close_fds();
    for (Helper& h : hung_) h.close_fds();
  }
  BlockingCalls(const BlockingCalls&) = delete;
  BlockingCalls& operator=(const BlockingCalls&) = delete;

  // From now on, calls go through helper processes (the sampler thread).
  void use_helpers() { use_helpers_ = true; }

  // Each returns 0 or an errno value; ETIMEDOUT when no answer came in time
  // (see describe).
  int read(const char* path, std::string_view& text) {
    if (!use_helpers_ || !available()) return reader_.read(path, text);
    const int err = call(kOpRead, path, data_);
    if (err == kNoHelper) return reader_.read(path, text);
    if (err == 0) text = data_;
    return err;
  }
  int statvfs(const char* path, FsCounts& out) {
    if (!use_helpers_ || !available()) return filesystem_counts(path, out);
    const int err = call(kOpStatvfs, path, data_);
    if (err == kNoHelper) return filesystem_counts(path, out);
    if (err == 0 && data_.size() != sizeof(FsCounts)) return EPROTO;
    if (err == 0) std::memcpy(&out, data_.data(), sizeof(FsCounts));
    return err;
  }
  // Fills `out` (PATH_MAX bytes) with the canonical path.
  bool realpath(const char* path, char* out) {
    if (!use_helpers_ || !available()) return ::realpath(path, out) != nullptr;
    const int err = call(kOpRealpath, path, data_);
    if (err == kNoHelper) return ::realpath(path, out) != nullptr;
    if (err != 0 || data_.empty() || data_.size() >= PATH_MAX) return false;
    std::memcpy(out, data_.data(), data_.size());
    out[data_.size()] = '\0';
    return true;
  }

  static std::string describe(int err) {
    if (err == ETIMEDOUT) return "no answer within 1 s (hung filesystem?)";
    return std::strerror(err);
  }

  std::size_t hung_count() const { return hung_.size(); }

 private:
  enum : std::uint32_t { kOpStatvfs = 1, kOpRead = 2, kOpRealpath = 3 };
  // A request is {op, length, path}; an answer is records {err, length, last}
  // each followed by `length` bytes, up to the one with last = 1.
  struct Head {
    std::uint32_t a = 0, len = 0, last = 0;
  };
  static constexpr int kNoHelper = -1;
  static constexpr std::size_t kMaxPath = 3072;   // a request fits in PIPE_BUF: one atomic write
  static constexpr std::size_t kMaxAnswer = std::size_t(64) << 20;

  struct Helper {
    int req = -1, rep = -1;
    std::string key;     // the call it hangs in (hung_ only)
    std::string answer;  // bytes of the answer received so far
    void close_fds() {
      if (req >= 0) ::close(req);
      if (rep >= 0) ::close(rep);
      req = rep = -1;
    }
  };

  bool available() const { return !spawn_failed_; }
  // ---- the helper's side: async-signal-safe calls only ----
  static bool write_all(int fd, const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      const ssize_t w = ::write(fd, c, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      c += w;
      n -= std::size_t(w);
    }
    return true;
  }
  static bool read_all(int fd, void* p, std::size_t n) {
    char* c = static_cast<char*>(p);
    while (n > 0) {
      const ssize_t r = ::read(fd, c, n);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      c += r;
      n -= std::size_t(r);
    }
    return true;
  }
  static bool answer(int fd, int err, const void* data, std::size_t len, bool last) {
    Head h;
    h.a = std::uint32_t(err);
    h.len = std::uint32_t(len);
    h.last = last ? 1 : 0;
    return write_all(fd, &h, sizeof h) && (len == 0 || write_all(fd, data, len));
  }
  [[noreturn]] static void helper_main(int req, int rep) {
    static char path[kMaxPath + 1];
    static char buf[16384];
    for (;;) {
      Head h;
      if (!read_all(req, &h, sizeof h) || h.len > kMaxPath || !read_all(req, path, h.len)) ::_exit(0);
      path[h.len] = '\0';
      bool ok = true;
      if (h.a == kOpStatvfs) {
        FsCounts c;
        const int err = filesystem_counts(path, c);
        ok = answer(rep, err, &c, err ? 0 : sizeof c, true);
      } else if (h.a == kOpRealpath) {
        static char out[PATH_MAX];
        const bool got = ::realpath(path, out) != nullptr;
        ok = answer(rep, got ? 0 : errno, out, got ? std::strlen(out) : 0, true);
      } else if (h.a == kOpRead) {
        const int fd = open_readonly(path);
        if (fd < 0) {
          ok = answer(rep, errno, nullptr, 0, true);
        } else {
          int err = 0;
          for (;;) {
            const ssize_t n = ::read(fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
              err = n < 0 ? errno : 0;
              break;
            }
            if (!(ok = answer(rep, 0, buf, std::size_t(n), false))) break;
          }
          ::close(fd);  // before the last record: the caller sees the helper idle
          if (ok) ok = answer(rep, err, nullptr, 0, true);
        }
      } else {
        ok = answer(rep, EINVAL, nullptr, 0, true);
      }
      if (!ok) ::_exit(0);
    }
  }
  static void close_from(unsigned lo, unsigned hi) {  // [lo, hi]
    if (lo > hi) return;
#if defined(SYS_close_range)
    if (::syscall(SYS_close_range, lo, hi, 0) == 0) return;
#endif  // SYS_close_range
    struct rlimit rl;
    unsigned top = ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1048576 ? unsigned(rl.rlim_cur) : 1048576;
    for (unsigned fd = lo; fd <= hi && fd < top; ++fd) ::close(int(fd));
  }
  [[noreturn]] static void become_helper(int req, int rep) {
    const int r = ::fcntl(req, F_DUPFD, 3), w = ::fcntl(rep, F_DUPFD, 3);
    if (r < 0 || w < 0) ::_exit(1);
    const int null = ::open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; ++fd)
      if (null >= 0 && null != fd) ::dup2(null, fd);
    const unsigned lo = unsigned(r < w ? r : w), hi = unsigned(r < w ? w : r);
    close_from(3, lo - 1);
    close_from(lo + 1, hi - 1);
    close_from(hi + 1, ~0U);
    sigset_t none;
    sigemptyset(&none);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) ::signal(sig, SIG_DFL);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::prctl(PR_SET_NAME, "metrics-helper", 0, 0, 0);
    helper_main(r, w);
  }

  // ---- the sampler's side ----
  bool spawn(Helper& h) {
    int req[2], rep[2];
    if (::pipe2(req, O_CLOEXEC) != 0) return false;
    if (::pipe2(rep, O_CLOEXEC) != 0) {
      ::close(req[0]);
      ::close(req[1]);
      return false;
    }
    const pid_t mid = ::fork();
    if (mid == 0) {
      if (::fork() == 0) become_helper(req[0], rep[1]);
      ::_exit(0);
    }
    ::close(req[0]);
    ::close(rep[1]);
    if (mid < 0) {
      ::close(req[1]);
      ::close(rep[0]);
      return false;
    }
    int status;
    while (::waitpid(mid, &status, 0) < 0 && errno == EINTR) {
    }
    ::fcntl(rep[0], F_SETFL, ::fcntl(rep[0], F_GETFL) | O_NONBLOCK);
    h.req = req[1];
    h.rep = rep[0];
    return true;
  }

  // Moves what the helper has sent into h.answer; true once it is complete.
  // `err` is then the call's result and `out` its data. A closed pipe or an
  // oversized answer sets `broken`.
  static bool collect(Helper& h, int& err, std::string& out, bool& broken) {
    char buf[16384];
    for (;;) {
      const ssize_t n = ::read(h.rep, buf, sizeof buf);
      if (n > 0) {
        h.answer.append(buf, std::size_t(n));
        if (h.answer.size() > kMaxAnswer + 4096) {
          broken = true;
          return false;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) broken = true;
      break;
    }
    // Parse the records received so far.
    out.clear();
    std::size_t at = 0;
    while (h.answer.size() - at >= sizeof(Head)) {
      Head head;
      std::memcpy(&head, h.answer.data() + at, sizeof head);
      if (h.answer.size() - at - sizeof head < head.len) break;
      out.append(h.answer, at + sizeof head, head.len);
      at += sizeof head + head.len;
      if (head.last) {
        err = int(head.a);
        h.answer.clear();
        broken = false;
        return true;
      }
    }
    return false;
  }

  // Late answers free their helpers (and their paths).
  void reap_hung() {
    std::string scratch;
    for (std::size_t i = 0; i < hung_.size();) {
      int err = 0;
      bool broken = false;
      Helper& h = hung_[i];
      const bool done = collect(h, err, scratch, broken);
      if (done || broken) {
        h.key.clear();
        if (done && idle_.size() < 2)
          idle_.push_back(std::move(h));
        else
          h.close_fds();
        hung_.erase(hung_.begin() + std::ptrdiff_t(i));
      } else {
        ++i;
      }
    }
  }

  int call(std::uint32_t op, const char* path, std::string& out) {
    out.clear();
    const std::size_t len = std::strlen(path);
    if (len > kMaxPath) return ENAMETOOLONG;
    if (!sigpipe_blocked_) {  // a helper that died turns a write into EPIPE, not a signal
      sigset_t s;
      sigemptyset(&s);
      sigaddset(&s, SIGPIPE);
      ::pthread_sigmask(SIG_BLOCK, &s, nullptr);
      sigpipe_blocked_ = true;
    }
    reap_hung();
    std::string key(1, char('0' + op));
    key.append(path, len);
    for (const Helper& h : hung_)
      if (h.key == key) return ETIMEDOUT;
    if (hung_.size() >= kMaxHung) return ETIMEDOUT;
    Helper h;
    if (!idle_.empty()) {
      h = std::move(idle_.back());
      idle_.pop_back();
    } else if (!spawn(h)) {
      spawn_failed_ = true;  // from now on, direct calls
      return kNoHelper;
    }
    Head head;
    head.a = op;
    head.len = std::uint32_t(len);
    std::string request(reinterpret_cast<const char*>(&head), sizeof head);
    request.append(path, len);
    if (!write_all(h.req, request.data(), request.size())) {
      h.close_fds();
      return EIO;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(kCallDeadline);
    for (;;) {
      int err = 0;
      bool broken = false;
      if (collect(h, err, out, broken)) {
        idle_.push_back(std::move(h));
        return err;
      }
      if (broken) {
        h.close_fds();
        out.clear();
        return EIO;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      struct pollfd p = {h.rep, POLLIN, 0};
      ::poll(&p, 1, int(left.count()) + 1);
    }
    out.clear();
    h.key = std::move(key);
    hung_.push_back(std::move(h));
    return ETIMEDOUT;
  }

  bool use_helpers_ = false, spawn_failed_ = false, sigpipe_blocked_ = false;
  FileReader reader_{4096};  // direct calls
  std::string data_;         // the latest answer
  std::vector<Helper> idle_, hung_;
};

// ============================================================================
// CPU frequency: /sys/devices/system/cpu (cpufreq) and /proc/cpuinfo
// ============================================================================

// A cpu list such as "0-3,5,8-9" (Documentation/ABI/stable/sysfs-devices-system-cpu).
inline bool parse_cpu_list(std::string_view text, std::vector<unsigned>& out) {
  out.clear();
  text = trim(text);
  while (!text.empty()) {
    unsigned first = 0, last = 0;
    if (!parse_unsigned(text, first)) return false;
    last = first;
    if (!text.empty() && text.front() == '-') {
      text.remove_prefix(1);
      if (!parse_unsigned(text, last) || last < first) return false;
    }
    if (last - first > 65536 || out.size() > 65536) return false;
    for (unsigned id = first; id <= last; ++id) out.push_back(id);
    if (text.empty()) break;
    if (text.front() != ',') return false;
    text.remove_prefix(1);
  }
  return !out.empty();
}

// The "cpu MHz : 2596.130" lines of x86 and some other architectures, one per
// online processor. s390's "cpu MHz dynamic" and "cpu MHz static" are not it.
inline void parse_cpuinfo_mhz(std::string_view text, std::vector<double>& out) {
  out.clear();
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    if (!starts_with(line, "cpu MHz")) continue;
    std::string_view rest = line.substr(7);
    skip_blanks(rest);
    if (rest.empty() || rest.front() != ':') continue;
    rest.remove_prefix(1);
    double mhz = 0;
    if (parse_decimal(rest, mhz)) out.push_back(mhz);
  }
}

// ============================================================================
// cgroups: the agent's own container (Documentation/admin-guide/cgroup-v2.rst;
// cgroup-v1/{cpuacct,memory,pids}.rst; scheduler/sched-bwc.rst)
// ============================================================================

// One line of /proc/self/cgroup: "hierarchy-ID:controller-list:cgroup-path".
// cgroup v2's line is "0::path"; a v1 hierarchy lists its controllers.
struct CgroupLine {
  bool unified = false;
  std::string controllers, path;
};

inline void parse_proc_cgroup(std::string_view text, std::vector<CgroupLine>& out) {
  out.clear();
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const std::size_t c1 = line.find(':');
    const std::size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    CgroupLine l;
    const std::string_view id = line.substr(0, c1), controllers = line.substr(c1 + 1, c2 - c1 - 1);
    l.unified = id == "0" && controllers.empty();
    l.controllers.assign(controllers.data(), controllers.size());
    const std::string_view path = trim(line.substr(c2 + 1));
    l.path.assign(path.data(), path.size());
    if (!l.path.empty() && l.path.front() == '/') out.push_back(std::move(l));
  }
}

// Where each controller's files are for this process; an empty directory
// means the controller was not found. v1 hierarchies win over v2 for the
// same controller (a hybrid host mounts both, and the v2 one is then empty).
struct CgroupDirs {
  struct Dir {
    int version = 0;  // 0: not found
    std::string dir, path;
  };
  Dir cpu, cpuacct, memory, pids;
};

// The directory of `path` in a hierarchy mounted at `m`. The mount shows the
// hierarchy from m.root down (a container sees its own cgroup as the root).
inline std::string cgroup_dir(const MountEntry& m, std::string_view path) {
  std::string_view rel = path;
  if (m.root != "/") {
    const bool under = starts_with(rel, m.root) && (rel.size() == m.root.size() || rel[m.root.size()] == '/');
    rel = under ? rel.substr(m.root.size()) : std::string_view();
  }
  if (rel == "/") rel = std::string_view();
  return m.mountpoint + std::string(rel);
}

inline bool list_has(std::string_view list, std::string_view name) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    if (list.substr(0, comma) == name) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

inline CgroupDirs find_cgroup_dirs(const std::vector<CgroupLine>& lines, const std::vector<MountEntry>& mounts) {
  CgroupDirs d;
  auto locate = [&](std::string_view controller, CgroupDirs::Dir& out) {
    for (const CgroupLine& l : lines) {
      if (l.unified || !list_has(l.controllers, controller)) continue;
      for (const MountEntry& m : mounts)
        if (m.fstype == "cgroup" && list_has(m.super_options, controller)) {
          out = {1, cgroup_dir(m, l.path), l.path};
          return;
        }
    }
    for (const CgroupLine& l : lines) {
      if (!l.unified) continue;
      for (const MountEntry& m : mounts)
        if (m.fstype == "cgroup2") {
          out = {2, cgroup_dir(m, l.path), l.path};
          return;
        }
    }
  };
  locate("cpu", d.cpu);
  locate("cpuacct", d.cpuacct);
  locate("memory", d.memory);
  locate("pids", d.pids);
  return d;
}

// The value of `key` in a flat-keyed file ("key value" lines: cpu.stat,
// memory.stat).
inline bool keyed_value(std::string_view text, std::string_view key, std::uint64_t& v) {
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    std::string_view rest = line;
    if (next_token(rest) == key) return parse_u64(rest, v);
  }
  return false;
}

// A limit file: a number, or "max" (v2) / -1 (v1 quota) for none. v1 writes
// "no memory limit" as PAGE_COUNTER_MAX pages, about 2^63 bytes: anything
// from 2^62 up is no limit. Returns false on unreadable text; `v` is NaN for
// no limit.
inline bool parse_cgroup_limit(std::string_view text, double& v) {
  text = trim(text);
  if (text == "max" || text == "-1") {
    v = std::nan("");
    return true;
  }
  std::uint64_t n = 0;
  std::string_view rest = text;
  if (!parse_u64(rest, n) || !trim(rest).empty()) return false;
  v = n >= (std::uint64_t(1) << 62) ? std::nan("") : static_cast<double>(n);
  return true;
}

// cgroup v2 cpu.max: "$QUOTA $PERIOD", QUOTA "max" for none.
inline bool parse_cpu_max(std::string_view text, double& quota_us, double& period_us) {
  const std::string_view quota = next_token(text);
  std::uint64_t period = 0;
  if (quota.empty() || !parse_u64(text, period) || period == 0) return false;
  period_us = static_cast<double>(period);
  return parse_cgroup_limit(quota, quota_us);
}

// Raw readings of one sample; NaN where a file was missing.
struct CgroupReading {
  double usage_seconds = std::nan(""), throttled_seconds = std::nan("");
  double periods = std::nan(""), throttled_periods = std::nan("");
  double quota_us = std::nan(""), period_us = std::nan("");
  double mem_usage = std::nan(""), mem_inactive_file = std::nan(""), mem_limit = std::nan("");
  double pids = std::nan(""), pids_limit = std::nan("");
  bool any_file = false;  // at least one controller file could be read
};

// Fills the group from two readings `elapsed` seconds apart (`prev_usage` NaN
// for no previous reading). `host_cores` and `host_memory` are what a missing
// limit is measured against.
inline void container_stats(const CgroupReading& r, double prev_usage, double elapsed, double host_cores,
                            double host_memory, ContainerStats& c) {
  c.cpu_quota_us = r.quota_us;
  c.cpu_period_us = r.period_us;
  c.cpu_limit_cores = r.quota_us > 0 && r.period_us > 0 ? r.quota_us / r.period_us : std::nan("");
  c.cpu_usage_seconds = r.usage_seconds;
  c.cpu_throttled_seconds = r.throttled_seconds;
  c.cpu_periods = r.periods;
  c.cpu_throttled_periods = r.throttled_periods;
  const double cores = c.cpu_limit_cores > 0 ? c.cpu_limit_cores : host_cores;
  c.cpu_usage_percent = std::nan("");
  if (prev_usage >= 0 && r.usage_seconds >= prev_usage && elapsed > 0 && cores > 0)
    c.cpu_usage_percent = std::min(100.0, (r.usage_seconds - prev_usage) / elapsed / cores * 100.0);
  c.memory_usage_bytes = r.mem_usage;
  c.memory_used_bytes = r.mem_usage;
  if (r.mem_usage >= 0 && r.mem_inactive_file >= 0)
    c.memory_used_bytes = r.mem_usage > r.mem_inactive_file ? r.mem_usage - r.mem_inactive_file : 0;
  c.memory_limit_bytes = r.mem_limit;
  const double against = r.mem_limit > 0 ? r.mem_limit : host_memory;
  c.memory_usage_percent = c.memory_used_bytes >= 0 && against > 0
                               ? percent_of(c.memory_used_bytes, against)
                               : std::nan("");
  c.pids = r.pids;
  c.pids_limit = r.pids_limit;
  c.present = r.quota_us > 0 || r.mem_limit > 0 || r.pids_limit > 0;
}

// ============================================================================
// node_exporter's further families (NodeDetail): pure parsers, then NodeReader
// ============================================================================

// A signed decimal integer token ("-1", "42"); /proc/net/snmp prints
// Tcp MaxConn as -1.
inline bool parse_i64_token(std::string_view& s, double& v) {
  skip_blanks(s);
  std::int64_t i = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), i);
  if (r.ec != std::errc()) return false;
  s.remove_prefix(static_cast<std::size_t>(r.ptr - s.data()));
  v = static_cast<double>(i);
  return true;
}

// Every line of /proc/meminfo under node_exporter's name: "Active(anon)"
// becomes "Active_anon", and a value in kB gets "_bytes" (HugePages_Total,
// a count, does not).
inline void parse_meminfo_all(std::string_view text, std::vector<NodeValue>& out) {
  out.clear();
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string_view rest = line.substr(colon + 1);
    std::uint64_t v = 0;
    if (!parse_u64(rest, v)) continue;
    NodeValue nv;
    for (char c : line.substr(0, colon)) {
      if (c == '(') {
        nv.name += '_';
      } else if (c != ')') {
        nv.name += c;
      }
    }
    if (trim(rest) == "kB") {
      nv.name += "_bytes";
      v *= 1024;
    }
    nv.value = static_cast<double>(v);
    out.push_back(std::move(nv));
  }
}

// node_exporter's default vmstat fields.
inline bool vmstat_default_field(std::string_view f) {
  return f == "pgpgin" || f == "pgpgout" || f == "pswpin" || f == "pswpout" || f == "oom_kill" ||
         f == "pgfault" || f == "pgmajfault";
}

// /proc/vmstat: "name value" lines; `all` keeps every field.
inline void parse_vmstat(std::string_view text, std::vector<NodeValue>& out, bool all = false) {
  out.clear();
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const std::string_view name = next_token(line);
    double v = 0;
    if (name.empty() || !parse_i64_token(line, v)) continue;
    if (all || vmstat_default_field(name)) out.push_back({std::string(name), v});
  }
}

inline bool one_of(std::string_view s, std::initializer_list<std::string_view> names) {
  for (std::string_view n : names)
    if (s == n) return true;
  return false;
}

// node_exporter's default netstat field filter, over protocol and field.
inline bool netstat_default_field(std::string_view proto, std::string_view field) {
  if (field == "InErrors" || field == "InErrs") return true;
  if (proto == "Ip") return field == "Forwarding";
  if (proto == "Ip6" || proto == "IpExt") return field == "InOctets" || field == "OutOctets";
  if (proto == "Icmp" || proto == "Icmp6") return field == "InMsgs" || field == "OutMsgs";
  if (proto == "TcpExt")
    return starts_with(field, "Listen") || starts_with(field, "Syncookies") || field == "TCPSynRetrans" ||
           field == "TCPTimeouts";
  if (proto == "Tcp")
    return one_of(field, {"ActiveOpens", "InSegs", "OutSegs", "OutRsts", "PassiveOpens", "RetransSegs", "CurrEstab"});
  if (proto == "Udp" || proto == "Udp6")
    return one_of(field, {"InDatagrams", "OutDatagrams", "NoPorts", "RcvbufErrors", "SndbufErrors"});
  return false;
}

// /proc/net/netstat and /proc/net/snmp: for each protocol a line of field
// names, then a line of values, both starting with "Proto:". Appends
// "Proto_Field" series.
inline void parse_netstat(std::string_view text, std::vector<NodeValue>& out, bool all = false) {
  LineReader lines(text);
  std::string_view names, values;
  while (lines.next(names) && lines.next(values)) {
    const std::size_t c1 = names.find(':'), c2 = values.find(':');
    if (c1 == std::string_view::npos || c2 == std::string_view::npos) continue;
    const std::string_view proto = names.substr(0, c1);
    if (values.substr(0, c2) != proto) continue;
    names.remove_prefix(c1 + 1);
    values.remove_prefix(c2 + 1);
    for (;;) {
      const std::string_view field = next_token(names);
      double v = 0;
      if (field.empty() || !parse_i64_token(values, v)) break;
      if (all || netstat_default_field(proto, field)) {
        std::string name(proto);
        name += '_';
        name += field;
        out.push_back({std::move(name), v});
      }
    }
  }
}

// /proc/net/snmp6: "Ip6InOctets 123"; the protocol ends at its '6'.
inline void parse_snmp6(std::string_view text, std::vector<NodeValue>& out, bool all = false) {
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const std::string_view key = next_token(line);
    double v = 0;
    const std::size_t six = key.find('6');
    if (six == std::string_view::npos || six + 1 >= key.size() || !parse_i64_token(line, v)) continue;
    const std::string_view proto = key.substr(0, six + 1), field = key.substr(six + 1);
    if (all || netstat_default_field(proto, field)) {
      std::string name(proto);
      name += '_';
      name += field;
      out.push_back({std::move(name), v});
    }
  }
}

// /proc/net/sockstat(6): "TCP: inuse 5 orphan 0 tw 0 alloc 7 mem 1". "mem"
// counts pages and gets a "_mem_bytes" twin; "sockets: used" is one series.
inline void parse_sockstat(std::string_view text, double page_bytes, std::vector<NodeValue>& out) {
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    const std::string_view proto = line.substr(0, colon);
    std::string_view rest = line.substr(colon + 1);
    for (;;) {
      const std::string_view key = next_token(rest);
      double v = 0;
      if (key.empty() || !parse_i64_token(rest, v)) break;
      std::string name(proto);
      name += '_';
      name += key;
      if (proto != "sockets" && key == "mem") out.push_back({name + "_bytes", v * page_bytes});
      out.push_back({std::move(name), v});
    }
  }
}

// /proc/net/softnet_stat: one line per CPU of hexadecimal columns, the first
// three being processed, dropped and time_squeeze.
inline void parse_softnet(std::string_view text, std::vector<NodeSoftnet>& out) {
  out.clear();
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    std::uint64_t v[3];
    int n = 0;
    for (; n < 3; ++n) {
      const std::string_view t = next_token(line);
      if (t.empty() || std::from_chars(t.data(), t.data() + t.size(), v[n], 16).ec != std::errc()) break;
    }
    if (n == 3) out.push_back({v[0], v[1], v[2]});
  }
}

// /proc/pressure/<resource>: "some ... total=USEC" and "full ... total=USEC".
inline bool parse_pressure(std::string_view text, double& some_seconds, double& full_seconds) {
  bool any = false;
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const std::string_view kind = next_token(line);
    const std::size_t at = line.find("total=");
    std::uint64_t us = 0;
    if (at == std::string_view::npos) continue;
    std::string_view num = line.substr(at + 6);
    if (!parse_u64(num, us)) continue;
    if (kind == "some") {
      some_seconds = static_cast<double>(us) / 1e6;
      any = true;
    } else if (kind == "full") {
      full_seconds = static_cast<double>(us) / 1e6;
      any = true;
    }
  }
  return any;
}

// The counters of /proc/stat beyond CPU times.
inline bool parse_stat_counters(std::string_view text, NodeDetail& d) {
  bool any = false;
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const std::string_view key = next_token(line);
    double* field = key == "ctxt"            ? &d.context_switches
                    : key == "intr"          ? &d.interrupts
                    : key == "processes"     ? &d.forks
                    : key == "procs_running" ? &d.procs_running
                    : key == "procs_blocked" ? &d.procs_blocked
                                             : nullptr;
    std::uint64_t v = 0;
    if (field != nullptr && parse_u64(line, v)) {
      *field = static_cast<double>(v);
      any = true;
    }
  }
  return any;
}

// /proc/net/arp: a header line, then one line per entry whose sixth column
// is the device. Entries counted per device, in order of first appearance.
inline void parse_arp(std::string_view text, std::vector<std::pair<std::string, std::uint64_t>>& out) {
  out.clear();
  LineReader lines(text);
  std::string_view line;
  lines.next(line);
  while (lines.next(line)) {
    std::string_view device;
    for (int i = 0; i < 6; ++i) device = next_token(line);
    if (device.empty()) continue;
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& e) { return e.first == device; });
    if (it == out.end()) {
      out.emplace_back(std::string(device), 1);
    } else {
      ++it->second;
    }
  }
}

// Every column of /proc/net/dev; lo is left out, as node_exporter's default
// device filter does.
inline void parse_net_dev_all(std::string_view text, std::vector<NodeNetDev>& out) {
  out.clear();
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = trim(line.substr(0, colon));
    if (name.empty() || name == "lo") continue;
    std::string_view rest = line.substr(colon + 1);
    NodeNetDev d;
    int n = 0;
    for (; n < 16; ++n)
      if (!parse_u64(rest, n < 8 ? d.rx[n] : d.tx[n - 8])) break;
    if (n < 16) continue;
    d.device.assign(name.data(), name.size());
    out.push_back(std::move(d));
  }
}

inline bool digits_then_end(std::string_view s) { return !s.empty() && all_digits(s); }

// node_exporter's default diskstats filter leaves out ram, loop and fd
// devices and the partitions of sd/hd/vd/xvd (one letter) and NVMe disks;
// it keeps zram, dm and md devices.
inline bool node_disk_ignored(std::string_view name) {
  for (std::string_view p : {"ram", "loop", "fd"})
    if (starts_with(name, p) && digits_then_end(name.substr(p.size()))) return true;
  for (std::string_view p : {"hd", "sd", "vd", "xvd"})
    if (starts_with(name, p) && name.size() > p.size() + 1 && name[p.size()] >= 'a' && name[p.size()] <= 'z' &&
        digits_then_end(name.substr(p.size() + 1)))
      return true;
  if (starts_with(name, "nvme")) {
    std::string_view rest = name.substr(4);
    std::size_t i = 0;
    auto digits = [&] {
      const std::size_t start = i;
      while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9') ++i;
      return i > start;
    };
    if (digits() && i < rest.size() && rest[i++] == 'n' && digits() && i < rest.size() && rest[i++] == 'p' &&
        digits() && i == rest.size())
      return true;
  }
  return false;
}

// Every column of /proc/diskstats: 11, 15 (4.18, discards) or 17 (5.5, flushes).
inline void parse_diskstats_all(std::string_view text, std::vector<NodeDisk>& out) {
  out.clear();
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    unsigned major = 0, minor = 0;
    if (!parse_unsigned(line, major) || !parse_unsigned(line, minor)) continue;
    const std::string_view name = next_token(line);
    if (name.empty() || node_disk_ignored(name)) continue;
    NodeDisk d;
    while (d.fields < 17 && parse_u64(line, d.f[d.fields])) ++d.fields;
    if (d.fields != 11 && d.fields != 15 && d.fields != 17) continue;
    d.device.assign(name.data(), name.size());
    out.push_back(std::move(d));
  }
}

// os-release(5): KEY=value lines, values optionally quoted with shell escapes.
inline void parse_os_release(std::string_view text, std::array<std::string, 12>& os) {
  static constexpr std::string_view kKeys[12] = {"BUILD_ID",  "ID",         "ID_LIKE",    "IMAGE_ID",
                                                 "IMAGE_VERSION", "NAME",   "PRETTY_NAME", "VARIANT",
                                                 "VARIANT_ID", "VERSION",   "VERSION_CODENAME", "VERSION_ID"};
  for (std::string& v : os) v.clear();
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    line = trim(line);
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos || line[0] == '#') continue;
    const std::string_view key = line.substr(0, eq);
    std::string_view raw = line.substr(eq + 1);
    std::string value;
    if (raw.size() >= 2 && (raw.front() == '"' || raw.front() == '\'') && raw.back() == raw.front()) {
      const char q = raw.front();
      raw = raw.substr(1, raw.size() - 2);
      for (std::size_t i = 0; i < raw.size(); ++i) {
        if (q == '"' && raw[i] == '\\' && i + 1 < raw.size()) ++i;
        value += raw[i];
      }
    } else {
      value.assign(raw.data(), raw.size());
    }
    for (std::size_t i = 0; i < 12; ++i)
      if (key == kKeys[i]) os[i] = std::move(value);
  }
}

// /proc/self/stat after the command's closing parenthesis: utime and stime
// (ticks) are fields 14 and 15, vsize (bytes) 23 and rss (pages) 24.
inline bool parse_self_stat(std::string_view text, double ticks_per_second, double page_bytes, NodeDetail& d) {
  const std::size_t paren = text.rfind(')');
  if (paren == std::string_view::npos) return false;
  std::string_view rest = text.substr(paren + 1);
  std::uint64_t utime = 0, stime = 0, vsize = 0, rss = 0;
  for (int field = 3; field <= 24; ++field) {
    const std::string_view t = next_token(rest);
    if (t.empty()) return false;
    std::uint64_t v = 0;
    if (field >= 14 && std::from_chars(t.data(), t.data() + t.size(), v).ec != std::errc()) v = 0;
    if (field == 14) utime = v;
    if (field == 15) stime = v;
    if (field == 23) vsize = v;
    if (field == 24) rss = v;
  }
  d.process_cpu_seconds = static_cast<double>(utime + stime) / ticks_per_second;
  d.process_virtual_bytes = static_cast<double>(vsize);
  d.process_resident_bytes = static_cast<double>(rss) * page_bytes;
  return true;
}

// A hwmon chip's label as node_exporter derives it: the type and name of
// the device it belongs to ("platform_coretemp_0"), else its name file,
// else the hwmonN directory. Characters outside [a-zA-Z0-9_] become '_',
// lower case, leading and trailing '_' trimmed.
inline std::string hwmon_clean_name(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    const bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    out += keep ? c : '_';
  }
  const std::size_t b = out.find_first_not_of('_');
  if (b == std::string::npos) return {};
  return out.substr(b, out.find_last_not_of('_') - b + 1);
}

inline std::string hwmon_chip_label(std::string_view device_path, std::string_view name_file,
                                    std::string_view dir_name) {
  if (!device_path.empty()) {
    std::string_view p = device_path;
    while (!p.empty() && p.back() == '/') p.remove_suffix(1);
    const std::size_t slash = p.rfind('/');
    const std::string dev = hwmon_clean_name(slash == std::string_view::npos ? p : p.substr(slash + 1));
    std::string type;
    if (slash != std::string_view::npos) {
      const std::string_view parent = p.substr(0, slash);
      const std::size_t s2 = parent.rfind('/');
      type = hwmon_clean_name(s2 == std::string_view::npos ? parent : parent.substr(s2 + 1));
    }
    if (!type.empty() && !dev.empty()) return type + "_" + dev;
    if (!dev.empty()) return dev;
  }
  const std::string name = hwmon_clean_name(trim(name_file));
  if (!name.empty()) return name;
  return std::string(dir_name);
}

// The names in `dir` ending in `suffix` (not hidden), sorted, at most `max`.
inline bool list_files_with_suffix(const std::string& dir, std::string_view suffix, std::size_t max,
                                   std::vector<std::string>& names) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return false;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view n = e->d_name;
    if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0 && n[0] != '.')
      names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  if (names.size() > max) names.resize(max);
  return true;
}

// A regular file of at most `max_bytes` (a FIFO would block the loop) and
// its modification time in seconds since the epoch; "" or why not.
inline std::string read_regular_file(const std::string& path, std::size_t max_bytes, std::string& text,
                                     double& mtime) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return std::string("cannot open: ") + std::strerror(errno);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return "not a regular file";
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return "larger than " + std::to_string(max_bytes) + " bytes";
  }
  mtime = static_cast<double>(st.st_mtime);  // whole seconds, as node_exporter reports it
  text.resize(static_cast<std::size_t>(st.st_size) + 1);
  std::size_t len = 0;
  for (;;) {
    if (len == text.size()) {
      ::close(fd);
      return "grew while read";
    }
    const ssize_t n = ::read(fd, &text[len], text.size() - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return std::string("cannot read: ") + std::strerror(err);
    }
    if (n == 0) break;
    len += static_cast<std::size_t>(n);
  }
  ::close(fd);
  text.resize(len);
  return {};
}

// Small sysfs reads for the hwmon and thermal readers below.
template <class Reader>
inline bool read_trimmed(Reader& reader, const std::string& path, std::string& out) {
  std::string_view text;
  if (reader.read(path.c_str(), text) != 0) return false;
  text = trim(text);
  out.assign(text.data(), text.size());
  return true;
}

template <class Reader>
inline bool read_integer(Reader& reader, const std::string& path, double& v) {
  std::string_view text;
  return reader.read(path.c_str(), text) == 0 && parse_i64_token(text, v);
}

// The entries of `dir` starting with `prefix`, sorted ("." and ".." left out).
inline std::vector<std::string> list_dir(const std::string& dir, std::string_view prefix = {}) {
  std::vector<std::string> names;
  DIR* dp = ::opendir(dir.c_str());
  if (dp == nullptr) return names;
  while (const dirent* e = ::readdir(dp)) {
    const std::string_view n = e->d_name;
    if (n == "." || n == ".." || !starts_with(n, prefix)) continue;
    names.emplace_back(n);
  }
  ::closedir(dp);
  std::sort(names.begin(), names.end());
  return names;
}

// <sys>/class/hwmon/*/temp*_input, in degrees Celsius; false without the class.
template <class Reader>  // FileReader, or BlockingCalls on the slow sampler
inline bool read_hwmon_temperatures(const std::string& sys, Reader& reader, std::vector<NodeTemperature>& temps,
                                    std::vector<NodeChip>* chips) {
  const std::string base = sys + "/class/hwmon/";
  if (!is_directory(base.c_str())) return false;
  for (const std::string& h : list_dir(base)) {
    const std::string dir = base + h + "/";
    std::string name_file, device_path;
    read_trimmed(reader, dir + "name", name_file);
    char resolved[PATH_MAX];
    if (::realpath((dir + "device").c_str(), resolved) != nullptr) device_path = resolved;
    const std::string chip = hwmon_chip_label(device_path, name_file, h);
    if (chips != nullptr && !name_file.empty()) chips->push_back({chip, name_file});
    // Some drivers keep their sensors in the device directory instead.
    std::string sensor_dir = dir;
    if (list_dir(dir, "temp").empty() && !list_dir(dir + "device/", "temp").empty()) sensor_dir = dir + "device/";
    for (const std::string& f : list_dir(sensor_dir, "temp")) {
      const std::size_t us = f.find('_');
      if (us == std::string::npos || f.compare(us, std::string::npos, "_input") != 0) continue;
      double milli = 0;
      if (!read_integer(reader, sensor_dir + f, milli)) continue;
      temps.push_back({chip, f.substr(0, us), milli / 1000.0});
    }
  }
  return true;
}

// <sys>/class/thermal/thermal_zoneN: chip is N, sensor the zone's type.
template <class Reader>
inline bool read_thermal_zones(const std::string& sys, Reader& reader, std::vector<NodeTemperature>& out) {
  const std::string base = sys + "/class/thermal/";
  if (!is_directory(base.c_str())) return false;
  for (const std::string& z : list_dir(base, "thermal_zone")) {
    NodeTemperature t;
    double milli = 0;
    if (!read_trimmed(reader, base + z + "/type", t.sensor) || !read_integer(reader, base + z + "/temp", milli))
      continue;
    t.chip = z.substr(std::string_view("thermal_zone").size());
    t.celsius = milli / 1000.0;
    out.push_back(std::move(t));
  }
  return true;
}

// ============================================================================
// Collector
// ============================================================================

class Collector {
 public:
  // `rootfs` (empty, or e.g. "/host") is where the host's filesystems are
  // seen: mount points are reported as the host names them and measured
  // under rootfs, and the host's mount table is read from proc/1 (with
  // --pid=host), falling back to proc/self. `cgroupfs` prefixes the cgroup
  // directories found in the agent's own mount table (fixture trees only).
  explicit Collector(std::string disk_path = "/", std::string proc_root = "/proc",
                     std::string sys_root = "/sys", std::string rootfs = {}, std::string cgroupfs = {})
      : disk_path_(std::move(disk_path)),
        proc_(std::move(proc_root)),
        sys_(std::move(sys_root)),
        rootfs_(std::move(rootfs)),
        cgroupfs_(std::move(cgroupfs)),
        mountinfo_path_(proc_ + (rootfs_.empty() ? "/self/mountinfo" : "/1/mountinfo")),
        self_mountinfo_path_(proc_ + "/self/mountinfo"),
        self_cgroup_path_(proc_ + "/self/cgroup"),
        filesystems_path_(proc_ + "/filesystems"),
        cpuinfo_path_(proc_ + "/cpuinfo"),
        cpu_online_path_(sys_ + "/devices/system/cpu/online"),
        stat_file_(proc_ + "/stat"),
        loadavg_file_(proc_ + "/loadavg"),
        meminfo_file_(proc_ + "/meminfo"),
        net_dev_file_(proc_ + "/net/dev"),
        diskstats_file_(proc_ + "/diskstats"),
        uptime_file_(proc_ + "/uptime"),
        hostname_file_(proc_ + "/sys/kernel/hostname") {
    const long hz = ::sysconf(_SC_CLK_TCK);
    ticks_per_second_ = hz > 0 ? static_cast<double>(hz) : 100.0;
    // The baseline: the first sample_fast gives rates over the time since now.
    Snapshot scratch;
    collect_fast(scratch, 0, true);
    interval_.baseline();
  }

  // Kernel counters only; rates and shares are against the previous call.
  void sample_fast(Snapshot& out, double now) {
    const double elapsed = interval_.next(now);
    out.timestamp_us = wall_now_us();
    collect_fast(out, elapsed, false);
  }

  // What sample_slow fills: the Snapshot fields named beside each member.
  struct SlowPart {
    PartitionStats disk_path;                 // disk.path
    bool partitions_ok = false;               // disk.partitions_ok
    std::string partitions_error;             // disk.partitions_error
    std::vector<PartitionStats> partitions;   // disk.partitions
    std::vector<double> frequency_mhz;        // cpu.frequency_mhz
    std::vector<NodeTemperature> sensors;     // sensors
  };

  static void merge(const SlowPart& p, Snapshot& s) {
    s.disk.path = p.disk_path;
    s.disk.partitions_ok = p.partitions_ok;
    s.disk.partitions_error = p.partitions_error;
    s.disk.partitions = p.partitions;
    s.cpu.frequency_mhz = p.frequency_mhz;
    s.sensors = p.sensors;
  }

  // No fresh result: the watched filesystem keeps its names with `why` as
  // its error, the rest is empty and failed.
  static void merge_failed(const SlowPart& p, const std::string& why, Snapshot& s) {
    s.disk.path = p.disk_path;
    s.disk.path.ok = false;
    s.disk.path.error = why;
    s.disk.partitions_ok = false;
    s.disk.partitions_error = why;
    s.disk.partitions.clear();
    s.cpu.frequency_mhz.clear();
    s.sensors.clear();
  }

  // One blocking slow sample merged into `out` (--once, tests, benchmarks).
  void sample_slow(Snapshot& out) {
    SlowPart p;
    sample_slow_part(p);
    merge(p, out);
  }

  // What can block: statvfs of every mount (a dead NFS server), sysfs cpufreq.
  // This entry point is the slow sampler's: its blocking calls go through
  // helper processes (BlockingCalls), so a hung mount costs at most a second
  // once and never holds the process. The Snapshot overload calls directly.
  void sample_slow(SlowPart& out) {
    slow_reader_.use_helpers();
    sample_slow_part(out);
  }

 private:
  void sample_slow_part(SlowPart& out) {
    collect_frequency(out.frequency_mhz);
    // Temperatures: sysfs reads that a driver may make slow, hence here.
    out.sensors.clear();
    read_hwmon_temperatures(sys_, slow_reader_, out.sensors, nullptr);
    std::vector<NodeTemperature> zones;
    read_thermal_zones(sys_, slow_reader_, zones);
    for (NodeTemperature& z : zones) out.sensors.push_back({"thermal_zone" + z.chip, std::move(z.sensor), z.celsius});
    std::vector<MountEntry> mounts;
    std::string_view text;
    int err = slow_reader_.read(mountinfo_path_.c_str(), text);
    if (err != 0 && !rootfs_.empty()) err = slow_reader_.read(self_mountinfo_path_.c_str(), text);  // hidepid
    if (err == 0) {
      parse_mountinfo(text, mounts);
      if (!rootfs_.empty()) strip_rootfs(mounts);
    }
    const MountEntry* watched = nullptr;
    const std::string disk_path = rootfs_ + disk_path_;
    char resolved[PATH_MAX], root[PATH_MAX];
    if (slow_reader_.realpath(disk_path.c_str(), resolved)) {
      std::string_view host_path = resolved;
      if (!rootfs_.empty() && slow_reader_.realpath(rootfs_.c_str(), root) && path_is_under(host_path, root) &&
          std::string_view(root) != "/")
        host_path.remove_prefix(std::strlen(root));
      watched = find_mount_for(mounts, host_path.empty() ? std::string_view("/") : host_path);
    }
    collect_partitions(out, mounts, err, watched);
    collect_disk_path(out.disk_path, watched);
  }

 private:
  struct CoreState {
    CpuTicks prev;
    CpuShares last;
    std::uint64_t seen = 0;  // generation of the sample that last had this core
  };
  struct NetState {
    std::string name;
    std::uint64_t rx_bytes = 0, tx_bytes = 0, rx_packets = 0, tx_packets = 0;
    std::uint64_t seen = 0;
  };
  struct DiskState {
    std::string name;
    bool report = false;   // a whole, storage-backed device
    bool stacked = false;  // dm/md on top of other disks: not added to totals
    std::uint64_t reads = 0, writes = 0, read_sectors = 0, write_sectors = 0;
    std::uint64_t seen = 0;
  };

  void collect_fast(Snapshot& out, double elapsed, bool baseline) {
    ++generation_;
    collect_cpu(out.cpu, baseline);
    collect_load(out.load);
    collect_memory(out.memory);
    collect_network(out.network, elapsed);
    collect_disk_io(out.disk, elapsed);
    collect_system(out.system);
    collect_container(out, elapsed, baseline);
  }

  // ---- the container view --------------------------------------------------

  struct CgroupFiles {
    int version = 0, memory_version = 0;
    std::string path;
    std::string cpu_stat, cpu_max, cfs_quota, cfs_period, cpuacct_usage;
    std::string memory_usage, memory_stat, memory_limit;
    std::string pids_current, pids_max;
  };

  // Where the agent's cgroup files are: found once, and again after a read
  // fails (the process was moved, or the cgroup removed).
  void discover_cgroups() {
    cgroups_known_ = true;
    cgroup_files_ = CgroupFiles{};
    std::vector<CgroupLine> lines;
    std::vector<MountEntry> mounts;
    std::string_view text;
    if (reader_.read(self_cgroup_path_.c_str(), text) == 0) parse_proc_cgroup(text, lines);
    if (lines.empty()) return;
    if (reader_.read(self_mountinfo_path_.c_str(), text) == 0) parse_mountinfo(text, mounts);
    const CgroupDirs d = find_cgroup_dirs(lines, mounts);
    CgroupFiles& f = cgroup_files_;
    auto at = [&](const CgroupDirs::Dir& dir, const char* name) {
      return dir.version == 0 ? std::string() : cgroupfs_ + dir.dir + "/" + name;
    };
    if (d.cpu.version == 2) {
      f.cpu_stat = at(d.cpu, "cpu.stat");
      f.cpu_max = at(d.cpu, "cpu.max");
    } else if (d.cpu.version == 1) {
      f.cpu_stat = at(d.cpu, "cpu.stat");
      f.cfs_quota = at(d.cpu, "cpu.cfs_quota_us");
      f.cfs_period = at(d.cpu, "cpu.cfs_period_us");
      f.cpuacct_usage = at(d.cpuacct, "cpuacct.usage");
    }
    f.memory_version = d.memory.version;
    f.memory_usage = at(d.memory, d.memory.version == 2 ? "memory.current" : "memory.usage_in_bytes");
    f.memory_stat = at(d.memory, "memory.stat");
    f.memory_limit = at(d.memory, d.memory.version == 2 ? "memory.max" : "memory.limit_in_bytes");
    f.pids_current = at(d.pids, "pids.current");
    f.pids_max = at(d.pids, "pids.max");
    f.version = d.memory.version ? d.memory.version : d.cpu.version;
    f.path = d.memory.version ? d.memory.path : d.cpu.version ? d.cpu.path : d.pids.path;
  }

  // False when the file exists no more (time to look for the cgroup again).
  bool read_cgroup_file(const std::string& path, std::string_view& text, CgroupReading& r) {
    if (path.empty()) return true;
    const int err = reader_.read(path.c_str(), text);
    if (err == 0) {
      r.any_file = true;
      return true;
    }
    text = std::string_view();
    return err != ENOENT;
  }

  void read_cgroups(CgroupReading& r, bool& vanished) {
    const CgroupFiles& f = cgroup_files_;
    std::string_view text;
    std::uint64_t v = 0;
    double d = 0;
    auto file = [&](const std::string& path) {
      text = std::string_view();
      if (!read_cgroup_file(path, text, r)) vanished = true;
      return !text.empty();
    };
    if (!f.cpu_max.empty()) {  // v2: cpu.stat counts microseconds
      if (file(f.cpu_stat)) {
        if (keyed_value(text, "usage_usec", v)) r.usage_seconds = double(v) / 1e6;
        if (keyed_value(text, "throttled_usec", v)) r.throttled_seconds = double(v) / 1e6;
        if (keyed_value(text, "nr_periods", v)) r.periods = double(v);
        if (keyed_value(text, "nr_throttled", v)) r.throttled_periods = double(v);
      }
      if (file(f.cpu_max)) parse_cpu_max(text, r.quota_us, r.period_us);
    } else {  // v1: nanoseconds
      if (file(f.cpu_stat)) {
        if (keyed_value(text, "throttled_time", v)) r.throttled_seconds = double(v) / 1e9;
        if (keyed_value(text, "nr_periods", v)) r.periods = double(v);
        if (keyed_value(text, "nr_throttled", v)) r.throttled_periods = double(v);
      }
      if (file(f.cpuacct_usage) && parse_cgroup_limit(text, d)) r.usage_seconds = d / 1e9;
      if (file(f.cfs_period) && parse_cgroup_limit(text, d)) r.period_us = d;
      if (file(f.cfs_quota) && parse_cgroup_limit(text, d)) r.quota_us = d;
    }
    if (file(f.memory_usage) && parse_cgroup_limit(text, d)) r.mem_usage = d;
    if (file(f.memory_limit) && parse_cgroup_limit(text, d)) r.mem_limit = d;
    if (file(f.memory_stat)) {
      if (keyed_value(text, f.memory_version == 2 ? "inactive_file" : "total_inactive_file", v))
        r.mem_inactive_file = double(v);
      // v1: a limit set on an ancestor binds as well.
      if (f.memory_version == 1 && keyed_value(text, "hierarchical_memory_limit", v) &&
          v < (std::uint64_t(1) << 62) && !(r.mem_limit <= double(v)))
        r.mem_limit = double(v);
    }
    if (file(f.pids_current) && parse_cgroup_limit(text, d)) r.pids = d;
    if (file(f.pids_max) && parse_cgroup_limit(text, d)) r.pids_limit = d;
  }

  void collect_container(Snapshot& out, double elapsed, bool baseline) {
    ContainerStats& c = out.container;
    if (!cgroups_known_) discover_cgroups();
    CgroupReading r;
    bool vanished = false;
    if (cgroup_files_.version != 0) read_cgroups(r, vanished);
    if (vanished) cgroups_known_ = false;
    const double cores = out.cpu.ok && !out.cpu.per_core.empty() ? double(out.cpu.per_core.size()) : 0;
    const double memory = out.memory.ok ? double(out.memory.total_bytes) : 0;
    container_stats(r, baseline ? std::nan("") : prev_cgroup_usage_, elapsed, cores, memory, c);
    prev_cgroup_usage_ = r.usage_seconds;
    c.cgroup_version = cgroup_files_.version;
    c.cgroup = cgroup_files_.path;
    c.ok = r.any_file;
    c.error = c.present && !c.ok ? "cannot read the cgroup's files under " + cgroup_files_.path : std::string();
  }

  void collect_cpu(CpuStats& c, bool baseline) {
    btime_ = 0;
    std::string_view text;
    const int err = stat_file_.read(reader_, text);
    if (err != 0 || !parse_proc_stat(text, stat_)) {
      c.ok = false;
      c.error = err != 0 ? read_error(stat_file_.path(), err)
                         : parse_error(stat_file_.path(), "no cpu line");
      c.per_core.clear();
      c.core_times.clear();
      c.core_ids.clear();
      return;
    }
    btime_ = stat_.btime;
    // With no time between two readings, the previous shares stand (at the
    // baseline, prev is zero: the shares since boot).
    cpu_shares(prev_total_, stat_.total, total_shares_);
    prev_total_ = stat_.total;
    c.usage_percent = total_shares_.usage;
    c.user = total_shares_.user;
    c.nice = total_shares_.nice;
    c.system = total_shares_.system;
    c.irq = total_shares_.irq;
    c.softirq = total_shares_.softirq;
    c.idle = total_shares_.idle;
    c.iowait = total_shares_.iowait;
    c.steal = total_shares_.steal;

    const std::size_t n = stat_.cores.size();
    c.per_core.resize(n);
    c.core_times.resize(n);
    c.core_ids.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const CoreTicks& core = stat_.cores[i];
      c.core_ids[i] = unsigned(core.id);
      c.core_times[i] = cpu_times_seconds(core.ticks, ticks_per_second_);
      c.per_core[i] = 0;
      if (core.id > 65535) continue;  // beyond any NR_CPUS
      if (core.id >= cores_.size()) cores_.resize(core.id + 1);
      CoreState& s = cores_[core.id];
      const bool continuing = s.seen + 1 == generation_;
      if (continuing || baseline) {
        cpu_shares(continuing ? s.prev : CpuTicks{}, core.ticks, s.last);
      } else {
        s.last = CpuShares{};  // came online since the last sample: no rate yet
      }
      s.prev = core.ticks;
      s.seen = generation_;
      c.per_core[i] = s.last.usage;
    }
    c.ok = true;
    c.error.clear();
  }

  void collect_load(LoadStats& l) {
    std::string_view text;
    const int err = loadavg_file_.read(reader_, text);
    if (err != 0) {
      l.ok = false;
      l.error = read_error(loadavg_file_.path(), err);
    } else if (!parse_loadavg(text, l)) {
      l.ok = false;
      l.error = parse_error(loadavg_file_.path(), "expected three load averages");
    } else {
      l.ok = true;
      l.error.clear();
    }
  }

  void collect_memory(MemoryStats& m) {
    std::string_view text;
    const int err = meminfo_file_.read(reader_, text);
    MemInfo info;
    if (err != 0) {
      m.ok = false;
      m.error = read_error(meminfo_file_.path(), err);
    } else if (!parse_meminfo(text, info)) {
      m.ok = false;
      m.error = parse_error(meminfo_file_.path(), "no MemTotal");
    } else {
      memory_stats(info, m);
      m.ok = true;
      m.error.clear();
    }
  }

  NetState* find_net(std::string_view name, std::size_t hint) {
    if (hint < net_.size() && net_[hint].name == name) return &net_[hint];
    for (NetState& s : net_)
      if (s.name == name) return &s;
    return nullptr;
  }

  void collect_network(NetworkStats& net, double elapsed) {
    std::string_view text;
    const int err = net_dev_file_.read(reader_, text);
    if (err != 0) {
      net.ok = false;
      net.error = read_error(net_dev_file_.path(), err);
      net.interfaces.clear();
      net.bytes_sent_per_sec = net.bytes_recv_per_sec = 0;
      return;
    }
    parse_net_dev(text, net_rows_);
    net.interfaces.resize(net_rows_.size());
    double sent = 0, recv = 0;
    for (std::size_t i = 0; i < net_rows_.size(); ++i) {
      const NetDevCounters& row = net_rows_[i];
      NetState* s = find_net(row.name, i);
      if (!s) {
        net_.emplace_back();
        s = &net_.back();
        s->name.assign(row.name.data(), row.name.size());
      }
      const bool continuing = s->seen + 1 == generation_;
      InterfaceStats& o = net.interfaces[i];
      o.name.assign(row.name.data(), row.name.size());
      o.bytes_recv = row.rx_bytes;
      o.bytes_sent = row.tx_bytes;
      o.packets_recv = row.rx_packets;
      o.packets_sent = row.tx_packets;
      o.errors_in = row.rx_errors;
      o.errors_out = row.tx_errors;
      o.drops_in = row.rx_drops;
      o.drops_out = row.tx_drops;
      if (continuing) {
        o.bytes_recv_per_sec = counter_rate(s->rx_bytes, row.rx_bytes, elapsed);
        o.bytes_sent_per_sec = counter_rate(s->tx_bytes, row.tx_bytes, elapsed);
        o.packets_recv_per_sec = counter_rate(s->rx_packets, row.rx_packets, elapsed);
        o.packets_sent_per_sec = counter_rate(s->tx_packets, row.tx_packets, elapsed);
      } else {
        o.bytes_recv_per_sec = o.bytes_sent_per_sec = 0;
        o.packets_recv_per_sec = o.packets_sent_per_sec = 0;
      }
      s->rx_bytes = row.rx_bytes;
      s->tx_bytes = row.tx_bytes;
      s->rx_packets = row.rx_packets;
      s->tx_packets = row.tx_packets;
      s->seen = generation_;
      if (row.name != "lo") {
        sent += o.bytes_sent_per_sec;
        recv += o.bytes_recv_per_sec;
      }
    }
    forget_unseen(net_);
    net.bytes_sent_per_sec = sent;
    net.bytes_recv_per_sec = recv;
    net.ok = true;
    net.error.clear();
  }

  template <class State>
  void forget_unseen(std::vector<State>& states) {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < states.size(); ++i) {
      if (states[i].seen != generation_) continue;
      if (kept != i) std::swap(states[kept], states[i]);
      ++kept;
    }
    states.resize(kept);
  }

  // Decided once per device name, when it first shows up. A partition has a
  // "partition" attribute in sysfs (Documentation/ABI/testing/sysfs-block);
  // a stacked device lists the disks under it in "slaves".
  void classify_disk(DiskState& s) const {
    s.report = false;
    s.stacked = false;
    if (is_memory_or_loop_device(s.name)) return;
    std::string dir = sys_ + "/class/block/";
    for (char ch : s.name) dir.push_back(ch == '/' ? '!' : ch);  // cciss/c0d0 is cciss!c0d0 in sysfs
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0) {
      s.report = !looks_like_partition(s.name);
      s.stacked = is_stacked_device_name(s.name);
      return;
    }
    if (::access((dir + "/partition").c_str(), F_OK) == 0) return;
    s.report = true;
    if (DIR* d = ::opendir((dir + "/slaves").c_str())) {
      while (const dirent* ent = ::readdir(d)) {
        if (std::strcmp(ent->d_name, ".") != 0 && std::strcmp(ent->d_name, "..") != 0) {
          s.stacked = true;
          break;
        }
      }
      ::closedir(d);
    }
  }

  DiskState* find_disk(std::string_view name, std::size_t hint) {
    if (hint < disks_.size() && disks_[hint].name == name) return &disks_[hint];
    for (DiskState& s : disks_)
      if (s.name == name) return &s;
    return nullptr;
  }

  void collect_disk_io(DiskStats& d, double elapsed) {
    std::string_view text;
    const int err = diskstats_file_.read(reader_, text);
    if (err != 0) {
      d.io_ok = false;
      d.io_error = read_error(diskstats_file_.path(), err);
      d.devices.clear();
      d.read_bytes_per_sec = d.write_bytes_per_sec = 0;
      return;
    }
    parse_diskstats(text, disk_rows_);
    std::size_t out_count = 0;
    double read_total = 0, write_total = 0;
    for (std::size_t i = 0; i < disk_rows_.size(); ++i) {
      const DiskstatsEntry& row = disk_rows_[i];
      DiskState* s = find_disk(row.name, i);
      if (!s) {
        disks_.emplace_back();
        s = &disks_.back();
        s->name.assign(row.name.data(), row.name.size());
        classify_disk(*s);
      }
      const bool continuing = s->seen + 1 == generation_;
      if (s->report) {
        if (out_count == d.devices.size()) d.devices.emplace_back();
        DiskDeviceStats& o = d.devices[out_count++];
        o.name.assign(row.name.data(), row.name.size());
        o.reads = row.reads;
        o.writes = row.writes;
        o.read_bytes = row.read_sectors * kDiskstatsSectorBytes;
        o.write_bytes = row.write_sectors * kDiskstatsSectorBytes;
        o.read_time_seconds = static_cast<double>(row.read_ms) / 1000.0;
        o.write_time_seconds = static_cast<double>(row.write_ms) / 1000.0;
        o.io_time_seconds = static_cast<double>(row.io_ms) / 1000.0;
        if (continuing) {
          // The wrap rule applies to the kernel's own counters: sectors, not bytes.
          o.read_bytes_per_sec = per_second(
              static_cast<double>(counter_delta(s->read_sectors, row.read_sectors) * kDiskstatsSectorBytes),
              elapsed);
          o.write_bytes_per_sec = per_second(
              static_cast<double>(counter_delta(s->write_sectors, row.write_sectors) * kDiskstatsSectorBytes),
              elapsed);
          o.reads_per_sec = counter_rate(s->reads, row.reads, elapsed);
          o.writes_per_sec = counter_rate(s->writes, row.writes, elapsed);
        } else {
          o.read_bytes_per_sec = o.write_bytes_per_sec = 0;
          o.reads_per_sec = o.writes_per_sec = 0;
        }
        if (!s->stacked) {
          read_total += o.read_bytes_per_sec;
          write_total += o.write_bytes_per_sec;
        }
      }
      s->reads = row.reads;
      s->writes = row.writes;
      s->read_sectors = row.read_sectors;
      s->write_sectors = row.write_sectors;
      s->seen = generation_;
    }
    forget_unseen(disks_);
    d.devices.resize(out_count);
    d.read_bytes_per_sec = read_total;
    d.write_bytes_per_sec = write_total;
    d.io_ok = true;
    d.io_error.clear();
  }

  void collect_system(SystemInfo& sys) {
    std::string_view text;
    int err = hostname_file_.read(reader_, text);
    if (err == 0 && !trim(text).empty()) {
      const std::string_view name = trim(text);
      sys.hostname.assign(name.data(), name.size());
    } else {
      char buf[256];
      if (::gethostname(buf, sizeof buf) == 0) {
        buf[sizeof buf - 1] = '\0';
        sys.hostname.assign(buf);
      } else {
        sys.hostname.clear();
      }
    }
    err = uptime_file_.read(reader_, text);
    if (err != 0) {
      sys.ok = false;
      sys.error = read_error(uptime_file_.path(), err);
      sys.uptime_seconds = 0;
    } else if (!parse_uptime(text, sys.uptime_seconds)) {
      sys.ok = false;
      sys.error = parse_error(uptime_file_.path(), "expected seconds since boot");
      sys.uptime_seconds = 0;
    } else {
      sys.ok = true;
      sys.error.clear();
    }
    if (btime_ != 0) {
      sys.boot_time = static_cast<double>(btime_);
    } else if (sys.ok) {
      const double wall = std::chrono::duration<double>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      sys.boot_time = wall - sys.uptime_seconds;
    } else {
      sys.boot_time = 0;
    }
  }

  void collect_frequency(std::vector<double>& mhz) {
    mhz.clear();
    std::string_view text;
    std::vector<unsigned> online;
    if (slow_reader_.read(cpu_online_path_.c_str(), text) == 0 && parse_cpu_list(text, online)) {
      std::string path;
      for (unsigned id : online) {
        path = sys_ + "/devices/system/cpu/cpu" + std::to_string(id) + "/cpufreq/scaling_cur_freq";
        std::uint64_t khz = 0;
        if (slow_reader_.read(path.c_str(), text) != 0 || !parse_u64(text, khz)) {
          mhz.clear();
          break;
        }
        mhz.push_back(static_cast<double>(khz) / 1000.0);
      }
      if (!mhz.empty()) return;
    }
    // No cpufreq driver (most virtual machines): what the kernel measured.
    if (slow_reader_.read(cpuinfo_path_.c_str(), text) == 0) parse_cpuinfo_mhz(text, mhz);
  }

  // Mountinfo shows "/dev/root" when the root device came from the kernel
  // command line; sysfs knows its real name by device number.
  std::string resolve_root_device(const MountEntry& m) {
    std::string_view text;
    const std::string path = sys_ + "/dev/block/" + std::to_string(m.major) + ":" +
                             std::to_string(m.minor) + "/uevent";
    if (slow_reader_.read(path.c_str(), text) == 0) {
      LineReader lines(text);
      std::string_view line;
      while (lines.next(line)) {
        if (starts_with(line, "DEVNAME=")) return "/dev/" + std::string(trim(line.substr(8)));
      }
    }
    return m.source;
  }

  void describe_mount(const MountEntry& m, PartitionStats& p) {
    p.mountpoint = m.mountpoint;
    p.device = m.source == "/dev/root" ? resolve_root_device(m) : m.source;
    p.fstype = m.fstype;
    p.readonly = has_mount_option(m.options, "ro") || has_mount_option(m.super_options, "ro");
  }

  void fill_usage(const std::string& path, PartitionStats& p) {
    FsCounts counts;
    const int err = slow_reader_.statvfs(path.c_str(), counts);
    if (err != 0) {
      p.ok = false;
      p.error = "cannot statvfs " + path + ": " + BlockingCalls::describe(err);
      return;
    }
    partition_usage(counts, p);
    p.ok = true;
    p.error.clear();
  }

  // With a host root, the host's mount table may also list mounts under the
  // root itself (the container's view of it): those are reported as the host
  // names them.
  void strip_rootfs(std::vector<MountEntry>& mounts) const {
    for (MountEntry& m : mounts)
      if (path_is_under(m.mountpoint, rootfs_) && rootfs_ != "/") {
        m.mountpoint.erase(0, rootfs_.size());
        if (m.mountpoint.empty()) m.mountpoint = "/";
      }
  }

  void collect_partitions(SlowPart& d, const std::vector<MountEntry>& mounts, int mountinfo_err,
                          const MountEntry* watched) {
    d.partitions.clear();
    if (mountinfo_err != 0) {
      d.partitions_ok = false;
      d.partitions_error = read_error(mountinfo_path_, mountinfo_err);
      return;
    }
    std::vector<std::string> fstypes;
    std::string_view text;
    if (slow_reader_.read(filesystems_path_.c_str(), text) == 0) parse_filesystems(text, fstypes);
    const std::size_t watched_index = watched ? std::size_t(watched - mounts.data()) : mounts.size();
    for (std::size_t i : select_partitions(mounts, fstypes, watched_index)) {
      PartitionStats p;
      describe_mount(mounts[i], p);
      fill_usage(rootfs_ + p.mountpoint, p);
      d.partitions.push_back(std::move(p));
    }
    d.partitions_ok = true;
    d.partitions_error.clear();
  }

  void collect_disk_path(PartitionStats& p, const MountEntry* watched) {
    p = PartitionStats{};
    p.mountpoint = disk_path_;
    if (watched) describe_mount(*watched, p);
    fill_usage(rootfs_ + disk_path_, p);
  }

  const std::string disk_path_, proc_, sys_, rootfs_, cgroupfs_;
  const std::string mountinfo_path_, self_mountinfo_path_, self_cgroup_path_, filesystems_path_, cpuinfo_path_,
      cpu_online_path_;
  double ticks_per_second_ = 100.0;

  // sample_fast only.
  KeptFile stat_file_, loadavg_file_, meminfo_file_, net_dev_file_, diskstats_file_, uptime_file_,
      hostname_file_;
  FileReader reader_;
  std::uint64_t generation_ = 1;  // states start at seen = 0: not continuing
  SampleInterval interval_;
  ProcStat stat_;
  std::uint64_t btime_ = 0;
  CpuTicks prev_total_;
  CpuShares total_shares_;
  std::vector<CoreState> cores_;  // by cpu id
  std::vector<NetDevCounters> net_rows_;
  std::vector<NetState> net_;
  std::vector<DiskstatsEntry> disk_rows_;
  std::vector<DiskState> disks_;
  bool cgroups_known_ = false;
  CgroupFiles cgroup_files_;
  double prev_cgroup_usage_ = std::nan("");

  // sample_slow only: reads, statvfs and realpath that may block.
  BlockingCalls slow_reader_;
};

// ============================================================================
// NodeReader: NodeDetail for the /metrics route
// ============================================================================

// Reads what NodeDetail holds, for the /metrics route: at most once per
// tick, and only when scraped. Never used by sample_fast or sample_slow.
// `root` is where the host's / is seen (empty: this system's own), for
// etc/os-release.
class NodeReader {
 public:
  NodeReader(std::string proc_root = "/proc", std::string sys_root = "/sys", std::string root = {})
      : proc_(std::move(proc_root)), sys_(std::move(sys_root)), root_(std::move(root)) {
    const long hz = ::sysconf(_SC_CLK_TCK);
    ticks_per_second_ = hz > 0 ? static_cast<double>(hz) : 100.0;
    const long page = ::sysconf(_SC_PAGESIZE);
    page_bytes_ = page > 0 ? static_cast<double>(page) : 4096.0;
  }

  void read(NodeDetail& d) {
    d = NodeDetail{};
    std::string_view text;
    collect(d, "meminfo", [&] { return file("/meminfo", text) && (parse_meminfo_all(text, d.meminfo), !d.meminfo.empty()); });
    collect(d, "vmstat", [&] { return file("/vmstat", text) && (parse_vmstat(text, d.vmstat), true); });
    collect(d, "stat", [&] { return file("/stat", text) && parse_stat_counters(text, d); });
    collect(d, "netstat", [&] {
      bool ok = false;
      if (file("/net/netstat", text)) ok = (parse_netstat(text, d.netstat), true);
      if (file("/net/snmp", text)) ok = (parse_netstat(text, d.netstat), true);
      if (file("/net/snmp6", text)) parse_snmp6(text, d.netstat);
      return ok;
    });
    collect(d, "sockstat", [&] {
      bool ok = false;
      if (file("/net/sockstat", text)) ok = (parse_sockstat(text, page_bytes_, d.sockstat), true);
      if (file("/net/sockstat6", text)) parse_sockstat(text, page_bytes_, d.sockstat);
      return ok;
    });
    collect(d, "softnet", [&] { return file("/net/softnet_stat", text) && (parse_softnet(text, d.softnet), true); });
    collect(d, "pressure", [&] {
      static constexpr const char* kFiles[3] = {"/pressure/cpu", "/pressure/io", "/pressure/memory"};
      bool ok = false;
      for (int i = 0; i < 3; ++i)
        if (file(kFiles[i], text)) ok = parse_pressure(text, d.pressure[i][0], d.pressure[i][1]) || ok;
      return ok;
    });
    collect(d, "entropy", [&] {
      const bool avail = number("/sys/kernel/random/entropy_avail", d.entropy_available_bits);
      return number("/sys/kernel/random/poolsize", d.entropy_pool_size_bits) && avail;
    });
    collect(d, "filefd", [&] {
      if (!file("/sys/fs/file-nr", text)) return false;
      double unused = 0;
      return parse_i64_token(text, d.filefd_allocated) && parse_i64_token(text, unused) &&
             parse_i64_token(text, d.filefd_maximum);
    });
    collect(d, "arp", [&] { return file("/net/arp", text) && (parse_arp(text, d.arp), true); });
    collect(d, "conntrack", [&] {
      const bool count = number("/sys/net/netfilter/nf_conntrack_count", d.conntrack_entries);
      return number("/sys/net/netfilter/nf_conntrack_max", d.conntrack_limit) && count;
    });
    collect(d, "netdev", [&] { return file("/net/dev", text) && (parse_net_dev_all(text, d.netdev), true); });
    collect(d, "netclass", [&] { return read_netclass(d.netclass); });
    collect(d, "diskstats", [&] { return file("/diskstats", text) && (parse_diskstats_all(text, d.disks), true); });
    collect(d, "hwmon", [&] { return read_hwmon_temperatures(sys_, reader_, d.hwmon, &d.hwmon_chips); });
    collect(d, "thermal_zone", [&] { return read_thermal_zones(sys_, reader_, d.thermal); });
    collect(d, "timex", [&] { return read_timex(d.timex); });
    collect(d, "uname", [&] { return read_uname(d); });
    collect(d, "os", [&] {
      std::string_view t;
      if (!(reader_.read((root_ + "/etc/os-release").c_str(), t) == 0 ||
            reader_.read((root_ + "/usr/lib/os-release").c_str(), t) == 0))
        return false;
      parse_os_release(t, d.os);
      return d.os_ok = true;
    });
    read_process(d);
  }

 private:
  template <class F>
  void collect(NodeDetail& d, const char* name, F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    const bool ok = f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    d.collectors.push_back({name, s, ok});
  }

  bool file(const char* rel, std::string_view& text) { return reader_.read((proc_ + rel).c_str(), text) == 0; }

  bool number(const char* rel, double& v) {
    std::string_view text;
    return file(rel, text) && parse_i64_token(text, v);
  }

  bool sys_text(const std::string& path, std::string& out) { return read_trimmed(reader_, path, out); }
  bool sys_number(const std::string& path, double& v) { return read_integer(reader_, path, v); }

  bool read_netclass(std::vector<NodeNetClass>& out) {
    const std::string base = sys_ + "/class/net/";
    const std::vector<std::string> names = list_dir(base);
    for (const std::string& n : names) {
      const std::string dir = base + n + "/";
      NodeNetClass c;
      c.device = n;
      if (!sys_text(dir + "operstate", c.operstate)) continue;  // not an interface (bonding_masters)
      sys_text(dir + "address", c.address);
      sys_text(dir + "broadcast", c.broadcast);
      sys_text(dir + "duplex", c.duplex);
      sys_text(dir + "ifalias", c.ifalias);
      sys_number(dir + "mtu", c.mtu);
      sys_number(dir + "carrier", c.carrier);
      // Mbit/s in sysfs (-1 when unknown), bytes per second here.
      if (sys_number(dir + "speed", c.speed_bytes)) c.speed_bytes *= 125000.0;
      out.push_back(std::move(c));
    }
    return is_directory(base.c_str());
  }

  static bool read_timex(NodeTimex& t) {
    struct timex tx;
    std::memset(&tx, 0, sizeof tx);
    const int state = ::adjtimex(&tx);
    if (state < 0) return false;
    // Offsets are in nanoseconds when STA_NANO is set, else microseconds;
    // frequencies are parts per million with a 16-bit fraction (adjtimex(2)).
    const double offset_unit = (tx.status & STA_NANO) ? 1e9 : 1e6;
    const double ppm16 = 65536.0 * 1e6;
    t.ok = true;
    t.offset_seconds = static_cast<double>(tx.offset) / offset_unit;
    t.frequency_adjustment_ratio = 1.0 + static_cast<double>(tx.freq) / ppm16;
    t.maxerror_seconds = static_cast<double>(tx.maxerror) / 1e6;
    t.estimated_error_seconds = static_cast<double>(tx.esterror) / 1e6;
    t.status = static_cast<double>(tx.status);
    t.loop_time_constant = static_cast<double>(tx.constant);
    t.tick_seconds = static_cast<double>(tx.tick) / 1e6;
    t.pps_frequency_hertz = static_cast<double>(tx.ppsfreq) / ppm16;
    t.pps_jitter_seconds = static_cast<double>(tx.jitter) / offset_unit;
    t.pps_shift_seconds = static_cast<double>(tx.shift);
    t.pps_stability_hertz = static_cast<double>(tx.stabil) / ppm16;
    t.pps_jitter_total = static_cast<double>(tx.jitcnt);
    t.pps_calibration_total = static_cast<double>(tx.calcnt);
    t.pps_error_total = static_cast<double>(tx.errcnt);
    t.pps_stability_exceeded_total = static_cast<double>(tx.stbcnt);
    t.tai_offset_seconds = static_cast<double>(tx.tai);
    t.sync_status = state == TIME_ERROR ? 0 : 1;
    return true;
  }

  static bool read_uname(NodeDetail& d) {
    struct utsname u;
    if (::uname(&u) != 0) return false;
    d.sysname = u.sysname;
    d.release = u.release;
    d.version = u.version;
    d.machine = u.machine;
    d.nodename = u.nodename;
#if defined(_GNU_SOURCE)
    d.domainname = u.domainname;
#else
    d.domainname = "(none)";
#endif  // _GNU_SOURCE
    return d.uname_ok = true;
  }

  void read_process(NodeDetail& d) {
    std::string_view text;
    if (file("/self/stat", text)) parse_self_stat(text, ticks_per_second_, page_bytes_, d);
    const std::vector<std::string> fds = list_dir(proc_ + "/self/fd");
    if (!fds.empty()) d.process_open_fds = static_cast<double>(fds.size());
    struct rlimit rl;
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0)
      d.process_max_fds = rl.rlim_cur == RLIM_INFINITY ? 18446744073709551615.0 : static_cast<double>(rl.rlim_cur);
    if (::getrlimit(RLIMIT_AS, &rl) == 0)
      d.process_virtual_max_bytes =
          rl.rlim_cur == RLIM_INFINITY ? 18446744073709551615.0 : static_cast<double>(rl.rlim_cur);
  }

  std::string proc_, sys_, root_;
  double ticks_per_second_ = 100.0, page_bytes_ = 4096.0;
  FileReader reader_{16384};
};

}  // namespace detail
}  // namespace metrics_agent

#endif  // METRICS_AGENT_PLATFORM_LINUX
#endif  // METRICS_AGENT_PLATFORM_LINUX_HPP
