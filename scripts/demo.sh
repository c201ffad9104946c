#!/usr/bin/env bash
# The main job, end to end on one machine: make two real images on the spot, build a
# runtime-only delivery.run from a Kubefile (containerd payload from this machine's
# packages), verify it, install it into a sandbox (--root demo-out/root), and pull + run
# an image there by its original name through ferry's registry. Output in demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
out=demo-out
if [ -x "$out/delivery.run" ]; then "$out/delivery.run" reset --root "$PWD/$out/root" --yes -q || true; fi
rm -rf "$out"; mkdir -p "$out"
bash scripts/demo-images.sh "$out"
bash scripts/containerd-payload.sh "$out/containerd-payload" >/dev/null
printf '#!/bin/sh\necho "hello from a file carried by ferry"\n' > "$out/hello.sh"
chmod +x "$out/hello.sh"
cat > "$out/Kubefile" <<'KUBEFILE'
# A small runtime-only bundle: two images sharing a 4 MiB layer (same repository path on
# two registries, different content), one image from a docker save tarball, and a script.
FROM scratch
LABEL name=demo
LABEL version=0.1.0
IMAGE oci:layout:a AS docker.io/library/demo:1
IMAGE oci:layout:b AS quay.io/library/demo:1
IMAGE docker-archive:b.tar
COPY hello.sh /opt/demo/hello.sh
KUBEFILE
target/dist/ferry build -f "$out/Kubefile" -o "$out/delivery.run" --payload "containerd=$out/containerd-payload"
echo "== ./delivery.run --check"
"$out/delivery.run" --check
echo "== ./delivery.run --info"
"$out/delivery.run" --info
root="$PWD/$out/root"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
jport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "== ./delivery.run --root $root (install into a sandbox)"
"$out/delivery.run" --root "$root" --registry-port "$port" --join-port "$jport" --node-ip 127.0.0.1 --yes
echo "== status"
"$out/delivery.run" status --root "$root"
ctr=("$root/opt/ferry/bin/ctr" --address "$root/run/ferry/containerd/containerd.sock")
hosts="$root/etc/ferry/containerd/certs.d"
for name in docker.io/library/demo:1 quay.io/library/demo:1; do
  echo "== ctr pull $name (through ferry's registry, name unchanged) and run"
  "${ctr[@]}" images pull --hosts-dir "$hosts" "$name" >/dev/null
  "${ctr[@]}" run --rm "$name" "demo-$RANDOM"
done
echo
echo "Installed under $root. Remove everything with:"
echo "  $out/delivery.run reset --root $root"
