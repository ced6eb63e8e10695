// embedded: a program that embeds the agent and publishes its own gauges.
// Its work queue and processed-jobs counter appear under data.custom in the
// streams, in /api/metrics/{name} history and in /metrics.
//
//   embedded [--listen ADDR:PORT] [--seconds N]
#include "metrics_agent.hpp"

#include <atomic>
#include <chrono>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  metrics_agent::Options opt;
  opt.listen = "127.0.0.1:54113";
  double seconds = 0;  // 0: until interrupted
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--listen") opt.listen = argv[i + 1];
    else if (a == "--seconds") seconds = std::atof(argv[i + 1]);
  }

  std::mutex mu;
  std::vector<int> queue;
  std::atomic<long> processed{0};

  metrics_agent::Agent agent(opt);
  agent.add_gauge("app_queue_depth", "Jobs waiting in the queue.", [&] {
    std::lock_guard<std::mutex> lk(mu);
    return double(queue.size());
  });
  agent.add_gauge("app_jobs_processed", "Jobs processed since start.", [&] { return double(processed.load()); });

  std::string err;
  if (!agent.listen(&err)) {
    std::cerr << "embedded: " << err << "\n";
    return 1;
  }
  agent.start();
  std::cout << "metrics on http://" << opt.listen << "/ (ws: /api/ws/metrics)" << std::endl;

  // The application's own work: a producer and a consumer at uneven rates.
  std::mt19937 rng(42);
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (seconds == 0 || std::chrono::steady_clock::now() < until) {
    {
      std::lock_guard<std::mutex> lk(mu);
      for (unsigned n = rng() % 5; n > 0; --n) queue.push_back(int(rng()));
      for (unsigned n = rng() % 4; n > 0 && !queue.empty(); --n) {
        queue.pop_back();
        ++processed;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  agent.stop();
  agent.join();
  return 0;
}
