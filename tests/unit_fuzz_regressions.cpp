// Inputs the fuzzers in tests/fuzz/ found, kept as unit tests so that what
// they broke stays fixed without a fuzzer run.
#include "metrics_agent.hpp"

#include <gtest/gtest.h>

#include <string>

namespace md = metrics_agent::detail;

namespace {

bool listen_ok(const std::string& spec) {
  std::string error;
  return md::net::valid_listen_address(spec, error);
}

}  // namespace

// fuzz_listen: ":\t1" was taken as port 1, because the number parser skips
// the whitespace around it.
TEST(FuzzRegressions, ListenPortIsDigitsOnly) {
  EXPECT_FALSE(listen_ok(":\t1"));
  EXPECT_FALSE(listen_ok("127.0.0.1: 80"));
  EXPECT_FALSE(listen_ok("127.0.0.1:80 "));
  EXPECT_FALSE(listen_ok("[::1]:+80"));
  EXPECT_FALSE(listen_ok("127.0.0.1:"));
  EXPECT_TRUE(listen_ok("127.0.0.1:80"));
  EXPECT_TRUE(listen_ok("[::1]:080"));
  EXPECT_TRUE(listen_ok(":9"));
}
