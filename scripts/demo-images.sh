#!/usr/bin/env bash
# Makes two small real images on the spot, without any registry: `a` and `b` share a
# 4 MiB base layer (so the bundle must store it once), each adds its own file on top.
# Usage: scripts/demo-images.sh <dir>  → <dir>/layout (OCI layout, tags a and b) and
# <dir>/b.tar (a docker-archive of b, as `docker save` would write it).
set -euo pipefail
out=${1:?usage: demo-images.sh <dir>}
rm -rf "$out/layout" "$out/b.tar" "$out/unpack"
mkdir -p "$out"
L="$out/layout"
umoci init --layout "$L"
umoci new --image "$L:base"
umoci unpack --rootless --image "$L:base" "$out/unpack"
mkdir -p "$out/unpack/rootfs/bin" "$out/unpack/rootfs/data"
cp "$(command -v busybox)" "$out/unpack/rootfs/bin/busybox"
for t in sh cat echo ls sleep; do ln -sf busybox "$out/unpack/rootfs/bin/$t"; done
head -c $((4 * 1024 * 1024)) /dev/urandom > "$out/unpack/rootfs/data/shared.bin"
umoci repack --image "$L:base" "$out/unpack"
rm -rf "$out/unpack"
for name in a b; do
  umoci unpack --rootless --image "$L:base" "$out/unpack"
  echo "hello from image $name" > "$out/unpack/rootfs/hello.txt"
  umoci repack --image "$L:$name" "$out/unpack"
  umoci config --image "$L:$name" --config.cmd /bin/cat --config.cmd /hello.txt
  rm -rf "$out/unpack"
done
skopeo copy -q "oci:$L:b" "docker-archive:$out/b.tar:example.org/demo/b:1"
