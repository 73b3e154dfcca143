#include "daemon/spawn/spawn_environment.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string_view>

namespace serverswap::daemon {
namespace {

bool valid_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Server::Starter's spelling: "8080" for every interface, else the bound host and port
// (the real port when the resource asked for port 0), or the Unix path.
std::string starter_address(const PassedSocket& socket) {
  if (socket.resource.kind == protocol::Resource::Kind::kUnix) return socket.resource.path;
  if (!socket.resource.host.empty()) return socket.address;
  return socket.address.substr(socket.address.rfind(':') + 1);
}

}  // namespace

Result<ListenAddress> parse_listen_option(const std::string& text) {
  ListenAddress listen;
  listen.resource = text;
  // A name never contains ':', every resource does: "web=:8080" has its '=' before it.
  size_t eq = text.find('=');
  size_t colon = text.find(':');
  if (eq != std::string::npos && colon != std::string::npos && eq < colon) {
    listen.name = text.substr(0, eq);
    listen.resource = text.substr(eq + 1);
    if (!valid_name(listen.name))
      return Status::error("--listen " + text + ": a name is letters, digits, '_', '.' or '-'");
  }
  auto resource = protocol::parse_resource(listen.resource);
  if (!resource.ok()) return resource.status().wrap("--listen " + text);
  return listen;
}

std::string fd_name(const ListenAddress& listen, const protocol::Resource& resource) {
  if (!listen.name.empty()) return listen.name;
  std::string name = resource.name();
  for (char& c : name)
    if (c == ':' || c == '/' || c == '[' || c == ']') c = '_';
  size_t first = name.find_first_not_of('_');
  return first == std::string::npos ? "" : name.substr(first);
}

Result<std::vector<PassedSocket>> bind_listen_sockets(Listeners& sockets,
                                                      const std::vector<ListenAddress>& listen) {
  std::vector<PassedSocket> passed;
  for (const auto& l : listen) {
    auto resource = protocol::parse_resource(l.resource);
    if (!resource.ok()) return resource.status().wrap("--listen");
    auto entry = sockets.get_or_bind(*resource);
    if (!entry.ok()) return entry.status().wrap("--listen");
    uv_os_fd_t fd = -1;
    // No handle: a fake of the Listeners seam (the simulator); nothing to pass.
    if ((*entry)->handle) uv_fileno(reinterpret_cast<const uv_handle_t*>((*entry)->handle), &fd);
    passed.push_back({fd_name(l, *resource), *resource, (*entry)->address,
                      3 + static_cast<int>(passed.size()), fd});
  }
  return passed;
}

std::vector<std::string> listen_environment(const std::vector<PassedSocket>& sockets) {
  std::string count = std::to_string(sockets.size());
  std::string names, starter;
  std::vector<std::string> env = {"LISTEN_FDS=" + count, "EINHORN_FD_COUNT=" + count};
  for (size_t i = 0; i < sockets.size(); ++i) {
    const PassedSocket& s = sockets[i];
    std::string fd = std::to_string(s.child_fd);
    if (i > 0) names += ':', starter += ';';
    names += s.fd_name;
    starter.append(starter_address(s)).append("=").append(fd);
    env.push_back("EINHORN_FD_" + std::to_string(i) + "=" + fd);
  }
  env.push_back("LISTEN_FDNAMES=" + names);
  env.push_back("SERVER_STARTER_PORT=" + starter);
  return env;
}

bool is_per_server_variable(const std::string& kv) {
  for (std::string_view prefix :
       {"LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "SERVER_STARTER_PORT=", "EINHORN_FD_",
        "EINHORN_SOCK_PATH=", "NOTIFY_SOCKET=", "SERVERSWAP_SOCKET=", "SERVERSWAP_ID=",
        "SERVERSWAP_RELAY=", "SERVERSWAP_WORKER="}) {
    if (kv.starts_with(prefix)) return true;
  }
  return false;
}

SpawnSpec spawned_spec(const SpawnSpec& request, const std::vector<std::string>& daemon_env,
                       const std::vector<PassedSocket>& sockets, const std::string& self) {
  SpawnSpec spec = request;
  spec.env = request.env.edited([&](Environment::List& env) {
    // The caller's environment may carry another daemon's or supervisor's values (a deploy
    // run from inside a server); ours must be the only ones, since getenv returns the first
    // match.
    std::erase_if(env, is_per_server_variable);
    env.insert(env.end(), daemon_env.begin(), daemon_env.end());
    if (sockets.empty()) return;
    for (auto& kv : listen_environment(sockets)) env.push_back(std::move(kv));
  });
  if (!sockets.empty()) spec.argv = exec_shim_argv(self, request.argv);
  return spec;
}

std::vector<std::string> exec_shim_argv(const std::string& self,
                                        const std::vector<std::string>& argv) {
  std::vector<std::string> shim = {self.empty() ? "/proc/self/exe" : self, kExecShimArg};
  shim.insert(shim.end(), argv.begin(), argv.end());
  return shim;
}

int exec_shim(int argc, char** argv) {
  if (argc < 1) {
    std::fputs("serverswap: exec shim: no command\n", stderr);
    return 127;
  }
  ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
  ::execvp(argv[0], argv);
  std::string line = std::string("serverswap: start ") + argv[0] + ": " + strerror(errno) + "\n";
  std::fputs(line.c_str(), stderr);
  return 127;
}

Status parse_command_settings(const protocol::DeployRequest& request, SpawnSpec& spec) {
  for (size_t i = 0; i < request.listen.size(); ++i) {
    const auto& l = request.listen[i];
    auto parsed = parse_listen_option(l.name.empty() ? l.resource : l.name + "=" + l.resource);
    if (!parsed.ok()) return parsed.status().wrap("deploy.listen[" + std::to_string(i) + "]");
    spec.listen.push_back(*parsed);
  }
  for (size_t i = 0; i < request.grants.size(); ++i) {
    auto parsed = protocol::parse_resource(request.grants[i]);
    if (!parsed.ok()) return parsed.status().wrap("deploy.grant[" + std::to_string(i) + "]");
    spec.grants.push_back(request.grants[i]);
  }
  if (request.ready_after_ms) spec.ready_after = Millis(*request.ready_after_ms);
  if (request.confirm_ms) spec.confirm = Millis(*request.confirm_ms);
  if (request.takedown_signal) {
    auto signum = parse_signal(*request.takedown_signal);
    if (!signum.ok()) return signum.status().wrap("deploy.takedownSignal");
    spec.takedown_signal = *signum;
  }
  spec.workers = request.workers;
  spec.batch = request.batch;
  spec.max_surge = request.max_surge;
  return {};
}

Result<SpawnSpec> spec_from_request(const protocol::DeployRequest& request) {
  SpawnSpec spec;
  spec.argv = request.argv;
  spec.name = request.name.empty() ? protocol::derive_app_name(request.argv) : request.name;
  spec.replace = request.replace;
  // Without one, "/" (systemd's WorkingDirectory= default), never the daemon's own.
  spec.cwd = request.cwd.empty() ? "/" : request.cwd;
  spec.env = request.env;
  spec.user = request.user;
  spec.group = request.group;
  spec.worker = request.worker;
  if (Status s = parse_command_settings(request, spec); !s.ok()) return s;
  return spec;
}

protocol::DeployRequest request_from_spec(const SpawnSpec& spec, bool follow_exit) {
  protocol::DeployRequest request;
  request.argv = spec.argv;
  request.name = spec.name;
  request.replace = spec.replace;
  request.cwd = spec.cwd;
  request.env = spec.env.list();
  request.user = spec.user;
  request.group = spec.group;
  request.follow_exit = follow_exit;
  for (const auto& l : spec.listen) request.listen.push_back({l.name, l.resource});
  request.grants = spec.grants;
  if (spec.ready_after) request.ready_after_ms = spec.ready_after->count();
  if (spec.confirm) request.confirm_ms = spec.confirm->count();
  if (spec.takedown_signal) request.takedown_signal = signal_name(*spec.takedown_signal);
  request.workers = spec.workers;
  request.batch = spec.batch;
  request.max_surge = spec.max_surge;
  request.worker = spec.worker;
  return request;
}

void RememberedSettings::apply(SpawnSpec& spec) {
  SpawnSpec& last = by_app_[app_of(spec)];
  if (spec.listen.empty()) spec.listen = last.listen;
  if (spec.grants.empty()) spec.grants = last.grants;
  if (!spec.ready_after) spec.ready_after = last.ready_after;
  if (!spec.confirm) spec.confirm = last.confirm;
  if (!spec.takedown_signal) spec.takedown_signal = last.takedown_signal;
  last.listen = spec.listen;
  last.grants = spec.grants;
  last.ready_after = spec.ready_after;
  last.confirm = spec.confirm;
  last.takedown_signal = spec.takedown_signal;
  // Workers are remembered as a whole: a new count without --batch gets the default pace.
  if (!spec.workers) {
    spec.workers = last.workers;
    if (!spec.batch) spec.batch = last.batch;
    if (!spec.max_surge) spec.max_surge = last.max_surge;
  }
  last.workers = spec.workers;
  last.batch = spec.batch;
  last.max_surge = spec.max_surge;
}

std::string never_ready_reason(bool connected, bool holds_listen, bool notified,
                               const std::string& timeout, const std::string& refused_ready) {
  std::string when = "not up within --ready-timeout " + timeout;
  if (!refused_ready.empty()) return when + ": " + refused_ready;
  if (connected || notified) return when;
  if (holds_listen)
    return when +
           ": it holds its --listen sockets but never said it was ready (no serverUp, no READY=1 "
           "on NOTIFY_SOCKET, no worker:ack on EINHORN_SOCK_PATH); if it cannot, give it "
           "--ready-after S";
  return when +
         ": it never said it was ready: it sent no readyFor/serverUp on SERVERSWAP_SOCKET and no "
         "READY=1 on NOTIFY_SOCKET; give it its sockets with --listen ADDR and readiness with "
         "--ready-after S, or use a client library";
}

std::string refused_ready_reason(pid_t sender, const std::string& sender_comm, pid_t main,
                                 const std::string& main_comm) {
  // "?": the sender had exited by the time its datagram was read (a short-lived helper).
  std::string who = sender_comm == "?" ? "which had exited by then" : sender_comm;
  return "READY=1 came from pid " + std::to_string(sender) + " (" + who +
         "), not from the main process " + std::to_string(main) + " (" + main_comm +
         "): does a wrapper script start the server without `exec`? Use `exec` in the script, "
         "or send MAINPID= from the main process";
}

}  // namespace serverswap::daemon
