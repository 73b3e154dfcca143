#include "daemon/process/process_tree.h"

#include <fstream>
#include <sstream>

namespace serverswap::daemon {

Result<uint64_t> process_start_time(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  std::ifstream in(path);
  std::string text;
  if (!in || !std::getline(in, text)) return Status::error(path + ": no such process");
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos) return Status::error(path + ": unexpected format");
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(fields >> field)) return Status::error(path + ": too few fields");
  }
  return static_cast<uint64_t>(std::stoull(field));
}

pid_t parent_pid(pid_t pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!in || !std::getline(in, text)) return -1;
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos || close + 2 > text.size()) return -1;
  std::istringstream fields(text.substr(close + 2));
  std::string state;
  long parent = -1;
  if (!(fields >> state >> parent)) return -1;
  return static_cast<pid_t>(parent);
}

bool is_process_of(pid_t pid, pid_t ancestor, uint64_t ancestor_start_time) {
  if (pid <= 0 || ancestor <= 0) return false;
  pid_t current = pid;
  for (int depth = 0; depth <= kMaxProcessDepth; ++depth) {
    if (current == ancestor) {
      if (ancestor_start_time == 0) return true;
      auto started = process_start_time(ancestor);
      return started.ok() && *started == ancestor_start_time;
    }
    current = parent_pid(current);
    if (current <= 0) return false;  // gone, or reached the top (pid 1's parent is 0)
  }
  return false;
}

std::string process_comm(pid_t pid) {
  if (pid <= 0) return "?";
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  if (!in || !std::getline(in, name) || name.empty()) return "?";
  return name;
}

}  // namespace serverswap::daemon
