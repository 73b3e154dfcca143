#include "cli/app.h"

int main(int argc, char** argv) {
  return serverswap::cli::run(argc, argv);
}
