// Unit tests of the event loop's pure decisions: admission against the client
// limits, and the tick schedule under wall-clock steps.
#include "metrics_agent.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

using namespace metrics_agent::detail;

namespace {

// Models the loop: one admit() per accepted connection and one release() per
// closed one, rejected or not.
struct Clients {
  ClientAdmission admission;
  std::vector<std::string> open;  // remotes of the connections still open
  std::size_t max_clients, max_per_address;

  Clients(std::size_t total, std::size_t per_address) : max_clients(total), max_per_address(per_address) {}

  // True when admitted; a rejected connection is closed again at once.
  bool connect(const std::string& remote, bool loopback = false) {
    open.push_back(remote);
    const char* over = admission.admit(remote, loopback, open.size(), max_clients, max_per_address);
    if (over) disconnect(remote, loopback);
    return over == nullptr;
  }
  void disconnect(const std::string& remote, bool loopback = false) {
    for (auto it = open.end(); it != open.begin();) {
      --it;
      if (*it == remote) {
        open.erase(it);
        break;
      }
    }
    admission.release(remote, loopback);
  }
};

}  // namespace

TEST(ClientAdmission, RejectedByTheTotalStillCountsPerAddress) {
  Clients c(3, 2);
  EXPECT_TRUE(c.connect("192.0.2.7"));
  EXPECT_TRUE(c.connect("192.0.2.7"));
  EXPECT_TRUE(c.connect("198.51.100.1"));
  EXPECT_FALSE(c.connect("192.0.2.7"));  // over --max-clients
  EXPECT_EQ(c.admission.open_from("192.0.2.7"), 2u);
  c.disconnect("198.51.100.1");
  // A slot is free in total, but the address already holds its two.
  EXPECT_FALSE(c.connect("192.0.2.7"));
  EXPECT_EQ(c.admission.open_from("192.0.2.7"), 2u);
  EXPECT_TRUE(c.connect("198.51.100.1"));
}

TEST(ClientAdmission, CountsReturnToZero) {
  Clients c(3, 2);
  for (int round = 0; round < 3; ++round) {
    EXPECT_TRUE(c.connect("192.0.2.7"));
    EXPECT_TRUE(c.connect("192.0.2.7"));
    EXPECT_FALSE(c.connect("192.0.2.7"));   // per address
    EXPECT_TRUE(c.connect("198.51.100.1"));
    EXPECT_FALSE(c.connect("198.51.100.1"));  // total
    c.disconnect("192.0.2.7");
    c.disconnect("192.0.2.7");
    c.disconnect("198.51.100.1");
    EXPECT_EQ(c.admission.open_from("192.0.2.7"), 0u);
    EXPECT_EQ(c.admission.open_from("198.51.100.1"), 0u);
  }
}

TEST(ClientAdmission, LoopbackIsExemptPerAddressButNotFromTheTotal) {
  Clients c(3, 1);
  EXPECT_TRUE(c.connect("127.0.0.1", true));
  EXPECT_TRUE(c.connect("127.0.0.1", true));
  EXPECT_TRUE(c.connect("127.0.0.1", true));
  EXPECT_FALSE(c.connect("127.0.0.1", true));
  EXPECT_EQ(c.admission.open_from("127.0.0.1"), 0u);
}
