// In-memory fakes of the supervisor's seams (clock.h, processes.h, listeners.h, peer.h), for
// supervisor_test.cc and the simulator. Nothing here touches the kernel or a loop: time
// moves only through FakeClock::fire_next(), a process exits only through
// FakeProcesses::exit(). Single-threaded.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "daemon/core/clock.h"
#include "daemon/core/listeners.h"
#include "daemon/core/peer.h"
#include "daemon/core/processes.h"

namespace serverswap::daemon::testing {

class FakeClock : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override { return now_; }
  std::unique_ptr<Alarm> alarm() override;

  // Timers started and not yet fired or stopped.
  size_t pending() const { return queue_.size(); }
  // Moves time to the earliest pending expiry and fires that timer; false if none is pending.
  bool fire_next();
  // Moves time on by `by`, firing the timers due meanwhile in order.
  void advance(Millis by);
  // Time until the earliest expiry (0 if none).
  Millis next_in() const;

 private:
  friend class FakeAlarm;
  using Key = std::pair<std::chrono::steady_clock::time_point, uint64_t>;  // expiry, start order
  Key schedule(class FakeAlarm* alarm, Millis after);
  void cancel(const Key& key) { queue_.erase(key); }

  std::chrono::steady_clock::time_point now_{std::chrono::hours(1)};
  uint64_t next_seq_ = 0;
  std::map<Key, class FakeAlarm*> queue_;
};

// One fake process as the world sees it (the supervisor holds a FakeProcess handle to it).
struct FakeProcessRecord {
  pid_t pid = 0;
  SpawnSpec spec;
  Process::ExitFn on_exit;
  Processes::OutputFn on_output;  // write() below stands for its output
  bool exited = false;
  std::vector<int> signals;  // every signal sent to it, in order
};

class FakeProcesses : public Processes {
 public:
  // Called after a signal reaches a live process (the world decides what it does).
  std::function<void(pid_t pid, int signum)> on_signal;
  // Set: the next spawn fails with this message (the program is missing).
  std::string fail_next_spawn;

  Result<std::unique_ptr<Process>> spawn(const SpawnSpec& spec, ExitFn on_exit,
                                         const std::vector<int>& inherited,
                                         OutputFn on_output) override;
  Result<std::unique_ptr<Process>> adopt(pid_t pid, ExitFn on_exit, PipeId output,
                                         OutputFn on_output) override;
  // Process `pid` (or what it left behind) writes `line` on its stdout.
  void write(pid_t pid, std::string_view line);
  Result<uint64_t> start_time(pid_t pid) const override;
  bool is_process_of(pid_t pid, pid_t main, uint64_t main_start_time) const override;
  std::string comm(pid_t) const override { return "fake"; }
  Result<SpawnSpec> command_of(pid_t) const override {
    return Status::error("the fakes know no command of an unknown process");
  }
  bool group_alive(pid_t group) const override;
  void signal_group(pid_t group, int signum) override;
  void signal_strayed(pid_t, pid_t, int) override {}
  // The i-th of inherited[pid] stands for its descriptor 3 + i (a --listen server's sockets).
  Result<UniqueFd> copy_fd(pid_t pid, int target) override;
  // What make_socket() said the descriptor stands for.
  Result<std::string> listening_resource(int fd) const override;
  Result<std::unique_ptr<Notifier>> open_notify(const std::string& address, uid_t uid, int fd,
                                                NotifySocket::OnMessage on_message,
                                                NotifySocket::OnRejected on_rejected) override;

  // The process exits now: its exit callback runs (as libuv would, from the loop).
  void exit(pid_t pid, int64_t status, int term_signal);
  FakeProcessRecord* find(pid_t pid);
  const std::map<pid_t, std::shared_ptr<FakeProcessRecord>>& all() const { return processes_; }
  size_t alive() const;
  // NOTIFY_SOCKETs opened and not yet closed.
  size_t open_notifiers() const { return notifiers_->size(); }
  // A datagram on the NOTIFY_SOCKET bound at `address`, as NotifySocket would deliver it
  // (the sender already checked); false when no socket is open there.
  bool notify(const std::string& address, const NotifyMessage& message);
  // A real descriptor (of /dev/null, so that closing it is harmless) that stands for a
  // listening socket of `resource` (a canonical name) to listening_resource().
  UniqueFd make_socket(const std::string& resource);
  // Per process: the resources of its descriptors 3, 4, ... (copy_fd).
  std::map<pid_t, std::vector<std::string>> inherited;
  // While set, signals are recorded and dropped, not passed to on_signal: a daemon that
  // dies does not take its servers with it (the supervisor's destructor kills them).
  bool frozen = false;

 private:
  pid_t next_pid_ = 1000;
  std::map<int, std::string> sockets_;  // make_socket's descriptors
  std::map<pid_t, std::shared_ptr<FakeProcessRecord>> processes_;
  // Open NOTIFY_SOCKETs by address: what a datagram sent there reaches.
  std::shared_ptr<std::map<std::string, NotifySocket::OnMessage>> notifiers_ =
      std::make_shared<std::map<std::string, NotifySocket::OnMessage>>();
};

class FakeListeners : public Listeners {
 public:
  // Resources whose bind fails ("address in use").
  std::set<std::string> refuse;

  Result<const Entry*> get_or_bind(const protocol::Resource& resource, std::optional<BindAs> as,
                                   Millis bind_timeout) override;
  // When set, get_or_bind_async answers only when the test calls answer_deferred() (a bind
  // as another user under way), in the order asked.
  bool defer_async = false;
  void get_or_bind_async(const protocol::Resource& resource, std::optional<BindAs> as,
                         BindDone done, Millis bind_timeout) override {
    if (!defer_async) return done(get_or_bind(resource, as, bind_timeout));
    deferred_.push_back([this, resource, as, done, bind_timeout] {
      done(get_or_bind(resource, as, bind_timeout));
    });
  }
  // Answers the oldest deferred request; false when there is none.
  bool answer_deferred() {
    if (deferred_.empty()) return false;
    auto next = std::move(deferred_.front());
    deferred_.erase(deferred_.begin());
    next();
    return true;
  }
  size_t deferred() const { return deferred_.size(); }
  Status adopt(const std::string& name, UniqueFd fd, const std::string& from) override;
  const Entry* find(const std::string& name) const override;
  const std::map<std::string, Entry>& entries() const override { return entries_; }
  void close_when_idle(const std::string& name, Millis grace,
                       std::function<bool(const std::string&)> in_use) override;
  // The daemon died: the sockets it held are gone (servers keep their own copies).
  void forget_all() { entries_.clear(); }

 private:
  std::map<std::string, Entry> entries_;
  std::vector<std::function<void()>> deferred_;
};

// A control connection: remembers what the supervisor sent. Closing it is recorded; the
// world delivers the disconnect later, as the loop would.
class FakePeer : public Peer {
 public:
  FakePeer(uint64_t id, pid_t pid) : id_(id), pid_(pid) {}
  void send(const protocol::Json& message) override;
  void send_with_handle(const protocol::Json& message, uv_stream_t*) override { send(message); }
  void close() override { closed = true; }
  std::vector<UniqueFd> take_received_fds() override { return std::move(fds); }
  uint64_t id() const override { return id_; }
  pid_t peer_pid() const override { return pid_; }
  uid_t peer_uid() const override { return uid; }

  uid_t uid = ::getuid();  // whose process it is: another user's server, when set so
  // Called for each message sent, as it is sent.
  std::function<void(const protocol::Json&)> on_send;
  std::vector<protocol::Json> sent;
  bool closed = false;
  // Descriptors that came with the next line (a resume hello's listening sockets).
  std::vector<UniqueFd> fds;

 private:
  uint64_t id_;
  pid_t pid_;
};

}  // namespace serverswap::daemon::testing
