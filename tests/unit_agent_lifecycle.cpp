// The embedding lifecycle (SPEC §8): options are validated when the agent
// listens, errors come back as values, and the shape of the data (gauges,
// history rows) is fixed from listen() on.
#include "metrics_agent.hpp"
#include "test_net.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

namespace {

using metrics_agent::Agent;
using metrics_agent::Options;

Options quiet_options() {
  Options o;
  o.listen = "127.0.0.1:0";
  o.logger = [](const std::string&) {};
  return o;
}

// One GET over loopback with Connection: close; the status code and the body.
int http_get(int port, const std::string& path, std::string* body) {
  int fd = test_net::connect_to(port);
  if (fd < 0) return -1;
  std::string raw;
  {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size())) {
      char buf[4096];
      for (int i = 0; i < 10000; ++i) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        raw.append(buf, std::size_t(n));
      }
    }
  }
  ::close(fd);
  if (raw.size() < 12 || raw.compare(0, 5, "HTTP/") != 0) return -1;
  std::size_t head_end = raw.find("\r\n\r\n");
  if (body) *body = head_end == std::string::npos ? std::string() : raw.substr(head_end + 4);
  return std::atoi(raw.c_str() + 9);
}

TEST(AgentLifecycle, ATickOfZeroIsAnErrorNotACrash) {
  Options o = quiet_options();
  o.tick_seconds = 0;
  Agent agent(o);
  std::string err;
  EXPECT_FALSE(agent.listen(&err));
  EXPECT_NE(err.find("--tick"), std::string::npos) << err;
  EXPECT_EQ(agent.run(), 1);  // run() listens first, and fails the same way
}

TEST(AgentLifecycle, ABadAlertRuleIsAnErrorNotDroppedSilently) {
  for (const char* rule : {"cpu>", "cpu>90:forever", " <9", "nosuchmetric>1"}) {
    Options o = quiet_options();
    o.alerts = {"cpu>90:30s", rule};
    Agent agent(o);
    std::string err;
    EXPECT_FALSE(agent.listen(&err)) << rule;
    EXPECT_EQ(err.rfind("--alert", 0), 0u) << rule << ": " << err;
  }
}

TEST(AgentLifecycle, ABadUserIsAnErrorNotDroppedSilently) {
  Options o = quiet_options();
  o.jwt_secret = "a secret of some length";
  o.users = {"alice"};  // no hash
  Agent agent(o);
  std::string err;
  EXPECT_FALSE(agent.listen(&err));
  EXPECT_NE(err.find("--user"), std::string::npos) << err;
}

TEST(AgentLifecycle, ValidateNamesTheOptionForEachBadValue) {
  struct Case {
    const char* name;
    void (*set)(Options&);
  };
  const Case cases[] = {
      {"--listen", [](Options& o) { o.listen = "nonsense"; }},
      {"--disk", [](Options& o) { o.disk_path.clear(); }},
      {"--history", [](Options& o) { o.history_seconds = -1; }},
      {"--max-clients", [](Options& o) { o.max_clients = 0; }},
      {"--max-clients-per-ip", [](Options& o) { o.max_clients_per_ip = 0; }},
      {"--heartbeat", [](Options& o) { o.heartbeat_seconds = 1e9; }},
      {"--ws-ping", [](Options& o) { o.ws_ping_seconds = -1; }},
      {"--request-timeout", [](Options& o) { o.request_timeout_seconds = 0; }},
      {"--max-backlog", [](Options& o) { o.max_backlog_bytes = 10; }},
      {"--max-message", [](Options& o) { o.max_message_bytes = 0; }},
      {"token_ttl_seconds", [](Options& o) { o.token_ttl_seconds = 0; }},
      {"--tick", [](Options& o) { o.tick_seconds = std::nan(""); }},
  };
  EXPECT_TRUE(Agent::validate(Options(), nullptr));
  for (const auto& c : cases) {
    Options o;
    c.set(o);
    std::string err;
    EXPECT_FALSE(Agent::validate(o, &err)) << c.name;
    EXPECT_EQ(err.find(c.name), 0u) << c.name << ": " << err;
  }
}

TEST(AgentLifecycle, ARuleOnAGaugeNeedsTheGaugeAndCanBeFixedBeforeListening) {
  Options o = quiet_options();
  o.alerts = {"queue>5"};
  Agent agent(o);
  std::string err;
  EXPECT_FALSE(agent.validate(&err));
  EXPECT_FALSE(agent.listen(&err));
  EXPECT_NE(err.find("unknown metric 'queue'"), std::string::npos) << err;
  // A failed validation leaves the agent as it was.
  EXPECT_TRUE(agent.add_gauge("queue", "Jobs waiting.", [] { return 1.0; }, &err)) << err;
  EXPECT_TRUE(agent.validate(&err)) << err;
  EXPECT_TRUE(agent.listen(&err)) << err;
}

// A gauge added after listen() used to be accepted although the history rows
// were already sized without it: its history read the next row, and past the
// end of the ring.
TEST(AgentLifecycle, AGaugeAddedAfterListenIsRefusedAndNeverServed) {
  Options o = quiet_options();
  o.tick_seconds = 0.1;
  o.history_seconds = 0.3;  // a ring of three rows, full after three ticks
  o.heartbeat_seconds = 0;
  Agent agent(o);
  std::string err;
  ASSERT_TRUE(agent.add_gauge("early", "Added before listen().", [] { return 1.0; }, &err)) << err;
  ASSERT_TRUE(agent.listen(&err)) << err;
  EXPECT_FALSE(agent.add_gauge("late", "Added after listen().", [] { return 2.0; }, &err));
  EXPECT_NE(err.find("before listen()"), std::string::npos) << err;
  agent.start();

  // Wait until the ring has wrapped, so that a row past its end would be read.
  std::string body;
  bool wrapped = false;
  for (int i = 0; i < 100 && !wrapped; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    int status = http_get(agent.port(), "/api/metrics/early?seconds=10", &body);
    ASSERT_EQ(status, 200) << body;
    std::size_t points = 0;
    for (std::size_t at = body.find("\"timestamp\""); at != std::string::npos; at = body.find("\"timestamp\"", at + 1))
      ++points;
    wrapped = points >= 3;
  }
  EXPECT_TRUE(wrapped) << body;
  EXPECT_NE(body.find("\"value\":1"), std::string::npos) << body;
  for (int i = 0; i < 5; ++i) {
    int status = http_get(agent.port(), "/api/metrics/late?seconds=10", &body);
    EXPECT_EQ(status, 404) << body;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  agent.stop();
  agent.join();
}

}  // namespace
