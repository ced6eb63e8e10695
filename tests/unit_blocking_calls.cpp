// BlockingCalls (platform/linux.hpp): the slow sampler's blocking calls in
// helper processes. A FIFO stands in for a hung filesystem: opening it for
// reading blocks until a writer comes, as statvfs on a dead mount does.
#include "metrics_agent.hpp"

#include <gtest/gtest.h>

#if defined(METRICS_AGENT_PLATFORM_LINUX)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

namespace {

using metrics_agent::detail::BlockingCalls;
using metrics_agent::detail::FileReader;
using metrics_agent::detail::FsCounts;
using metrics_agent::detail::filesystem_counts;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/blocking-calls-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

TEST(BlockingCalls, HelpersAnswerLikeDirectCalls) {
  BlockingCalls calls;
  calls.use_helpers();
  TempDir dir;
  // A file larger than one answer record (16 KiB), and a missing one.
  std::string big;
  for (int i = 0; i < 5000; ++i) big += "line " + std::to_string(i) + "\n";
  std::ofstream(dir.path + "/big") << big;
  std::string_view text;
  ASSERT_EQ(calls.read((dir.path + "/big").c_str(), text), 0);
  EXPECT_EQ(text, big);
  EXPECT_EQ(calls.read((dir.path + "/missing").c_str(), text), ENOENT);

  FsCounts direct, helped;
  ASSERT_EQ(filesystem_counts(dir.path.c_str(), direct), 0);
  ASSERT_EQ(calls.statvfs(dir.path.c_str(), helped), 0);
  EXPECT_EQ(helped.blocks, direct.blocks);
  EXPECT_EQ(helped.block_size, direct.block_size);
  EXPECT_EQ(calls.statvfs((dir.path + "/missing").c_str(), helped), ENOENT);

  char resolved[PATH_MAX], expect[PATH_MAX];
  ASSERT_TRUE(calls.realpath((dir.path + "/./big").c_str(), resolved));
  ASSERT_NE(::realpath((dir.path + "/big").c_str(), expect), nullptr);
  EXPECT_STREQ(resolved, expect);
  EXPECT_FALSE(calls.realpath((dir.path + "/missing").c_str(), resolved));
}

TEST(BlockingCalls, AHungCallIsAbandonedAndBlocksOnlyItsOwnPath) {
  BlockingCalls calls;
  calls.use_helpers();
  TempDir dir;
  const std::string fifo = dir.path + "/hung", other = dir.path + "/other";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::ofstream(other) << "fine";
  std::string_view text;

  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(calls.read(fifo.c_str(), text), ETIMEDOUT);
  const double first = seconds_since(t0);
  EXPECT_GE(first, BlockingCalls::kCallDeadline - 0.05);
  EXPECT_LT(first, BlockingCalls::kCallDeadline + 1.0);
  EXPECT_EQ(calls.hung_count(), 1u);

  // The same path again fails at once, not after another deadline (half of
  // one leaves room for a loaded machine); other paths are served meanwhile.
  t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(calls.read(fifo.c_str(), text), ETIMEDOUT);
  EXPECT_LT(seconds_since(t0), BlockingCalls::kCallDeadline / 2);
  ASSERT_EQ(calls.read(other.c_str(), text), 0);
  EXPECT_EQ(text, "fine");
  EXPECT_NE(BlockingCalls::describe(ETIMEDOUT).find("no answer"), std::string::npos);

  // The "filesystem" answers: the late answer frees the helper and the path.
  const int w = ::open(fifo.c_str(), O_WRONLY);
  ASSERT_GE(w, 0);
  ASSERT_EQ(::write(w, "late", 4), 4);
  ::close(w);
  for (int i = 0; i < 100 && calls.hung_count() > 0; ++i) {
    ::usleep(20000);
    calls.read(other.c_str(), text);  // each call first collects late answers
  }
  EXPECT_EQ(calls.hung_count(), 0u);
}

// A helper keeps no descriptor of the process but its two pipe ends: one
// stuck in the kernel must not hold a listening socket (or anything else) open.
TEST(BlockingCalls, AHelperHoldsNoneOfTheCallersDescriptors) {
  TempDir dir;
  const std::string marker = dir.path + "/marker";
  const int fd = ::open(marker.c_str(), O_CREAT | O_RDWR, 0600);  // not close-on-exec
  ASSERT_GE(fd, 0);
  BlockingCalls calls;
  calls.use_helpers();
  std::string_view text;
  // The helper lists its own descriptors: /proc/self is the helper's.
  ASSERT_EQ(calls.read("/proc/self/stat", text), 0);
  const std::string stat(text);
  const std::string pid = stat.substr(0, stat.find(' '));
  ASSERT_NE(pid, std::to_string(::getpid())) << "the call ran in this process";
  const std::string fds = "/proc/" + pid + "/fd";
  std::string targets;
  DIR* d = ::opendir(fds.c_str());
  ASSERT_NE(d, nullptr);
  int count = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    ++count;
    char buf[PATH_MAX];
    const ssize_t n = ::readlink((fds + "/" + e->d_name).c_str(), buf, sizeof buf - 1);
    if (n > 0) targets += std::string(buf, std::size_t(n)) + "\n";
  }
  ::closedir(d);
  ::close(fd);
  EXPECT_EQ(targets.find(marker), std::string::npos) << targets;
  EXPECT_LE(count, 5) << targets;  // /dev/null as 0-2, and two pipes
}

}  // namespace
#endif  // METRICS_AGENT_PLATFORM_LINUX
