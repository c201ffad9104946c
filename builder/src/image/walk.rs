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
