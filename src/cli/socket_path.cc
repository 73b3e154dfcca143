#include "cli/socket_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "base/safe_path.h"
#include "protocol/resource.h"

namespace serverswap::cli {
namespace {

constexpr const char* kChooseOwn = "choose a directory of your own: mkdir -m 0700 ~/.serverswap";

Status ensure_private_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Status::system_error("create " + dir, errno);
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return Status::system_error("stat " + dir, errno);
  if (!S_ISDIR(st.st_mode)) return Status::error(dir + " is not a directory; pass --socket PATH");
  // Another user may have created it first (/tmp/serverswap-UID is guessable).
  if (st.st_uid != ::geteuid())
    return Status::error(dir + " belongs to uid " + std::to_string(st.st_uid) +
                         ", not to you (uid " + std::to_string(::geteuid()) +
                         "); remove it or pass --socket PATH in a directory of your own (" +
                         kChooseOwn + ")");
  if ((st.st_mode & 0077) != 0)
    return Status::error(dir + " has mode " + octal_mode(st.st_mode) +
                         "; it must be 0700 (private to you): chmod 0700 " + dir);
  return {};
}

// The directory the default socket directory is made in ($XDG_RUNTIME_DIR, or /tmp): it and
// every directory on the way (symlinks followed one at a time, each link root's or ours,
// also one met in another link's target) must be safe by find_unsafe_component's rule, or
// nothing is created there.
Status check_runtime_base(const std::string& base) {
  struct stat st {};
  if (::stat(base.c_str(), &st) != 0)
    return Status::system_error("the runtime directory " + base + " (XDG_RUNTIME_DIR)", errno);
  auto unsafe = find_unsafe_component(base);
  if (!unsafe.ok()) return unsafe.status();
  if (!unsafe->unsafe.empty())
    return Status::error("the runtime directory " + base + " lies in " + unsafe->unsafe + ", " +
                         unsafe->why +
                         ": nothing is created there; set XDG_RUNTIME_DIR to a directory of "
                         "your own, pass --socket PATH, or " +
                         kChooseOwn);
  return {};
}

// Every link and directory the kernel passes through to reach `path` (as given, ".." and
// all) is safe by find_unsafe_component's rule; the error names `dir`, the socket's
// directory.
Status check_path_to(const std::string& path, const std::string& dir) {
  auto unsafe = find_unsafe_component(path);
  if (!unsafe.ok()) return unsafe.status();
  if (!unsafe->unsafe.empty())
    return Status::error("the directory of the control socket, " + dir + ", lies in " +
                         unsafe->unsafe + ", " + unsafe->why +
                         ": others could replace the directory; " + kChooseOwn);
  return {};
}

}  // namespace

// Beside the socket the daemon keeps its lock, its state (which names commands it runs
// again) and its log. Whoever can write to the directory could plant a state file, replace
// those files by symbolic links, or rename the directory away; so the directory must be
// ours and no one else's to write, and so must the path that leads to it. This is OpenSSH's
// safe_path() rule (every ancestor owned by root or by us, not group/other-writable), with
// one exception: a sticky ancestor (such as /tmp) may be writable by all, since no one can
// rename or remove what another user has in it.
Status check_socket_directory(const std::string& dir) {
  uid_t me = ::geteuid();
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return Status::error("the directory of the control socket, " + dir +
                           ", does not exist: create it with mkdir -m 0700 " + dir);
    return Status::system_error("stat " + dir, errno);
  }
  if (S_ISLNK(st.st_mode))
    return Status::error("the directory of the control socket, " + dir +
                         ", is a symbolic link; name the real directory, or " + kChooseOwn);
  if (!S_ISDIR(st.st_mode))
    return Status::error("the directory of the control socket, " + dir + ", is not a directory");
  // Root's directory is as safe as our own (a root daemon's socket for servers run as
  // another user lies in one: user_directory.h).
  if (st.st_uid != me && st.st_uid != 0)
    return Status::error("the directory of the control socket, " + dir + ", belongs to uid " +
                         std::to_string(st.st_uid) + ", not to you (uid " + std::to_string(me) +
                         ") nor to root: another user could plant or replace the daemon's files "
                         "there; " +
                         kChooseOwn);
  if ((st.st_mode & 022) != 0)
    return Status::error("the directory of the control socket, " + dir + ", has mode " +
                         octal_mode(st.st_mode) +
                         ": others may write to it and could plant or replace the daemon's "
                         "files there; chmod go-w " +
                         dir + ", or " + kChooseOwn);
  // The ancestors as the kernel resolves them: each symbolic link on the way (/var/run) is
  // checked (root's or ours), then followed, and the directories its target passes through
  // are checked too.
  return check_path_to(std::filesystem::path(dir).parent_path().string(), dir);
}

Result<std::string> resolve_socket_path(const std::string& flag) {
  std::string path = flag;
  if (path.empty()) {
    if (const char* env = std::getenv("SERVERSWAP_SOCKET"); env && *env) path = env;
  }
  if (path.empty()) {
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    std::string base = xdg && *xdg ? std::filesystem::absolute(xdg).string() : "/tmp";
    // Checked before anything is made in it: a directory (or a symlink on the way) that
    // another user controls must not get a directory created by us (as root: anywhere).
    if (Status s = check_runtime_base(base); !s.ok()) return s;
    // Only now, every link on the way checked: ".." as the kernel takes it.
    auto resolved = resolve_dot_dot(base);
    if (!resolved.ok()) return resolved.status();
    std::string dir =
        xdg && *xdg ? *resolved + "/serverswap" : "/tmp/serverswap-" + std::to_string(::getuid());
    if (Status s = ensure_private_dir(dir); !s.ok()) return s;
    path = dir + "/control.sock";
  }
  // ".." as the kernel takes it (after a link: from the link's target), so that the daemon
  // and any other program given this path reach the same socket; but first every link and
  // directory the kernel passes through on the path as given is checked, so that no link
  // of another user's is followed to resolve it (nobody's `link/..` would lead wherever
  // nobody points it).
  path = std::filesystem::absolute(path).string();
  bool dot_dot = ("/" + path + "/").find("/../") != std::string::npos;
  if (dot_dot) {
    std::string dir = std::filesystem::path(path).parent_path().string();
    if (Status s = check_path_to(dir, dir); !s.ok()) return s;
  }
  auto resolved = resolve_dot_dot(path);
  if (!resolved.ok()) return resolved.status();
  path = *resolved;
  if (path.size() > protocol::kMaxUnixPath)
    return Status::error("control socket path " + path + " is longer than " +
                         std::to_string(protocol::kMaxUnixPath) + " bytes");
  if (Status s = check_socket_directory(std::filesystem::path(path).parent_path().string());
      !s.ok())
    return s;
  return path;
}

}  // namespace serverswap::cli
