// SystemProcesses: the production Processes seam: ServerProcess on a libuv loop, /proc for
// identities, kill(2) for signals, NotifySocket for readiness. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>

#include "daemon/control/log_limiter.h"
#include "daemon/core/processes.h"
#include "daemon/process/output_pipe.h"
#include "daemon/uv_handle.h"

namespace serverswap::daemon {

// How many output pipes of servers that have exited the daemon goes on reading for one uid
// other than root's and its own (docs/architecture.md, "Server output"): each is held by a
// descendant that outlived its server, and each costs the daemon a descriptor.
inline constexpr size_t kLeftoverPipesPerUid = 16;

class SystemProcesses : public Processes {
 public:
  // `leftover_pipes_per_uid`: the cap above (smaller in tests).
  explicit SystemProcesses(uv_loop_t* loop, size_t leftover_pipes_per_uid = kLeftoverPipesPerUid);

  Result<std::unique_ptr<Process>> spawn(const SpawnSpec& spec, ExitFn on_exit,
                                         const std::vector<int>& inherited,
                                         OutputFn on_output) override;
  Result<std::unique_ptr<Process>> adopt(pid_t pid, ExitFn on_exit, PipeId output,
                                         OutputFn on_output) override;
  Result<uint64_t> start_time(pid_t pid) const override;
  bool is_process_of(pid_t pid, pid_t main, uint64_t main_start_time) const override;
  std::string comm(pid_t pid) const override;
  Result<SpawnSpec> command_of(pid_t pid) const override;
  bool group_alive(pid_t group) const override;
  void signal_group(pid_t group, int signum) override;
  void signal_strayed(pid_t pid, pid_t session, int signum) override;
  Result<UniqueFd> copy_fd(pid_t pid, int target) override;
  Result<std::string> listening_resource(int fd) const override;
  Result<std::unique_ptr<Notifier>> open_notify(const std::string& address, uid_t uid, int fd,
                                                NotifySocket::OnMessage on_message,
                                                NotifySocket::OnRejected on_rejected) override;

  void pause_leftover_output(uid_t uid, Millis pause) override;

  // Logs what was read of each unterminated output line (OutputReader::flush).
  void flush_output();

  // Output pipes read now, of every server and of its leftovers (for tests and metrics).
  size_t output_pipes_read() const { return readers_.size(); }

 private:
  struct Reader {
    std::unique_ptr<OutputReader> reader;
    uid_t uid = 0;
    pid_t pid = 0;
    bool server_exited = false;  // read on only for descendants that outlived it
  };

  // Reads `fd` under number `key` until its last writer closes it; the reader then removes
  // itself.
  Status read_output(uint64_t key, UniqueFd fd, pid_t pid, uid_t uid, OutputFn on_output);
  // `on_exit` of the server whose pipe is read under `key`, after marking that pipe as read
  // for leftovers only and closing the oldest of its uid's beyond the cap.
  ExitFn on_server_exit(uint64_t key, ExitFn on_exit);
  void cap_leftover_pipes(uid_t uid);

  uv_loop_t* loop_;
  size_t leftover_pipes_per_uid_;
  // The output pipes being read, by a number of their own in the order they were opened: a
  // pipe outlives its server's main process while descendants still write to it.
  std::map<uint64_t, Reader> readers_;
  uint64_t next_reader_ = 0;
  // Lines about pipes closed over the cap, per uid: 5 at once, then 1 a second.
  LogLimiter closed_lines_;
  // Uids whose leftovers' pipes are not read now, each until its timer resumes them.
  std::map<uid_t, std::unique_ptr<Timer>> paused_;
};

}  // namespace serverswap::daemon
