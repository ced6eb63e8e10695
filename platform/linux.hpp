// platform/linux.hpp - the Linux collector: /proc, /sys and statvfs.
// Included by metrics_agent.hpp; fills metrics_agent::Snapshot.
#ifndef METRICS_AGENT_PLATFORM_LINUX_HPP
#define METRICS_AGENT_PLATFORM_LINUX_HPP
#if defined(METRICS_AGENT_PLATFORM_LINUX)

namespace metrics_agent {
namespace detail {

class Collector {
 public:
  explicit Collector(std::string disk_path = "/", std::string proc_root = "/proc",
                     std::string sys_root = "/sys")
      : disk_path_(std::move(disk_path)), proc_(std::move(proc_root)), sys_(std::move(sys_root)) {}
  void sample_fast(Snapshot&, double) {}
  void sample_slow(Snapshot&) {}

 private:
  std::string disk_path_, proc_, sys_;
};

}  // namespace detail
}  // namespace metrics_agent

#endif  // METRICS_AGENT_PLATFORM_LINUX
#endif  // METRICS_AGENT_PLATFORM_LINUX_HPP
