#include "protocol/status_reply_line.h"

#include <gtest/gtest.h>

#include <iterator>
#include <random>
#include <string>

#include "protocol/indented_body.h"

namespace serverswap::protocol {
namespace {

using namespace std::string_view_literals;

// Text a server may choose (its argv, cwd, socket paths, app name): plain, escapes, text
// beyond ASCII, and bytes that are not UTF-8.
std::string some_text(std::mt19937& rng) {
  static const std::string_view pieces[] = {"web",         "/srv/app",
                                            " ",           "\"",
                                            "\\",          "\n",
                                            "\t",          "\0"sv,
                                            "\x1b[31m",    "\x7f",
                                            "caf\xc3\xa9", "\xe2\x80\xae",
                                            "\xff",        "\xf0\x9f\x98\x80",
                                            "\xc3",        "\xed\xa0\x80",
                                            "\xe2\x80",    "unix:/run/x.sock",
                                            ":8080"};
  std::string text;
  int n = static_cast<int>(rng() % 5);
  for (int i = 0; i < n; ++i) text += pieces[rng() % std::size(pieces)];
  return text;
}

int64_t some_number(std::mt19937& rng) {
  switch (rng() % 4) {
    case 0:
      return 0;
    case 1:
      return static_cast<int64_t>(rng() % 1000);
    case 2:
      return -static_cast<int64_t>(rng());
    default:
      return static_cast<int64_t>((uint64_t{rng()} << 32) | rng());
  }
}

std::vector<std::string> some_strings(std::mt19937& rng) {
  std::vector<std::string> list(rng() % 4);
  for (auto& s : list) s = some_text(rng);
  return list;
}

// A reply with every field, optional ones present or not, lists empty or not.
StatusReply some_reply(std::mt19937& rng) {
  StatusReply r;
  r.daemon.pid = some_number(rng);
  r.daemon.version = some_text(rng);
  r.daemon.socket = some_text(rng);
  r.daemon.stopping = rng() % 2;
  for (size_t i = rng() % 3; i > 0; --i)
    r.daemon.resources.push_back({some_text(rng), some_text(rng)});
  if (rng() % 2) r.daemon.metrics = some_text(rng);
  r.daemon.state_file.path = some_text(rng);
  r.daemon.state_file.ok = rng() % 2;
  if (rng() % 2) r.daemon.state_file.error = some_text(rng);
  if (rng() % 2) r.daemon.state_file.since_ms = some_number(rng);
  for (size_t i = rng() % 4; i > 0; --i) {
    ServerStatus s;
    s.app = some_text(rng);
    s.id = some_text(rng);
    s.pid = some_number(rng);
    s.generation = some_number(rng);
    s.deploy_order = some_number(rng);
    s.state = some_text(rng);
    s.argv = some_strings(rng);
    s.cwd = some_text(rng);
    if (rng() % 2) s.worker = some_number(rng);
    for (size_t j = rng() % 3; j > 0; --j)
      s.resources.push_back({some_text(rng), some_text(rng), rng() % 2 == 0});
    s.restarts = some_number(rng);
    s.uptime_ms = some_number(rng);
    r.servers.push_back(std::move(s));
  }
  for (size_t i = rng() % 3; i > 0; --i) {
    CrashLoopStatus l;
    l.app = some_text(rng);
    l.argv = some_strings(rng);
    l.cwd = some_text(rng);
    l.crashes = some_number(rng);
    l.restarts = some_number(rng);
    l.since_ms = some_number(rng);
    if (rng() % 2) l.worker = some_number(rng);
    if (rng() % 2) l.next_restart_ms = some_number(rng);
    r.crash_loops.push_back(std::move(l));
  }
  for (size_t i = rng() % 3; i > 0; --i) {
    AppStatus a;
    a.app = some_text(rng);
    a.generation = some_number(rng);
    for (size_t j = rng() % 3; j > 0; --j)
      a.versions.push_back({some_strings(rng), some_text(rng), some_number(rng)});
    if (rng() % 2) {
      AppStatus::Rollback back;
      back.from_generation = some_number(rng);
      back.to_generation = some_number(rng);
      back.reason = some_text(rng);
      back.since_ms = some_number(rng);
      if (rng() % 2) back.failure = some_text(rng);
      a.rolled_back = std::move(back);
    }
    r.apps.push_back(std::move(a));
  }
  return r;
}

// The text is the tree's, byte for byte (so every field, its order and the replacement of
// bytes that are not UTF-8 are as before); it parses back to a value equal to the tree;
// and `status --json` prints it as it printed the tree's text.
TEST(StatusReplyLine, SameTextAsTheTreeBuiltReply) {
  std::mt19937 rng(13);
  for (int i = 0; i < 500; ++i) {
    StatusReply reply = some_reply(rng);
    Json tree = reply.encode();
    std::string line = status_reply_line(reply);
    ASSERT_EQ(line, encode(tree));
    std::string_view text(line.data(), line.size() - 1);
    auto decoded = decode(text);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(decoded->whole, Json::parse(encode(tree)));
    auto printed = indented_body(text, StatusReply::kName);
    ASSERT_TRUE(printed.has_value());
    EXPECT_EQ(*printed, decoded->body.dump(2, ' ', true));
  }
}

// Without bytes that need replacing, the reply decodes back to what was written.
TEST(StatusReplyLine, DecodesBackToTheReply) {
  StatusReply reply;
  reply.daemon = {42,
                  "0.1.0",
                  "/run/s.sock",
                  false,
                  {{":8080", "0.0.0.0:8080"}},
                  ":9100",
                  {"/var/lib/s/state.json", false, "EACCES", 12}};
  reply.servers.push_back({"web",
                           "web-3",
                           1234,
                           3,
                           3,
                           "up",
                           {"./srv", "--port", "8080"},
                           "/srv",
                           std::nullopt,
                           {{":8080", "0.0.0.0:8080", true}},
                           2,
                           65000});
  reply.servers.push_back({"w", "w-1", 99, 1, 1, "draining", {"./w"}, "/", 0, {}, 0, 5});
  reply.crash_loops.push_back({"db", {"./db"}, "/", 5, 4, 12000, 1, 3200});
  AppStatus app;
  app.app = "web";
  app.generation = 3;
  app.versions = {{{"./srv", "v1"}, "/srv", 1}, {{"./srv", "v2"}, "/srv", 3}};
  app.rolled_back = AppStatus::Rollback{7, 5, "crashed", 1000, "refused"};
  reply.apps.push_back(app);
  std::string line = status_reply_line(reply);
  auto message = decode(std::string_view(line.data(), line.size() - 1));
  ASSERT_TRUE(message.ok());
  auto back = StatusReply::decode(*message);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, reply);
}

}  // namespace
}  // namespace serverswap::protocol
