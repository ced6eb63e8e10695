// Locales for the tests that must run under a decimal comma or an 8-bit
// character set. Build hosts rarely have them installed, so each one is
// compiled on first use with localedef from the C library's locale sources
// into a private directory, which LOCPATH then names (see locale(7)).
#ifndef METRICS_AGENT_TESTS_TEST_LOCALES_HPP
#define METRICS_AGENT_TESTS_TEST_LOCALES_HPP

#include <clocale>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <system_error>

#include <locale.h>
#include <sys/wait.h>
#include <unistd.h>

namespace test_locales {

// The directory the built locales go to, removed when the tests end.
class LocaleDir {
 public:
  const std::string& path() {
    if (path_.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/metrics-agent-locales-XXXXXX";
      if (::mkdtemp(&pattern[0])) path_ = pattern;
    }
    return path_;
  }
  const std::string& path_if_made() const { return path_; }
  ~LocaleDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }

 private:
  std::string path_;
};

inline bool loadable(const std::string& name) {
  locale_t l = ::newlocale(LC_ALL_MASK, name.c_str(), locale_t(0));
  if (!l) return false;
  ::freelocale(l);
  return true;
}

// Makes the locale SOURCE.CHARMAP (e.g. de_DE.UTF-8) available to setlocale.
// Empty on success, else the reason it cannot be had (a test then skips).
inline std::string provide(const std::string& source, const std::string& charmap) {
  static std::mutex mu;
  static LocaleDir dir;
  static std::set<std::string> built;
  std::lock_guard<std::mutex> lk(mu);
  const std::string name = source + "." + charmap;
  if (built.count(name)) return "";
  // Probe the system's locales only while LOCPATH is not ours: the C library
  // remembers a failed lookup, and would not see the locale once built.
  if (dir.path_if_made().empty() && loadable(name)) return "";
  const std::string def = "/usr/share/i18n/locales/" + source;
  if (::access(def.c_str(), R_OK) != 0) return "no locale source " + def + " (Debian package `locales`)";
  if (dir.path().empty()) return "cannot create a directory for locales";
  const std::string log = dir.path() + "/" + name + ".log";
  const std::string cmd = "localedef -i " + source + " -f " + charmap + " '" + dir.path() + "/" + name + "' >'" + log + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  // localedef exits 1 after mere warnings, with the locale written all the same.
  if (rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 127) return "localedef is not installed";
  ::setenv("LOCPATH", dir.path().c_str(), 1);
  if (!loadable(name)) {
    std::ifstream in(log);
    std::string line, last;
    while (std::getline(in, line))
      if (!line.empty()) last = line;
    return "localedef could not build " + name + " (status " + std::to_string(rc) + (last.empty() ? "" : ": " + last) + ")";
  }
  built.insert(name);
  return "";
}

// Sets LC_ALL for its lifetime; back to "C" after.
class ScopedLocale {
 public:
  explicit ScopedLocale(const std::string& name) : ok_(std::setlocale(LC_ALL, name.c_str()) != nullptr) {}
  ~ScopedLocale() { std::setlocale(LC_ALL, "C"); }
  bool ok() const { return ok_; }

 private:
  bool ok_;
};

}  // namespace test_locales

#endif  // METRICS_AGENT_TESTS_TEST_LOCALES_HPP
