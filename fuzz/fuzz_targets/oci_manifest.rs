//! OCI and Docker manifests and indexes, as three readers meet them: the builder's pull
//! (media type detection, platform selection), the builder's walk of a local layout, and
//! the installer's registry loading a bundle's image. The first input byte picks the
//! `Content-Type` the document arrives with; the rest is the document, which may refer to
//! a sample config and layer by digest.
//!
//! Oracle: what parses as an index selects only entries it lists; a walk yields blobs
//! whose sizes match their bytes; the registry either refuses the image at load or serves
//! it without a 5xx.
#![no_main]

use ferry_builder::image::{collect_blobs, Blob, BlobSource};
use ferry_builder::pull::manifest::{offered, select};
use ferry_bundle::oci::{parse_manifest, Platform};
use ferry_bundle::Sha256Digest;
use ferry_installer::registry::fuzzing::{load_manifest, sample_blobs};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

const TYPES: [&str; 6] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/octet-stream",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, doc)) = data.split_first() else {
        return;
    };
    let content_type = TYPES[pick as usize % TYPES.len()];

    // The builder's pull: the shared OCI model decides the type, the pull selects.
    let media_type = match parse_manifest(doc, Some(content_type)) {
        Ok((mt, m)) if m.is_index(&mt) => {
            let wanted = [
                Platform::new("linux", "amd64", None),
                Platform::new("linux", "arm64", Some("v8")),
            ];
            let index = m.children();
            if let Ok(sel) = select(index, &wanted) {
                for (_, d) in sel {
                    assert!(index.iter().any(|m| m.digest == d.digest));
                }
            }
            let _ = offered(index);
            mt
        }
        Ok((mt, m)) => {
            let _ = m.blob_descriptors().count();
            mt
        }
        Err(_) => content_type.to_string(),
    };
    let _ = Platform::from_config(doc);

    // The builder's walk of a layout whose root is this document.
    let blobs = sample_blobs();
    let lookup = |d: &Sha256Digest| {
        blobs
            .iter()
            .find(|b| Sha256Digest::of(b) == *d)
            .map(|b| BlobSource::Bytes(Arc::new(b.clone())))
    };
    let root = Blob {
        digest: Sha256Digest::of(doc),
        size: doc.len() as u64,
        media_type: media_type.clone(),
        source: BlobSource::Bytes(Arc::new(doc.to_vec())),
    };
    if let Ok((found, _)) = collect_blobs("oci:fuzz", root, &lookup) {
        assert_eq!(found[0].digest, Sha256Digest::of(doc));
    }

    // The installer's registry, loading it as a bundle's image.
    if let Ok(out) = load_manifest(doc, &media_type) {
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("HTTP/1.1 5"), "{text}");
    }
});
