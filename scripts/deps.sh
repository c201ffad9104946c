#!/usr/bin/env bash
# Installs everything ferry's build, demo and tests need on a fresh Debian machine:
# the musl target and tools for the static installer, and the real components the tests
# talk to (Distribution registry, containerd, runc, CNI plugins, skopeo, umoci, podman,
# helm). Idempotent: fast when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pair in musl-gcc:musl-tools skopeo:skopeo containerd:containerd runc:runc \
            docker-registry:docker-registry umoci:umoci busybox:busybox-static \
            podman:podman htpasswd:apache2-utils file:file zstd:zstd ip:iproute2 \
            /usr/lib/cni/bridge:containernetworking-plugins; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  if [[ $cmd == /* ]]; then [ -e "$cmd" ] || need_apt+=("$pkg"); else command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg"); fi
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "deps: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl; then
  rustup target add x86_64-unknown-linux-musl
fi
if [ -x scripts/install-helm.sh ]; then
  bash scripts/install-helm.sh
fi
