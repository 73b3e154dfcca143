#include "daemon/process/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "base/unique_fd.h"
#include "daemon/process/working_directory.h"

namespace serverswap::daemon {

struct ServerProcess::Block {
  uv_process_t handle;
  ExitFn on_exit;
  bool exited = false;
  // Adopted servers: a pidfd polled for their exit instead of `handle`.
  bool adopted = false;
  pid_t pid = 0;
  uv_poll_t poll;
  UniqueFd pidfd;
};

Result<std::unique_ptr<ServerProcess>> ServerProcess::spawn(uv_loop_t* loop, const SpawnSpec& spec,
                                                            ExitFn on_exit,
                                                            const std::vector<int>& inherited,
                                                            const OutputPipe* output) {
  if (spec.argv.empty()) return Status::error("spawn: empty command");
  std::vector<char*> args, env;
  for (const auto& a : spec.argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : spec.env) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);

  // libuv dup2()s each container onto its index in the child, so inherited sockets land at
  // 3, 4, ... without the close-on-exec flag; it resets O_NONBLOCK only on fds 0-2.
  std::vector<uv_stdio_container_t> stdio(3 + inherited.size());
  stdio[0].flags = UV_IGNORE;  // /dev/null: a server does not read the daemon's terminal
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = output ? output->write.get() : 1;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = output ? output->write.get() : 2;
  for (size_t i = 0; i < inherited.size(); ++i) {
    stdio[3 + i].flags = UV_INHERIT_FD;
    stdio[3 + i].data.fd = inherited[i];
  }

  // Opened and checked here, entered by the child through its descriptor: the directory
  // recorded is the one it runs in (working_directory.h).
  auto dir = open_working_directory(spec, static_cast<int>(stdio.size()));
  if (!dir.ok()) return dir.status();
  std::string chdir_path = dir->chdir_path();

  uv_process_options_t options{};
  options.file = args[0];
  options.args = args.data();
  options.env = env.data();
  options.cwd = chdir_path.c_str();
  options.flags = UV_PROCESS_DETACHED;  // setsid: its own process group, no terminal signals
  if (spec.run_as) {
    // libuv also drops the supplementary groups (setgroups(0, NULL)) before setgid/setuid.
    options.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
    options.uid = spec.run_as->uid;
    options.gid = spec.run_as->gid;
  }
  options.stdio_count = static_cast<int>(stdio.size());
  options.stdio = stdio.data();
  options.exit_cb = [](uv_process_t* p, int64_t status, int term_signal) {
    auto* block = static_cast<Block*>(p->data);
    block->exited = true;
    block->on_exit(status, term_signal);  // may destroy the owner; touch nothing after
  };

  // The read end the child keeps (output_pipe.h): a copy without close-on-exec, which only
  // this fork inherits (the loop thread is the only one that forks), closed again below.
  // An open file description of its own (opened again through /proc, not dup'ed): a flag
  // the server sets on it (clearing O_NONBLOCK) must not reach the daemon's read end.
  UniqueFd kept;
  if (output) {
    std::string self = "/proc/self/fd/" + std::to_string(output->read.get());
    UniqueFd opened(::open(self.c_str(), O_RDONLY | O_CLOEXEC));
    if (!opened) return Status::system_error("open " + self + " (a server's output pipe)", errno);
    kept = UniqueFd(::fcntl(opened.get(), F_DUPFD, 100));
    if (!kept) return Status::system_error("dup of a server's output pipe", errno);
  }

  auto* block = new Block;
  block->on_exit = std::move(on_exit);
  block->handle.data = block;
  int rc = uv_spawn(loop, &block->handle, &options);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&block->handle),
             [](uv_handle_t* h) { delete static_cast<Block*>(h->data); });
    return Status::error("start " + spec.argv[0] + ": " + uv_strerror(rc));
  }
  std::unique_ptr<ServerProcess> process(new ServerProcess(block));
  process->pid_ = block->handle.pid;
  if (output) process->output_ = output->id;
  process->directory_ = std::move(dir->physical);
  return process;
}

Result<std::unique_ptr<ServerProcess>> ServerProcess::adopt(uv_loop_t* loop, pid_t pid,
                                                            ExitFn on_exit, PipeId output) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return Status::system_error("pidfd_open " + std::to_string(pid), errno);
  ::fcntl(pidfd.get(), F_SETFD, FD_CLOEXEC);
  auto* block = new Block;
  block->adopted = true;
  block->pid = pid;
  block->on_exit = std::move(on_exit);
  block->pidfd = std::move(pidfd);
  uv_poll_init(loop, &block->poll, block->pidfd.get());
  block->poll.data = block;
  uv_poll_start(&block->poll, UV_READABLE, [](uv_poll_t* p, int, int) {
    auto* self = static_cast<Block*>(p->data);
    uv_poll_stop(p);
    int raw = 0;
    int64_t status = -1;  // not our child: its parent has the status
    int term_signal = 0;
    if (::waitpid(self->pid, &raw, WNOHANG) == self->pid) {
      status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 0;
      term_signal = WIFSIGNALED(raw) ? WTERMSIG(raw) : 0;
    }
    self->exited = true;
    self->on_exit(status, term_signal);  // may destroy the owner; touch nothing after
  });
  std::unique_ptr<ServerProcess> process(new ServerProcess(block));
  process->pid_ = pid;
  process->output_ = output;
  return process;
}

ServerProcess::~ServerProcess() {
  if (block_->adopted) {
    // The pidfd closes with the block, after libuv has let go of the poll handle.
    uv_close(reinterpret_cast<uv_handle_t*>(&block_->poll),
             [](uv_handle_t* h) { delete static_cast<Block*>(h->data); });
    return;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&block_->handle),
           [](uv_handle_t* h) { delete static_cast<Block*>(h->data); });
}

bool ServerProcess::exited() const {
  return block_->exited;
}

void ServerProcess::signal_group(int signum) const {
  if (::kill(-pid_, signum) != 0 && errno == ESRCH && !block_->exited) ::kill(pid_, signum);
}

Result<int> parse_signal(const std::string& text) {
  int number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec == std::errc() && end == text.data() + text.size() && number > 0 && number < NSIG)
    return number;
  std::string name = text.starts_with("SIG") ? text.substr(3) : text;
  for (int s = 1; s < NSIG; ++s) {
    const char* abbrev = sigabbrev_np(s);
    if (abbrev && name == abbrev) return s;
  }
  return Status::error("unknown signal '" + text + "' (expected e.g. SIGTERM, QUIT, 15)");
}

std::string signal_name(int signum) {
  const char* abbrev = sigabbrev_np(signum);
  return abbrev ? std::string("SIG") + abbrev : std::to_string(signum);
}

}  // namespace serverswap::daemon
