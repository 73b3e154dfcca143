// Adoptions: the Supervisor's collaborator for restarts of the daemon itself
// (docs/protocol.md section 11, docs/architecture.md "Collaborators"). It owns what the
// daemon remembers of the servers it took back from state.json: how far each has come back
// (awaiting its resume, resumed, unmanaged), the state state.json recorded for it, and the
// addresses of their resources as recorded (a ":0" resource is checked against the port it
// was bound to). Its rules: what a resumed descriptor must be, and when adoption is over.
// The Supervisor still owns the servers themselves and their transitions (adopt, resume and
// give_up_adoption, Supervisor methods in adoption.cc) and calls it at named hooks; it never
// calls back. Loop thread only.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "daemon/core/listeners.h"
#include "daemon/core/processes.h"
#include "daemon/core/server.h"
#include "daemon/restart/state_file.h"

namespace serverswap::daemon {

class Adoptions {
 public:
  // How far a server taken back from state.json has come back.
  enum class Adoption {
    kAwaitingResume,  // deploys wait until no server is
    kResumed,         // resumed (or its --listen sockets were taken back): managed again
    kUnmanaged,       // did not resume within --adopt-timeout: only signals reach it
    kLeaving,         // recorded draining or failed: it only has to exit, and cannot resume
  };

  // Hook: adopt_server() took `record` back as `state` (state_from_name of its recorded
  // state). `awaiting`: it is expected to resume (else it is leaving: being taken down).
  void taken_back(const ServerRecord& record, ServerState state, bool awaiting);
  // Hook: resumed() (or its --listen sockets were taken back). Returns whether some adopted
  // server was waited for until now and none is any more: adoption is over.
  bool resumed(const std::string& id);
  // Hook: give_up_adoption(). The ids of the servers still awaiting their resume, now
  // unmanaged.
  std::vector<std::string> give_up();
  // Hook: give_up_adoption() made `id` unmanaged while it was `state` (it may have come up
  // since it was taken back): what an unmanaged server is recorded as from now on, and what
  // its exit is judged by (a crash if it was up).
  void unmanaged_as(const std::string& id, ServerState state);
  // Hook: exited(). A server taken back has exited: it is forgotten.
  void exited(const std::string& id);

  // Whether `id` was taken back from state.json (and has not exited since).
  bool adopted(const std::string& id) const { return servers_.count(id) > 0; }
  // Some adopted server has neither resumed nor been given up on.
  bool adopting() const;
  // The state state.json recorded for `id` (what an unmanaged server is written as again);
  // kStarting when it was not taken back.
  ServerState recorded_state(const std::string& id) const;

  // The rule for a descriptor handed back (resume, pidfd_getfd): a listening socket bound to
  // the address the resource `spelled` names (for a ":0" resource, the address it was bound
  // to: `sockets`' or state.json's). Sets `*name` to the resource's canonical name.
  // `processes` tells what the descriptor listens on (Processes::listening_resource).
  Status check_socket(const Listeners& sockets, const Processes& processes, int fd,
                      const std::string& spelled, std::string* name) const;
  // The address of resource `name` to record: `sockets`', else the one state.json recorded.
  std::string address_of(const Listeners& sockets, const std::string& name) const;

 private:
  struct Entry {
    Adoption adoption = Adoption::kAwaitingResume;
    ServerState recorded = ServerState::kStarting;
  };
  std::map<std::string, Entry> servers_;                   // by server id
  std::map<std::string, std::string> recorded_addresses_;  // resource name -> address
};

}  // namespace serverswap::daemon
