#include "protocol/server_messages.h"

#include <limits>

#include "protocol/requests.h"

namespace serverswap::protocol {

Json Welcome::encode() const {
  Json body = {{"protocol", protocol}};
  if (id) body["id"] = *id;
  body["version"] = version;
  if (resumed) body["resumed"] = true;
  return make(kName, body);
}

Result<Welcome> Welcome::decode(const Message& message) {
  FieldReader r(message.body, kName);
  Welcome welcome;
  welcome.protocol = r.integer("protocol", true, std::numeric_limits<int64_t>::min(),
                               std::numeric_limits<int64_t>::max());
  welcome.id = r.optional_string("id");
  welcome.version = r.string("version", false);
  welcome.resumed = r.boolean("resumed", false);
  if (!r.ok()) return r.status();
  return welcome;
}

Json ResourceReady::encode() const {
  return {{kName, resource}, {"address", address}};
}

Result<ResourceReady> ResourceReady::decode(const Message& message) {
  if (!message.body.is_string()) return Status::error("resourceReady must be a string");
  FieldReader r(message.whole, kName);
  ResourceReady ready{message.body.get<std::string>(), r.string("address", false)};
  if (!r.ok()) return r.status();
  return ready;
}

Result<ErrorReply> ErrorReply::decode(const Message& message) {
  if (!message.body.is_string()) return Status::error("error must be a string");
  ErrorReply reply{message.body.get<std::string>(), nullptr};
  if (auto it = message.whole.find("request"); it != message.whole.end()) reply.request = *it;
  return reply;
}

}  // namespace serverswap::protocol
