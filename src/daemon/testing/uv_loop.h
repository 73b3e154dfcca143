// Loop: a libuv loop for one test. The destructor runs the loop until nothing is left (the
// close callbacks of what the test opened) and expects it to close: a handle left open fails
// the test. Test thread only.
#pragma once

#include <gtest/gtest.h>
#include <uv.h>

namespace serverswap::daemon::testing {

struct Loop {
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop), 0);
  }
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uv_loop_t loop;
};

}  // namespace serverswap::daemon::testing
