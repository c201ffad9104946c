#!/usr/bin/env bash
# Assembles a containerd payload directory (bin/ + cni/) from this machine's Debian
# packages, for `ferry build --payload containerd=<dir>` where no download is possible.
set -euo pipefail
out=${1:?usage: containerd-payload.sh <dir>}
mkdir -p "$out/bin" "$out/cni"
for b in containerd containerd-shim-runc-v2 ctr runc; do
  p=$(command -v "$b") || { echo "missing $b: apt-get install containerd runc" >&2; exit 1; }
  cp "$p" "$out/bin/$b"
done
for c in bridge host-local loopback portmap; do
  [ -e "/usr/lib/cni/$c" ] && cp "/usr/lib/cni/$c" "$out/cni/$c"
done
echo "$out"
