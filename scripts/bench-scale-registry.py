#!/usr/bin/env python3
"""Writes a Distribution (docker-registry 2.x) filesystem storage tree holding N images,
for scripts/bench-scale.sh. Faster than pushing N images with skopeo, and the result is
served by a real Distribution registry (`docker-registry serve` with this rootdirectory).

Usage: bench-scale-registry.py <storage-root> <N> <total-bytes> [hosts]

Image i (1..N) is `<host>/bench/app-<i>:1`, host taken round-robin from `hosts`
(comma-separated, default docker.io,quay.io,ghcr.io), stored in the registry under the
repository `<host>/bench/app-<i>` (a mirror prefix per upstream host). Each image has
three layers: one of 2 shared "os" layers, one of 4 shared "runtime" layers, and its own
"app" layer. The shared layers together take ~10 % of the total, the app layers the rest
(sizes spread 0.5x-1.5x around their mean). Every layer is a real tar (one file of random
bytes) inside a gzip stream made of stored deflate blocks: containerd can unpack it, and
its diff_id in the image config is right, but nothing can compress it. The random bytes
come from AES-CTR (python `cryptography`) when available, else os.urandom.

Prints one line of JSON: {"images": N, "bytes": <sum of all blob sizes>, "layers": L}.
Also writes <storage-root>/../images.txt (one name per line).
"""
import hashlib
import json
import os
import struct
import sys
import tarfile
import zlib
from multiprocessing import Pool

CHUNK = 65535 * 16  # tar bytes per step: 16 full stored deflate blocks

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    ZERO = bytes(CHUNK)

    def random_stream(seed):
        key = hashlib.sha256(seed.encode()).digest()[:16]
        enc = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
        return lambda n: enc.update(ZERO[:n])

except ImportError:  # slower, still fine for small sizes

    def random_stream(seed):
        return os.urandom


def blob_path(root, hexd):
    return os.path.join(root, "docker/registry/v2/blobs/sha256", hexd[:2], hexd, "data")


def put_blob(root, data):
    """Stores a small blob (config, manifest); returns its hex digest."""
    hexd = hashlib.sha256(data).hexdigest()
    p = blob_path(root, hexd)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    return hexd


def make_layer(args):
    """Writes one layer blob of about `size` bytes; returns (hex digest, size, diff_id hex)."""
    root, name, size = args
    rnd = random_stream(name)
    # tar: header + data (padded to 512) + two zero blocks; gzip adds ~5 bytes per 64 KiB.
    fsize = max(0, size - size // 13000 - 512 - 1024 - 512 - 32)
    ti = tarfile.TarInfo(f"opt/{name}.bin")
    ti.size, ti.mode, ti.mtime, ti.uname, ti.gname = fsize, 0o644, 0, "root", "root"
    header = ti.tobuf(format=tarfile.GNU_FORMAT)  # GNU: files over 8 GiB too
    tmp = os.path.join(root, f"tmp-{name}")
    tar_sha, gz_sha = hashlib.sha256(), hashlib.sha256()
    crc, isize, out = 0, 0, 0
    with open(tmp, "wb", buffering=0) as f:

        def emit(parts):
            nonlocal out
            for p in parts:
                gz_sha.update(p)
                out += len(p)
            f.write(b"".join(parts))

        emit([b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"])
        buf = bytearray()

        def feed(data, final=False):
            nonlocal crc, isize, buf
            tar_sha.update(data)
            crc = zlib.crc32(data, crc)
            isize += len(data)
            buf += data
            parts, mv, i = [], memoryview(buf), 0
            while len(buf) - i >= 65535 or (final and i < len(buf)):
                n = min(65535, len(buf) - i)
                parts.append(struct.pack("<BHH", 0, n, n ^ 0xFFFF))
                parts.append(bytes(mv[i : i + n]))
                i += n
            mv.release()
            del buf[:i]
            if parts:
                emit(parts)

        feed(header)
        left = fsize
        while left:
            n = min(CHUNK, left)
            feed(rnd(n))
            left -= n
        feed(bytes((-fsize) % 512) + bytes(1024), final=True)
        emit([b"\x01\x00\x00\xff\xff", struct.pack("<II", crc, isize & 0xFFFFFFFF)])
    hexd = gz_sha.hexdigest()
    p = blob_path(root, hexd)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    os.rename(tmp, p)
    return hexd, out, tar_sha.hexdigest()


def link(root, repo, kind, hexd):
    d = os.path.join(root, "docker/registry/v2/repositories", repo, kind, "sha256", hexd)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "link"), "w") as f:
        f.write(f"sha256:{hexd}")


def main():
    root, n, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    hosts = (sys.argv[4] if len(sys.argv) > 4 else "docker.io,quay.io,ghcr.io").split(",")
    os.makedirs(root, exist_ok=True)
    shared = total // 10
    tasks = [(root, f"base-os-{k}", max(4096, shared // 4)) for k in range(2)]
    tasks += [(root, f"base-runtime-{k}", max(4096, shared // 8)) for k in range(4)]
    mean = (total - shared) // n
    # spread 0.5x..1.5x in a fixed pattern whose sum stays n * mean
    factors = [0.5 + (i * 37 % n) / max(1, n - 1) for i in range(n)] if n > 1 else [1.0]
    scale = n / sum(factors)
    tasks += [(root, f"app-{i + 1:04d}", max(4096, int(mean * f * scale))) for i, f in enumerate(factors)]
    # biggest first, so the pool's two workers finish together
    order = sorted(range(len(tasks)), key=lambda k: -tasks[k][2])
    with Pool(min(2, os.cpu_count() or 1)) as pool:
        done = dict(zip(order, pool.map(make_layer, [tasks[k] for k in order], chunksize=1)))
    layers = [done[k] for k in range(len(tasks))]
    os_layers, rt_layers, app_layers = layers[:2], layers[2:6], layers[6:]
    total_bytes = sum(l[1] for l in layers)
    names = []
    for i in range(n):
        host = hosts[i % len(hosts)]
        repo = f"{host}/bench/app-{i + 1:04d}"
        mine = [os_layers[i % 2], rt_layers[i % 4], app_layers[i]]
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/bin/true"], "Labels": {"bench": repo}},
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{l[2]}" for l in mine]},
            },
            separators=(",", ":"),
        ).encode()
        cd = put_blob(root, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": f"sha256:{cd}",
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": f"sha256:{l[0]}",
                        "size": l[1],
                    }
                    for l in mine
                ],
            },
            separators=(",", ":"),
        ).encode()
        md = put_blob(root, manifest)
        total_bytes += len(config) + len(manifest)
        for l in mine:
            link(root, repo, "_layers", l[0])
        link(root, repo, "_layers", cd)
        link(root, repo, "_manifests/revisions", md)
        link(root, repo, "_manifests/tags/1/index", md)
        cur = os.path.join(root, "docker/registry/v2/repositories", repo, "_manifests/tags/1/current")
        os.makedirs(cur, exist_ok=True)
        with open(os.path.join(cur, "link"), "w") as f:
            f.write(f"sha256:{md}")
        names.append(f"{host}/bench/app-{i + 1:04d}:1")
    with open(os.path.join(os.path.dirname(os.path.abspath(root)), "images.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    print(json.dumps({"images": n, "bytes": total_bytes, "layers": len(layers)}))


if __name__ == "__main__":
    main()
