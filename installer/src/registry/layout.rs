//! Loading an [`ImageStore`] from an OCI image layout directory.
//!
//! Used by tests and for bundles unpacked with `--extract`. The layout's `index.json`
//! names each image with containerd's `io.containerd.image.name` annotation (the full
//! reference, as `ctr export` and ferry's builder write it), or with
//! `org.opencontainers.image.ref.name` when that holds a full reference (as
//! `skopeo copy … oci:dir:docker.io/library/x:1` writes it). Entries without a usable
//! name are kept only if they refer to another manifest (`subject`): they are served
//! through the referrers API of their subject's repositories.

use super::errors::RegistryError;
use super::load::Loader;
use super::names::looks_like_host;
use super::store::{BlobLocation, ImageStore, StoredImage};
use ferry_bundle::reference::Reference;
use ferry_bundle::Sha256Digest;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
pub const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutIndex {
    #[serde(default)]
    manifests: Vec<LayoutDescriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutDescriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The full reference an index.json entry names, if any.
fn entry_name(annotations: &BTreeMap<String, String>) -> Option<Reference> {
    if let Some(name) = annotations.get(CONTAINERD_NAME) {
        match Reference::parse(name) {
            Ok(r) => return Some(r),
            Err(e) => tracing::warn!("ignoring {CONTAINERD_NAME}={name:?}: {e}"),
        }
    }
    let name = annotations.get(OCI_REF_NAME)?;
    let first = name.split_once('/')?.0;
    if !looks_like_host(first) {
        return None;
    }
    Reference::parse(name).ok()
}

impl ImageStore {
    /// Serves every named image of the OCI image layout at `dir` (blobs stay in place).
    pub fn from_oci_layout(dir: &Path) -> Result<ImageStore, RegistryError> {
        let layout_err = |reason: String| RegistryError::Layout {
            dir: dir.to_path_buf(),
            reason,
        };
        let index_path = dir.join("index.json");
        let index_bytes = std::fs::read(&index_path).map_err(|source| RegistryError::Io {
            path: index_path.clone(),
            source,
        })?;
        let index: LayoutIndex =
            serde_json::from_slice(&index_bytes).map_err(|source| RegistryError::Json {
                what: index_path.display().to_string(),
                source,
            })?;
        let blob_dir = dir.join("blobs").join("sha256");
        let entries = std::fs::read_dir(&blob_dir).map_err(|source| RegistryError::Io {
            path: blob_dir.clone(),
            source,
        })?;
        let mut blobs = HashMap::new();
        for entry in entries {
            let entry = entry.map_err(|source| RegistryError::Io {
                path: blob_dir.clone(),
                source,
            })?;
            let name = entry.file_name();
            let Some(digest) = name.to_str().and_then(Sha256Digest::from_hex) else {
                tracing::debug!(file = ?name, "not a blob; ignored");
                continue;
            };
            let meta = entry.metadata().map_err(|source| RegistryError::Io {
                path: entry.path(),
                source,
            })?;
            if !meta.is_file() {
                continue;
            }
            blobs.insert(
                digest,
                BlobLocation {
                    path: entry.path(),
                    offset: 0,
                    len: meta.len(),
                },
            );
        }
        let mut loader = Loader::new(blobs);
        let mut named = 0usize;
        for d in &index.manifests {
            let digest = Sha256Digest::from_oci(&d.digest)
                .ok_or_else(|| layout_err(format!("index.json: bad digest {:?}", d.digest)))?;
            match entry_name(&d.annotations) {
                Some(reference) => {
                    loader.add_image(&StoredImage {
                        reference,
                        digest,
                        media_type: d.media_type.clone(),
                    })?;
                    named += 1;
                }
                None => {
                    tracing::debug!(digest = %d.digest, "index.json entry without a full name");
                    loader.add_detached(digest, &d.media_type)?;
                }
            }
        }
        if named == 0 && !index.manifests.is_empty() {
            tracing::warn!(dir = %dir.display(), "no index.json entry carries a full image name ({CONTAINERD_NAME}); nothing to serve");
        }
        Ok(loader.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_containerd_then_full_ref_name() {
        let mut a = BTreeMap::new();
        a.insert(OCI_REF_NAME.to_string(), "1".to_string());
        assert_eq!(entry_name(&a), None);
        a.insert(OCI_REF_NAME.to_string(), "quay.io/x/y:2".to_string());
        assert_eq!(entry_name(&a).unwrap().to_string(), "quay.io/x/y:2");
        a.insert(
            CONTAINERD_NAME.to_string(),
            "docker.io/library/app:1".to_string(),
        );
        assert_eq!(
            entry_name(&a).unwrap().to_string(),
            "docker.io/library/app:1"
        );
        let mut b = BTreeMap::new();
        b.insert(OCI_REF_NAME.to_string(), "library/app:1".to_string());
        assert_eq!(entry_name(&b), None);
    }
}
