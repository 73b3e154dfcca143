// Test harness: runs the real serverswap daemon and command in a private directory, with
// bounded, event-driven waits (process exit through pidfd, log lines through a pipe).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/testing/temp_dir.h"
#include "base/unique_fd.h"

namespace serverswap::testing {

using namespace std::chrono_literals;
using Millis = std::chrono::milliseconds;

// A child process with its stdout+stderr captured line by line on a thread.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {});
  ~Child();  // SIGKILLs it if still running
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // Exit status (or 128+signal), or nullopt if it did not exit within `timeout`.
  std::optional<int> wait(Millis timeout);
  // Waits for an output line containing `text`; false on timeout.
  bool wait_for_output(const std::string& text, Millis timeout);
  std::string output();
  void signal(int signum);

 private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd out_;
  std::optional<int> status_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string output_;
  bool output_done_ = false;
  std::thread reader_;
};

// A daemon on a socket in a fresh temporary directory.
class DaemonUnderTest {
 public:
  // `program`: the serverswap binary the daemon runs (servers get it as SERVERSWAP_RELAY).
  explicit DaemonUnderTest(std::vector<std::string> options = {"--takedown-timeout", "5s"},
                           const std::string& program = SERVERSWAP_BIN);
  ~DaemonUnderTest();

  const std::string& dir() const { return dir_.path(); }
  const std::string& socket() const { return socket_; }
  Child& process() { return *daemon_; }

  // `serverswap --socket S COMMAND...`, run to completion (bounded).
  struct Outcome {
    int code = -1;
    std::string output;
  };
  Outcome deploy(const std::vector<std::string>& command, Millis timeout = 30s);
  // Options every deploy() and start_deploy() of this daemon passes before the command, for
  // tests whose different programs share a resource: {"--replace", "*"} lets each take over
  // from any app, as the tool did before apps had names.
  std::vector<std::string> deploy_options;
  // Starts a deploy without waiting (races, deploy mode).
  std::unique_ptr<Child> start_deploy(const std::vector<std::string>& command,
                                      const std::string& program = SERVERSWAP_BIN);
  nlohmann::json status();
  // Address ("127.0.0.1:PORT") of the daemon's socket for `resource`.
  std::string address_of(const std::string& resource);
  int open_fds();
  // Pids of the servers in the status, in generation order.
  std::vector<pid_t> server_pids();

 private:
  TempDir dir_;  // declared first, so removed last: after the daemon has gone
  std::string socket_;
  std::unique_ptr<Child> daemon_;
};

// One `GET /` on a new connection to "127.0.0.1:PORT" (or the port on 127.0.0.1), with a 5 s
// deadline: true when the answer starts "HTTP/1.1 200".
bool http_ok(const std::string& address);
bool http_ok(uint16_t port);
uint16_t port_of(const std::string& address);
// "127.0.0.1:8080" -> {"127.0.0.1", 8080}.
std::pair<std::string, uint16_t> split_address(const std::string& address);

// Polls `done` every few ms until it holds or `timeout` passes; for states that have no
// event to wait on (another process's fd table).
bool eventually(const std::function<bool()>& done, Millis timeout);

// Descriptors open in process `pid`, from /proc.
int open_fds(pid_t pid);
// The lowest count over a short while: connections of commands that just asked the daemon
// something close asynchronously, so a single reading may be one or two high.
int settled_open_fds(pid_t pid);

bool process_exists(pid_t pid);

// `serverswap --socket SOCKET ARGS...` run to completion (bounded): a subcommand
// (`status`, `stop`) or options and a command. Exit code -1 when it did not exit in time.
struct CliRun {
  int code = -1;
  std::string output;
};
CliRun serverswap(const std::string& socket, std::vector<std::string> args, Millis timeout = 30s);
inline CliRun serverswap(const DaemonUnderTest& daemon, std::vector<std::string> args,
                         Millis timeout = 30s) {
  return serverswap(daemon.socket(), std::move(args), timeout);
}

// GET `target` on 127.0.0.1:`port` (5 s deadline per read): the whole response, or "" on a
// socket error.
std::string http_get(uint16_t port, const std::string& target = "/metrics");
// The value of `series` ("name" or "name{labels}", as written) in a Prometheus text
// exposition, or -1 when it is not there.
double metric_value(const std::string& exposition, const std::string& series);

// A port on 127.0.0.1 that was free a moment ago (the kernel's pick), or 0.
uint16_t free_ephemeral_port();
// Whether 127.0.0.1:port can be bound (and listened on) right now.
bool loopback_port_free(uint16_t port);
// A privileged port (below net.ipv4.ip_unprivileged_port_start) of 127.0.0.1 in
// [first, last] that is free now, or 0 (also when no port there is privileged). Tests that
// run side by side (ctest -j) each take a range of their own, so none picks another's port
// between its probe and its bind.
uint16_t free_privileged_port(uint16_t first, uint16_t last);

// Why this test cannot act as a second user (uid 65534 through setpriv) running `program`
// (which, run without arguments, must exit 2: its usage error); empty when it can. Tests
// that need another user GTEST_SKIP with this reason.
std::string why_no_second_user(const std::string& program);

// How many times `needle` occurs in `haystack` (log lines in a daemon's output).
size_t count_of(const std::string& haystack, const std::string& needle);

// The whole content of `path`, as bytes; "" when it cannot be opened or read. Never throws:
// a /proc/PID file of a process that exits while it is read fails with ESRCH, which
// libstdc++'s istreambuf_iterator turns into an exception (a flaky test, seen in CI).
std::string read_file(const std::string& path);

}  // namespace serverswap::testing
