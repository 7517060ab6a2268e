#!/usr/bin/env bash
# Runs every fuzz target in turn and prints one line per target.
#
#   fuzz/run.sh                 20 seconds each (what CI runs)
#   fuzz/run.sh 300             300 seconds each
#   fuzz/run.sh --runs 10000000 ten million executions each (the README's figures)
#
# cargo-fuzz needs rustc's unstable coverage flags. The stable compiler takes them
# with RUSTC_BOOTSTRAP=1, so no nightly toolchain is needed. No sanitizer: heartline
# has no unsafe code, so AddressSanitizer could only find what Rust's own checks
# already catch; overflow checks and debug assertions stay on in fuzz builds.
set -euo pipefail
cd "$(dirname "$0")"

limit=(-max_total_time="${1:-20}")
if [ "${1:-}" = --runs ]; then
  limit=(-runs="${2:?--runs needs a count}")
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
logs=target/fuzz-logs
mkdir -p "$logs"
for target in $(cargo fuzz list); do
  log="$logs/$target.log"
  if cargo fuzz run --sanitizer none "$target" -- "${limit[@]}" >"$log" 2>&1; then
    echo "fuzz $target: $(grep -E '^Done [0-9]+ runs' "$log" | tail -1), no finding"
  else
    tail -n 60 "$log"
    echo "fuzz $target: FINDING (log: fuzz/$log; replay: cargo fuzz run --sanitizer none $target fuzz/artifacts/$target/...)"
    exit 1
  fi
done
