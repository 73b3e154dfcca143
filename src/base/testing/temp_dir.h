// Temporary directories for tests. Tests only; one owner, not thread-safe.
//
// TempDir: a fresh directory under /tmp for one test (mkdtemp(3)), removed with everything in
// it when the object goes. `mode` is set after it is made (mkdtemp makes it 0700): 0777 for a
// directory another user must write to, 0755 for one they must pass. Throws
// std::runtime_error naming the path and the errno text when it cannot be made (GoogleTest
// fails the test), so path() is never empty.
//
// ScopedTmpdir: TMPDIR set to a fresh TempDir for the object's lifetime (what the code under
// test, and the daemons a test starts, make their temporary files in), then restored as it
// was (or unset). setenv(3): only while no other thread reads the environment.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace serverswap::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "serverswap-test", mode_t mode = 0700) {
    std::string pattern = "/tmp/" + prefix + "-XXXXXX";
    if (!::mkdtemp(pattern.data()))
      throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
    path_ = pattern;
    if (mode != 0700 && ::chmod(path_.c_str(), mode) != 0) {
      int error = errno;
      std::filesystem::remove_all(path_);
      throw std::runtime_error("chmod " + path_ + ": " + std::strerror(error));
    }
  }
  ~TempDir() {
    std::error_code ignored;  // a test that failed half-way may have left it half-removed
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class ScopedTmpdir {
 public:
  // TMPDIR is a fresh directory of `mode`; with `below`, the directory `below` (made with
  // `mode`) inside a fresh one of 0755, for a TMPDIR of a given length.
  explicit ScopedTmpdir(mode_t mode = 0700, const std::string& below = "")
      : root_("serverswap-tmpdir", below.empty() ? mode : 0755),
        path_(below.empty() ? root_.path() : root_.path() + "/" + below) {
    if (!below.empty()) {
      std::filesystem::create_directories(path_);  // throws std::filesystem_error
      if (::chmod(path_.c_str(), mode) != 0)
        throw std::runtime_error("chmod " + path_ + ": " + std::strerror(errno));
    }
    if (const char* old = std::getenv("TMPDIR")) previous_ = old;
    ::setenv("TMPDIR", path_.c_str(), 1);
  }
  ~ScopedTmpdir() {
    if (previous_)
      ::setenv("TMPDIR", previous_->c_str(), 1);
    else
      ::unsetenv("TMPDIR");
  }
  ScopedTmpdir(const ScopedTmpdir&) = delete;
  ScopedTmpdir& operator=(const ScopedTmpdir&) = delete;

  // What TMPDIR is now.
  const std::string& path() const { return path_; }

  // The names in path() (not recursive), in no particular order.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(path_))
      names.push_back(entry.path().filename().string());
    return names;
  }

 private:
  TempDir root_;
  std::string path_;
  std::optional<std::string> previous_;
};

}  // namespace serverswap::testing
