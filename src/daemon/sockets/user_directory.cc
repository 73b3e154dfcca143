#include "daemon/sockets/user_directory.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <vector>

#include "base/log.h"
#include "base/safe_path.h"
#include "daemon/sockets/socket_file.h"

namespace serverswap::daemon {

bool is_user_directory_name(const std::string& path) {
  std::string name = std::filesystem::path(path).filename().string();
  return name.starts_with(kUserDirectoryPrefix) || name.starts_with(kLegacyNotifyDirectoryPrefix);
}

Status check_user_directory(int dir, const std::string& path) {
  return check_owned_directory(dir, "the directory for other users' sockets", path, true);
}

std::string control_socket_name(uid_t uid) {
  return "control-uid" + std::to_string(uid) + ".sock";
}

std::optional<uid_t> uid_of_control_socket(const std::string& name) {
  constexpr std::string_view kPrefix = "control-uid", kSuffix = ".sock";
  if (!name.starts_with(kPrefix) || !name.ends_with(kSuffix)) return std::nullopt;
  std::string digits = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  if (digits.empty() || digits.size() > 10 ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  uint64_t uid = std::stoull(digits);
  if (uid >= static_cast<uid_t>(-1)) return std::nullopt;
  // The canonical spelling only ("control-uid007.sock" is not ours).
  if (control_socket_name(static_cast<uid_t>(uid)) != name) return std::nullopt;
  return static_cast<uid_t>(uid);
}

Result<std::string> safe_temporary_directory(std::string* warning) {
  // TMPDIR is the environment's to set: a user who points it at a directory others may
  // write to (not sticky) would let them rename ours away and put theirs in its place.
  if (const char* tmp = std::getenv("TMPDIR"); tmp && tmp[0] != '\0' && tmp[0] != '/') {
    // Relative to whatever directory the daemon runs in: said, not silently passed over.
    if (warning)
      *warning = "TMPDIR " + std::string(tmp) +
                 " is not used for other users' sockets: it is not an absolute path; using /tmp";
  } else if (tmp && tmp[0] == '/') {
    auto unsafe = find_unsafe_component(tmp);
    if (unsafe.ok() && unsafe->unsafe.empty()) return std::string(tmp);
    if (warning) {
      *warning = "TMPDIR " + std::string(tmp) + " is not used for other users' sockets: " +
                 (unsafe.ok() ? "it lies in " + unsafe->unsafe + ", " + unsafe->why
                              : unsafe.status().message()) +
                 "; using /tmp";
    }
  }
  auto unsafe = find_unsafe_component("/tmp");
  if (!unsafe.ok()) return unsafe.status();
  if (!unsafe->unsafe.empty())
    return Status::error("no safe directory for other users' sockets: /tmp lies in " +
                         unsafe->unsafe + ", " + unsafe->why + "; set TMPDIR to a directory " +
                         "owned by root, writable by no one else unless sticky");
  return std::string("/tmp");
}

Status UserDirectory::reuse(const std::string& path) {
  if (path.empty() || path[0] != '/' || !is_user_directory_name(path))
    return Status::error("not a directory for other users' sockets: " + path);
  auto unsafe = find_unsafe_component(std::filesystem::path(path).parent_path().string());
  if (!unsafe.ok()) return unsafe.status();
  if (!unsafe->unsafe.empty())
    return Status::error(path + " lies in " + unsafe->unsafe + ", " + unsafe->why);
  std::string previous = path_;
  path_ = path;
  auto dir = open();
  if (!dir.ok()) {
    path_ = previous;
    return dir.status();
  }
  return {};
}

Result<UniqueFd> UserDirectory::open() const {
  if (path_.empty()) return Status::error("no directory for other users' sockets yet");
  UniqueFd dir(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir)
    return Status::system_error("open the directory for other users' sockets " + path_, errno);
  if (Status s = check_user_directory(dir.get(), path_); !s.ok()) return s;
  return dir;
}

Result<std::string> UserDirectory::path() {
  if (!path_.empty() && open().ok()) return path_;
  std::string warning;
  auto tmp = safe_temporary_directory(&warning);
  if (!tmp.ok()) return tmp.status();
  if (!warning.empty()) log_line("warning: " + warning);
  std::string pattern = *tmp + "/" + kUserDirectoryPrefix + "XXXXXX";
  // Refused before anything is made: every socket name in it must fit in sun_path.
  std::string longest = pattern + "/" + std::string(kLongestSocketName, 'x');
  if (!fits_sun_path(longest)) {
    size_t room = sizeof(sockaddr_un{}.sun_path) - 1 - (longest.size() - tmp->size());
    return Status::error("the directory for other users' sockets would be " + pattern +
                         ", where a socket path takes up to " + std::to_string(longest.size()) +
                         " bytes; a Unix socket path holds at most " +
                         std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                         " bytes: set TMPDIR to a directory of at most " + std::to_string(room) +
                         " bytes");
  }
  if (!::mkdtemp(pattern.data())) return Status::system_error("mkdtemp " + pattern, errno);
  // mkdtemp made it 0700; every user must pass through it to their own socket.
  if (::chmod(pattern.c_str(), 0711) != 0) {
    int err = errno;
    ::rmdir(pattern.c_str());
    return Status::system_error("chmod 0711 " + pattern, err);
  }
  path_ = pattern;
  return path_;
}

std::vector<std::string> UserDirectory::names() const {
  std::vector<std::string> names;
  auto dir = open();
  if (!dir.ok()) return names;
  DIR* listing = ::fdopendir(::dup(dir->get()));
  if (!listing) return names;
  while (dirent* entry = ::readdir(listing)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(listing);
  return names;
}

void UserDirectory::remove_except(const std::set<std::string>& keep) {
  auto dir = open();
  if (!dir.ok()) return;
  // Only files: no one else can have made anything here, and we make no directories.
  for (const auto& name : names())
    if (!keep.contains(name)) ::unlinkat(dir->get(), name.c_str(), 0);
}

void UserDirectory::remove_if_empty() {
  if (path_.empty()) return;
  // It is ours (0711 in a safe directory): no one else can have put anything at that name.
  if (::rmdir(path_.c_str()) == 0 || errno == ENOENT) path_.clear();
}

}  // namespace serverswap::daemon
