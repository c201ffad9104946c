#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into <corpus>/<target>/seed-*.

Usage: seeds.py <corpus-dir> [bundle.run ...]

Text formats get hand-written seeds below (requests, tokens, manifests, Kubefiles...).
Bundle formats get seeds cut from real bundles made by `ferry build` (scripts/fuzz.sh
builds them): the whole file, its payload tar, its footer, its bundle.json, its
manifests, so that mutations start from what the builder really writes and get past the
checksums (the `bundle` target re-seals them). Each harness's input layout is described
in its own file under fuzz_targets/.
"""
import hashlib
import json
import os
import struct
import sys
import tarfile

corpus = sys.argv[1]
bundles = sys.argv[2:]


def put(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def u64(n):
    return struct.pack("<Q", n)


HEX = "0123456789abcdef"
TOKEN = "K10" + (HEX * 4) + "::" + ("ab" * 32)
put("join_token", "token", TOKEN)
put("join_token", "token-nl", TOKEN + "\n")

put("join_response", "ok", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
put("join_response", "401", 'HTTP/1.1 401 Unauthorized\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{"error":"join token secret required"}\n')
put("join_response", "noclen", "HTTP/1.0 200 OK\r\nServer: x\r\n\r\n-----BEGIN CERTIFICATE-----\n")

join_info = {
    "bundle_name": "rt",
    "bundle_sha256": "sha256:" + "ab" * 32,
    "platform": "linux/amd64",
    "cluster": None,
    "upstream_hosts": ["docker.io", "quay.io", "localhost:5000"],
    "registry": "https://10.0.0.1:5443",
    "files": [
        {"role": r, "entry": "files/payloads/containerd/" + r, "compression": c, "size": 10, "sha256": "cd" * 32}
        for r, c in [("bin/containerd", None), ("bin/ctr", "zstd"), ("bin/runc", None),
                     ("bin/containerd-shim-runc-v2", None), ("cni/bridge", None)]
    ],
}
put("join_info", "runtime", b"\0" + json.dumps(join_info).encode())
k3s = dict(join_info, cluster={"distribution": "k3s", "version": "v1.31.4+k3s1"},
           files=[{"role": "bin/k3s", "entry": "files/payloads/k3s/bin/k3s", "compression": "zstd", "size": 10, "sha256": "cd" * 32}])
put("join_info", "k3s-agent", b"\0" + json.dumps(k3s).encode())
put("join_info", "k3s-server", b"\1" + json.dumps(k3s).encode())

D = "sha256:" + "ab" * 32
put("registry_request", "pull",
    "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"
    "HEAD /v2/library/app/manifests/1?ns=docker.io HTTP/1.1\r\nAccept: */*\r\n\r\n"
    "GET /v2/org/app/manifests/1?ns=quay.io HTTP/1.1\r\n\r\n"
    "GET /v2/docker.io/library/app/tags/list?n=2&last=1 HTTP/1.1\r\n\r\n"
    f"GET /v2/library/app/blobs/{D} HTTP/1.1\r\nRange: bytes=1-20\r\n\r\n"
    f"GET /v2/library/app/referrers/{D}?artifactType=a%2Bb HTTP/1.1\r\n\r\n"
    "GET /v2/_catalog?n=1 HTTP/1.1\r\nConnection: close\r\n\r\n")
put("registry_request", "bad", "PUT /v2/x/blobs/uploads/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
put("registry_request", "http10", "GET /v2/library/multi/manifests/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /v2/ HTTP/1.0\r\n\r\n")

for i, s in enumerate(["bytes=0-10", "bytes=-5", "bytes=5-", "/v2/a/b/manifests/1?ns=docker.io&n=2&last=1",
                       "/v2/a%2Fb/tags/list?last=a%2Bb", "quay.io:443", "[::1]:5000", "a%41%c3%a9"]):
    put("registry_parts", str(i), u64(1000) + s.encode())

put("registry_auth", "bearer", 'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"')
put("registry_auth", "basic", 'Basic realm="x", Bearer realm="https://a/t?x=1",scope="repository:a:pull repository:b:pull"')
put("registry_auth", "reply", '{"token":"abc","access_token":"def","expires_in":300}')

put("docker_archive", "legacy", '[{"Config":"config.json","RepoTags":["docker.io/library/a:1","quay.io/x/a:2"],"Layers":["layer.tar"]}]')
put("docker_archive", "untagged", '[{"Config":"./config.json","RepoTags":null,"Layers":["./layer.tar"]},{"Config":"config.json","Layers":[]}]')

KUBEFILE = """FROM scratch
CLUSTER k3s v1.31.4+k3s1
LABEL name=shop version=1.2
IMAGE nginx:1.27 quay.io/x/y@sha256:""" + "ab" * 32 + """
IMAGE oci:./layout:app AS docker.io/library/app:1
IMAGE docker-archive:./app.tar
IMAGES images.txt
APP shop ./charts/shop
VALUES shop site-values.yaml
SET shop replicas=3 image.tag="a b"
COPY ./hello.sh /opt/demo/hello.sh
ENV SITE=plant-7 \\
    ZONE=b
# a comment
RUN kubectl get pods -A
"""
put("kubefile", "full", KUBEFILE)
put("kubefile", "runtime", "from scratch\nimage docker.io/library/app:1\ncopy a /b\n")

config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
layer = b"layer bytes " * 100


def desc(mt, data, **kw):
    return dict({"mediaType": mt, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}, **kw)


manifest = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": desc("application/vnd.oci.image.config.v1+json", config),
    "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
}).encode()
index = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [desc("application/vnd.oci.image.manifest.v1+json", manifest,
                       platform={"architecture": "amd64", "os": "linux"})],
}).encode()
docker = manifest.replace(b"application/vnd.oci.image.manifest.v1+json",
                          b"application/vnd.docker.distribution.manifest.v2+json")
put("oci_manifest", "manifest", b"\0" + manifest)
put("oci_manifest", "index", b"\1" + index)
put("oci_manifest", "docker", b"\2" + docker)
put("oci_manifest", "subject", b"\0" + json.dumps(dict(json.loads(manifest), subject=desc(
    "application/vnd.oci.image.manifest.v1+json", manifest), artifactType="application/spdx+json")).encode())

for n, path in enumerate(bundles):
    with open(path, "rb") as f:
        data = f.read()
    footer = data[-192:]
    po, pl = struct.unpack_from("<QQ", footer, 16)
    mo, ml = struct.unpack_from("<QQ", footer, 64)
    payload = data[po:po + pl]
    bundle_json = payload[mo:mo + ml]
    put("bundle", f"b{n}", data)
    put("tarscan", f"b{n}", payload)
    put("footer", f"b{n}", u64(len(data)) + b"\0" + footer)
    put("bundle_json", f"b{n}", u64(mo) + u64(pl) + bundle_json)
    m = json.loads(bundle_json)
    for e in m.get("entries", []):
        blob = payload[e["offset"]:e["offset"] + e["size"]]
        if e["path"].startswith("oci/blobs/") and blob[:1] == b"{" and b"mediaType" in blob:
            put("oci_manifest", f"b{n}-{e['path'][-12:]}", b"\0" + blob)
print(f"seeds written to {corpus} ({len(bundles)} bundle(s))")
