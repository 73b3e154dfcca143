// UserDirectory: where the sockets for servers run as another user (--user) live: each such
// server's NOTIFY_SOCKET and, one per uid, the control socket its servers connect to. Those
// users cannot pass the daemon's own directory (0700), so this one lies in the temporary
// directory: $TMPDIR when it passes the safe_path rule (base/safe_path.h), else /tmp
// (checked the same way). It is made with mkdtemp(3) as "serverswap-users-XXXXXX", mode 0711
// and the daemon's: every user may pass through it to a socket file of theirs (each is its
// server's uid's, mode 0600), no one else may list it or create, replace or remove a file in
// it, so no one can bind a name there first or plant a symbolic link where a socket goes.
//
// Its path is recorded in the state file (DaemonState::user_directory): a daemon restarted
// after SIGKILL or upgraded binds the same socket paths again, so servers keep their
// NOTIFY_SOCKET and SERVERSWAP_SOCKET. It is removed once empty (the last socket gone).
// Loop thread only.
#pragma once

#include <sys/types.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"

namespace serverswap::daemon {

inline constexpr const char* kUserDirectoryPrefix = "serverswap-users-";
// Directories of versions before 0.9 held only NOTIFY_SOCKETs; recognised when one is reused
// or emptied, never made.
inline constexpr const char* kLegacyNotifyDirectoryPrefix = "serverswap-notify-";

// The longest file name made in it: a NOTIFY_SOCKET's 32 hex digits (the control sockets'
// "control-uid4294967295.sock" is shorter). path() refuses a directory where it would not fit.
inline constexpr size_t kLongestSocketName = 32;

// True when `path`'s last component names a directory made as above (either prefix).
bool is_user_directory_name(const std::string& path);

// `dir` (opened O_DIRECTORY|O_NOFOLLOW) is a directory of the daemon's effective uid that
// no group or other may list or write (0711 at most); else an error naming `path`, its owner
// or mode, and the fix.
Status check_user_directory(int dir, const std::string& path);

// "control-uid<UID>.sock": the name of the control socket for servers of `uid` in it; and
// back (nullopt for any other name).
std::string control_socket_name(uid_t uid);
std::optional<uid_t> uid_of_control_socket(const std::string& name);

// The temporary directory to make it in: $TMPDIR when it is absolute and safe, else /tmp.
// `*warning` (if given) says why $TMPDIR was passed over. Errors: /tmp is unsafe too.
Result<std::string> safe_temporary_directory(std::string* warning = nullptr);

class UserDirectory {
 public:
  // Takes up `path`, recorded by an earlier run, when it still is such a directory of ours;
  // else an error saying why (a fresh one is then made on first use).
  Status reuse(const std::string& path);

  // The directory's path, made on first use (and again when a cleaner of /tmp removed it).
  // Errors: no safe temporary directory, mkdtemp's or chmod's errno text.
  Result<std::string> path();
  // Its path when made or reused, else empty. Does not create.
  const std::string& current() const { return path_; }

  // The directory opened O_DIRECTORY|O_NOFOLLOW and checked again (check_user_directory).
  Result<UniqueFd> open() const;

  // The names of the files in it (none when it is not made or not ours).
  std::vector<std::string> names() const;
  // Removes every file in it whose name `keep` lacks (sockets of servers that are gone).
  void remove_except(const std::set<std::string>& keep);
  // Removes the directory when it is empty (rmdir(2) fails with ENOTEMPTY otherwise).
  void remove_if_empty();

 private:
  std::string path_;
};

}  // namespace serverswap::daemon
