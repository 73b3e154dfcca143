// DeployProgress: what a deploy's servers have and lack while the deploy waits, told from
// the events the daemon sends the deploying command (docs/protocol.md, "event"), so that a
// deploy that waits says why instead of staying silent until --ready-timeout ("server 42
// (gen 3): connected, holds :8080; has not sent serverUp"; "asked for :8080 twice"). It acts
// on event kinds, never on their text; and whether it took the servers it replaces down, so
// that a failure says what is true. Single-threaded; owns copies of what it was told.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/duration.h"
#include "protocol/control_replies.h"

namespace serverswap::cli {

class DeployProgress {
 public:
  // When the first report is due after the deploy started, and the ones after it.
  static constexpr Millis kFirstReport{5'000};
  static constexpr Millis kReportEvery{15'000};

  // Takes in one event of this deploy.
  void saw(const protocol::Event& event);

  // One line per server of this deploy that was started and is neither up nor gone, after
  // `waited` of waiting: "still waiting after 5s: server 42 (gen 3) has not connected to
  // the daemon and holds nothing". Empty when none is waiting.
  std::vector<std::string> report(Millis waited) const;

  // True once a server this deploy did not start (one it replaces) was sent takeDown or a
  // signal: after that, a failed deploy may not say that the servers running keep serving.
  bool took_down_others() const { return took_down_others_; }
  // True once an event was about a worker: a rolling deploy, whose failure the daemon
  // words itself, saying what the old version does (docs/protocol.md, "deployFailed").
  bool rolled() const { return rolled_; }
  // True once a server of this deploy entered its --confirm window (event "confirming"): a
  // failure inside it says itself what serves ("generation 6 was never touched").
  bool confirming() const { return confirming_; }
  // True once the daemon rolled the app back (event "rolledBack"): the server that exited
  // is not started again; the app's previous version is deployed instead.
  bool rolled_back() const { return rolled_back_; }

 private:
  struct Waiting {
    int64_t pid = 0;
    int64_t generation = 0;
    bool connected = false;
    bool confirming = false;     // up, in its --confirm window
    std::set<std::string> held;  // resources as the daemon named them
    std::string status;          // its last STATUS=, from the event's text
    // Of `held`, those it asked for again (event askedAgain): a server that waits for every
    // socket it was handed to be listened on (the Node client's automatic serverUp) may be
    // waiting for the second one.
    std::set<std::string> asked_again;
  };
  std::map<std::string, Waiting> servers_;  // by server id, while waiting
  std::set<std::string> started_;           // every server id this deploy started
  bool took_down_others_ = false;
  bool rolled_ = false;
  bool confirming_ = false;
  bool rolled_back_ = false;
};

}  // namespace serverswap::cli
