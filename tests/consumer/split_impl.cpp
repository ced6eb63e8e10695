// Split mode (METRICS_AGENT_SEPARATE_IMPLEMENTATION): the one translation
// unit that compiles the implementation.
#define METRICS_AGENT_SEPARATE_IMPLEMENTATION
#define METRICS_AGENT_IMPLEMENTATION
#include "metrics_agent.hpp"
