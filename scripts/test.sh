#!/usr/bin/env bash
# The test command: installs what the tests need, builds the shipped binaries, checks
# formatting and lints, and runs every test (unit, corpus, end-to-end) against real
# components. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --workspace -- --test-threads 2
