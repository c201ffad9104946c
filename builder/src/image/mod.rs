//! Images as the builder sees them: a name the cluster will use, a root descriptor
//! (manifest or index), and every blob it needs together with where its bytes are now.
//!
//! Whatever the source — an OCI layout, a `docker save` tarball, a registry (through the
//! content cache) — an image resolves to byte ranges of local files or small in-memory
//! blobs. The bundle writer then copies each unique blob once, verifying its digest.
//! Media types and manifests are the bundle crate's OCI model ([`ferry_bundle::oci`]).

mod docker_archive;
mod oci_layout;
mod source;
mod walk;

pub use docker_archive::resolve_all;
pub use source::{image_name, resolve_local, ImageSource};
pub use walk::collect_blobs;

use ferry_bundle::reference::Reference;
use ferry_bundle::writer::BlobCheck;
use ferry_bundle::Sha256Digest;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a blob's bytes are before they go into the bundle.
#[derive(Debug, Clone)]
pub enum BlobSource {
    /// A byte range of a local file (an OCI layout blob, a member of a tarball, a cached blob).
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
    /// Small blobs the builder made itself (e.g. a manifest for a docker-archive image).
    Bytes(Arc<Vec<u8>>),
    /// A blob in the builder's content cache ([`crate::pull::ContentCache`]), a whole file
    /// named by its digest. The cache checked the digest when it stored the bytes, so
    /// the bundle writer takes it on the cache's word ([`BlobSource::check`]).
    Cached { path: PathBuf, len: u64 },
}

impl BlobSource {
    pub fn whole_file(path: PathBuf, len: u64) -> Self {
        BlobSource::File {
            path,
            offset: 0,
            len,
        }
    }
    /// The blob's length in bytes, as its source holds it.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        match self {
            BlobSource::Bytes(b) => b.len() as u64,
            BlobSource::File { len, .. } | BlobSource::Cached { len, .. } => *len,
        }
    }
    /// How the bundle writer knows the bytes match the blob's digest: the content cache
    /// vouches for its own blobs (it verified them on the way in and names them by
    /// digest); every other source is hashed as it is written.
    pub fn check(&self) -> BlobCheck {
        match self {
            BlobSource::Cached { .. } => BlobCheck::Vouched,
            BlobSource::File { .. } | BlobSource::Bytes(_) => BlobCheck::Hash,
        }
    }
    /// The file holding the blob, with the byte range it takes (none for in-memory bytes).
    pub fn file(&self) -> Option<(&Path, u64, u64)> {
        match self {
            BlobSource::File { path, offset, len } => Some((path, *offset, *len)),
            BlobSource::Cached { path, len } => Some((path, 0, *len)),
            BlobSource::Bytes(_) => None,
        }
    }
    /// Reads the whole blob into memory: for manifests and configs only (small).
    pub fn read_small(&self) -> std::io::Result<Vec<u8>> {
        const LIMIT: u64 = 16 * 1024 * 1024;
        match (self, self.file()) {
            (BlobSource::Bytes(b), _) => Ok(b.to_vec()),
            (_, Some((path, offset, len))) => {
                if len > LIMIT {
                    return Err(std::io::Error::other(format!(
                        "{}: manifest or config larger than 16 MiB",
                        path.display()
                    )));
                }
                let f = std::fs::File::open(path)?;
                ferry_bundle::subfile::read_exact_at(&f, offset, len as usize)
            }
            (_, None) => unreachable!("only in-memory bytes have no file"),
        }
    }
    /// Opens the blob as a stream.
    pub fn open(&self) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        match (self, self.file()) {
            (BlobSource::Bytes(b), _) => Ok(Box::new(std::io::Cursor::new(b.clone().to_vec()))),
            (_, Some((path, offset, len))) => {
                let f = std::fs::File::open(path)?;
                Ok(Box::new(ferry_bundle::subfile::SubFile::new(
                    Arc::new(f),
                    offset,
                    len,
                )))
            }
            (_, None) => unreachable!("only in-memory bytes have no file"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: Sha256Digest,
    pub size: u64,
    pub media_type: String,
    pub source: BlobSource,
}

/// An image ready to be written into a bundle.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The name the image carries on the cluster.
    pub name: Reference,
    /// As written in the Kubefile.
    pub source: String,
    pub root: Blob,
    /// Every blob, root included, in dependency order (manifests before what they list).
    pub blobs: Vec<Blob>,
    pub platforms: Vec<String>,
}

impl ResolvedImage {
    /// The bytes of every blob, added with overflow checks: sizes come from descriptors
    /// in someone else's manifests, and a plain sum of lying ones once wrapped around.
    pub fn size(&self) -> Result<u64, ImageError> {
        checked_total(self.blobs.iter().map(|b| b.size)).ok_or_else(|| {
            ImageError::invalid(
                &self.source,
                "its blob sizes add up to more than 2^64 bytes: a descriptor lies about its size",
            )
        })
    }
}

/// The sum of `sizes`, or `None` if it does not fit a u64.
pub fn checked_total(sizes: impl IntoIterator<Item = u64>) -> Option<u64> {
    sizes.into_iter().try_fold(0u64, u64::checked_add)
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{source_ref}: {message}")]
    Invalid { source_ref: String, message: String },
    #[error("{source_ref}: {path}: {err}")]
    Io {
        source_ref: String,
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
}

impl ImageError {
    pub fn invalid(source_ref: &str, message: impl std::fmt::Display) -> Self {
        ImageError::Invalid {
            source_ref: source_ref.to_string(),
            message: message.to_string(),
        }
    }
}
