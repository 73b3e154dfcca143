// A server's output pipe: its stdout and stderr are the write end of a pipe that the daemon
// reads, so that what a server writes reaches the daemon's log as lines of that server
// (escaped, rate-limited, never mistaken for the daemon's own), and no server ever holds a
// descriptor of the daemon's log (docs/security.md, "Server output").
//
// The pipe outlives the daemon: the server keeps a read end of its own pipe open (never
// read), so that a write while no daemon reads (between a SIGKILL of the daemon and its
// restart, or across `serverswap upgrade`) is buffered instead of raising SIGPIPE, and the
// next daemon opens a read end again through /proc/PID/fd. journald's stdout streams make
// the same trade: while nobody reads, a writer blocks once the pipe is full (kPipeBytes).
// Loop thread only.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "base/unique_fd.h"
#include "daemon/core/processes.h"

namespace serverswap::daemon {

// The size asked for with F_SETPIPE_SZ (best effort: an unprivileged daemon may get less,
// /proc/sys/fs/pipe-max-size): what a server can write while no daemon reads.
inline constexpr int kPipeBytes = 1 << 20;

struct OutputPipe {
  UniqueFd read;   // the daemon's (close-on-exec)
  UniqueFd write;  // the server's stdout and stderr (close-on-exec in the daemon)
  PipeId id;
};

// A new pipe, both ends close-on-exec. Errors name pipe2(2) and the errno.
Result<OutputPipe> make_output_pipe();

// A read end of pipe `id`, opened again through a descriptor of process `pid` that refers to
// it (/proc/PID/fd/N; only a pipe whose st_dev and st_ino match is opened, so a file or a
// FIFO the server put in its place never is). Non-blocking, close-on-exec. An error when
// `pid` has no descriptor of that pipe left or /proc refuses.
Result<UniqueFd> reopen_output_pipe(pid_t pid, PipeId id);

// Cuts a byte stream into lines: a line ends at '\n' (a '\r' before it is dropped) or at
// kMaxLine bytes, whichever comes first; finish() gives the rest. Pure, for tests and the
// fuzzer.
class LineSplitter {
 public:
  static constexpr size_t kMaxLine = 8192;
  using LineFn = std::function<void(std::string_view line)>;

  // Calls `line` for every complete line in `bytes` (with what earlier calls left over).
  void feed(std::string_view bytes, const LineFn& line);
  // The unterminated rest, if any, as a last line.
  void finish(const LineFn& line);

 private:
  std::string partial_;
};

// Reads a server's output pipe on the loop until every writer has closed it.
class OutputReader {
 public:
  using LineFn = LineSplitter::LineFn;
  using EndFn = std::function<void()>;

  // Owns `read`. `on_line` runs for every line; `on_end` once, after the last line, when
  // no process holds a write end any more or reading failed (it may destroy this reader).
  static Result<std::unique_ptr<OutputReader>> start(uv_loop_t* loop, UniqueFd read, LineFn on_line,
                                                     EndFn on_end);
  ~OutputReader();
  OutputReader(const OutputReader&) = delete;
  // Gives what was read of an unterminated line as a line now (before the daemon executes
  // itself again: the next image cannot read those bytes).
  void flush();
  // Stops and starts polling the pipe (idempotent): while paused nothing is read, and its
  // writers block once it is full.
  void pause();
  void resume();
  OutputReader& operator=(const OutputReader&) = delete;

 private:
  struct Block;
  explicit OutputReader(Block* block) : block_(block) {}
  Block* block_;
};

}  // namespace serverswap::daemon
