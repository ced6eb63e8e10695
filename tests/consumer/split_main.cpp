// Split mode: a translation unit that sees only the public declarations,
// linked against split_impl.cpp. Runs an agent on a free port briefly.
#define METRICS_AGENT_SEPARATE_IMPLEMENTATION
#include "metrics_agent.hpp"

#include <cstdio>
#include <string>

int main() {
  metrics_agent::Options o;
  o.listen = "127.0.0.1:0";
  o.logger = [](const std::string&) {};
  metrics_agent::Agent agent(o);
  std::string why;
  if (!agent.start(&why)) {
    std::fprintf(stderr, "start failed: %s\n", why.c_str());
    return 1;
  }
  int port = agent.port();
  agent.stop();
  agent.join();
  return port > 0 ? 0 : 1;
}
