// StateFile: the daemon's record of its servers and listening sockets, `NAME.state.json`
// beside the control socket DIR/NAME (docs/protocol.md, "Restarts of the daemon itself:
// resume"). A daemon that was killed, or that re-executes itself (`serverswap upgrade`),
// reads it back to take its servers again. Written atomically (tmp, fsync, rename), only
// when its text changes. Since it names commands the daemon runs again, it is trusted only
// when it is what the daemon itself writes: a regular file of the effective uid, mode 0600,
// one link, reached without following a symbolic link (docs/security.md, "Files the daemon
// keeps"). Every file operation is relative to the directory opened O_NOFOLLOW.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "daemon/process/server_process.h"
#include "protocol/message.h"

namespace serverswap::daemon {

struct HeldRecord {
  std::string name;     // canonical resource name
  std::string spelled;  // as the server asked for it
  std::string address;  // as bound: "127.0.0.1:41234"
  // It said `serving` on it while starting (Server::served); absent in older state files.
  bool served = false;
  // Taken from it (handed to another server) while it serves others (Server::taken), and
  // whether it was not told (Server::unheard: it did not subscribe); absent in older files.
  bool taken = false;
  bool unheard = false;
  bool operator==(const HeldRecord&) const = default;
};

struct ServerRecord {
  std::string id;
  pid_t pid = 0;
  uint64_t start_time = 0;  // field 22 of /proc/PID/stat: a recycled pid is not the server
  uint64_t generation = 0;
  std::string state;  // state_name()
  SpawnSpec request;  // the deploy request (run_as is resolved again when restarted)
  std::vector<HeldRecord> held;
  int restarts = 0;
  // Deploy order (Supervisor::newer): a crash restart's is the crashed server's; 0 (a state
  // file of an older version): its generation.
  uint64_t rank = 0;
  // Kept up on what it took over with `serving` after its deploy failed (Server::kept).
  bool kept = false;
  // Its NOTIFY_SOCKET: the socket file's absolute path (NotifyDirectory; starts with '/'),
  // or for a server an older version started, its abstract name without the '@' ("" when
  // none: lost, or derived from the id by older versions, and then not bound again: it
  // would list the id); and across `serverswap upgrade`
  // only, the fd at which the new image finds that socket still bound.
  std::string notify;
  int notify_fd = -1;
  // Its output pipe (Process::output_pipe), read again by the next daemon; empty: none.
  PipeId output;
};

// A listening socket of the daemon across `serverswap upgrade`: the new image finds it at
// `fd` (an fd number of the same process, inherited over execve).
struct SocketRecord {
  std::string name;
  std::string address;
  int fd = -1;
  bool operator==(const SocketRecord&) const = default;
};

// A Unix socket file the daemon bound (for itself or as a server's user), so that a daemon
// restarted after SIGKILL, or upgraded, unlinks it when it is done with it -- by path and
// only while it is still that inode -- and hands it to the same user as before.
struct SocketFileRecord {
  std::string name;  // canonical resource name ("unix:/run/app.sock")
  std::string path;  // as resolved when bound (the file is unlinked only at this path)
  uint64_t dev = 0;
  uint64_t ino = 0;
  uid_t owner = 0;  // the uid it was bound for
  bool operator==(const SocketFileRecord&) const = default;
};

// One of an app's good versions (AppHistory), so that `rollback APP` and `restart APP` still
// work after the daemon restarts or upgrades (docs/protocol.md, "appVersions").
struct VersionRecord {
  SpawnSpec request;  // as a server's request is kept: worker -1, no --replace
  uint64_t generation = 0;
  bool crash_looped = false;
};

// The last automatic rollback of an app, for `status`.
struct RollbackRecord {
  uint64_t from_generation = 0;
  uint64_t to_generation = 0;
  std::string reason;
  int64_t at_unix_ms = 0;  // wall clock: the steady clock means nothing to the next daemon
  std::optional<std::string> failure;
  bool operator==(const RollbackRecord&) const = default;
};

struct AppRecord {
  std::string app;
  std::vector<VersionRecord> versions;  // oldest first, at most kVersionsKept
  std::optional<RollbackRecord> last_rollback;
};

// The format of "appVersions" this daemon writes; another one is ignored as a whole (logged),
// never a reason to take no server back.
inline constexpr int kAppVersionsFormat = 1;

struct DaemonState {
  std::vector<ServerRecord> servers;
  std::vector<AppRecord> apps;
  // Versions in the file that were not trusted, each with why: logged by the daemon that
  // reads them, and never deployed.
  std::vector<std::string> dropped_versions;
  std::vector<SocketRecord> sockets;  // only when written for an upgrade
  std::vector<SocketFileRecord> socket_files;
  int control_fd = -1;  // the control listener, only for an upgrade
  // The UserDirectory (user_directory.h) its servers of other uids use; empty when none.
  std::string user_directory;
};

protocol::Json state_to_json(const DaemonState& state);
Result<DaemonState> state_from_json(const protocol::Json& json);

// "<socket>.state.json": named after the socket, so that two daemons in one directory
// never read each other's servers.
std::string state_path_for(const std::string& socket_path);
// "state.json" beside the socket: where versions before the files were named after the socket
// wrote it. Read only by `daemon --resume-upgrade` when state_path_for() is absent, so that an
// upgrade from such a version keeps its servers (with the same trust checks).
std::string legacy_state_path_for(const std::string& socket_path);

class StateFile {
 public:
  // `path`: DIR/NAME.state.json; DIR is opened O_DIRECTORY|O_NOFOLLOW on every operation.
  explicit StateFile(std::string path);
  const std::string& path() const { return path_; }
  // Writes when the text differs from the last one written (cheap on every event): NAME.tmp
  // (O_NOFOLLOW, 0600), fsync, renameat. The error names the file and the errno text; a
  // failed write is not remembered, so the next call tries again.
  Status write(const DaemonState& state);
  // The size in bytes of the text the last write() made (written or found unchanged): what
  // a write of this state costs in transient memory, a few KiB per server.
  size_t last_text_bytes() const { return last_text_bytes_; }
  // nullopt when there is no file. An error when it cannot be read or parsed, or when it is
  // not trusted (a symbolic link, not a regular file, another owner, group/other
  // permissions, more than one link): then *refused (if given) is set, and the message
  // names the file, its owner and mode, and says that no server is taken back.
  Result<std::optional<DaemonState>> read(bool* refused = nullptr) const;
  void remove();

  // OK when the open file `fd` is one the daemon could have written itself (see read()).
  static Status check_trusted(int fd, const std::string& path);

 private:
  // DIR opened O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC; invalid (errno set) on failure.
  UniqueFd open_dir() const;

  std::string path_;
  std::string dir_;
  std::string name_;
  // What was last written, as its size and two hashes of it (the text itself is a few KiB
  // per server, kept for as long as the daemon runs; issue 13's memory per app). Texts that
  // differ and yet match here (a collision of both 64-bit hashes at one size) are not a
  // concern.
  struct Digest {
    size_t size = 0;
    uint64_t a = 0, b = 0;
    bool operator==(const Digest&) const = default;
  };
  static Digest digest(std::string_view text);
  std::optional<Digest> last_written_;
  size_t last_text_bytes_ = 0;
};

}  // namespace serverswap::daemon
