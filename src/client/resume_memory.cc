#include "client/resume_memory.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "handover/fd_passing.h"
#include "protocol/resource.h"

namespace serverswap::client {

using protocol::Json;

bool same_resource(const std::string& a, const std::string& b) {
  if (a == b) return true;
  auto pa = protocol::parse_resource(a);
  auto pb = protocol::parse_resource(b);
  return pa.ok() && pb.ok() && pa->name() == pb->name();
}

namespace {

std::string text_of(const Json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

}  // namespace

void ResumeMemory::said_hello(const Json& body) {
  // Only an object can take the "resume" field: another body is the daemon's to refuse.
  if (body.is_object()) hello_ = body;
}

void ResumeMemory::said(const protocol::Message& m) {
  if (m.name == "hello") {
    said_hello(m.body);
  } else if (m.name == "serverUp") {
    up_ = true;
  } else if (m.name == "fail") {
    failed_ = true;
  } else if (m.name == "onTakedown" && m.body.is_string()) {
    const auto& resource = m.body.get_ref<const std::string&>();
    if (std::find(subscribed_.begin(), subscribed_.end(), resource) == subscribed_.end())
      subscribed_.push_back(resource);
  } else if (m.name == "tookDown") {
    release(text_of(m.body));
  }
}

void ResumeMemory::received(const protocol::Message& m) {
  last_line_error_ = m.name == "error";
  if (m.name == "takeDown") release(text_of(m.body));
}

void ResumeMemory::keep(const std::string& resource, int fd) {
  for (const Held& held : holding_)
    if (held.resource == resource) return;  // the same socket again: one copy is enough
  if (holding_.size() == handover::kMaxFdsPerMessage) {
    log_line("serverswap client: more than 64 resources; " + resource +
             " will not be handed back to a restarted daemon");
    return;
  }
  UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!copy) {
    log_line("serverswap client: dup the listening socket of " + resource +
             " for a resume: " + std::strerror(errno));
    return;
  }
  holding_.push_back({resource, std::move(copy)});
}

void ResumeMemory::release(const std::string& resource) {
  taken_down_ = true;
  std::erase_if(holding_, [&](const Held& held) { return same_resource(held.resource, resource); });
}

// The server still serves something a daemon could take back, and nobody said no.
bool ResumeMemory::may_resume() const {
  if (hello_.is_null() || failed_ || last_line_error_) return false;
  return !(taken_down_ && holding_.empty());
}

bool ResumeMemory::explicit_up() const {
  if (!hello_.is_object()) return false;
  auto it = hello_.find("upMessage");
  return it != hello_.end() && it->is_boolean() && it->get<bool>();
}

bool ResumeMemory::up() const {
  return up_ || (!explicit_up() && !holding_.empty());
}

Json ResumeMemory::resume_hello() const {
  Json holding = Json::array();
  for (const Held& held : holding_) holding.push_back(held.resource);
  Json hello = hello_;
  hello["resume"] = {{"holding", holding}, {"onTakedown", subscribed_}, {"up", up()}};
  return protocol::make("hello", hello);
}

std::vector<int> ResumeMemory::held_fds() const {
  std::vector<int> fds;
  for (const Held& held : holding_) fds.push_back(held.fd.get());
  return fds;
}

}  // namespace serverswap::client
