// A second translation unit including the header: every definition in it
// must be inline, or this program fails to link.
#include "metrics_agent.hpp"

int other_translation_unit() {
  return metrics_agent::detail::valid_close_code(1000) ? 7 : 0;
}
