//! Checking a blob's bytes against its digest: while its first full GET is sent, or,
//! for anything else, before the first byte of it is served.
//!
//! The bundle was verified when it was staged, but the disk under it may rot and a
//! staged file may be edited. So every blob is hashed once, and the verdict is memoised
//! so that later requests cost nothing. A mismatch is remembered (it will not heal); an
//! I/O error is not (it may).
//!
//! Where the hashing happens:
//!
//! - **A full GET of a blob not yet verified** (what every first pull sends) is hashed
//!   *as it is sent*: the body carries a [`Deferred`] check, `super::body` sends it
//!   through its copy loop, hashing each chunk before writing it, and holds back the last
//!   chunk until [`Deferred::conclude`] has the digest. A match sends that chunk and
//!   memoises "verified"; a mismatch memoises "corrupt" and cuts the connection before
//!   the last chunk, so no client ever receives a whole corrupt blob (it sees a body
//!   shorter than its `Content-Length`; the next request gets a 500). Hashing first and
//!   sending afterwards, as this module did before, made a client wait one sha256 pass
//!   (about 0.55 s per GiB) for the first byte, and cost a first pull 1.16× the time of
//!   Distribution's (`docs/benchmarks.md` §3). Concurrent first GETs do not wait for each
//!   other: each hashes its own stream and whichever concludes first records the verdict.
//! - **Anything else on a blob not yet verified** (HEAD, a range request) calls
//!   [`Verdict::check`], which hashes the whole blob before answering. Concurrent callers
//!   of `check` wait for the one hash in progress (a per-blob mutex) instead of all
//!   hashing the same gigabytes; a streaming GET never takes that mutex.
//!
//! Once the verdict is known, every request is answered from it and a verified blob goes
//! out the fastest way the transport has.

use super::errors::{ApiError, ErrorCode};
use super::store::BlobLocation;
use ferry_bundle::Sha256Digest;
use sha2::{Digest as _, Sha256};
use std::io;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The memoised verdict of one blob: `Err` holds the message of a digest mismatch.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    known: OnceLock<Result<(), String>>,
    /// Held by [`Verdict::check`] while it hashes, so that its concurrent callers hash
    /// once between them.
    hashing: Mutex<()>,
    /// How many times the blob was hashed (tests check it is once).
    #[cfg(test)]
    pub(crate) hashes: std::sync::atomic::AtomicUsize,
}

impl Verdict {
    /// The verdict, if some request has reached one.
    pub(crate) fn known(&self) -> Option<Result<(), ApiError>> {
        self.known.get().map(|v| v.clone().map_err(corrupt))
    }

    /// Hashes the blob unless that was already done; `Ok` means its bytes are its digest.
    pub(crate) fn check(&self, digest: &Sha256Digest, loc: &BlobLocation) -> Result<(), ApiError> {
        if let Some(v) = self.known() {
            return v;
        }
        let _hashing = self.hashing.lock().unwrap_or_else(PoisonError::into_inner);
        // Another caller (or a streaming GET) may have concluded while this one waited.
        if let Some(v) = self.known() {
            return v;
        }
        self.count_hash();
        let actual = hash_range(loc).map_err(|e| {
            tracing::error!(digest = %digest, location = %loc.describe(), error = %e, "cannot read blob");
            ApiError::new(
                500,
                ErrorCode::BlobUnknown,
                format!(
                    "blob {} cannot be read ({}) on the registry host: {e}",
                    digest,
                    loc.describe()
                ),
            )
        })?;
        self.record(digest, loc, &actual).map_err(corrupt)
    }

    /// Compares a finished hash with the digest, logs a mismatch and memoises the
    /// outcome (the first verdict recorded stays).
    fn record(
        &self,
        digest: &Sha256Digest,
        loc: &BlobLocation,
        actual: &Sha256Digest,
    ) -> Result<(), String> {
        let verdict = if actual == digest {
            tracing::debug!(digest = %digest, bytes = loc.len, "blob verified");
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
        let _ = self.known.set(verdict.clone());
        verdict
    }

    fn count_hash(&self) {
        #[cfg(test)]
        self.hashes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The check of a blob that is verified while its full GET is sent: the sender hashes
/// every byte and asks [`Deferred::conclude`] before it writes the last chunk.
#[derive(Debug)]
pub struct Deferred {
    verdict: Arc<Verdict>,
    digest: Sha256Digest,
    location: BlobLocation,
}

impl Deferred {
    pub(crate) fn new(verdict: Arc<Verdict>, digest: Sha256Digest, location: BlobLocation) -> Self {
        Deferred {
            verdict,
            digest,
            location,
        }
    }

    /// A hasher for the blob's bytes (counted as one hash of the blob).
    pub(crate) fn hasher(&self) -> Sha256 {
        self.verdict.count_hash();
        Sha256::new()
    }

    /// Records the verdict for the blob's whole bytes, hashed by `hasher`; `Err` (the
    /// mismatch, already logged) means the last chunk must not be sent.
    pub(crate) fn conclude(&self, hasher: &mut Sha256) -> Result<(), String> {
        let actual = Sha256Digest(hasher.finalize_reset().into());
        self.verdict.record(&self.digest, &self.location, &actual)
    }
}

fn corrupt(message: String) -> ApiError {
    ApiError::new(500, ErrorCode::BlobUnknown, message)
}

/// sha256 of `loc`'s bytes; a file shorter than its range is an error.
pub(crate) fn hash_range(loc: &BlobLocation) -> io::Result<Sha256Digest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 128 << 10];
    BlobLocation::read_pieces(&loc.pieces, &mut buf, &mut |b| {
        hasher.update(b);
        Ok(())
    })?;
    Ok(Sha256Digest(hasher.finalize().into()))
}
