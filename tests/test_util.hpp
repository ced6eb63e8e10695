// Helpers shared by the unit test files: reading files, golden files, and
// waiting for a condition. The unit files are compiled several to a
// translation unit (unity builds: tests/CMakeLists.txt, tests/sanitize,
// tests/cross/build.sh, scripts/build-windows.sh), so each helper exists once,
// here.
#ifndef METRICS_AGENT_TEST_UTIL_HPP
#define METRICS_AGENT_TEST_UTIL_HPP

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

namespace test_util {

inline const std::string kGoldenDir = std::string(METRICS_AGENT_FIXTURES) + "/../golden";

// The whole file; a test failure (and "") when it cannot be read.
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// METRICS_AGENT_REGENERATE=1: golden files are written, not compared.
inline bool regenerating() {
  const char* e = std::getenv("METRICS_AGENT_REGENERATE");
  return e && std::string(e) == "1";
}

// Compares `actual` with tests/golden/<name> (stored with one final newline),
// or writes it there in regeneration mode.
inline void expect_golden(const std::string& name, const std::string& actual) {
  const std::string path = kGoldenDir + "/" + name;
  if (regenerating()) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << actual << '\n';
    ASSERT_TRUE(out.good()) << "cannot write " << path;
    std::cout << "regenerated " << path << "\n";
    return;
  }
  std::string expected = slurp(path);
  ASSERT_FALSE(expected.empty()) << path << " is missing; create it with METRICS_AGENT_REGENERATE=1";
  ASSERT_EQ(expected.back(), '\n') << path;
  expected.pop_back();
  EXPECT_EQ(actual, expected) << "differs from " << path
                              << " (if the change is intended: METRICS_AGENT_REGENERATE=1, then review the diff)";
}

// The golden files hold VERSION in place of the build's version.
inline std::string without_version(std::string text) {
  const std::string v = std::string("version=\"") + METRICS_AGENT_VERSION + "\"";
  const std::size_t at = text.find(v);
  if (at != std::string::npos) text.replace(at, v.size(), "version=\"VERSION\"");
  return text;
}

// Polls `cond` every 10 ms for up to 10 s; its last answer.
template <class F>
bool eventually(F cond) {
  for (int i = 0; i < 1000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

}  // namespace test_util

#endif  // METRICS_AGENT_TEST_UTIL_HPP
