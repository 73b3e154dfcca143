// SystemProcesses: the production Processes seam: ServerProcess on a libuv loop, /proc for
// identities, kill(2) for signals, NotifySocket for readiness. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>

#include "daemon/core/processes.h"
#include "daemon/process/output_pipe.h"

namespace serverswap::daemon {

class SystemProcesses : public Processes {
 public:
  explicit SystemProcesses(uv_loop_t* loop) : loop_(loop) {}

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

  // Logs what was read of each unterminated output line (OutputReader::flush).
  void flush_output();

 private:
  // Reads `fd` until its last writer closes it; the reader then removes itself.
  Status read_output(UniqueFd fd, pid_t pid, OutputFn on_output);

  uv_loop_t* loop_;
  // The output pipes being read, by a number of their own: a pipe outlives its server's
  // main process while descendants still write to it.
  std::map<uint64_t, std::unique_ptr<OutputReader>> readers_;
  uint64_t next_reader_ = 0;
};

}  // namespace serverswap::daemon
