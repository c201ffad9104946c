#!/usr/bin/env bash
# Scale benchmark (issue #17, item 4): many images, end to end, with time, MB/s and the
# peak RSS of every ferry process per phase. Run as root (network namespaces, containerd).
#
#   1. build    `ferry build` of N images from a local Distribution registry (docker-registry)
#               through `--registry-mirror <host>=<registry>/<host>`, so the images keep
#               their original names (docker.io/…, quay.io/…, ghcr.io/…)
#   2. check    `delivery.run --check`
#   3. install  `delivery.run --root <sandbox>` on host A (a network namespace): stage,
#               registry, containerd, up to serving
#   4. pull A   host A's containerd fetches all N images by their original names through the
#               hosts.toml ferry wrote (ctr … --hosts-dir), from A's registry
#   5. join B   host B (a second network namespace) joins with the bare installer
#   6. pull B   B's containerd fetches all N by original names from A's registry over TLS
#
# "Pull" = `ctr content fetch`: every manifest, config and layer of the image is fetched
# into containerd's content store and the image is registered under its name (what a
# pull does before it unpacks). Unpacking into snapshots is off by default (it doubles the
# disk needed and measures overlayfs, not ferry); BENCH_UNPACK=1 uses `ctr images pull`,
# which unpacks (the layers are real tar+gzip with correct diff_ids, so that works too).
#
# MB/s is the images' bytes (every distinct blob: layers, configs, manifests; 1 MB = 1e6
# bytes) divided by the phase's wall time. Peak RSS: `/usr/bin/time` for the foreground
# commands; for the long-running ferry processes (the registry/join server on A, anything
# on B) the kernel's high-water mark (VmHWM), reset at each phase start (clear_refs 5).
#
# The data: scripts/bench-scale-registry.py writes Distribution's storage tree directly
# (2 shared "os" + 4 shared "runtime" layers ≈ 10 % of the size, one app layer per image;
# random bytes in tar in stored-deflate gzip). It is kept in BENCH_CACHE and reused when N
# and SIZE match (one at a time: generating another size removes the previous one).
# Everything else is deleted as soon as it is no longer needed.
#
# Usage: scripts/bench-scale.sh [N] [SIZE]     (default: 300 10G; tiny: 6 60M)
#        SIZE in bytes with an optional K/M/G/T suffix (powers of 1024)
# Env:   FERRY_BIN, FERRY_INSTALLER_BIN  binaries (default target/dist/…)
#        BENCH_WORK   scratch directory (default: fresh mktemp dir under $TMPDIR or /var/tmp,
#                     removed on exit)
#        BENCH_CACHE  where generated registries are kept (default /var/tmp/ferry-bench-scale;
#                     BENCH_CACHE=none: generate into BENCH_WORK and delete after the build)
#        BENCH_PULL_JOBS  concurrent ctr pulls per node (default 4)
#        BENCH_UNPACK=1   unpack into snapshots (`ctr images pull`) instead of fetch only
#        BENCH_HOLD=1 keep both hosts running after the table until <work>/hold is removed
#        BENCH_OUT    file the markdown table is written to (default <cache>/results-N-SIZE.md,
#                     or <cwd>/bench-scale-N-SIZE.md with BENCH_CACHE=none)
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
[ $# -le 2 ] || { usage >&2; exit 2; }

cd "$(dirname "$0")/.."
. scripts/bench-lib.sh   # binaries, need, free_port, wait_v2, start_distribution, prewarm, median…
n=${1:-300}; size_arg=${2:-10G}
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive integer, not '$n'" >&2; exit 2; }
to_bytes() {
  local v=$1 m=1
  case "$v" in
    *[kK]) m=1024; v=${v%?} ;; *[mM]) m=$((1 << 20)); v=${v%?} ;;
    *[gG]) m=$((1 << 30)); v=${v%?} ;; *[tT]) m=$((1 << 40)); v=${v%?} ;;
  esac
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "SIZE must be a number with an optional K/M/G/T suffix, not '$1'" >&2; return 2; }
  echo $((v * m))
}
size=$(to_bytes "$size_arg") || exit 2
[ "$size" -ge $((n * 65536 * 2)) ] || { echo "SIZE $size_arg is too small for $n images (at least 128 KiB each)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root: the benchmark creates network namespaces and runs containerd" >&2; exit 1; }

binaries
need docker-registry python3 curl ss ip nsenter containerd ctr runc xargs /usr/bin/time
jobs=${BENCH_PULL_JOBS:-4}
unpack=${BENCH_UNPACK:-0}

cache_base=${BENCH_CACHE:-/var/tmp/ferry-bench-scale}
if [ -n "${BENCH_WORK:-}" ]; then
  work=$(realpath -m "$BENCH_WORK"); mkdir -p "$work"; own_work=0
else
  work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench-scale.XXXXXX"); own_work=1
fi
if [ "$cache_base" = none ]; then
  data=$work/data; keep_data=0
  out_file=${BENCH_OUT:-$PWD/bench-scale-$n-$size_arg.md}
else
  mkdir -p "$cache_base"; cache_base=$(realpath "$cache_base")
  data=$cache_base/registry-$n-$size-v1; keep_data=1
  out_file=${BENCH_OUT:-$cache_base/results-$n-$size_arg.md}
fi

# ---- cleanup: everything this run started, even on failure ----------------------------
id=$$
ns_a=ferry-scale-a-$id; ns_b=ferry-scale-b-$id
sub=$((id % 200 + 20)); ip_a=10.78.$sub.1; ip_b=10.78.$sub.2
root_a=$work/host-a; root_b=$work/host-b
reg_pid=""; ns_made=0
in_a() { nsenter --net=/run/netns/"$ns_a" "$@"; }
in_b() { nsenter --net=/run/netns/"$ns_b" "$@"; }
cleanup() {
  local rc=$? p m
  set +e
  if [ -n "$reg_pid" ]; then kill "$reg_pid" 2>/dev/null; wait "$reg_pid" 2>/dev/null; fi
  if [ -d "$root_b" ]; then in_b "$installer" --root "$root_b" reset --yes -q >/dev/null 2>&1; fi
  if [ -d "$root_a" ]; then
    for p in "$root_a/var/lib/ferry/bundle.run" "$work/delivery.run"; do
      if [ -x "$p" ]; then in_a "$p" --root "$root_a" reset --yes -q >/dev/null 2>&1 && break; fi
    done
  fi
  # Anything still running from the sandboxes (reset failed?): stop it by pid.
  for p in $(pids_under "$work"); do kill "$p" 2>/dev/null; done
  sleep 0.2
  for p in $(pids_under "$work"); do kill -9 "$p" 2>/dev/null; done
  for m in $(findmnt -rn -o TARGET | grep -F "$work/" | sort -r); do umount -l "$m" 2>/dev/null; done
  if [ "$ns_made" = 1 ]; then ip netns del "$ns_a" 2>/dev/null; ip netns del "$ns_b" 2>/dev/null; fi
  if [ "$keep_data" = 0 ] || [ ! -f "$data/complete" ]; then rm -rf "$data"; fi   # or half-made
  if [ "$own_work" = 1 ]; then rm -rf "$work"; fi
  [ "$rc" = 0 ] || echo "bench-scale: failed (exit $rc); cleaned up" >&2
  exit "$rc"
}
pids_under() { # pids of processes whose executable or command line names a path under $1
  local d
  for d in /proc/[0-9]*; do
    case "${d#/proc/}" in "$$" | "$PPID" | "$BASHPID") continue ;; esac
    if readlink "$d/exe" 2>/dev/null | grep -qF "$1/" ||
       { tr '\0' ' ' < "$d/cmdline"; } 2>/dev/null | grep -qF "$1/"; then
      echo "${d#/proc/}"
    fi
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- disk: refuse up front if it cannot fit -------------------------------------------
# At most three copies at once: registry + ferry's cache + delivery.run during the build;
# registry (if kept) + delivery.run + the install's staged copy during the install;
# registry + staged copy + one node's content store during the pulls (node A's content is
# removed before B pulls). Unpacking adds one more copy (the snapshots).
have_data=0
[ -f "$data/complete" ] && have_data=1
if [ "$keep_data" = 1 ] && [ "$have_data" = 0 ]; then
  # One cached registry at a time: a 10 GiB tree per size tried would fill the disk.
  for old in "$cache_base"/registry-*; do
    [ -d "$old" ] || continue
    echo "removing the cached registry $old (other N/SIZE)"; rm -rf "$old"
  done
fi
copies=3; [ "$unpack" = 1 ] && copies=4
need=$(( copies * size + size / 20 + (1 << 30) ))   # + 5 % (gzip/tar framing, metadata) + 1 GiB
[ "$have_data" = 1 ] && need=$((need - size))
avail=$(df -B1 --output=avail "$work" | tail -1 | tr -d ' ')
gib() { awk -v b="$1" 'BEGIN { printf "%.1f GiB", b / 1073741824 }'; }
if [ "$need" -gt "$avail" ]; then
  echo "not enough disk: $n images x $size_arg needs about $(gib "$need") free under $work" \
       "($copies copies of the data at the peak$([ "$have_data" = 1 ] && echo ", the registry already generated")," \
       "but $(gib "$avail") is available. Choose a smaller SIZE, free space, or point BENCH_WORK/TMPDIR elsewhere." >&2
  exit 1
fi
if [ "$keep_data" = 1 ] && [ "$have_data" = 0 ]; then
  cavail=$(df -B1 --output=avail "$cache_base" | tail -1 | tr -d ' ')
  if [ "$(df --output=target "$cache_base" | tail -1)" != "$(df --output=target "$work" | tail -1)" ] &&
     [ "$cavail" -lt $((size + size / 20)) ]; then
    echo "not enough disk for the registry cache in $cache_base: needs $(gib $((size + size / 20))), has $(gib "$cavail")" >&2
    exit 1
  fi
fi
echo "== bench-scale: $n images, $size_arg ($size bytes); work $work; disk: need ~$(gib "$need"), $(gib "$avail") free"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load before: $load_before"

# ---- helpers ---------------------------------------------------------------------------
now() { date +%s.%N; }
results=$work/results.tsv; : > "$results"
# record <phase> <seconds> <bytes> <rss description>
record() {
  local mbs
  mbs=$(awk -v b="$3" -v s="$2" 'BEGIN { if (b > 0 && s > 0) printf "%.0f", b / s / 1e6; else print "–" }')
  printf '%s\t%.2f\t%s\t%s\n' "$1" "$2" "$mbs" "$4" >> "$results"
  printf '   %-10s %8.2f s  %6s MB/s  peak RSS: %s\n' "$1" "$2" "$mbs" "$4"
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k * 1024 / 1e6 }'; }
# timed <outfile> <cmd…>: runs cmd under /usr/bin/time; sets T (seconds) and R (max RSS KiB)
timed() {
  local o=$1 s e; shift
  s=$(now)
  if ! /usr/bin/time -f '%M' -o "$work/time.out" "$@" > "$o" 2> "$o.err"; then
    echo "failed: $*" >&2; cat "$o" "$o.err" >&2; return 1
  fi
  e=$(now)
  T=$(awk -v s="$s" -v e="$e" 'BEGIN { print e - s }'); R=$(tail -1 "$work/time.out")
}

# The long-running ferry processes of a sandbox: the ferry-installer binaries (installed
# copy, staged bundle, delivery.run) whose command line names the sandbox root.
ferry_daemons() {
  local d exe
  for d in /proc/[0-9]*; do
    exe=$(readlink "$d/exe" 2>/dev/null) || continue
    case "$exe" in
      */containerd | */containerd-shim* | */runc | */ctr | */nsenter | */time) continue ;;
    esac
    { tr '\0' ' ' < "$d/cmdline"; } 2>/dev/null | grep -qF "$1" || continue
    case "$exe" in "$work"/* | "$installer" | "$ferry") echo "${d#/proc/}" ;; esac
  done
}
daemon_name() { # pid -> its role: "registry", "supervise(containerd)", …
  local a
  mapfile -t a < <({ tr '\0' '\n' < "/proc/$1/cmdline"; } 2>/dev/null)
  if [ "${a[1]:-}" = supervise ] && [ "${a[2]:-}" = --name ]; then echo "supervise(${a[3]:-?})"
  else echo "${a[1]:-$(basename "${a[0]:-?}")}"; fi
}
reset_hwm() { local p; for p in "$@"; do echo 5 > "/proc/$p/clear_refs" 2>/dev/null || true; done; }
hwm() { # pid… -> "name X MB; …" from VmHWM
  local p k out=""
  for p in "$@"; do
    k=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
    [ -n "$k" ] || continue
    out="$out${out:+; }$(daemon_name "$p") $(mb "$k")"
  done
  echo "$out"
}

# ---- data: a Distribution registry holding the N images --------------------------------
if [ "$have_data" = 1 ]; then
  echo "== data: reusing $data"
else
  rm -rf "$data"; mkdir -p "$data"
  s=$(now)
  python3 scripts/bench-scale-registry.py "$data/storage" "$n" "$size" > "$data/meta.json"
  touch "$data/complete"
  echo "== data: generated $data in $(awk -v s="$s" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }') s"
fi
bytes=$(sed -n 's/.*"bytes": *\([0-9]*\).*/\1/p' "$data/meta.json")
mapfile -t images < "$data/images.txt"
[ "${#images[@]}" = "$n" ] || { echo "$data/images.txt lists ${#images[@]} images, expected $n" >&2; exit 1; }
echo "   $n images, $bytes bytes of distinct blobs ($(gib "$bytes"))"

start_distribution "$data/storage"
# One image by its mirror path, to fail early and clearly if the tree is not servable.
first=${images[0]}; fhost=${first%%/*}; frest=${first#*/}
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$reg/v2/$fhost/${frest%:*}/manifests/${frest##*:}")
[ "$code" = 200 ] || { echo "Distribution answered $code for $first: the generated tree in $data is unusable (delete it)" >&2; exit 1; }

# ---- phase 1: ferry build --------------------------------------------------------------
bash scripts/containerd-payload.sh "$work/payload" > /dev/null
{ echo "FROM scratch"; echo "LABEL name=scale"; printf 'IMAGE %s\n' "${images[@]}"; } > "$work/Kubefile"
mirrors=()
for h in $(printf '%s\n' "${images[@]}" | cut -d/ -f1 | sort -u); do mirrors+=(--registry-mirror "$h=$reg/$h"); done
sync
echo "== 1. ferry build ($n images from Distribution at $reg)"
timed "$work/build.json" "$ferry" build -q --output json --installer "$installer" \
  --payload "containerd=$work/payload" --insecure-registry "$reg" "${mirrors[@]}" \
  --cache-dir "$work/cache" -f "$work/Kubefile" -o "$work/delivery.run"
record "1 build" "$T" "$bytes" "ferry build $(mb "$R")"
kill "$reg_pid"; wait "$reg_pid" 2>/dev/null || true; reg_pid=""
rm -rf "$work/cache"
if [ "$keep_data" = 0 ]; then rm -rf "$data"; fi
bundle_size=$(stat -c %s "$work/delivery.run")
echo "   delivery.run: $bundle_size bytes"

# ---- phase 2: --check ------------------------------------------------------------------
echo "== 2. delivery.run --check"
timed "$work/check.out" "$work/delivery.run" --check
record "2 check" "$T" "$bytes" "delivery.run --check $(mb "$R")"

# ---- phase 3: install on host A --------------------------------------------------------
ip netns del "$ns_a" 2>/dev/null || true; ip netns del "$ns_b" 2>/dev/null || true
ip netns add "$ns_a"; ns_made=1; ip netns add "$ns_b"
ip link add "fsa$sub" netns "$ns_a" type veth peer name "fsb$sub" netns "$ns_b"
ip -n "$ns_a" addr add "$ip_a/24" dev "fsa$sub"; ip -n "$ns_b" addr add "$ip_b/24" dev "fsb$sub"
for x in "$ns_a fsa$sub" "$ns_b fsb$sub"; do
  set -- $x; ip -n "$1" link set "$2" up; ip -n "$1" link set lo up
done
echo "== 3. install on host A (netns $ns_a, $ip_a, --root $root_a)"
timed "$work/install.out" nsenter --net=/run/netns/"$ns_a" "$work/delivery.run" --root "$root_a" --node-ip "$ip_a" \
  --registry-port 5050 --join-port 5443 --yes -q
token=$(sed -n 's/.*--token \([^ ]*\).*/\1/p' "$work/install.out" | head -1)
[ -n "$token" ] || { echo "the install printed no join command:" >&2; cat "$work/install.out" >&2; exit 1; }
mapfile -t daemons_a < <(ferry_daemons "$root_a")
[ "${#daemons_a[@]}" -gt 0 ] || { echo "no ferry process runs for $root_a after the install" >&2; exit 1; }
record "3 install" "$T" "$bytes" "delivery.run $(mb "$R"); $(hwm "${daemons_a[@]}")"
rm -f "$work/delivery.run"   # the install's staged copy serves from here on

# ---- phases 4 and 6: containerd pulls everything by original name ----------------------
ctr_of() { echo "$1/opt/ferry/bin/ctr --address $1/run/ferry/containerd/containerd.sock"; }
pull_all() { # netns root: fetches every image through root's hosts.toml, $jobs at a time
  local ns=$1 root=$2 verb=(content fetch)
  [ "$unpack" = 1 ] && verb=(images pull)
  printf '%s\n' "${images[@]}" | xargs -P "$jobs" -I{} nsenter --net=/run/netns/"$ns" \
    $(ctr_of "$root") "${verb[@]}" --hosts-dir "$root/etc/ferry/containerd/certs.d" {} \
    > "$work/pull.log" 2>&1 || { echo "a pull failed:" >&2; grep -iE 'error|fail' "$work/pull.log" | head -20 >&2; return 1; }
}
check_pulled() { # root: every image registered, every byte in the content store
  local root=$1 have got
  have=$($(ctr_of "$root") images ls -q | grep -cFx -f "$data_images" || true)
  [ "$have" = "$n" ] || { echo "containerd under $root has $have of the $n images" >&2; return 1; }
  got=$(du -sb --apparent-size "$(content_dir "$root")" | cut -f1)
  [ "$got" -ge "$bytes" ] || { echo "containerd under $root holds $got bytes of content, expected >= $bytes" >&2; return 1; }
}
content_dir() { find "$1" -type d -path '*io.containerd.content.v1.content/blobs' -print -quit; }
data_images=$work/images.txt; printf '%s\n' "${images[@]}" > "$data_images"

echo "== 4. host A's containerd pulls all $n images by original name (jobs $jobs$([ "$unpack" = 1 ] && echo ", unpacking"))"
reset_hwm "${daemons_a[@]}"
s=$(now); pull_all "$ns_a" "$root_a"; T=$(awk -v s="$s" -v e="$(now)" 'BEGIN { print e - s }')
record "4 pull A" "$T" "$bytes" "$(hwm "${daemons_a[@]}")"
check_pulled "$root_a"
# Node A's copy is no longer needed: remove the images and let containerd's GC drop content.
$(ctr_of "$root_a") images rm --sync "${images[@]}" > /dev/null
left=$(du -sb "$(content_dir "$root_a")" | cut -f1)
[ "$left" -lt $((bytes / 2)) ] || echo "   note: $left bytes still in A's content store after removing the images"

# ---- phase 5: host B joins -------------------------------------------------------------
echo "== 5. host B joins (netns $ns_b, $ip_b, bare installer, --root $root_b)"
reset_hwm "${daemons_a[@]}"
timed "$work/join.out" nsenter --net=/run/netns/"$ns_b" "$installer" --root "$root_b" --join "$ip_a:5443" --token "$token" \
  --yes -q --wait-timeout 120
mapfile -t daemons_b < <(ferry_daemons "$root_b")
rss="ferry-installer join $(mb "$R"); A: $(hwm "${daemons_a[@]}")"
[ "${#daemons_b[@]}" = 0 ] || rss="$rss; B: $(hwm "${daemons_b[@]}")"
record "5 join B" "$T" 0 "$rss"

echo "== 6. host B's containerd pulls all $n images by original name from A over TLS"
reset_hwm "${daemons_a[@]}" "${daemons_b[@]}"
s=$(now); pull_all "$ns_b" "$root_b"; T=$(awk -v s="$s" -v e="$(now)" 'BEGIN { print e - s }')
rss="A: $(hwm "${daemons_a[@]}")"
[ "${#daemons_b[@]}" = 0 ] || rss="$rss; B: $(hwm "${daemons_b[@]}")"
record "6 pull B" "$T" "$bytes" "$rss"
check_pulled "$root_b"
grep -q "https://$ip_a:5443" "$root_b"/etc/ferry/containerd/certs.d/*/hosts.toml ||
  { echo "B's hosts.toml does not point at https://$ip_a:5443" >&2; exit 1; }

# ---- table -----------------------------------------------------------------------------
{
  echo "$n images, $bytes bytes of distinct blobs ($(gib "$bytes")); delivery.run $bundle_size bytes;" \
       "pulls: $([ "$unpack" = 1 ] && echo "ctr images pull (unpacked)" || echo "ctr content fetch"), $jobs at a time;" \
       "load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| phase | seconds | MB/s | peak RSS of each ferry process |"
  echo "|---|---|---|---|"
  awk -F'\t' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$results"
} > "$out_file"
echo
echo "== results (also in $out_file)"
cat "$out_file"
if [ "${BENCH_HOLD:-0}" = 1 ]; then   # leave both hosts up to look around; rm the file to clean up
  touch "$work/hold"
  echo "holding (BENCH_HOLD=1): A: nsenter --net=/run/netns/$ns_a, --root $root_a; B: $ns_b, $root_b;" \
       "rm $work/hold to clean up"
  while [ -e "$work/hold" ]; do sleep 1; done
fi
