#!/usr/bin/env bash
# Side by side: heartline's `server` example on each runtime, the ping floor (a
# program that only writes a Ping and reads the answer: what the kernel charges any
# server), and the Node `ws` server with the isAlive heartbeat, each under the same
# load (see benches/src/bin/load.rs). Prints every run's figures, then one result line
# each.
#
#   benches/load.sh [load options...]      e.g. benches/load.sh --clients 10000 --window-s 30
#   RUNTIMES="smol blocking" benches/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p heartline-examples --bin server -p heartline-benches --bins
if [ ! -d interop/node_modules/ws ]; then
    (cd interop && npm install --no-audit --no-fund)
fi

# One run; a run that fails is reported and the comparison goes on.
results=()
run() {
    local out
    out=$(target/release/load "$@") || echo "load $* failed" >&2
    echo "$out"
    results+=("$(grep '"event":"result"' <<<"$out" || echo "{\"failed\":\"$*\"}")")
}
for runtime in ${RUNTIMES-smol tokio async-std blocking}; do
    run --server heartline --runtime "$runtime" "$@"
done
run --server floor "$@"
run --server node "$@"

echo
printf '%s\n' "${results[@]}"
