//! Unit tests of the registry as a whole, without sockets: an in-memory "bundle" file
//! with blobs at byte offsets, synthetic images under two hosts, and requests answered
//! by `routes::handle`. Socket-level behaviour (keep-alive, limits, timeouts) is tested
//! at the end through a real listener.

use super::body::send_checked;
use super::errors::{ErrorCode, RegistryError};
use super::http::{Body, Request, Response};
use super::routes::handle;
use super::store::{BlobLocation, ImageStore, StoredImage};
use super::{RunningServer, ServeOptions};
use ferry_bundle::oci::{OCI_INDEX, OCI_MANIFEST};
use ferry_bundle::reference::Reference;
use ferry_bundle::Sha256Digest;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Blobs appended to one file, as in a bundle.
struct Bundle {
    _dir: tempfile::TempDir,
    path: PathBuf,
    bytes: Vec<u8>,
    blobs: HashMap<Sha256Digest, BlobLocation>,
}

impl Bundle {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("delivery.run");
        Bundle {
            _dir: dir,
            path,
            // Something in front, like the installer stub.
            bytes: b"#!stub#".repeat(100),
            blobs: HashMap::new(),
        }
    }
    fn add(&mut self, data: &[u8]) -> Sha256Digest {
        let d = Sha256Digest::of(data);
        let offset = self.bytes.len() as u64;
        self.bytes.extend_from_slice(data);
        self.bytes.extend_from_slice(b"pad");
        self.blobs.insert(
            d,
            BlobLocation::file(self.path.clone(), offset, data.len() as u64),
        );
        d
    }
    fn descriptor(media_type: &str, data: &[u8]) -> serde_json::Value {
        serde_json::json!({"mediaType": media_type, "digest": Sha256Digest::of(data).to_string(), "size": data.len()})
    }
    /// Adds an image manifest with one config and one layer; returns (manifest, layer).
    fn image(&mut self, content: &str) -> (Sha256Digest, Sha256Digest) {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","content":"{content}"}}"#);
        let layer = content.repeat(500).into_bytes();
        self.add(config.as_bytes());
        let l = self.add(&layer);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": Self::descriptor(CONFIG_TYPE, config.as_bytes()),
            "layers": [Self::descriptor(LAYER_TYPE, &layer)],
        });
        (self.add(manifest.to_string().as_bytes()), l)
    }
    fn write(&self) {
        std::fs::write(&self.path, &self.bytes).unwrap();
    }
}

fn stored(name: &str, digest: Sha256Digest, media_type: &str) -> StoredImage {
    StoredImage {
        reference: Reference::parse(name).unwrap(),
        digest,
        media_type: media_type.to_string(),
    }
}

struct Fixture {
    bundle: Bundle,
    store: ImageStore,
    docker: (Sha256Digest, Sha256Digest),
    quay: (Sha256Digest, Sha256Digest),
    referrer: Sha256Digest,
}

/// docker.io/library/app:1 and quay.io/library/app:1 with different content, an
/// unambiguous docker.io/library/only with several tags, a multi-platform index with one
/// platform missing, and an SBOM referring to the docker.io image.
fn fixture() -> Fixture {
    let mut b = Bundle::new();
    let docker = b.image("docker-content");
    let quay = b.image("quay-content");
    let (only, _) = b.image("only-content");
    let (arm, _) = b.image("arm-content");
    let missing = Sha256Digest::of(b"not bundled");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": arm.to_string(), "size": 1, "platform": {"architecture":"arm64","os":"linux"}},
            {"mediaType": OCI_MANIFEST, "digest": missing.to_string(), "size": 1, "platform": {"architecture":"s390x","os":"linux"}},
        ],
    });
    let index = b.add(index.to_string().as_bytes());
    let sbom_config = b"{}".to_vec();
    b.add(&sbom_config);
    let sbom = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": Bundle::descriptor("application/vnd.oci.empty.v1+json", &sbom_config),
        "layers": [Bundle::descriptor("application/spdx+json", &sbom_config)],
        "subject": {"mediaType": OCI_MANIFEST, "digest": docker.0.to_string(), "size": 1},
        "annotations": {"org.example": "sbom"},
    });
    let referrer = b.add(sbom.to_string().as_bytes());
    b.write();
    let mut images = vec![
        stored("docker.io/library/app:1", docker.0, OCI_MANIFEST),
        stored("quay.io/library/app:1", quay.0, OCI_MANIFEST),
        stored("docker.io/library/multi:1", index, OCI_INDEX),
        stored(
            &format!("docker.io/library/app@{}", referrer),
            referrer,
            OCI_MANIFEST,
        ),
    ];
    for tag in ["v3", "1", "latest", "2", "1.1"] {
        images.push(stored(
            &format!("docker.io/library/only:{tag}"),
            only,
            OCI_MANIFEST,
        ));
    }
    let store = ImageStore::new(images, b.blobs.clone());
    assert!(store.skipped().is_empty(), "{:?}", store.skipped());
    Fixture {
        bundle: b,
        store,
        docker,
        quay,
        referrer,
    }
}

fn req(method: &str, target: &str, range: Option<&str>) -> Request {
    Request {
        method: method.to_string(),
        target: target.to_string(),
        minor_version: 1,
        range: range.map(str::to_string),
        authorization: None,
        keep_alive: true,
        has_body: false,
    }
}

/// Answers a request and returns the response with its body bytes.
fn call(
    store: &ImageStore,
    method: &str,
    target: &str,
    range: Option<&str>,
) -> (Response, Vec<u8>) {
    let resp = handle(store, &req(method, target, range));
    let body = match &resp.body {
        Body::Bytes(b) => b.clone(),
        Body::Shared(b) => b.to_vec(),
        Body::Files {
            ranges,
            check: None,
        } => {
            let mut v = Vec::new();
            for r in ranges {
                let mut b = vec![0; r.len as usize];
                r.file.read_exact_at(&mut b, r.offset).unwrap();
                v.extend(b);
            }
            v
        }
        // Sent as to a client: a corrupt blob's body stops short of its last chunk.
        Body::Files {
            ranges,
            check: Some(check),
        } => {
            let mut v = Vec::new();
            let _ = send_checked(&mut v, ranges, check);
            v
        }
    };
    (resp, body)
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

fn error_code(body: &[u8]) -> String {
    json(body)["errors"][0]["code"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn base_endpoint() {
    let f = fixture();
    let (r, body) = call(&f.store, "GET", "/v2/", None);
    assert_eq!(r.status, 200);
    assert_eq!(body, b"{}");
    assert_eq!(
        r.get_header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
    assert_eq!(r.get_header("Content-Type"), Some("application/json"));
}

#[test]
fn ns_routes_the_same_path_to_different_hosts() {
    let f = fixture();
    for (ns, (manifest, layer)) in [("docker.io", f.docker), ("quay.io", f.quay)] {
        let (r, body) = call(
            &f.store,
            "GET",
            &format!("/v2/library/app/manifests/1?ns={ns}"),
            None,
        );
        assert_eq!(r.status, 200, "{ns}");
        assert_eq!(
            r.get_header("Docker-Content-Digest"),
            Some(manifest.to_string().as_str())
        );
        assert_eq!(r.get_header("Content-Type"), Some(OCI_MANIFEST));
        assert_eq!(Sha256Digest::of(&body), manifest);
        let (r, body) = call(
            &f.store,
            "GET",
            &format!("/v2/library/app/blobs/{}?ns={ns}", layer),
            None,
        );
        assert_eq!(r.status, 200);
        assert_eq!(Sha256Digest::of(&body), layer);
    }
    // Docker Hub aliases and the short form are normalised.
    let (r, _) = call(
        &f.store,
        "GET",
        "/v2/app/manifests/1?ns=registry-1.docker.io",
        None,
    );
    assert_eq!(
        r.get_header("Docker-Content-Digest"),
        Some(f.docker.0.to_string().as_str())
    );
}

#[test]
fn a_repository_only_serves_its_own_blobs() {
    let f = fixture();
    let (r, body) = call(
        &f.store,
        "GET",
        &format!("/v2/library/app/blobs/{}?ns=docker.io", f.quay.1),
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&body), "BLOB_UNKNOWN");
    let (r, body) = call(
        &f.store,
        "GET",
        &format!("/v2/library/app/manifests/{}?ns=docker.io", f.quay.0),
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&body), "MANIFEST_UNKNOWN");
    let (r, body) = call(
        &f.store,
        "GET",
        "/v2/library/app/manifests/1?ns=ghcr.io",
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&body), "NAME_UNKNOWN");
}

#[test]
fn ambiguous_names_are_refused_with_the_candidates() {
    let f = fixture();
    let (r, body) = call(&f.store, "GET", "/v2/library/app/manifests/1", None);
    assert_eq!(r.status, 404);
    let v = json(&body);
    assert_eq!(v["errors"][0]["code"], "NAME_UNKNOWN");
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("docker.io/library/app, quay.io/library/app"),
        "{msg}"
    );
    assert!(msg.contains("?ns="), "{msg}");
}

#[test]
fn full_path_and_unambiguous_names_resolve_without_ns() {
    let f = fixture();
    let (r, _) = call(&f.store, "GET", "/v2/quay.io/library/app/manifests/1", None);
    assert_eq!(
        r.get_header("Docker-Content-Digest"),
        Some(f.quay.0.to_string().as_str())
    );
    let (r, _) = call(
        &f.store,
        "GET",
        "/v2/docker.io/library/app/manifests/1",
        None,
    );
    assert_eq!(
        r.get_header("Docker-Content-Digest"),
        Some(f.docker.0.to_string().as_str())
    );
    let (r, _) = call(&f.store, "GET", "/v2/docker.io/app/manifests/1", None);
    assert_eq!(
        r.get_header("Docker-Content-Digest"),
        Some(f.docker.0.to_string().as_str())
    );
    for name in ["library/only", "only", "docker.io/library/only"] {
        let (r, _) = call(
            &f.store,
            "HEAD",
            &format!("/v2/{name}/manifests/latest"),
            None,
        );
        assert_eq!(r.status, 200, "{name}");
    }
    let (r, body) = call(&f.store, "GET", "/v2/ghcr.io/library/app/manifests/1", None);
    assert_eq!(
        (r.status, error_code(&body).as_str()),
        (404, "NAME_UNKNOWN")
    );
}

#[test]
fn invalid_names_digests_and_tags_are_4xx() {
    let f = fixture();
    let long = format!("/v2/{}/manifests/1", "a".repeat(300));
    for (target, status, code) in [
        ("/v2/Library/App/manifests/1", 400, "NAME_INVALID"),
        ("/v2/library/../app/manifests/1", 400, "NAME_INVALID"),
        (long.as_str(), 400, "NAME_INVALID"),
        (
            "/v2/library/app/manifests/1?ns=bad_host!",
            400,
            "NAME_INVALID",
        ),
        (
            "/v2/library/app/blobs/sha256:1234?ns=docker.io",
            400,
            "DIGEST_INVALID",
        ),
        (
            "/v2/library/app/manifests/sha256:XYZ?ns=docker.io",
            400,
            "DIGEST_INVALID",
        ),
        (
            "/v2/library/app/manifests/nope?ns=docker.io",
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "/v2/library/app/manifests/.bad?ns=docker.io",
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "/v2/library/app/tags/list?ns=docker.io&n=-1",
            400,
            "PAGINATION_NUMBER_INVALID",
        ),
        ("/v2/library/app/blobs/uploads/", 404, "UNSUPPORTED"),
        ("/nope", 404, "UNSUPPORTED"),
    ] {
        let (r, body) = call(&f.store, "GET", target, None);
        assert_eq!(
            (r.status, error_code(&body).as_str()),
            (status, code),
            "{target}"
        );
        assert_eq!(r.get_header("Content-Type"), Some("application/json"));
    }
    let (r, _) = call(
        &f.store,
        "GET",
        &format!("/v2/a/manifests/{}", "x".repeat(5000)),
        None,
    );
    assert_eq!(r.status, 414);
}

#[test]
fn write_methods_get_405_unsupported() {
    let f = fixture();
    for method in ["PUT", "POST", "PATCH", "DELETE", "OPTIONS", "TRACE"] {
        for target in [
            "/v2/library/app/manifests/1",
            "/v2/library/app/blobs/uploads/",
            "/v2/",
        ] {
            let (r, body) = call(&f.store, method, target, None);
            assert_eq!(r.status, 405, "{method} {target}");
            assert_eq!(error_code(&body), "UNSUPPORTED");
            assert_eq!(r.get_header("Allow"), Some("GET, HEAD"));
        }
    }
}

#[test]
fn head_has_the_headers_of_get() {
    let f = fixture();
    let target = format!("/v2/library/app/blobs/{}?ns=quay.io", f.quay.1);
    let (get, body) = call(&f.store, "GET", &target, None);
    let (head, _) = call(&f.store, "HEAD", &target, None);
    assert_eq!(get.headers, head.headers);
    assert_eq!(head.body.len(), body.len() as u64);
    assert_eq!(
        get.get_header("Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(get.get_header("Accept-Ranges"), Some("bytes"));
    assert_eq!(
        get.get_header("ETag"),
        Some(format!("\"{}\"", f.quay.1).as_str())
    );
}

#[test]
fn a_blob_spanning_two_parts_is_served_whole_and_by_ranges() {
    // As a blob of a split bundle: its first half at the end of one file, the rest at the
    // start of the next.
    let f = fixture();
    let target = format!("/v2/quay.io/library/app/blobs/{}", f.quay.1);
    let (_, whole) = call(&f.store, "GET", &target, None);
    let loc = f.bundle.blobs[&f.quay.1].pieces[0].clone();
    let half = loc.len / 2;
    let part2 = f.bundle.path.with_extension("run.002");
    let mut bytes = b"head".to_vec();
    bytes.extend_from_slice(&whole[half as usize..]);
    std::fs::write(&part2, &bytes).unwrap();
    // The original second half is overwritten: only part 2 can serve it now.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&loc.path)
        .unwrap();
    file.write_all_at(&vec![b'#'; (loc.len - half) as usize], loc.offset + half)
        .unwrap();
    let mut blobs = f.bundle.blobs.clone();
    blobs.insert(
        f.quay.1,
        BlobLocation {
            pieces: vec![
                ferry_bundle::parts::FileRange {
                    len: half,
                    ..loc.clone()
                },
                ferry_bundle::parts::FileRange {
                    path: part2,
                    offset: 4,
                    len: loc.len - half,
                },
            ],
            len: loc.len,
        },
    );
    let store = ImageStore::new(
        vec![stored("quay.io/library/app:1", f.quay.0, OCI_MANIFEST)],
        blobs,
    );
    let (r, body) = call(&store, "GET", &target, None);
    assert_eq!((r.status, body.len()), (200, whole.len()));
    assert_eq!(
        body, whole,
        "digest checked and bytes joined across the parts"
    );
    for (a, z) in [
        (0, half - 1),
        (half - 3, half + 2),
        (half, loc.len - 1),
        (half + 1, half + 1),
    ] {
        let (r, body) = call(&store, "GET", &target, Some(&format!("bytes={a}-{z}")));
        assert_eq!(r.status, 206);
        assert_eq!(body, &whole[a as usize..=z as usize], "{a}-{z}");
    }
}

#[test]
fn ranges_give_206_and_416() {
    let f = fixture();
    let target = format!("/v2/quay.io/library/app/blobs/{}", f.quay.1);
    let (_, whole) = call(&f.store, "GET", &target, None);
    let total = whole.len();
    let (r, body) = call(&f.store, "GET", &target, Some("bytes=10-19"));
    assert_eq!(r.status, 206);
    assert_eq!(body, &whole[10..20]);
    assert_eq!(
        r.get_header("Content-Range"),
        Some(format!("bytes 10-19/{total}").as_str())
    );
    let (r, body) = call(&f.store, "GET", &target, Some("bytes=100-"));
    assert_eq!((r.status, body.as_slice()), (206, &whole[100..]));
    let (r, body) = call(&f.store, "GET", &target, Some(&format!("bytes={total}-")));
    assert_eq!(r.status, 416);
    assert_eq!(
        r.get_header("Content-Range"),
        Some(format!("bytes */{total}").as_str())
    );
    assert_eq!(error_code(&body), "RANGE_INVALID");
    // A manifest read through the blobs endpoint honours ranges too.
    let (r, body) = call(
        &f.store,
        "GET",
        &format!("/v2/quay.io/library/app/blobs/{}", f.quay.0),
        Some("bytes=0-0"),
    );
    assert_eq!((r.status, body.as_slice()), (206, &b"{"[..]));
}

#[test]
fn tags_are_sorted_and_paginated_with_link() {
    let f = fixture();
    let (r, body) = call(&f.store, "GET", "/v2/library/only/tags/list", None);
    assert_eq!(r.status, 200);
    assert_eq!(
        json(&body),
        serde_json::json!({"name":"library/only","tags":["1","1.1","2","latest","v3"]})
    );
    assert_eq!(r.get_header("Link"), None);
    let (r, body) = call(
        &f.store,
        "GET",
        "/v2/library/only/tags/list?n=2&ns=docker.io",
        None,
    );
    assert_eq!(json(&body)["tags"], serde_json::json!(["1", "1.1"]));
    assert_eq!(
        r.get_header("Link"),
        Some("</v2/library/only/tags/list?n=2&last=1.1&ns=docker.io>; rel=\"next\"")
    );
    let (r, body) = call(
        &f.store,
        "GET",
        "/v2/library/only/tags/list?n=2&last=latest&ns=docker.io",
        None,
    );
    assert_eq!(json(&body)["tags"], serde_json::json!(["v3"]));
    assert_eq!(r.get_header("Link"), None);
}

#[test]
fn catalog_lists_full_names_or_one_hosts_repositories() {
    let f = fixture();
    let (_, body) = call(&f.store, "GET", "/v2/_catalog", None);
    assert_eq!(
        json(&body)["repositories"],
        serde_json::json!([
            "docker.io/library/app",
            "docker.io/library/multi",
            "docker.io/library/only",
            "quay.io/library/app"
        ])
    );
    let (r, body) = call(
        &f.store,
        "GET",
        "/v2/_catalog?ns=docker.io&n=1&last=library/app",
        None,
    );
    assert_eq!(
        json(&body)["repositories"],
        serde_json::json!(["library/multi"])
    );
    assert_eq!(
        r.get_header("Link"),
        Some("</v2/_catalog?n=1&last=library/multi&ns=docker.io>; rel=\"next\"")
    );
}

#[test]
fn index_children_are_served_and_missing_platforms_skipped() {
    let f = fixture();
    let (r, body) = call(&f.store, "GET", "/v2/library/multi/manifests/1", None);
    assert_eq!(r.get_header("Content-Type"), Some(OCI_INDEX));
    let child = json(&body)["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (r, body) = call(
        &f.store,
        "GET",
        &format!("/v2/library/multi/manifests/{child}"),
        None,
    );
    assert_eq!(r.status, 200);
    let layer = json(&body)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (r, _) = call(
        &f.store,
        "GET",
        &format!("/v2/library/multi/blobs/{layer}"),
        None,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn referrers_list_manifests_with_that_subject() {
    let f = fixture();
    let target = format!("/v2/library/app/referrers/{}?ns=docker.io", f.docker.0);
    let (r, body) = call(&f.store, "GET", &target, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.get_header("Content-Type"), Some(OCI_INDEX));
    assert_eq!(r.get_header("OCI-Filters-Applied"), None);
    let v = json(&body);
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], OCI_INDEX);
    assert_eq!(v["manifests"][0]["digest"], f.referrer.to_string());
    assert_eq!(v["manifests"][0]["artifactType"], "application/spdx+json");
    assert_eq!(v["manifests"][0]["annotations"]["org.example"], "sbom");
    let (r, body) = call(
        &f.store,
        "GET",
        &format!("{target}&artifactType=application/spdx%2Bjson"),
        None,
    );
    assert_eq!(r.get_header("OCI-Filters-Applied"), Some("artifactType"));
    assert_eq!(json(&body)["manifests"].as_array().unwrap().len(), 1);
    let (_, body) = call(
        &f.store,
        "GET",
        &format!("{target}&artifactType=application/other"),
        None,
    );
    assert_eq!(json(&body)["manifests"], serde_json::json!([]));
    // Another repository, or an unknown subject: an empty index, never 404.
    let (r, body) = call(
        &f.store,
        "GET",
        &format!("/v2/quay.io/library/app/referrers/{}", f.docker.0),
        None,
    );
    assert_eq!(
        (r.status, json(&body)["manifests"].clone()),
        (200, serde_json::json!([]))
    );
}

/// Flips one byte in the middle of the blob `digest` inside the bundle file.
fn corrupt(b: &Bundle, digest: &Sha256Digest) {
    let loc = &b.blobs[digest].pieces[0];
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&loc.path)
        .unwrap();
    file.write_all_at(b"X", loc.offset + loc.len / 2).unwrap();
}

fn hashes(store: &ImageStore, digest: &Sha256Digest) -> usize {
    store.blobs[digest]
        .verdict
        .hashes
        .load(std::sync::atomic::Ordering::SeqCst)
}

#[test]
fn corrupt_blob_is_cut_short_then_refused_and_hashed_once() {
    let f = fixture();
    corrupt(&f.bundle, &f.docker.1);
    let target = Arc::new(format!("/v2/library/app/blobs/{}?ns=docker.io", f.docker.1));
    let store = Arc::new(f.store);
    // The first full GET is verified as it is sent: it promised the whole blob, and
    // stops before the last chunk.
    let (r, body) = call(&store, "GET", &target, None);
    let len = f.bundle.blobs[&f.docker.1].len;
    assert_eq!((r.status, r.body.len()), (200, len));
    assert!(
        (body.len() as u64) < len,
        "{} of {len} bytes sent",
        body.len()
    );
    // Every later request knows.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (store, target) = (store.clone(), target.clone());
            std::thread::spawn(move || call(&store, "GET", &target, None))
        })
        .collect();
    for t in threads {
        let (r, body) = t.join().unwrap();
        assert_eq!(r.status, 500);
        let v = json(&body);
        assert_eq!(v["errors"][0]["code"], "BLOB_UNKNOWN");
        let msg = v["errors"][0]["message"].as_str().unwrap();
        assert!(
            msg.contains("corrupt") && msg.contains(&f.docker.1.to_string()),
            "{msg}"
        );
    }
    let (r, _) = call(&store, "HEAD", &target, None);
    assert_eq!(r.status, 500);
    let (r, _) = call(&store, "GET", &target, Some("bytes=0-3"));
    assert_eq!(r.status, 500);
    assert_eq!(
        hashes(&store, &f.docker.1),
        1,
        "the blob must be hashed once, not per request"
    );
    // The good blob of the other host is still served.
    let (r, _) = call(
        &store,
        "GET",
        &format!("/v2/library/app/blobs/{}?ns=quay.io", f.quay.1),
        None,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn a_good_blob_is_hashed_once_across_requests() {
    let f = fixture();
    let target = format!("/v2/quay.io/library/app/blobs/{}", f.quay.1);
    let (r, body) = call(&f.store, "GET", &target, None);
    assert_eq!(r.status, 200);
    assert_eq!(Sha256Digest::of(&body), f.quay.1);
    assert!(
        matches!(r.body, Body::Files { check: Some(_), .. }),
        "the first full GET is verified while it is sent"
    );
    for range in [None, Some("bytes=1-"), None] {
        let (r, body) = call(&f.store, "GET", &target, range);
        assert!(
            matches!(r.body, Body::Files { check: None, .. }),
            "{range:?}"
        );
        assert_eq!(body.len() + usize::from(range.is_some()), 6000, "{range:?}");
    }
    let (r, _) = call(&f.store, "HEAD", &target, None);
    assert_eq!(r.status, 200);
    assert_eq!(hashes(&f.store, &f.quay.1), 1);
}

#[test]
fn range_requests_and_head_on_unverified_blobs_still_verify_first() {
    let f = fixture();
    corrupt(&f.bundle, &f.docker.1);
    let docker = format!("/v2/docker.io/library/app/blobs/{}", f.docker.1);
    let (r, body) = call(&f.store, "GET", &docker, Some("bytes=0-3"));
    assert_eq!(
        (r.status, error_code(&body).as_str()),
        (500, "BLOB_UNKNOWN")
    );
    let (r, _) = call(&f.store, "GET", &docker, None);
    assert_eq!(r.status, 500, "the verdict of the range request stays");
    assert_eq!(hashes(&f.store, &f.docker.1), 1);
    // A good blob: the range request verifies it, and the full GET after it is sent
    // without another hash.
    let quay = format!("/v2/quay.io/library/app/blobs/{}", f.quay.1);
    let (r, body) = call(&f.store, "GET", &quay, Some("bytes=0-3"));
    assert_eq!((r.status, body.as_slice()), (206, &b"quay"[..]));
    let (r, _) = call(&f.store, "GET", &quay, None);
    assert!(matches!(r.body, Body::Files { check: None, .. }));
    assert_eq!(hashes(&f.store, &f.quay.1), 1);
}

#[test]
fn background_verification_records_every_verdict_so_that_requests_hash_nothing() {
    let f = fixture();
    corrupt(&f.bundle, &f.docker.1);
    let store = Arc::new(f.store);
    super::verify_in_background(store.clone())
        .unwrap()
        .join()
        .unwrap();
    for (digest, blob) in &store.blobs {
        assert_eq!(hashes(&store, digest), 1, "{digest}");
        let verdict = blob.verdict.known().expect("every verdict is known");
        assert_eq!(verdict.is_err(), *digest == f.docker.1, "{digest}");
    }
    // The good blob goes out as verified; the corrupt one is refused before any byte.
    let (r, body) = call(
        &store,
        "GET",
        &format!("/v2/quay.io/library/app/blobs/{}", f.quay.1),
        None,
    );
    assert!(matches!(r.body, Body::Files { check: None, .. }));
    assert_eq!(Sha256Digest::of(&body), f.quay.1);
    let (r, _) = call(
        &store,
        "GET",
        &format!("/v2/docker.io/library/app/blobs/{}", f.docker.1),
        None,
    );
    assert_eq!(r.status, 500);
    assert_eq!(hashes(&store, &f.docker.1), 1);
    assert_eq!(hashes(&store, &f.quay.1), 1);
}

#[test]
fn concurrent_first_gets_do_not_wait_for_each_other_and_both_succeed() {
    let mut b = Bundle::new();
    let (manifest, layer) = b.image(&"big".repeat(2000)); // a 3 MB layer: many chunks
    b.write();
    let store = Arc::new(ImageStore::new(
        vec![stored("docker.io/library/big:1", manifest, OCI_MANIFEST)],
        b.blobs.clone(),
    ));
    let target = Arc::new(format!("/v2/library/big/blobs/{layer}"));
    let start = Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (store, target, start) = (store.clone(), target.clone(), start.clone());
            std::thread::spawn(move || {
                let resp = handle(&store, &req("GET", &target, None));
                assert!(matches!(resp.body, Body::Files { check: Some(_), .. }));
                start.wait();
                let mut out = Vec::new();
                super::http::write_response(&mut out, &resp, false, false, true).unwrap();
                (resp.status, out)
            })
        })
        .collect();
    for t in threads {
        let (status, out) = t.join().unwrap();
        assert_eq!(status, 200);
        let body = &out[out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
        assert_eq!(Sha256Digest::of(body), layer);
    }
    // Both were answered before either was sent: each hashed its own stream.
    assert_eq!(hashes(&store, &layer), 2);
    let (r, _) = call(&store, "GET", &target, None);
    assert!(matches!(r.body, Body::Files { check: None, .. }));
}

/// Loads `images` and returns the one skipped image's error; the good image beside it
/// must still be served.
fn skipped_beside_a_good_one(b: &Bundle, good: Sha256Digest, bad: StoredImage) -> RegistryError {
    let store = ImageStore::new(
        vec![stored("docker.io/library/good:1", good, OCI_MANIFEST), bad],
        b.blobs.clone(),
    );
    assert_eq!(store.tagged_images(), ["docker.io/library/good:1"]);
    let (r, _) = call(&store, "GET", "/v2/library/good/manifests/1", None);
    assert_eq!(r.status, 200);
    let mut skipped = store.skipped;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    skipped.remove(0).error
}

#[test]
fn bad_images_are_skipped_and_named_and_the_rest_is_served() {
    let mut b = Bundle::new();
    let (m1, _) = b.image("one");
    let (m2, _) = b.image("two");
    let (good, _) = b.image("good");
    // A blob that is not a manifest at all (a layer, say), named as an image's root.
    let not_json = b.add(b"\x1f\x8b not json");
    // A manifest whose declared media type is neither manifest nor index.
    let unknown = b.add(
        serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.example.thing+json"})
            .to_string()
            .as_bytes(),
    );
    // A media type that would inject a header.
    let crlf = b.add(
        serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json\r\nX-Evil: 1"})
            .to_string()
            .as_bytes(),
    );
    b.write();
    let store = ImageStore::new(
        vec![
            stored("quay.io/a/b:1", m1, OCI_MANIFEST),
            stored("quay.io/a/b:1", m2, OCI_MANIFEST),
        ],
        b.blobs.clone(),
    );
    assert_eq!(store.tagged_images(), ["quay.io/a/b:1"]);
    assert!(
        matches!(store.skipped[0].error, RegistryError::TagConflict { .. }),
        "{:?}",
        store.skipped
    );
    let missing = Sha256Digest::of(b"nothing");
    let err = skipped_beside_a_good_one(&b, good, stored("quay.io/a/b:1", missing, OCI_MANIFEST));
    assert!(err.to_string().contains(&missing.to_string()), "{err}");
    let err = skipped_beside_a_good_one(
        &b,
        good,
        stored(&format!("quay.io/a/b@{m1}"), m2, OCI_MANIFEST),
    );
    assert!(matches!(err, RegistryError::InvalidImage { .. }), "{err}");
    let err = skipped_beside_a_good_one(&b, good, stored("quay.io/a/b:1", not_json, OCI_MANIFEST));
    assert!(matches!(err, RegistryError::Manifest { .. }), "{err}");
    let err = skipped_beside_a_good_one(
        &b,
        good,
        stored(
            "quay.io/a/b:1",
            unknown,
            "application/vnd.example.thing+json",
        ),
    );
    assert!(
        err.to_string()
            .contains("neither an image manifest nor an index"),
        "{err}"
    );
    let err = skipped_beside_a_good_one(&b, good, stored("quay.io/a/b:1", crlf, OCI_MANIFEST));
    assert!(err.to_string().contains("media type"), "{err}");
    // A manifest whose bytes changed is found at load.
    let loc = &b.blobs[&m1].pieces[0];
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&loc.path)
        .unwrap();
    file.write_all_at(b" ", loc.offset + 1).unwrap();
    let err = skipped_beside_a_good_one(&b, good, stored("quay.io/a/b:1", m1, OCI_MANIFEST));
    assert!(
        matches!(err, RegistryError::CorruptManifest { .. }),
        "{err}"
    );
}

// ---- Through a socket ----

fn start(f: Fixture, opts: ServeOptions) -> (RunningServer, Fixture) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let Fixture {
        bundle,
        store,
        docker,
        quay,
        referrer,
    } = f;
    let server = RunningServer::start(Arc::new(store), listener, opts).unwrap();
    let empty = ImageStore::new(vec![], HashMap::new());
    (
        server,
        Fixture {
            bundle,
            store: empty,
            docker,
            quay,
            referrer,
        },
    )
}

/// Sends raw bytes and reads until the server closes or `timeout`.
fn raw(addr: std::net::SocketAddr, request: &[u8], timeout: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn keep_alive_pipelining_and_head_over_a_socket() {
    let (server, f) = start(fixture(), ServeOptions::default());
    let blob = f.quay.1.to_string();
    let request = format!(
        "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n\
         HEAD /v2/quay.io/library/app/blobs/{blob} HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /v2/quay.io/library/app/blobs/{blob} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-3\r\nConnection: close\r\n\r\n"
    );
    let out = raw(
        server.local_addr(),
        request.as_bytes(),
        Duration::from_secs(5),
    );
    let responses: Vec<&str> = out.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(responses.len(), 3, "{out}");
    assert!(
        responses[0].starts_with("200 OK\r\n") && responses[0].ends_with("\r\n\r\n{}"),
        "{out}"
    );
    assert!(
        responses[1].starts_with("200 OK\r\n") && responses[1].ends_with("\r\n\r\n"),
        "{out}"
    );
    assert!(responses[1].contains(&format!(
        "Content-Length: {}\r\n",
        "quay-content".len() * 500
    )));
    assert!(responses[2].starts_with("206 Partial Content\r\n"), "{out}");
    assert!(
        responses[2].contains("Connection: close\r\n") && responses[2].ends_with("quay"),
        "{out}"
    );
    server.stop().unwrap();
}

#[test]
fn oversized_malformed_and_slow_requests_get_4xx() {
    let opts = ServeOptions {
        head_timeout: Duration::from_millis(500),
        ..ServeOptions::default()
    };
    let (server, _f) = start(fixture(), opts);
    let addr = server.local_addr();
    let big = format!("GET /v2/ HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    assert!(raw(addr, big.as_bytes(), Duration::from_secs(5)).starts_with("HTTP/1.1 431 "));
    let many: String = (0..100).map(|i| format!("X{i}: y\r\n")).collect();
    let many = format!("GET /v2/ HTTP/1.1\r\n{many}\r\n");
    assert!(raw(addr, many.as_bytes(), Duration::from_secs(5)).starts_with("HTTP/1.1 431 "));
    assert!(
        raw(addr, b"\x16\x03\x01garbage\r\n\r\n", Duration::from_secs(5))
            .starts_with("HTTP/1.1 400 ")
    );
    assert!(
        raw(addr, b"GET /v2/ HTTP/1.1\r\nHost", Duration::from_secs(5))
            .starts_with("HTTP/1.1 408 ")
    );
    // A write with a body is refused and the connection closed (the body is never read).
    let put = raw(
        addr,
        b"PUT /v2/a/manifests/1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        Duration::from_secs(5),
    );
    assert!(
        put.starts_with("HTTP/1.1 405 ") && put.contains("Connection: close"),
        "{put}"
    );
    // The server still answers.
    assert!(
        raw(addr, b"GET /v2/ HTTP/1.0\r\n\r\n", Duration::from_secs(5))
            .starts_with("HTTP/1.1 200 ")
    );
    server.stop().unwrap();
}

#[test]
fn sendfile_and_copy_paths_send_the_same_bytes() {
    for sendfile in [true, false] {
        let opts = ServeOptions {
            sendfile,
            ..ServeOptions::default()
        };
        let (server, f) = start(fixture(), opts);
        let blob = f.docker.1;
        // The first GET is verified while sent (always the copy loop); the second is
        // sent the configured way.
        for get in ["first", "second"] {
            let out = raw(
                server.local_addr(),
                format!(
                    "GET /v2/library/app/blobs/{}?ns=docker.io HTTP/1.0\r\n\r\n",
                    blob
                )
                .as_bytes(),
                Duration::from_secs(5),
            );
            let body = out.split_once("\r\n\r\n").unwrap().1;
            assert_eq!(
                Sha256Digest::of(body.as_bytes()),
                blob,
                "sendfile={sendfile}, {get} GET"
            );
        }
        server.stop().unwrap();
    }
}

#[test]
fn a_corrupt_blob_over_a_socket_is_cut_short_and_closed_then_500() {
    let mut b = Bundle::new();
    let (manifest, layer) = b.image(&"big".repeat(2000)); // a 3 MB layer: many chunks
    b.write();
    corrupt(&b, &layer);
    let store = ImageStore::new(
        vec![stored("docker.io/library/big:1", manifest, OCI_MANIFEST)],
        b.blobs.clone(),
    );
    let f = Fixture {
        bundle: b,
        store,
        docker: (manifest, layer),
        quay: (manifest, layer),
        referrer: manifest,
    };
    let (server, f) = start(f, ServeOptions::default());
    let len = f.bundle.blobs[&layer].len;
    // Keep-alive: only the server closing the connection ends the read early.
    let get = format!("GET /v2/library/big/blobs/{layer} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(get.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("the server closes the connection");
    let text = String::from_utf8_lossy(&out);
    let (head, _) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let promised = format!("Content-Length: {len}");
    assert!(head.lines().any(|l| l == promised), "{head}");
    let body = out.len() - head.len() - 4;
    assert!(body > 0 && (body as u64) < len, "{body} of {len} bytes");
    let again = raw(
        server.local_addr(),
        get.as_bytes(),
        Duration::from_millis(500),
    );
    assert!(
        again.starts_with("HTTP/1.1 500 ") && again.contains("corrupt"),
        "{again}"
    );
    server.stop().unwrap();
}

#[test]
fn stop_closes_idle_keep_alive_connections() {
    let (server, _f) = start(fixture(), ServeOptions::default());
    let mut idle = TcpStream::connect(server.local_addr()).unwrap();
    idle.write_all(b"GET /v2/ HTTP/1.1\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    let _ = idle.read(&mut buf).unwrap();
    let t = std::time::Instant::now();
    server.stop().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        t.elapsed()
    );
    idle.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(
        idle.read(&mut buf).unwrap(),
        0,
        "connection should be closed"
    );
}

#[test]
fn error_codes_are_spec_strings() {
    assert_eq!(ErrorCode::NameUnknown.as_str(), "NAME_UNKNOWN");
    assert_eq!(ErrorCode::Unsupported.as_str(), "UNSUPPORTED");
}

/// A small deterministic generator, so the fuzz tests are reproducible.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[test]
fn random_targets_and_ranges_never_panic_or_5xx() {
    let f = fixture();
    let digest = f.docker.1.to_string();
    let pieces = [
        "/v2/",
        "/v2",
        "/",
        "library",
        "app",
        "quay.io",
        "docker.io",
        "manifests",
        "blobs",
        "tags",
        "list",
        "referrers",
        "_catalog",
        "..",
        ".",
        "%",
        "%2F",
        "%3A",
        "%zz",
        "sha256:",
        &digest,
        "1",
        "?",
        "&",
        "ns=",
        "n=",
        "last=",
        "artifactType=",
        "quay.io",
        "é",
        "A",
        ":",
        "-",
        "__",
        "uploads",
    ];
    let ranges = [
        "bytes=",
        "0",
        "-",
        "5",
        ",",
        "99999999999999999999",
        "=",
        " ",
        "x",
    ];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let target: String = (0..rng.next() % 12).map(|_| rng.pick(&pieces)).collect();
        let range: String = (0..rng.next() % 5).map(|_| rng.pick(&ranges)).collect();
        let method = rng.pick(&["GET", "HEAD", "PUT"]);
        let (r, body) = call(
            &f.store,
            method,
            &target,
            Some(&range).filter(|r| !r.is_empty()).map(|x| x.as_str()),
        );
        assert!(
            r.status < 500,
            "{method} {target:?} range {range:?}: {}",
            String::from_utf8_lossy(&body)
        );
        if r.status >= 400 && method != "HEAD" {
            assert!(!error_code(&body).is_empty());
        }
    }
}

#[test]
fn random_bytes_on_the_socket_do_not_hurt_the_server() {
    let opts = ServeOptions {
        head_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let (server, _f) = start(fixture(), opts);
    let addr = server.local_addr();
    let mut rng = XorShift(42);
    for i in 0..200 {
        let len = (rng.next() % 600) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 {
            // Mostly-valid heads with random bytes in the target and headers.
            let mut head = b"GET /v2/".to_vec();
            head.extend_from_slice(&bytes);
            head.extend_from_slice(b" HTTP/1.1\r\nRange: bytes=");
            head.extend_from_slice(&bytes[..len.min(8)]);
            head.extend_from_slice(b"\r\n\r\n");
            bytes = head;
        }
        let out = raw(addr, &bytes, Duration::from_secs(5));
        if let Some(status) = out.strip_prefix("HTTP/1.1 ") {
            assert!(!status.starts_with('5'), "{out}");
        }
    }
    assert!(
        raw(addr, b"GET /v2/ HTTP/1.0\r\n\r\n", Duration::from_secs(5))
            .starts_with("HTTP/1.1 200 ")
    );
    server.stop().unwrap();
}

#[test]
fn requests_for_what_the_bundle_lacks_are_recorded_with_host_and_client() {
    let log = super::MissLog::in_memory();
    let f = fixture();
    let store = f.store.with_miss_log(log.clone());
    let missing = Sha256Digest::of(b"never bundled");
    for (target, status) in [
        // containerd: the upstream host comes with ?ns=.
        ("/v2/library/app/manifests/2?ns=docker.io", 404),
        ("/v2/library/app/manifests/2?ns=docker.io", 404),
        ("/v2/x/sidecar/manifests/1.0?ns=quay.io", 404),
        // skopeo: the host is the path's first component.
        ("/v2/ghcr.io/acme/tool/manifests/3", 404),
        (
            &format!("/v2/library/app/manifests/{missing}?ns=docker.io"),
            404,
        ),
        (
            &format!("/v2/library/app/blobs/{missing}?ns=docker.io"),
            404,
        ),
        ("/v2/nowhere/tags/list", 404),
        // Served, or malformed: no miss.
        ("/v2/library/app/manifests/1?ns=docker.io", 200),
        ("/v2/Library/App/manifests/1?ns=docker.io", 400),
    ] {
        let (resp, _) = call(&store, "HEAD", target, None);
        assert_eq!(resp.status, status, "{target}");
    }
    let r = log.report();
    let mut got: Vec<(String, u64, String)> = r
        .misses
        .iter()
        .map(|m| (m.image.clone(), m.count, m.error.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "docker.io/library/app:2".into(),
                2,
                "MANIFEST_UNKNOWN".into()
            ),
            (
                format!("docker.io/library/app@{missing}"),
                1,
                "BLOB_UNKNOWN".into()
            ),
            (
                format!("docker.io/library/app@{missing}"),
                1,
                "MANIFEST_UNKNOWN".into()
            ),
            ("ghcr.io/acme/tool:3".into(), 1, "NAME_UNKNOWN".into()),
            ("nowhere".into(), 1, "NAME_UNKNOWN".into()),
            ("quay.io/x/sidecar:1.0".into(), 1, "NAME_UNKNOWN".into()),
        ]
    );
    let tool = r
        .misses
        .iter()
        .find(|m| m.image == "ghcr.io/acme/tool:3")
        .unwrap();
    assert_eq!(tool.host.as_deref(), Some("ghcr.io"));
    assert_eq!(tool.repository, "acme/tool");

    // Over a socket, the client's address is recorded.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = RunningServer::start(Arc::new(store), listener, ServeOptions::default()).unwrap();
    let out = raw(
        server.local_addr(),
        b"GET /v2/x/sidecar/manifests/1.0?ns=quay.io HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    server.stop().unwrap();
    let m = log
        .report()
        .misses
        .into_iter()
        .find(|m| m.image == "quay.io/x/sidecar:1.0")
        .unwrap();
    assert_eq!(
        (m.count, m.clients.clone()),
        (2, vec!["127.0.0.1".to_string()])
    );
}
