// httplib_app: an application that serves its own REST API with cpp-httplib
// and embeds the agent beside it on another port, publishing its request
// count and latency as gauges.
//
//   httplib_app [--app-port 8080] [--metrics ADDR:PORT]
#include <httplib.h>

#include "metrics_agent.hpp"

#include <atomic>
#include <chrono>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  int app_port = 8080;
  metrics_agent::Options opt;
  opt.listen = "127.0.0.1:54114";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--app-port") app_port = std::atoi(argv[i + 1]);
    else if (a == "--metrics") opt.listen = argv[i + 1];
  }

  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> latency_us_total{0};
  std::atomic<double> last_latency_ms{0};

  metrics_agent::Agent agent(opt);
  agent.add_gauge("app_http_requests", "Requests served by the application API.",
                  [&] { return double(requests.load()); });
  agent.add_gauge("app_http_latency_ms", "Latency of the last application request, in milliseconds.",
                  [&] { return last_latency_ms.load(); });
  agent.add_gauge("app_http_latency_avg_ms", "Mean latency of application requests, in milliseconds.", [&] {
    auto n = requests.load();
    return n ? double(latency_us_total.load()) / 1000.0 / double(n) : 0.0;
  });
  std::string err;
  if (!agent.listen(&err)) {
    std::cerr << "httplib_app: " << err << "\n";
    return 1;
  }
  agent.start();

  // cpp-httplib handles a request on one thread from pre- to post-routing.
  static thread_local std::chrono::steady_clock::time_point started;
  httplib::Server app;
  app.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    started = std::chrono::steady_clock::now();
    return httplib::Server::HandlerResponse::Unhandled;
  });
  app.set_post_routing_handler([&](const httplib::Request&, httplib::Response&) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
    ++requests;
    latency_us_total += std::uint64_t(us);
    last_latency_ms = double(us) / 1000.0;
  });
  app.Get("/hello", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"hello\":\"world\"}", "application/json");
  });
  app.Get("/stop", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"stopping\":true}", "application/json");
    app.stop();
  });
  std::cout << "app on http://127.0.0.1:" << app_port << "/hello, metrics on http://" << opt.listen << "/" << std::endl;
  app.listen("127.0.0.1", app_port);
  agent.stop();
  agent.join();
  return 0;
}
