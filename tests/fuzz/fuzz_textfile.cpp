// libFuzzer harness: the Prometheus text-format parser behind --textfile-dir
// (parse_prom_text) on arbitrary bytes. It must never crash, hang or read out
// of bounds; what it accepts must render back into text that it accepts
// again with the same families and samples.
#include "metrics_agent.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

using metrics_agent::detail::TextfileScrape;
using metrics_agent::detail::TextFamily;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  TextfileScrape t;
  if (!metrics_agent::detail::parse_prom_text(text, t.families).empty()) {
    if (!t.families.empty()) std::abort();  // a refused file adds nothing
    return 0;
  }
  std::string out;
  metrics_agent::detail::append_textfile_families(out, 0, t);
  std::vector<TextFamily> again;
  if (!metrics_agent::detail::parse_prom_text(out, again).empty() || again.size() != t.families.size()) std::abort();
  for (std::size_t i = 0; i < again.size(); ++i)
    if (again[i].name != t.families[i].name || again[i].samples.size() != t.families[i].samples.size()) std::abort();
  return 0;
}
