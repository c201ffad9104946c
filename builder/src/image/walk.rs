//! Walks a manifest or index down to every blob it references, reading only the small
//! JSON documents and never the layers.

use super::{is_index, Blob, BlobSource, ImageError};
use ferry_bundle::Sha256Digest;
use serde::Deserialize;

#[derive(Deserialize)]
struct Desc {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

/// The parts of a manifest or index the walk needs; works for OCI and Docker v2 alike.
#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    config: Option<Desc>,
    #[serde(default)]
    layers: Vec<Desc>,
    #[serde(default)]
    manifests: Vec<Desc>,
}

#[derive(Deserialize)]
struct ConfigPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

/// Collects `root` and everything below it. `lookup` finds a blob's bytes by digest;
/// layers with foreign `urls` (non-distributable) are skipped when missing.
/// Returns the blobs (root first) and the platforms found.
pub fn collect_blobs(
    source_ref: &str,
    root: Blob,
    lookup: &dyn Fn(&Sha256Digest) -> Option<BlobSource>,
) -> Result<(Vec<Blob>, Vec<String>), ImageError> {
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
            let held = match &b.source {
                BlobSource::File { path, .. } => path.display().to_string(),
                BlobSource::Bytes(_) => "the source".into(),
            };
            return Err(ImageError::invalid(
                source_ref,
                format!(
                    "blob {} ({}): its descriptor says {} bytes, but {held} holds {}",
                    b.digest.oci(),
                    b.media_type,
                    b.size,
                    b.source.len()
                ),
            ));
        }
        let is_doc = b.media_type.contains("manifest") || is_index(&b.media_type);
        if is_doc {
            let bytes = b
                .source
                .read_small()
                .map_err(|e| ImageError::invalid(source_ref, e.to_string()))?;
            if Sha256Digest::of(&bytes) != b.digest {
                return Err(ImageError::invalid(
                    source_ref,
                    format!("manifest {:?} does not match its digest", b.digest),
                ));
            }
            let doc: Doc = serde_json::from_slice(&bytes).map_err(|e| {
                ImageError::invalid(source_ref, format!("manifest {:?}: {e}", b.digest))
            })?;
            let mut children = Vec::new();
            if is_index(&b.media_type) {
                for m in doc.manifests {
                    if let Some(p) = &m.platform {
                        platforms.push(fmt_platform(&p.os, &p.architecture, p.variant.as_deref()));
                    }
                    children.push(m);
                }
            } else {
                if let Some(c) = doc.config {
                    if let Some(src) = parse_digest(source_ref, &c.digest)
                        .ok()
                        .and_then(|d| lookup(&d))
                    {
                        if let Ok(bytes) = src.read_small() {
                            if let Ok(p) = serde_json::from_slice::<ConfigPlatform>(&bytes) {
                                if !p.os.is_empty() {
                                    platforms.push(fmt_platform(
                                        &p.os,
                                        &p.architecture,
                                        p.variant.as_deref(),
                                    ));
                                }
                            }
                        }
                    }
                    children.push(c);
                }
                children.extend(doc.layers);
            }
            out.push(b);
            for c in children {
                let d = parse_digest(source_ref, &c.digest)?;
                match lookup(&d) {
                    Some(source) => stack.push(Blob {
                        digest: d,
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
        } else {
            out.push(b);
        }
    }
    platforms.sort();
    platforms.dedup();
    Ok((out, platforms))
}

fn fmt_platform(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
        _ => format!("{os}/{arch}"),
    }
}

pub fn parse_digest(source_ref: &str, d: &str) -> Result<Sha256Digest, ImageError> {
    Sha256Digest::from_oci(d).ok_or_else(|| {
        ImageError::invalid(
            source_ref,
            format!("unsupported or malformed digest {d:?} (only sha256 is supported)"),
        )
    })
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
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.oci(), "size": config_len},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.oci(), "size": layer_size}],
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
