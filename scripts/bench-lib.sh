# Shared by the bench-*.sh scripts (sourced, never run): free ports and a local
# Distribution registry. Expects $work to be the script's scratch directory.

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
