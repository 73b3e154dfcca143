#include "daemon/testing/fake_seams.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <optional>

namespace serverswap::daemon::testing {

// ---- FakeClock ---------------------------------------------------------------------------

class FakeAlarm : public Alarm {
 public:
  explicit FakeAlarm(FakeClock& clock) : clock_(clock) {}
  ~FakeAlarm() override { stop(); }
  void start(Millis after, std::function<void()> fire) override {
    stop();
    fire_ = std::move(fire);
    key_ = clock_.schedule(this, after);
  }
  void stop() override {
    if (key_) clock_.cancel(*key_);
    key_.reset();
  }
  // Called by the clock, the alarm already out of its queue. `fire` may destroy this.
  void fired() {
    key_.reset();
    auto fire = fire_;
    fire();
  }

 private:
  FakeClock& clock_;
  std::function<void()> fire_;
  std::optional<FakeClock::Key> key_;
};

std::unique_ptr<Alarm> FakeClock::alarm() {
  return std::make_unique<FakeAlarm>(*this);
}

FakeClock::Key FakeClock::schedule(FakeAlarm* alarm, Millis after) {
  Key key{now_ + std::max(after, Millis(0)), next_seq_++};
  queue_[key] = alarm;
  return key;
}

bool FakeClock::fire_next() {
  if (queue_.empty()) return false;
  auto first = queue_.begin();
  now_ = std::max(now_, first->first.first);
  FakeAlarm* alarm = first->second;
  queue_.erase(first);
  alarm->fired();
  return true;
}

void FakeClock::advance(Millis by) {
  auto until = now_ + by;
  while (!queue_.empty() && queue_.begin()->first.first <= until) fire_next();
  now_ = std::max(now_, until);
}

Millis FakeClock::next_in() const {
  if (queue_.empty()) return Millis(0);
  return std::chrono::duration_cast<Millis>(queue_.begin()->first.first - now_);
}

// ---- FakeProcesses -----------------------------------------------------------------------

namespace {

class FakeProcess : public Process {
 public:
  FakeProcess(std::shared_ptr<FakeProcessRecord> record, FakeProcesses& all)
      : record_(std::move(record)), all_(all) {}
  pid_t pid() const override { return record_->pid; }
  bool exited() const override { return record_->exited; }
  void signal_group(int signum) const override { all_.signal_group(record_->pid, signum); }

 private:
  std::shared_ptr<FakeProcessRecord> record_;
  FakeProcesses& all_;
};

class FakeNotifier : public Notifier {
 public:
  using Open = std::map<std::string, NotifySocket::OnMessage>;
  FakeNotifier(std::string address, NotifySocket::OnMessage on_message, std::shared_ptr<Open> open)
      : address_(std::move(address)), open_(std::move(open)) {
    (*open_)[address_] = std::move(on_message);
  }
  ~FakeNotifier() override { open_->erase(address_); }
  const std::string& address() const override { return address_; }
  int fd() const override { return -1; }
  void accept_sender(pid_t, uid_t) override {}
  void read_pending() override {}

 private:
  std::string address_;
  std::shared_ptr<Open> open_;
};

}  // namespace

Result<std::unique_ptr<Process>> FakeProcesses::spawn(const SpawnSpec& spec, ExitFn on_exit,
                                                      const std::vector<int>&, OutputFn on_output) {
  if (!fail_next_spawn.empty()) {
    std::string why = std::move(fail_next_spawn);
    fail_next_spawn.clear();
    return Status::error(why);
  }
  auto record = std::make_shared<FakeProcessRecord>();
  record->pid = next_pid_++;
  record->spec = spec;
  record->on_exit = std::move(on_exit);
  record->on_output = std::move(on_output);
  processes_[record->pid] = record;
  return std::unique_ptr<Process>(std::make_unique<FakeProcess>(record, *this));
}

Result<std::unique_ptr<Process>> FakeProcesses::adopt(pid_t pid, ExitFn on_exit, PipeId,
                                                      OutputFn on_output) {
  auto it = processes_.find(pid);
  if (it == processes_.end() || it->second->exited) return Status::error("no such process");
  it->second->on_exit = std::move(on_exit);
  it->second->on_output = std::move(on_output);
  return std::unique_ptr<Process>(std::make_unique<FakeProcess>(it->second, *this));
}

void FakeProcesses::write(pid_t pid, std::string_view line) {
  auto it = processes_.find(pid);
  if (it != processes_.end() && it->second->on_output) it->second->on_output(pid, line);
}

Result<uint64_t> FakeProcesses::start_time(pid_t pid) const {
  auto it = processes_.find(pid);
  if (it == processes_.end() || it->second->exited) return Status::error("no such process");
  return static_cast<uint64_t>(pid);
}

bool FakeProcesses::is_process_of(pid_t pid, pid_t main, uint64_t) const {
  auto it = processes_.find(main);
  return pid == main && it != processes_.end() && !it->second->exited;
}

bool FakeProcesses::group_alive(pid_t group) const {
  auto it = processes_.find(group);
  return it != processes_.end() && !it->second->exited;
}

void FakeProcesses::signal_group(pid_t group, int signum) {
  auto it = processes_.find(group);
  if (it == processes_.end() || it->second->exited) return;
  it->second->signals.push_back(signum);
  if (on_signal && !frozen) on_signal(group, signum);
}

Result<std::unique_ptr<Notifier>> FakeProcesses::open_notify(const std::string& address, uid_t, int,
                                                             NotifySocket::OnMessage on_message,
                                                             NotifySocket::OnRejected) {
  if (notifiers_->count(address)) return Status::error("bind " + address + ": Address in use");
  return std::unique_ptr<Notifier>(
      std::make_unique<FakeNotifier>(address, std::move(on_message), notifiers_));
}

Result<UniqueFd> FakeProcesses::copy_fd(pid_t pid, int target) {
  auto it = processes_.find(pid);
  if (it == processes_.end() || it->second->exited)
    return Status::error("pidfd_open: No such process");
  auto fds = inherited.find(pid);
  size_t index = static_cast<size_t>(target - 3);
  if (fds == inherited.end() || target < 3 || index >= fds->second.size())
    return Status::error("pidfd_getfd of its fd " + std::to_string(target) +
                         ": Bad file descriptor");
  return make_socket(fds->second[index]);
}

UniqueFd FakeProcesses::make_socket(const std::string& resource) {
  UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (fd) sockets_[fd.get()] = resource;  // a number reused after a close is registered anew
  return fd;
}

Result<std::string> FakeProcesses::listening_resource(int fd) const {
  auto it = sockets_.find(fd);
  if (it == sockets_.end()) return Status::error("not a listening socket");
  return it->second;
}

bool FakeProcesses::notify(const std::string& address, const NotifyMessage& message) {
  auto it = notifiers_->find(address);
  if (it == notifiers_->end()) return false;
  auto on_message = it->second;  // it may close the socket
  on_message(message);
  return true;
}

void FakeProcesses::exit(pid_t pid, int64_t status, int term_signal) {
  auto it = processes_.find(pid);
  if (it == processes_.end() || it->second->exited) return;
  auto record = it->second;
  record->exited = true;
  if (record->on_exit) {
    auto on_exit = record->on_exit;
    on_exit(status, term_signal);
  }
}

FakeProcessRecord* FakeProcesses::find(pid_t pid) {
  auto it = processes_.find(pid);
  return it == processes_.end() ? nullptr : it->second.get();
}

size_t FakeProcesses::alive() const {
  size_t n = 0;
  for (const auto& [pid, record] : processes_) n += !record->exited;
  return n;
}

// ---- FakeListeners -----------------------------------------------------------------------

Result<const Listeners::Entry*> FakeListeners::get_or_bind(const protocol::Resource& resource,
                                                           std::optional<BindAs> as, Millis) {
  std::string name = resource.name();
  if (auto it = entries_.find(name); it != entries_.end()) return &it->second;
  if (refuse.count(name)) return Status::error("bind " + name + ": Address already in use");
  Entry& entry = entries_[name];
  entry.address = name;
  entry.bound_here = true;
  entry.owner = as ? as->uid : ::getuid();
  return &entry;
}

Status FakeListeners::adopt(const std::string& name, UniqueFd, const std::string&) {
  entries_[name].address = name;
  return {};
}

const Listeners::Entry* FakeListeners::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

// Sockets stay open in the fake: whether an idle one is closed does not change who serves.
void FakeListeners::close_when_idle(const std::string&, Millis,
                                    std::function<bool(const std::string&)>) {}

// ---- FakePeer ----------------------------------------------------------------------------

void FakePeer::send(const protocol::Json& message) {
  sent.push_back(message);
  if (on_send) on_send(message);
}

}  // namespace serverswap::daemon::testing
