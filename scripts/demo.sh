#!/usr/bin/env bash
# Live demo: builds serverswap, starts the example HTTP server under it, puts it under
# load (1000 requests/s; a new connection per request, then keep-alive connections) and
# swaps it five times during each 12 s run, printing a line per swap (generation, pid,
# requests and failures so far), then the tally and where the plot is. Loopback only;
# every wait is bounded; about 30 s after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
# DEMO_BIN=DIR uses binaries built elsewhere (no install, no build); DEMO_OUT=DIR for output.
if [ -z "${DEMO_BIN:-}" ]; then
  bash scripts/install-deps.sh
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSERVERSWAP_WERROR=OFF >/dev/null
  cmake --build build -j2 --target serverswap hello_server >/dev/null
fi

bin=${DEMO_BIN:-$PWD/build/bin}
port=${DEMO_PORT:-18080}
out=${DEMO_OUT:-$PWD/build/demo}
work=$(mktemp -d)
socket=$work/control.sock
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.swaps "$out"/demo.png

"$bin/serverswap" --socket "$socket" daemon 2>"$out/daemon.log" &
daemon=$!
cleanup() {
  "$bin/serverswap" --socket "$socket" stop >/dev/null 2>&1 || kill "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.05; done

# One swap and its progress line; runs inside `serverswap verify` (its stdout is the JSON
# report, so everything here goes to stderr).
cat >"$work/swap.sh" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
bin=$1 socket=$2 port=$3 progress=$4 swaps_file=$5 mode=$6
start=$EPOCHREALTIME
for i in 1 2 3 4 5; do
  now=$EPOCHREALTIME
  echo "$(( (${now/./} - ${start/./}) / 1000 ))" >>"$swaps_file"
  deployed=$("$bin/serverswap" --socket "$socket" -- "$bin/hello_server" "127.0.0.1:$port" 2>&1) || {
    echo "$deployed" >&2
    exit 1
  }
  # "serverswap: deployed: pid 1234 (generation 3) is up; replaced pid 1230, which exited"
  [[ $deployed =~ pid\ ([0-9]+)\ \(generation\ ([0-9]+)\) ]] || true
  read -r ok failed <"$progress" || true
  printf '  swap %d/5 (%s): generation %s, pid %s, requests ok so far %s, failed so far %s\n' \
    "$i" "$mode" "${BASH_REMATCH[2]:-?}" "${BASH_REMATCH[1]:-?}" "${ok:-?}" "${failed:-?}" >&2
  # Spaced so that each swap lands in its own part of the plot.
  if [ "$i" -lt 5 ]; then sleep 2; fi
done
EOF
chmod +x "$work/swap.sh"

echo "== starting hello_server on 127.0.0.1:$port under serverswap"
"$bin/serverswap" --socket "$socket" --quiet -- "$bin/hello_server" "127.0.0.1:$port"
for mode in close keepalive; do
  echo
  echo "== 12 s of load ($mode mode, 1000 req/s, 16 clients); a swap every 2 s from second 2"
  "$bin/serverswap" verify --json --duration 12 --clients 16 --rate 1000 --mode "$mode" \
    --progress-file "$work/progress" --deploy-at 2 "127.0.0.1:$port" -- \
    "$work/swap.sh" "$bin" "$socket" "$port" "$work/progress" "$out/$mode.swaps" "$mode" \
    >"$out/$mode.json" || true  # the tally below says what failed
done
echo
echo "== tally"
echo "daemon log: $out/daemon.log"
python3 bench/demo_report.py "$out" close keepalive
