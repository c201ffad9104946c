//! Where a plan's bytes come from: the one thing that differs between an install and a
//! join.
//!
//! A [`Content::Entry`](super::plan::Content::Entry) names a bundle entry with its size
//! and sha256. On the first node the entry is read from the staged bundle
//! ([`StagedBundle`]); on a joined node it is fetched from the master over the pinned TLS
//! channel (`crate::join::MasterSource`). Either way the bytes pass through a
//! [`VerifyingReader`], so a file is never put in place unless its bytes are exactly
//! what bundle.json says. Secrets (keys, the join token) come from a [`SecretSource`]:
//! made on the first node, handed over by the token on a joined one.

use super::plan::{EntryRef, Secret};
use ferry_bundle::{Bundle, Sha256Digest};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("bundle entry {entry}: {reason}")]
    Entry { entry: String, reason: String },
    #[error(transparent)]
    Bundle(#[from] ferry_bundle::BundleError),
    #[error("{0}")]
    Other(String),
}

/// Opens bundle entries.
pub trait EntrySource {
    /// The entry's stored bytes, verified against `e.size` and `e.sha256` as they stream:
    /// the reader fails at the end if they differ.
    fn open(&self, e: &EntryRef) -> Result<Box<dyn Read + '_>, SourceError>;
    /// Where entries come from, for messages ("the staged bundle /var/lib/…").
    fn describe(&self) -> String;
}

/// Secrets a plan's files need.
pub trait SecretSource {
    fn secret(&self, s: Secret) -> Result<Vec<u8>, SourceError>;
}

/// Entries from a bundle file on this host (the staged copy), opened on first use: the
/// staging phase that makes it runs before anything reads from it.
pub struct StagedBundle {
    path: PathBuf,
    bundle: OnceLock<Bundle>,
}

impl StagedBundle {
    pub fn new(path: PathBuf) -> StagedBundle {
        StagedBundle {
            path,
            bundle: OnceLock::new(),
        }
    }
    fn bundle(&self) -> Result<&Bundle, SourceError> {
        if let Some(b) = self.bundle.get() {
            return Ok(b);
        }
        let mut b = Bundle::open(&self.path)?;
        b.attach_base_beside()?;
        Ok(self.bundle.get_or_init(|| b))
    }
}

impl EntrySource for StagedBundle {
    fn open(&self, e: &EntryRef) -> Result<Box<dyn Read + '_>, SourceError> {
        let b = self.bundle()?;
        let at = b.locate(&e.entry).ok_or_else(|| SourceError::Entry {
            entry: e.entry.clone(),
            reason: format!("not in {}", self.path.display()),
        })?;
        Ok(Box::new(VerifyingReader::new(
            at.open(),
            e.entry.clone(),
            e.size,
            e.sha256,
        )))
    }
    fn describe(&self) -> String {
        format!("the staged bundle {}", self.path.display())
    }
}

/// Passes bytes through while hashing them; at the end, fails unless exactly `size`
/// bytes hashing to `sha256` went by.
pub struct VerifyingReader<R> {
    inner: R,
    entry: String,
    size: u64,
    sha256: Sha256Digest,
    hasher: Sha256,
    seen: u64,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, entry: String, size: u64, sha256: Sha256Digest) -> Self {
        VerifyingReader {
            inner,
            entry,
            size,
            sha256,
            hasher: Sha256::new(),
            seen: 0,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.size.saturating_sub(self.seen);
        // Read one byte past the expected end, to notice a source that is too long.
        let want = (buf.len() as u64).min(left + 1) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        self.seen += n as u64;
        if self.seen > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: more than the {} bytes bundle.json records",
                    self.entry, self.size
                ),
            ));
        }
        self.hasher.update(&buf[..n]);
        if n == 0 {
            let got = Sha256Digest(self.hasher.clone().finalize().into());
            if self.seen != self.size || got != self.sha256 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: {} bytes with {got}, bundle.json says {} bytes with {}; refusing it",
                        self.entry, self.seen, self.size, self.sha256
                    ),
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(data: &[u8], size: u64, sha: Sha256Digest) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        VerifyingReader::new(data, "e".into(), size, sha).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn passes_exact_bytes_and_refuses_others() {
        let d = b"hello world";
        let sha = Sha256Digest::of(d);
        assert_eq!(verified(d, 11, sha).unwrap(), d);
        assert!(verified(b"hello worle", 11, sha).is_err());
        assert!(verified(b"hello worl", 11, sha).is_err());
        assert!(verified(b"hello world!", 11, sha).is_err());
    }
}
