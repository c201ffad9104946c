//! Walks a manifest or index down to every blob it references, reading only the small
//! JSON documents and never the layers. Documents are read with the bundle crate's OCI
//! model ([`ferry_bundle::oci`]), the same the installer's registry loads them with, so
//! what the builder accepts the registry serves.

use super::{Blob, BlobSource, ImageError};
use ferry_bundle::oci::{self, Manifest, Platform};
use ferry_bundle::Sha256Digest;

/// Collects `root` and everything below it. `lookup` finds a blob's bytes by digest;
/// layers with foreign `urls` (non-distributable) are skipped when missing. The root must
/// be an image manifest or an index. Returns the blobs (root first) and the platforms
/// found.
pub fn collect_blobs(
    source_ref: &str,
    root: Blob,
    lookup: &dyn Fn(&Sha256Digest) -> Option<BlobSource>,
) -> Result<(Vec<Blob>, Vec<String>), ImageError> {
    if !oci::is_document(&root.media_type) {
        return Err(ImageError::invalid(
            source_ref,
            format!(
                "{} has media type {:?}, which is neither an image manifest nor an index",
                root.digest, root.media_type
            ),
        ));
    }
    let mut out = Vec::new();
    let mut platforms = Vec::new();
    let mut stack = vec![root];
    let mut seen = std::collections::HashSet::new();
    while let Some(b) = stack.pop() {
        if !seen.insert(b.digest) {
            continue;
        }
        // A descriptor's size is someone else's claim; the bytes holding the blob bound it.
        if b.source.len() != b.size {
            let held = match b.source.file() {
                Some((path, ..)) => path.display().to_string(),
                None => "the source".into(),
            };
            return Err(ImageError::invalid(
                source_ref,
                format!(
                    "blob {} ({}): its descriptor says {} bytes, but {held} holds {}",
                    b.digest,
                    b.media_type,
                    b.size,
                    b.source.len()
                ),
            ));
        }
        if !oci::is_document(&b.media_type) {
            out.push(b);
            continue;
        }
        let bytes = b
            .source
            .read_small()
            .map_err(|e| ImageError::invalid(source_ref, e))?;
        if Sha256Digest::of(&bytes) != b.digest {
            return Err(ImageError::invalid(
                source_ref,
                format!("manifest {} does not match its digest", b.digest),
            ));
        }
        let doc = Manifest::parse(&bytes)
            .map_err(|e| ImageError::invalid(source_ref, format!("manifest {}: {e}", b.digest)))?;
        let children: Vec<oci::Descriptor> = if oci::is_index(&b.media_type) {
            platforms.extend(
                doc.children()
                    .iter()
                    .filter_map(|m| m.platform.as_ref().map(Platform::to_string)),
            );
            doc.children().to_vec()
        } else {
            if let Some(p) = doc
                .config
                .as_ref()
                .and_then(|c| lookup(&c.digest))
                .and_then(|src| src.read_small().ok())
                .and_then(|bytes| Platform::from_config(&bytes))
            {
                platforms.push(p.to_string());
            }
            doc.blob_descriptors().cloned().collect()
        };
        out.push(b);
        for c in children {
            match lookup(&c.digest) {
                Some(source) => stack.push(Blob {
                    digest: c.digest,
                    size: c.size,
                    media_type: c.media_type,
                    source,
                }),
                None if !c.urls.is_empty() => continue,
                None => {
                    return Err(ImageError::invalid(
                        source_ref,
                        format!(
                            "blob {} ({}) is referenced but not present in the source",
                            c.digest, c.media_type
                        ),
                    ))
                }
            }
        }
    }
    platforms.sort();
    platforms.dedup();
    Ok((out, platforms))
}

/// Parses `sha256:<hex>` as found in a source's own files (`docker save` diff IDs).
pub fn parse_digest(source_ref: &str, d: &str) -> Result<Sha256Digest, ImageError> {
    Sha256Digest::parse(d).map_err(|e| ImageError::invalid(source_ref, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ResolvedImage;
    use std::path::Path;

    fn put(dir: &Path, bytes: &[u8]) -> (Sha256Digest, u64) {
        let d = Sha256Digest::of(bytes);
        std::fs::write(dir.join(d.hex()), bytes).unwrap();
        (d, bytes.len() as u64)
    }

    fn lookup(dir: &Path) -> impl Fn(&Sha256Digest) -> Option<BlobSource> + '_ {
        move |d| {
            let p = dir.join(d.hex());
            let len = std::fs::metadata(&p).ok()?.len();
            Some(BlobSource::whole_file(p, len))
        }
    }

    /// A manifest whose layer claims `layer_size` bytes.
    fn manifest_blob(dir: &Path, layer_size: u64) -> Blob {
        let (config, config_len) = put(dir, br#"{"os":"linux","architecture":"amd64"}"#);
        let (layer, _) = put(dir, b"layer bytes");
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": config_len},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": layer_size}],
        });
        let (d, len) = put(dir, &serde_json::to_vec(&m).unwrap());
        Blob {
            digest: d,
            size: len,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            source: lookup(dir)(&d).unwrap(),
        }
    }

    #[test]
    fn descriptor_sizes_must_match_the_bytes() {
        let t = tempfile::tempdir().unwrap();
        let (blobs, platforms) =
            collect_blobs("oci:x", manifest_blob(t.path(), 11), &lookup(t.path())).unwrap();
        assert_eq!(blobs.len(), 3);
        assert_eq!(platforms, ["linux/amd64"]);
        // A layer that claims to be near 2^64 bytes, which summed with the rest once
        // overflowed (a panic in debug builds, a wrapped total in release).
        for lie in [u64::MAX, 12, 0] {
            let err = collect_blobs("oci:x", manifest_blob(t.path(), lie), &lookup(t.path()))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("descriptor says {lie} bytes")) && err.contains("holds 11"),
                "{err}"
            );
        }
    }

    #[test]
    fn image_size_is_a_checked_sum() {
        let blob = |size| Blob {
            digest: Sha256Digest::of(b"x"),
            size,
            media_type: String::new(),
            source: BlobSource::Bytes(std::sync::Arc::new(Vec::new())),
        };
        let image = |sizes: &[u64]| ResolvedImage {
            name: ferry_bundle::reference::Reference::parse("docker.io/library/a:1").unwrap(),
            source: "oci:x".into(),
            root: blob(0),
            blobs: sizes.iter().map(|&s| blob(s)).collect(),
            platforms: vec![],
        };
        assert_eq!(image(&[1, 2, 3]).size().unwrap(), 6);
        let err = image(&[u64::MAX, 1]).size().unwrap_err().to_string();
        assert!(err.contains("oci:x") && err.contains("2^64"), "{err}");
        assert_eq!(
            crate::image::checked_total([u64::MAX - 1, 1]),
            Some(u64::MAX)
        );
        assert_eq!(crate::image::checked_total([u64::MAX, 1]), None);
    }
}
