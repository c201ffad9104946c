//! Errors of the bundle format. Every variant names the entry (or footer field) at fault,
//! because an operator on an air-gapped site must know *what* is broken, not just *that*.
//! Digests are boxed so the error stays small (it travels inside the installer's engine
//! errors, which clippy keeps under 128 bytes).

use crate::digest::Sha256Digest;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no ferry footer at the end of the file ({reason}); the file is truncated or is not a ferry bundle — copy it again and compare its size with the original")]
    NoFooter { path: PathBuf, reason: String },
    #[error("{path}: footer is damaged: {reason}; copy the bundle again")]
    BadFooter { path: PathBuf, reason: String },
    #[error("{path}: unsupported bundle format version {found} (this installer reads version {supported}); use the installer the bundle was built with")]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("bundle.json: {reason}")]
    BadManifest { reason: String },
    #[error("entry {entry}: {reason}")]
    BadEntry { entry: String, reason: String },
    #[error("entry {entry}: sha256 mismatch (expected {expected}, found {found}); the bundle is damaged — copy it again")]
    EntryChecksum {
        entry: String,
        expected: Box<Sha256Digest>,
        found: Box<Sha256Digest>,
    },
    #[error("payload: sha256 mismatch (footer says {expected}, payload hashes to {found}); the bundle is damaged — copy it again")]
    PayloadChecksum {
        expected: Box<Sha256Digest>,
        found: Box<Sha256Digest>,
    },
    #[error("installer stub: sha256 mismatch (bundle.json says {expected}, found {found}); the bundle is damaged — copy it again")]
    StubChecksum {
        expected: Box<Sha256Digest>,
        found: Box<Sha256Digest>,
    },
    /// A part of a split bundle is missing, cut short or damaged.
    #[error("{part} {problem}")]
    Part { part: String, problem: String },
    /// The signature is missing where bundle.json names a signer, or does not verify.
    #[error("{0}")]
    Signature(String),
    #[error("{0}")]
    Other(String),
}

impl BundleError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BundleError::Io {
            path: path.into(),
            source,
        }
    }
    /// Part `index` (1-based) of `count` at `path`; `problem` ends with what to do.
    pub fn part(
        index: usize,
        count: usize,
        path: &std::path::Path,
        problem: impl Into<String>,
    ) -> Self {
        let of = if count > 0 {
            format!(" of {count}")
        } else {
            String::new()
        };
        BundleError::Part {
            part: format!("part {index}{of} ({})", path.display()),
            problem: problem.into(),
        }
    }
    pub fn entry(entry: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        BundleError::BadEntry {
            entry: entry.into(),
            reason: reason.to_string(),
        }
    }
}

pub type Result<T, E = BundleError> = std::result::Result<T, E>;
