// The safe_path rule of OpenSSH (auth.c), which serverswap applies to every directory whose
// contents it trusts: a directory is safe for the effective uid when it, and every directory
// on the way to it as the kernel resolves it (symbolic links followed), is owned by root or
// by that uid and is writable by no one else, unless it is sticky: in a sticky directory
// (/tmp) no one may rename or remove what another user has there. A symbolic link on the way
// must moreover be root's or that uid's (another user could point it elsewhere later, as
// OpenSSH's realpath-based check misses). Thread-safe (reads the
// file system only).
#pragma once

#include <sys/types.h>

#include <string>

#include "base/status.h"

namespace serverswap {

// The first component of `dir` (absolute, existing; itself included) that breaks the rule,
// or an empty `unsafe` when none does. `why` then says how, for a message: "which belongs to
// uid 1000 (neither root nor you)", "which has mode 0777 (writable by others, not sticky)".
struct UnsafeComponent {
  std::string unsafe;  // the component's path, empty when the whole path is safe
  std::string why;
};
// Errors: realpath(3) or stat(2) failing on `dir` or an ancestor (the errno text and path).
Result<UnsafeComponent> find_unsafe_component(const std::string& dir);

// `mode & 07777` as four octal digits: "0755".
std::string octal_mode(mode_t mode);

}  // namespace serverswap
