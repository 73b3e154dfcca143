// join: words with a separator between them ("a b c"). Used for command lines in log lines.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace serverswap {

inline std::string join(const std::vector<std::string>& words, std::string_view separator) {
  std::string out;
  for (const auto& word : words) {
    if (!out.empty()) out.append(separator);
    out.append(word);
  }
  return out;
}

}  // namespace serverswap
