// ResumeMemory: what a server must tell a restarted daemon to be taken back (docs/protocol.md
// §11), kept by the one client core that the C/C++ client (ClientSession) and the Node
// relay (node_relay.h) share. Python keeps the same rules in clients/python (client.py) and
// tests/contracts checks that the three agree.
//
// The rules, in one place:
//  - fd pairing: a duplicate of each listening socket handed to the application, keyed by
//    the resource it was handed for, in the order received, one per resource, at most 64
//    (one message's worth); the resume hello lists them in "holding" in that order and
//    sends the descriptors in the same order, so the i-th fd belongs to the i-th resource.
//  - a takeDown received, or a tookDown said, for a resource (in any spelling of it)
//    releases that socket: the server no longer serves it.
//  - subscriptions: every onTakedown said, once each, in order.
//  - the `up` rule: a resume says up when serverUp was said, or when the hello promised no
//    serverUp ("upMessage" absent or false) and the server holds at least one socket (it
//    would have been up once its sockets were handed over).
//  - no resume after fail, after the daemon's last line was an error, once the server was
//    taken down and holds nothing, or before any hello.
//
// Not thread-safe; owns the duplicates it keeps (closed when released or forgotten).
#pragma once

#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "protocol/message.h"

namespace serverswap::client {

class ResumeMemory {
 public:
  // The hello the server said first (its body, an object; anything else is ignored and the
  // daemon refuses it): the base of every resume hello.
  void said_hello(const protocol::Json& body);
  // A message the server said (sent, or deferred while the daemon is away): serverUp, fail,
  // onTakedown and tookDown change what a resume says; anything else is ignored.
  void said(const protocol::Message& message);
  // A message the daemon sent: a takeDown releases its resource; an error is remembered
  // until the next connection (see may_resume()).
  void received(const protocol::Message& message);
  // A new connection to a daemon begins: what the last one said last no longer counts.
  void new_connection() { last_line_error_ = false; }

  // Keeps a duplicate of `fd`, the listening socket handed to the server for `resource`.
  // A second socket for the same resource is not kept. Failures are said on stderr: the
  // server goes on, only that resource is not handed back.
  void keep(const std::string& resource, int fd);
  // Closes the kept socket of `resource` (any spelling of it); the server was taken down.
  void release(const std::string& resource);
  // Closes every kept socket: no daemon will ever take them back.
  void forget_all() { holding_.clear(); }

  bool may_resume() const;
  // {"hello": {...the first hello..., "resume": {holding, onTakedown, up}}}.
  protocol::Json resume_hello() const;
  // The kept descriptors, in the order of resume_hello()'s "holding"; owned here.
  std::vector<int> held_fds() const;
  bool up() const;
  bool explicit_up() const;

 private:
  struct Held {
    std::string resource;  // as the server was handed it
    UniqueFd fd;
  };

  protocol::Json hello_;  // null until the server said hello
  std::vector<Held> holding_;
  std::vector<std::string> subscribed_;
  bool up_ = false;               // serverUp was said
  bool failed_ = false;           // fail was said: the daemon kills this server
  bool taken_down_ = false;       // a takeDown came, or tookDown was said
  bool last_line_error_ = false;  // the daemon's last line on this connection was an error
};

// Whether two spellings name one resource (the daemon may echo its canonical spelling).
bool same_resource(const std::string& a, const std::string& b);

}  // namespace serverswap::client
