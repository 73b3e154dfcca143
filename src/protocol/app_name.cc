#include "protocol/app_name.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <span>

namespace serverswap::protocol {
namespace {

bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

std::string_view base_name(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// "python3.11" is python3; "nodejs" (Debian's name) is node.
bool interpreter(std::string_view program) {
  static constexpr std::array<std::string_view, 22> kInterpreters = {
      "node",  "nodejs", "bun",  "deno",    "python", "python2", "python3", "pypy",
      "pypy3", "ruby",   "perl", "php",     "lua",    "sh",      "bash",    "dash",
      "zsh",   "ksh",    "tsx",  "ts-node", "java",   "Rscript"};
  std::string_view bare = program;
  if (bare.starts_with("python") || bare.starts_with("pypy"))
    bare = bare.substr(0, bare.find_first_of(".", 0));
  return std::find(kInterpreters.begin(), kInterpreters.end(), bare) != kInterpreters.end();
}

// Interpreter options whose value is the next argument (node's, python's, ruby's, perl's,
// java's most used ones). `-m`, `-e`, `-c`, `-jar` are handled by the caller.
bool takes_value(std::string_view option) {
  static constexpr std::array<std::string_view, 12> kWithValue = {
      "-r",  "--require",    "--import", "--loader", "--experimental-loader",
      "-C",  "--conditions", "-W",       "-X",       "-I",
      "-cp", "-classpath"};
  return std::find(kWithValue.begin(), kWithValue.end(), option) != kWithValue.end();
}

std::string_view without_extension(std::string_view file) {
  static constexpr std::array<std::string_view, 14> kExtensions = {
      ".js", ".mjs", ".cjs", ".ts", ".mts", ".py",  ".pyz",
      ".rb", ".pl",  ".php", ".sh", ".lua", ".jar", ".R"};
  for (auto ext : kExtensions)
    if (file.size() > ext.size() && file.ends_with(ext))
      return file.substr(0, file.size() - ext.size());
  return file;
}

// What an interpreter runs: its script, its module (-m), or itself (inline code, a REPL).
std::string interpreted(std::span<const std::string> argv) {
  for (size_t i = 1; i < argv.size(); ++i) {
    std::string_view arg = argv[i];
    if ((arg == "-m" || arg == "-jar") && i + 1 < argv.size())
      return std::string(arg == "-m" ? std::string_view(argv[i + 1])
                                     : without_extension(base_name(argv[i + 1])));
    if (arg == "-e" || arg == "-c" || arg == "--eval" || arg == "-") break;
    if (arg.starts_with('-')) {
      if (takes_value(arg)) ++i;
      continue;
    }
    return std::string(without_extension(base_name(arg)));
  }
  return std::string(base_name(argv[0]));
}

std::string named_program(std::span<const std::string> argv);

bool shell(std::string_view program) {
  return program == "sh" || program == "bash" || program == "dash" || program == "zsh" ||
         program == "ksh";
}

// `sh -c SCRIPT`: the program the script execs (the words after its last `exec `), else its
// first word; assignments (`PORT=1`) and `env` before it are skipped. Empty when the script
// names none.
std::string scripted(std::string_view script) {
  std::vector<std::string> words;
  size_t exec = script.rfind("exec ");
  if (exec != std::string_view::npos &&
      (exec == 0 || script[exec - 1] == ' ' || script[exec - 1] == ';' || script[exec - 1] == '&'))
    script.remove_prefix(exec + 5);
  size_t at = 0;
  while (at < script.size()) {
    size_t start = script.find_first_not_of(" \t\n", at);
    if (start == std::string_view::npos) break;
    size_t end = script.find_first_of(" \t\n;&|<>", start);
    if (end == start) break;  // an operator: the command ends
    words.emplace_back(script.substr(start, end - start));
    if (end == std::string_view::npos || script[end] != ' ') break;
    at = end;
  }
  while (!words.empty() && (words.front() == "env" || words.front().find('=') != std::string::npos))
    words.erase(words.begin());
  return words.empty() ? std::string() : named_program(words);
}

std::string named_program(std::span<const std::string> argv) {
  std::string_view program = base_name(argv[0]);
  if (shell(program)) {
    for (size_t i = 1; i + 1 < argv.size(); ++i)
      if (argv[i] == "-c") {
        std::string named = scripted(argv[i + 1]);
        return named.empty() ? std::string(program) : named;
      }
  }
  if (program == "env") {
    for (size_t i = 1; i < argv.size(); ++i) {
      std::string_view arg = argv[i];
      if (!arg.starts_with('-') && arg.find('=') == std::string_view::npos)
        return named_program(argv.subspan(i));
    }
    return std::string(program);
  }
  return interpreter(program) ? interpreted(argv) : std::string(program);
}

}  // namespace

Status check_app_name(std::string_view name) {
  if (name.empty()) return Status::error("an app name must not be empty");
  if (name.size() > kMaxAppNameBytes)
    return Status::error("an app name is at most " + std::to_string(kMaxAppNameBytes) + " bytes");
  if (!std::all_of(name.begin(), name.end(), name_char))
    return Status::error("an app name may hold only letters, digits, '.', '_' and '-'");
  if (name.front() == '.' || name.front() == '-')
    return Status::error("an app name must not start with '.' or '-'");
  if (name == "all")
    return Status::error("\"all\" is not an app name (stop --all stops every app)");
  return {};
}

std::string derive_app_name(const std::vector<std::string>& argv) {
  if (argv.empty()) return "app";
  std::string name(named_program(argv));
  for (char& c : name)
    if (!name_char(c)) c = '-';
  while (!name.empty() && (name.front() == '.' || name.front() == '-')) name.erase(0, 1);
  if (name.size() > kMaxAppNameBytes) name.resize(kMaxAppNameBytes);
  if (name.empty() || name == "all") return "app";
  return name;
}

}  // namespace serverswap::protocol
