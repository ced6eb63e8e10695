// --listen addresses: an accepted spec is an IPv4 or IPv6 socket address
// whose port is the one written, and printing it back and parsing that again
// gives the same address; a refused one comes with a reason.
#include "metrics_agent.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace md = metrics_agent::detail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string spec(reinterpret_cast<const char*>(data), size);
  sockaddr_storage ss;
  socklen_t len = 0;
  std::string error;
  const bool ok = md::net::parse_listen_address(spec, ss, len, error);
  std::string again;
  if (md::net::valid_listen_address(spec, again) != ok) std::abort();
  if (!ok) {
    if (error.empty()) std::abort();
    return 0;
  }
  const std::string port = spec.substr(spec.rfind(':') + 1);
  char host[INET6_ADDRSTRLEN] = {};
  std::string printed;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    if (len != sizeof *a) std::abort();
    if (!inet_ntop(AF_INET, &a->sin_addr, host, sizeof host)) std::abort();
    printed = std::string(host) + ':' + std::to_string(ntohs(a->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    if (len != sizeof *a) std::abort();
    if (!inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host)) std::abort();
    printed = '[' + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
  } else {
    std::abort();
  }
  // The port is the decimal number written (leading zeros allowed).
  std::uint64_t want = 0;
  for (char c : port) {
    if (c < '0' || c > '9') std::abort();
    want = want * 10 + std::uint64_t(c - '0');
    if (want > 65535) std::abort();
  }
  if (printed.substr(printed.rfind(':') + 1) != std::to_string(want)) std::abort();
  sockaddr_storage ss2;
  socklen_t len2 = 0;
  if (!md::net::parse_listen_address(printed, ss2, len2, error)) std::abort();
  if (len2 != len || std::memcmp(&ss, &ss2, len) != 0) std::abort();
  return 0;
}
