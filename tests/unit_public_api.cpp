// Unit tests of the public API an embedding program (and main.cpp) uses
// without reaching into detail::: Server::post from application threads,
// duplicate routes, deferred HTTP answers, Agent::on_snapshot, and the
// helpers the command line is built on.
#include "metrics_agent.hpp"
#include "test_net.hpp"
#include "tools/check_client.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace metrics_agent;

namespace {

Server::Config quiet_any_port(std::vector<std::string>* logged = nullptr) {
  Server::Config cfg;
  cfg.listen = "127.0.0.1:0";
  cfg.logger = [logged](const std::string& line) {
    if (logged) logged->push_back(line);
  };
  return cfg;
}

using test_net::connect_to;

bool send_all(int fd, const std::string& data) {
  return ::send(fd, data.data(), data.size(), MSG_NOSIGNAL) == ssize_t(data.size());
}

// Reads until `want` occurs `times` times in what arrived (or the 5 s timeout).
std::string read_until(int fd, const std::string& want, int times = 1) {
  std::string got;
  char buf[4096];
  for (;;) {
    int seen = 0;
    for (std::size_t at = got.find(want); at != std::string::npos; at = got.find(want, at + 1)) ++seen;
    if (seen >= times) return got;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return got;
    got.append(buf, std::size_t(n));
  }
}

using test_util::eventually;

// A one-shot latch for handing a Responder to a test thread.
struct Slot {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Responder> responders;
  void put(Responder r) {
    std::lock_guard<std::mutex> lk(mu);
    responders.push_back(std::move(r));
    cv.notify_all();
  }
  bool wait_for(std::size_t n) {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, std::chrono::seconds(5), [&] { return responders.size() >= n; });
  }
};

}  // namespace

TEST(PublicApi, PostRunsOnTheLoopThread) {
  Server server(quiet_any_port());
  std::thread::id loop_thread;
  server.http("GET", "/id", [&loop_thread](const HttpRequest&) {
    loop_thread = std::this_thread::get_id();
    return HttpResponse::json(200, "{}");
  });
  std::atomic<int> ran{0};
  std::thread::id posted_thread;
  server.post([&] {  // before the loop runs: waits for it
    posted_thread = std::this_thread::get_id();
    ++ran;
  });
  ASSERT_TRUE(server.start());
  int fd = connect_to(server.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /id HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_NE(read_until(fd, "{}").find("200 OK"), std::string::npos);
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return ran.load() == 1; }));
  EXPECT_EQ(posted_thread, loop_thread);
  // From several application threads at once.
  std::vector<std::thread> posters;
  for (int t = 0; t < 4; ++t)
    posters.emplace_back([&] {
      for (int i = 0; i < 250; ++i) server.post([&] { ++ran; });
    });
  for (auto& p : posters) p.join();
  EXPECT_TRUE(eventually([&] { return ran.load() == 1001; })) << ran.load();
  server.stop();
  server.join();
  server.post([&] { ++ran; });  // after the loop: discarded, harmlessly
}

TEST(PublicApi, PostSendsToAWebSocketFromAnotherThread) {
  Server server(quiet_any_port());
  std::mutex mu;
  std::vector<WebSocket> open;
  WebSocketRoute route;
  route.on_open = [&](WebSocket& ws) {
    std::lock_guard<std::mutex> lk(mu);
    open.push_back(ws);
  };
  route.on_close = [&](WebSocket& ws, std::uint16_t) {
    std::lock_guard<std::mutex> lk(mu);
    open.erase(std::remove(open.begin(), open.end(), ws), open.end());
  };
  server.websocket("/push", route);
  ASSERT_TRUE(server.start());
  int fd = connect_to(server.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /push HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  ASSERT_NE(read_until(fd, "\r\n\r\n").find("101"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return server.websocket_count("/push") == 1; }));
  server.post([&] {
    std::lock_guard<std::mutex> lk(mu);
    for (auto& ws : open) ws.send_text("from the application");
  });
  EXPECT_NE(read_until(fd, "from the application").find("from the application"), std::string::npos);
  ::close(fd);
  server.stop();
  server.join();
}

TEST(PublicApi, DuplicateRoutesAreRefused) {
  std::vector<std::string> logged;
  Server server(quiet_any_port(&logged));
  auto answer = [](const char* body) {
    return [body](const HttpRequest&) { return HttpResponse::json(200, body); };
  };
  EXPECT_TRUE(server.http("GET", "/a", answer("\"first\"")));
  EXPECT_FALSE(server.http("GET", "/a", answer("\"second\"")));
  EXPECT_TRUE(server.http("POST", "/a", answer("\"post\"")));  // another method
  EXPECT_TRUE(server.http("GET", "/a/*", answer("\"below\"")));  // a prefix is another route
  EXPECT_FALSE(server.http("GET", "/a/*", answer("\"below again\"")));
  EXPECT_TRUE(server.websocket("/ws", WebSocketRoute()));
  EXPECT_FALSE(server.websocket("/ws", WebSocketRoute()));
  EXPECT_FALSE(server.http("GET", "/ws", answer("\"shadowed\"")));  // never reachable
  EXPECT_FALSE(server.websocket("/a", WebSocketRoute()));           // would shadow GET /a
  EXPECT_TRUE(server.websocket("*", WebSocketRoute()));
  EXPECT_FALSE(server.websocket("*", WebSocketRoute()));
  EXPECT_EQ(logged.size(), 6u);
  ASSERT_TRUE(server.start());
  int fd = connect_to(server.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_NE(read_until(fd, "\"first\"").find("\"first\""), std::string::npos);  // the first one stays
  ::close(fd);
  server.stop();
  server.join();
}

TEST(PublicApi, DeferredAnswerFromAnotherThread) {
  Server server(quiet_any_port());
  Slot slot;
  server.http("GET", "/slow", [&slot](const HttpRequest& req) {
    slot.put(req.respond_later());
    return HttpResponse::json(200, "\"ignored\"");
  });
  server.http("GET", "/fast", [](const HttpRequest&) { return HttpResponse::json(200, "\"fast\""); });
  ASSERT_TRUE(server.start());
  int fd = connect_to(server.port());
  ASSERT_GE(fd, 0);
  // Pipelined: /fast waits for /slow's answer, so the order is kept.
  ASSERT_TRUE(send_all(fd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(slot.wait_for(1));
  // Meanwhile other connections are served.
  int other = connect_to(server.port());
  ASSERT_GE(other, 0);
  ASSERT_TRUE(send_all(other, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_NE(read_until(other, "\"fast\"").find("\"fast\""), std::string::npos);
  ::close(other);
  std::thread worker([r = slot.responders[0]] {
    r.send(HttpResponse::json(201, "\"late\""));
    r.send(HttpResponse::json(500, "\"twice\""));  // only the first counts
  });
  worker.join();
  std::string got = read_until(fd, "\"fast\"");
  std::size_t late = got.find("\"late\""), fast = got.find("\"fast\"");
  ASSERT_NE(late, std::string::npos) << got;
  ASSERT_NE(fast, std::string::npos) << got;
  EXPECT_LT(late, fast);
  EXPECT_EQ(got.compare(0, 12, "HTTP/1.1 201"), 0) << got;
  EXPECT_EQ(got.find("ignored"), std::string::npos);
  EXPECT_EQ(got.find("twice"), std::string::npos);
  ::close(fd);
  server.stop();
  server.join();
}

TEST(PublicApi, DeferredAnswerToAClosedConnectionIsDropped) {
  Server server(quiet_any_port());
  Slot slot;
  server.http("GET", "/slow", [&slot](const HttpRequest& req) {
    slot.put(req.respond_later());
    return HttpResponse();
  });
  ASSERT_TRUE(server.start());
  int fd = connect_to(server.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(slot.wait_for(1));
  ::close(fd);
  ASSERT_TRUE(eventually([&] { return server.client_count() == 0; }));
  slot.responders[0].send(HttpResponse::json(200, "\"nobody listens\""));
  // The loop goes on serving; a request on a new connection still works.
  std::atomic<bool> posted{false};
  server.post([&] { posted = true; });
  EXPECT_TRUE(eventually([&] { return posted.load(); }));
  int again = connect_to(server.port());
  ASSERT_GE(again, 0);
  ASSERT_TRUE(send_all(again, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(slot.wait_for(2));
  slot.responders[1].send(HttpResponse::json(200, "\"answered\""));
  EXPECT_NE(read_until(again, "\"answered\"").find("\"answered\""), std::string::npos);
  ::close(again);
  server.stop();
  server.join();
  // After the server is gone, an answer is dropped too.
  slot.responders[0].send(HttpResponse());
}

TEST(PublicApi, RespondLaterOutsideAHandlerIsEmpty) {
  HttpRequest req;
  EXPECT_FALSE(req.respond_later());
  req.respond_later().send(HttpResponse());  // nothing happens
}

TEST(PublicApi, OnSnapshotSeesEachTick) {
  Options opt;
  opt.listen = "127.0.0.1:0";
  opt.tick_seconds = 0.1;
  opt.logger = [](const std::string&) {};
  Agent agent(opt);
  std::atomic<int> ticks{0};
  std::atomic<std::int64_t> last_us{0};
  ASSERT_TRUE(agent.on_snapshot([&](const Snapshot& s) {
    last_us = s.timestamp_us;
    ++ticks;
  }));
  ASSERT_TRUE(agent.start());
  EXPECT_TRUE(eventually([&] { return ticks.load() >= 3; }));
  EXPECT_GT(last_us.load(), 0);
  std::string why;
  EXPECT_FALSE(agent.on_snapshot([](const Snapshot&) {}, &why));
  EXPECT_FALSE(why.empty());
  agent.stop();
  agent.join();
}

TEST(PublicApi, CommandLineHelpers) {
  double v = 0;
  EXPECT_TRUE(parse_number("1.5", v));
  EXPECT_EQ(v, 1.5);
  EXPECT_FALSE(parse_number("1.5x", v));
  EXPECT_FALSE(parse_number("nan", v));
  EXPECT_EQ(metrics_agent::format_duration(30), "30s");
  EXPECT_EQ(metrics_agent::format_duration(300), "5m");
  EXPECT_TRUE(valid_host("dash.example.org"));
  EXPECT_TRUE(valid_host("[fd00::1]:8080"));
  EXPECT_FALSE(valid_host(""));
  std::string why;
  EXPECT_TRUE(parse_alert_rule("cpu>90:30s", &why));
  EXPECT_FALSE(parse_alert_rule("cpu>>90", &why));
  EXPECT_FALSE(why.empty());
  std::string hash = hash_password("secret");
  EXPECT_EQ(hash.rfind("pbkdf2-sha256$", 0), 0u) << hash;
}

TEST(PublicApi, CheckReportsAMalformedUrl) {
  std::string message;
  EXPECT_EQ(check("ftp://nowhere", 1, message), 2);
  EXPECT_FALSE(message.empty());
}
