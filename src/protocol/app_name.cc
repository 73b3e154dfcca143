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
std::string_view interpreted(std::span<const std::string> argv) {
  for (size_t i = 1; i < argv.size(); ++i) {
    std::string_view arg = argv[i];
    if ((arg == "-m" || arg == "-jar") && i + 1 < argv.size())
      return arg == "-m" ? std::string_view(argv[i + 1])
                         : without_extension(base_name(argv[i + 1]));
    if (arg == "-e" || arg == "-c" || arg == "--eval" || arg == "-") break;
    if (arg.starts_with('-')) {
      if (takes_value(arg)) ++i;
      continue;
    }
    return without_extension(base_name(arg));
  }
  return base_name(argv[0]);
}

std::string_view named_program(std::span<const std::string> argv) {
  std::string_view program = base_name(argv[0]);
  if (program == "env") {
    for (size_t i = 1; i < argv.size(); ++i) {
      std::string_view arg = argv[i];
      if (!arg.starts_with('-') && arg.find('=') == std::string_view::npos)
        return named_program(argv.subspan(i));
    }
    return program;
  }
  return interpreter(program) ? interpreted(argv) : program;
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
