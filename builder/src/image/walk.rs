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
