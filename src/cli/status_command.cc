// `serverswap status [--json] [--watch]` and `serverswap stop`.
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <stdexcept>

#include "base/duration.h"
#include "base/join.h"
#include "cli/commands.h"
#include "cli/control_client.h"
#include "cli/socket_path.h"

namespace serverswap::cli {
namespace {

using protocol::Json;

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
void print_crash_loops(const Json& loops) {
  for (const auto& loop : loops) {
    std::string command = join(loop["argv"].get<std::vector<std::string>>(), " ");
    if (loop.contains("worker"))
      command.append(" (worker ").append(loop["worker"].dump()).append(")");
    std::string line = "crash loop: " + command + " crashed " +
                       std::to_string(loop.value("crashes", 0)) + " times in " +
                       format_uptime(loop.value("since_ms", 0LL)) + ", restarted " +
                       std::to_string(loop.value("restarts", 0)) + " times";
    if (loop.contains("next_restart_ms"))
      line +=
          "; next restart in " + format_duration(Millis(loop["next_restart_ms"].get<long long>()));
    std::printf("%s\n", line.c_str());
  }
}

void print_table(const Json& status) {
  const Json& d = status["daemon"];
  std::printf("daemon pid %s, %s, socket %s\n", d["pid"].dump().c_str(),
              d.value("stopping", false) ? "stopping" : "running", d.value("socket", "").c_str());
  std::printf("%-8s %-4s %-6s %-10s %-8s %-8s %-28s %s\n", "PID", "GEN", "WORKER", "STATE",
              "UPTIME", "RESTARTS", "RESOURCES", "COMMAND");
  for (const auto& s : status["servers"]) {
    std::vector<std::string> addresses;
    for (const auto& r : s["resources"])
      addresses.push_back(r.value("address", r.value("name", "")));
    std::string resources = join(addresses, ",");
    std::string command = join(s["argv"].get<std::vector<std::string>>(), " ");
    const Json& worker = s.value("worker", Json());
    std::string worker_text = worker.is_number() ? worker.dump() : "-";
    std::printf("%-8s %-4s %-6s %-10s %-8s %-8s %-28s %s\n", s["pid"].dump().c_str(),
                s["generation"].dump().c_str(), worker_text.c_str(), s.value("state", "").c_str(),
                format_uptime(s.value("uptime_ms", 0LL)).c_str(),
                std::to_string(s.value("restarts", 0)).c_str(),
                resources.empty() ? "-" : resources.c_str(), command.c_str());
  }
  print_crash_loops(status.value("crashLoops", Json::array()));
  const Json& file = d.value("stateFile", Json::object());
  if (file.is_object() && !file.value("ok", true))
    std::printf(
        "warning: the daemon cannot write its state file %s (%s) for %s: if it restarts "
        "it will not find the servers started since\n",
        file.value("path", "").c_str(), file.value("error", "").c_str(),
        format_uptime(file.value("since_ms", 0LL)).c_str());
}

// The fields print_table reads with operator[]: on a const object, a missing one is
// undefined behaviour rather than an exception, so a reply without them is refused first.
bool has_table_fields(const Json& status) {
  auto has = [](const Json& o, std::initializer_list<const char*> keys) {
    if (!o.is_object()) return false;
    for (const char* key : keys)
      if (!o.contains(key)) return false;
    return true;
  };
  if (!has(status, {"daemon", "servers"}) || !has(status["daemon"], {"pid"}) ||
      !status["servers"].is_array())
    return false;
  for (const auto& server : status["servers"])
    if (!has(server, {"pid", "generation", "argv", "resources"})) return false;
  for (const auto& loop : status.value("crashLoops", Json::array()))
    if (!has(loop, {"argv"})) return false;
  return true;
}

// Asks once and prints the table (or JSON); the exit code.
int print_status(const GlobalOptions& options, bool json) {
  int code = kOk;
  auto client = connect_or_say(options.socket, &code);
  if (!client) return code;
  auto reply = client->send(protocol::make("status", true)).ok()
                   ? client->next(Millis(10'000))
                   : Result<protocol::Message>(Status::error("could not ask the daemon"));
  if (!reply.ok() || reply->name != "status") {
    say(reply.ok() ? "unexpected reply: " + reply->whole.dump() : reply.status().message());
    return kSystemError;
  }
  if (json) {
    std::printf("%s\n", reply->body.dump(2).c_str());
  } else {
    // A status of another shape (another version's daemon, or not a daemon at all) ends
    // this command with a message, never with an abort.
    try {
      if (!has_table_fields(reply->body)) throw std::invalid_argument("a field is missing");
      print_table(reply->body);
    } catch (const std::exception& e) {
      say(std::string("malformed status reply from the daemon: ") + e.what());
      return kSystemError;
    }
  }
  std::fflush(stdout);
  return kOk;
}

}  // namespace

int status_command(const GlobalOptions& options, bool json, const StatusWatch& watch) {
  if (!watch.enabled) return print_status(options, json);
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
    if (int code = print_status(options, json); code != kOk) return code;
    if (!terminal) std::fputs("\n", stdout);
  }
  return kOk;
}

int stop_command(const GlobalOptions& options) {
  int code = kOk;
  auto client = connect_or_say(options.socket, &code);
  if (!client) return code;
  if (Status s = client->send(protocol::make("stop", true)); !s.ok()) {
    say(s.message());
    return kSystemError;
  }
  for (;;) {
    auto reply = client->next();
    if (!reply.ok()) {
      say(reply.status().message());
      return kSystemError;
    }
    if (reply->name == "stopped") {
      say("every server has exited; the daemon has stopped");
      return kOk;
    }
  }
}

}  // namespace serverswap::cli
