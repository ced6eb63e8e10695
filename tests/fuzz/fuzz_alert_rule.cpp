// --alert rules: an accepted rule has a plain metric name, one of the four
// comparisons, a finite threshold, a hold of at most a week and a known
// level, and written back in canonical form it parses to the same rule.
#include "metrics_agent.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace md = metrics_agent::detail;

namespace {

std::string shortest(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  md::AlertRule rule;
  std::string error;
  if (!md::parse_alert_rule(text, rule, error)) {
    if (error.empty()) std::abort();
    return 0;
  }
  if (!error.empty() || rule.metric.empty()) std::abort();
  for (char c : rule.metric)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
      std::abort();
  if (rule.op != ">" && rule.op != ">=" && rule.op != "<" && rule.op != "<=") std::abort();
  if (!std::isfinite(rule.threshold)) std::abort();
  if (!(rule.hold_seconds >= 0 && rule.hold_seconds <= 7 * 86400)) std::abort();
  if (rule.level != "info" && rule.level != "warning" && rule.level != "critical") std::abort();
  // The comparison is the one written.
  const double t = rule.threshold;
  if (md::alert_holds(rule, t) != (rule.op.size() == 2)) std::abort();
  if (md::alert_holds(rule, t + std::fabs(t) + 1) != (rule.op[0] == '>')) std::abort();

  const std::string canonical =
      rule.metric + rule.op + shortest(rule.threshold) + ':' + shortest(rule.hold_seconds) + "s:" + rule.level;
  md::AlertRule again;
  if (!md::parse_alert_rule(canonical, again, error)) std::abort();
  if (again.metric != rule.metric || again.op != rule.op || again.threshold != rule.threshold ||
      again.hold_seconds != rule.hold_seconds || again.level != rule.level)
    std::abort();
  return 0;
}
