#include "base/safe_path.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <vector>

#include "base/unique_fd.h"

namespace serverswap {
namespace {

// As the kernel allows (MAXSYMLINKS): a loop ends in ELOOP, not in a hang.
constexpr int kMaxLinks = 40;

// The non-empty components of `path`, in order ("/a//b/" -> a, b).
std::deque<std::string> components(const std::string& path) {
  std::deque<std::string> parts;
  size_t begin = 0;
  while (begin < path.size()) {
    size_t end = path.find('/', begin);
    if (end == std::string::npos) end = path.size();
    if (end > begin) parts.push_back(path.substr(begin, end - begin));
    begin = end + 1;
  }
  return parts;
}

std::string joined(const std::vector<std::string>& names, const std::string& last) {
  std::string path;
  for (const auto& name : names) path += "/" + name;
  return path + "/" + last;
}

// Why a directory (or the final component) breaks the rule, or "" when it does not.
std::string breaks_rule(const struct stat& st, uid_t me) {
  if (st.st_uid != 0 && st.st_uid != me)
    return "which belongs to uid " + std::to_string(st.st_uid) + " (neither root nor you)";
  if ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0)
    return "which has mode " + octal_mode(st.st_mode) + " (writable by others, not sticky)";
  return "";
}

}  // namespace

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// chase() one component at a time: each is opened O_PATH|O_NOFOLLOW relative to the
// directory before it and checked by its descriptor, so that a link is judged by its own
// owner before it is followed, and a directory reached through a link is checked like any
// other. Ownership and modes are read from the same inode that is then walked through.
Result<UnsafeComponent> find_unsafe_component(const std::string& dir) {
  const uid_t me = ::geteuid();
  std::string path = dir;
  if (path.empty() || path[0] != '/') {
    char cwd[PATH_MAX];
    if (!::getcwd(cwd, sizeof cwd)) return Status::system_error("resolve " + dir, errno);
    path = std::string(cwd) + "/" + dir;
  }
  auto failed = [&](const std::string& at, int err) {
    return Status::system_error("resolve " + dir + ": " + at, err);
  };
  // The directories the resolution stands in, from "/" down: a descriptor and a name each
  // ("/" has none), so that ".." goes back to a directory already checked.
  std::vector<UniqueFd> fds;
  std::vector<std::string> names;
  fds.emplace_back(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  struct stat st {};
  if (!fds.back() || ::fstat(fds.back().get(), &st) != 0) return failed("/", errno);
  if (std::string why = breaks_rule(st, me); !why.empty()) return UnsafeComponent{"/", why};

  std::deque<std::string> todo = components(path);
  int links = 0;
  while (!todo.empty()) {
    std::string part = std::move(todo.front());
    todo.pop_front();
    if (part == ".") continue;
    if (part == "..") {
      if (fds.size() > 1) {
        fds.pop_back();
        names.pop_back();
      }
      continue;
    }
    std::string here = joined(names, part);
    UniqueFd fd(::openat(fds.back().get(), part.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd || ::fstat(fd.get(), &st) != 0) return failed(here, errno);
    if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      ssize_t n = ::readlinkat(fd.get(), "", target, sizeof target);
      if (n < 0) return failed(here, errno);
      if (static_cast<size_t>(n) >= sizeof target) return failed(here, ENAMETOOLONG);
      std::string to(target, static_cast<size_t>(n));
      // Whoever owns the link may point it elsewhere later, wherever it points now.
      if (st.st_uid != 0 && st.st_uid != me)
        return UnsafeComponent{here, "a symbolic link that belongs to uid " +
                                         std::to_string(st.st_uid) +
                                         " (neither root nor you), to " + to};
      if (++links > kMaxLinks) return failed(here, ELOOP);
      if (to.empty()) return failed(here, ENOENT);
      std::deque<std::string> more = components(to);
      todo.insert(todo.begin(), more.begin(), more.end());
      if (to[0] == '/') {  // from the root again, which was checked first
        fds.resize(1);
        names.clear();
      }
      continue;
    }
    if (!S_ISDIR(st.st_mode) && !todo.empty()) return failed(here, ENOTDIR);
    if (std::string why = breaks_rule(st, me); !why.empty()) return UnsafeComponent{here, why};
    if (!S_ISDIR(st.st_mode)) break;  // the final component, checked
    fds.push_back(std::move(fd));
    names.push_back(std::move(part));
  }
  return UnsafeComponent{};
}

Result<std::string> resolve_dot_dot(const std::string& path) {
  std::deque<std::string> kept;
  auto here = [&] {
    std::string joined_path;
    for (const auto& name : kept) joined_path += "/" + name;
    return joined_path.empty() ? std::string("/") : joined_path;
  };
  for (const std::string& part : components(path)) {
    if (part == ".") continue;
    if (part != "..") {
      kept.push_back(part);
      continue;
    }
    if (kept.empty()) continue;  // "/.." is "/"
    struct stat st {};
    if (::lstat(here().c_str(), &st) != 0)
      return Status::system_error("resolve " + path + ": " + here(), errno);
    if (S_ISLNK(st.st_mode)) {
      char real[PATH_MAX];
      if (!::realpath(here().c_str(), real))
        return Status::system_error("resolve " + path + ": " + here(), errno);
      kept = components(real);
    }
    if (!kept.empty()) kept.pop_back();
  }
  return here();
}

}  // namespace serverswap
