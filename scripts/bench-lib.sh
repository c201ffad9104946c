# Shared by the bench-*.sh scripts (sourced, never run): free ports, a local Distribution
# registry, page-cache pre-warming and the statistics of repeated runs. Expects $work to be
# the script's scratch directory; a script that prewarms removes $prewarm_file on exit.

# binaries: sets ferry and installer to the absolute paths of FERRY_BIN and
# FERRY_INSTALLER_BIN (default target/dist/…); exits naming one that is missing
binaries() {
  local b
  ferry=${FERRY_BIN:-target/dist/ferry}
  installer=${FERRY_INSTALLER_BIN:-target/dist/ferry-installer}
  for b in "$ferry" "$installer"; do
    [ -x "$b" ] || { echo "missing $b: run scripts/build.sh or set FERRY_BIN/FERRY_INSTALLER_BIN" >&2; exit 1; }
  done
  ferry=$(realpath "$ferry"); installer=$(realpath "$installer")
}

# need <tool>…: exits naming the first tool that is not on PATH
need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "missing $t (scripts/deps.sh installs it)" >&2; exit 1; }
  done
}

# free_port: a TCP port nobody listens on (raced by others only in theory; start retries)
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if [ -z "$(ss -Hltn "sport = :$p")" ]; then echo "$p"; return 0; fi
  done
  echo "no free port found" >&2; return 1
}

# wait_v2 <url> <pid> [pause]: polls GET /v2/ until 200, `pause` seconds apart (default
# 0.01; 0 polls as fast as curl allows); fails if the process died or 15 s pass
wait_v2() {
  local url=$1 pid=$2 pause=${3:-0.01} deadline=$(( $(date +%s) + 15 ))
  while [ "$(date +%s)" -le "$deadline" ]; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/v2/" || true)" = 200 ] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$pause" = 0 ] || sleep "$pause"
  done
  return 1
}

# start_distribution <storage dir>: starts docker-registry on a free loopback port over
# that storage; sets reg_pid and reg (127.0.0.1:port). Config and log in $work/registry.*.
start_distribution() {
  local storage=$1 port cfg=$work/registry.yml
  mkdir -p "$storage"
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    cat > "$cfg" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $storage
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
YML
    docker-registry serve "$cfg" > "$work/registry.log" 2>&1 &
    reg_pid=$!
    if wait_v2 "http://127.0.0.1:$port" "$reg_pid"; then reg=127.0.0.1:$port; return 0; fi
    kill "$reg_pid" 2>/dev/null || true; wait "$reg_pid" 2>/dev/null || true; reg_pid=""
  done
  echo "docker-registry did not start:" >&2; cat "$work/registry.log" >&2; return 1
}

# prewarm <bytes>: writes then deletes that much in /dev/shm right before a timed command
# that writes as much. On VMs that hand freed guest memory back to the host (virtio-balloon
# free page reporting, as on the machines these numbers come from), the first touch of a
# page-cache page costs a host fault and page-cache writes run at 0.4-2.7 GB/s instead of
# ~6 GB/s, depending on how long ago memory was freed: noise that has nothing to do with
# the programs measured. Pages freed just before are reused at full speed, so every
# measured writer gets the same head start. BENCH_PREWARM=0 turns this off.
prewarm_file=""
prewarm() {
  [ "${BENCH_PREWARM:-1}" = 1 ] || return 0
  local dir=/dev/shm
  [ -d "$dir" ] && [ -w "$dir" ] || dir=$work
  prewarm_file=$(mktemp "$dir/ferry-prewarm.XXXXXX")
  head -c "$1" /dev/zero > "$prewarm_file" || true
  rm -f "$prewarm_file"; prewarm_file=""
}

# median <file> [column] [printf format]: the median of a column of numbers (default the
# first): the middle value as written, or the mean of the middle two as %.2f, unless a
# format is given
median() {
  sort -n -k"${2:-1}","${2:-1}" "$1" | awk -v c="${2:-1}" -v f="${3:-}" '{ v[NR] = $c }
    END { if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
          if (f != "") printf f "\n", m; else if (NR % 2) print m; else printf "%.2f\n", m }'
}
# minimum <file> [column]: the smallest number of a column
minimum() { sort -n -k"${2:-1}","${2:-1}" "$1" | head -1 | awk -v c="${2:-1}" '{ print $c }'; }
# all <file> [column]: the column's values on one line, in the order they were recorded
all() { awk -v c="${2:-1}" '{ printf "%s%s", sep, $c; sep = " " } END { print "" }' "$1"; }
