// SystemProcesses: the production Processes seam: ServerProcess on a libuv loop, /proc for
// identities, kill(2) for signals, NotifySocket for readiness. Loop thread only.
#pragma once

#include <uv.h>

#include "daemon/core/processes.h"

namespace serverswap::daemon {

class SystemProcesses : public Processes {
 public:
  explicit SystemProcesses(uv_loop_t* loop) : loop_(loop) {}

  Result<std::unique_ptr<Process>> spawn(const SpawnSpec& spec, ExitFn on_exit,
                                         const std::vector<int>& inherited) override;
  Result<std::unique_ptr<Process>> adopt(pid_t pid, ExitFn on_exit) override;
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

 private:
  uv_loop_t* loop_;
};

}  // namespace serverswap::daemon
