#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

extern char** environ;

namespace serverswap::testing {

Child::Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (kv.starts_with("SERVERSWAP_")) continue;  // the test decides
    env_strings.push_back(kv);
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 2);
  int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("spawn " + argv[0] + ": " + std::strerror(rc));
  pidfd_.reset(static_cast<int>(syscall(SYS_pidfd_open, pid_, 0)));
  out_ = std::move(read_end);
  reader_ = std::thread([this] {
    char buf[4096];
    for (;;) {
      ssize_t n = read(out_.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      std::lock_guard lock(mutex_);
      output_.append(buf, static_cast<size_t>(n));
      changed_.notify_all();
    }
    std::lock_guard lock(mutex_);
    output_done_ = true;
    changed_.notify_all();
  });
}

Child::~Child() {
  if (!status_) {
    kill(pid_, SIGKILL);
    wait(10s);
  }
  if (reader_.joinable()) reader_.join();
}

std::optional<int> Child::wait(Millis timeout) {
  if (status_) return status_;
  pollfd p{pidfd_.get(), POLLIN, 0};
  int ready;
  do {
    ready = poll(&p, 1, static_cast<int>(timeout.count()));
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) return std::nullopt;
  int raw = 0;
  if (waitpid(pid_, &raw, 0) != pid_) return std::nullopt;
  status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  // Its last output may still be in the pipe; a grandchild that inherited the pipe may keep
  // it open, hence the bound.
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, 2s, [&] { return output_done_; });
  return status_;
}

bool Child::wait_for_output(const std::string& text, Millis timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return output_.find(text) != std::string::npos; });
}

std::string Child::output() {
  std::lock_guard lock(mutex_);
  return output_;
}

void Child::signal(int signum) {
  kill(pid_, signum);
}

bool eventually(const std::function<bool()>& done, Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    usleep(5000);
  }
  return true;
}

bool process_exists(pid_t pid) {
  return kill(pid, 0) == 0 || errno != ESRCH;
}

DaemonUnderTest::DaemonUnderTest(std::vector<std::string> options, const std::string& program) {
  socket_ = dir_.path() + "/control.sock";
  std::vector<std::string> argv = {program, "--socket", socket_};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("daemon");
  daemon_ = std::make_unique<Child>(argv);
  if (!daemon_->wait_for_output("daemon listening on", 10s))
    throw std::runtime_error("daemon did not start: " + daemon_->output());
}

DaemonUnderTest::~DaemonUnderTest() {
  if (!daemon_->wait(0ms)) {
    Child stop({SERVERSWAP_BIN, "--socket", socket_, "stop"});
    stop.wait(30s);
    daemon_->wait(30s);
  }
}

DaemonUnderTest::Outcome DaemonUnderTest::deploy(const std::vector<std::string>& command,
                                                 Millis timeout) {
  auto child = start_deploy(command);
  auto code = child->wait(timeout);
  return {code.value_or(-1), child->output()};
}

std::unique_ptr<Child> DaemonUnderTest::start_deploy(const std::vector<std::string>& command,
                                                     const std::string& program) {
  std::vector<std::string> argv = {program, "--socket", socket_};
  argv.insert(argv.end(), deploy_options.begin(), deploy_options.end());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  return std::make_unique<Child>(argv);
}

nlohmann::json DaemonUnderTest::status() {
  Child child({SERVERSWAP_BIN, "--socket", socket_, "status", "--json"});
  if (child.wait(10s) != 0) throw std::runtime_error("status failed: " + child.output());
  return nlohmann::json::parse(child.output());
}

std::string DaemonUnderTest::address_of(const std::string& resource) {
  nlohmann::json current = status();
  for (const auto& r : current["daemon"]["resources"])
    if (r["name"] == resource) return r["address"];
  return "";
}

std::vector<pid_t> DaemonUnderTest::server_pids() {
  std::vector<pid_t> pids;
  nlohmann::json current = status();
  for (const auto& s : current["servers"]) pids.push_back(s["pid"].get<pid_t>());
  return pids;
}

int DaemonUnderTest::open_fds() {
  return testing::open_fds(daemon_->pid());
}

int open_fds(pid_t pid) {
  int count = 0;
  std::string path = "/proc/" + std::to_string(pid) + "/fd";
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(path)) ++count;
  return count;
}

int settled_open_fds(pid_t pid) {
  int lowest = open_fds(pid);
  eventually([&] { return (lowest = std::min(lowest, open_fds(pid))), false; }, 300ms);
  return lowest;
}

bool http_ok(uint16_t port) {
  return http_ok("127.0.0.1:" + std::to_string(port));
}

uint16_t port_of(const std::string& address) {
  return static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

std::pair<std::string, uint16_t> split_address(const std::string& address) {
  return {address.substr(0, address.rfind(':')), port_of(address)};
}

bool http_ok(const std::string& address) {
  size_t colon = address.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_of(address));
  if (inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr) != 1) return false;
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval tv{5, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return false;
  const char request[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  if (write(fd.get(), request, sizeof request - 1) < 0) return false;
  char buf[512];
  ssize_t n = read(fd.get(), buf, sizeof buf);
  return n > 12 && std::string(buf, 12) == "HTTP/1.1 200";
}

CliRun serverswap(const std::string& socket, std::vector<std::string> args, Millis timeout) {
  args.insert(args.begin(), {SERVERSWAP_BIN, "--socket", socket});
  Child child(args);
  auto code = child.wait(timeout);
  return {code.value_or(-1), child.output()};
}

std::string http_get(uint16_t port, const std::string& target) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval timeout{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return "";
  // One request per connection, read to EOF: a keep-alive server (hello_server) closes it.
  std::string request =
      "GET " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  if (::write(fd.get(), request.data(), request.size()) != ssize_t(request.size())) return "";
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) > 0;) response.append(buf, size_t(n));
  return response;
}

double metric_value(const std::string& exposition, const std::string& series) {
  size_t at = exposition.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(exposition.substr(at + series.size() + 2));
}

uint16_t free_ephemeral_port() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return 0;
  return ntohs(addr.sin_port);
}

bool loopback_port_free(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
         ::listen(fd.get(), 1) == 0;
}

uint16_t free_privileged_port(uint16_t first, uint16_t last) {
  int start = 1024;
  std::ifstream("/proc/sys/net/ipv4/ip_unprivileged_port_start") >> start;
  if (start <= last) return 0;
  for (uint16_t port = first; port <= last; ++port)
    if (loopback_port_free(port)) return port;
  return 0;
}

std::string why_no_second_user(const std::string& program) {
  const char* setpriv = "/usr/bin/setpriv";
  if (getuid() != 0) return "needs root to act as another user";
  if (access(setpriv, X_OK) != 0) return "needs setpriv to act as another user";
  Child probe({setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", program});
  if (probe.wait(10s) != 2) return "uid 65534 cannot run " + program;
  return "";
}

size_t count_of(const std::string& haystack, const std::string& needle) {
  size_t count = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1))
    ++count;
  return count;
}

std::string read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string content;
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      content.clear();
      break;
    }
    if (n == 0) break;
    content.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return content;
}

}  // namespace serverswap::testing
