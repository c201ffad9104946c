#!/usr/bin/env bash
# The test command: installs what the tests need, builds the shipped binaries, checks
# formatting and lints, and runs every test (unit, corpus, end-to-end) against real
# components. `.ci/run` runs exactly this. Ends with one "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --all-targets --no-fail-fast -- --test-threads 2 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
passed=$(awk '/^test result:/ {for (i=1;i<=NF;i++) if ($i ~ /^passed;?$/) p+=$(i-1)} END {print p+0}' "$log")
failed=$(awk '/^test result:/ {for (i=1;i<=NF;i++) if ($i ~ /^failed;?$/) f+=$(i-1)} END {print f+0}' "$log")
echo
echo "$passed passed, $failed failed"
exit "$rc"
