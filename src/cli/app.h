// The serverswap command line: parses argv and runs one subcommand.
#pragma once

namespace serverswap::cli {

// The whole program; returns the process exit code. Invoked as `serverswap-deploy`, runs
// deploy mode.
int run(int argc, char** argv);

}  // namespace serverswap::cli
