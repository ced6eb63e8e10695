// REST routes of the real agent, as an independent C++ HTTP client sees them:
// cpp-httplib (Debian libcpp-httplib-dev) talks to the metrics-agent binary
// started on a free loopback port; JSON is checked with picojson. Also the
// embedding examples: their gauges reach the agent's REST API and /metrics.
#include <httplib.h>
#include <picojson.h>
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

std::string build_dir() {
  const char* b = std::getenv("METRICS_AGENT_BUILD");
  return b ? b : "build/cmake";
}

std::string agent_bin() {
  const char* a = std::getenv("METRICS_AGENT_BIN");
  return a ? a : build_dir() + "/metrics-agent";
}

int free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

// A child process, stopped with SIGTERM when the test ends.
class Process {
 public:
  explicit Process(std::vector<std::string> argv) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(&a[0]);
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], nullptr, nullptr, args.data(), environ) != 0) pid_ = -1;
  }
  ~Process() { stop(); }
  int stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  bool running() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

bool wait_http(int port, const std::string& path = "/health") {
  for (int i = 0; i < 200; ++i) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(0, 200000);
    if (auto r = c.Get(path.c_str())) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

picojson::object json_object(const std::string& body) {
  picojson::value v;
  std::string err = picojson::parse(v, body);
  EXPECT_TRUE(err.empty()) << err << " in " << body;
  EXPECT_TRUE(v.is<picojson::object>()) << body;
  return v.is<picojson::object>() ? v.get<picojson::object>() : picojson::object{};
}

class Rest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    port_ = free_port();
    agent_ = new Process({agent_bin(), "--listen", "127.0.0.1:" + std::to_string(port_), "--tick", "0.2",
                          "--cors-origin", "https://dash.example", "--alert", "memory>0:0s:critical"});
    ASSERT_TRUE(wait_http(port_)) << "agent did not start on port " << port_;
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // a few ticks of history
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(agent_->stop(), 0);
    delete agent_;
  }
  httplib::Client client() { return httplib::Client("127.0.0.1", port_); }
  static int port_;
  static Process* agent_;
};
int Rest::port_ = 0;
Process* Rest::agent_ = nullptr;

TEST_F(Rest, Health) {
  auto r = client().Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "https://dash.example");
  auto o = json_object(r->body);
  EXPECT_EQ(o["status"].to_str(), "ok");
  EXPECT_TRUE(o["version"].is<std::string>());
  EXPECT_TRUE(o["uptime_seconds"].is<double>());
  EXPECT_TRUE(o["clients"].is<double>());
  ASSERT_TRUE(o["alerts"].is<picojson::object>());
  const auto& firing = o["alerts"].get<picojson::object>().at("firing");
  ASSERT_TRUE(firing.is<picojson::array>());
  ASSERT_EQ(firing.get<picojson::array>().size(), 1u) << r->body;
  EXPECT_EQ(firing.get<picojson::array>()[0].get("metric").to_str(), "memory");
}

TEST_F(Rest, CurrentHasEveryGroup) {
  auto r = client().Get("/api/metrics/current");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto o = json_object(r->body);
  EXPECT_TRUE(o["timestamp"].is<std::string>());
  ASSERT_TRUE(o["data"].is<picojson::object>());
  const auto& d = o["data"].get<picojson::object>();
  for (const char* g : {"cpu", "memory", "network", "disk", "system", "custom"})
    EXPECT_TRUE(d.count(g) && d.at(g).is<picojson::object>()) << g << " in " << r->body.substr(0, 300);
  double mem = d.at("memory").get("usage_percent").get<double>();
  EXPECT_GT(mem, 0.0);
  EXPECT_LT(mem, 100.0);
}

TEST_F(Rest, HistoryOfEachMetric) {
  for (const char* name : {"cpu", "memory", "disk", "network", "load"}) {
    auto r = client().Get((std::string("/api/metrics/") + name + "?seconds=60").c_str());
    ASSERT_TRUE(r) << name;
    EXPECT_EQ(r->status, 200) << name;
    auto o = json_object(r->body);
    EXPECT_EQ(o["metric"].to_str(), name);
    EXPECT_TRUE(o["unit"].is<std::string>());
    ASSERT_TRUE(o["points"].is<picojson::array>());
    const auto& pts = o["points"].get<picojson::array>();
    ASSERT_GE(pts.size(), 3u) << name << ": " << r->body;
    for (const auto& p : pts) {
      EXPECT_TRUE(p.get("timestamp").is<std::string>());
      EXPECT_TRUE(p.get("value").is<double>()) << p.serialize();
    }
    if (std::string(name) == "network") {
      EXPECT_TRUE(pts[0].get("sent").is<double>());
      EXPECT_TRUE(pts[0].get("recv").is<double>());
    }
  }
}

TEST_F(Rest, ErrorsAreJsonWithTheRightStatus) {
  auto c = client();
  auto unknown = c.Get("/api/metrics/nonsense");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_NE(json_object(unknown->body)["error"].to_str().find("cpu"), std::string::npos) << unknown->body;
  for (const char* bad : {"-5", "abc", "1e99", "0"}) {
    auto r = c.Get((std::string("/api/metrics/cpu?seconds=") + bad).c_str());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_TRUE(json_object(r->body)["error"].is<std::string>());
  }
  auto nowhere = c.Get("/no/such/route");
  ASSERT_TRUE(nowhere);
  EXPECT_EQ(nowhere->status, 404);
  auto wrong_method = c.Delete("/health");
  ASSERT_TRUE(wrong_method);
  EXPECT_EQ(wrong_method->status, 405);
  EXPECT_NE(wrong_method->get_header_value("Allow").find("GET"), std::string::npos);
  auto bad_body = c.Post("/api/ws/broadcast/alert", "{not json", "application/json");
  ASSERT_TRUE(bad_body);
  EXPECT_EQ(bad_body->status, 400);
  auto huge = c.Post("/api/ws/broadcast/alert", std::string(100000, 'x'), "application/json");
  if (huge) {
    EXPECT_EQ(huge->status, 413);  // the agent may close before the body is sent
  }
  httplib::Headers big{{"X-Big", std::string(9000, 'a')}};
  auto r431 = c.Get("/health", big);
  if (r431) {
    EXPECT_EQ(r431->status, 431);
  }
}

TEST_F(Rest, BroadcastAnswersDelivered) {
  auto r = client().Post("/api/ws/broadcast/alert", R"({"level":"warning","message":"deploy"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto o = json_object(r->body);
  ASSERT_TRUE(o["delivered"].is<double>());
  EXPECT_EQ(o["delivered"].get<double>(), 0.0);  // nobody listens
}

TEST_F(Rest, HeadOptionsAndKeepAlive) {
  auto c = client();
  c.set_keep_alive(true);
  auto get = c.Get("/health");
  auto head = c.Head("/api/metrics/current");
  ASSERT_TRUE(get && head);
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->body.empty());
  EXPECT_FALSE(head->get_header_value("Content-Length").empty());
  auto opt = c.Options("/api/metrics/current");
  ASSERT_TRUE(opt);
  EXPECT_EQ(opt->status, 204);
  EXPECT_NE(opt->get_header_value("Access-Control-Allow-Methods").find("GET"), std::string::npos);
  for (int i = 0; i < 10; ++i) {
    auto r = c.Get("/health");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
}

TEST_F(Rest, PrometheusExposition) {
  auto r = client().Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r->body.find("# TYPE node_cpu_seconds_total counter"), std::string::npos);
  EXPECT_NE(r->body.find("node_memory_MemAvailable_bytes "), std::string::npos);
}

// The embedding examples publish their own gauges through the agent.
TEST(Examples, HttplibAppPublishesRequestCountAndLatency) {
  int app = free_port(), metrics = free_port();
  Process p({build_dir() + "/httplib_app", "--app-port", std::to_string(app), "--metrics",
             "127.0.0.1:" + std::to_string(metrics)});
  ASSERT_TRUE(wait_http(app, "/hello"));
  ASSERT_TRUE(wait_http(metrics));
  httplib::Client c("127.0.0.1", app);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.Get("/hello"));
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));  // two ticks
  httplib::Client m("127.0.0.1", metrics);
  auto cur = m.Get("/api/metrics/current");
  ASSERT_TRUE(cur);
  auto custom = json_object(cur->body)["data"].get("custom");
  ASSERT_TRUE(custom.get("app_http_requests").is<double>()) << cur->body.substr(0, 200);
  EXPECT_GE(custom.get("app_http_requests").get<double>(), 5.0);
  EXPECT_TRUE(custom.get("app_http_latency_ms").is<double>());
  auto prom = m.Get("/metrics");
  ASSERT_TRUE(prom);
  EXPECT_NE(prom->body.find("# HELP app_http_requests Requests served by the application API."), std::string::npos);
}

TEST(Examples, EmbeddedPublishesItsQueue) {
  int port = free_port();
  Process p({build_dir() + "/embedded", "--listen", "127.0.0.1:" + std::to_string(port), "--seconds", "30"});
  ASSERT_TRUE(wait_http(port));
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  httplib::Client c("127.0.0.1", port);
  auto hist = c.Get("/api/metrics/app_queue_depth?seconds=10");
  ASSERT_TRUE(hist);
  EXPECT_EQ(hist->status, 200) << hist->body;
  EXPECT_FALSE(json_object(hist->body)["points"].get<picojson::array>().empty());
  auto prom = c.Get("/metrics");
  ASSERT_TRUE(prom);
  EXPECT_NE(prom->body.find("\napp_jobs_processed "), std::string::npos);
}

}  // namespace
