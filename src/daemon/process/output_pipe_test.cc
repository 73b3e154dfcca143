#include "daemon/process/output_pipe.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/testing/temp_dir.h"
#include "daemon/process/server_process.h"
#include "daemon/process/system_processes.h"
#include "daemon/testing/uv_loop.h"

namespace serverswap::daemon {
namespace {

using serverswap::testing::TempDir;
using testing::Loop;

std::vector<std::string> split(std::vector<std::string_view> chunks, bool finish = true) {
  std::vector<std::string> lines;
  LineSplitter splitter;
  auto add = [&](std::string_view line) { lines.emplace_back(line); };
  for (auto chunk : chunks) splitter.feed(chunk, add);
  if (finish) splitter.finish(add);
  return lines;
}

TEST(LineSplitter, LinesEndAtNewlinesAcrossChunksAndCarriageReturnsGo) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split({"a\nb\r\n", "c"}), (V{"a", "b", "c"}));
  EXPECT_EQ(split({"a", "b", "\n"}), (V{"ab"}));
  EXPECT_EQ(split({"\n\n"}), (V{"", ""}));
  EXPECT_EQ(split({"unterminated"}, false), V{});
  EXPECT_EQ(split({"x\r"}), (V{"x\r"}));  // a lone \r at the end is no line ending
}

TEST(LineSplitter, ALongLineGoesOutInPiecesOfTheMaximum) {
  std::string big(2 * LineSplitter::kMaxLine + 5, 'x');
  auto lines = split({big.substr(0, 100), big.substr(100), "\n"});
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].size(), LineSplitter::kMaxLine);
  EXPECT_EQ(lines[1].size(), LineSplitter::kMaxLine);
  EXPECT_EQ(lines[2], "xxxxx");
}

SpawnSpec command(std::vector<std::string> argv) {
  SpawnSpec spec;
  spec.argv = std::move(argv);
  return spec;
}

// The descriptor number (>= 100) at which process `pid` keeps a read end of pipe `id`; -1.
int kept_read_end(pid_t pid, PipeId id) {
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    struct stat st;
    int fd = std::stoi(entry.path().filename().string());
    if (fd >= 100 && ::stat(entry.path().c_str(), &st) == 0 &&
        static_cast<uint64_t>(st.st_ino) == id.ino)
      return fd;
  }
  return -1;
}

TEST(OutputPipe, StdoutAndStderrOfAServerAreReadLineByLineUntilItsLastWriterCloses) {
  Loop loop;
  SystemProcesses processes(&loop.loop);
  std::vector<std::string> lines;
  pid_t said_by = 0;
  int64_t status = -1;
  auto process = processes.spawn(
      command({"/bin/sh", "-c", "echo one; echo two >&2; printf three"}),
      [&](int64_t s, int) { status = s; }, {},
      [&](pid_t pid, std::string_view line) {
        said_by = pid;
        lines.emplace_back(line);
      });
  ASSERT_TRUE(process.ok()) << process.status().message();
  EXPECT_FALSE((*process)->output_pipe().empty());
  // Reading output keeps no loop alive (the daemon's control socket does): a timer does here,
  // until the third line or 10 s.
  struct Keeper {
    uv_timer_t timer;
    std::vector<std::string>* lines;
    int ticks = 0;
  } keeper{{}, &lines};
  uv_timer_init(&loop.loop, &keeper.timer);
  keeper.timer.data = &keeper;
  uv_timer_start(
      &keeper.timer,
      [](uv_timer_t* t) {
        auto* k = static_cast<Keeper*>(t->data);
        if (k->lines->size() >= 3 || ++k->ticks > 10000)
          uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
      },
      1, 1);
  uv_run(&loop.loop, UV_RUN_DEFAULT);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(said_by, (*process)->pid());
}

// Blocks (bounded) until `fd` has a line, and returns what was read.
std::string read_some(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 10000) != 1) return "";
  char buffer[256];
  ssize_t n = ::read(fd, buffer, sizeof buffer);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
}

// The FIFO opened for writing once the child has opened it for reading (ENXIO until then);
// not open when that does not happen within 10 s (the child died).
UniqueFd open_fifo(const std::string& path) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    if (fd || errno != ENXIO) return fd;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a poll, bounded above
  }
  return UniqueFd();
}

// Between a SIGKILL of the daemon and its restart nobody reads the pipe: the server's write
// must neither raise SIGPIPE nor be lost, and the next daemon reads it through /proc.
TEST(OutputPipe, AWriteWhileNoDaemonReadsIsKeptAndReadAgainThroughProc) {
  TempDir dir;
  std::string first = dir.path() + "/first", second = dir.path() + "/second";
  ASSERT_EQ(::mkfifo(first.c_str(), 0600), 0);
  ASSERT_EQ(::mkfifo(second.c_str(), 0600), 0);
  Loop loop;
  auto pipe = make_output_pipe();
  ASSERT_TRUE(pipe.ok()) << pipe.status().message();
  int64_t status = -1;
  int term = -1;
  auto process = ServerProcess::spawn(
      &loop.loop,
      command({"/bin/sh", "-c",
               "read x < '" + first + "'; echo written-while-unread; read y < '" + second +
                   "'; exit 7"}),
      [&](int64_t s, int t) { status = s, term = t; }, {}, &*pipe);
  ASSERT_TRUE(process.ok()) << process.status().message();
  PipeId id = pipe->id;
  pipe->read.reset();  // the daemon is gone: no read end of its own is left
  pipe->write.reset();

  // The child's own copy of the read end sits above the descriptors a server expects.
  EXPECT_GE(kept_read_end((*process)->pid(), id), 100);

  UniqueFd go = open_fifo(first);
  ASSERT_TRUE(go);
  ASSERT_EQ(::write(go.get(), "go\n", 3), 3);
  go.reset();
  // The child has opened `second`, so it has written its line, while nobody read the pipe.
  UniqueFd go_on = open_fifo(second);
  ASSERT_TRUE(go_on);
  auto reopened = reopen_output_pipe((*process)->pid(), id);
  ASSERT_TRUE(reopened.ok()) << reopened.status().message();
  EXPECT_EQ(read_some(reopened->get()), "written-while-unread\n");
  ASSERT_EQ(::write(go_on.get(), "go\n", 3), 3);
  go_on.reset();
  uv_run(&loop.loop, UV_RUN_DEFAULT);
  EXPECT_EQ(term, 0) << "killed by signal " << term << " (SIGPIPE is " << SIGPIPE << ")";
  EXPECT_EQ(status, 7);
  process->reset();
}

// A flag the server sets on its read end (clearing O_NONBLOCK) must not reach the daemon's:
// they are two open file descriptions, not one shared by dup.
TEST(OutputPipe, TheServersReadEndIsAFileDescriptionOfItsOwn) {
  Loop loop;
  auto pipe = make_output_pipe();
  ASSERT_TRUE(pipe.ok());
  auto process = ServerProcess::spawn(
      &loop.loop, command({"/bin/sleep", "60"}), [](int64_t, int) {}, {}, &*pipe);
  ASSERT_TRUE(process.ok());
  pid_t pid = (*process)->pid();
  int kept = kept_read_end(pid, pipe->id);
  ASSERT_GE(kept, 100);
  // kcmp(2): 0 when both descriptors refer to the same open file description.
  long same = ::syscall(SYS_kcmp, ::getpid(), pid, KCMP_FILE, pipe->read.get(), kept);
  EXPECT_NE(same, 0);
  EXPECT_NE(same, -1) << "kcmp: " << std::strerror(errno);
  (*process)->signal_group(SIGKILL);
  uv_run(&loop.loop, UV_RUN_DEFAULT);
  process->reset();
}

TEST(OutputPipe, OnlyThatPipeIsOpenedAgainNeverAnotherOfTheProcess) {
  Loop loop;
  auto pipe = make_output_pipe();
  ASSERT_TRUE(pipe.ok());
  auto other = make_output_pipe();  // the server's stdout is this one, not the recorded one
  ASSERT_TRUE(other.ok());
  auto process = ServerProcess::spawn(
      &loop.loop, command({"/bin/sleep", "60"}), [](int64_t, int) {}, {}, &*other);
  ASSERT_TRUE(process.ok());
  EXPECT_FALSE(reopen_output_pipe((*process)->pid(), pipe->id).ok());
  EXPECT_TRUE(reopen_output_pipe((*process)->pid(), other->id).ok());
  (*process)->signal_group(SIGKILL);
  uv_run(&loop.loop, UV_RUN_DEFAULT);
  process->reset();
}

// A paused reader reads nothing (what is written waits in the pipe); resumed, it reads it.
TEST(OutputPipe, APausedReaderReadsNothingUntilResumed) {
  Loop loop;
  auto pipe = make_output_pipe();
  ASSERT_TRUE(pipe.ok());
  std::vector<std::string> lines;
  auto reader = OutputReader::start(
      &loop.loop, std::move(pipe->read), [&](std::string_view line) { lines.emplace_back(line); },
      [] {});
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  // Reading output keeps no loop alive: this timer does, so that each turn polls the pipe.
  uv_timer_t keeper;
  uv_timer_init(&loop.loop, &keeper);
  uv_timer_start(
      &keeper, [](uv_timer_t*) {}, 10000, 0);
  (*reader)->pause();
  (*reader)->pause();  // idempotent
  ASSERT_EQ(::write(pipe->write.get(), "waits\n", 6), 6);
  // The pipe is readable at once: each turn would have read it.
  for (int i = 0; i < 5; ++i) uv_run(&loop.loop, UV_RUN_NOWAIT);
  EXPECT_EQ(lines, std::vector<std::string>{});
  (*reader)->resume();
  for (int i = 0; i < 5 && lines.empty(); ++i) uv_run(&loop.loop, UV_RUN_NOWAIT);
  EXPECT_EQ(lines, std::vector<std::string>{"waits"});
  uv_close(reinterpret_cast<uv_handle_t*>(&keeper), nullptr);
  reader->reset();
  uv_run(&loop.loop, UV_RUN_NOWAIT);  // lets the reader's handle close
}

// The processes other than this one that hold pipe `id` (the leftovers of a server).
std::vector<pid_t> holders_of(PipeId id) {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = proc.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = std::stoi(name);
    if (pid == ::getpid()) continue;
    std::error_code fd_ec;
    for (const auto& fd : std::filesystem::directory_iterator(proc.path() / "fd", fd_ec)) {
      struct stat st;
      if (::stat(fd.path().c_str(), &st) == 0 && S_ISFIFO(st.st_mode) &&
          static_cast<uint64_t>(st.st_ino) == id.ino) {
        pids.push_back(pid);
        break;
      }
    }
  }
  return pids;
}

// Whether this process (the daemon here) still reads pipe `id`.
bool reads_pipe(PipeId id) {
  for (const auto& fd : std::filesystem::directory_iterator("/proc/self/fd")) {
    struct stat st;
    if (::stat(fd.path().c_str(), &st) == 0 && S_ISFIFO(st.st_mode) &&
        static_cast<uint64_t>(st.st_ino) == id.ino)
      return true;
  }
  return false;
}

// Each server leaves a process of its own session (setsid) that holds its output pipe and
// outlives it. For another user's servers the daemon reads at most the cap of such pipes,
// closing the oldest; its own user's are read without one.
TEST(OutputPipe, PipesLeftToDescendantsOfAnotherUsersServersAreCappedOldestFirst) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root to run servers as uid 65534";
  Loop loop;
  SystemProcesses processes(&loop.loop, 2);
  std::vector<std::unique_ptr<Process>> servers;
  auto start = [&](std::optional<Identity> as) {
    SpawnSpec spec = command({"/bin/sh", "-c", "setsid sleep 20 </dev/null & exit 0"});
    spec.run_as = as;
    auto process = processes.spawn(
        spec, [](int64_t, int) {}, {}, [](pid_t, std::string_view) {});
    ASSERT_TRUE(process.ok()) << process.status().message();
    servers.push_back(std::move(*process));
  };
  for (int i = 0; i < 4; ++i) start(Identity{65534, 65534, "", ""});
  uv_run(&loop.loop, UV_RUN_DEFAULT);  // until every server has exited
  std::vector<pid_t> leftovers;
  for (const auto& server : servers) {
    auto holders = holders_of(server->output_pipe());
    leftovers.insert(leftovers.end(), holders.begin(), holders.end());
  }
  EXPECT_EQ(leftovers.size(), 4u);
  EXPECT_EQ(processes.output_pipes_read(), 2u);
  EXPECT_FALSE(reads_pipe(servers[0]->output_pipe()));
  EXPECT_FALSE(reads_pipe(servers[1]->output_pipe()));
  EXPECT_TRUE(reads_pipe(servers[2]->output_pipe()));
  EXPECT_TRUE(reads_pipe(servers[3]->output_pipe()));

  // The daemon's own user's: no cap (here root, the daemon's uid).
  for (int i = 0; i < 3; ++i) start(std::nullopt);
  uv_run(&loop.loop, UV_RUN_DEFAULT);
  for (size_t i = 4; i < servers.size(); ++i) {
    auto holders = holders_of(servers[i]->output_pipe());
    leftovers.insert(leftovers.end(), holders.begin(), holders.end());
  }
  EXPECT_EQ(processes.output_pipes_read(), 5u);
  for (pid_t pid : leftovers) ::kill(pid, SIGKILL);
}

}  // namespace
}  // namespace serverswap::daemon
