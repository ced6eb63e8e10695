// Unit tests of the generic Server's public API as an embedding program uses
// it from its own threads: start() listens before it returns and reports
// failure, the counters can be read from any thread, and the process's
// open-file limit is left alone.
#include "metrics_agent.hpp"
#include "test_net.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace metrics_agent;

namespace {

Server::Config loopback_any_port() {
  Server::Config cfg;
  cfg.listen = "127.0.0.1:0";
  cfg.logger = [](const std::string&) {};
  return cfg;
}

using test_net::connect_to;

// Sends one request and reads the answer's first bytes (enough for a status line).
std::string http_exchange(int fd, const std::string& request) {
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != ssize_t(request.size())) return {};
  char buf[512];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, std::size_t(n)) : std::string();
}

// Polls `cond` for up to five seconds (bounded; no timing assertions).
using test_util::eventually;

}  // namespace

TEST(ServerApi, PortIsKnownWhenStartReturns) {
  for (int round = 0; round < 20; ++round) {
    Server server(loopback_any_port());
    std::string err;
    ASSERT_TRUE(server.start(&err)) << err;
    const int port = server.port();
    ASSERT_GT(port, 0) << "round " << round;
    int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    ::close(fd);
    server.stop();
    server.join();
  }
}

TEST(ServerApi, StartReportsAPortInUse) {
  Server first(loopback_any_port());
  std::string err;
  ASSERT_TRUE(first.start(&err)) << err;
  Server::Config cfg = loopback_any_port();
  cfg.listen = "127.0.0.1:" + std::to_string(first.port());
  std::vector<std::string> logged;
  cfg.logger = [&logged](const std::string& line) { logged.push_back(line); };
  Server second(cfg);
  std::string why;
  EXPECT_FALSE(second.start(&why));
  EXPECT_FALSE(why.empty());
  EXPECT_TRUE(logged.empty()) << "the reason goes to the caller: " << logged.front();
  // Without a place for the reason, it is logged.
  EXPECT_FALSE(second.start());
  EXPECT_EQ(logged.size(), 1u);
  second.stop();
  second.join();  // no thread was started: returns at once
  // The first server is unaffected.
  int fd = connect_to(first.port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(http_exchange(fd, "GET /none HTTP/1.1\r\nHost: x\r\n\r\n").compare(0, 12, "HTTP/1.1 404"), 0);
  ::close(fd);
  first.stop();
  first.join();
}

TEST(ServerApi, AgentStartReportsAPortInUse) {
  Server first(loopback_any_port());
  ASSERT_TRUE(first.start());
  Options opt;
  opt.listen = "127.0.0.1:" + std::to_string(first.port());
  Agent agent(opt);
  std::string why;
  EXPECT_FALSE(agent.start(&why));
  EXPECT_FALSE(why.empty());
  first.stop();
  first.join();
}

TEST(ServerApi, AgentPortIsKnownWhenStartReturns) {
  Options opt;
  opt.listen = "127.0.0.1:0";
  Agent agent(opt);
  std::string err;
  ASSERT_TRUE(agent.start(&err)) << err;
  EXPECT_GT(agent.port(), 0);
  agent.stop();
  agent.join();
}

// The counters are read from the test's threads while the loop serves
// connections; under a sanitizer any unsynchronized access would show.
TEST(ServerApi, CountersReadableFromOtherThreads) {
  Server server(loopback_any_port());
  WebSocketRoute route;
  route.on_message = [](WebSocket& ws, std::string_view m, bool) { ws.send_text(m); };
  server.websocket("/ws", route);
  server.http("GET", "/hello", [&server](const HttpRequest&) {
    // On the loop's own thread the numbers are exact: this request counts.
    return HttpResponse::json(200, std::to_string(server.stats().http_requests));
  });
  std::string err;
  ASSERT_TRUE(server.start(&err)) << err;
  const int port = server.port();

  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> max_requests{0};
  std::vector<std::thread> readers;
  struct JoinReaders {  // also when an assertion below returns early
    std::atomic<bool>& done;
    std::vector<std::thread>& readers;
    ~JoinReaders() {
      done.store(true);
      for (auto& r : readers)
        if (r.joinable()) r.join();
    }
  } join_readers{done, readers};
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!done.load()) {
        ServerStats st = server.stats();
        std::size_t clients = server.client_count();
        std::size_t ws = server.websocket_count("/ws");
        EXPECT_LE(ws, clients + 64);  // a sanity bound; both are snapshots
        if (st.http_requests > max_requests.load()) max_requests.store(st.http_requests);
        EXPECT_EQ(server.port(), port);
        std::this_thread::yield();
      }
    });
  }
  const int kClients = 20;
  std::vector<int> fds;
  for (int i = 0; i < kClients; ++i) {
    int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    std::string answer = http_exchange(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(answer.compare(0, 12, "HTTP/1.1 200"), 0) << answer;
    EXPECT_NE(answer.find("\r\n\r\n" + std::to_string(i + 1)), std::string::npos) << answer;
    fds.push_back(fd);
  }
  for (int i = 0; i < 5; ++i) {
    int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    std::string answer = http_exchange(fd,
                                  "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    ASSERT_EQ(answer.compare(0, 12, "HTTP/1.1 101"), 0) << answer;
    fds.push_back(fd);
  }
  EXPECT_TRUE(eventually([&] { return server.client_count() == fds.size(); })) << server.client_count();
  EXPECT_TRUE(eventually([&] { return server.websocket_count("/ws") == 5; }));
  EXPECT_TRUE(eventually([&] { return server.stats().connections_accepted == fds.size(); }));
  EXPECT_EQ(server.stats().http_requests, std::uint64_t(kClients + 5));
  for (int fd : fds) ::close(fd);
  EXPECT_TRUE(eventually([&] { return server.client_count() == 0; })) << server.client_count();
  EXPECT_TRUE(eventually([&] { return server.websocket_count("/ws") == 0; }));
  done.store(true);
  for (auto& r : readers) r.join();
  EXPECT_LE(max_requests.load(), std::uint64_t(kClients + 5));
  server.stop();
  server.join();
  EXPECT_EQ(server.stats().connections_accepted, fds.size());
}

// The open-file limit belongs to the host program: creating, starting and
// serving with a Server leaves it as it was; raise_open_file_limit() is the
// explicit way to raise it.
TEST(ServerApi, OpenFileLimitLeftAlone) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_max < 512 && saved.rlim_max != RLIM_INFINITY) GTEST_SKIP() << "hard limit too low to lower";
  rlimit lowered = saved;
  lowered.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  {
    Server server(loopback_any_port());
    std::string err;
    ASSERT_TRUE(server.listen(&err)) << err;
    ASSERT_TRUE(server.start(&err)) << err;
    int fd = connect_to(server.port());
    ASSERT_GE(fd, 0);
    EXPECT_EQ(http_exchange(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").compare(0, 12, "HTTP/1.1 404"), 0);
    ::close(fd);
    rlimit now{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
    EXPECT_EQ(now.rlim_cur, rlim_t(256));
    server.stop();
    server.join();
  }
  {
    Options opt;
    opt.listen = "127.0.0.1:0";
    Agent agent(opt);
    ASSERT_TRUE(agent.start());
    rlimit now{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
    EXPECT_EQ(now.rlim_cur, rlim_t(256));
    agent.stop();
    agent.join();
  }
  EXPECT_TRUE(raise_open_file_limit());
  rlimit raised{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &raised), 0);
  EXPECT_EQ(raised.rlim_cur, saved.rlim_max);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
}

TEST(ServerApi, AHandlerThrowingAnythingIsA500AndServingGoesOn) {
  Server server(loopback_any_port());
  server.http("GET", "/int", [](const HttpRequest&) -> HttpResponse { throw 42; });
  server.http("GET", "/ok", [](const HttpRequest&) { return HttpResponse::json(200, "{}"); });
  ASSERT_TRUE(server.start());
  int fd = connect_to(server.port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(http_exchange(fd, "GET /int HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").rfind("HTTP/1.1 500", 0), 0u);
  EXPECT_EQ(http_exchange(fd, "GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
  ::close(fd);
  server.stop();
  server.join();
}

TEST(ServerApi, ATimerThatThrowsIsCountedAndKeepsTicking) {
  Server server(loopback_any_port());
  std::atomic<int> calls{0};
  server.every(0.05, [&](std::int64_t) {
    ++calls;
    if (calls % 2) throw std::runtime_error("boom");
    throw 7;
  });
  ASSERT_TRUE(server.start());
  EXPECT_TRUE(eventually([&] { return calls.load() >= 4; }));
  EXPECT_TRUE(eventually([&] { return server.stats().callback_errors >= 4; }));
  server.stop();
  server.join();
}

// WebSocketRoute::keep_request: by default WebSocket::request() holds the
// upgrade request for the connection's life; with keep_request = false it
// holds it during on_open only, and is empty (not dangling) afterwards.
TEST(ServerApi, KeepRequestDecidesWhetherTheUpgradeRequestOutlivesOnOpen) {
  Server server(loopback_any_port());
  std::string seen_in_open;
  auto describe = [](const WebSocket& ws) {
    const std::string* tag = ws.request().header("x-tag");
    return ws.request().path + "|" + (tag ? *tag : std::string("-"));
  };
  for (bool keep : {true, false}) {
    WebSocketRoute route;
    route.keep_request = keep;
    route.on_open = [&, describe](WebSocket& ws) { seen_in_open += describe(ws) + ";"; };
    route.on_message = [describe](WebSocket& ws, std::string_view, bool) { ws.send_text(describe(ws)); };
    server.websocket(keep ? "/keep" : "/drop", route);
  }
  std::string err;
  ASSERT_TRUE(server.start(&err)) << err;
  auto ask = [&](const std::string& path) {
    int fd = connect_to(server.port());
    if (fd < 0) return std::string("no connection");
    std::string answer = http_exchange(fd, "GET " + path +
                                          " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                          "Sec-WebSocket-Version: 13\r\nX-Tag: t1\r\n\r\n");
    if (answer.compare(0, 12, "HTTP/1.1 101") != 0) {
      ::close(fd);
      return "no upgrade: " + answer;
    }
    // One masked text frame "?"; the answer is one unmasked text frame.
    const unsigned char frame[] = {0x81, 0x81, 1, 2, 3, 4, '?' ^ 1};
    ::send(fd, frame, sizeof frame, MSG_NOSIGNAL);
    char buf[256];
    std::string got;
    while (got.size() < 2 || got.size() < 2 + std::size_t(std::uint8_t(got[1]))) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, std::size_t(n));
    }
    ::close(fd);
    return got.size() >= 2 ? got.substr(2) : "no frame";
  };
  EXPECT_EQ(ask("/keep"), "/keep|t1");
  EXPECT_EQ(ask("/drop"), "|-");
  server.stop();
  server.join();  // after which the loop thread's writes are visible here
  EXPECT_EQ(seen_in_open, "/keep|t1;/drop|t1;");
}
