//! Opens a bundle in place: finds the footer at the end of the file, reads and checks
//! `bundle.json`, and hands out byte ranges of entries. Opening costs two small reads
//! however large the bundle is; checking every byte is [`crate::verify`]'s job.
//!
//! Opening also parses bundle.json into its typed form (every image name, digest and
//! destination validated: see [`crate::manifest`]) and builds the entry index once, so
//! [`Bundle::entry`] and [`Bundle::blob_entry`] cost O(1) however many entries there
//! are (extracting 40k entries was quadratic with a linear search per entry).

use crate::error::{BundleError, Result};
use crate::footer::{Footer, FooterProblem, FOOTER_LEN, FORMAT_VERSION};
use crate::manifest::{BundleManifest, EntryRecord};
use crate::paths::check_entry_path;
use crate::subfile::{read_exact_at, SubFile};
use crate::Sha256Digest;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest bundle.json accepted (300 images × thousands of entries fits in a few MiB).
pub const MAX_MANIFEST: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Bundle {
    pub path: PathBuf,
    pub file: Arc<File>,
    pub file_len: u64,
    pub footer: Footer,
    pub manifest: BundleManifest,
    /// Entry path → index in `manifest.entries`.
    index: HashMap<String, usize>,
    /// A delta bundle's base, once attached ([`Bundle::attach_base`]).
    pub base: Option<Box<Bundle>>,
}

impl Bundle {
    pub fn open(path: &Path) -> Result<Bundle> {
        let file = File::open(path).map_err(|e| BundleError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| BundleError::io(path, e))?.len();
        if file_len < FOOTER_LEN as u64 {
            return Err(BundleError::NoFooter {
                path: path.into(),
                reason: format!("file is only {file_len} bytes"),
            });
        }
        let raw = read_exact_at(&file, file_len - FOOTER_LEN as u64, FOOTER_LEN)
            .map_err(|e| BundleError::io(path, e))?;
        let footer = Footer::decode(&raw, file_len).map_err(|p| match p {
            FooterProblem::Missing(reason) => BundleError::NoFooter {
                path: path.into(),
                reason,
            },
            FooterProblem::Damaged(reason) => BundleError::BadFooter {
                path: path.into(),
                reason,
            },
            FooterProblem::Version(found) => BundleError::UnsupportedVersion {
                path: path.into(),
                found,
                supported: FORMAT_VERSION,
            },
        })?;
        if footer.manifest_len > MAX_MANIFEST {
            return Err(BundleError::BadManifest {
                reason: format!(
                    "{} bytes is larger than the {MAX_MANIFEST} allowed",
                    footer.manifest_len
                ),
            });
        }
        let bytes = read_exact_at(
            &file,
            footer.payload_offset + footer.manifest_offset,
            footer.manifest_len as usize,
        )
        .map_err(|e| BundleError::io(path, e))?;
        let found = Sha256Digest::of(&bytes);
        if found != footer.manifest_sha256 {
            return Err(BundleError::EntryChecksum {
                entry: crate::MANIFEST_PATH.into(),
                expected: Box::new(footer.manifest_sha256),
                found: Box::new(found),
            });
        }
        let manifest: BundleManifest =
            serde_json::from_slice(&bytes).map_err(|e| BundleError::BadManifest {
                reason: format!("line {} column {}: {e}", e.line(), e.column()),
            })?;
        if manifest.format != footer.version {
            return Err(BundleError::BadManifest {
                reason: format!(
                    "format {} differs from the footer's {}",
                    manifest.format, footer.version
                ),
            });
        }
        if manifest.installer.size != footer.payload_offset {
            return Err(BundleError::BadManifest {
                reason: format!(
                    "installer size {} differs from the payload offset {} in the footer",
                    manifest.installer.size, footer.payload_offset
                ),
            });
        }
        Bundle::from_parts(
            path.to_path_buf(),
            Arc::new(file),
            file_len,
            footer,
            manifest,
        )
    }

    /// A bundle from parts already read and checked elsewhere (the fuzz targets build
    /// one from a forged bundle.json): the entry table is checked as [`Bundle::open`]
    /// checks it.
    pub fn from_parts(
        path: PathBuf,
        file: Arc<File>,
        file_len: u64,
        footer: Footer,
        manifest: BundleManifest,
    ) -> Result<Bundle> {
        let index = check_layout(
            &manifest.entries,
            footer.manifest_offset,
            footer.payload_len,
        )?;
        Ok(Bundle {
            path,
            file,
            file_len,
            footer,
            manifest,
            index,
            base: None,
        })
    }

    /// The payload (tar) as a stream.
    pub fn payload(&self) -> SubFile {
        SubFile::new(
            self.file.clone(),
            self.footer.payload_offset,
            self.footer.payload_len,
        )
    }

    /// Absolute file offset of an entry's first byte.
    pub fn absolute_offset(&self, e: &EntryRecord) -> u64 {
        self.footer.payload_offset + e.offset
    }

    /// An entry's stored bytes as a stream (not verified: see [`crate::verify`]).
    pub fn open_entry(&self, e: &EntryRecord) -> SubFile {
        SubFile::new(self.file.clone(), self.absolute_offset(e), e.size)
    }

    /// The entry at `path`, if the bundle has one (O(1)).
    pub fn entry(&self, path: &str) -> Option<&EntryRecord> {
        self.index.get(path).map(|&i| &self.manifest.entries[i])
    }

    /// The entry that holds an OCI blob, if the bundle carries it (O(1)).
    pub fn blob_entry(&self, digest: &Sha256Digest) -> Option<&EntryRecord> {
        self.entry(&crate::paths::blob_entry(digest))
    }

    /// Every OCI blob the bundle carries, with its entry.
    pub fn blobs(&self) -> impl Iterator<Item = (Sha256Digest, &EntryRecord)> {
        self.manifest
            .entries
            .iter()
            .filter_map(|e| crate::paths::blob_digest(&e.path).map(|d| (d, e)))
    }

    /// True for a delta bundle ([`crate::delta`]).
    pub fn is_delta(&self) -> bool {
        self.manifest.delta.is_some()
    }
}

/// Cheap sanity checks of the entry table: valid unique paths, data inside the payload,
/// sorted and non-overlapping, and none overlapping bundle.json. A bundle.json that lies
/// in a way these cannot see is caught by comparing with the tar headers in `verify`.
/// Returns the index of entries by path.
pub fn check_layout(
    entries: &[EntryRecord],
    manifest_offset: u64,
    payload_len: u64,
) -> Result<HashMap<String, usize>> {
    let mut seen = HashMap::with_capacity(entries.len());
    let mut prev_end = 0u64;
    for (i, e) in entries.iter().enumerate() {
        check_entry_path(&e.path).map_err(|r| BundleError::entry(&e.path, r))?;
        if seen.insert(e.path.clone(), i).is_some() || e.path == crate::MANIFEST_PATH {
            return Err(BundleError::entry(&e.path, "listed twice in bundle.json"));
        }
        let end = e.offset.checked_add(e.size).filter(|&x| x <= payload_len).ok_or_else(|| {
            BundleError::entry(
                &e.path,
                format!("bundle.json says offset {} size {}, which lies outside the payload ({payload_len} bytes)", e.offset, e.size),
            )
        })?;
        if e.offset < prev_end + 512 {
            return Err(BundleError::entry(
                &e.path,
                format!(
                    "bundle.json says offset {}, which overlaps the previous entry or its header",
                    e.offset
                ),
            ));
        }
        if end > manifest_offset {
            return Err(BundleError::entry(
                &e.path,
                "bundle.json places it over or after bundle.json itself",
            ));
        }
        prev_end = end;
    }
    Ok(seen)
}
