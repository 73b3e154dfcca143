#!/usr/bin/env bash
# Sets up and runs every test: a warnings-as-errors build and an ASan+UBSan build, each
# running the unit and integration tests (real daemon, real servers, loopback only).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

jobs=$(nproc)
run_suite() {
  local dir=$1; shift
  cmake -S . -B "$dir" -DSERVERSWAP_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  (cd "$dir" && ctest -j"$jobs" --output-on-failure --timeout 300)
}

echo "== clang-format"
git ls-files '*.cc' '*.h' | xargs clang-format --dry-run --Werror

echo "== build and test (-Wall -Wextra -Wpedantic -Werror)"
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== build and test with AddressSanitizer + UndefinedBehaviorSanitizer"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DSERVERSWAP_SANITIZE=ON \
  -DSERVERSWAP_SIM_SCHEDULES=4000  # the 100,000 schedules run in the build above

# Each libFuzzer target (fuzz/) for a bounded time, from its checked-in corpus: new inputs
# go to a scratch directory, crashes to build-fuzz/TARGET-crash-*.
fuzz_seconds=${SERVERSWAP_FUZZ_SECONDS:-20}
echo "== fuzz: each target for ${fuzz_seconds}s (clang, libFuzzer + ASan + UBSan)"
fuzz_targets=(framer_message_fuzz resource_fuzz fd_passing_fuzz daemon_decode_fuzz output_line_fuzz
  status_text_fuzz)
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSERVERSWAP_FUZZ=ON -DSERVERSWAP_TESTS=OFF \
  -DSERVERSWAP_WERROR=ON >/dev/null
cmake --build build-fuzz -j"$jobs" --target "${fuzz_targets[@]}"
for target in "${fuzz_targets[@]}"; do
  scratch=$(mktemp -d)
  if ! "build-fuzz/bin/$target" -max_total_time="$fuzz_seconds" -max_len=70000 \
      -print_final_stats=1 -artifact_prefix="build-fuzz/$target-" \
      "$scratch" "fuzz/corpus/$target" >"build-fuzz/$target.log" 2>&1; then
    cat "build-fuzz/$target.log"
    echo "fuzz target $target failed; replay with: build-fuzz/bin/$target build-fuzz/$target-crash-*"
    rm -rf "$scratch"
    exit 1
  fi
  rm -rf "$scratch"
  echo "$target: $(grep -m1 '^Done' "build-fuzz/$target.log")"
done
