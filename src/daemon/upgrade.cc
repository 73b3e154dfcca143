#include "daemon/upgrade.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "base/unique_fd.h"

extern char** environ;

namespace serverswap::daemon {

Result<std::string> binary_version(const std::string& path, Millis timeout) {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) return Status::system_error("pipe", errno);
  UniqueFd read_end(ends[0]), write_end(ends[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::string arg0 = path, flag = "--version";
  char* argv[] = {arg0.data(), flag.data(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawn(&pid, path.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return Status::system_error("run " + path + " --version", rc);
  write_end.reset();
  std::string output;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    pollfd p{read_end.get(), POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return Status::error(path + " --version did not answer within " + format_duration(timeout));
    }
    char buf[512];
    ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || output.size() > 4096) break;
    output.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Status::error(path + " --version failed");
  std::string line = output.substr(0, output.find('\n'));
  if (!line.starts_with("serverswap "))
    return Status::error(path + " --version answered '" + line + "', not serverswap's version");
  return line;
}

Status exec_keeping(const std::string& path, const std::vector<std::string>& argv,
                    const std::vector<int>& inherited) {
  for (int fd : inherited) ::fcntl(fd, F_SETFD, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(path.c_str(), args.data());
  int err = errno;
  for (int fd : inherited) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return Status::system_error("exec " + path, err);
}

}  // namespace serverswap::daemon
