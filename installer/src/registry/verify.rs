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
//!   through its copy loop while a second thread hashes each chunk written, and holds
//!   back the last chunk until [`Deferred::conclude`] has the digest. A match sends that chunk and
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
//! - **In the background** ([`verify_in_background`], started by the `registry` command):
//!   one thread hashes every blob not yet verified, in file order, at idle CPU and I/O
//!   priority (`SCHED_IDLE`, `IOPRIO_CLASS_IDLE`), so it only takes what clients leave.
//!   Why: on a node that has just installed, the first pulls start at once and hashing
//!   while sending cost them CPU they needed (a first pull was 1.1× a second one with
//!   containerd, `docs/benchmarks.md`); done on idle time ahead of the requests, the
//!   first pull finds most blobs verified, and rot is found before anyone asks for the
//!   blob. It records verdicts like a streaming GET does (whichever concludes first) and
//!   never takes the per-blob mutex, so no request waits for a thread that may get
//!   little CPU.
//!
//! Once the verdict is known, every request is answered from it and a verified blob goes
//! out the fastest way the transport has.

use super::errors::{ApiError, ErrorCode};
use super::store::{BlobLocation, ImageStore};
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

    /// Hashes the blob unless its verdict is known, without taking the mutex that
    /// [`Verdict::check`] callers share (see the module docs); an unreadable blob is left
    /// to the requests (an I/O error may heal).
    fn check_quietly(&self, digest: &Sha256Digest, loc: &BlobLocation) {
        if self.known().is_some() {
            return;
        }
        self.count_hash();
        match hash_range(loc) {
            Ok(actual) => {
                let _ = self.record(digest, loc, &actual);
            }
            Err(e) => tracing::warn!(digest = %digest, location = %loc.describe(), error = %e,
                "cannot read blob to verify it in the background; its first request will try again"),
        }
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

/// Verifies every blob of `store` not yet verified on a thread of its own at idle
/// priority (see the module docs), in the order their bytes lie in their files; the
/// thread ends when all are done.
pub fn verify_in_background(store: Arc<ImageStore>) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("blob-verify".into())
        .spawn(move || {
            lower_own_priority();
            let mut order: Vec<_> = store.blobs.iter().collect();
            order.sort_by_key(|(_, b)| b.location.pieces.first().map(|p| (&p.path, p.offset)));
            let started = std::time::Instant::now();
            let mut bytes = 0;
            for (digest, blob) in order {
                blob.verdict.check_quietly(digest, &blob.location);
                bytes += blob.location.len;
            }
            tracing::info!(
                blobs = store.blobs.len(),
                bytes,
                seconds = started.elapsed().as_secs_f64(),
                "every blob verified (in the background)"
            );
        })
}

/// Makes the calling thread run only on CPU time and disk time nothing else wants.
/// Best effort: where the kernel refuses, the thread runs at normal priority.
fn lower_own_priority() {
    use nix::libc;
    // SAFETY: plain data, all zeroes is priority 0 (what SCHED_IDLE takes); musl's
    // struct has fields glibc's lacks, so it is not spelled out.
    let param: libc::sched_param = unsafe { std::mem::zeroed() };
    // SAFETY: system calls on the calling thread (pid 0) with a valid parameter block;
    // nothing else is touched.
    let (sched, io) = unsafe {
        (
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param),
            // IOPRIO_WHO_PROCESS (1) of the calling thread (0): IOPRIO_CLASS_IDLE (3) << 13.
            libc::syscall(libc::SYS_ioprio_set, 1, 0, 3 << 13),
        )
    };
    if sched != 0 || io != 0 {
        tracing::debug!(
            error = %io::Error::last_os_error(),
            "background verification could not lower its priority"
        );
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
