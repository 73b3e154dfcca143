// Identity: the user and group a server runs as (`--user`/`--group`), resolved from names
// or numbers through the system's user database, the way systemd's User=/Group= are.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/status.h"

namespace serverswap::daemon {

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string user;  // login name, for USER/LOGNAME; empty for a uid with no passwd entry
  std::string home;  // for HOME; empty when unknown
};

// `user` and `group` as given (either may be empty, not both): a name or a number. With
// only a user, the group is that user's primary group; with only a group, the user is the
// daemon's own. Errors name what was not found.
Result<Identity> resolve_identity(const std::string& user, const std::string& group);

// USER, LOGNAME and HOME as a login as `identity` would set them (replacing the deployer's).
void set_login_environment(const Identity& identity, std::vector<std::string>& env);

}  // namespace serverswap::daemon
