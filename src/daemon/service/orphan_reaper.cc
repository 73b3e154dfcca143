#include "daemon/service/orphan_reaper.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "base/log.h"
#include "base/status.h"

namespace serverswap::daemon {

OrphanReaper::OrphanReaper(uv_loop_t* loop, std::function<bool(pid_t)> is_server,
                           std::function<bool(pid_t)> was_helper)
    : loop_(loop),
      is_server_(std::move(is_server)),
      was_helper_(std::move(was_helper)),
      log_(loop, "reaped orphans"),
      sigchld_(loop, SIGCHLD, [this] { reap(); }) {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    log_line(Status::system_error("PR_SET_CHILD_SUBREAPER", errno).message() +
             "; orphans of servers go to PID 1");
}

std::set<pid_t> OrphanReaper::spawned_by_the_loop() const {
  std::set<pid_t> pids;
  uv_walk(
      loop_,
      [](uv_handle_t* handle, void* arg) {
        if (handle->type == UV_PROCESS)
          static_cast<std::set<pid_t>*>(arg)->insert(reinterpret_cast<uv_process_t*>(handle)->pid);
      },
      &pids);
  return pids;
}

void OrphanReaper::reap() {
  std::set<pid_t> spawned = spawned_by_the_loop();
  for (pid_t pid : children_of_self()) {
    if (spawned.count(pid) || (is_server_ && is_server_(pid))) continue;
    // Whose it was is read while it is still a zombie (its /proc entry goes with the
    // reaping): the lines are limited per uid, so that a server of another user forking
    // orphans without end hides no one else's.
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        info.si_pid != pid)
      continue;  // still running
    std::string source = "servers";
    if (auto uid = real_uid_of(pid)) source = "uid " + std::to_string(*uid);
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) != pid) continue;
    if ((was_helper_ && was_helper_(pid)) || !log_.admit(source)) continue;
    std::string how = WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                          : "status " + std::to_string(WEXITSTATUS(status));
    log_line("reaped orphan pid " + std::to_string(pid) + " (" + how + ")");
  }
}

std::optional<uid_t> real_uid_of(pid_t pid) {
  // The real uid, not the effective one (the owner of /proc/PID): a server's orphan that
  // exec'd a set-user-ID program (su, passwd) is still that user's, not root's.
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Uid:", 0) != 0) continue;
    std::istringstream fields(line.substr(4));
    uid_t real;
    if (fields >> real) return real;
    return std::nullopt;
  }
  return std::nullopt;
}

std::vector<pid_t> children_of_self() {
  std::vector<pid_t> children;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream list(task.path() / "children");
    for (pid_t pid; list >> pid;) children.push_back(pid);
  }
  return children;
}

}  // namespace serverswap::daemon
