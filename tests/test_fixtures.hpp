// Recorded /proc and /sys trees for the unit tests (tests/fixtures/linux).
#ifndef METRICS_AGENT_TEST_FIXTURES_HPP
#define METRICS_AGENT_TEST_FIXTURES_HPP

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace test_fixtures {

inline const std::string kLinux = std::string(METRICS_AGENT_FIXTURES) + "/linux";

// A private copy of fixture trees that a test can change between samples.
class TempTree {
 public:
  TempTree() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "metrics-agent-fixture-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
  }
  ~TempTree() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;
  // Overlays fixture <name> (its proc/ and sys/) onto the tree.
  void load(const std::string& name) {
    std::filesystem::copy(kLinux + "/" + name, root_,
                          std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
  }
  std::string proc() const { return (root_ / "proc").string(); }
  std::string sys() const { return (root_ / "sys").string(); }
  std::filesystem::path path(const std::string& rel) const { return root_ / rel; }

 private:
  std::filesystem::path root_;
};

}  // namespace test_fixtures

#endif  // METRICS_AGENT_TEST_FIXTURES_HPP
