//! Checking a blob's bytes against its digest before the first byte of it is served.
//!
//! The bundle was verified when it was staged, but the disk under it may rot and a
//! staged file may be edited. A blob is hashed on its first request; the verdict is
//! memoised so that later requests cost nothing. The per-blob mutex makes concurrent
//! first requests wait for the one hash in progress instead of all hashing the same
//! gigabytes. A mismatch is remembered (it will not heal); an I/O error is not (it may).

use super::errors::{ApiError, ErrorCode};
use super::store::BlobLocation;
use ferry_bundle::Sha256Digest;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, PoisonError};

/// The memoised verdict of one blob.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    state: Mutex<Option<Result<(), String>>>,
    /// How many times the blob was hashed (tests check it is once).
    #[cfg(test)]
    pub(crate) hashes: std::sync::atomic::AtomicUsize,
}

impl Verdict {
    /// Hashes the blob unless that was already done; `Ok` means its bytes are its digest.
    pub(crate) fn check(&self, digest: &Sha256Digest, loc: &BlobLocation) -> Result<(), ApiError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(verdict) = &*state {
            return verdict.clone().map_err(corrupt);
        }
        let started = std::time::Instant::now();
        #[cfg(test)]
        self.hashes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let actual = match hash_range(loc) {
            Ok(actual) => actual,
            Err(e) => {
                tracing::error!(digest = %digest, path = %loc.path.display(), error = %e, "cannot read blob");
                return Err(ApiError::new(
                    500,
                    ErrorCode::BlobUnknown,
                    format!(
                        "blob {} cannot be read from {} on the registry host: {e}",
                        digest,
                        loc.path.display()
                    ),
                ));
            }
        };
        let verdict = if actual == *digest {
            tracing::debug!(digest = %digest, bytes = loc.len, elapsed = ?started.elapsed(), "blob verified");
            Ok(())
        } else {
            let msg = format!(
                "blob {} is corrupt on the registry host: its {} bytes at offset {} of {} hash to {}; \
                 refusing to serve it (re-stage the bundle)",
                digest,
                loc.len,
                loc.offset,
                loc.path.display(),
                actual
            );
            tracing::error!("{msg}");
            Err(msg)
        };
        *state = Some(verdict.clone());
        verdict.map_err(corrupt)
    }
}

fn corrupt(message: String) -> ApiError {
    ApiError::new(500, ErrorCode::BlobUnknown, message)
}

/// sha256 of `loc`'s byte range; a file shorter than the range is an error.
pub(crate) fn hash_range(loc: &BlobLocation) -> io::Result<Sha256Digest> {
    let file = File::open(&loc.path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 128 << 10];
    let mut pos = loc.offset;
    let end = loc
        .offset
        .checked_add(loc.len)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "blob range overflows a u64"))?;
    while pos < end {
        let want = buf.len().min((end - pos) as usize);
        let n = match file.read_at(&mut buf[..want], pos) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file ends at byte {pos}, before the blob's end at byte {end}"),
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        pos += n as u64;
    }
    Ok(Sha256Digest(hasher.finalize().into()))
}
