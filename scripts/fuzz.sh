#!/usr/bin/env bash
# Runs every fuzz target under fuzz/ (libFuzzer via cargo-fuzz) for <seconds> each, one
# after another, and prints a table: target, executions, corpus size, result.
#
# Inputs start from seeds (fuzz/seeds.py: hand-written requests, tokens, manifests,
# Kubefiles, and cuts of real bundles built here with target/dist/ferry) plus whatever
# corpus earlier runs kept in fuzz/corpus/<target>. A crash stops that target, leaves
# its input in fuzz/artifacts/<target>/ (reproduce: cargo fuzz run <target> <file>) and
# makes this script exit 1 after the others ran.
#
# Why no nightly toolchain: cargo-fuzz's instrumentation (-Cpasses=sancov-module and the
# -Cllvm-args it adds) is made of stable codegen options; only a sanitizer needs -Z
# flags. The targets are built with --sanitizer none (the code under test is safe Rust;
# AddressSanitizer would only watch the few unsafe syscall wrappers and halves the speed)
# and with debug assertions and overflow checks on, so an overflow is a crash.
# FUZZ_SANITIZER=address runs them under ASan instead, on the stable toolchain with
# RUSTC_BOOTSTRAP=1 (its runtime ships with rust-std). See docs/reliability.md.
#
# Usage: scripts/fuzz.sh [seconds-per-target] [target ...]     (default 60, all targets)
# Env:   FUZZ_JOBS=N        run N targets at a time (default 1; the machine has 2 cores)
#        FUZZ_SANITIZER=…   none (default) or address
#        FUZZ_LOG_DIR=dir   keep each target's libFuzzer log there (default: a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
jobs=${FUZZ_JOBS:-1}
sanitizer=${FUZZ_SANITIZER:-none}
command -v cargo-fuzz >/dev/null || bash scripts/deps.sh
env=()
[ "$sanitizer" = none ] || env=(RUSTC_BOOTSTRAP=1)
fuzz() { (cd fuzz && env "${env[@]}" cargo fuzz "$1" --sanitizer "$sanitizer" "${@:2}"); }

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cd fuzz && cargo fuzz list)
logs=${FUZZ_LOG_DIR:-$(mktemp -d)}
mkdir -p "$logs" fuzz/corpus
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT

# Seed bundles from the real builder, with a tiny stub so that the fuzzer's inputs stay
# small: one with a runtime payload, two images under two hosts and a COPY; one without.
bundles=()
if [ -x target/dist/ferry ]; then
  w=$seeds/build
  mkdir -p "$w/payload/bin" "$w/payload/cni"
  # An ELF header for x86-64 (e_machine 0x3e at offset 18), as the builder checks the stub's
  # machine against the platform; the rest is text.
  printf '\177ELF\002\001\001\000\000\000\000\000\000\000\000\000\002\000\076\000 ferry fuzz seed stub\n' > "$w/stub"
  for b in containerd containerd-shim-runc-v2 ctr runc; do printf '#!/bin/sh\necho %s\n' "$b" > "$w/payload/bin/$b"; done
  printf '#!/bin/sh\n' > "$w/payload/cni/bridge"
  printf '#!/bin/sh\necho hi\n' > "$w/hello.sh"
  for i in $(seq 200); do echo "compressible line $i for a zstd entry"; done > "$w/notes.txt"
  python3 - "$w/layout" <<'EOF'
import hashlib, io, json, os, sys, tarfile
d = sys.argv[1]; os.makedirs(d + "/blobs/sha256", exist_ok=True)
def blob(b):
    h = hashlib.sha256(b).hexdigest(); open(f"{d}/blobs/sha256/{h}", "wb").write(b)
    return {"digest": "sha256:" + h, "size": len(b)}
t = io.BytesIO()
with tarfile.open(fileobj=t, mode="w") as tf:
    i = tarfile.TarInfo("hello"); i.size = 3; tf.addfile(i, io.BytesIO(b"hi\n"))
layer = t.getvalue()
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": dict(blob(cfg), mediaType="application/vnd.oci.image.config.v1+json"),
    "layers": [dict(blob(layer), mediaType="application/vnd.oci.image.layer.v1.tar")]}).encode()
md = dict(blob(m), mediaType="application/vnd.oci.image.manifest.v1+json", annotations={"org.opencontainers.image.ref.name": "app"})
open(d + "/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [md]}))
open(d + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
EOF
  printf 'FROM scratch\nLABEL name=seed\nIMAGE oci:layout:app AS docker.io/library/app:1\nIMAGE oci:layout:app AS quay.io/org/app:2\nCOPY hello.sh /opt/demo/hello.sh\nCOPY notes.txt /etc/demo/notes.txt\nENV SITE=seed\nRUN echo done\n' > "$w/Kubefile"
  printf 'FROM scratch\nLABEL name=bare\nIMAGE oci:layout:app AS localhost:5000/app@%s\n' \
    "$(python3 -c "import json;print(json.load(open('$w/layout/index.json'))['manifests'][0]['digest'])")" > "$w/Kubefile.bare"
  target/dist/ferry build -q -f "$w/Kubefile" --installer "$w/stub" --payload "containerd=$w/payload" -o "$w/rt.run" "$w"
  target/dist/ferry build -q -f "$w/Kubefile.bare" --installer "$w/stub" --no-payload -o "$w/bare.run" "$w"
  bundles=("$w/rt.run" "$w/bare.run")
else
  echo "fuzz: target/dist/ferry missing (scripts/build.sh): bundle targets start without real bundles"
fi
python3 fuzz/seeds.py "$seeds/corpus" "${bundles[@]}"

echo "fuzz: building ${#targets[@]} targets (sanitizer: $sanitizer)"
fuzz build >/dev/null 2>"$logs/build.log" || { cat "$logs/build.log"; exit 1; }

run_one() {
  local t=$1
  mkdir -p "fuzz/corpus/$t" "$seeds/corpus/$t"
  # -rss_limit_mb: a harness that grows memory is a finding too; -timeout: so is a hang.
  fuzz run "$t" "$PWD/fuzz/corpus/$t" "$seeds/corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
    >"$logs/$t.log" 2>&1
}
failed=0
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true

printf '%-18s %14s %8s  %s\n' TARGET EXECUTIONS CORPUS RESULT
for t in "${targets[@]}"; do
  log=$logs/$t.log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  if grep -qE '^==[0-9]+== ?ERROR|panicked at|deadly signal|Test unit written' "$log"; then
    result="CRASH: $(sed -n 's/.*Test unit written to //p' "$log" | tail -1)"
    failed=1
  elif [ -z "$execs" ]; then
    result="ERROR: did not run (see $log)"
    failed=1
  else
    result=ok
  fi
  printf '%-18s %14s %8s  %s\n' "$t" "${execs:-?}" "$corpus" "$result"
done
echo "logs: $logs"
exit "$failed"
