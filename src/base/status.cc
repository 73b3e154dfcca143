#include "base/status.h"

#include <cstring>

namespace serverswap {

Status Status::system_error(const std::string& what, int err) {
  return Status(what + ": " + std::strerror(err));
}

}  // namespace serverswap
