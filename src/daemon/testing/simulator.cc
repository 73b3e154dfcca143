#include "daemon/testing/simulator.h"

#include <signal.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>

#include "base/join.h"
#include "base/log.h"
#include "daemon/core/confirm_window.h"
#include "daemon/core/event_kind.h"
#include "daemon/core/supervisor.h"
#include "daemon/testing/fake_seams.h"
#include "protocol/resource.h"

namespace serverswap::daemon::testing {

using protocol::Json;

namespace {

std::string canonical(const std::string& spelled) {
  auto parsed = protocol::parse_resource(spelled);
  return parsed.ok() ? parsed->name() : spelled;
}

// What one server process does, chosen at spawn from the schedule's random stream.
struct Model {
  pid_t pid = 0;
  uint64_t generation = 0;
  // Deploy order (status "deployOrder"): its generation when a deploy started it; a crash
  // restart's is the one of the server it restarts.
  uint64_t rank = 0;
  std::vector<std::string> argv;
  std::string id;
  std::vector<std::string> wants;  // resources it asks for, in order (spelled)
  size_t asked = 0;
  uint64_t peer = 0;
  bool hello_sent = false;
  bool up_message = false;    // promises serverUp (else the settle rule)
  bool subscribes = false;    // onTakedown for each resource
  bool ignores_term = false;  // a takeDown or SIGTERM does not make it exit
  bool will_fail = false;     // sends fail instead of serverUp
  bool up_sent = false;
  bool fail_sent = false;
  // When it said it was up (serverUp, READY=1), for the confirmation window (I6).
  std::optional<std::chrono::steady_clock::time_point> up_sent_at;
  std::optional<std::chrono::steady_clock::time_point> ready_sent_at;
  // When it had settled, as far as the model knows (I6).
  std::optional<std::chrono::steady_clock::time_point> settled_at;
  std::optional<Millis> confirm;  // its deploy's --confirm
  // When it was first handed each resource (canonical name): I6 concerns only what it held
  // before the newer server came up.
  std::map<std::string, std::chrono::steady_clock::time_point> got_at;
  // Up when a daemon restarted: state.json does not record when an up server came up, so the
  // next daemon treats it as past its window (a takeover it had still to make of a resource
  // asked for after it came up happens at once; docs/architecture.md, "The confirmation
  // window"). A server in its window resumes into a new one, which the check does not need.
  bool up_before_restart = false;
  std::set<std::string> accepting;  // canonical names it accepts connections on
  std::set<std::string> taken;      // canonical names it was told to give up
  // Taken from it by the daemon before it came up, without telling it (it did not subscribe):
  // it still accepts there, but was never up there (an older holder serves it).
  std::set<std::string> given_back;
  bool was_up = false;  // the supervisor said it is up
  // When it was last handed a resource (for the settle rule, judged independently).
  std::optional<std::chrono::steady_clock::time_point> ready_at;
  std::optional<std::chrono::steady_clock::time_point> fail_at;
  bool settled = false;  // held what it had asked for, connected, for --settle, at some point
  bool exit_pending = false;
  int64_t exit_status = 0;
  int exit_signal = 0;
  bool exited = false;
  // The full mix (Mix::kFull):
  int worker = -1;  // SERVERSWAP_WORKER
  // The deploy (index) whose release it runs, from SIM_RELEASE in its environment: the
  // request's environment travels with it into crash restarts and restored old copies, as a
  // release's files would.
  int tag = -1;
  bool by_deploy = false;  // started by its deploy (reported to it), not a restart or restore
  bool client = true;  // speaks the protocol; else a --listen program (sd_notify, --ready-after)
  std::vector<std::string> listen;  // its --listen resources (spelled): accepting from spawn
  std::string notify_address;       // its NOTIFY_SOCKET
  bool notifies = false;            // a --listen program that sends READY=1
  bool ready_sent = false;
  std::optional<Millis> ready_after;
  std::chrono::steady_clock::time_point spawned_at;
  bool staggered = false;         // says `serving` on each resource as it is handed it
  std::set<std::string> serving;  // canonical names it said `serving` on
  bool resumes = true;            // resumes after a daemon restart (else left unmanaged)
  bool orphaned = false;  // its daemon died and it has not resumed (a client-library server)

  size_t resource_count() const { return wants.size() + listen.size(); }
};

constexpr Millis kSettle{1000};

// The environment variable that names a server's release (Model::tag).
const std::string kRelease = "SIM_RELEASE=";

struct DeployRecord {
  std::string command;
  std::vector<Json> outcomes;  // deployed / deployFailed
  int workers = 0;             // --workers N
  bool failing = false;        // a roll one of whose workers failed: it is being undone
  bool lost = false;           // in flight when the daemon died: its requester lost the connection
};

// The commands of the full mix: the classic four, workers on :3 (and one plain server on
// :3 beside them), --listen programs on :4 and on :2 (shared with the client library's C
// and D).
struct Command {
  std::vector<std::string> argv;
  std::vector<std::string> listen;
  bool workers = false;
};

struct Action {
  double weight;
  std::function<void()> run;
};

class World {
 public:
  World(uint64_t seed, const SimulatorOptions& options)
      : options_(options), rng_(seed), confirm_rng_(seed ^ 0x9e3779b97f4a7c15ULL) {
    result_.seed = seed;
    result_.classic = options.mix == Mix::kClassic;
    SupervisorOptions so;
    so.socket_path = "sim.sock";
    so.ready_timeout = Millis(5000);
    so.takedown_timeout = Millis(3000);
    so.settle = kSettle;
    so.restart_delay = Millis(100);
    so.restart_delay_max = Millis(1000);
    so.restart_reset = Millis(2000);
    so.observer = [this](const Json& message) { observed(message); };
    processes_.on_signal = [this](pid_t pid, int signum) { signalled(pid, signum); };
    supervisor_options_ = so;
    make_supervisor();
  }

  void make_supervisor() {
    supervisor_ = std::make_unique<Supervisor>(
        SupervisorSeams{clock_, processes_, listeners_}, supervisor_options_,
        [this](uint64_t id) -> Peer* {
          auto it = peers_.find(id);
          return it == peers_.end() || it->second->closed ? nullptr : it->second.get();
        });
  }

  ~World() {
    // The supervisor kills what still runs (a schedule cut short by a violation): the world
    // no longer listens.
    processes_.on_signal = nullptr;
    supervisor_.reset();
  }
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  bool full() const { return options_.mix == Mix::kFull; }

  ScheduleResult run() {
    for (int step = 0; step < options_.max_steps && ok(); ++step)
      if (!take_step(/*drain=*/false)) break;
    drain();
    if (ok()) check_quiet();
    if (ok()) stop_and_check();
    result_.deploys = static_cast<int>(deploys_.size());
    return std::move(result_);
  }

 private:
  bool ok() const { return result_.ok; }

  void violated(const std::string& text) {
    if (!result_.ok) return;
    result_.ok = false;
    result_.violation = text;
  }

  void note(const std::string& text) {
    ++result_.steps;
    if (options_.record_trace) result_.trace.push_back(text);
  }
  // What the supervisor did in response, shown indented under the step.
  void effect(const std::string& text) {
    if (options_.record_trace) result_.trace.push_back("    -> " + text);
  }

  double uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  bool chance(double p) { return uniform() < p; }
  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  // ---- The scheduler ---------------------------------------------------------------------

  // Takes one enabled step at random; false when nothing is enabled.
  bool take_step(bool drain) {
    std::vector<Action> actions;
    // Deploys wait while servers of the previous daemon resume (the Daemon's rule).
    if (!drain && deploy_requests_ < options_.max_deploys && !supervisor_->adopting())
      actions.push_back({3, [this] { deploy(); }});
    if (full() && options_.restarts && !drain && restarts_ < 2 && !supervisor_->adopting()) {
      actions.push_back({0.1, [this] { daemon_restarts(/*upgrade=*/false); }});
      // `serverswap upgrade` waits until no deploy is in flight (Daemon::upgrade_when_quiet).
      if (supervisor_->deploys_in_flight() == 0)
        actions.push_back({0.1, [this] { daemon_restarts(/*upgrade=*/true); }});
    }
    if (full() && supervisor_->adopting())
      actions.push_back({0.3, [this] {
                           note("--adopt-timeout passes");
                           supervisor_->give_up_adoption();
                         }});
    if (!drain && reloads_ < 1 && !had_up_.empty()) actions.push_back({0.3, [this] { reload(); }});
    if (clock_.pending() > 0)
      // Timeouts are seconds, a server's steps milliseconds: timers fire less often.
      actions.push_back({0.5, [this] {
                           note("timer fires after " + std::to_string(clock_.next_in().count()) +
                                " ms");
                           clock_.fire_next();
                         }});
    for (auto& [pid, m] : models_) {
      if (m.exited) continue;
      pid_t p = pid;
      if (m.exit_pending) {
        actions.push_back({2, [this, p] { deliver_exit(p); }});
        continue;
      }
      if (m.orphaned) {
        // Its daemon died: it resumes on a new connection, or keeps serving unmanaged.
        if (m.resumes) actions.push_back({2, [this, p] { resume(p); }});
      } else if (!m.client) {
        if (m.notifies && !m.ready_sent) actions.push_back({2, [this, p] { notify_ready(p); }});
      } else if (!m.hello_sent) {
        actions.push_back({2, [this, p] { hello(p); }});
      } else if (m.asked < m.wants.size()) {
        actions.push_back({2, [this, p] { ready_for(p); }});
      } else if (m.will_fail && !m.fail_sent && !m.up_sent) {
        actions.push_back({1, [this, p] { fail(p); }});
      } else if (m.up_message && !m.will_fail && !m.up_sent) {
        actions.push_back({2, [this, p] { server_up(p); }});
      }
      if (!drain && crashes_ < options_.max_crashes)
        actions.push_back({0.15, [this, p] { crash(p); }});
      if (m.staggered && m.hello_sent && !m.was_up && !m.orphaned)
        for (const auto& r : m.accepting)
          if (!m.serving.count(r) && !m.taken.count(r))
            actions.push_back({1, [this, p, r] { serving(p, r); }});
    }
    for (auto& [id, peer] : peers_)
      if (peer->closed) {
        uint64_t i = id;
        actions.push_back({2, [this, i] { disconnect(i); }});
      }
    if (actions.empty()) return false;
    double total = 0;
    for (const auto& a : actions) total += a.weight;
    double at = uniform() * total;
    size_t chosen = actions.size() - 1;
    for (size_t i = 0; i < actions.size(); ++i) {
      if (at < actions[i].weight) {
        chosen = i;
        break;
      }
      at -= actions[i].weight;
    }
    actions[chosen].run();
    check_accepting();
    return true;
  }

  // No new deploys or crashes: everything in flight runs to its end.
  void drain() {
    draining_ = true;
    for (int step = 0; ok() && take_step(/*drain=*/true); ++step)
      if (step > 20000) return violated("liveness: still busy 20000 steps after the last deploy");
  }

  // ---- Steps -----------------------------------------------------------------------------

  void deploy() {
    ++deploy_requests_;
    if (full()) return deploy_full();
    // Commands: A and B share :1, C holds :1 and :2, D holds :2; a version argument makes a
    // different command of the same resources.
    static const std::vector<std::vector<std::string>> kCommands = {
        {"srv", "A", ":1"}, {"srv", "B", ":1"}, {"srv", "C", ":1", ":2"}, {"srv", "D", ":2"}};
    SpawnSpec spec;
    spec.argv = kCommands[pick(kCommands.size())];
    if (chance(0.5)) spec.argv.push_back("v" + std::to_string(pick(3)));
    spec.cwd = "/srv";
    name_app(spec);
    spec.confirm = draw_confirm();
    start_deploy(spec, "deploy");
  }

  // A deploy's --confirm: not given (the default of how its server comes up), 0, or 200 ms to
  // 2 s. From a stream of its own, so that the other choices of a seed stay what they were.
  std::optional<Millis> draw_confirm() {
    if (!options_.confirm) return Millis(0);
    auto draw = std::uniform_int_distribution<int>(0, 2)(confirm_rng_);
    if (draw == 0) return std::nullopt;
    if (draw == 1) return Millis(0);
    return Millis(100 * std::uniform_int_distribution<int>(2, 20)(confirm_rng_));
  }

  void deploy_full() {
    static const std::vector<Command> kCommands = {
        {{"srv", "A", ":1"}, {}, false},       {{"srv", "B", ":1"}, {}, false},
        {{"srv", "C", ":1", ":2"}, {}, false}, {{"srv", "D", ":2"}, {}, false},
        {{"wrk", "W", ":3"}, {}, true},        {{"wrk", "W", ":3"}, {}, true},
        {{"srv", "X", ":3"}, {}, false},       {{"lsn", "L"}, {":4"}, false},
        {{"lsn", "M"}, {":2"}, false}};
    std::vector<const Command*> allowed;
    for (const auto& c : kCommands)
      if ((options_.workers || (c.argv[1] != "W" && c.argv[1] != "X")) &&
          (options_.listen || c.listen.empty()))
        allowed.push_back(&c);
    const Command& command = *allowed[pick(allowed.size())];
    SpawnSpec spec;
    spec.argv = command.argv;
    if (chance(0.5)) spec.argv.push_back("v" + std::to_string(pick(3)));
    spec.cwd = "/srv";
    for (const auto& r : command.listen) spec.listen.push_back({"", r});
    if (!command.listen.empty() && chance(0.4)) spec.ready_after = Millis(500 * (1 + pick(2)));
    name_app(spec);
    spec.confirm = draw_confirm();
    if (command.workers) {
      spec.workers = 2 + static_cast<int>(pick(2));
      if (chance(0.5)) spec.batch = 1 + static_cast<int>(pick(2));
      if (chance(0.5)) spec.max_surge = 1 + static_cast<int>(pick(2));
    }
    start_deploy(spec, "deploy");
  }

  // Apps: a command's letter names its app ("srv A v1" is a version of A). Most deploys may
  // take over what other apps serve (--replace), as the classic mix's commands always could;
  // the others meet the rule that another app's resource is refused.
  void name_app(SpawnSpec& spec) {
    spec.name = spec.argv[1];
    if (chance(0.8)) spec.replace = {"*"};
  }

  void reload() {
    ++reloads_;
    for (const auto& request : supervisor_->up_requests()) start_deploy(request, "reload");
  }

  void start_deploy(const SpawnSpec& requested, const char* how) {
    size_t index = deploys_.size();
    // Each deploy is a release of its own (a reload too: it counts as the new deploy).
    SpawnSpec spec = requested;
    spec.env = spec.env.edited([&](Environment::List& env) {
      std::erase_if(env, [](const std::string& e) { return e.starts_with(kRelease); });
      env.push_back(kRelease + std::to_string(index));
    });
    std::string command = join(spec.argv, " ");
    if (!spec.replace.empty()) command += " --replace *";
    for (const auto& l : spec.listen) command += " --listen " + l.resource;
    if (spec.ready_after) command += " --ready-after " + std::to_string(spec.ready_after->count());
    if (spec.confirm) command += " --confirm " + std::to_string(spec.confirm->count());
    if (spec.workers) command += " --workers " + std::to_string(*spec.workers);
    if (spec.batch) command += " --batch " + std::to_string(*spec.batch);
    if (spec.max_surge) command += " --max-surge " + std::to_string(*spec.max_surge);
    deploys_.push_back({command, {}, spec.workers.value_or(0)});
    ++requests_of_app_[app_of(spec)];
    note(std::string(how) + " #" + std::to_string(index) + ": " + command);
    if (chance(0.1)) processes_.fail_next_spawn = "spawn failed (sim)";
    in_deploy_ = true;
    deploy_index_ = static_cast<int>(index);
    deploy_rank_ = 0;
    supervisor_->deploy(
        spec, [this, index](const Json& message) { deploy_message(index, message); }, false);
    in_deploy_ = false;
  }

  void hello(pid_t pid) {
    Model& m = models_[pid];
    uint64_t id = next_peer_++;
    auto peer = std::make_unique<FakePeer>(id, pid);
    peer->on_send = [this, pid](const Json& message) { received(pid, message); };
    peers_[id] = std::move(peer);
    m.peer = id;
    m.hello_sent = true;
    // A --listen server holds its sockets from spawn: it settles from its hello.
    if (!m.listen.empty() && m.wants.empty()) m.ready_at = clock_.now();
    note("pid " + std::to_string(pid) + " says hello" + (m.up_message ? " (upMessage)" : ""));
    send(m, protocol::make("hello", {{"protocol", 1}, {"id", m.id}, {"upMessage", m.up_message}}),
         /*first=*/true);
  }

  void ready_for(pid_t pid) {
    Model& m = models_[pid];
    const std::string& resource = m.wants[m.asked++];
    note("pid " + std::to_string(pid) + " readyFor " + resource +
         (m.subscribes ? " (onTakedown)" : ""));
    if (m.subscribes) send(m, protocol::make("onTakedown", resource));
    send(m, protocol::make("readyFor", resource));
  }

  void server_up(pid_t pid) {
    Model& m = models_[pid];
    m.up_sent = true;
    m.up_sent_at = clock_.now();
    note("pid " + std::to_string(pid) + " sends serverUp");
    send(m, protocol::make("serverUp", true));
  }

  void fail(pid_t pid) {
    Model& m = models_[pid];
    m.fail_sent = true;
    m.fail_at = clock_.now();
    note("pid " + std::to_string(pid) + " sends fail");
    // It said `serving` on these (the older holders went down there), then gave up: on its
    // own, as a crash (I1's exception).
    for (const auto& r : m.serving) excused_.insert(r);
    send(m, protocol::make("fail", "sim: bad release"));
  }

  // The daemon dies (SIGKILL) or re-executes itself (`serverswap upgrade`, only once no
  // deploy is in flight), and the new one takes its servers back from state.json: each
  // client-library server resumes on a new connection (or never does, and is left
  // unmanaged at --adopt-timeout); a --listen program's sockets are copied back.
  void daemon_restarts(bool upgrade) {
    ++restarts_;
    note(upgrade ? "the daemon upgrades (no deploy in flight)" : "the daemon dies and restarts");
    DaemonState state = supervisor_->record();
    // The daemon's own deploys in flight (a worker rollback's roll) die with it: the next
    // daemon knows nothing of the rollback, and its roll is never completed or undone.
    size_t requested = 0;
    for (const auto& d : deploys_) requested += d.outcomes.empty() && !d.lost;
    if (supervisor_->deploys_in_flight() > requested)
      for (auto& [app, back] : rollbacks_) back.lost = true;
    // A deploy in flight lost its requester's connection with the daemon: no outcome.
    for (auto& d : deploys_)
      if (d.outcomes.empty()) d.lost = true;
    for (const auto& [pid, record] : processes_.all()) record->on_exit = nullptr;
    for (auto& [pid, m] : models_)
      if (really_up(m)) m.up_before_restart = true;
    // Up by the settle rule stays up once its connection is gone with the daemon.
    for (auto& [pid, m] : models_)
      if (!m.up_message && really_up(m)) {
        if (!m.settled) m.settled_at = m.ready_at ? *m.ready_at + kSettle : clock_.now();
        m.settled = true;
      }
    processes_.frozen = true;  // the dying daemon's destructor kills nothing
    supervisor_.reset();
    processes_.frozen = false;
    peers_.clear();
    // Dying, it took its listening sockets along; an upgrade passes them on (state.sockets).
    if (!upgrade) listeners_.forget_all();
    for (auto& [pid, m] : models_) {
      m.peer = 0;
      if (!m.exited && m.client && m.hello_sent) m.orphaned = true;
      if (!m.exited && !m.listen.empty()) {
        std::vector<std::string> names;
        for (const auto& l : m.listen) names.push_back(canonical(l));
        processes_.inherited[pid] = names;
      }
    }
    make_supervisor();
    supervisor_->adopt(state);
  }

  void resume(pid_t pid) {
    Model& m = models_[pid];
    m.orphaned = false;
    uint64_t id = next_peer_++;
    auto peer = std::make_unique<FakePeer>(id, pid);
    peer->on_send = [this, pid](const Json& message) { received(pid, message); };
    Json holding = Json::array();
    for (const auto& r : m.accepting) {
      if (m.taken.count(r)) continue;
      // Its --listen sockets are the daemon's already (copied back at adoption).
      bool inherited = false;
      for (const auto& l : m.listen) inherited = inherited || canonical(l) == r;
      if (inherited) continue;
      holding.push_back(r);
      peer->fds.push_back(processes_.make_socket(r));
    }
    Json subscribed = m.subscribes ? holding : Json::array();
    bool up = m.was_up || m.up_sent;
    peers_[id] = std::move(peer);
    m.peer = id;
    note("pid " + std::to_string(pid) + " resumes holding " + holding.dump() +
         (up ? " (up)" : " (starting)"));
    send(m,
         protocol::make(
             "hello", {{"protocol", 1},
                       {"id", m.id},
                       {"upMessage", m.up_message},
                       {"resume", {{"holding", holding}, {"onTakedown", subscribed}, {"up", up}}}}),
         /*first=*/true);
  }

  void notify_ready(pid_t pid) {
    Model& m = models_[pid];
    m.ready_sent = true;
    m.ready_sent_at = clock_.now();
    note("pid " + std::to_string(pid) + " sends READY=1 on NOTIFY_SOCKET");
    NotifyMessage message;
    message.sender = pid;
    message.fields = {{"READY", "1"}};
    processes_.notify(m.notify_address, message);
  }

  void serving(pid_t pid, const std::string& resource) {
    Model& m = models_[pid];
    m.serving.insert(resource);
    note("pid " + std::to_string(pid) + " says serving " + resource);
    send(m, protocol::make("serving", resource));
  }

  void crash(pid_t pid) {
    ++crashes_;
    Model& m = models_[pid];
    note("pid " + std::to_string(pid) + " crashes");
    std::set<std::string> lost = m.accepting;
    m.accepting.clear();
    // A resource whose last acceptor crashed on its own is excused from I1 until served again.
    for (const auto& r : lost)
      if (up_acceptors(r) == 0) excused_.insert(r);
    m.exit_pending = true;
    m.exit_status = 1;
    deliver_exit(pid);
  }

  void deliver_exit(pid_t pid) {
    Model& m = models_[pid];
    note("pid " + std::to_string(pid) + " exits" +
         (m.exit_signal ? " (signal " + std::to_string(m.exit_signal) + ")" : ""));
    m.exit_pending = false;
    m.exited = true;
    // An exit with an error status that nobody asked for (a client giving up after a refused
    // readyFor) is a crash: its resources are excused from I1 as crash() excuses them.
    std::set<std::string> lost = std::exchange(m.accepting, {});
    if (!m.exit_signal && m.exit_status != 0)
      for (const auto& r : lost)
        if (up_acceptors(r) == 0) excused_.insert(r);
    processes_.exit(pid, m.exit_signal ? 0 : m.exit_status, m.exit_signal);
  }

  void disconnect(uint64_t id) {
    note("connection " + std::to_string(id) + " closes");
    auto it = peers_.find(id);
    std::unique_ptr<FakePeer> peer = std::move(it->second);
    peers_.erase(it);
    supervisor_->disconnected(*peer);
  }

  void send(Model& m, const Json& message, bool first = false) {
    auto it = peers_.find(m.peer);
    if (it == peers_.end() || it->second->closed) return;
    auto decoded = protocol::decode(protocol::encode(message));
    if (!decoded.ok()) return violated("sim: could not encode " + message.dump());
    if (first)
      supervisor_->hello(*it->second, *decoded);
    else
      supervisor_->server_message(*it->second, *decoded);
  }

  // ---- What the supervisor does to the world ---------------------------------------------

  void spawned(pid_t pid) {
    FakeProcessRecord* record = processes_.find(pid);
    Model m;
    m.pid = pid;
    for (const auto& e : record->spec.env)
      if (e.starts_with("SERVERSWAP_ID=")) m.id = e.substr(14);
    m.generation = std::stoull(m.id.substr(0, m.id.find('.')));
    m.argv = record->spec.argv;
    m.rank = m.generation;
    for (const auto& s : supervisor_->status())
      if (s["pid"].get<pid_t>() == pid) m.rank = s["deployOrder"].get<uint64_t>();
    for (const auto& e : record->spec.env)
      if (e.starts_with(kRelease)) m.tag = std::stoi(e.substr(kRelease.size()));
    if (!rolling_back_.empty() && app_of(record->spec) == rolling_back_) {
      rollbacks_[rolling_back_] = {m.tag, requests_of_app_[rolling_back_], pid,
                                   rolling_back_workers_};
      rolling_back_.clear();
    }
    // A deploy's own server ranks by its generation, and every worker of a roll by the
    // generation of its first worker (one deploy); only crash restarts inherit. (A roll that
    // fails at once may start old versions again meanwhile: they run an older release.)
    bool of_deploy = in_deploy_ && m.tag == deploy_index_;
    if (of_deploy && deploy_rank_ == 0) deploy_rank_ = m.generation;
    if (of_deploy && m.rank != deploy_rank_)
      violated("sim: deploy started pid " + std::to_string(pid) + " with another deploy order");
    for (const auto& a : record->spec.argv)
      if (a.starts_with(":")) m.wants.push_back(a);
    m.confirm = record->spec.confirm;
    m.up_message = chance(0.6);
    m.subscribes = chance(0.6);
    // In the drain, new servers (crash restarts) behave, so that the schedule comes to rest.
    m.ignores_term = !draining_ && chance(0.15);
    m.will_fail = !draining_ && chance(0.1);
    if (full()) {
      m.spawned_at = clock_.now();
      for (const auto& e : record->spec.env) {
        if (e.starts_with("SERVERSWAP_WORKER=")) m.worker = std::stoi(e.substr(18));
        if (e.starts_with("NOTIFY_SOCKET=")) m.notify_address = e.substr(14);
      }
      for (const auto& l : record->spec.listen) {
        m.listen.push_back(l.resource);
        m.accepting.insert(canonical(l.resource));  // it accepts on them from the start
        m.got_at.emplace(canonical(l.resource), clock_.now());
      }
      m.ready_after = record->spec.ready_after;
      if (!m.listen.empty()) {
        m.client = chance(0.3);
        m.notifies = draining_ || chance(0.7);
      }
      m.staggered = options_.serving && m.wants.size() > 1 && chance(0.5);
      m.resumes = chance(0.8);
    }
    models_[pid] = m;
  }

  void received(pid_t pid, const Json& message) {
    Model& m = models_[pid];
    std::string name = message.begin().key();
    if (name == "resourceReady") {
      m.accepting.insert(canonical(message.begin().value().get<std::string>()));
      m.got_at.emplace(canonical(message.begin().value().get<std::string>()), clock_.now());
      // The settle rule counts from the last resource it was given; once settled, it is up.
      if (m.ready_at && clock_.now() >= *m.ready_at + kSettle && !m.settled) {
        m.settled = true;
        m.settled_at = *m.ready_at + kSettle;
      }
      m.ready_at = clock_.now();
    } else if (name == "takeDown") {
      std::string r = canonical(message.begin().value().get<std::string>());
      taken_down(m, {r}, "takeDown");
      m.accepting.erase(r);
      m.taken.insert(r);
      bool all = m.taken.size() >= m.resource_count();
      if (all && !m.ignores_term && !m.exit_pending) {
        m.exit_pending = true;
        m.exit_status = 0;
      }
    } else if (name == "error") {
      // A refused readyFor: a real client gives up and exits -- on its own, as a crash, where
      // it said `serving` (I1's exception, as for `fail`).
      if (!m.exit_pending && !m.was_up) {
        m.exit_pending = true;
        m.exit_status = 1;
        for (const auto& r : m.serving) excused_.insert(r);
      }
    }
  }

  void signalled(pid_t pid, int signum) {
    Model& m = models_[pid];
    if (m.exited) return;
    taken_down(m, m.accepting, "signal " + std::to_string(signum));
    m.taken.insert(m.accepting.begin(), m.accepting.end());
    if (signum == SIGKILL) {
      m.accepting.clear();
      m.exit_pending = true;
      m.exit_signal = SIGKILL;
      return;
    }
    if (m.ignores_term) return;
    m.accepting.clear();
    m.exit_pending = true;
    m.exit_signal = signum;
  }

  void spawn_check() {
    for (const auto& [pid, record] : processes_.all())
      if (!models_.count(pid)) spawned(pid);
  }

  void observed(const Json& message) {
    spawn_check();
    if (message.begin().key() != "event") return;
    const Json& event = message.begin().value();
    std::string kind = event.value("kind", "");
    pid_t pid = event.value("pid", 0);
    if (options_.record_trace) effect(event.value("text", ""));
    // A worker of a roll failed: the roll is undone (I2's exception above). Not a crash
    // restart or restored old copy of its release: that undoes no roll.
    if (kind == event_kind_name(EventKind::kFailed) && models_.count(pid) &&
        models_[pid].worker >= 0 && models_[pid].tag >= 0 && models_[pid].by_deploy)
      deploys_[models_[pid].tag].failing = true;
    // So is an automatic rollback's roll: its workers are those of the release it went back
    // to started since (the model has no deploy record of its own for it).
    if (kind == event_kind_name(EventKind::kFailed) && models_.count(pid))
      if (RollbackSeen* back = rollback_worker(models_[pid])) back->failing = true;
    if (kind == event_kind_name(EventKind::kRolledBack) && models_.count(pid)) {
      rolling_back_ = models_[pid].argv.at(1), ++result_.rollbacks;  // the app (name_app)
      // A worker app is rolled back as it runs: as many workers as the crashing release's.
      int crashed = models_[pid].tag;
      rolling_back_workers_ = crashed >= 0 ? deploys_[crashed].workers : 0;
    }
    if (kind == event_kind_name(EventKind::kUp) && models_.count(pid)) {
      Model& m = models_[pid];
      m.was_up = true;
      // What the daemon took from it before it came up without telling it (no onTakedown;
      // a server kept up on what it took over with `serving`, which gives back the rest): it
      // is not up there, and an older holder still serves it.
      for (const auto& s : supervisor_->status())
        if (s["pid"] == pid)
          for (const auto& r : s["resources"])
            if (r["takenDown"].get<bool>()) m.given_back.insert(r["name"].get<std::string>());
      for (const auto& r : m.accepting)
        if (!m.taken.count(r) && !m.given_back.count(r)) had_up_.insert(r);
    }
  }

  // ---- Invariants ------------------------------------------------------------------------

  // Up by the protocol's rules, judged from what the server did, not from what the
  // supervisor said: it sent serverUp, or (without upMessage) it has held everything it asked
  // for so far, connected, for --settle.
  bool really_up(const Model& m) const {
    if (m.exited) return false;
    // --ready-after: alive that long is up, whatever else it does (the weaker rule).
    if (m.ready_after && clock_.now() >= m.spawned_at + *m.ready_after) return true;
    if (!m.client) return m.ready_sent;
    if (m.up_message) return m.up_sent;
    auto peer = peers_.find(m.peer);
    bool connected = peer != peers_.end() && !peer->second->closed;
    if (m.settled) return true;
    if (!m.ready_at || !connected) return false;
    auto settled = *m.ready_at + kSettle;
    // A fail after it had settled is ignored (it was up by then).
    return clock_.now() >= settled && (!m.fail_at || *m.fail_at >= settled);
  }

  // I6: up (really_up) and alive for its confirmation window since, judged from what it did:
  // by some way it came up, that way's window (unless its deploy gave --confirm) has passed.
  // Any way counts, not only the first: the daemon may not have heard the first (a READY=1
  // sent while no daemon listened), and its moment is never earlier than the model's (it
  // restarts the window when it takes a server back), so the check never blames the daemon
  // for the model's guess.
  bool window_passed(const Model& m) const { return up_ways(m).passed; }

  // The ways `m` came up that the model can date (at or before now): the earliest, and
  // whether one of them has had its window pass since.
  struct UpWays {
    std::optional<std::chrono::steady_clock::time_point> earliest;
    bool passed = false;
  };
  UpWays up_ways(const Model& m) const {
    UpWays ways;
    if (!really_up(m)) return ways;
    auto now = clock_.now();
    auto consider = [&](std::optional<std::chrono::steady_clock::time_point> when, Readiness kind) {
      if (!when || *when > now) return;
      if (!ways.earliest || *when < *ways.earliest) ways.earliest = when;
      if (now >= *when + confirm_window(m.confirm, kind)) ways.passed = true;
    };
    if (m.ready_after) consider(m.spawned_at + *m.ready_after, Readiness::kReadyAfter);
    if (!m.client) {
      consider(m.ready_sent_at, Readiness::kNotify);
    } else if (m.up_message) {
      consider(m.up_sent_at, Readiness::kServerUp);
    } else {
      consider(m.settled_at, Readiness::kSettled);
      if (m.ready_at) consider(*m.ready_at + kSettle, Readiness::kSettled);
    }
    // Up by a rule the model cannot date: judged by the rule alone (no window to check).
    if (!ways.earliest || m.up_before_restart) ways.passed = true;
    return ways;
  }

  size_t acceptors(const std::string& r) const {
    size_t n = 0;
    for (const auto& [pid, m] : models_) n += !m.exited && m.accepting.count(r);
    return n;
  }

  size_t up_acceptors(const std::string& r) const {
    size_t n = 0;
    for (const auto& [pid, m] : models_)
      n += !m.exited && m.was_up && m.accepting.count(r) && !m.taken.count(r) &&
           !m.given_back.count(r);
    return n;
  }

  // I1, after every step.
  void check_accepting() {
    if (stopping_) return;
    for (const auto& r : had_up_) {
      if (up_acceptors(r) > 0) excused_.erase(r);
      if (acceptors(r) > 0) continue;
      if (!excused_.count(r))
        return violated("I1: " + r + " had an up server and now nobody accepts on it");
    }
  }

  // I2: `m` is being taken down on `resources`.
  void taken_down(const Model& m, const std::set<std::string>& resources, const std::string& how) {
    if (!m.was_up || stopping_) return;
    for (const auto& r : resources) {
      if (m.taken.count(r) || m.given_back.count(r)) continue;
      // A worker of a failed roll goes while an up server of the old version serves (the
      // roll is undone; the resource is never without an up server).
      if (m.worker >= 0 && m.tag >= 0 && deploys_[m.tag].failing && other_up_serves(m, r)) continue;
      if (RollbackSeen* back = rollback_worker(m); back && back->failing && other_up_serves(m, r))
        continue;
      // A newer server up there, or (apps) a newer version of its app that is up: an app's
      // new version replaces the old on everything the old one held.
      bool newer_up = false;
      for (const auto& [pid, other] : models_) {
        if (std::pair(other.rank, other.generation) <= std::pair(m.rank, m.generation) ||
            other.exited)
          continue;
        if ((really_up(other) || other.serving.count(r)) && other.accepting.count(r))
          newer_up = true;
        if (really_up(other) && app_of_model(other) == app_of_model(m) &&
            (m.worker < 0 || other.worker < 0 || other.worker == m.worker)) {
          newer_up = true;
          // The app's new version, up and settled, does not serve r: the app left it (I1's
          // exception: a deliberate move, as when an app's new release listens elsewhere).
          if (!other.accepting.count(r)) excused_.insert(r);
        }
      }
      if (!newer_up)
        return violated(
            "I2: pid " + std::to_string(m.pid) + " (gen " + std::to_string(m.generation) +
            (m.worker >= 0 ? ", worker of deploy #" + std::to_string(m.tag) : "") +
            ") taken down on " + r + " by " + how + " while no newer server holding it is up");
      // I6: and that newer server has stayed alive for its confirmation window (or took the
      // resource over itself with `serving`, the server's own word for that resource).
      // Not a takeover: `m` was handed `r` only after a newer server was up there (that one
      // serves it, and `m` never did alone).
      bool confirmed = false;
      auto got = m.got_at.find(r);
      for (const auto& [pid, other] : models_) {
        if (std::pair(other.rank, other.generation) <= std::pair(m.rank, m.generation) ||
            other.exited)
          continue;
        // Or a newer version of its app past its window that left r (apps: retired after it).
        bool same_app = app_of_model(other) == app_of_model(m) &&
                        (m.worker < 0 || other.worker < 0 || other.worker == m.worker);
        if (!other.accepting.count(r)) {
          if (same_app && up_ways(other).passed) confirmed = true;
          continue;
        }
        UpWays ways = up_ways(other);
        if (other.serving.count(r) || ways.passed ||
            (ways.earliest && got != m.got_at.end() && *ways.earliest <= got->second))
          confirmed = true;
      }
      if (!confirmed)
        return violated("I6: pid " + std::to_string(m.pid) + " (gen " +
                        std::to_string(m.generation) +
                        (m.worker >= 0 ? ", worker of deploy #" + std::to_string(m.tag) : "") +
                        ") taken down on " + r + " by " + how +
                        " while no newer server holding it has passed its --confirm window");
    }
  }

  // The simulator names each app by its command's letter (name_app).
  static std::string app_of_model(const Model& m) { return m.argv.size() > 1 ? m.argv[1] : ""; }

  bool other_up_serves(const Model& m, const std::string& r) const {
    for (const auto& [pid, other] : models_)
      if (pid != m.pid && !other.exited && other.was_up && other.accepting.count(r) &&
          !other.taken.count(r) && other.tag != m.tag)
        return true;
    return false;
  }

  // I4, as each outcome is sent.
  void deploy_message(size_t index, const Json& message) {
    std::string name = message.begin().key();
    if (name == "event" && full()) {
      // Its own server (or a worker of its roll) started: that server runs its release.
      const Json& event = message.begin().value();
      pid_t pid = event.value("pid", 0);
      if (event.value("kind", "") == event_kind_name(EventKind::kSpawned) && models_.count(pid)) {
        Model& m = models_[pid];
        m.by_deploy = true;
        if (m.tag != static_cast<int>(index))
          return violated("sim: deploy #" + std::to_string(index) + " reported starting pid " +
                          std::to_string(pid) + " of release #" + std::to_string(m.tag));
      }
    }
    if (name != "deployed" && name != "deployFailed") return;
    DeployRecord& d = deploys_[index];
    d.outcomes.push_back(message);
    if (options_.record_trace) {
      Json shown = message;  // ids are random (they are credentials): not part of a replay
      shown.begin().value().erase("id");
      effect("deploy #" + std::to_string(index) + ": " + shown.dump());
    }
    if (d.outcomes.size() > 1)
      return violated("I4: deploy #" + std::to_string(index) +
                      " got a second outcome: " + message.dump());
    // A roll that failed or was superseded is undone: its workers that came up may go while
    // another release serves (I2's exception), whether or not one of them failed itself.
    if (name != "deployed" && d.workers > 0) d.failing = true;
    if (name != "deployed") return;
    const Json& body = message.begin().value();
    std::vector<pid_t> pids = {body.value("pid", 0)};
    if (body.contains("workers")) {
      pids = body["workers"].get<std::vector<pid_t>>();
      if (static_cast<int>(pids.size()) != d.workers)
        return violated("I4: deploy #" + std::to_string(index) + " of " +
                        std::to_string(d.workers) + " workers reported deployed with " +
                        std::to_string(pids.size()));
    }
    for (pid_t pid : pids) {
      auto it = models_.find(pid);
      bool serving = it != models_.end() && really_up(it->second) && !it->second.accepting.empty();
      for (const auto& s : supervisor_->status())
        if (s["pid"] == pid && s["state"] != "up") serving = false;
      if (it != models_.end() && !it->second.taken.empty()) serving = false;
      if (!serving)
        return violated("I4: deploy #" + std::to_string(index) + " reported deployed (pid " +
                        std::to_string(pid) + ") but that server is not up and serving");
    }
  }

  // I3 and I4's "exactly one", once quiet.
  void check_quiet() {
    for (size_t i = 0; i < deploys_.size(); ++i)
      if (deploys_[i].outcomes.size() != 1 && !(deploys_[i].lost && deploys_[i].outcomes.empty()))
        return violated("I4: deploy #" + std::to_string(i) + " (" + deploys_[i].command +
                        ") ended with " + std::to_string(deploys_[i].outcomes.size()) +
                        " outcomes");
    std::set<std::string> resources = had_up_;
    for (const auto& [pid, m] : models_)
      for (const auto& r : m.accepting) resources.insert(r);
    // Resources the daemon took from a server that could not be told (no onTakedown): it
    // accepts there beside the newer one while it serves others alone ("Partial takedowns").
    std::set<std::pair<pid_t, std::string>> unheard;
    for (const auto& s : supervisor_->status())
      for (const auto& r : s["resources"])
        if (r["takenDown"].get<bool>())
          unheard.insert({s["pid"].get<pid_t>(), r["name"].get<std::string>()});
    for (const auto& r : resources) {
      std::set<uint64_t> generations;
      for (const auto& [pid, m] : models_)
        if (!m.exited && m.accepting.count(r)) {
          if (unheard.count({pid, r})) {
            ++result_.partial_takedowns;
            continue;
          }
          generations.insert(m.generation);
          if (!m.was_up)
            return violated("I3: quiet, and pid " + std::to_string(pid) + " accepts on " + r +
                            " but is not up");
        }
      if (full() && check_workers(r, unheard)) return;
      if (generations.size() > 1 && !workers_on(r, unheard))
        return violated("I3: quiet, and " + std::to_string(generations.size()) +
                        " generations serve " + r);
      if (generations.empty() && had_up_.count(r) && !excused_.count(r))
        return violated("I3: quiet, and nobody serves " + r + ", which had an up server");
    }
    check_rollbacks();
  }

  struct RollbackSeen;
  // The automatic rollback of a worker app whose roll started worker `m`, or nullptr.
  RollbackSeen* rollback_worker(const Model& m) {
    if (m.worker < 0) return nullptr;
    auto it = rollbacks_.find(m.argv.at(1));
    if (it == rollbacks_.end() || it->second.workers == 0 || m.tag != it->second.release)
      return nullptr;
    // Its roll's workers rank by the roll's deploy order (a restart of an older deploy of the
    // release does not).
    auto first = models_.find(it->second.pid);
    if (first == models_.end() || m.rank != first->second.rank) return nullptr;
    return &it->second;
  }

  // The last automatic rollback of `app` stands: no deploy or reload of the app since, and its
  // deploy did not fail (a roll's worker may come up before another fails; the crash loop of
  // the version that crashed goes on then, for I1 and I3 to judge).
  bool rollback_stands(const std::string& app) {
    auto it = rollbacks_.find(app);
    if (it == rollbacks_.end() || requests_of_app_[app] != it->second.requests_at ||
        it->second.lost)
      return false;
    for (const auto& status : supervisor_->app_status())
      if (status.app == app && status.rolled_back && status.rolled_back->failure) return false;
    return true;
  }

  // I7: after an automatic rollback that came up, and no deploy or reload of the app since,
  // only the release it went back to serves the app once quiet. (One that failed leaves the
  // crash loop of the version that crashed going: that is I1 and I3's to judge.)
  void check_rollbacks() {
    for (const auto& [app, back] : rollbacks_) {
      if (!rollback_stands(app)) continue;
      bool came_up = false;
      for (const auto& [pid, m] : models_)
        if (pid >= back.pid && m.argv.at(1) == app && m.tag == back.release && m.was_up)
          came_up = true;
      if (!came_up) continue;
      for (const auto& [pid, m] : models_)
        if (!m.exited && !m.accepting.empty() && m.argv.at(1) == app && m.tag != back.release)
          return violated("I7: quiet after app " + app + " was rolled back to release " +
                          std::to_string(back.release) + ", and pid " + std::to_string(pid) +
                          " of release " + std::to_string(m.tag) + " accepts");
    }
  }

  // The worker count of an automatic rollback to release `tag` that started a server, with no
  // deploy or reload of its app since; 0 when there is none.
  int rolled_back_workers(int tag) {
    for (const auto& [app, back] : rollbacks_)
      if (back.release == tag && back.workers > 0 && rollback_stands(app)) return back.workers;
    return 0;
  }

  bool workers_on(const std::string& r,
                  const std::set<std::pair<pid_t, std::string>>& unheard) const {
    for (const auto& [pid, m] : models_)
      if (!m.exited && m.accepting.count(r) && !unheard.count({pid, r}) && m.worker >= 0)
        return true;
    return false;
  }

  // I3 with --workers N: the servers on `r` are N workers of one deploy, one per index, of one
  // command. True when violated.
  bool check_workers(const std::string& r, const std::set<std::pair<pid_t, std::string>>& unheard) {
    if (!workers_on(r, unheard)) return false;
    std::set<int> indices;
    std::set<int> tags;
    std::set<std::vector<std::string>> versions;
    size_t count = 0;
    for (const auto& [pid, m] : models_) {
      if (m.exited || !m.accepting.count(r) || unheard.count({pid, r})) continue;
      ++count;
      if (m.worker < 0) {
        violated("I3: quiet, and pid " + std::to_string(pid) + ", no worker, serves " + r +
                 " beside workers");
        return true;
      }
      indices.insert(m.worker);
      tags.insert(m.tag);
      versions.insert(m.argv);
    }
    std::string what = std::to_string(count) + " workers (indices " +
                       std::to_string(indices.size()) + ", deploys " + std::to_string(tags.size()) +
                       ", commands " + std::to_string(versions.size()) + ")";
    // N is the count of the latest of their deploys that was deployed: a roll that failed or
    // was superseded later gives each index its old version back, so its own count does not
    // hold.
    int tag = *tags.rbegin();
    int done = -1;
    for (int t : tags)
      if (t >= 0 && !deploys_[t].outcomes.empty() && deploys_[t].outcomes[0].contains("deployed"))
        done = t;
    int expected = done >= 0 ? deploys_[done].workers : tag >= 0 ? deploys_[tag].workers : -1;
    // An automatic rollback to their release, with no deploy of the app since: its count.
    if (tags.size() == 1 && tag >= 0)
      if (int rolled = rolled_back_workers(tag); rolled > 0) expected = rolled;
    // A failed roll that had nothing to replace keeps the workers that came up.
    bool failed_first = done < 0 && tag >= 0 && !deploys_[tag].outcomes.empty() &&
                        deploys_[tag].outcomes[0].contains("deployFailed") &&
                        static_cast<int>(count) < expected;
    // A failed roll (not superseded) gives every index its old version back, or keeps its
    // new workers where nothing old serves: its workers never serve beside another release.
    for (int t : tags) {
      if (t < 0 || tags.size() == 1 || deploys_[t].outcomes.empty()) continue;
      const Json& outcome = deploys_[t].outcomes[0];
      if (outcome.contains("deployFailed") &&
          !outcome["deployFailed"].value("reason", "").starts_with("superseded")) {
        violated("I3: quiet, and " + r + " is served by " + what +
                 ", workers of the failed deploy #" + std::to_string(t) +
                 " beside another release");
        return true;
      }
    }
    // One release: one command line (deploys of the same command run the same release).
    if (versions.size() > 1 || indices.size() != count ||
        (expected >= 0 && static_cast<int>(count) != expected && !failed_first)) {
      violated("I3: quiet, and " + r + " is served by " + what +
               (expected >= 0 ? ", not " + std::to_string(expected) + " of one command" : ""));
      return true;
    }
    return false;
  }

  // I5.
  void stop_and_check() {
    stopping_ = true;
    bool done = false;
    note("daemon stops");
    supervisor_->stop([&done] { done = true; });
    for (int step = 0; !done && take_step(/*drain=*/true); ++step)
      if (step > 20000) return violated("I5: stop did not finish");
    if (!done) return violated("I5: stop never finished");
    if (processes_.alive() > 0)
      return violated("I5: " + std::to_string(processes_.alive()) + " processes outlived stop");
    supervisor_.reset();
    if (clock_.pending() > 0)
      return violated("I5: " + std::to_string(clock_.pending()) + " timers left after stop");
    if (processes_.open_notifiers() > 0) return violated("I5: NOTIFY_SOCKETs left open");
  }

  SimulatorOptions options_;
  SupervisorOptions supervisor_options_;
  int restarts_ = 0;  // daemon deaths and upgrades so far
  std::mt19937_64 rng_;
  std::mt19937_64 confirm_rng_;  // --confirm of each deploy (draw_confirm)
  ScheduleResult result_;
  FakeClock clock_;
  FakeProcesses processes_;
  FakeListeners listeners_;
  std::map<uint64_t, std::unique_ptr<FakePeer>> peers_;
  std::unique_ptr<Supervisor> supervisor_;
  uint64_t next_peer_ = 1;
  std::map<pid_t, Model> models_;
  std::vector<DeployRecord> deploys_;
  std::set<std::string> had_up_;
  std::set<std::string> excused_;
  // I7: deploy and reload requests per app, and each app's last automatic rollback: the
  // release it went back to (the tag of the server it started), and the app's request count
  // when it happened. `rolling_back_`: the app of a rolledBack event whose server is not
  // spawned yet.
  std::map<std::string, int> requests_of_app_;
  struct RollbackSeen {
    int release = -1;
    int requests_at = 0;
    pid_t pid = 0;         // the server it started (fake pids only grow)
    int workers = 0;       // of a worker app: the count it rolls (the crashing release's)
    bool failing = false;  // a worker of its roll failed: the roll is being undone
    bool lost = false;     // the daemon died, its deploy perhaps still in flight
  };
  std::map<std::string, RollbackSeen> rollbacks_;
  std::string rolling_back_;
  int rolling_back_workers_ = 0;
  int deploy_requests_ = 0;
  int reloads_ = 0;
  int crashes_ = 0;
  bool draining_ = false;
  bool in_deploy_ = false;
  uint64_t deploy_rank_ = 0;  // deploy order of the servers the deploy in progress starts
  int deploy_index_ = -1;     // the deploy in progress (its release)
  bool stopping_ = false;
};

}  // namespace

ScheduleResult run_schedule(uint64_t seed, const SimulatorOptions& options) {
  set_log_muted(true);
  ScheduleResult result = World(seed, options).run();
  if (!result.ok && !options.record_trace) {
    SimulatorOptions traced = options;
    traced.record_trace = true;
    result = World(seed, traced).run();
  }
  return result;
}

std::string describe(const ScheduleResult& result) {
  std::string text =
      "seed " + std::to_string(result.seed) + ": " + (result.ok ? "ok" : result.violation) + "\n";
  for (size_t i = 0; i < result.trace.size(); ++i)
    text += "  " + std::to_string(i + 1) + ". " + result.trace[i] + "\n";
  if (!result.ok)
    text += "replay: serverswap_simulator --seed " + std::to_string(result.seed) +
            (result.classic ? " --classic" : "") + "\n";
  return text;
}

}  // namespace serverswap::daemon::testing
