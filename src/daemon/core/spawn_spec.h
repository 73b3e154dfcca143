// SpawnSpec: a command as deployed, with the settings that belong to it. Plain values;
// thread-compatible.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/duration.h"
#include "daemon/core/environment.h"
#include "daemon/service/identity.h"
#include "protocol/app_name.h"

namespace serverswap::daemon {

// One `--listen [NAME=]ADDR`: a listening socket the daemon binds and passes to the server
// at spawn (fd 3 + its index), for programs that take sockets the systemd, Server::Starter
// or einhorn way instead of asking with readyFor.
struct ListenAddress {
  std::string name;      // its LISTEN_FDNAMES entry; empty: derived from the resource
  std::string resource;  // as given: ":8080", "unix:/run/app.sock"
  bool operator==(const ListenAddress&) const = default;
};

// A directory as the kernel has it: its path with every symbolic link resolved, and its
// device and inode, so that a directory removed and made again under that name (a release
// tool that rebuilt it) is not taken for it.
struct PhysicalDirectory {
  std::string path;
  uint64_t dev = 0;
  uint64_t ino = 0;
  // The same directory (device and inode), whatever the path says.
  bool same_as(const PhysicalDirectory& other) const {
    return dev == other.dev && ino == other.ino;
  }
  bool operator==(const PhysicalDirectory&) const = default;
};

// A command as deployed, with the settings that belong to it (not to the daemon): a later
// deploy, reload or restart of the same command starts it with the same ones.
struct SpawnSpec {
  // The app it is a version of (--name, else derived from argv: protocol/app_name.h).
  std::string name;
  // --replace APP: apps whose resources it may take over (else another app's resource is
  // refused). Given per deploy, never remembered.
  std::vector<std::string> replace;
  std::vector<std::string> argv;
  // The working directory as the user named it ($PWD: `current`, not `releases/r1`): what
  // the app's version is known by, and where a deploy, restart or reload runs it.
  std::string cwd;
  // Where a server of it ran: `cwd` as resolved when it was spawned (set on a server's
  // request by the supervisor; unset for a request not spawned yet, or one recorded by an
  // older daemon). A version keeps it, so that a rollback can go back to the release that
  // `cwd` named then.
  std::optional<PhysicalDirectory> physical;
  // Run in `physical`, not in what `cwd` names now (a rollback; PWD is set to it too), and
  // only while it is still that directory (device and inode): else the spawn is refused.
  bool pinned = false;
  Environment env;  // "K=V", one copy shared by every spec of equal content
  std::vector<ListenAddress> listen;
  // --grant RESOURCE, as given: what a server run as another user may be handed beyond what
  // that user could bind itself (a privileged port, a socket bound for someone else).
  std::vector<std::string> grants;
  std::optional<Millis> ready_after;  // alive this long after spawn = up (the weak rule)
  // --confirm D: once up, it must stay alive this long before the servers it replaces are
  // taken down (0: no window); unset: the default of how it came up (confirm_window.h).
  std::optional<Millis> confirm;
  std::optional<int> takedown_signal;  // else the daemon's --takedown-signal
  // --workers N: N copies share the resources and a deploy rolls through them
  // (daemon/workers/rollout.h); --batch K and --max-surge S (default K) pace the roll.
  std::optional<int> workers;
  std::optional<int> batch;
  std::optional<int> max_surge;
  int worker = -1;  // which copy this is (SERVERSWAP_WORKER); -1: not a worker
  // --user/--group as given (names or numbers; empty: the daemon's own), and what they
  // resolved to when the supervisor started it.
  std::string user;
  std::string group;
  std::optional<Identity> run_as;
};

// The app `spec` is a version of: its name, or the one derived from its argv when it has
// none (a spec made in a test, or recorded by a daemon older than app names). Deploys of
// one app are versions of each other: the newest supersedes and replaces the others.
inline std::string app_of(const SpawnSpec& spec) {
  return spec.name.empty() ? protocol::derive_app_name(spec.argv) : spec.name;
}

// Where `spec` runs, for people: its cwd, and for a pinned spec the physical directory it
// runs in ("/srv/current (/srv/releases/r1)").
inline std::string directory_said(const SpawnSpec& spec) {
  std::string named = spec.cwd.empty() ? "/" : spec.cwd;
  if (spec.pinned && spec.physical && spec.physical->path != named)
    return named + " (" + spec.physical->path + ")";
  return named;
}

// One command line of an app (argv and working directory): what tells an app's old version
// from its new one where both are running (WorkerRolls: is this old worker the version a
// failed roll goes back to?).
std::string command_line_key(const SpawnSpec& spec);

}  // namespace serverswap::daemon
