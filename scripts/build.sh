#!/usr/bin/env bash
# Builds both halves in release mode: ferry (host) and ferry-installer (static musl,
# stripped). Leaves them at target/dist/ferry and target/dist/ferry-installer; other
# scripts and the end-to-end tests rely on exactly those paths.
set -euo pipefail
cd "$(dirname "$0")/.."
MUSL=x86_64-unknown-linux-musl
MAX_STUB=$((6 * 1024 * 1024))

cargo build --release -p ferry-builder --bin ferry
cargo build --release -p ferry-installer --bin ferry-installer --target "$MUSL"

mkdir -p target/dist
cp target/release/ferry target/dist/ferry
cp "target/$MUSL/release/ferry-installer" target/dist/ferry-installer
strip target/dist/ferry-installer

# The stub must be static (it runs on bare hosts) and small (it is carried to every node).
if ! file target/dist/ferry-installer | grep -q 'static'; then
  echo "ferry-installer is not statically linked" >&2; exit 1
fi
size=$(stat -c %s target/dist/ferry-installer)
if [ "$size" -gt "$MAX_STUB" ]; then
  echo "ferry-installer is $size bytes, over the $MAX_STUB byte budget" >&2; exit 1
fi
echo "target/dist/ferry-installer: $size bytes (static, stripped)"
