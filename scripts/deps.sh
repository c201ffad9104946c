#!/usr/bin/env bash
# Installs everything ferry's build, demo and tests need on a fresh Debian machine: the
# musl targets and tools for the static installers (x86_64 natively; aarch64 cross-compiled
# with cargo-zigbuild + zig, run in the tests under qemu-user), and the real components the
# tests talk to (Distribution registry, containerd, runc, CNI plugins, skopeo, umoci,
# podman, helm), cargo-fuzz, and for the OS-package tests debootstrap (a minbase root as
# the host), gpgv and the Debian archive keyring (the builder checks InRelease with them).
# Idempotent: fast when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pair in musl-gcc:musl-tools skopeo:skopeo containerd:containerd runc:runc \
            docker-registry:docker-registry umoci:umoci busybox:busybox-static \
            podman:podman htpasswd:apache2-utils file:file zstd:zstd ip:iproute2 \
            /usr/lib/cni/bridge:containernetworking-plugins \
            qemu-aarch64-static:qemu-user-static \
            debootstrap:debootstrap gpgv:gpgv curl:curl xz:xz-utils \
            /usr/share/keyrings/debian-archive-keyring.gpg:debian-archive-keyring; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  if [[ $cmd == /* ]]; then [ -e "$cmd" ] || need_apt+=("$pkg"); else command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg"); fi
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "deps: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
installed_targets=$(rustup target list --installed 2>/dev/null || true)
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  grep -qx "$target" <<<"$installed_targets" || rustup target add "$target"
done
# The aarch64 cross toolchain (see scripts/build.sh): cargo-zigbuild and zig as PyPI wheels,
# pinned to the pair tested together (zig's command line changes between releases).
ZIGBUILD=0.24.1 ZIG=0.17.1
if [ "$(cargo-zigbuild --version 2>/dev/null)" != "cargo-zigbuild $ZIGBUILD" ] ||
   [ "$(python3 -m ziglang version 2>/dev/null)" != "$ZIG" ]; then
  echo "deps: installing cargo-zigbuild $ZIGBUILD and ziglang $ZIG (PyPI)"
  python3 -m pip install --quiet "cargo-zigbuild==$ZIGBUILD" "ziglang==$ZIG"
fi
# cargo-fuzz for scripts/fuzz.sh (test.sh runs a short pass): from crates.io, pinned, built
# once (about 1.5 min); it runs on the stable toolchain (see scripts/fuzz.sh).
CARGO_FUZZ=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ" ]; then
  echo "deps: installing cargo-fuzz $CARGO_FUZZ (crates.io)"
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ"
fi
# The SBOM tests validate ferry's SPDX documents with the reference SPDX tools (PyPI).
SPDX_TOOLS=0.8.5
if [ "$(python3 -c 'import importlib.metadata as m; print(m.version("spdx-tools"))' 2>/dev/null)" != "$SPDX_TOOLS" ] ||
   ! command -v pyspdxtools >/dev/null 2>&1; then
  echo "deps: installing spdx-tools $SPDX_TOOLS (PyPI)"
  python3 -m pip install --quiet "spdx-tools==$SPDX_TOOLS"
fi
if [ -x scripts/install-helm.sh ]; then
  bash scripts/install-helm.sh
fi
