// The resume memory's rules (resume_memory.h), which the C/C++ client and the node relay
// share and the Python client mirrors (tests/contracts checks all three end to end).
#include "client/resume_memory.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "client/test_peer.h"

namespace serverswap::client {
namespace {

using protocol::Json;
using protocol::make;

protocol::Message message(const Json& whole) {
  auto decoded = protocol::decode(protocol::encode(whole));
  EXPECT_TRUE(decoded.ok());
  return *decoded;
}

ino_t inode_of(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

const Json kHello = Json::parse(R"({"id": "s-1", "pid": 7, "protocol": 1})");
const Json kExplicitHello = Json::parse(R"({"id": "s-1", "pid": 7, "protocol": 1,
                                            "upMessage": true})");

TEST(ResumeMemory, HoldingListsResourcesInTheOrderOfTheirDescriptors) {
  ResumeMemory memory;
  memory.said_hello(kExplicitHello);
  UniqueFd web = testing::loopback_listener();
  UniqueFd admin = testing::loopback_listener();
  memory.keep(":8080", web.get());
  memory.keep("unix:/run/admin.sock", admin.get());
  memory.keep(":8080", admin.get());  // a second socket for one resource is not kept
  memory.said(message(make("onTakedown", ":8080")));
  memory.said(message(make("onTakedown", ":8080")));
  Json expected = kExplicitHello;
  expected["resume"] = Json::parse(
      R"({"holding": [":8080", "unix:/run/admin.sock"], "onTakedown": [":8080"], "up": false})");
  EXPECT_EQ(memory.resume_hello(), make("hello", expected));
  auto fds = memory.held_fds();
  ASSERT_EQ(fds.size(), 2u);
  EXPECT_EQ(inode_of(fds[0]), inode_of(web.get()));
  EXPECT_EQ(inode_of(fds[1]), inode_of(admin.get()));
}

TEST(ResumeMemory, TheUpRule) {
  UniqueFd web = testing::loopback_listener();
  {
    ResumeMemory explicit_up;  // upMessage: up only once serverUp was said
    explicit_up.said_hello(kExplicitHello);
    explicit_up.keep(":8080", web.get());
    EXPECT_FALSE(explicit_up.up());
    explicit_up.said(message(make("serverUp", true)));
    EXPECT_TRUE(explicit_up.up());
  }
  {
    ResumeMemory implicit_up;  // no upMessage: up as soon as it holds a socket
    implicit_up.said_hello(kHello);
    EXPECT_FALSE(implicit_up.up());
    implicit_up.keep(":8080", web.get());
    EXPECT_TRUE(implicit_up.up());
    EXPECT_EQ(implicit_up.resume_hello()["hello"]["resume"]["up"], true);
  }
}

TEST(ResumeMemory, TakeDownInAnotherSpellingReleasesAndEndsResumingWhenNothingIsLeft) {
  ResumeMemory memory;
  EXPECT_FALSE(memory.may_resume()) << "no hello said yet";
  memory.said_hello(kHello);
  UniqueFd web = testing::loopback_listener();
  UniqueFd admin = testing::loopback_listener();
  memory.keep("[::1]:8080", web.get());
  memory.keep("127.0.0.1:9090", admin.get());
  EXPECT_TRUE(memory.may_resume());
  memory.received(message(make("takeDown", "[0:0::1]:8080")));
  EXPECT_EQ(memory.resume_hello()["hello"]["resume"]["holding"], Json::array({"127.0.0.1:9090"}));
  EXPECT_TRUE(memory.may_resume());
  memory.said(message(make("tookDown", "localhost:9090")));
  EXPECT_TRUE(memory.held_fds().empty());
  EXPECT_FALSE(memory.may_resume());
}

TEST(ResumeMemory, NoResumeAfterFailOrAnErrorAsTheLastLine) {
  UniqueFd web = testing::loopback_listener();
  ResumeMemory failed;
  failed.said_hello(kHello);
  failed.keep(":8080", web.get());
  failed.said(message(make("fail", "no database")));
  EXPECT_FALSE(failed.may_resume());

  ResumeMemory refused;
  refused.said_hello(kHello);
  refused.keep(":8080", web.get());
  refused.received(message(protocol::error_reply("no")));
  EXPECT_FALSE(refused.may_resume());
  refused.received(message(make("takeDown", ":9999")));  // a later line clears it
  EXPECT_TRUE(refused.may_resume());
  refused.received(message(protocol::error_reply("no")));
  refused.new_connection();
  EXPECT_TRUE(refused.may_resume());
}

}  // namespace
}  // namespace serverswap::client
