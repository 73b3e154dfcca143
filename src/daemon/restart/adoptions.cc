#include "daemon/restart/adoptions.h"

namespace serverswap::daemon {

namespace {

// The resource a listening socket answers for, with the port of a ":0" resource filled in
// from the address it was bound to.
std::string expected_name(const std::string& name, const std::string& recorded_address) {
  if (!name.ends_with(":0") || recorded_address.empty()) return name;
  auto bound = protocol::parse_resource(recorded_address);
  return bound.ok() ? bound->name() : name;
}

}  // namespace

void Adoptions::taken_back(const ServerRecord& record, ServerState state, bool awaiting) {
  Entry& entry = servers_[record.id];
  entry.adoption = awaiting ? Adoption::kAwaitingResume : Adoption::kLeaving;
  entry.recorded = state;
  for (const auto& held : record.held) recorded_addresses_[held.name] = held.address;
}

bool Adoptions::resumed(const std::string& id) {
  auto it = servers_.find(id);
  if (it == servers_.end()) return false;
  bool was_waited_for = it->second.adoption == Adoption::kAwaitingResume;
  it->second.adoption = Adoption::kResumed;
  return was_waited_for && !adopting();
}

std::vector<std::string> Adoptions::give_up() {
  std::vector<std::string> ids;
  for (auto& [id, entry] : servers_) {
    if (entry.adoption != Adoption::kAwaitingResume) continue;
    entry.adoption = Adoption::kUnmanaged;
    ids.push_back(id);
  }
  return ids;
}

void Adoptions::unmanaged_as(const std::string& id, ServerState state) {
  if (auto it = servers_.find(id); it != servers_.end()) it->second.recorded = state;
}

void Adoptions::exited(const std::string& id) {
  servers_.erase(id);
}

bool Adoptions::adopting() const {
  for (const auto& [id, entry] : servers_)
    if (entry.adoption == Adoption::kAwaitingResume) return true;
  return false;
}

ServerState Adoptions::recorded_state(const std::string& id) const {
  auto it = servers_.find(id);
  return it == servers_.end() ? ServerState::kStarting : it->second.recorded;
}

// The descriptor must be a listening socket bound to the address the resource names.
Status Adoptions::check_socket(const Listeners& sockets, const Processes& processes, int fd,
                               const std::string& spelled, std::string* name) const {
  auto resource = protocol::parse_resource(spelled);
  if (!resource.ok()) return resource.status();
  *name = resource->name();
  auto actual = processes.listening_resource(fd);  // the Processes seam
  if (!actual.ok()) return actual.status().wrap("the descriptor for " + spelled);
  std::string recorded;
  if (const Listeners::Entry* entry = sockets.find(*name)) recorded = entry->address;
  if (auto it = recorded_addresses_.find(*name);
      recorded.empty() && it != recorded_addresses_.end())
    recorded = it->second;
  std::string expected = expected_name(*name, recorded);
  if (*actual != expected)
    return Status::error("the descriptor for " + spelled + " is bound to " + *actual + ", not " +
                         expected);
  return {};
}

std::string Adoptions::address_of(const Listeners& sockets, const std::string& name) const {
  const Listeners::Entry* entry = sockets.find(name);
  std::string address = entry ? entry->address : "";
  if (auto it = recorded_addresses_.find(name); address.empty() && it != recorded_addresses_.end())
    address = it->second;
  return address;
}

}  // namespace serverswap::daemon
