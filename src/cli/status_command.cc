// `serverswap status [--json] [--watch]` and `serverswap stop`.
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <set>

#include "base/duration.h"
#include "base/join.h"
#include "base/log.h"
#include "cli/commands.h"
#include "cli/control_client.h"
#include "cli/socket_path.h"
#include "protocol/app_name.h"
#include "protocol/control_replies.h"
#include "protocol/indented_body.h"
#include "protocol/requests.h"

namespace serverswap::cli {
namespace {

std::string format_uptime(long long ms) {
  long long s = ms / 1000;
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s / 60) % 60);
  }
  return buf;
}

// "crash loop: ./srv crashed 5 times in 12s, restarted 4 times; next restart in 3.2s"
void print_crash_loops(const std::vector<protocol::CrashLoopStatus>& loops) {
  for (const auto& loop : loops) {
    std::string command = join(loop.argv, " ");
    if (!loop.app.empty()) command = loop.app + ": " + command;
    if (loop.worker) command.append(" (worker ").append(std::to_string(*loop.worker)).append(")");
    auto times = [](int n) { return std::to_string(n) + (n == 1 ? " time" : " times"); };
    // A loop with no crash yet (the old version a failed roll started again) has no
    // crashes to count, nor a first crash to count from.
    std::string line = "crash loop: " + command +
                       (loop.crashes == 0 ? std::string(": no crash yet")
                                          : " crashed " + times(loop.crashes) + " in " +
                                                format_uptime(loop.since_ms)) +
                       ", restarted " + times(loop.restarts);
    if (loop.next_restart_ms)
      line += "; next restart in " + format_duration(Millis(*loop.next_restart_ms));
    std::printf("%s\n", printable(line).c_str());
  }
}

// "app web: rolled back 12s ago from generation 7 to generation 5: generation 7 crashed 2
// times within 1m of being put in place"; the app's versions (`status APP`); and the apps
// known that have no server.
void print_apps(const protocol::StatusReply& status) {
  for (const auto& app : status.apps) {
    // Only `status APP` has them: the versions `rollback APP` and `restart APP` deploy.
    if (!app.versions.empty())
      std::printf("%s\n", printable("app " + app.app + ": versions, oldest first:").c_str());
    for (size_t i = 0; i < app.versions.size(); ++i) {
      const auto& v = app.versions[i];
      std::string line = "  generation " + std::to_string(v.generation) +
                         (i + 1 == app.versions.size() ? " (current)" : "") + ": " +
                         join(v.argv, " ") + " (in " + v.cwd + ")";
      std::printf("%s\n", printable(line).c_str());
    }
    if (app.rolled_back) {
      const auto& back = *app.rolled_back;
      std::string line = "app " + app.app + ": rolled back " + format_uptime(back.since_ms) +
                         " ago from generation " + std::to_string(back.from_generation) +
                         " to generation " + std::to_string(back.to_generation) + ": " +
                         back.reason;
      if (back.failure) line += "; the rollback failed: " + *back.failure;
      std::printf("%s\n", printable(line).c_str());
    }
    bool runs = false;
    for (const auto& s : status.servers) runs = runs || s.app == app.app;
    for (const auto& l : status.crash_loops) runs = runs || l.app == app.app;
    if (!runs && app.generation > 0)
      std::printf("%s\n", printable("app " + app.app + ": no server runs (`serverswap restart " +
                                    app.app + "` starts generation " +
                                    std::to_string(app.generation) + "'s version again)")
                              .c_str());
  }
}

void print_table(const protocol::StatusReply& status) {
  // Every cell the daemon fills in may hold text a server chose (its argv, a Unix socket
  // path it asked for): escaped as the log escapes it, so that a newline cannot forge a row
  // and an escape sequence cannot drive root's terminal (docs/security.md).
  const protocol::DaemonStatus& d = status.daemon;
  std::printf("daemon pid %s, %s, socket %s\n", std::to_string(d.pid).c_str(),
              d.stopping ? "stopping" : "running", printable(d.socket).c_str());
  std::printf("%-16s %-8s %-4s %-6s %-10s %-8s %-8s %-28s %s\n", "APP", "PID", "GEN", "WORKER",
              "STATE", "UPTIME", "RESTARTS", "RESOURCES", "COMMAND");
  for (const auto& s : status.servers) {
    std::vector<std::string> addresses;
    for (const auto& r : s.resources) addresses.push_back(r.address);
    std::string resources = printable(join(addresses, ","));
    std::string command = printable(join(s.argv, " "));
    std::string worker_text = s.worker ? std::to_string(*s.worker) : "-";
    std::printf("%-16s %-8s %-4s %-6s %-10s %-8s %-8s %-28s %s\n",
                s.app.empty() ? "-" : printable(s.app).c_str(), std::to_string(s.pid).c_str(),
                std::to_string(s.generation).c_str(), worker_text.c_str(),
                printable(s.state).c_str(), format_uptime(s.uptime_ms).c_str(),
                std::to_string(s.restarts).c_str(), resources.empty() ? "-" : resources.c_str(),
                command.c_str());
  }
  print_crash_loops(status.crash_loops);
  print_apps(status);
  const protocol::StateFileStatus& file = d.state_file;
  if (!file.ok)
    std::printf(
        "warning: the daemon cannot write its state file %s (%s) for %s: if it restarts "
        "it will not find the servers started since\n",
        printable(file.path).c_str(), printable(file.error.value_or("")).c_str(),
        format_uptime(file.since_ms.value_or(0)).c_str());
}

// Keeps only `app`'s servers and crash loops in the reply's body (status APP), and of the
// daemon's sockets ("daemon"."resources") only those its servers hold: `status --json web`
// listed every app's sockets as if they were web's. False, with the app names there are in
// `apps`, when it has none.
bool only_app(protocol::Json& body, const std::string& app, std::string* apps) {
  std::set<std::string> names;
  std::set<std::string> held;  // resource names the app's servers hold
  bool any = false;
  for (const char* list : {"servers", "crashLoops", "apps"}) {
    if (!body.contains(list) || !body[list].is_array()) continue;
    protocol::Json kept = protocol::Json::array();
    for (const auto& entry : body[list]) {
      std::string of = entry.is_object() ? entry.value("app", "") : "";
      names.insert(of);
      if (of != app) continue;
      kept.push_back(entry);
      if (entry.contains("resources") && entry["resources"].is_array())
        for (const auto& r : entry["resources"])
          if (r.is_object() && r.contains("name") && r["name"].is_string())
            held.insert(r["name"].get<std::string>());
    }
    any = any || !kept.empty();
    body[list] = kept;
  }
  if (body.contains("daemon") && body["daemon"].is_object() &&
      body["daemon"].contains("resources") && body["daemon"]["resources"].is_array()) {
    protocol::Json kept = protocol::Json::array();
    for (const auto& r : body["daemon"]["resources"])
      if (r.is_object() && r.contains("name") && r["name"].is_string() &&
          held.count(r["name"].get<std::string>()))
        kept.push_back(r);
    body["daemon"]["resources"] = kept;
  }
  names.erase("");
  std::vector<std::string> sorted(names.begin(), names.end());
  *apps = sorted.empty() ? "no app runs" : "apps: " + join(sorted, ", ");
  return any;
}

// Asks once and prints the table (or JSON); the exit code.
int print_status(const GlobalOptions& options, bool json, const std::string& app) {
  int code = kOk;
  auto client = connect_or_say(options.socket, &code);
  if (!client) return code;
  // With an app, its versions too (the daemon leaves every app's versions out otherwise).
  protocol::StatusRequest request;
  if (!app.empty()) request.app = app;
  auto line = client->send(request.encode()).ok()
                  ? client->next_line(Millis(10'000))
                  : Result<std::string>(Status::error("could not ask the daemon"));
  if (line.ok() && json && app.empty()) {
    // Re-indented as it is parsed, without a tree (the same text as the tree's dump below).
    if (auto text = protocol::indented_body(*line, protocol::StatusReply::kName)) {
      text->push_back('\n');
      std::fwrite(text->data(), 1, text->size(), stdout);
      std::fflush(stdout);
      return kOk;
    }
  }
  auto reply = line.ok() ? decode_reply(*line) : Result<protocol::Message>(line.status());
  if (!reply.ok() || reply->name != protocol::StatusReply::kName) {
    say(reply.ok() ? "unexpected reply: " + reply->whole.dump() : reply.status().message());
    return kSystemError;
  }
  if (!app.empty()) {
    std::string apps;
    if (!only_app(reply->body, app, &apps)) {
      say("no app named '" + app + "' runs (" + apps + ")");
      return kFailed;
    }
    reply->whole = protocol::make(protocol::StatusReply::kName, reply->body);
  }
  if (json) {
    // ASCII only (\uXXXX beyond): a bidi control or line separator in a server's text stays
    // an escape in the JSON rather than reaching the terminal.
    std::printf("%s\n", reply->body.dump(2, ' ', true).c_str());
  } else {
    // A status of another shape (another version's daemon, or not a daemon at all) ends
    // this command with a message naming the field, never with an abort.
    auto status = protocol::StatusReply::decode(*reply);
    if (!status.ok()) {
      say("malformed status reply from the daemon: " + status.status().message());
      return kSystemError;
    }
    print_table(*status);
  }
  std::fflush(stdout);
  return kOk;
}

}  // namespace

int status_command(const GlobalOptions& options, bool json, const StatusWatch& watch,
                   const std::string& app) {
  if (!watch.enabled) return print_status(options, json, app);
  auto interval = parse_duration(watch.interval);
  if (!interval.ok() || interval->count() <= 0) {
    say("--interval: " +
        (interval.ok() ? std::string("must be above 0") : interval.status().message()));
    return kUsage;
  }
  // On a terminal each refresh replaces the last; into a pipe they follow one another.
  bool terminal = ::isatty(STDOUT_FILENO) == 1;
  for (int done = 0; watch.count == 0 || done < watch.count; ++done) {
    if (done > 0) {
      // The refresh period itself, not a wait for an event: nothing to wake on.
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(*interval).count();
      timespec pause{static_cast<time_t>(ns / 1'000'000'000),
                     static_cast<long>(ns % 1'000'000'000)};
      while (::nanosleep(&pause, &pause) != 0 && errno == EINTR) {
      }
    }
    if (terminal) std::fputs("\033[H\033[2J", stdout);
    if (int code = print_status(options, json, app); code != kOk) return code;
    if (!terminal) std::fputs("\n", stdout);
  }
  return kOk;
}

int stop_command(const GlobalOptions& options, const std::string& app) {
  int code = kOk;
  auto client = connect_or_say(options.socket, &code);
  if (!client) return code;
  protocol::StopRequest request;
  if (!app.empty()) request.app = app;
  if (Status s = client->send(request.encode()); !s.ok()) {
    say(s.message());
    return kSystemError;
  }
  for (;;) {
    auto reply = client->next();
    if (!reply.ok()) {
      say(reply.status().message());
      return kSystemError;
    }
    if (reply->name == "error" && !app.empty()) {
      say("stop " + app + ": " + reply->body.get<std::string>());
      return kFailed;
    }
    if (reply->name == protocol::Stopped::kName) {
      auto stopped = protocol::Stopped::decode(*reply);
      if (stopped.ok() && stopped->app) {
        say("app " + *stopped->app + " stopped: " + std::to_string(stopped->servers) + " server" +
            (stopped->servers == 1 ? "" : "s") + " exited; the daemon and other apps go on");
        return kOk;
      }
      say("every server has exited; the daemon has stopped");
      return kOk;
    }
  }
}

}  // namespace serverswap::cli
