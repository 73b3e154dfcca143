// Staggered handover (docs/protocol.md, section 6): a server that asks for its resources one
// after the other says `serving` for each as it starts accepting on it, and the older
// holders are taken down on that resource alone. One that has lost some but not all of its
// resources keeps serving the others; it is draining once it has lost them all.
#include "daemon/core/supervisor.h"

namespace serverswap::daemon {

void Supervisor::serving(Server& server, Peer& connection, const protocol::Message& m) {
  auto body = protocol::decode_string_body(m.name, m.body);
  if (!body.ok()) return reply_error(connection, body.status().message(), m);
  std::string spelled = *body;
  auto resource = protocol::parse_resource(spelled);
  if (!resource.ok()) return reply_error(connection, resource.status().message(), m);
  std::string name = resource->name();
  if (!server.held.count(name))
    return reply_error(connection, "serving " + spelled + ": this server does not hold it", m);
  if (!server.starting() && server.state != ServerState::kUp)
    return reply_error(connection, "this server is being taken down", m);
  // In its --confirm window it replaces no one yet: what it serves is taken over when the
  // window has passed (become_up), as if it had not said it.
  if (server.state == ServerState::kConfirming) {
    if (server.said_serving.insert(name).second)
      emit(server, EventKind::kServing,
           "accepts on it now; in its --confirm window: older holders go down when it has passed",
           name);
    return;
  }
  if (server.starting()) server.served.insert(name);
  // Said again, it is a line whose rate the server chooses (the older holders went down the
  // first time; any left are taken down, with lines of their own, below).
  if (server.said_serving.insert(name).second)
    emit(server, EventKind::kServing, "accepts on it now; older holders go down on it", name);
  else
    emit_said(server, EventKind::kServing, "accepts on it now; older holders go down on it", name);
  take_over(server, name, "generation " + std::to_string(server.generation) + " serves on it");
}

// `server` serves `name` now (it said `serving`, or it was already up when it asked for
// it): the older up holders of its slot go down on that resource alone.
void Supervisor::take_over(Server& server, const std::string& name, const std::string& why) {
  std::vector<std::string> older;
  for (auto& [id, other] : servers_) {
    if (other.get() == &server || newer(*other, server)) continue;
    if (!other->serving() || !same_slot(server, *other)) continue;
    if (!other->held.count(name) || other->taken.count(name)) continue;
    older.push_back(id);
  }
  for (const auto& id : older)
    if (Server* other = find(id)) replace(*other, {name}, why, server);
}

}  // namespace serverswap::daemon
