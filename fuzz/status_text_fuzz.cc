// Fuzz target: the `status` reply written without a JSON tree, on both sides.
//  - the daemon's status_reply_line() of a reply made of fuzzed fields must be byte for
//    byte encode(reply.encode()), the tree's text (bytes that are not UTF-8 included);
//  - the command's indented_body() of a fuzzed line must print what the tree's dump
//    printed whenever it prints anything, and leave to decode() only lines the tree path
//    refuses or that a tree would change (a repeated key).
//
// Input: byte 0 even: the rest is a line; odd: the rest is the reply's fields.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "protocol/control_replies.h"
#include "protocol/indented_body.h"
#include "protocol/message.h"
#include "protocol/status_reply_line.h"

namespace {

using namespace serverswap::protocol;

void check(bool condition) {
  if (!condition) std::abort();
}

// Fields taken from the input in order; zeros and empty strings once it runs out.
class Fields {
 public:
  explicit Fields(std::string_view bytes) : bytes_(bytes) {}
  uint8_t byte() {
    if (bytes_.empty()) return 0;
    uint8_t b = static_cast<uint8_t>(bytes_.front());
    bytes_.remove_prefix(1);
    return b;
  }
  bool flag() { return byte() & 1; }
  std::string text() {
    size_t n = std::min<size_t>(byte() % 24, bytes_.size());
    std::string s(bytes_.substr(0, n));
    bytes_.remove_prefix(n);
    return s;
  }
  int64_t number() {
    uint64_t v = 0;
    for (int kind = byte() % 3, i = 0; i < (kind == 0 ? 1 : 8); ++i) v = (v << 8) | byte();
    int64_t n;
    std::memcpy(&n, &v, sizeof n);
    return n;
  }
  std::vector<std::string> texts() {
    std::vector<std::string> list(byte() % 4);
    for (auto& s : list) s = text();
    return list;
  }

 private:
  std::string_view bytes_;
};

StatusReply reply_of(Fields& f) {
  StatusReply r;
  r.daemon.pid = f.number();
  r.daemon.version = f.text();
  r.daemon.socket = f.text();
  r.daemon.stopping = f.flag();
  for (int i = f.byte() % 3; i > 0; --i) r.daemon.resources.push_back({f.text(), f.text()});
  if (f.flag()) r.daemon.metrics = f.text();
  r.daemon.state_file.path = f.text();
  r.daemon.state_file.ok = f.flag();
  if (f.flag()) r.daemon.state_file.error = f.text();
  if (f.flag()) r.daemon.state_file.since_ms = f.number();
  for (int i = f.byte() % 4; i > 0; --i) {
    ServerStatus s;
    s.app = f.text();
    s.id = f.text();
    s.pid = f.number();
    s.generation = f.number();
    s.deploy_order = f.number();
    s.state = f.text();
    s.argv = f.texts();
    s.cwd = f.text();
    if (f.flag()) s.worker = f.number();
    for (int j = f.byte() % 3; j > 0; --j) s.resources.push_back({f.text(), f.text(), f.flag()});
    s.restarts = f.number();
    s.uptime_ms = f.number();
    r.servers.push_back(std::move(s));
  }
  for (int i = f.byte() % 3; i > 0; --i) {
    CrashLoopStatus l;
    l.app = f.text();
    l.argv = f.texts();
    l.cwd = f.text();
    l.crashes = f.number();
    l.restarts = f.number();
    l.since_ms = f.number();
    if (f.flag()) l.worker = f.number();
    if (f.flag()) l.next_restart_ms = f.number();
    r.crash_loops.push_back(std::move(l));
  }
  for (int i = f.byte() % 3; i > 0; --i) {
    AppStatus a;
    a.app = f.text();
    a.generation = f.number();
    for (int j = f.byte() % 3; j > 0; --j) a.versions.push_back({f.texts(), f.text(), f.number()});
    if (f.flag()) {
      AppStatus::Rollback back;
      back.from_generation = f.number();
      back.to_generation = f.number();
      back.reason = f.text();
      back.since_ms = f.number();
      if (f.flag()) back.failure = f.text();
      a.rolled_back = std::move(back);
    }
    r.apps.push_back(std::move(a));
  }
  return r;
}

void check_line(std::string_view line) {
  auto printed = indented_body(line, StatusReply::kName);
  auto message = decode(line);
  if (printed) {
    check(message.ok() && message->name == StatusReply::kName);
    check(*printed == message->body.dump(2, ' ', true));
  } else if (message.ok() && message->name == StatusReply::kName) {
    // Left to decode() for a repeated key: the tree's own text has none, and prints.
    std::string again = message->whole.dump();
    auto reprinted = indented_body(again, StatusReply::kName);
    check(reprinted && *reprinted == message->body.dump(2, ' ', true));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 0) {
    check_line(rest);
    return 0;
  }
  Fields fields(rest);
  StatusReply reply = reply_of(fields);
  std::string line = status_reply_line(reply);
  check(line == encode(reply.encode()));
  check_line(std::string_view(line).substr(0, line.size() - 1));
  return 0;
}
