#include "daemon/service/identity.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <vector>

namespace serverswap::daemon {
namespace {

// A non-negative decimal number, or -1.
long long as_number(const std::string& text) {
  long long value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size() && value >= 0 ? value : -1;
}

Result<Identity> find_user(const std::string& user) {
  passwd entry{}, *found = nullptr;
  std::vector<char> buffer(16384);
  long long number = as_number(user);
  int rc = number >= 0 ? getpwuid_r(static_cast<uid_t>(number), &entry, buffer.data(),
                                    buffer.size(), &found)
                       : getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (rc != 0) return Status::system_error("--user " + user, rc);
  if (!found && number >= 0) {
    // A bare uid with no passwd entry is allowed (containers often have none); its group
    // is then the same number, like systemd's DynamicUser.
    return Identity{static_cast<uid_t>(number), static_cast<gid_t>(number), "", ""};
  }
  if (!found) return Status::error("--user " + user + ": no such user");
  return Identity{entry.pw_uid, entry.pw_gid, entry.pw_name, entry.pw_dir};
}

Result<gid_t> find_group(const std::string& group) {
  long long number = as_number(group);
  if (number >= 0) return static_cast<gid_t>(number);
  ::group entry{}, *found = nullptr;
  std::vector<char> buffer(16384);
  int rc = getgrnam_r(group.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (rc != 0) return Status::system_error("--group " + group, rc);
  if (!found) return Status::error("--group " + group + ": no such group");
  return entry.gr_gid;
}

}  // namespace

Result<Identity> resolve_identity(const std::string& user, const std::string& group) {
  Identity identity{getuid(), getgid(), "", ""};
  if (!user.empty()) {
    auto found = find_user(user);
    if (!found.ok()) return found.status();
    identity = *found;
  }
  if (!group.empty()) {
    auto gid = find_group(group);
    if (!gid.ok()) return gid.status();
    identity.gid = *gid;
  }
  bool changes = identity.uid != getuid() || identity.gid != getgid();
  if (changes && geteuid() != 0)
    return Status::error(
        "--user/--group: the daemon must run as root to start servers as "
        "another user (it runs as uid " +
        std::to_string(getuid()) + ")");
  return identity;
}

void set_login_environment(const Identity& identity, std::vector<std::string>& env) {
  if (identity.user.empty()) return;
  std::erase_if(env, [](const std::string& e) {
    return e.starts_with("USER=") || e.starts_with("LOGNAME=") || e.starts_with("HOME=");
  });
  env.push_back("USER=" + identity.user);
  env.push_back("LOGNAME=" + identity.user);
  if (!identity.home.empty()) env.push_back("HOME=" + identity.home);
}

}  // namespace serverswap::daemon
