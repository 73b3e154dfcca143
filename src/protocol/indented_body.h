// The body of a message as `serverswap status --json` prints it, re-indented while it is
// parsed (nlohmann's SAX parser feeding a JsonWriter), without a JSON tree: the reply of a
// daemon with 1,000 apps is 250 KB, and parsing it into a tree, dumping that and freeing it
// was most of the command's CPU (issue 13).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace serverswap::protocol {

// decode(line)->body.dump(2, ' ', true) (indented by 2, ASCII only: \uXXXX beyond), byte
// for byte, when `line` is a message named `name`. nullopt when it is not (another
// message, or a line decode() refuses: too deep, malformed), and when a repeated key
// would make the tree keep only the last value: the caller then decodes the line as
// usual, for its error or its other reply.
std::optional<std::string> indented_body(std::string_view line, std::string_view name);

}  // namespace serverswap::protocol
