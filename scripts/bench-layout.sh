#!/usr/bin/env bash
# Makes a synthetic OCI image layout for benchmarks: N images, each with one layer of
# M MiB of random bytes (incompressible, like real gzip layers) plus one shared 1 MiB layer.
# Layers are real gzip streams (the random bytes in stored deflate blocks, a few bytes per
# 64 KiB over M MiB): skopeo sniffs layer content, and a "tar+gzip" layer that is not gzip
# is re-compressed (new digest, gzip CPU) on every copy into a registry or an OCI layout,
# which would make skopeo-based baselines measure gzip instead of transfer.
# Usage: bench-layout.sh <dir> <N> <MiB per layer>
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
dir=${1:?dir}; n=${2:?N}; mib=${3:?MiB}
rm -rf "$dir"; mkdir -p "$dir/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' > "$dir/oci-layout"
blob() { # file -> prints "digest size" after moving it into place
  local d s; d=$(sha256sum "$1" | cut -d' ' -f1); s=$(stat -c %s "$1")
  mv "$1" "$dir/blobs/sha256/$d"; echo "$d $s"
}
random_gzip() { # MiB file: MiB of random bytes as a gzip stream
  if command -v python3 >/dev/null; then
    head -c $(($1 * 1024 * 1024)) /dev/urandom | python3 -c '
import sys, zlib
c = zlib.compressobj(0, zlib.DEFLATED, 31)  # level 0 (stored blocks), gzip wrapper
r, w = sys.stdin.buffer, sys.stdout.buffer
while True:
    b = r.read(1 << 20)
    if not b:
        break
    w.write(c.compress(b))
w.write(c.flush())' > "$2"
  else
    head -c $(($1 * 1024 * 1024)) /dev/urandom | gzip -1 > "$2"   # same shape, ~5x slower
  fi
}
random_gzip 1 "$dir/shared"
read -r sd ss < <(blob "$dir/shared")
manifests=""
for i in $(seq 1 "$n"); do
  random_gzip "$mib" "$dir/layer"
  read -r ld ls < <(blob "$dir/layer")
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]},"config":{}}' "$sd" "$ld" > "$dir/config"
  read -r cd cs < <(blob "$dir/config")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' "$cd" "$cs" "$sd" "$ss" "$ld" "$ls" > "$dir/manifest"
  read -r md ms < <(blob "$dir/manifest")
  [ -n "$manifests" ] && manifests="$manifests,"
  manifests="$manifests{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$md\",\"size\":$ms,\"annotations\":{\"org.opencontainers.image.ref.name\":\"img$i\",\"io.containerd.image.name\":\"docker.io/bench/img$i:1\"}}"
done
echo "{\"schemaVersion\":2,\"manifests\":[$manifests]}" > "$dir/index.json"
