#!/usr/bin/env bash
# Benchmarks the bundle's own integrity and staging paths on a ≥ 2 GB bundle:
#  - ferry build: wall time and peak RSS (memory must not grow with bundle size)
#  - delivery.run --check vs sha256sum of the same file (page cache warm for both)
#  - install's verify+stage (one read, hash + copy) vs plain cp of the file
# Usage: scripts/bench-check.sh [work-dir] [images] [MiB per image]   (defaults: /tmp/ferry-bench 8 256)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/ferry-bench}; n=${2:-8}; mib=${3:-256}
[ -x target/dist/ferry ] || bash scripts/build.sh
mkdir -p "$work"
bash scripts/bench-layout.sh "$work/layout" "$n" "$mib"
{ echo "FROM scratch"; for i in $(seq 1 "$n"); do echo "IMAGE oci:layout:img$i"; done; } > "$work/Kubefile"
t() { /usr/bin/time -f "%e s, peak RSS %M KiB" "$@"; }
echo "== ferry build ($n × $mib MiB)"
t target/dist/ferry build -q --no-payload -f "$work/Kubefile" -o "$work/bench.run"
size=$(stat -c %s "$work/bench.run"); echo "bundle: $size bytes"
cat "$work/bench.run" > /dev/null   # warm the page cache for a fair comparison
echo "== delivery.run --check"
t "$work/bench.run" --check
echo "== sha256sum (baseline)"
t sha256sum "$work/bench.run"
echo "== verify+stage (install up to staging, into a scratch root)"
rm -rf "$work/root"
t env FERRY_CRASH_AFTER=stage "$work/bench.run" --root "$work/root" --yes -q --skip-preflight ports --registry-port 0 2>&1 | grep -v aborting || true
echo "== cp (baseline)"
rm -f "$work/copy.run"
t cp "$work/bench.run" "$work/copy.run"
sync
rm -rf "$work/root" "$work/copy.run"
