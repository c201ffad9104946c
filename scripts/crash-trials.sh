#!/usr/bin/env bash
# Crash trials with real processes (tests/e2e/crash.rs): kill -9 of install, of upgrade and of join
# (two network namespaces) at random instants, N trials each (default 20), every re-run
# converging and every reset leaving no file and no process; then the power-cut cases.
# Prints the figures (the `crash:` lines) that docs/reliability.md records. Run as root.
# Usage: scripts/crash-trials.sh [trials]        Env: FERRY_CRASH_SEED to replay a run.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
[ -x target/dist/ferry-installer ] && [ -x target/dist/ferry ] || bash scripts/build.sh
log=$(mktemp)
set +e
FERRY_CRASH_TRIALS=$n cargo test -p ferry-tests --test e2e crash -- --test-threads 1 --nocapture >"$log" 2>&1
rc=$?
set -e
grep -E '^crash:|^test |^test result' "$log" | sed 's/^test \(.*\) \.\.\. crash:/test \1 ...\ncrash:/'
[ "$rc" -eq 0 ] || { echo "crash trials failed; full log: $log"; exit "$rc"; }
rm -f "$log"
