//! Loading an [`ImageStore`] from an OCI image layout directory.
//!
//! Used by tests and for bundles unpacked with `--extract`. The layout's `index.json`
//! names each image with containerd's `io.containerd.image.name` annotation (the full
//! reference, as `ctr export` and ferry's builder write it), or with
//! `org.opencontainers.image.ref.name` when that holds a full reference (as
//! `skopeo copy … oci:dir:docker.io/library/x:1` writes it). Entries without a usable
//! name are kept only if they refer to another manifest (`subject`): they are served
//! through the referrers API of their subject's repositories. The index format and the
//! naming rules are the bundle crate's ([`ferry_bundle::oci::LayoutIndex`],
//! [`ferry_bundle::oci::image_name`]), the same the builder writes with.

use super::errors::RegistryError;
use super::load::Loader;
use super::store::{BlobLocation, ImageStore, StoredImage};
use ferry_bundle::oci::{image_name, LayoutIndex, ANNOTATION_IMAGE_NAME};
use ferry_bundle::Sha256Digest;
use std::collections::HashMap;
use std::path::Path;

impl ImageStore {
    /// Serves every named image of the OCI image layout at `dir` (blobs stay in place).
    pub fn from_oci_layout(dir: &Path) -> Result<ImageStore, RegistryError> {
        let index_path = dir.join("index.json");
        let index_bytes = std::fs::read(&index_path).map_err(|source| RegistryError::Io {
            path: index_path.clone(),
            source,
        })?;
        let index = LayoutIndex::parse(&index_bytes).map_err(|e| RegistryError::Layout {
            dir: dir.to_path_buf(),
            reason: format!("index.json: {e}"),
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
            blobs.insert(digest, BlobLocation::file(entry.path(), 0, meta.len()));
        }
        let mut loader = Loader::new(blobs);
        let mut named = 0usize;
        for d in &index.manifests {
            let name = image_name(d).unwrap_or_else(|e| {
                tracing::warn!(
                    "index.json: ignoring {ANNOTATION_IMAGE_NAME} of {}: {e}",
                    d.digest
                );
                None
            });
            match name {
                Some(reference) => {
                    loader.add_image(&StoredImage {
                        reference,
                        digest: d.digest,
                        media_type: d.media_type.clone(),
                    });
                    named += 1;
                }
                None => {
                    tracing::debug!(digest = %d.digest, "index.json entry without a full name");
                    loader.add_detached(d.digest, &d.media_type);
                }
            }
        }
        if named == 0 && !index.manifests.is_empty() {
            tracing::warn!(dir = %dir.display(), "no index.json entry carries a full image name ({ANNOTATION_IMAGE_NAME}); nothing to serve");
        }
        Ok(loader.finish())
    }
}
