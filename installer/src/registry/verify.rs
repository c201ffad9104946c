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
use std::io;
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
                tracing::error!(digest = %digest, location = %loc.describe(), error = %e, "cannot read blob");
                return Err(ApiError::new(
                    500,
                    ErrorCode::BlobUnknown,
                    format!(
                        "blob {} cannot be read ({}) on the registry host: {e}",
                        digest,
                        loc.describe()
                    ),
                ));
            }
        };
        let verdict = if actual == *digest {
            tracing::debug!(digest = %digest, bytes = loc.len, elapsed = ?started.elapsed(), "blob verified");
            Ok(())
        } else {
            let msg = format!(
                "blob {} is corrupt on the registry host: its {} bytes {} hash to {}; \
                 refusing to serve it (re-stage the bundle)",
                digest,
                loc.len,
                loc.describe(),
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

/// sha256 of `loc`'s bytes; a file shorter than its range is an error.
pub(crate) fn hash_range(loc: &BlobLocation) -> io::Result<Sha256Digest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 128 << 10];
    BlobLocation::read_pieces(&loc.pieces, &mut buf, &mut |b| hasher.update(b))?;
    Ok(Sha256Digest(hasher.finalize().into()))
}
