//! Transfer counters, so tests can prove a second pull fetched nothing and `ferry build` can
//! report what the cache saved.

use std::sync::atomic::{AtomicU64, Ordering};

/// What one pull (or, summed with [`PullStats::add`], a whole build) transferred.
/// Manifests and indexes count as blobs: they are stored in the cache like any other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PullStats {
    /// Blobs downloaded from the registry.
    pub blobs_fetched: u64,
    /// Blobs found in the cache and not downloaded.
    pub blobs_reused: u64,
    /// Bytes of blob content downloaded (headers and retries of failed transfers excluded).
    pub bytes_fetched: u64,
}

impl PullStats {
    /// Adds `other`, saturating: these are counters for people, summed over a whole
    /// build, and must never be the reason a build panics.
    pub fn add(&mut self, other: &PullStats) {
        self.blobs_fetched = self.blobs_fetched.saturating_add(other.blobs_fetched);
        self.blobs_reused = self.blobs_reused.saturating_add(other.blobs_reused);
        self.bytes_fetched = self.bytes_fetched.saturating_add(other.bytes_fetched);
    }
}

/// The thread-safe form updated by the download workers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    fetched: AtomicU64,
    reused: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    pub fn fetched(&self, bytes: u64) {
        self.fetched.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn reused(&self) {
        self.reused.fetch_add(1, Ordering::Relaxed);
    }
    pub fn snapshot(&self) -> PullStats {
        PullStats {
            blobs_fetched: self.fetched.load(Ordering::Relaxed),
            blobs_reused: self.reused.load(Ordering::Relaxed),
            bytes_fetched: self.bytes.load(Ordering::Relaxed),
        }
    }
}
