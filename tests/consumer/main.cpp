// Embeds the agent, publishes a gauge, serves one tick, reads it back.
#include "metrics_agent.hpp"

#include <cstdio>

int other_translation_unit();

int main() {
  metrics_agent::Options opt;
  opt.listen = "127.0.0.1:0";
  opt.tick_seconds = 0.1;
  metrics_agent::Agent agent(opt);
  agent.add_gauge("consumer_answer", "The answer.", [] { return 42.0; });
  std::string err;
  if (!agent.listen(&err)) {
    std::fprintf(stderr, "consumer: %s\n", err.c_str());
    return 1;
  }
  std::printf("port %d, other %d\n", agent.port(), other_translation_unit());
  return agent.port() > 0 && other_translation_unit() == 7 ? 0 : 1;
}
