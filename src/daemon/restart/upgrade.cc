#include "daemon/restart/upgrade.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

namespace serverswap::daemon {

namespace {

// More than any version line: beyond it the answer is not one.
constexpr size_t kMaxVersionOutput = 4096;

}  // namespace

// The child, its stdout and the deadline, freed when all three handles are closed (the
// process handle only once the child has exited, so that libuv reaps it).
struct VersionProbe::Block {
  uv_process_t process;
  uv_pipe_t out;
  uv_timer_t timer;
  int open_handles = 3;
  VersionProbe* owner = nullptr;
  Done done;
  std::string path;
  Millis timeout{0};
  std::string output;
  char buffer[1024];
  bool exited = false, eof = false, finished = false;
  int64_t exit_status = 0;
  int term_signal = 0;

  std::string first_line() const { return output.substr(0, output.find('\n')); }

  void handle_closed() {
    if (--open_handles > 0) return;
    if (owner) owner->block_ = nullptr;
    delete this;
  }

  static void closed(uv_handle_t* h) { static_cast<Block*>(h->data)->handle_closed(); }

  // Stops watching; kills the child's group unless it has exited (then its pid may be
  // reused, and there is nothing to kill). The process handle closes at its exit.
  void stop() {
    finished = true;
    if (!exited) ::kill(-process.pid, SIGKILL);
    uv_close(reinterpret_cast<uv_handle_t*>(&out), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), closed);
    if (exited) uv_close(reinterpret_cast<uv_handle_t*>(&process), closed);
  }

  void finish(Result<std::string> result) {
    if (finished) return;
    stop();
    Done call = std::move(done);
    done = nullptr;
    if (call) call(std::move(result));  // may destroy the owner: this block lives on
  }

  // Done once the child has exited and its answer is complete (a newline, or its stdout
  // closed); until the deadline otherwise.
  void check() {
    if (!exited || (!eof && output.find('\n') == std::string::npos)) return;
    std::string what = path + " --version";
    if (term_signal != 0)
      return finish(Status::error(what + " was killed by signal " + std::to_string(term_signal)));
    if (exit_status != 0)
      return finish(
          Status::error(what + " failed (exit status " + std::to_string(exit_status) + ")"));
    std::string line = first_line();
    if (!line.starts_with("serverswap "))
      return finish(Status::error(what + " answered '" + line.substr(0, 200) +
                                  "', not serverswap's version"));
    finish(line);
  }

  void timed_out() {
    std::string what = path + " --version";
    std::string did = output.find('\n') != std::string::npos
                          ? "printed '" + first_line().substr(0, 200) + "' but did not exit"
                          : (eof ? "closed its output but did not exit" : "did not answer");
    finish(Status::error(what + " " + did + " within " + format_duration(timeout) +
                         "; killed it, the daemon goes on unchanged"));
  }
};

Result<std::unique_ptr<VersionProbe>> VersionProbe::start(uv_loop_t* loop, const std::string& path,
                                                          Millis timeout, Done done) {
  auto* block = new Block;
  block->done = std::move(done);
  block->path = path;
  block->timeout = timeout;
  block->process.data = block->out.data = block->timer.data = block;
  uv_pipe_init(loop, &block->out, 0);
  uv_timer_init(loop, &block->timer);

  std::string arg0 = path, flag = "--version";
  char* args[] = {arg0.data(), flag.data(), nullptr};
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = reinterpret_cast<uv_stream_t*>(&block->out);
  stdio[2].flags = UV_IGNORE;
  uv_process_options_t options{};
  options.file = path.c_str();
  options.args = args;
  options.stdio = stdio;
  options.stdio_count = 3;
  // setsid: a group of its own, so that killing it reaches whatever it forked.
  options.flags = UV_PROCESS_DETACHED;
  options.exit_cb = [](uv_process_t* p, int64_t status, int signal) {
    auto* b = static_cast<Block*>(p->data);
    b->exited = true;
    b->exit_status = status;
    b->term_signal = signal;
    // A --version probe has no business leaving processes behind: what it forked into its
    // group goes with it. Sent now, in the turn that reaped it, so the group id (kept while
    // any member lives) cannot be a reused pid's.
    ::kill(-p->pid, SIGKILL);
    if (b->finished) return uv_close(reinterpret_cast<uv_handle_t*>(p), Block::closed);
    b->check();
  };
  if (int rc = uv_spawn(loop, &block->process, &options); rc != 0) {
    // libuv wants the process handle closed even when the spawn failed.
    block->finished = block->exited = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&block->out), Block::closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&block->timer), Block::closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&block->process), Block::closed);
    return Status::error("run " + path + " --version: " + uv_strerror(rc));
  }
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&block->out),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* b = static_cast<Block*>(h->data);
        *buf = uv_buf_init(b->buffer, sizeof b->buffer);
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* b = static_cast<Block*>(s->data);
        if (b->finished) return;
        if (n < 0) {
          b->eof = true;
          uv_read_stop(s);
        } else {
          b->output.append(buf->base, static_cast<size_t>(n));
          if (b->output.size() > kMaxVersionOutput)
            return b->finish(Status::error(b->path + " --version printed more than " +
                                           std::to_string(kMaxVersionOutput) +
                                           " bytes; not serverswap's version"));
        }
        b->check();
      });
  uv_timer_start(
      &block->timer, [](uv_timer_t* t) { static_cast<Block*>(t->data)->timed_out(); },
      static_cast<uint64_t>(timeout.count()), 0);
  std::unique_ptr<VersionProbe> probe(new VersionProbe(block));
  block->owner = probe.get();
  return probe;
}

VersionProbe::~VersionProbe() {
  if (!block_) return;
  block_->owner = nullptr;
  block_->done = nullptr;
  if (!block_->finished) block_->stop();
}

Status exec_keeping(const std::string& path, const std::vector<std::string>& argv,
                    const std::vector<int>& inherited) {
  for (int fd : inherited) ::fcntl(fd, F_SETFD, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(path.c_str(), args.data());
  int err = errno;
  for (int fd : inherited) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return Status::system_error("exec " + path, err);
}

}  // namespace serverswap::daemon
