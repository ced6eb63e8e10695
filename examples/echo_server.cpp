// echo_server: a plain WebSocket echo server on the generic API of
// metrics_agent.hpp. Every message comes back as it came, text as text and
// binary as binary, on any path; nothing is sent unsolicited.
//
//   echo_server [--listen ADDR:PORT] [--max-message BYTES]
#include "metrics_agent.hpp"

#include <csignal>
#include <iostream>
#include <string>

namespace {
metrics_agent::Server* g_server = nullptr;
extern "C" void on_signal(int) {
  if (g_server) g_server->stop();
}
}  // namespace

int main(int argc, char** argv) {
  metrics_agent::Server::Config cfg;
  cfg.listen = "127.0.0.1:9002";
  cfg.max_message_bytes = 64 * 1024;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help") {
      std::cout << "usage: echo_server [--listen ADDR:PORT] [--max-message BYTES (1..16777216, default 65536)]\n";
      return 0;
    }
    if (i + 1 >= argc) {
      std::cerr << "echo_server: " << a << ": missing value or unknown option\n";
      return 2;
    }
    std::string v = argv[++i];
    if (a == "--listen") {
      cfg.listen = v;
    } else if (a == "--max-message") {
      std::uint64_t n = 0;
      if (!metrics_agent::detail::to_u64(v, n) || n < 1 || n > (16u << 20)) {
        std::cerr << "echo_server: --max-message: '" << v << "' is not between 1 and 16777216\n";
        return 2;
      }
      cfg.max_message_bytes = std::size_t(n);
    } else {
      std::cerr << "echo_server: unknown option " << a << "\n";
      return 2;
    }
  }
  // Echoing a large message to a slow reader queues it once: allow a few.
  cfg.max_backlog_bytes = std::max<std::size_t>(cfg.max_backlog_bytes, 4 * cfg.max_message_bytes);

  metrics_agent::Server server(cfg);
  metrics_agent::WebSocketRoute echo;
  echo.on_message = [](metrics_agent::WebSocket& ws, std::string_view msg, bool binary) {
    if (binary)
      ws.send_binary(msg);
    else
      ws.send_text(msg);
  };
  server.websocket("*", echo);  // every path
  std::string err;
  if (!server.listen(&err)) {
    std::cerr << "echo_server: " << err << "\n";
    return 1;
  }
  g_server = &server;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  server.log("echo server on " + cfg.listen);
  server.run();
  return 0;
}
