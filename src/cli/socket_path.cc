#include "cli/socket_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "protocol/resource.h"

namespace serverswap::cli {
namespace {

Status ensure_private_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Status::system_error("create " + dir, errno);
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return Status::system_error("stat " + dir, errno);
  if (!S_ISDIR(st.st_mode)) return Status::error(dir + " is not a directory");
  if (st.st_uid != ::getuid())
    return Status::error(dir + " belongs to uid " + std::to_string(st.st_uid) +
                         ", not to you; pass --socket PATH");
  if ((st.st_mode & 0077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%o", st.st_mode & 0777);
    return Status::error(dir + " has mode " + mode + "; it must be 0700 (private to you)");
  }
  return {};
}

}  // namespace

Result<std::string> resolve_socket_path(const std::string& flag) {
  std::string path = flag;
  if (path.empty()) {
    if (const char* env = std::getenv("SERVERSWAP_SOCKET"); env && *env) path = env;
  }
  if (path.empty()) {
    std::string dir;
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg) {
      dir = std::string(xdg) + "/serverswap";
    } else {
      dir = "/tmp/serverswap-" + std::to_string(::getuid());
    }
    if (Status s = ensure_private_dir(dir); !s.ok()) return s;
    path = dir + "/control.sock";
  }
  path = std::filesystem::absolute(path).lexically_normal().string();
  if (path.size() > protocol::kMaxUnixPath)
    return Status::error("control socket path " + path + " is longer than " +
                         std::to_string(protocol::kMaxUnixPath) + " bytes");
  return path;
}

}  // namespace serverswap::cli
