// ws_callbacks_server: a server on the generic API of metrics_agent.hpp whose
// WebSocket callbacks misbehave on request, for the end-to-end tests of how
// the loop contains them and what the callbacks are told.
//
//   ws_callbacks_server --listen ADDR:PORT
//
//   /echo            echoes text; "header NAME" answers the upgrade request's
//                    header NAME (or "(none)"), read after on_open
//   /throw/open      on_open throws
//   /throw/message   "throw" throws a std::runtime_error, "throw-other" an int;
//                    anything else is echoed
//   /throw/close     on_close throws
//   /watch           told "closed PATH CODE" whenever another connection ends
//   GET /stats       {"callback_errors":N,"clients":N}
#include "metrics_agent.hpp"

#include <algorithm>
#include <csignal>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {
metrics_agent::Server* g_server = nullptr;
extern "C" void on_signal(int) {
  if (g_server) g_server->stop();
}
}  // namespace

int main(int argc, char** argv) {
  metrics_agent::Server::Config cfg;
  cfg.listen = "127.0.0.1:9003";
  if (argc == 3 && std::string(argv[1]) == "--listen") {
    cfg.listen = argv[2];
  } else if (argc != 1) {
    std::cerr << "usage: ws_callbacks_server [--listen ADDR:PORT]\n";
    return 2;
  }
  metrics_agent::Server server(cfg);
  std::vector<metrics_agent::WebSocket> watchers;

  auto report_close = [&](metrics_agent::WebSocket& ws, std::uint16_t code) {
    if (ws.request().path == "/watch") {
      watchers.erase(std::remove(watchers.begin(), watchers.end(), ws), watchers.end());
      return;
    }
    std::string line = "closed " + ws.request().path + " " + std::to_string(code);
    for (auto& w : watchers) w.send_text(line);
  };
  auto echo = [](metrics_agent::WebSocket& ws, std::string_view msg, bool) {
    if (msg.substr(0, 7) == "header ") {
      const std::string* v = ws.request().header(std::string(msg.substr(7)));
      ws.send_text(v ? *v : "(none)");
      return;
    }
    ws.send_text(msg);
  };

  metrics_agent::WebSocketRoute r;
  r.on_message = echo;
  r.on_close = report_close;
  server.websocket("/echo", r);

  metrics_agent::WebSocketRoute throw_open = r;
  throw_open.on_open = [](metrics_agent::WebSocket&) { throw std::runtime_error("on_open fails on purpose"); };
  server.websocket("/throw/open", throw_open);

  metrics_agent::WebSocketRoute throw_message = r;
  throw_message.on_message = [echo](metrics_agent::WebSocket& ws, std::string_view msg, bool binary) {
    if (msg == "throw") throw std::runtime_error("on_message fails on purpose");
    if (msg == "throw-other") throw 42;
    echo(ws, msg, binary);
  };
  server.websocket("/throw/message", throw_message);

  metrics_agent::WebSocketRoute throw_close = r;
  throw_close.on_close = [report_close](metrics_agent::WebSocket& ws, std::uint16_t code) {
    report_close(ws, code);
    throw std::runtime_error("on_close fails on purpose");
  };
  server.websocket("/throw/close", throw_close);

  metrics_agent::WebSocketRoute watch;
  watch.on_open = [&](metrics_agent::WebSocket& ws) { watchers.push_back(ws); };
  watch.on_close = report_close;
  server.websocket("/watch", watch);

  server.http("GET", "/stats", [&](const metrics_agent::HttpRequest&) {
    return metrics_agent::HttpResponse::json(
        200, "{\"callback_errors\":" + std::to_string(server.stats().callback_errors) +
                 ",\"clients\":" + std::to_string(server.client_count()) + "}");
  });

  std::string err;
  if (!server.start(&err)) {
    std::cerr << "ws_callbacks_server: " << err << "\n";
    return 1;
  }
  g_server = &server;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  server.log("listening on port " + std::to_string(server.port()));
  server.join();
  return 0;
}
