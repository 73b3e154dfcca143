#include "protocol/app_name.h"

#include <gtest/gtest.h>

namespace serverswap::protocol {
namespace {

TEST(AppName, AScriptUnderAnInterpreterNamesTheApp) {
  EXPECT_EQ(derive_app_name({"node", "server.js", "a", "b"}), "server");
  EXPECT_EQ(derive_app_name({"/usr/bin/python3.11", "/srv/app/current/srv.py", "8080"}), "srv");
  EXPECT_EQ(derive_app_name({"node", "-r", "serverswap", "--inspect", "app.mjs"}), "app");
  EXPECT_EQ(derive_app_name({"python3", "-u", "-m", "http.server", "8000"}), "http.server");
  EXPECT_EQ(derive_app_name({"java", "-jar", "build/shop.jar"}), "shop");
  EXPECT_EQ(derive_app_name({"nodejs", "dist/"}), "dist");
}

TEST(AppName, InlineCodeOrNoScriptIsNamedForTheInterpreter) {
  EXPECT_EQ(derive_app_name({"node", "-e", "1"}), "node");
  EXPECT_EQ(derive_app_name({"sh", "-c", ": nothing to run"}), "app");  // ":" is no name
  EXPECT_EQ(derive_app_name({"node", "-e", "require('http')"}), "node");
  EXPECT_EQ(derive_app_name({"python3"}), "python3");
}

// A shell's -c script is named for the program it execs (else its first command), so that
// two shell-wrapped services are not one app "sh".
TEST(AppName, AShellScriptIsNamedForTheProgramItRuns) {
  EXPECT_EQ(derive_app_name({"sh", "-c", "exec ./srv --port 1"}), "srv");
  EXPECT_EQ(derive_app_name({"/bin/sh", "-c", "read go < /tmp/gate && exec /opt/api/run 8080"}),
            "run");
  EXPECT_EQ(derive_app_name({"bash", "-c", "PORT=8080 exec python3 -u web.py"}), "web");
  EXPECT_EQ(derive_app_name({"sh", "-c", "env A=1 node app.js; echo done"}), "app");
  EXPECT_EQ(derive_app_name({"sh", "-c", "gunicorn app:app"}), "gunicorn");
  EXPECT_EQ(derive_app_name({"sh", "-c", ""}), "sh");
  EXPECT_EQ(derive_app_name({"sh", "script.sh"}), "script");
}

TEST(AppName, OtherProgramsAreNamedForThemselvesWhateverTheirArguments) {
  EXPECT_EQ(derive_app_name({"./hello_server", "127.0.0.1:8080"}), "hello_server");
  EXPECT_EQ(derive_app_name({"./hello_server", "127.0.0.1:9090", "v2"}), "hello_server");
  EXPECT_EQ(derive_app_name({"gunicorn", "--preload", "app:app"}), "gunicorn");
  EXPECT_EQ(derive_app_name({"env", "-i", "PORT=1", "/usr/sbin/lighttpd", "-D"}), "lighttpd");
  EXPECT_EQ(derive_app_name({"env", "node", "web.js"}), "web");
}

TEST(AppName, ADerivedNameIsAlwaysAValidName) {
  EXPECT_EQ(derive_app_name({"./my server!"}), "my-server-");
  EXPECT_EQ(derive_app_name({"..."}), "app");
  EXPECT_EQ(derive_app_name({"/"}), "app");
  EXPECT_EQ(derive_app_name({"all"}), "app");
  EXPECT_EQ(derive_app_name({std::string(100, 'x')}), std::string(64, 'x'));
  for (auto argv : std::vector<std::vector<std::string>>{
           {"./my server!"}, {"-x"}, {""}, {"node", ".hidden.js"}, {"\xff\xfe"}})
    EXPECT_TRUE(check_app_name(derive_app_name(argv)).ok()) << derive_app_name(argv);
}

TEST(AppName, CheckSaysWhichRuleANameBreaks) {
  EXPECT_TRUE(check_app_name("web").ok());
  EXPECT_TRUE(check_app_name("api-v2.eu_1").ok());
  EXPECT_NE(check_app_name("").message().find("empty"), std::string::npos);
  EXPECT_NE(check_app_name("a b").message().find("only letters"), std::string::npos);
  EXPECT_NE(check_app_name("-web").message().find("start"), std::string::npos);
  EXPECT_NE(check_app_name(std::string(65, 'a')).message().find("64"), std::string::npos);
  EXPECT_NE(check_app_name("all").message().find("--all"), std::string::npos);
}

}  // namespace
}  // namespace serverswap::protocol
