// TempDir: a fresh directory under /tmp for one test (mkdtemp(3)), removed with everything in
// it when the object goes. `mode` is set after it is made (mkdtemp makes it 0700): 0777 for a
// directory another user must write to, 0755 for one they must pass. path() is empty when
// mkdtemp failed; tests ASSERT on it. One owner; not thread-safe. Tests only.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace serverswap::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "serverswap-test", mode_t mode = 0700) {
    std::string pattern = "/tmp/" + prefix + "-XXXXXX";
    if (::mkdtemp(pattern.data())) path_ = pattern;
    if (!path_.empty() && mode != 0700) ::chmod(path_.c_str(), mode);
  }
  ~TempDir() {
    if (!path_.empty()) std::filesystem::remove_all(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace serverswap::testing
