#!/usr/bin/env bash
# The main job, end to end on one machine: make two real images on the spot, build a
# delivery.run from a Kubefile, verify it and show what it carries. Output in demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
out=demo-out
rm -rf "$out"; mkdir -p "$out"
bash scripts/demo-images.sh "$out"
printf '#!/bin/sh\necho "hello from a file carried by ferry"\n' > "$out/hello.sh"
chmod +x "$out/hello.sh"
cat > "$out/Kubefile" <<'KUBEFILE'
# A small runtime-only bundle: two images sharing a 4 MiB layer, one from a docker save
# tarball, and a script for the host.
FROM scratch
LABEL name=demo
LABEL version=0.1.0
IMAGE oci:layout:a AS docker.io/library/demo-a:1
IMAGE oci:layout:b AS quay.io/demo/demo-b:1
IMAGE docker-archive:b.tar
COPY hello.sh /opt/demo/hello.sh
KUBEFILE
target/dist/ferry build -f "$out/Kubefile" -o "$out/delivery.run"
echo "== ./delivery.run --check"
"$out/delivery.run" --check
echo "== ./delivery.run --info"
"$out/delivery.run" --info
