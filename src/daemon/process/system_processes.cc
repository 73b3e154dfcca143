#include "daemon/process/system_processes.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>

#include "base/log.h"
#include "daemon/process/process_tree.h"
#include "daemon/process/server_process.h"
#include "daemon/service/activated_sockets.h"
#include "daemon/sockets/network_namespace.h"

namespace serverswap::daemon {

namespace {

template <class T>
Result<std::unique_ptr<Process>> as_process(Result<std::unique_ptr<T>> made) {
  if (!made.ok()) return made.status();
  return std::unique_ptr<Process>(std::move(*made));
}

template <class T>
Result<std::unique_ptr<Notifier>> as_notifier(Result<std::unique_ptr<T>> made) {
  if (!made.ok()) return made.status();
  return std::unique_ptr<Notifier>(std::move(*made));
}

}  // namespace

SystemProcesses::SystemProcesses(uv_loop_t* loop, size_t leftover_pipes_per_uid)
    : loop_(loop),
      leftover_pipes_per_uid_(leftover_pipes_per_uid),
      closed_lines_(loop, "closed output pipes") {}

Result<std::unique_ptr<Process>> SystemProcesses::spawn(const SpawnSpec& spec, ExitFn on_exit,
                                                        const std::vector<int>& inherited,
                                                        OutputFn on_output) {
  if (!on_output)
    return as_process(ServerProcess::spawn(loop_, spec, std::move(on_exit), inherited));
  auto pipe = make_output_pipe();
  if (!pipe.ok()) return pipe.status();
  uint64_t key = next_reader_++;
  auto process =
      ServerProcess::spawn(loop_, spec, on_server_exit(key, std::move(on_exit)), inherited, &*pipe);
  if (!process.ok()) return process.status();
  pipe->write.reset();  // the server's alone: its last writer closing it is the end
  uid_t uid = spec.run_as ? spec.run_as->uid : ::getuid();
  if (Status s =
          read_output(key, std::move(pipe->read), (*process)->pid(), uid, std::move(on_output));
      !s.ok()) {
    // Unread, it would block once the pipe is full: fail the start instead.
    (*process)->signal_group(SIGKILL);
    return s;
  }
  return as_process(std::move(process));
}

Result<std::unique_ptr<Process>> SystemProcesses::adopt(pid_t pid, ExitFn on_exit, PipeId output,
                                                        OutputFn on_output) {
  uint64_t key = next_reader_++;
  auto process = ServerProcess::adopt(loop_, pid, on_server_exit(key, std::move(on_exit)), output);
  if (!process.ok() || output.empty() || !on_output) return as_process(std::move(process));
  // Its output from while no daemon read is still in the pipe, and is read now. A server
  // that closed its pipe writes elsewhere: nothing to read, and nothing lost here.
  // Its uid as the kernel has it (the owner of /proc/PID): the state file's word is not
  // needed for a cap.
  struct stat st;
  uid_t uid = ::stat(("/proc/" + std::to_string(pid)).c_str(), &st) == 0 ? st.st_uid : ::getuid();
  if (auto fd = reopen_output_pipe(pid, output); fd.ok())
    (void)read_output(key, std::move(*fd), pid, uid, std::move(on_output));
  return as_process(std::move(process));
}

void SystemProcesses::flush_output() {
  for (auto& [key, entry] : readers_) entry.reader->flush();
}

Status SystemProcesses::read_output(uint64_t key, UniqueFd fd, pid_t pid, uid_t uid,
                                    OutputFn on_output) {
  auto reader = OutputReader::start(
      loop_, std::move(fd),
      [pid, on_output = std::move(on_output)](std::string_view line) { on_output(pid, line); },
      [this, key] { readers_.erase(key); });
  if (!reader.ok()) return reader.status();
  readers_[key] = Reader{std::move(*reader), uid, pid, false};
  return {};
}

Processes::ExitFn SystemProcesses::on_server_exit(uint64_t key, ExitFn on_exit) {
  return [this, key, on_exit = std::move(on_exit)](int64_t status, int term_signal) {
    // The pipe may have ended already (no descendant held it): nothing to count then.
    if (auto it = readers_.find(key); it != readers_.end()) {
      it->second.server_exited = true;
      // A leftover of a uid whose budget is spent waits with the others.
      if (paused_.count(it->second.uid)) it->second.reader->pause();
      cap_leftover_pipes(it->second.uid);
    }
    on_exit(status, term_signal);
  };
}

// Leftovers only: a live server is never made to block in write(2) by the daemon's log
// rate (docs/architecture.md, "Server output").
void SystemProcesses::pause_leftover_output(uid_t uid, Millis pause) {
  if (uid == 0 || uid == ::getuid() || paused_.count(uid)) return;
  for (auto& [key, entry] : readers_)
    if (entry.uid == uid && entry.server_exited) entry.reader->pause();
  auto timer = std::make_unique<Timer>(loop_);
  timer->unref();  // a pause never keeps a stopping daemon alive
  timer->start(pause, [this, uid] {
    for (auto& [key, entry] : readers_)
      if (entry.uid == uid) entry.reader->resume();
    paused_.erase(uid);  // destroys this timer: nothing after
  });
  paused_[uid] = std::move(timer);
}

// Root's servers and the daemon's own user's are the operator's: their leftovers are read
// without a cap, as before. Another user's server could otherwise leave one pipe per crash
// or deploy in a process that never exits (setsid), each a descriptor of the daemon's, until
// it can open none (docs/security.md, "What a server could do"). The oldest goes first: its
// server has been gone longest. Closing it costs the leftover nothing but the log: it keeps
// its own read end (fd >= 100), so its writes fill the pipe and then block, never SIGPIPE.
void SystemProcesses::cap_leftover_pipes(uid_t uid) {
  if (uid == 0 || uid == ::getuid()) return;
  size_t leftovers = 0;
  for (const auto& [key, entry] : readers_)
    if (entry.uid == uid && entry.server_exited) ++leftovers;
  for (auto it = readers_.begin(); leftovers > leftover_pipes_per_uid_ && it != readers_.end();) {
    if (it->second.uid != uid || !it->second.server_exited) {
      ++it;
      continue;
    }
    std::string who = "uid " + std::to_string(uid);
    if (closed_lines_.admit(who))
      log_line("closed the output pipe of server " + std::to_string(it->second.pid) +
               ", which has exited: processes it left hold more than " +
               std::to_string(leftover_pipes_per_uid_) + " output pipes of " + who +
               " that the daemon reads; what they write there is no longer logged");
    it = readers_.erase(it);
    --leftovers;
  }
}

Result<uint64_t> SystemProcesses::start_time(pid_t pid) const {
  return process_start_time(pid);
}

bool SystemProcesses::is_process_of(pid_t pid, pid_t main, uint64_t main_start_time) const {
  return daemon::is_process_of(pid, main, main_start_time);
}

std::string SystemProcesses::comm(pid_t pid) const {
  return process_comm(pid);
}

Result<SpawnSpec> SystemProcesses::command_of(pid_t pid) const {
  const std::string proc = "/proc/" + std::to_string(pid);
  // NUL-separated lists: /proc/PID/cmdline and /proc/PID/environ.
  auto read_list = [](const std::string& path) -> Result<std::vector<std::string>> {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::system_error("read " + path, errno);
    std::vector<std::string> items;
    for (std::string item; std::getline(in, item, '\0');) items.push_back(item);
    return items;
  };
  SpawnSpec spec;
  auto argv = read_list(proc + "/cmdline");
  if (!argv.ok()) return argv.status();
  if (argv->empty()) return Status::error(proc + "/cmdline: empty (a zombie or a kernel thread)");
  spec.argv = std::move(*argv);
  auto env = read_list(proc + "/environ");
  if (!env.ok()) return env.status();
  spec.env = std::move(*env);
  std::error_code ec;
  spec.cwd = std::filesystem::read_symlink(proc + "/cwd", ec).string();
  if (ec) return Status::error("read " + proc + "/cwd: " + ec.message());
  return spec;
}

bool SystemProcesses::group_alive(pid_t group) const {
  return ::kill(-group, 0) == 0;
}

void SystemProcesses::signal_group(pid_t group, int signum) {
  ::kill(-group, signum);
}

void SystemProcesses::signal_strayed(pid_t pid, pid_t session, int signum) {
  if (pid > 0 && ::getsid(pid) == session && ::getpgid(pid) != session) ::kill(pid, signum);
}

Result<std::unique_ptr<Notifier>> SystemProcesses::open_notify(
    const std::string& address, uid_t uid, int fd, NotifySocket::OnMessage on_message,
    NotifySocket::OnRejected on_rejected) {
  if (fd >= 0)
    return as_notifier(
        NotifySocket::adopt(loop_, fd, address, std::move(on_message), std::move(on_rejected)));
  return as_notifier(
      NotifySocket::open(loop_, address, uid, std::move(on_message), std::move(on_rejected)));
}

Result<UniqueFd> SystemProcesses::copy_fd(pid_t pid, int target) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return Status::system_error("pidfd_open", errno);
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), target, 0)));
  if (!fd) {
    int err = errno;
    // What the errno means here (pidfd_getfd(2)), so that the event says what to do.
    std::string why = err == EPERM   ? " (the kernel refuses: the daemon needs root or ptrace "
                                       "rights over the server)"
                      : err == ESRCH ? " (the server has exited meanwhile)"
                      : err == EBADF ? " (the server no longer has that fd open)"
                                     : "";
    return Status::system_error("pidfd_getfd of its fd " + std::to_string(target) + why, err);
  }
  return fd;
}

Result<std::string> SystemProcesses::listening_resource(int fd) const {
  int accepting = 0;
  socklen_t len = sizeof accepting;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting)
    return Status::error("not a listening socket");
  // Its address reads the same in a namespace of the server's own, where no client of ours
  // reaches it (network_namespace.h).
  auto ours = in_daemon_network_namespace(fd);
  if (!ours.ok()) return ours.status();
  if (!*ours)
    return Status::error(
        "a socket of another network namespace than the daemon's (no client reaches it)");
  return resource_of_socket(fd);
}

}  // namespace serverswap::daemon
