// platform/windows.hpp - the Windows collector: Win32 and IP Helper calls.
//
// Included by metrics_agent.hpp; fills metrics_agent::Snapshot and implements
// the collector contract written down beside Snapshot there.
//
//   sample_fast (event-loop thread, every tick; counters only):
//     NtQuerySystemInformation(SystemProcessorPerformanceInformation) per core
//     (GetSystemTimes for the total when it is missing), GlobalMemoryStatusEx,
//     GetPerformanceInfo, GetIfTable2, DeviceIoControl(IOCTL_DISK_PERFORMANCE)
//     on each \\.\PhysicalDriveN, GetTickCount64, GetComputerNameExW
//   sample_slow (worker thread; may block on storage; fills a SlowPart):
//     GetLogicalDriveStringsW, GetDriveTypeW, GetVolumeInformationW and
//     GetDiskFreeSpaceExW of every fixed drive and of --disk
//
// Windows has no load average: `load` is failed with a reason (null in JSON),
// and there are no cgroups: `container` is absent. Paths are UTF-8 in the
// Snapshot and UTF-16 for the system.
#ifndef METRICS_AGENT_PLATFORM_WINDOWS_HPP
#define METRICS_AGENT_PLATFORM_WINDOWS_HPP
#if defined(METRICS_AGENT_PLATFORM_WINDOWS)

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace metrics_agent {
namespace detail {

namespace win {

inline std::wstring widen(const std::string& s) {
  if (s.empty()) return {};
  int n = ::MultiByteToWideChar(CP_UTF8, 0, s.data(), int(s.size()), nullptr, 0);
  std::wstring w(std::size_t(n > 0 ? n : 0), L'\0');
  if (n > 0) ::MultiByteToWideChar(CP_UTF8, 0, s.data(), int(s.size()), &w[0], n);
  return w;
}

inline std::string narrow(const wchar_t* w) {
  int n = ::WideCharToMultiByte(CP_UTF8, 0, w, -1, nullptr, 0, nullptr, nullptr);
  if (n <= 1) return {};
  std::string s(std::size_t(n), '\0');
  ::WideCharToMultiByte(CP_UTF8, 0, w, -1, &s[0], n, nullptr, nullptr);
  s.resize(std::size_t(n - 1));
  return s;
}

inline std::string error_text(DWORD e) {
  char buf[256];
  DWORD n = ::FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr, e,
                             MAKELANGID(LANG_ENGLISH, SUBLANG_ENGLISH_US), buf, sizeof buf, nullptr);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '.')) --n;
  return n > 0 ? std::string(buf, n) : "error " + std::to_string(e);
}

// FILETIME and LARGE_INTEGER times count 100 ns units.
inline double seconds_of(std::uint64_t hundred_ns) { return double(hundred_ns) / 1e7; }
inline std::uint64_t u64_of(const FILETIME& f) {
  return (std::uint64_t(f.dwHighDateTime) << 32) | f.dwLowDateTime;
}

// winternl.h's SYSTEM_PROCESSOR_PERFORMANCE_INFORMATION, with the fields'
// documented meaning: KernelTime includes IdleTime, DpcTime and InterruptTime.
struct ProcessorTimes {
  LARGE_INTEGER idle, kernel, user, dpc, interrupt;
  ULONG interrupt_count;
};
using NtQuerySystemInformationFn = LONG(WINAPI*)(int, void*, ULONG, ULONG*);
constexpr int kSystemProcessorPerformanceInformation = 8;

// ntdll's entry point, looked up once: not every toolchain links ntdll.
inline NtQuerySystemInformationFn nt_query() {
  static const NtQuerySystemInformationFn fn = [] {
    HMODULE ntdll = ::GetModuleHandleW(L"ntdll.dll");
    return ntdll ? reinterpret_cast<NtQuerySystemInformationFn>(
                       reinterpret_cast<void*>(::GetProcAddress(ntdll, "NtQuerySystemInformation")))
                 : nullptr;
  }();
  return fn;
}

// Fills one usage share set from two cumulative readings.
inline void shares(const CpuTimes& a, const CpuTimes& b, double& usage, double* user, double* system,
                   double* irq, double* softirq, double* idle) {
  const double du = b.user - a.user, ds = b.system - a.system, di = b.idle - a.idle, dq = b.irq - a.irq,
               dd = b.softirq - a.softirq;
  const double total = du + ds + di + dq + dd;
  if (total <= 0) {
    usage = 0;
    return;
  }
  usage = 100.0 * (total - di) / total;
  if (user) *user = 100.0 * du / total;
  if (system) *system = 100.0 * ds / total;
  if (irq) *irq = 100.0 * dq / total;
  if (softirq) *softirq = 100.0 * dd / total;
  if (idle) *idle = 100.0 * di / total;
}

}  // namespace win

// For --host-root, which names Linux files: true when `path` is a directory.
inline bool is_directory(const char* path) {
  const DWORD a = ::GetFileAttributesW(win::widen(path).c_str());
  return a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY) != 0;
}

class Collector {
 public:
  // proc_root, sys_root and host_root name Linux files; Windows has none.
  explicit Collector(std::string disk_path = "/", std::string = {}, std::string = {}, std::string = {})
      : disk_path_(std::move(disk_path)) {
    Snapshot scratch;
    collect_fast(scratch, 0);
    interval_.baseline();
  }

  // Counters only; rates and shares are against the previous call.
  void sample_fast(Snapshot& out, double now) {
    const double elapsed = interval_.next(now);
    out.timestamp_us = wall_now_us();
    collect_fast(out, elapsed);
  }

  // What sample_slow fills: the Snapshot fields named beside each member.
  struct SlowPart {
    PartitionStats disk_path;                // disk.path
    bool partitions_ok = false;              // disk.partitions_ok
    std::string partitions_error;            // disk.partitions_error
    std::vector<PartitionStats> partitions;  // disk.partitions
  };

  static void merge(const SlowPart& p, Snapshot& s) {
    s.disk.path = p.disk_path;
    s.disk.partitions_ok = p.partitions_ok;
    s.disk.partitions_error = p.partitions_error;
    s.disk.partitions = p.partitions;
  }

  static void merge_failed(const SlowPart& p, const std::string& why, Snapshot& s) {
    s.disk.path = p.disk_path;
    s.disk.path.ok = false;
    s.disk.path.error = why;
    s.disk.partitions_ok = false;
    s.disk.partitions_error = why;
    s.disk.partitions.clear();
  }

  // One blocking slow sample merged into `out` (--once, tests, benchmarks).
  void sample_slow(Snapshot& out) {
    SlowPart p;
    sample_slow(p);
    merge(p, out);
  }

  // What can block: the volumes (a disk that does not answer).
  void sample_slow(SlowPart& out) {
    out.disk_path = volume(disk_path_, volume_root(disk_path_));
    out.partitions.clear();
    wchar_t drives[512];
    DWORD n = ::GetLogicalDriveStringsW(DWORD(sizeof drives / sizeof drives[0]), drives);
    if (n == 0 || n >= sizeof drives / sizeof drives[0]) {
      out.partitions_ok = false;
      out.partitions_error = "GetLogicalDriveStringsW: " + win::error_text(::GetLastError());
      return;
    }
    for (const wchar_t* d = drives; *d; d += std::wcslen(d) + 1) {
      if (::GetDriveTypeW(d) != DRIVE_FIXED) continue;
      std::string name = win::narrow(d);
      out.partitions.push_back(volume(name, d));
    }
    out.partitions_ok = true;
    out.partitions_error.clear();
  }

 private:
  // "/" (the default --disk) is the system drive; any other path is measured
  // as given (a drive "D:\", a directory, a UNC path).
  static std::wstring volume_root(const std::string& path) {
    if (path == "/" || path.empty()) {
      wchar_t dir[MAX_PATH];
      UINT n = ::GetSystemWindowsDirectoryW(dir, MAX_PATH);
      if (n >= 3 && n < MAX_PATH) return std::wstring(dir, 3);  // "C:\"
      return L"C:\\";
    }
    std::wstring w = win::widen(path);
    if (!w.empty() && w.back() != L'\\' && w.back() != L'/') w += L'\\';
    return w;
  }

  static PartitionStats volume(const std::string& name, const std::wstring& root) {
    PartitionStats p;
    p.mountpoint = name;
    wchar_t fs[64] = L"", label[MAX_PATH + 1] = L"";
    DWORD flags = 0;
    if (::GetVolumeInformationW(root.c_str(), label, MAX_PATH + 1, nullptr, nullptr, &flags, fs, 64)) {
      p.fstype = win::narrow(fs);
      p.readonly = (flags & FILE_READ_ONLY_VOLUME) != 0;
    }
    p.device = win::narrow(root.c_str());
    ULARGE_INTEGER avail{}, total{}, total_free{};
    if (!::GetDiskFreeSpaceExW(root.c_str(), &avail, &total, &total_free)) {
      p.error = "GetDiskFreeSpaceExW: " + win::error_text(::GetLastError());
      return p;
    }
    p.ok = true;
    p.total_bytes = total.QuadPart;
    p.free_bytes = avail.QuadPart;
    p.bfree_bytes = total_free.QuadPart;
    p.used_bytes = total.QuadPart > total_free.QuadPart ? total.QuadPart - total_free.QuadPart : 0;
    const double denom = double(p.used_bytes) + double(p.free_bytes);
    p.usage_percent = denom > 0 ? 100.0 * double(p.used_bytes) / denom : 0;
    return p;
  }

  void collect_fast(Snapshot& out, double elapsed) {
    collect_cpu(out.cpu);
    out.load = LoadStats{};
    out.load.error = "Windows has no load average";
    collect_memory(out.memory);
    collect_network(out.network, elapsed);
    collect_disk_io(out.disk, elapsed);
    collect_system(out.system);
    out.container = ContainerStats{};
  }

  // Per core from NtQuerySystemInformation: user, system (kernel minus idle,
  // DPC and interrupt time), irq (interrupts), softirq (DPCs, Windows'
  // deferred interrupt work) and idle; the total is their sum. GetSystemTimes
  // gives the total alone when the per-core call is missing.
  void collect_cpu(CpuStats& c) {
    std::vector<CpuTimes> now;
    CpuTimes total;
    if (!per_core_times(now, total)) {
      FILETIME idle, kernel, user;
      if (!::GetSystemTimes(&idle, &kernel, &user)) {
        c = CpuStats{};
        c.error = "GetSystemTimes: " + win::error_text(::GetLastError());
        return;
      }
      total.idle = win::seconds_of(win::u64_of(idle));
      total.user = win::seconds_of(win::u64_of(user));
      total.system = win::seconds_of(win::u64_of(kernel)) - total.idle;
    }
    c = CpuStats{};
    c.ok = true;
    win::shares(prev_total_, total, c.usage_percent, &c.user, &c.system, &c.irq, &c.softirq, &c.idle);
    for (std::size_t i = 0; i < now.size(); ++i) {
      double usage = 0;
      if (i < prev_cores_.size()) win::shares(prev_cores_[i], now[i], usage, nullptr, nullptr, nullptr, nullptr, nullptr);
      c.per_core.push_back(usage);
      c.core_ids.push_back(unsigned(i));
    }
    c.core_times = now;
    prev_cores_ = std::move(now);
    prev_total_ = total;
  }

  static bool per_core_times(std::vector<CpuTimes>& out, CpuTimes& total) {
    auto query = win::nt_query();
    if (!query) return false;
    SYSTEM_INFO si;
    ::GetSystemInfo(&si);
    std::vector<win::ProcessorTimes> buf(si.dwNumberOfProcessors ? si.dwNumberOfProcessors : 1);
    ULONG got = 0;
    if (query(win::kSystemProcessorPerformanceInformation, buf.data(), ULONG(buf.size() * sizeof buf[0]), &got) < 0)
      return false;
    buf.resize(got / sizeof buf[0]);
    if (buf.empty()) return false;
    for (const auto& p : buf) {
      CpuTimes t;
      t.idle = win::seconds_of(std::uint64_t(p.idle.QuadPart));
      t.user = win::seconds_of(std::uint64_t(p.user.QuadPart));
      t.irq = win::seconds_of(std::uint64_t(p.interrupt.QuadPart));
      t.softirq = win::seconds_of(std::uint64_t(p.dpc.QuadPart));
      t.system = std::max(0.0, win::seconds_of(std::uint64_t(p.kernel.QuadPart)) - t.idle - t.irq - t.softirq);
      total.user += t.user;
      total.system += t.system;
      total.idle += t.idle;
      total.irq += t.irq;
      total.softirq += t.softirq;
      out.push_back(t);
    }
    return true;
  }

  // Physical memory from GlobalMemoryStatusEx, the file cache from
  // GetPerformanceInfo; swap is the page file: the commit limit beyond RAM.
  static void collect_memory(MemoryStats& m) {
    m = MemoryStats{};
    MEMORYSTATUSEX ms{};
    ms.dwLength = sizeof ms;
    if (!::GlobalMemoryStatusEx(&ms)) {
      m.error = "GlobalMemoryStatusEx: " + win::error_text(::GetLastError());
      return;
    }
    m.ok = true;
    m.total_bytes = ms.ullTotalPhys;
    m.available_bytes = ms.ullAvailPhys;
    m.free_bytes = ms.ullAvailPhys;
    m.used_bytes = ms.ullTotalPhys - ms.ullAvailPhys;
    m.usage_percent = ms.ullTotalPhys ? 100.0 * double(m.used_bytes) / double(ms.ullTotalPhys) : 0;
    PERFORMANCE_INFORMATION pi{};
    pi.cb = sizeof pi;
    if (::GetPerformanceInfo(&pi, sizeof pi)) {
      m.cached_bytes = std::uint64_t(pi.SystemCache) * pi.PageSize;
      m.page_cache_bytes = m.cached_bytes;
    }
    if (ms.ullTotalPageFile > ms.ullTotalPhys) {
      m.swap_total_bytes = ms.ullTotalPageFile - ms.ullTotalPhys;
      const std::uint64_t committed = ms.ullTotalPageFile - ms.ullAvailPageFile;
      const std::uint64_t in_ram = ms.ullTotalPhys - ms.ullAvailPhys;
      m.swap_used_bytes = committed > in_ram ? std::min(committed - in_ram, m.swap_total_bytes) : 0;
      m.swap_free_bytes = m.swap_total_bytes - m.swap_used_bytes;
      m.swap_percent = 100.0 * double(m.swap_used_bytes) / double(m.swap_total_bytes);
    }
  }

  // GetIfTable2 lists each adapter several times (its filter and WFP
  // layers); only the real interface of each name is kept.
  void collect_network(NetworkStats& n, double elapsed) {
    n = NetworkStats{};
    MIB_IF_TABLE2* table = nullptr;
    DWORD rc = ::GetIfTable2(&table);
    if (rc != NO_ERROR) {
      n.error = "GetIfTable2: " + win::error_text(rc);
      return;
    }
    n.ok = true;
    std::map<std::string, InterfaceStats> seen;
    for (ULONG i = 0; i < table->NumEntries; ++i) {
      const MIB_IF_ROW2& r = table->Table[i];
      if (r.InterfaceAndOperStatusFlags.FilterInterface) continue;
      std::string name = win::narrow(r.Alias[0] ? r.Alias : r.Description);
      if (name.empty() || seen.count(name)) continue;
      InterfaceStats s;
      s.name = name;
      s.bytes_recv = r.InOctets;
      s.bytes_sent = r.OutOctets;
      s.packets_recv = r.InUcastPkts + r.InNUcastPkts;
      s.packets_sent = r.OutUcastPkts + r.OutNUcastPkts;
      s.errors_in = r.InErrors;
      s.errors_out = r.OutErrors;
      s.drops_in = r.InDiscards;
      s.drops_out = r.OutDiscards;
      auto p = prev_if_.find(name);
      if (p != prev_if_.end() && elapsed > 0) {
        auto rate = [elapsed](std::uint64_t a, std::uint64_t b) { return b >= a ? double(b - a) / elapsed : 0.0; };
        s.bytes_recv_per_sec = rate(p->second.bytes_recv, s.bytes_recv);
        s.bytes_sent_per_sec = rate(p->second.bytes_sent, s.bytes_sent);
        s.packets_recv_per_sec = rate(p->second.packets_recv, s.packets_recv);
        s.packets_sent_per_sec = rate(p->second.packets_sent, s.packets_sent);
      }
      if (r.Type != IF_TYPE_SOFTWARE_LOOPBACK) {
        n.bytes_recv_per_sec += s.bytes_recv_per_sec;
        n.bytes_sent_per_sec += s.bytes_sent_per_sec;
      }
      seen.emplace(name, s);
      n.interfaces.push_back(s);
    }
    ::FreeMibTable(table);
    prev_if_ = std::move(seen);
  }

  // IOCTL_DISK_PERFORMANCE on \\.\PhysicalDrive0, 1, ... until one is missing.
  // Opening with no access right needs no administrator.
  void collect_disk_io(DiskStats& d, double elapsed) {
    d.io_ok = false;
    d.io_error.clear();
    d.read_bytes_per_sec = d.write_bytes_per_sec = 0;
    d.devices.clear();
    std::map<std::string, DiskDeviceStats> seen;
    DWORD last_error = 0;
    for (int i = 0; i < 64; ++i) {
      const std::wstring path = L"\\\\.\\PhysicalDrive" + std::to_wstring(i);
      HANDLE h = ::CreateFileW(path.c_str(), 0, FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_EXISTING, 0, nullptr);
      if (h == INVALID_HANDLE_VALUE) break;
      DISK_PERFORMANCE perf{};
      DWORD got = 0;
      BOOL ok = ::DeviceIoControl(h, IOCTL_DISK_PERFORMANCE, nullptr, 0, &perf, sizeof perf, &got, nullptr);
      if (!ok) last_error = ::GetLastError();
      ::CloseHandle(h);
      if (!ok) continue;
      DiskDeviceStats s;
      s.name = "PhysicalDrive" + std::to_string(i);
      s.read_bytes = std::uint64_t(perf.BytesRead.QuadPart);
      s.write_bytes = std::uint64_t(perf.BytesWritten.QuadPart);
      s.reads = perf.ReadCount;
      s.writes = perf.WriteCount;
      s.read_time_seconds = win::seconds_of(std::uint64_t(perf.ReadTime.QuadPart));
      s.write_time_seconds = win::seconds_of(std::uint64_t(perf.WriteTime.QuadPart));
      auto p = prev_disk_.find(s.name);
      if (p != prev_disk_.end() && elapsed > 0) {
        auto rate = [elapsed](std::uint64_t a, std::uint64_t b) { return b >= a ? double(b - a) / elapsed : 0.0; };
        s.read_bytes_per_sec = rate(p->second.read_bytes, s.read_bytes);
        s.write_bytes_per_sec = rate(p->second.write_bytes, s.write_bytes);
        s.reads_per_sec = rate(p->second.reads, s.reads);
        s.writes_per_sec = rate(p->second.writes, s.writes);
      }
      d.read_bytes_per_sec += s.read_bytes_per_sec;
      d.write_bytes_per_sec += s.write_bytes_per_sec;
      seen.emplace(s.name, s);
      d.devices.push_back(s);
    }
    prev_disk_ = std::move(seen);
    if (!d.devices.empty()) {
      d.io_ok = true;
    } else {
      d.io_error = last_error ? "IOCTL_DISK_PERFORMANCE: " + win::error_text(last_error)
                              : "no \\\\.\\PhysicalDrive device could be opened";
    }
  }

  static void collect_system(SystemInfo& s) {
    s = SystemInfo{};
    s.ok = true;
    s.uptime_seconds = double(::GetTickCount64()) / 1000.0;
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    s.boot_time = now - s.uptime_seconds;
    wchar_t name[256];
    DWORD len = 256;
    if (::GetComputerNameExW(ComputerNameDnsHostname, name, &len)) s.hostname = win::narrow(name);
  }

  std::string disk_path_;
  SampleInterval interval_;
  CpuTimes prev_total_;
  std::vector<CpuTimes> prev_cores_;
  std::map<std::string, InterfaceStats> prev_if_;
  std::map<std::string, DiskDeviceStats> prev_disk_;
};

}  // namespace detail
}  // namespace metrics_agent

#endif  // METRICS_AGENT_PLATFORM_WINDOWS
#endif  // METRICS_AGENT_PLATFORM_WINDOWS_HPP
