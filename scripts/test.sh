#!/usr/bin/env bash
# The test command: installs what the tests need, builds the shipped binaries, checks
# formatting and lints, and runs every test (unit, corpus, end-to-end) against real
# components, then a short fuzzing pass. `.ci/run` runs exactly this. Ends with one "N passed, N failed" line.
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
# A short fuzzing pass over every parser of untrusted input (scripts/fuzz.sh; the long
# runs and their figures are in docs/reliability.md). Each target counts as one test.
fuzz_log=$(mktemp)
bash scripts/fuzz.sh "${FUZZ_SECONDS:-5}" 2>&1 | tee "$fuzz_log"
fuzz_rc=${PIPESTATUS[0]}
[ "$fuzz_rc" -eq 0 ] || rc=1
fuzz_ok=$(grep -cE '^[a-z_]+ +[0-9?]+ +[0-9]+  ok$' "$fuzz_log" || true)
fuzz_bad=$(grep -cE '^[a-z_]+ +[0-9?]+ +[0-9]+  (CRASH|ERROR)' "$fuzz_log" || true)
rm -f "$fuzz_log"
set -e
passed=$(awk '/^test result:/ {for (i=1;i<=NF;i++) if ($i ~ /^passed;?$/) p+=$(i-1)} END {print p+0}' "$log")
failed=$(awk '/^test result:/ {for (i=1;i<=NF;i++) if ($i ~ /^failed;?$/) f+=$(i-1)} END {print f+0}' "$log")
echo
passed=$((passed + fuzz_ok))
failed=$((failed + fuzz_bad + (fuzz_rc != 0 && fuzz_bad == 0 ? 1 : 0)))
echo "$passed passed, $failed failed"
exit "$rc"
