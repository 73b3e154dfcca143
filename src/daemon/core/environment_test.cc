#include "daemon/core/environment.h"

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <thread>

namespace serverswap::daemon {
namespace {

Environment::List shell_environment() {
  Environment::List entries;
  for (int i = 0; i < 40; ++i)
    entries.push_back("VARIABLE_" + std::to_string(i) + "=" + std::string(40, char('a' + i % 26)));
  return entries;
}

TEST(Environment, EqualContentIsOneCopy) {
  size_t before = Environment::interned();
  Environment a(shell_environment());
  Environment b(shell_environment());
  EXPECT_TRUE(Environment::same_copy(a, b));
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.list(), shell_environment());
  EXPECT_EQ(Environment::interned(), before + 1);
}

TEST(Environment, OtherContentOrOrderIsAnotherCopy) {
  Environment a{"A=1", "B=2"};
  Environment b{"B=2", "A=1"};
  Environment c{"A=1", "B=3"};
  EXPECT_FALSE(Environment::same_copy(a, b));
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(b.list(), (Environment::List{"B=2", "A=1"}));
}

TEST(Environment, TheLastUserFreesTheCopyAndItsEntry) {
  size_t before = Environment::interned();
  std::optional<Environment> first(shell_environment());
  std::optional<Environment> second = first;
  EXPECT_EQ(Environment::interned(), before + 1);
  first.reset();
  EXPECT_EQ(Environment::interned(), before + 1);  // `second` still holds it
  second.reset();
  EXPECT_EQ(Environment::interned(), before);
  // Made again, it is a new copy, found by content as before.
  Environment again(shell_environment());
  EXPECT_EQ(Environment::interned(), before + 1);
  EXPECT_TRUE(Environment::same_copy(again, Environment(shell_environment())));
}

TEST(Environment, EmptyIsNoCopy) {
  size_t before = Environment::interned();
  Environment made(Environment::List{});
  EXPECT_EQ(made, Environment());
  EXPECT_TRUE(made.empty());
  EXPECT_EQ(made.begin(), made.end());
  EXPECT_EQ(Environment::interned(), before);
}

TEST(Environment, EditedIsInternedAndLeavesTheOriginal) {
  Environment base{"A=1", "NOTIFY_SOCKET=/old"};
  Environment spawned = base.edited([](Environment::List& entries) {
    std::erase_if(entries, [](const std::string& e) { return e.starts_with("NOTIFY_SOCKET="); });
    entries.push_back("B=2");
  });
  EXPECT_EQ(base.list(), (Environment::List{"A=1", "NOTIFY_SOCKET=/old"}));
  EXPECT_EQ(spawned.list(), (Environment::List{"A=1", "B=2"}));
  EXPECT_TRUE(Environment::same_copy(spawned, Environment{"A=1", "B=2"}));
}

// Threads making and dropping equal environments at once: every one sees the content it
// made, and no entry is left once all are gone (a copy freed in one thread while another
// finds it by content).
TEST(Environment, ThreadsInterningAndDroppingAtOnce) {
  size_t before = Environment::interned();
  std::atomic<int> wrong = 0;
  auto churn = [&wrong] {
    for (int i = 0; i < 2000; ++i) {
      std::string b = "B=" + std::to_string(i % 3);
      Environment env{"A=1", b};
      if (env.list() != Environment::List{"A=1", b}) ++wrong;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(churn);
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(Environment::interned(), before);
}

}  // namespace
}  // namespace serverswap::daemon
