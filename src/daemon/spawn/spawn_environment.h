// What a server started with `--listen` gets besides its command: the daemon's listening
// sockets at fds 3, 4, ... described at once in the three conventions unmodified programs
// read (systemd's LISTEN_FDS, Server::Starter's SERVER_STARTER_PORT, einhorn's
// EINHORN_FD_*), and the exec shim that sets LISTEN_PID, which only the child itself can
// know. docs/protocol.md, "Inherited sockets and unmodified programs", is the contract.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "daemon/process/server_process.h"
#include "daemon/sockets/socket_set.h"
#include "protocol/message.h"
#include "protocol/requests.h"
#include "protocol/resource.h"

namespace serverswap::daemon {

// argv[1] of `serverswap` that makes it the exec shim: `serverswap <this> COMMAND...` sets
// LISTEN_PID to its own pid and execs COMMAND (same pid). Not for people: a name no one
// gives a program.
inline constexpr const char* kExecShimArg = "__serverswap-exec-listen";

// "web=:8080" -> {"web", ":8080"}; ":8080" -> {"", ":8080"}. The resource is checked with
// the protocol's parser; a name is [A-Za-z0-9_.-]+.
Result<ListenAddress> parse_listen_option(const std::string& text);

// The LISTEN_FDNAMES entry: the given name, else the canonical resource with ':' '/' '['
// ']' turned into '_' and leading '_' dropped (":8080" -> "8080").
std::string fd_name(const ListenAddress& listen, const protocol::Resource& resource);

// One socket passed to a server: what it is and the fd it gets in the child.
struct PassedSocket {
  std::string fd_name;
  protocol::Resource resource;
  std::string address;  // as bound: "[::]:8080", "127.0.0.1:8080", "unix:/run/a.sock"
  int child_fd = 3;
  int daemon_fd = -1;
};

// Binds (or finds, kept across swaps) every --listen socket, in order.
Result<std::vector<PassedSocket>> bind_listen_sockets(Listeners& sockets,
                                                      const std::vector<ListenAddress>& listen);

// LISTEN_FDS, LISTEN_FDNAMES, SERVER_STARTER_PORT, EINHORN_FD_COUNT, EINHORN_FD_n ("K=V").
std::vector<std::string> listen_environment(const std::vector<PassedSocket>& sockets);

// True for a "K=V" the daemon sets per server (sockets, LISTEN_PID, NOTIFY_SOCKET): a
// deploying shell's own values must not reach the server.
bool is_per_server_variable(const std::string& kv);

// What is actually spawned for `request`: its environment without any per-server variable,
// then `daemon_env` (SERVERSWAP_*, NOTIFY_SOCKET) and, with sockets, listen_environment()
// and the command behind the exec shim in `self`.
SpawnSpec spawned_spec(const SpawnSpec& request, const std::vector<std::string>& daemon_env,
                       const std::vector<PassedSocket>& sockets, const std::string& self);

// The command run through the exec shim in `self` (the serverswap binary).
std::vector<std::string> exec_shim_argv(const std::string& self,
                                        const std::vector<std::string>& argv);

// The shim itself: sets LISTEN_PID=getpid() and execs argv (searching PATH). Returns only
// on failure, with the exit status to use (127, as a shell does).
int exec_shim(int argc, char** argv);

// The deploy request's per-command fields (docs/protocol.md, "Control messages"), decoded
// by protocol::decode_deploy: "listen" (each resource parsed), "grant" (each a resource),
// "readyAfterMs", "confirmMs", "takedownSignal" (a signal's name or number), "workers", "batch",
// "maxSurge". An error names the bad field.
Status parse_command_settings(const protocol::DeployRequest& request, SpawnSpec& spec);

// A decoded deploy request (or state.json's record of one) as the spec to run: argv, cwd,
// env, user, group, worker and the command settings above.
Result<SpawnSpec> spec_from_request(const protocol::DeployRequest& request);
// The other way: what the CLI sends and state.json keeps (run_as is not part of it).
protocol::DeployRequest request_from_spec(const SpawnSpec& spec, bool follow_exit = false);

// Settings remembered by app (app_of): a deploy that gives no --listen, --grant,
// --ready-after, --confirm, --takedown-signal or --workers gets those of its app's last
// deploy, so that running the same command again -- or a changed one, from another release
// directory -- swaps it the same way.
class RememberedSettings {
 public:
  void apply(SpawnSpec& spec);
  // `rm APP`: its settings are forgotten.
  void forget(const std::string& app) { by_app_.erase(app); }
  bool knows(const std::string& app) const { return by_app_.count(app) > 0; }

 private:
  std::map<std::string, SpawnSpec> by_app_;
};

// Why a server was not up within --ready-timeout, and what it would need.
std::string never_ready_reason(bool connected, bool holds_listen, bool notified,
                               const std::string& timeout, const std::string& refused_ready = "");

// Why a READY=1 from `sender` did not count (it is not the main process `main`): the likely
// cause, a wrapper script that starts the server without `exec`, and the two ways out.
std::string refused_ready_reason(pid_t sender, const std::string& sender_comm, pid_t main,
                                 const std::string& main_comm);

}  // namespace serverswap::daemon
