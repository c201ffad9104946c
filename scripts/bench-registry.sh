#!/usr/bin/env bash
# Benchmarks the installer's registry (`delivery.run registry`) against Distribution, with
# two clients: skopeo and containerd.
#
# Builds a bundle of N synthetic images (scripts/bench-layout.sh: one random M MiB layer
# each + a shared 1 MiB layer; defaults give ~1.1 GB) with `ferry build --no-payload`,
# pushes the same images into a Distribution registry (`docker-registry`), then:
#  - time to first byte: start `delivery.run registry`, poll GET /v2/ until 200, in ms;
#    measured for the big bundle and for a 1-image bundle (should not depend on size);
#  - pulls of all N images, sequentially, from ferry and from Distribution, by two clients:
#    * skopeo: `skopeo copy docker://127.0.0.1:PORT/bench/imgN:1 dir:…`;
#    * containerd: `ctr content fetch --hosts-dir … docker.io/bench/imgN:1` into a private
#      containerd (its own root, state and socket under the scratch dir, started empty
#      for every pull), through a hosts.toml that mirrors docker.io to the server under
#      test, as on an installed node (containerd adds ?ns=docker.io). ctr does the HTTP
#      with containerd's fetcher and streams the bytes into the daemon's content store.
#    ferry verifies every blob against its digest once (registry/verify.rs): in the
#    background at idle priority from its start, or, for a blob not yet verified when it
#    is asked for, while its first full GET is sent. So each client pulls from ferry three
#    times per run: the first pull after a fresh start (what a fresh install sees), a
#    second pull (verdicts memoised), and a first pull after a fresh start with the
#    background verification off (FERRY_REGISTRY_BACKGROUND_VERIFY=0: every blob hashed
#    while it is sent). Every blob is warm in the page cache for both servers; pulled
#    copies are deleted and `sync`ed (untimed) between pulls, and page-cache memory is
#    pre-warmed before each pull (see prewarm below);
#  - raw blob GETs: each image's big layer with curl to /dev/null (no client-side disk
#    writes or hashing), to see the servers without the clients' own costs (ferry without
#    the background verification: the first GET hashes while it sends, the second not);
#  - sendfile vs copy loop (unless BENCH_SENDFILE=0): ferry started with
#    FERRY_REGISTRY_SENDFILE=1 and with =0, its blobs verified first by one untimed round
#    of GETs, then a pull by each client and the raw GETs: which way of sending verified
#    blobs over plain HTTP is faster (the default of `ServeOptions::sendfile`).
#  - CPU seconds (user + system) of each pull, split into the server's (the registry
#    process) and the client's (skopeo; ctr + the containerd daemon): the server's share
#    bounds what any server could gain, since the client's work is the same from both.
# Each number is the median (and min) of BENCH_RUNS runs (default 5, alternating which
# server goes first). The ratios printed at the end are ferry / Distribution of the
# medians (and of the minima): below 1 means ferry is faster. The goal is a first pull
# at <= 0.9 with both clients.
#
# Usage: scripts/bench-registry.sh [N] [MiB per image]     (defaults: 8 128)
# Env:   FERRY_BIN, FERRY_INSTALLER_BIN  binaries (default target/dist/…)
#        BENCH_RUNS  runs per measurement (default 5)
#        BENCH_WORK  scratch directory (default: a fresh mktemp dir, removed on exit)
#        BENCH_PREWARM=0  do not pre-warm page-cache memory before each pull
#        BENCH_CLIENTS  which clients pull (default "skopeo containerd")
#        BENCH_SENDFILE=0  skip the sendfile vs copy loop comparison
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh   # binaries, need, free_port, wait_v2, start_distribution, prewarm, median…
n=${1:-8}; mib=${2:-128}
runs=${BENCH_RUNS:-5}
binaries
clients=${BENCH_CLIENTS:-skopeo containerd}
tools="docker-registry curl ss"
for c in $clients; do
  case $c in
    skopeo) tools="$tools skopeo" ;;
    containerd) tools="$tools containerd ctr" ;;
    *) echo "BENCH_CLIENTS: unknown client $c (skopeo, containerd)" >&2; exit 1 ;;
  esac
done
need $tools

if [ -n "${BENCH_WORK:-}" ]; then
  work=$BENCH_WORK; mkdir -p "$work"; own_work=0
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-registry.XXXXXX"); own_work=1
fi
reg_pid=""; srv_pid=""; ctd_pid=""; prewarm_file=""
stop() { # pid
  kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true
}
cleanup() {
  if [ -n "$prewarm_file" ]; then rm -f "$prewarm_file"; fi
  if [ -n "$srv_pid" ]; then stop "$srv_pid"; fi
  if [ -n "$ctd_pid" ]; then stop "$ctd_pid"; fi
  if [ -n "$reg_pid" ]; then stop "$reg_pid"; fi
  if [ "$own_work" = 1 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_ferry <bundle> [sendfile 0|1] [background verification 0|1]: sets srv_pid, srv;
# appends the time to first 200 on /v2/ (ms) to $work/ttfb.<basename>. An empty or
# missing argument leaves that knob at the server's default.
start_ferry() {
  local bundle=$1 sendfile=${2:-} bg=${3:-} port s e
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    s=$(date +%s%N)
    env -u FERRY_REGISTRY_SENDFILE -u FERRY_REGISTRY_BACKGROUND_VERIFY \
      ${sendfile:+FERRY_REGISTRY_SENDFILE=$sendfile} ${bg:+FERRY_REGISTRY_BACKGROUND_VERIFY=$bg} \
      "$bundle" registry --listen "127.0.0.1:$port" > "$work/ferry-registry.log" 2>&1 &
    srv_pid=$!
    if wait_v2 "http://127.0.0.1:$port" "$srv_pid" 0; then
      e=$(date +%s%N)
      [ -n "$sendfile$bg" ] || echo $(( (e - s) / 1000000 )) >> "$work/ttfb.$(basename "$bundle")"
      srv=127.0.0.1:$port; return 0
    fi
    stop "$srv_pid"; srv_pid=""
  done
  echo "ferry registry did not start:" >&2; cat "$work/ferry-registry.log" >&2; return 1
}
pull_skopeo() { # label host server-pid: times skopeo copies of all N images from host, appends secs to $work/t.<label>
  local label=$1 host=$2 pid=$3 i s e s0 s1 c0 c1
  rm -rf "$work/pull"; mkdir -p "$work/pull"; sync; prewarm $((layer_bytes + (64 << 20)))
  s0=$(cpu_of "$pid"); client_cpu; c0=$cc
  s=$(date +%s%N)
  for i in $(seq 1 "$n"); do
    skopeo copy -q --src-tls-verify=false "docker://$host/bench/img$i:1" "dir:$work/pull/img$i"
  done
  e=$(date +%s%N)
  s1=$(cpu_of "$pid"); client_cpu; c1=$cc
  record_cpu "$label" "$s0" "$s1" "$c0" "$c1"
  got=$(find "$work/pull" -type f -name '[0-9a-f]*' ! -name version -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
  [ "$got" -ge "$layer_bytes" ] || { echo "$label: pulled $got bytes, expected >= $layer_bytes" >&2; exit 1; }
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f\n", (e - s) / 1e9 }' >> "$work/t.$label"
  rm -rf "$work/pull"
}
# start_containerd: a private containerd, empty, with its root, state and socket under
# $work/ctd (sets ctd_pid, ctd_sock).
start_containerd() {
  local dir=$work/ctd
  rm -rf "$dir"; mkdir -p "$dir/root" "$dir/state"
  ctd_sock=$dir/state/containerd.sock
  printf '%s\n' 'version = 2' "root = \"$dir/root\"" "state = \"$dir/state\"" \
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]' '[grpc]' "  address = \"$ctd_sock\"" > "$dir/config.toml"
  containerd --config "$dir/config.toml" > "$work/containerd.log" 2>&1 &
  ctd_pid=$!
  for _ in $(seq 1 100); do
    ctr --address "$ctd_sock" version > /dev/null 2>&1 && return 0
    kill -0 "$ctd_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "containerd did not start:" >&2; cat "$work/containerd.log" >&2; exit 1
}
stop_containerd() { stop "$ctd_pid"; ctd_pid=""; rm -rf "$work/ctd"; }
# hosts_dir <host>: prints a containerd hosts dir that mirrors docker.io to http://<host>,
# as ferry writes it on an installed node (installer/src/install/runtime.rs, hosts_toml),
# except that the fallback `server` is the mirror too: a failing mirror must fail the
# pull, not fetch from the internet.
hosts_dir() {
  local d=$work/hosts/$1
  mkdir -p "$d/docker.io"
  printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$1" "$1" > "$d/docker.io/hosts.toml"
  echo "$d"
}
pull_containerd() { # label host server-pid: times ctr content fetch of all N images through the mirror, appends secs
  local label=$1 host=$2 pid=$3 hosts i s e s0 s1 c0 c1
  hosts=$(hosts_dir "$host")
  start_containerd; sync; prewarm $((layer_bytes + (64 << 20)))
  s0=$(cpu_of "$pid"); client_cpu "$ctd_pid"; c0=$cc
  s=$(date +%s%N)
  for i in $(seq 1 "$n"); do
    ctr --address "$ctd_sock" content fetch --hosts-dir "$hosts" "docker.io/bench/img$i:1" > /dev/null
  done
  e=$(date +%s%N)
  s1=$(cpu_of "$pid"); client_cpu "$ctd_pid"; c1=$cc
  record_cpu "$label" "$s0" "$s1" "$c0" "$c1"
  got=$(find "$work/ctd/root/io.containerd.content.v1.content/blobs" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
  [ "$got" -ge "$layer_bytes" ] || { echo "$label: pulled $got bytes, expected >= $layer_bytes" >&2; exit 1; }
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f\n", (e - s) / 1e9 }' >> "$work/t.$label"
  stop_containerd
}
pull_all() { # client label host server-pid
  case $1 in
    skopeo) pull_skopeo "$2" "$3" "$4" ;;
    containerd) pull_containerd "$2" "$3" "$4" ;;
  esac
}
get_all() { # label host: times plain GETs of every image's big layer to /dev/null (curl), appends secs
  local label=$1 host=$2 i=0 d code s e
  s=$(date +%s%N)
  while read -r d; do
    i=$((i + 1))
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://$host/v2/bench/img$i/blobs/$d")
    [ "$code" = 200 ] || { echo "$label: GET layer of img$i: HTTP $code" >&2; exit 1; }
  done < "$work/layers"
  e=$(date +%s%N)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f\n", (e - s) / 1e9 }' >> "$work/t.$label"
}
# cpu_of <pid>: user + system CPU seconds the process has used so far (clock ticks)
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$1/stat"; }
# client_cpu [pid]: sets cc to the user + system CPU seconds of this shell's waited-for
# children so far (`times` runs in this shell: a subshell would count its own children),
# plus those of process pid if given
client_cpu() {
  times > "$work/times"
  cc=$(tail -1 "$work/times" | awk -v p="${1:+$(cpu_of "$1")}" \
    '{ for (i = 1; i <= 2; i++) { split($i, q, /[ms]/); t += q[1] * 60 + q[2] } } END { printf "%.2f\n", t + p }')
}
# record_cpu <label> <server before> <server after> <client before> <client after>
record_cpu() {
  awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2f\n", b - a }' >> "$work/cpu-server.$1"
  awk -v a="$4" -v b="$5" 'BEGIN { printf "%.2f\n", b - a }' >> "$work/cpu-client.$1"
}

echo "== setup: $n images x $mib MiB in $work"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load before: $load_before"
bash scripts/bench-layout.sh "$work/layout" "$n" "$mib"
{ echo "FROM scratch"; for i in $(seq 1 "$n"); do echo "IMAGE oci:layout:img$i"; done; } > "$work/Kubefile"
"$ferry" build -q --no-payload --installer "$installer" -f "$work/Kubefile" -o "$work/big.run"
bash scripts/bench-layout.sh "$work/tiny-layout" 1 1
printf 'FROM scratch\nIMAGE oci:tiny-layout:img1\n' > "$work/Kubefile.tiny"
"$ferry" build -q --no-payload --installer "$installer" -f "$work/Kubefile.tiny" -o "$work/tiny.run"
big=$(stat -c %s "$work/big.run"); tiny=$(stat -c %s "$work/tiny.run")
layer_bytes=$(( n * mib * 1024 * 1024 ))
echo "bundles: big.run $big bytes, tiny.run $tiny bytes"
start_distribution "$work/registry/storage"
for i in $(seq 1 "$n"); do
  skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$work/layout:img$i" "docker://$reg/bench/img$i:1"
done
for i in $(seq 1 "$n"); do   # each image's own (last) layer, for the raw blob GETs
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$reg/v2/bench/img$i/manifests/1" |
    grep -o '"digest":"sha256:[0-9a-f]*"' | tail -1 | cut -d'"' -f4
done > "$work/layers"
[ "$(grep -c . "$work/layers")" = "$n" ] || { echo "could not list the layers" >&2; exit 1; }
rm -rf "$work/layout" "$work/tiny-layout"
# Resolution of the time-to-first-200 numbers: one curl GET /v2/ against a server already up.
s=$(date +%s%N)
for _ in $(seq 1 20); do curl -s -o /dev/null "http://$reg/v2/"; done
e=$(date +%s%N); curl_ms=$(( (e - s) / 20000000 ))
cat "$work/big.run" > /dev/null   # page cache warm for both servers (Distribution's blobs were just written)

run_ferry() {
  local c
  start_ferry "$work/tiny.run"; stop "$srv_pid"; srv_pid=""
  for c in $clients; do
    start_ferry "$work/big.run"
    pull_all "$c" "$c.ferry-first" "$srv" "$srv_pid"
    pull_all "$c" "$c.ferry-again" "$srv" "$srv_pid"
    stop "$srv_pid"; srv_pid=""
    start_ferry "$work/big.run" "" 0
    pull_all "$c" "$c.ferry-stream" "$srv" "$srv_pid"
    stop "$srv_pid"; srv_pid=""
  done
  start_ferry "$work/big.run" "" 0
  get_all get-ferry-first "$srv"
  get_all get-ferry-again "$srv"
  stop "$srv_pid"; srv_pid=""
}
run_distribution() {
  local c
  for c in $clients; do pull_all "$c" "$c.distribution" "$reg" "$reg_pid"; done
  get_all get-distribution "$reg"
}
run_sendfile() { # 0|1: verified blobs sent without (0) or with (1) sendfile
  local c
  for c in $clients; do
    start_ferry "$work/big.run" "$1"
    get_all verify-pass "$srv"   # not reported: verifies every blob first
    pull_all "$c" "$c.sendfile$1" "$srv" "$srv_pid"
    stop "$srv_pid"; srv_pid=""
  done
  start_ferry "$work/big.run" "$1"
  get_all verify-pass "$srv"
  get_all "get-sendfile$1" "$srv"
  stop "$srv_pid"; srv_pid=""
}
# Alternate which server goes first: page-cache write speed on VMs drifts between runs.
for r in $(seq 1 "$runs"); do
  if [ $((r % 2)) = 1 ]; then echo "-- run $r/$runs (ferry first)"; run_ferry; run_distribution
  else echo "-- run $r/$runs (Distribution first)"; run_distribution; run_ferry; fi
  if [ "${BENCH_SENDFILE:-1}" = 1 ]; then
    if [ $((r % 2)) = 1 ]; then run_sendfile 1; run_sendfile 0; else run_sendfile 0; run_sendfile 1; fi
  fi
done

echo
echo "== results: $n images x $mib MiB, sequential pulls; $runs run(s): median (min)"
echo "load before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)"
row() { printf '%-50s %6s s (%s)  runs: %s\n' "$1" "$(median "$work/t.$2")" "$(minimum "$work/t.$2")" "$(all "$work/t.$2")"; }
ratio() { # text label-a label-b: a / b, of the medians and of the minima
  awk -v t="$1" -v a="$(median "$work/t.$2")" -v b="$(median "$work/t.$3")" -v am="$(minimum "$work/t.$2")" -v bm="$(minimum "$work/t.$3")" \
    'BEGIN { printf "%-50s %6.2f   (of the minima: %.2f)\n", t, a / b, am / bm }'
}
for c in $clients; do
  case $c in
    skopeo) echo "-- skopeo copy docker://… dir:…" ;;
    containerd) echo "-- containerd: ctr content fetch through a hosts.toml mirror (?ns=docker.io)" ;;
  esac
  row "ferry registry, first pull after start" "$c.ferry-first"
  row "ferry registry, second pull (blobs verified)" "$c.ferry-again"
  row "ferry, first pull, no background verification" "$c.ferry-stream"
  row "Distribution (docker-registry)" "$c.distribution"
  ratio "RATIO ferry/Distribution, first pull ($c)" "$c.ferry-first" "$c.distribution"
  ratio "ratio ferry/Distribution, second pull ($c)" "$c.ferry-again" "$c.distribution"
  ratio "ratio ferry/Distribution, first, no background ($c)" "$c.ferry-stream" "$c.distribution"
  for l in ferry-first ferry-again ferry-stream distribution; do
    awk -v t="CPU s: server / client, $l" -v s="$(median "$work/cpu-server.$c.$l")" -v k="$(median "$work/cpu-client.$c.$l")" -v w="$(median "$work/t.$c.$l")" \
      'BEGIN { printf "%-50s %5.2f / %5.2f  (server %.0f %% of the CPU; client busy %.2f cores)\n", t, s, k, 100 * s / (s + k), k / w }'
  done
  awk -v b="$layer_bytes" -v f="$(median "$work/t.$c.ferry-first")" -v g="$(median "$work/t.$c.ferry-again")" -v d="$(median "$work/t.$c.distribution")" \
    'BEGIN { printf "%-50s %.0f / %.0f / %.0f MB/s\n", "throughput ferry first / second / Distribution", b / f / 1e6, b / g / 1e6, b / d / 1e6 }'
done
echo "-- raw blob GETs (curl -> /dev/null, the $n big layers, one after another)"
row "ferry, first GET after start (verified as sent)" get-ferry-first
row "ferry, second GET" get-ferry-again
row "Distribution" get-distribution
ratio "ratio ferry/Distribution, first GET" get-ferry-first get-distribution
if [ "${BENCH_SENDFILE:-1}" = 1 ]; then
  echo "-- verified blobs over plain HTTP: sendfile vs copy loop (ratio < 1: sendfile faster)"
  for c in $clients; do
    row "ferry, $c pull, sendfile" "$c.sendfile1"
    row "ferry, $c pull, copy loop" "$c.sendfile0"
    ratio "ratio sendfile/copy loop ($c)" "$c.sendfile1" "$c.sendfile0"
  done
  row "ferry, raw GETs, sendfile" get-sendfile1
  row "ferry, raw GETs, copy loop" get-sendfile0
  ratio "ratio sendfile/copy loop (raw GETs)" get-sendfile1 get-sendfile0
fi
printf '%-46s %6s ms (%s)  runs: %s; goal < 1000 ms\n' "ferry: start to first 200 on /v2/, $big B" "$(median "$work/ttfb.big.run" 1 %.0f)" "$(minimum "$work/ttfb.big.run")" "$(all "$work/ttfb.big.run")"
printf '%-46s %6s ms (%s)  runs: %s\n' "ferry: start to first 200 on /v2/, $tiny B" "$(median "$work/ttfb.tiny.run" 1 %.0f)" "$(minimum "$work/ttfb.tiny.run")" "$(all "$work/ttfb.tiny.run")"
printf '%-46s %6s ms   (resolution of the two lines above)\n' "one curl GET /v2/ to a server already up" "$curl_ms"
