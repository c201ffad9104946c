#!/usr/bin/env bash
# Benchmarks the bundle's own integrity and staging paths on a ≥ 2 GB bundle:
#  - ferry build: wall time and peak RSS (memory must not grow with bundle size)
#  - delivery.run --check vs sha256sum and openssl dgst -sha256 of the same file (page
#    cache warm for all)
#  - install's verify+stage (one read, hash + copy + fsync) vs plain cp of the file, and
#    vs cp followed by sync (staging's copy is durable when it returns, cp's is not)
# Every command runs BENCH_RUNS times (default 1); the summary gives medians and ratios.
# Usage: scripts/bench-check.sh [work-dir] [images] [MiB per image]   (defaults: /tmp/ferry-bench 8 256)
# Env:   FERRY_BIN, FERRY_INSTALLER_BIN  binaries (default target/dist/…, built if missing)
#        BENCH_RUNS  runs per measurement (default 1)
#        BENCH_PREWARM=0  do not pre-warm page-cache memory before timed writers
# The work dir keeps the layout and bench.run afterwards; scratch copies are removed.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh   # binaries, need, free_port, wait_v2, start_distribution, prewarm, median…
work=${1:-/tmp/ferry-bench}; n=${2:-8}; mib=${3:-256}
runs=${BENCH_RUNS:-1}
if [ -z "${FERRY_BIN:-}" ] && [ ! -x target/dist/ferry ]; then bash scripts/build.sh; fi
binaries
mkdir -p "$work"
work=$(realpath "$work")
prewarm_file=""
cleanup() {
  rm -rf "$work/root" "$work/copy.run" "$work/times"
  if [ -n "$prewarm_file" ]; then rm -f "$prewarm_file"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$work/times"; mkdir -p "$work/times"

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
bash scripts/bench-layout.sh "$work/layout" "$n" "$mib"
{ echo "FROM scratch"; for i in $(seq 1 "$n"); do echo "IMAGE oci:layout:img$i"; done; } > "$work/Kubefile"
# t <label> <cmd…>: prints "<secs> s, peak RSS <KiB> KiB" and keeps "<secs> <KiB>" for the summary
t() {
  local label=$1; shift
  local rc=0
  /usr/bin/time -f '%e %M' -o "$work/times/last" "$@" || rc=$?
  # the verify+stage run ends in a deliberate abort: keep the time line, drop the signal note
  grep -v '^Command' "$work/times/last" | tail -1 >> "$work/times/$label"
  tail -1 "$work/times/$label" | awk '{ printf "%s s, peak RSS %s KiB\n", $1, $2 }'
  return "$rc"
}
maxrss() { sort -n -k2,2 "$1" | tail -1 | awk '{ printf "%.1f", $2 * 1024 / 1e6 }'; }

stage() {
  echo "== verify+stage (install up to staging, into a scratch root)"
  rm -rf "$work/root"; sync; prewarm $((size + (64 << 20)))
  # The bench bundle carries no runtime, and install refuses a host without one before it
  # changes anything: a stand-in `ctr` and socket under the scratch root let it reach staging.
  mkdir -p "$work/root/usr/bin"; printf '#!/bin/sh\nexit 1\n' > "$work/root/usr/bin/ctr"; chmod +x "$work/root/usr/bin/ctr"
  mkdir -p "$work/root/run/containerd"; : > "$work/root/run/containerd/containerd.sock"
  # The whole install runs (its later phases may fail here: the bench bundle has no
  # runtime); staging's own time is read from the run log's millisecond time stamps,
  # from "==> stage" to the next phase's line.
  # Peak RSS: of the whole install process (staging is its largest phase).
  /usr/bin/time -f '%M' -o "$work/times/stage-rss" "$work/bench.run" --root "$work/root" --yes -q \
    --skip-preflight ports --skip-preflight disk --registry-port 39517 --wait-timeout 1 >/dev/null 2>&1 || true
  [ -s "$(find "$work/root" -name '*.run' -size +1M -print -quit 2>/dev/null)" ] || echo "warning: no staged copy found under $work/root" >&2
  python3 - "$work/root/var/log/ferry/ferry.log" "$(grep -v '^Command' "$work/times/stage-rss" | tail -1)" >> "$work/times/stage" <<'PY'
import sys, datetime
t = lambda l: datetime.datetime.strptime(l[:23], "%Y-%m-%d %H:%M:%S.%f")
lines = open(sys.argv[1]).read().splitlines()
i = next(n for n, l in enumerate(lines) if l[25:].startswith("==> stage"))
j = next(n for n in range(i + 1, len(lines)) if lines[n][25:].startswith("==> "))
print("%.2f %s" % ((t(lines[j]) - t(lines[i])).total_seconds(), sys.argv[2] or 0))
PY
  tail -1 "$work/times/stage" | awk '{ printf "stage: %s s (from the run log)\n", $1 }'
  # The install went on past staging and started services in the scratch root: stop them.
  "$work/bench.run" --root "$work/root" reset --yes -q >/dev/null 2>&1 || true
  sync; rm -rf "$work/root"
}
copy() {
  echo "== cp (baseline)"
  rm -f "$work/copy.run"; sync; prewarm $((size + (64 << 20)))
  t cp cp "$work/bench.run" "$work/copy.run"
  # staging fsyncs its copy before it returns; cp does not: also time cp's data to disk
  local s e; s=$(date +%s%N); sync; e=$(date +%s%N)
  tail -1 "$work/times/cp" | awk -v s="$s" -v e="$e" '{ printf "%.2f\n", $1 + (e - s) / 1e9 }' >> "$work/times/cpsync"
  echo "cp then sync: $(tail -1 "$work/times/cpsync") s"
  rm -f "$work/copy.run"
}
for r in $(seq 1 "$runs"); do
  [ "$runs" = 1 ] || echo "-- run $r/$runs"
  echo "== ferry build ($n × $mib MiB)"
  sync; prewarm $(( (n * mib + 64) << 20 ))
  t build "$ferry" build -q --no-payload --installer "$installer" -f "$work/Kubefile" -o "$work/bench.run"
  size=$(stat -c %s "$work/bench.run"); echo "bundle: $size bytes"
  cat "$work/bench.run" > /dev/null   # warm the page cache for a fair comparison
  echo "== delivery.run --check"
  t check "$work/bench.run" --check
  echo "== sha256sum (baseline; coreutils has no SHA-NI path)"
  t sha256sum sha256sum "$work/bench.run"
  if command -v openssl >/dev/null; then
    echo "== openssl dgst -sha256 (baseline with SHA-NI)"
    t openssl openssl dgst -sha256 "$work/bench.run"
  fi
  # Both write the whole file into fresh page cache, whose cost drifts on VMs: alternate.
  if [ $((r % 2)) = 1 ]; then stage; copy; else copy; stage; fi
done

echo
echo "== summary: $n × $mib MiB, bundle $size bytes, median of $runs run(s)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
b=$(median "$work/times/build"); c=$(median "$work/times/check"); s=$(median "$work/times/sha256sum")
st=$(median "$work/times/stage"); cp=$(median "$work/times/cp")
printf '%-34s %7s s  peak RSS %s MB\n' "ferry build (local layout)" "$b" "$(maxrss "$work/times/build")"
printf '%-34s %7s s  peak RSS %s MB  (%.2f GB/s)\n' "delivery.run --check" "$c" "$(maxrss "$work/times/check")" "$(awk -v z="$size" -v t="$c" 'BEGIN { print z / t / 1e9 }')"
printf '%-34s %7s s  (%.2f GB/s)\n' "sha256sum" "$s" "$(awk -v z="$size" -v t="$s" 'BEGIN { print z / t / 1e9 }')"
awk -v a="$c" -v b="$s" 'BEGIN { printf "%-34s %7.2f\n", "ratio --check/sha256sum", a / b }'
if [ -s "$work/times/openssl" ]; then
  o=$(median "$work/times/openssl")
  printf '%-34s %7s s  (%.2f GB/s)\n' "openssl dgst -sha256" "$o" "$(awk -v z="$size" -v t="$o" 'BEGIN { print z / t / 1e9 }')"
  awk -v a="$c" -v b="$o" 'BEGIN { printf "%-34s %7.2f\n", "ratio --check/openssl", a / b }'
fi
printf '%-34s %7s s  peak RSS %s MB (the whole install process)\n' "verify+stage" "$st" "$(maxrss "$work/times/stage")"
printf '%-34s %7s s\n' "cp" "$cp"
awk -v a="$st" -v b="$cp" 'BEGIN { if (b > 0) printf "%-34s %7.2f\n", "ratio verify+stage/cp", a / b; else printf "%-34s %7s  (cp took < 0.01 s)\n", "ratio verify+stage/cp", "n/a" }'
cs=$(median "$work/times/cpsync")
printf '%-34s %7s s  (runs: %s)\n' "cp then sync" "$cs" "$(tr '\n' ' ' < "$work/times/cpsync")"
awk -v a="$st" -v b="$cs" 'BEGIN { printf "%-34s %7.2f\n", "ratio verify+stage/(cp then sync)", a / b }'
