// The /etc/hosts reader behind `check` in static builds
// (METRICS_AGENT_NO_GETADDRINFO): hosts(5) syntax, case, comments, order,
// IPv4 and IPv6, and lines it must skip.
#include "metrics_agent.hpp"
#include "tools/check_client.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using metrics_agent::detail::net::Endpoint;
using metrics_agent::detail::net::endpoint_text;
using metrics_agent::detail::net::hosts_file_lookup;
using metrics_agent::detail::net::numeric_endpoint;

std::vector<std::string> lookup(const std::string& text, const std::string& name, std::uint16_t port = 80) {
  std::vector<Endpoint> eps;
  hosts_file_lookup(text, name, port, eps);
  std::vector<std::string> out;
  for (const auto& e : eps) out.push_back(endpoint_text(e));
  return out;
}

const char* const kHosts =
    "# The following lines are desirable for IPv4 capable hosts\n"
    "127.0.0.1\tlocalhost\n"
    "127.0.1.1   box.example.org box   # this machine\n"
    "\n"
    "  10.1.2.3 db DB-Replica\r\n"
    "::1     localhost ip6-localhost ip6-loopback\n"
    "fe00::0 ip6-localnet\n"
    "not-an-address broken\n"
    "192.0.2.7\n"
    "# 10.9.9.9 db\n"
    "10.1.2.4 db";

TEST(StaticResolver, NamesAndAliasesInFileOrder) {
  EXPECT_EQ(lookup(kHosts, "localhost", 54112), (std::vector<std::string>{"127.0.0.1:54112", "[::1]:54112"}));
  EXPECT_EQ(lookup(kHosts, "box"), (std::vector<std::string>{"127.0.1.1:80"}));
  EXPECT_EQ(lookup(kHosts, "box.example.org"), (std::vector<std::string>{"127.0.1.1:80"}));
  // Names compare without regard to case; a CRLF line and a last line without
  // a newline count; a commented-out line does not.
  EXPECT_EQ(lookup(kHosts, "db-replica"), (std::vector<std::string>{"10.1.2.3:80"}));
  EXPECT_EQ(lookup(kHosts, "Db"), (std::vector<std::string>{"10.1.2.3:80", "10.1.2.4:80"}));
  EXPECT_EQ(lookup(kHosts, "ip6-loopback", 9), (std::vector<std::string>{"[::1]:9"}));
}

TEST(StaticResolver, SkipsWhatIsNotAnEntry) {
  EXPECT_TRUE(lookup(kHosts, "broken").empty());           // the address is not numeric
  EXPECT_TRUE(lookup(kHosts, "192.0.2.7").empty());        // an address without names
  EXPECT_TRUE(lookup(kHosts, "this").empty());             // inside a comment
  EXPECT_TRUE(lookup(kHosts, "machine").empty());
  EXPECT_TRUE(lookup(kHosts, "box.example").empty());      // whole names only
  EXPECT_TRUE(lookup("", "localhost").empty());
  EXPECT_TRUE(lookup("\n\n#\n   \t\n", "localhost").empty());
  EXPECT_TRUE(lookup("127.0.0.1 localhost", "").empty());
}

TEST(StaticResolver, NumericAddresses) {
  Endpoint e;
  ASSERT_TRUE(numeric_endpoint("192.0.2.1", 54112, e));
  EXPECT_EQ(endpoint_text(e), "192.0.2.1:54112");
  ASSERT_TRUE(numeric_endpoint("2001:db8::1", 443, e));
  EXPECT_EQ(endpoint_text(e), "[2001:db8::1]:443");
  EXPECT_FALSE(numeric_endpoint("localhost", 80, e));
  EXPECT_FALSE(numeric_endpoint("[::1]", 80, e));
  EXPECT_FALSE(numeric_endpoint("1.2.3", 80, e));
  EXPECT_FALSE(numeric_endpoint("256.1.1.1", 80, e));
  EXPECT_FALSE(numeric_endpoint("", 80, e));
}

}  // namespace
