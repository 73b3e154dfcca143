#include "daemon/restart/state_file.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace serverswap::daemon {
namespace {

DaemonState sample() {
  DaemonState state;
  ServerRecord server;
  server.id = "3.00000000deadbeef";
  server.pid = 1234;
  server.start_time = 987654;
  server.generation = 3;
  server.state = "up";
  server.request.argv = {"./server", "--port", "8080"};
  server.request.cwd = "/srv/app";
  server.request.env = {"A=1", "B=x=y"};
  server.request.listen = {{"web", ":8080"}};
  server.request.ready_after = Millis(500);
  server.request.takedown_signal = SIGQUIT;
  server.request.user = "app";
  server.request.workers = 4;
  server.request.batch = 2;
  server.request.max_surge = 3;
  server.request.worker = 1;
  server.held = {{":8080", ":8080", "[::]:8080"}};
  server.restarts = 2;
  server.rank = 2;  // a crash restart of generation 2's server
  server.notify = "serverswap-notify-00112233445566778899aabbccddeeff";
  server.notify_fd = 9;
  state.servers.push_back(server);
  state.sockets = {{":8080", "[::]:8080", 7}};
  state.control_fd = 5;
  state.user_directory = "/tmp/serverswap-users-AbC123";
  return state;
}

TEST(StateFile, RoundTripsEveryField) {
  auto back = state_from_json(state_to_json(sample()));
  ASSERT_TRUE(back.ok()) << back.status().message();
  const ServerRecord& s = back->servers.at(0);
  EXPECT_EQ(s.id, "3.00000000deadbeef");
  EXPECT_EQ(s.pid, 1234);
  EXPECT_EQ(s.start_time, 987654u);
  EXPECT_EQ(s.generation, 3u);
  EXPECT_EQ(s.state, "up");
  EXPECT_EQ(s.request.argv, (std::vector<std::string>{"./server", "--port", "8080"}));
  EXPECT_EQ(s.request.cwd, "/srv/app");
  EXPECT_EQ(s.request.env, (std::vector<std::string>{"A=1", "B=x=y"}));
  EXPECT_EQ(s.request.listen, (std::vector<ListenAddress>{{"web", ":8080"}}));
  EXPECT_EQ(s.request.ready_after, Millis(500));
  EXPECT_EQ(s.request.takedown_signal, SIGQUIT);
  EXPECT_EQ(s.request.user, "app");
  EXPECT_EQ(s.request.workers, 4);
  EXPECT_EQ(s.request.batch, 2);
  EXPECT_EQ(s.request.max_surge, 3);
  EXPECT_EQ(s.request.worker, 1);
  EXPECT_EQ(s.held, (std::vector<HeldRecord>{{":8080", ":8080", "[::]:8080"}}));
  EXPECT_EQ(s.restarts, 2);
  EXPECT_EQ(s.rank, 2u);
  EXPECT_EQ(s.notify, "serverswap-notify-00112233445566778899aabbccddeeff");
  EXPECT_EQ(s.notify_fd, 9);
  EXPECT_EQ(back->sockets, (std::vector<SocketRecord>{{":8080", "[::]:8080", 7}}));
  EXPECT_EQ(back->control_fd, 5);
  EXPECT_EQ(back->user_directory, "/tmp/serverswap-users-AbC123");
}

TEST(StateFile, WritesAtomicallyReadsBackAndRemoves) {
  std::string dir = ::testing::TempDir() + "state-file-test-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  StateFile file(state_path_for(dir + "/control.sock"));
  EXPECT_EQ(file.path(), dir + "/control.sock.state.json");
  auto none = file.read();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(file.write(sample()).ok());
  EXPECT_FALSE(std::filesystem::exists(file.path() + ".tmp"));
  EXPECT_EQ(std::filesystem::status(file.path()).permissions(),
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto back = file.read();
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ((*back)->servers.at(0).id, "3.00000000deadbeef");
  file.remove();
  EXPECT_FALSE(std::filesystem::exists(file.path()));
  std::filesystem::remove_all(dir);
}

ino_t ino_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// A fresh directory for one test; removed with everything in it.
class StateDir {
 public:
  explicit StateDir(const std::string& name)
      : dir_(::testing::TempDir() + "state-file-" + name + "-" + std::to_string(getpid())) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~StateDir() { std::filesystem::remove_all(dir_); }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// Reads `file`, expecting a refusal that names the file; returns the message.
std::string expect_refused(const StateFile& file) {
  bool refused = false;
  auto back = file.read(&refused);
  EXPECT_FALSE(back.ok()) << "an untrusted state file was read";
  EXPECT_TRUE(refused);
  if (back.ok()) return "";
  EXPECT_NE(back.status().message().find(file.path()), std::string::npos)
      << back.status().message();
  EXPECT_NE(back.status().message().find("no server is taken back"), std::string::npos)
      << back.status().message();
  return back.status().message();
}

TEST(StateFile, IsNamedAfterTheSocket) {
  EXPECT_EQ(state_path_for("/run/x/a.sock"), "/run/x/a.sock.state.json");
  EXPECT_NE(state_path_for("/run/x/a.sock"), state_path_for("/run/x/b.sock"));
}

TEST(StateFile, RefusesAFileOthersMayRead) {
  StateDir d("mode");
  StateFile file(state_path_for(d.dir() + "/c.sock"));
  ASSERT_TRUE(file.write(sample()).ok());
  ASSERT_EQ(::chmod(file.path().c_str(), 0644), 0);
  std::string message = expect_refused(file);
  EXPECT_NE(message.find("mode 0644"), std::string::npos) << message;
  ASSERT_EQ(::chmod(file.path().c_str(), 0600), 0);
  bool refused = true;
  auto back = file.read(&refused);
  EXPECT_TRUE(back.ok()) << back.status().message();
  EXPECT_FALSE(refused);
}

TEST(StateFile, RefusesASymbolicLinkEvenToAGoodFile) {
  StateDir d("symlink");
  StateFile good(d.dir() + "/good.json");
  ASSERT_TRUE(good.write(sample()).ok());
  StateFile file(state_path_for(d.dir() + "/c.sock"));
  std::filesystem::create_symlink(good.path(), file.path());
  expect_refused(file);
}

TEST(StateFile, RefusesAFileWithASecondLink) {
  StateDir d("link");
  StateFile file(state_path_for(d.dir() + "/c.sock"));
  ASSERT_TRUE(file.write(sample()).ok());
  std::filesystem::create_hard_link(file.path(), d.dir() + "/other");
  std::string message = expect_refused(file);
  EXPECT_NE(message.find("2 link"), std::string::npos) << message;
}

TEST(StateFile, RefusesWhatIsNotARegularFile) {
  StateDir d("fifo");
  StateFile file(state_path_for(d.dir() + "/c.sock"));
  ASSERT_EQ(::mkfifo(file.path().c_str(), 0600), 0);
  expect_refused(file);  // and does not block on the FIFO
}

TEST(StateFile, RefusesAFileOfAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the file away";
  StateDir d("owner");
  StateFile file(state_path_for(d.dir() + "/c.sock"));
  ASSERT_TRUE(file.write(sample()).ok());
  ASSERT_EQ(::chown(file.path().c_str(), 65534, 65534), 0);
  std::string message = expect_refused(file);
  EXPECT_NE(message.find("uid 65534"), std::string::npos) << message;
}

TEST(StateFile, AFailedWriteSaysWhyAndIsRetriedByTheNextWrite) {
  StateDir d("fail");
  StateFile file(state_path_for(d.dir() + "/c.sock"));
  // Even root cannot open a directory for writing: a deterministic failure.
  std::filesystem::create_directory(file.path() + ".tmp");
  Status failed = file.write(sample());
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find(file.path() + ".tmp"), std::string::npos) << failed.message();
  EXPECT_FALSE(std::filesystem::exists(file.path()));
  std::filesystem::remove(file.path() + ".tmp");
  // The same text again: not skipped as already written.
  ASSERT_TRUE(file.write(sample()).ok());
  EXPECT_TRUE(std::filesystem::exists(file.path()));
}

// The state file remembers what it last wrote by size and hashes (not a copy of the text):
// the same state is not written again, a state that differs in one byte is.
TEST(StateFile, WritesAStateOnlyWhenItsTextChanged) {
  StateDir d("unchanged");
  StateFile file(state_path_for(d.dir() + "/c.sock"));
  auto inode = [&] { return std::filesystem::exists(file.path()) ? ino_of(file.path()) : 0; };
  ASSERT_TRUE(file.write(sample()).ok());
  ino_t first = inode();
  ASSERT_NE(first, 0u);
  EXPECT_GT(file.last_text_bytes(), 0u);
  // Removed behind its back: an unchanged state is not written again (a rename would
  // bring the file back).
  std::filesystem::remove(file.path());
  ASSERT_TRUE(file.write(sample()).ok());
  EXPECT_FALSE(std::filesystem::exists(file.path()));
  DaemonState changed = sample();
  changed.servers.at(0).pid = 1235;
  ASSERT_TRUE(file.write(changed).ok());
  EXPECT_TRUE(std::filesystem::exists(file.path()));
  auto back = file.read();
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ((*back)->servers.at(0).pid, 1235);
  // After remove(), the same state is written again.
  file.remove();
  ASSERT_TRUE(file.write(changed).ok());
  EXPECT_TRUE(std::filesystem::exists(file.path()));
  EXPECT_NE(inode(), 0u);
}

TEST(StateFile, WritesThroughNoSymbolicLinkAtTheTmpPath) {
  StateDir d("tmplink");
  StateFile file(state_path_for(d.dir() + "/c.sock"));
  std::string target = d.dir() + "/target";
  std::filesystem::create_symlink(target, file.path() + ".tmp");
  EXPECT_FALSE(file.write(sample()).ok());
  EXPECT_FALSE(std::filesystem::exists(target)) << "the write followed a symbolic link";
}

// A FIFO at the tmp path fails the write at once (retried later) instead of blocking the
// daemon in open(2) until someone reads it.
TEST(StateFile, AFifoAtTheTmpPathFailsTheWriteWithoutBlocking) {
  StateDir d("fifo");
  StateFile file(state_path_for(d.dir() + "/c.sock"));
  ASSERT_EQ(::mkfifo((file.path() + ".tmp").c_str(), 0600), 0);
  Status failed = file.write(sample());
  EXPECT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find(file.path() + ".tmp"), std::string::npos) << failed.message();
  EXPECT_FALSE(std::filesystem::exists(file.path()));
}

TEST(StateFile, KeepsBytesThatAreNotUtf8Exactly) {
  std::string dir = ::testing::TempDir() + "state-file-bytes-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  StateFile file(state_path_for(dir + "/control.sock"));
  DaemonState state = sample();
  ServerRecord& s = state.servers.at(0);
  s.request.argv.push_back("caf\xe9");
  s.request.cwd = "/srv/app-\xff";
  s.request.env = {"A=1", "LEGACY=caf\xe9", "K\xe9Y=v"};
  // Paths the daemon read from the system: a directory named in another encoding.
  s.notify = "/run/serverswap/\xff\xfe/notify";
  s.held.push_back({"unix:/srv/ln/s.sock", "unix:/srv/ln/s.sock", "unix:/srv/\xff-dir/s.sock"});
  state.user_directory = "/tmp/serverswap-users-\xff";
  state.socket_files.push_back({"unix:/srv/ln/s.sock", "/srv/\xff-dir/s.sock", 1, 2, 65534});
  state.sockets.push_back({"unix:/srv/ln/s.sock", "unix:/srv/\xff-dir/s.sock", 9});
  ASSERT_TRUE(file.write(state).ok());  // dump() must not throw on them
  auto back = file.read();
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_TRUE(back->has_value());
  const SpawnSpec& r = (*back)->servers.at(0).request;
  EXPECT_EQ(r.argv, s.request.argv);
  EXPECT_EQ(r.cwd, s.request.cwd);
  EXPECT_EQ(r.env, s.request.env);
  EXPECT_EQ((*back)->servers.at(0).notify, s.notify);
  EXPECT_EQ((*back)->servers.at(0).held.back().address, s.held.back().address);
  EXPECT_EQ((*back)->user_directory, state.user_directory);
  EXPECT_EQ((*back)->socket_files.at(0).path, state.socket_files.at(0).path);
  EXPECT_EQ((*back)->sockets.back().address, state.sockets.back().address);
  std::filesystem::remove_all(dir);
}

// A state.json this daemon did not write is an error naming what is wrong, never an abort.
TEST(StateFile, ACorruptStateIsAnErrorNeverAnException) {
  std::string good = state_to_json(sample()).dump();
  std::vector<std::string> corrupt = {
      R"([])",
      R"({"version": "1", "servers": []})",
      R"({"version": 1})",
      R"({"version": 1, "servers": {}})",
      R"({"version": 1, "servers": [5]})",
      R"({"version": 1, "servers": [{"id": 1}]})",
      R"({"version": 1, "servers": [], "sockets": [{"name": ":1", "address": "x", "fd": "7"}]})",
      R"({"version": 1, "servers": [], "controlFd": "5"})",
  };
  // Every field of the good one, in turn, of the wrong type or missing.
  protocol::Json whole = protocol::Json::parse(good);
  for (const auto& [key, value] : whole["servers"][0].items()) {
    protocol::Json wrong = whole;
    wrong["servers"][0][key] = protocol::Json::array({protocol::Json::object()});
    corrupt.push_back(wrong.dump());
    wrong["servers"][0].erase(key);
    // Optional: absent in a file an older daemon wrote.
    if (key != "restarts" && key != "notify" && key != "notifyFd" && key != "deployOrder")
      corrupt.push_back(wrong.dump());
  }
  for (const auto& [key, value] : whole["servers"][0]["request"].items()) {
    protocol::Json wrong = whole;
    wrong["servers"][0]["request"][key] = protocol::Json::object({{"x", 1.5}});
    corrupt.push_back(wrong.dump());
  }
  for (const auto& text : corrupt) {
    Result<DaemonState> state = Status::error("not run");
    EXPECT_NO_THROW(state = state_from_json(protocol::Json::parse(text))) << text;
    EXPECT_FALSE(state.ok()) << text;
  }
}

// What a server had taken over with `serving`, and what it was taken down on while serving
// others (told or not), survive a restart of the daemon; older files have none of it.
TEST(StateFile, RoundTripsServedAndTakenResources) {
  DaemonState state = sample();
  state.servers.at(0).held = {{":1", ":1", "[::]:1", true, false, false},
                              {":2", ":2", "[::]:2", false, true, true},
                              {":3", ":3", "[::]:3", false, true, false}};
  auto back = state_from_json(state_to_json(state));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->servers.at(0).held, state.servers.at(0).held);
  protocol::Json older = state_to_json(sample());
  EXPECT_FALSE(older["servers"][0]["held"][0].contains("served"));
}

// A version as AppHistory keeps it: of app `app`, no worker, no --replace.
VersionRecord version(const std::string& app, const std::string& release, uint64_t generation) {
  VersionRecord v;
  v.request.name = app;
  v.request.argv = {"/srv/" + release + "/server", "--port", "8080"};
  v.request.cwd = "/srv/" + release;
  v.request.env = {"RELEASE=" + release, "RAW=\xff\xfe"};  // not UTF-8: kept exactly
  v.request.listen = {{"web", ":8080"}};
  v.generation = generation;
  return v;
}

DaemonState with_versions() {
  DaemonState state = sample();
  AppRecord web{"web", {version("web", "v1", 1), version("web", "v2", 4)}, std::nullopt};
  web.versions[1].crash_looped = true;
  web.last_rollback = RollbackRecord{4, 1, "generation 4 crashed 2 times within 1m", 1700, "gone"};
  state.apps = {web, AppRecord{"api", {version("api", "a1", 2)}, std::nullopt}};
  return state;
}

TEST(StateFile, RoundTripsAppVersions) {
  DaemonState state = with_versions();
  auto back = state_from_json(state_to_json(state));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->dropped_versions.empty());
  ASSERT_EQ(back->apps.size(), 2u);
  for (size_t a = 0; a < 2; ++a) {
    const AppRecord& got = back->apps[a];
    const AppRecord& want = state.apps[a];
    EXPECT_EQ(got.app, want.app);
    ASSERT_EQ(got.versions.size(), want.versions.size());
    for (size_t i = 0; i < want.versions.size(); ++i) {
      EXPECT_EQ(got.versions[i].request.argv, want.versions[i].request.argv);
      EXPECT_EQ(got.versions[i].request.cwd, want.versions[i].request.cwd);
      EXPECT_EQ(got.versions[i].request.env, want.versions[i].request.env);
      EXPECT_EQ(got.versions[i].request.listen, want.versions[i].request.listen);
      EXPECT_EQ(got.versions[i].request.worker, -1);
      EXPECT_EQ(got.versions[i].generation, want.versions[i].generation);
      EXPECT_EQ(got.versions[i].crash_looped, want.versions[i].crash_looped);
    }
    EXPECT_EQ(got.last_rollback, want.last_rollback);
  }
  // A version's request is encoded as a server's: the same deploy encoding, byte for byte.
  DaemonState as_server = sample();
  as_server.servers.at(0).request = state.apps[0].versions[0].request;
  protocol::Json json = state_to_json(state);
  EXPECT_EQ(json["appVersions"]["format"], kAppVersionsFormat);
  EXPECT_EQ(json["appVersions"]["apps"][0]["versions"][0]["request"],
            state_to_json(as_server)["servers"][0]["request"]);
}

// A file an older daemon wrote has no versions: its servers load, and no app is known.
TEST(StateFile, AFileWithoutAppVersionsLoads) {
  protocol::Json json = state_to_json(sample());
  EXPECT_FALSE(json.contains("appVersions"));
  auto back = state_from_json(json);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->servers.size(), 1u);
  EXPECT_TRUE(back->apps.empty());
  EXPECT_TRUE(back->dropped_versions.empty());
}

// A version is trusted only as a server's request is: one that fails those checks, or that is
// not what the daemon keeps, is dropped and said; the servers and the other versions load.
TEST(StateFile, AHostileAppVersionIsDroppedAndSaid) {
  protocol::Json good = state_to_json(with_versions());
  auto web_version = [&](auto change) {
    protocol::Json json = good;
    change(json["appVersions"]["apps"][0]["versions"][0]);
    return json;
  };
  struct Case {
    const char* what;
    protocol::Json json;
    size_t web_versions;  // left of web's 2 (0: web is not known at all)
  };
  std::vector<Case> cases = {
      {"argv not strings", web_version([](auto& v) {
         v["request"]["argv"] = {1, 2};
       }),
       1},
      {"no argv", web_version([](auto& v) { v["request"].erase("argv"); }), 1},
      {"env not strings", web_version([](auto& v) {
         v["request"]["env"] = {{{"x", 1}}};
       }),
       1},
      {"a bad --listen", web_version([](auto& v) { v["request"]["listen"] = {"::nope::"}; }), 1},
      {"a resource that is not one", web_version([](auto& v) {
         v["request"]["listen"] = {{{"resource", "no such"}}};
       }),
       1},
      {"not an app name", web_version([](auto& v) { v["request"]["name"] = "../x"; }), 1},
      {"another app's", web_version([](auto& v) { v["request"]["name"] = "api"; }), 1},
      {"a worker", web_version([](auto& v) { v["request"]["worker"] = 0; }), 1},
      {"--replace", web_version([](auto& v) { v["request"]["replace"] = {"api"}; }), 1},
      {"negative generation", web_version([](auto& v) { v["generation"] = -1; }), 1},
      {"not an object", web_version([](auto& v) { v = "rm -rf /"; }), 1},
      {"a relative physicalCwd", web_version([](auto& v) {
         v["request"]["physicalCwd"] = {{"path", "releases/r1"}, {"dev", 1}, {"ino", 2}};
       }),
       1},
      {"a physicalCwd without inode", web_version([](auto& v) {
         v["request"]["physicalCwd"] = {{"path", "/srv/r1"}, {"dev", 1}};
       }),
       1},
      {"pinned without physicalCwd", web_version([](auto& v) { v["request"]["pinned"] = true; }),
       1},
      {"pinned not a boolean", web_version([](auto& v) { v["request"]["pinned"] = "yes"; }), 1},
  };
  protocol::Json many = good;
  for (int i = 0; i < 3; ++i)
    many["appVersions"]["apps"][0]["versions"].push_back(
        good["appVersions"]["apps"][0]["versions"][0]);
  cases.push_back({"more versions than kept", many, 0});
  protocol::Json twice = good;
  twice["appVersions"]["apps"][1] = good["appVersions"]["apps"][0];
  cases.push_back({"an app listed twice", twice, 2});
  protocol::Json format = good;
  format["appVersions"]["format"] = kAppVersionsFormat + 1;
  cases.push_back({"another format", format, 0});
  protocol::Json not_object = good;
  not_object["appVersions"] = protocol::Json::array();
  cases.push_back({"appVersions not an object", not_object, 0});
  for (const auto& c : cases) {
    Result<DaemonState> state = Status::error("not run");
    EXPECT_NO_THROW(state = state_from_json(c.json)) << c.what;
    ASSERT_TRUE(state.ok()) << c.what << ": " << state.status().message();
    EXPECT_EQ(state->servers.size(), 1u) << c.what;
    EXPECT_FALSE(state->dropped_versions.empty()) << c.what;
    size_t web = 0;
    for (const auto& app : state->apps)
      if (app.app == "web") web = app.versions.size();
    EXPECT_EQ(web, c.web_versions) << c.what;
    for (const auto& app : state->apps)
      for (const auto& v : app.versions) EXPECT_EQ(app_of(v.request), app.app) << c.what;
  }
}

}  // namespace
}  // namespace serverswap::daemon
