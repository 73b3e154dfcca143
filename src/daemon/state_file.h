// StateFile: the daemon's record of its servers and listening sockets, `state.json` beside
// the control socket (docs/protocol.md, "Restarts of the daemon itself: resume"). A daemon
// that was killed, or that re-executes itself (`serverswap upgrade`), reads it back to take
// its servers again. Written atomically (tmp, fsync, rename), only when its text changes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "daemon/server_process.h"
#include "protocol/message.h"

namespace serverswap::daemon {

struct HeldRecord {
  std::string name;     // canonical resource name
  std::string spelled;  // as the server asked for it
  std::string address;  // as bound: "127.0.0.1:41234"
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
  // Its NOTIFY_SOCKET's abstract name (random; "" in state files of older versions, whose
  // name was "serverswap-notify-" and the id), and across `serverswap upgrade` only, the fd
  // at which the new image finds that socket still bound.
  std::string notify;
  int notify_fd = -1;
};

// A listening socket of the daemon across `serverswap upgrade`: the new image finds it at
// `fd` (an fd number of the same process, inherited over execve).
struct SocketRecord {
  std::string name;
  std::string address;
  int fd = -1;
  bool operator==(const SocketRecord&) const = default;
};

struct DaemonState {
  std::vector<ServerRecord> servers;
  std::vector<SocketRecord> sockets;  // only when written for an upgrade
  int control_fd = -1;                // the control listener, only for an upgrade
};

protocol::Json state_to_json(const DaemonState& state);
Result<DaemonState> state_from_json(const protocol::Json& json);

// state.json in the directory of the control socket.
std::string state_path_for(const std::string& socket_path);

class StateFile {
 public:
  explicit StateFile(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  // Writes when the text differs from the last one written (cheap on every event).
  Status write(const DaemonState& state);
  // nullopt when there is no file.
  Result<std::optional<DaemonState>> read() const;
  void remove();

 private:
  std::string path_;
  std::string last_written_;
};

// Field 22 of /proc/PID/stat (clock ticks after boot); an error when the process is gone.
Result<uint64_t> process_start_time(pid_t pid);

}  // namespace serverswap::daemon
