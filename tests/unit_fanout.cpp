// The parallel fan-out (WebSocket::send_frames over Server::Config::
// fanout_threads): a real server on a loopback port, real client sockets,
// with 1, 2 and 4 threads writing. Every client of a batch gets the same
// bytes; a client that stops reading is dropped by backlog while the others
// keep receiving; clients that reset or close in the middle of a batch, in
// the loop thread's slice or a sender thread's, cost only themselves. The
// writes go through io_uring where the kernel has it (FanOut) and through
// send() (FanOutSend); FanOutBatch tests the batch sender alone. Every
// suite here is named FanOut*, so that a ThreadSanitizer run can pick them.
#include "metrics_agent.hpp"
#include "test_net.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace metrics_agent;

namespace {

// Polls `cond` for up to ten seconds (bounded; no timing assertions).
using test_util::eventually;

std::size_t thread_count() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

bool read_exactly(int fd, void* p, std::size_t n) {
  auto* b = static_cast<char*>(p);
  while (n > 0) {
    ssize_t r = ::recv(fd, b, n, 0);
    if (r <= 0) return false;
    b += r;
    n -= std::size_t(r);
  }
  return true;
}

// The next frame from the server: its opcode, and its payload in `payload`;
// -1 when the connection ends or stalls for 5 s.
int read_frame(int fd, std::string& payload) {
  unsigned char h[2];
  if (!read_exactly(fd, h, 2)) return -1;
  std::uint64_t len = h[1] & 0x7f;
  if (len >= 126) {
    unsigned char ext[8];
    std::size_t k = len == 126 ? 2 : 8;
    if (!read_exactly(fd, ext, k)) return -1;
    len = 0;
    for (std::size_t i = 0; i < k; ++i) len = (len << 8) | ext[i];
  }
  payload.resize(std::size_t(len));
  if (len > 0 && !read_exactly(fd, &payload[0], payload.size())) return -1;
  return h[0] & 0x0f;
}

// A WebSocket client on a blocking socket (reads give up after 5 s), or -1.
int connect_ws(int port, int rcvbuf = 0) {
  const int fd = test_net::connect_to(port, rcvbuf);
  if (fd < 0) return -1;
  std::string req =
      "GET /s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) {
    ::close(fd);
    return -1;
  }
  std::string head;
  char ch;
  while (head.size() < 4096 && (head.size() < 4 || head.compare(head.size() - 4, 4, "\r\n\r\n") != 0)) {
    if (::recv(fd, &ch, 1, 0) != 1) break;
    head += ch;
  }
  if (head.compare(0, 12, "HTTP/1.1 101") != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void reset_close(int fd) {
  linger l{1, 0};  // close with an RST (SO_LINGER with a zero timeout)
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

// A server with one WebSocket route whose clients are kept, in the order
// they opened, for batches posted to the loop thread.
class Rig {
 public:
  explicit Rig(unsigned threads, std::size_t max_backlog = METRICS_AGENT_MAX_BACKLOG_BYTES, bool io_uring = true) {
    Server::Config cfg;
    cfg.listen = "127.0.0.1:0";
    cfg.logger = [](const std::string&) {};
    cfg.fanout_threads = threads;
    cfg.fanout_io_uring = io_uring;
    cfg.max_backlog_bytes = max_backlog;
    cfg.ws_ping_seconds = 0;
    server_ = std::make_unique<Server>(cfg);
    WebSocketRoute route;
    route.on_open = [this](WebSocket& ws) { sockets_.push_back(ws); };
    route.on_close = [this](WebSocket& ws, std::uint16_t) {
      for (auto it = sockets_.begin(); it != sockets_.end(); ++it)
        if (*it == ws) {
          sockets_.erase(it);
          break;
        }
    };
    server_->websocket("/s", route);
    std::string err;
    started_ = server_->start(&err);
    EXPECT_TRUE(started_) << err;
  }
  ~Rig() {
    server_->stop();
    server_->join();
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }

  // Opens `n` clients one after another, so that fds[i] is sockets_[i].
  void open(std::size_t n, int rcvbuf_for = -1) {
    for (std::size_t i = 0; i < n; ++i) {
      int fd = connect_ws(server_->port(), int(i) == rcvbuf_for ? 1024 : 0);
      ASSERT_GE(fd, 0);
      fds.push_back(fd);
      ASSERT_TRUE(eventually([&] { return server_->websocket_count("/s") == fds.size(); }));
    }
  }

  // Runs on the loop thread: `before()`, then one batch in which client i
  // gets frames[pick(i)], and waits for it.
  template <class Before>
  void batch(const std::vector<std::shared_ptr<const std::string>>& frames, std::size_t (*pick)(std::size_t),
             Before before) {
    std::promise<void> done;
    server_->post([&] {
      before();
      std::vector<std::pair<WebSocket*, std::uint32_t>> to;
      for (std::size_t i = 0; i < sockets_.size(); ++i) to.emplace_back(&sockets_[i], std::uint32_t(pick(i)));
      WebSocket::send_frames(frames, to);
      done.set_value();
    });
    ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  }
  void batch(const std::vector<std::shared_ptr<const std::string>>& frames, std::size_t (*pick)(std::size_t)) {
    batch(frames, pick, [] {});
  }

  Server& server() { return *server_; }
  bool started() const { return started_; }
  std::vector<int> fds;

 private:
  std::unique_ptr<Server> server_;
  std::vector<WebSocket> sockets_;  // loop thread only
  bool started_ = false;
};

std::shared_ptr<const std::string> text_frame(std::size_t round, std::size_t variant, std::size_t size) {
  std::string s = "round " + std::to_string(round) + " variant " + std::to_string(variant) + " ";
  while (s.size() < size) s += char('a' + (s.size() * 7 + round + variant) % 26);
  return encode_text_frame(s);
}

std::string payload_of(const std::string& frame) {
  std::size_t len = std::uint8_t(frame[1]) & 0x7f;
  return frame.substr(len == 126 ? 4 : len == 127 ? 10 : 2);
}

std::size_t three_ways(std::size_t i) { return i % 3; }
std::size_t one_way(std::size_t) { return 0; }

// Every client of a batch gets its frame byte for byte, from frames of 100 B,
// 6 KB and 80 KB (more than a loopback socket takes at once, so that partial
// writes are queued and finished by the loop); K-1 sender threads are
// started by the first batch and no more by the next ones.
void identical_frames(unsigned k, bool io_uring = true) {
  Rig rig(k, METRICS_AGENT_MAX_BACKLOG_BYTES, io_uring);
  ASSERT_TRUE(rig.started());
  const std::size_t clients = 12, rounds = 6;
  rig.open(clients);
  std::vector<std::vector<std::shared_ptr<const std::string>>> sent;
  for (std::size_t r = 0; r < rounds; ++r)
    sent.push_back({text_frame(r, 0, 100), text_frame(r, 1, 6000), text_frame(r, 2, 80000)});
  std::atomic<bool> ok{true};
  std::vector<std::thread> readers;
  for (std::size_t c = 0; c < clients; ++c)
    readers.emplace_back([&, c] {
      std::string got;
      for (std::size_t r = 0; r < rounds; ++r) {
        if (read_frame(rig.fds[c], got) != 1) {
          ADD_FAILURE() << "client " << c << " got no frame " << r;
          ok = false;
          return;
        }
        if (got != payload_of(*sent[r][three_ways(c)])) {
          ADD_FAILURE() << "client " << c << " round " << r << ": different bytes";
          ok = false;
        }
      }
    });
  std::size_t idle = thread_count();  // the readers wait for every round
  for (std::size_t r = 0; r < rounds; ++r) {
    rig.batch(sent[r], three_ways);
    if (r == 0) {
      EXPECT_EQ(thread_count(), idle + (k - 1)) << "sender threads after the first batch";
    }
  }
  for (auto& t : readers) t.join();
  EXPECT_TRUE(ok);
  EXPECT_EQ(thread_count(), idle - clients + (k - 1)) << "the sender threads are started once";
  ServerStats st = rig.server().stats();
  EXPECT_EQ(st.dropped_error + st.dropped_backlog, 0u);
  EXPECT_EQ(rig.server().websocket_count("/s"), clients);
}

// One client with a 1 KiB receive buffer never reads; batches of 4 KB
// frames go on until the backlog limit (16 KiB) drops it, while the other
// clients read every frame in order.
void stalled_reader(unsigned k, bool io_uring = true) {
  Rig rig(k, 16384, io_uring);
  ASSERT_TRUE(rig.started());
  const std::size_t clients = 8, stalled = 5;
  rig.open(clients, int(stalled));
  std::atomic<std::size_t> rounds_sent{0};
  std::atomic<bool> ok{true};
  std::vector<std::thread> readers;
  for (std::size_t c = 0; c < clients; ++c) {
    if (c == stalled) continue;
    readers.emplace_back([&, c] {
      std::string got;
      for (std::size_t r = 0;; ++r) {
        if (read_frame(rig.fds[c], got) != 1) {
          ADD_FAILURE() << "client " << c << " lost its connection at frame " << r;
          ok = false;
          return;
        }
        if (got == "end") {
          if (r != rounds_sent) ADD_FAILURE() << "client " << c << " got " << r << " of " << rounds_sent;
          return;
        }
        if (got.compare(0, 6 + std::to_string(r).size() + 1, "round " + std::to_string(r) + " ") != 0) {
          ADD_FAILURE() << "client " << c << " expected frame " << r << ", got " << got.substr(0, 20);
          ok = false;
          return;
        }
      }
    });
  }
  bool dropped = false;
  for (std::size_t r = 0; r < 3000 && ok; ++r) {
    rig.batch({text_frame(r, 0, 4000)}, one_way);
    rounds_sent = r + 1;
    if (rig.server().stats().dropped_backlog > 0) {
      dropped = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // A few batches more after the drop: the others still receive them.
  for (int extra = 0; extra < 5; ++extra) {
    std::size_t r = rounds_sent;
    rig.batch({text_frame(r, 0, 4000)}, one_way);
    rounds_sent = r + 1;
  }
  rig.batch({encode_text_frame("end")}, one_way);
  for (auto& t : readers) t.join();
  EXPECT_TRUE(dropped) << "the client that never reads was not dropped after " << rounds_sent << " frames";
  EXPECT_TRUE(ok);
  EXPECT_TRUE(eventually([&] { return rig.server().websocket_count("/s") == clients - 1; }));
  ServerStats st = rig.server().stats();
  EXPECT_EQ(st.dropped_backlog, 1u);
  EXPECT_EQ(st.dropped_error, 0u);
  EXPECT_TRUE(eventually([&] { return rig.server().websocket_count("/s") == clients - 1; }));
}

// Inside a batch, just before its writes: four clients in the last slice
// (a sender thread's when K > 1) reset their connections, so their writes
// fail; then two clients in the first slice (the loop thread's) close
// normally. Each costs only itself: the others get every frame.
void closes_mid_batch(unsigned k, bool io_uring = true) {
  Rig rig(k, METRICS_AGENT_MAX_BACKLOG_BYTES, io_uring);
  ASSERT_TRUE(rig.started());
  const std::size_t clients = 16;
  rig.open(clients);
  std::set<std::size_t> gone;
  auto survivors_read = [&](std::size_t round) {
    for (std::size_t c = 0; c < clients; ++c) {
      if (gone.count(c)) continue;
      std::string got;
      ASSERT_EQ(read_frame(rig.fds[c], got), 1) << "client " << c << " round " << round;
      EXPECT_EQ(got, payload_of(*text_frame(round, 0, 3000))) << "client " << c;
    }
  };
  rig.batch({text_frame(0, 0, 3000)}, one_way);
  survivors_read(0);

  rig.batch({text_frame(1, 0, 3000)}, one_way, [&] {
    for (std::size_t c = clients - 4; c < clients; ++c) {
      reset_close(rig.fds[c]);
      rig.fds[c] = -1;
      gone.insert(c);
    }
  });
  survivors_read(1);
  // Read from this thread, the counters are as of the loop's latest pass.
  EXPECT_TRUE(eventually([&] { return rig.server().stats().dropped_error >= 4; }));
  EXPECT_EQ(rig.server().stats().dropped_error, 4u) << "each reset connection fails its write and is dropped";

  rig.batch({text_frame(2, 0, 3000)}, one_way, [&] {
    for (std::size_t c = 0; c < 2; ++c) {
      ::close(rig.fds[c]);
      rig.fds[c] = -1;
      gone.insert(c);
    }
  });
  survivors_read(2);
  for (std::size_t r = 3; r < 6; ++r) {
    rig.batch({text_frame(r, 0, 3000)}, one_way);
    survivors_read(r);
  }
  EXPECT_TRUE(eventually([&] { return rig.server().websocket_count("/s") == clients - 6; }));
}

}  // namespace

TEST(FanOutParts, TheAutomaticRuleAndExplicitCounts) {
  using detail::fanout_parts;
  EXPECT_EQ(fanout_parts(0, 0, 8), 1u);
  EXPECT_EQ(fanout_parts(0, 999, 8), 1u);
  EXPECT_EQ(fanout_parts(0, 1000, 8), 2u);
  EXPECT_EQ(fanout_parts(0, 3500, 8), 4u);
  EXPECT_EQ(fanout_parts(0, 19500, 2), 2u);
  EXPECT_EQ(fanout_parts(0, 50000, 0), 1u);
  EXPECT_EQ(fanout_parts(1, 20000, 8), 1u);
  EXPECT_EQ(fanout_parts(4, 20000, 2), 4u);  // explicit: even past the hardware threads
  EXPECT_EQ(fanout_parts(4, 3, 8), 3u);      // never more parts than writes
}

TEST(FanOutPool, EveryPartRunsOnceAndTheCallerWaitsForAll) {
  detail::FanOutPool pool;
  for (unsigned parts : {1u, 4u, 2u, 4u, 3u}) {
    for (int round = 0; round < 200; ++round) {
      std::vector<int> ran(parts, 0);  // each part writes only its own slot
      std::vector<std::thread::id> who(parts);
      pool.run(parts, [&](unsigned p) {
        ++ran[p];
        who[p] = std::this_thread::get_id();
      });
      for (unsigned p = 0; p < parts; ++p) ASSERT_EQ(ran[p], 1) << "part " << p << " of " << parts;
      ASSERT_EQ(who[0], std::this_thread::get_id()) << "part 0 runs on the caller";
      for (unsigned p = 1; p < parts; ++p) ASSERT_NE(who[p], std::this_thread::get_id());
    }
  }
  EXPECT_EQ(pool.threads(), 3u) << "threads are started once, for the most parts asked";
}

TEST(FanOut, IdenticalFramesOneThread) { identical_frames(1); }
TEST(FanOut, IdenticalFramesTwoThreads) { identical_frames(2); }
TEST(FanOut, IdenticalFramesFourThreads) { identical_frames(4); }
TEST(FanOut, StalledReaderDroppedOneThread) { stalled_reader(1); }
TEST(FanOut, StalledReaderDroppedTwoThreads) { stalled_reader(2); }
TEST(FanOut, StalledReaderDroppedFourThreads) { stalled_reader(4); }
TEST(FanOut, ClosesMidBatchOneThread) { closes_mid_batch(1); }
TEST(FanOut, ClosesMidBatchTwoThreads) { closes_mid_batch(2); }
TEST(FanOut, ClosesMidBatchFourThreads) { closes_mid_batch(4); }

// The same with Server::Config::fanout_io_uring off: one send() per write,
// the path of kernels and sandboxes without io_uring.
TEST(FanOutSend, IdenticalFramesOneThread) { identical_frames(1, false); }
TEST(FanOutSend, IdenticalFramesTwoThreads) { identical_frames(2, false); }
TEST(FanOutSend, StalledReaderDroppedTwoThreads) { stalled_reader(2, false); }
TEST(FanOutSend, ClosesMidBatchTwoThreads) { closes_mid_batch(2, false); }

// Whether this process may use io_uring with IORING_OP_SEND: a kernel from
// 5.6 on, and no seccomp policy refusing it.
bool io_uring_available() {
#if defined(METRICS_AGENT_HAS_IO_URING)
  utsname u{};
  int major = 0, minor = 0;
  if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  if (major < 5 || (major == 5 && minor < 6)) return false;
  io_uring_params p{};
  long fd = ::syscall(__NR_io_uring_setup, 4, &p);
  if (fd < 0) return false;
  ::close(int(fd));
  return true;
#else
  return false;
#endif
}

// net::BatchSend itself, over socket pairs, more of them than one batch
// holds: each outcome is what send() would have given, and each peer reads
// exactly its own bytes. Among them a socket whose buffer is full (-EAGAIN,
// nothing written) and a closed peer (-EPIPE), with io_uring and without.
void batch_outcomes(bool io_uring) {
  using detail::net::BatchSend;
  const std::size_t n = BatchSend::kBatch + 17;  // two batches, 546 descriptors: within a 1,024 limit
  std::vector<std::array<int, 2>> pairs(n);
  for (auto& p : pairs) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0) << std::strerror(errno);
    p = {sv[0], sv[1]};
  }
  const std::size_t full = 3, gone = n - 2;
  std::string filler(65536, 'f');
  while (::send(pairs[full][0], filler.data(), filler.size(), MSG_NOSIGNAL) > 0) {
  }
  ::close(pairs[gone][1]);
  pairs[gone][1] = -1;
  std::vector<std::string> payloads(n);
  for (std::size_t i = 0; i < n; ++i) payloads[i] = "frame " + std::to_string(i) + std::string(i % 200, 'x');
  std::vector<std::int32_t> results(n, 12345);
  BatchSend out;
  out.set_enabled(io_uring);
  for (std::size_t i = 0; i < n; ++i)
    out.add(pairs[i][0], payloads[i].data(), std::uint32_t(payloads[i].size()), &results[i]);
  out.finish();
  if (io_uring && io_uring_available()) {
    EXPECT_TRUE(out.uses_io_uring());
  } else {
    EXPECT_FALSE(out.uses_io_uring());
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (i == full) {
      EXPECT_EQ(results[i], -EAGAIN) << i;
      continue;
    }
    if (i == gone) {
      EXPECT_EQ(results[i], -EPIPE) << i;
      continue;
    }
    ASSERT_EQ(results[i], std::int32_t(payloads[i].size())) << i;
    char buf[512];
    ssize_t r = ::recv(pairs[i][1], buf, sizeof buf, 0);
    ASSERT_EQ(r, ssize_t(payloads[i].size())) << i;
    EXPECT_EQ(std::string(buf, std::size_t(r)), payloads[i]) << i;
  }
  for (auto& p : pairs)
    for (int fd : p)
      if (fd >= 0) ::close(fd);
}

TEST(FanOutBatch, OutcomesAsSendGivesThemThroughIoUring) { batch_outcomes(true); }
TEST(FanOutBatch, OutcomesAsSendGivesThemWithSend) { batch_outcomes(false); }
