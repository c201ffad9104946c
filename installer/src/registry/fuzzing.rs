//! Entry points for the fuzz targets under `fuzz/` (cargo feature `fuzzing`; never part of
//! the installer stub).
//!
//! Why here and not in the targets: the request pipeline's pieces are private to the
//! registry, and a fuzzer is only useful if it runs the very code a hostile client
//! reaches. So this module re-exports the parsers and offers [`answer`], which feeds raw
//! bytes through the same per-connection loop a socket gets and returns what the server
//! wrote back, and [`load_manifest`], which loads a store whose image is an arbitrary
//! manifest (as a hostile bundle would carry it).

use super::server::{self, Next};
use super::store::{BlobLocation, ImageStore, StoredImage};
use ferry_bundle::reference::Reference;
use ferry_bundle::Sha256Digest;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;

pub use super::names::{percent_decode, percent_encode};
pub use super::pagination::{link, paginate, parse_n};
pub use super::path::{parse_path, split_target, Endpoint, ManifestRef, Query};
pub use super::range::ByteRange;

/// Answers the requests in `input` as the server answers one connection that sent these
/// bytes and closed: the same judgement of buffered bytes ([`server::next`]) and the same
/// answer ([`server::respond`]); returns every byte written back.
pub fn answer(store: &ImageStore, input: &[u8], max_head: usize) -> Vec<u8> {
    let peer: SocketAddr = ([127, 0, 0, 1], 1).into();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut rest = input;
    loop {
        match server::next(&buf, max_head) {
            Next::Request(req, used) => {
                buf.drain(..used);
                if !server::respond(store, &mut out, &req, peer, false, false) {
                    break;
                }
            }
            Next::Refuse(status, message) => {
                out.extend_from_slice(&server::refusal(status, message));
                break;
            }
            Next::More if rest.is_empty() => break,
            Next::More => {
                // The network hands bytes over in pieces; the head cap bounds the buffer.
                let n = (max_head - buf.len())
                    .min(rest.len())
                    .min(1 + rest.len() / 2);
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
        }
    }
    out
}

/// Blobs written one after another into a file: their locations.
fn write_blobs(path: &Path, blobs: &[&[u8]]) -> HashMap<Sha256Digest, BlobLocation> {
    let mut file = Vec::new();
    let mut out = HashMap::new();
    for b in blobs {
        out.insert(
            Sha256Digest::of(b),
            BlobLocation::file(path.to_path_buf(), file.len() as u64, b.len() as u64),
        );
        file.extend_from_slice(b);
    }
    std::fs::write(path, file).expect("writing the fuzz store's blob file");
    out
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn descriptor(media_type: &str, data: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": Sha256Digest::of(data).to_string(), "size": data.len()})
}

/// A config and a layer that [`load_manifest`] inputs and the sample store refer to.
pub fn sample_blobs() -> [Vec<u8>; 2] {
    [
        br#"{"architecture":"amd64","os":"linux"}"#.to_vec(),
        b"layer bytes ".repeat(100),
    ]
}

/// A manifest of the sample config and layer.
pub fn sample_manifest() -> Vec<u8> {
    let [config, layer] = sample_blobs();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &layer)],
    }))
    .expect("json")
}

/// A store to answer requests from, made once per process: one manifest under two hosts
/// and several tags, and an index of it.
pub fn sample_store() -> &'static ImageStore {
    static STORE: OnceLock<(tempfile::TempDir, ImageStore)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temporary directory");
            let [config, layer] = sample_blobs();
            let manifest = sample_manifest();
            let index = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": INDEX,
                "manifests": [descriptor(MANIFEST, &manifest)],
            }))
            .expect("json");
            let blobs = write_blobs(
                &dir.path().join("blobs"),
                &[&config, &layer, &manifest, &index],
            );
            let image = |name: &str, data: &[u8], media_type: &str| StoredImage {
                reference: Reference::parse(name).expect("fixed name"),
                digest: Sha256Digest::of(data),
                media_type: media_type.into(),
            };
            let mut images = vec![
                image("quay.io/org/app:1", &manifest, MANIFEST),
                image("docker.io/library/multi:1", &index, INDEX),
            ];
            for tag in ["1", "1.1", "2", "latest"] {
                images.push(image(
                    &format!("docker.io/library/app:{tag}"),
                    &manifest,
                    MANIFEST,
                ));
            }
            let store = ImageStore::new(images, blobs);
            (dir, store)
        })
        .1
}

/// Loads a store whose one image `docker.io/library/x:1` is `document` (with
/// `media_type`), next to the sample config and layer, as the registry loads a bundle's
/// images; `Ok` with the answers to a few requests for it, or the load error.
pub fn load_manifest(document: &[u8], media_type: &str) -> Result<Vec<u8>, String> {
    // One directory per process, its blob file rewritten each time: a fuzzer calls this
    // thousands of times a second.
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temporary directory"));
    let [config, layer] = sample_blobs();
    let blobs = write_blobs(&dir.path().join("blobs"), &[&config, &layer, document]);
    let digest = Sha256Digest::of(document);
    let store = ImageStore::new(
        vec![StoredImage {
            reference: Reference::parse("docker.io/library/x:1").expect("fixed name"),
            digest,
            media_type: media_type.to_string(),
        }],
        blobs,
    );
    if let Some(s) = store.skipped().first() {
        return Err(format!("{}: {}", s.image, s.error));
    }
    let [config_digest, layer_digest] = sample_blobs().map(|b| Sha256Digest::of(&b).to_string());
    let requests = format!(
        "GET /v2/library/x/manifests/1 HTTP/1.1\r\n\r\n\
         HEAD /v2/library/x/manifests/{} HTTP/1.1\r\n\r\n\
         GET /v2/library/x/blobs/{config_digest} HTTP/1.1\r\n\r\n\
         GET /v2/library/x/blobs/{layer_digest} HTTP/1.1\r\nRange: bytes=5-\r\n\r\n\
         GET /v2/library/x/referrers/{} HTTP/1.1\r\n\r\n\
         GET /v2/_catalog HTTP/1.1\r\n\r\n\
         GET /v2/library/x/tags/list?n=1 HTTP/1.1\r\nConnection: close\r\n\r\n",
        digest, digest,
    );
    Ok(answer(&store, requests.as_bytes(), 16 << 10))
}

/// The registry's store for one opened bundle, as `ferry-installer registry` loads it (an
/// image it cannot serve is skipped, not fatal).
pub fn store_from_bundle(b: &ferry_bundle::Bundle) -> ImageStore {
    ImageStore::from_bundles(std::slice::from_ref(b))
}

/// A registry host as every name is normalised (`ferry_bundle::reference`); `None` for
/// anything that is not a host.
pub fn normalise_host(host: &str) -> Option<String> {
    ferry_bundle::reference::normalise_host(host).ok()
}
