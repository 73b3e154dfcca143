#include "daemon/process/output_pipe.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace serverswap::daemon {

namespace {

PipeId pipe_id(const struct stat& st) {
  return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

}  // namespace

Result<OutputPipe> make_output_pipe() {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0)
    return Status::system_error("pipe2 (a server's output)", errno);
  OutputPipe pipe{UniqueFd(ends[0]), UniqueFd(ends[1]), {}};
  // Best effort: what the server may write while no daemon reads (output_pipe.h).
  (void)::fcntl(pipe.write.get(), F_SETPIPE_SZ, kPipeBytes);
  struct stat st;
  if (::fstat(pipe.read.get(), &st) != 0)
    return Status::system_error("fstat of a server's output pipe", errno);
  pipe.id = pipe_id(st);
  return pipe;
}

Result<UniqueFd> reopen_output_pipe(pid_t pid, PipeId id) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* listing = ::opendir(dir.c_str());
  if (!listing) return Status::system_error("open " + dir, errno);
  std::unique_ptr<DIR, int (*)(DIR*)> closer(listing, ::closedir);
  while (dirent* entry = ::readdir(listing)) {
    if (entry->d_name[0] == '.') continue;
    const std::string path = dir + "/" + entry->d_name;
    struct stat st;
    // stat follows the magic link to the open file itself: a pipe of pipefs.
    if (::stat(path.c_str(), &st) != 0 || !S_ISFIFO(st.st_mode) || !(pipe_id(st) == id)) continue;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!fd) continue;  // closed or replaced since: try the next one
    // The descriptor may have been replaced between stat and open: check what was opened.
    if (::fstat(fd.get(), &st) != 0 || !S_ISFIFO(st.st_mode) || !(pipe_id(st) == id)) continue;
    return fd;
  }
  return Status::error("process " + std::to_string(pid) + " holds its output pipe no more");
}

void LineSplitter::feed(std::string_view bytes, const LineFn& line) {
  while (!bytes.empty()) {
    size_t room = kMaxLine - partial_.size();
    size_t newline = bytes.substr(0, room).find('\n');
    if (newline == std::string_view::npos) {
      size_t take = std::min(room, bytes.size());
      partial_.append(bytes.substr(0, take));
      bytes.remove_prefix(take);
      if (partial_.size() == kMaxLine) finish(line);  // a long line goes out in pieces
      continue;
    }
    partial_.append(bytes.substr(0, newline));
    bytes.remove_prefix(newline + 1);
    if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
    std::string done;
    done.swap(partial_);
    line(done);
  }
}

void LineSplitter::finish(const LineFn& line) {
  if (partial_.empty()) return;
  std::string done;
  done.swap(partial_);
  line(done);
}

struct OutputReader::Block {
  uv_poll_t poll;
  UniqueFd fd;
  LineSplitter splitter;
  LineFn on_line;
  EndFn on_end;
  bool paused = false;
  bool ended = false;
};

namespace {

template <class Block>
void on_readable(uv_poll_t* p, int, int) {
  auto* self = static_cast<Block*>(p->data);
  char buffer[65536];
  // One read per wakeup: a server that writes without pause shares the loop with the rest.
  ssize_t n = ::read(self->fd.get(), buffer, sizeof buffer);
  if (n > 0) {
    self->splitter.feed(std::string_view(buffer, static_cast<size_t>(n)), self->on_line);
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  // End of file (every write end closed) or an error: what is left is the last line.
  self->splitter.finish(self->on_line);
  self->ended = true;
  uv_poll_stop(p);
  self->on_end();  // may destroy the owner; touch nothing after
}

}  // namespace

Result<std::unique_ptr<OutputReader>> OutputReader::start(uv_loop_t* loop, UniqueFd read,
                                                          LineFn on_line, EndFn on_end) {
  int flags = ::fcntl(read.get(), F_GETFL);
  if (flags < 0 || ::fcntl(read.get(), F_SETFL, flags | O_NONBLOCK) != 0)
    return Status::system_error("fcntl O_NONBLOCK on a server's output pipe", errno);
  auto* block = new Block;
  block->fd = std::move(read);
  block->on_line = std::move(on_line);
  block->on_end = std::move(on_end);
  if (int rc = uv_poll_init(loop, &block->poll, block->fd.get()); rc != 0) {
    delete block;
    return Status::error(std::string("uv_poll_init on a server's output pipe: ") + uv_strerror(rc));
  }
  block->poll.data = block;
  // Reading output never keeps the daemon alive: a process that left its server (setsid) and
  // holds the pipe must not stop `serverswap stop` from ending the daemon.
  uv_unref(reinterpret_cast<uv_handle_t*>(&block->poll));
  uv_poll_start(&block->poll, UV_READABLE | UV_DISCONNECT, on_readable<Block>);
  return std::unique_ptr<OutputReader>(new OutputReader(block));
}

void OutputReader::flush() {
  block_->splitter.finish(block_->on_line);
}

void OutputReader::pause() {
  if (block_->paused || block_->ended) return;
  block_->paused = true;
  uv_poll_stop(&block_->poll);
}

void OutputReader::resume() {
  if (!block_->paused || block_->ended) return;
  block_->paused = false;
  uv_poll_start(&block_->poll, UV_READABLE | UV_DISCONNECT, on_readable<Block>);
}

OutputReader::~OutputReader() {
  // The fd closes with the block, after libuv has let go of the poll handle.
  uv_close(reinterpret_cast<uv_handle_t*>(&block_->poll),
           [](uv_handle_t* h) { delete static_cast<Block*>(h->data); });
}

}  // namespace serverswap::daemon
