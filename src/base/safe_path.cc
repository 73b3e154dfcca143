#include "base/safe_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace serverswap {

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

Result<UnsafeComponent> find_unsafe_component(const std::string& dir) {
  uid_t me = ::geteuid();
  // The path as written first: a symbolic link on the way that another user owns (one of
  // theirs in /tmp, say) is theirs to point elsewhere later, whatever it points to now;
  // realpath() below would only see where it points today.
  if (!dir.empty() && dir[0] == '/') {
    std::filesystem::path so_far = "/";
    for (const auto& part : std::filesystem::path(dir).lexically_normal().relative_path()) {
      if (part.empty()) continue;
      so_far /= part;
      struct stat st {};
      if (::lstat(so_far.c_str(), &st) != 0) break;  // realpath() below says why
      if (S_ISLNK(st.st_mode) && st.st_uid != 0 && st.st_uid != me)
        return UnsafeComponent{so_far.string(), "a symbolic link that belongs to uid " +
                                                    std::to_string(st.st_uid) +
                                                    " (neither root nor you)"};
    }
  }
  char real[PATH_MAX];
  if (!::realpath(dir.c_str(), real)) return Status::system_error("resolve " + dir, errno);
  for (std::filesystem::path p = real;; p = p.parent_path()) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return Status::system_error("stat " + p.string(), errno);
    if (st.st_uid != 0 && st.st_uid != me)
      return UnsafeComponent{p.string(), "which belongs to uid " + std::to_string(st.st_uid) +
                                             " (neither root nor you)"};
    if ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0)
      return UnsafeComponent{p.string(), "which has mode " + octal_mode(st.st_mode) +
                                             " (writable by others, not sticky)"};
    if (p == p.root_path()) break;
  }
  return UnsafeComponent{};
}

}  // namespace serverswap
