#!/usr/bin/env bash
# Live demo: builds serverswap, starts the example HTTP server under it, puts it under
# load (1000 requests/s, a new connection per request, then keep-alive connections),
# swaps it five times during each run and prints the tally. Loopback only; bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSERVERSWAP_WERROR=OFF >/dev/null
cmake --build build -j"$(nproc)" --target serverswap hello_server >/dev/null

bin=$PWD/build/bin
port=${DEMO_PORT:-18080}
work=$(mktemp -d)
socket=$work/control.sock
swap="$bin/serverswap --socket $socket --quiet -- $bin/hello_server 127.0.0.1:$port"

"$bin/serverswap" --socket "$socket" daemon 2>"$work/daemon.log" &
daemon=$!
cleanup() {
  "$bin/serverswap" --socket "$socket" stop >/dev/null 2>&1 || kill "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  echo "daemon log: $work/daemon.log"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.05; done

echo "== starting hello_server on 127.0.0.1:$port under serverswap"
$swap
for mode in close keepalive; do
  echo
  echo "== 12 s of load ($mode mode, 1000 req/s); five swaps from second 4"
  # Swaps are spaced a second apart so that each lands in its own part of the timeline.
  "$bin/serverswap" verify --duration 12 --clients 16 --rate 1000 --mode "$mode" \
    "127.0.0.1:$port" -- bash -c "for i in 1 2 3 4 5; do echo \"swap \$i/5:\"; $swap || exit 1; sleep 1; done"
done
echo
"$bin/serverswap" --socket "$socket" status
