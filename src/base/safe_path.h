// The safe_path rule of OpenSSH (auth.c), which serverswap applies to every directory whose
// contents it trusts: a directory is safe for the effective uid when it, and every directory
// the kernel passes through to reach it, is owned by root or by that uid and is writable by
// no one else, unless it is sticky: in a sticky directory (/tmp) no one may rename or remove
// what another user has there, and what is taken from it (the next component, checked in
// turn) must be root's or that uid's. Every symbolic link met on the way, in the path as
// written or in the target of another link, must moreover be root's or that uid's (another
// user could point it elsewhere later, which OpenSSH's realpath-based check misses), and the
// directories its target passes through are checked as well. Thread-safe (reads the file
// system only; no shared state).
#pragma once

#include <sys/types.h>

#include <string>

#include "base/status.h"

namespace serverswap {

// The first component met while resolving `dir` (absolute, existing; itself included) that
// breaks the rule, or an empty `unsafe` when none does. The path is resolved one component
// at a time, as the kernel would (systemd's chase() does the same), each relative to a
// descriptor of the directory before it (O_PATH|O_NOFOLLOW), so that what is checked is
// what is followed; a symbolic link is checked, then its target resolved the same way (at
// most 40 links, ELOOP beyond). `unsafe` is the component as it was reached (a link's own
// path, a directory's path through the links before it), and `why` says how, for a
// message: "which belongs to uid 1000 (neither root nor you)", "which has mode 0777
// (writable by others, not sticky)", "a symbolic link that belongs to uid 65534 (neither
// root nor you), to /elsewhere".
struct UnsafeComponent {
  std::string unsafe;  // the component's path, empty when the whole path is safe
  std::string why;
};
// Errors: a component that cannot be opened or read ("resolve DIR: PATH: No such file or
// directory"), one that is not a directory before the end ("…: Not a directory"), more
// than 40 symbolic links ("…: Too many levels of symbolic links").
Result<UnsafeComponent> find_unsafe_component(const std::string& dir);

// `path` (absolute) with "." and ".." taken out as the kernel resolves them: a ".." goes to
// the parent of what the component before it resolved to, which is the textual parent
// unless that component is a symbolic link (then the link's target is resolved first:
// "/a/link/../s" is "/t/s" when link points to /t/x; std::filesystem's lexically_normal
// would say "/a/s"). So a path the daemon is given and uses reaches what any other program
// given it reaches. Errors: a component before a ".." that cannot be resolved
// ("resolve PATH: /a/b: No such file or directory"). Thread-safe.
Result<std::string> resolve_dot_dot(const std::string& path);

// `mode & 07777` as four octal digits: "0755".
std::string octal_mode(mode_t mode);

}  // namespace serverswap
