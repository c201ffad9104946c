//! Moving bytes from the registry into the cache, verified on the way.
//!
//! Blobs stream through a [`BlobWriter`] (memory stays flat whatever the layer size) and
//! only a matching sha256 and size give them their name in the cache. A body longer than its
//! descriptor is cut off at the first extra byte, so a hostile registry cannot fill the
//! disk. Manifests are read into memory (capped at 4 MiB) because they must be parsed, and
//! are checked against the digest they were asked by, or against `Docker-Content-Digest`
//! when asked by tag. Anything already in the cache is not fetched again.

use super::cache::{CacheError, ContentCache};
use super::client::{header, Client, Method};
use super::error::PullError;
use super::stats::Counters;
use ferry_bundle::oci::{Descriptor, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES};
use ferry_bundle::Sha256Digest;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use ureq::http::Response;
use ureq::Body;

/// A manifest's bytes plus what the registry said about them.
pub struct FetchedManifest {
    pub digest: Sha256Digest,
    pub bytes: Vec<u8>,
    /// `Content-Type`, when the manifest came from the network.
    pub content_type: Option<String>,
}

/// A blob to download, with the name messages use for it (`layer sha256:…`).
pub struct Wanted {
    pub desc: Descriptor,
    pub what: String,
}

pub struct Fetcher<'a> {
    pub client: &'a Client,
    pub cache: &'a ContentCache,
    pub counters: Counters,
}

impl<'a> Fetcher<'a> {
    pub fn new(client: &'a Client, cache: &'a ContentCache) -> Self {
        Fetcher {
            client,
            cache,
            counters: Counters::default(),
        }
    }

    /// The manifest a tag points to now. Asks with HEAD first: if the registry names the
    /// digest and the cache has it, the manifest is not downloaded again (tags move, so the
    /// question must be asked, but the answer is usually "same as last time").
    pub fn manifest_by_tag(&self, tag: &str) -> Result<FetchedManifest, PullError> {
        let url = self.client.endpoint.manifest_url(tag);
        let what = format!("manifest {tag}");
        let head = self
            .client
            .send(Method::Head, &url, Some(MANIFEST_ACCEPT), &what)?;
        let head_digest =
            header(&head, "docker-content-digest").and_then(|d| Sha256Digest::parse(&d).ok());
        let head_len = header(&head, "content-length").and_then(|l| l.parse::<u64>().ok());
        if let (Some(d), Some(len)) = (head_digest, head_len) {
            if self.cache.contains(&d, len) {
                self.counters.reused();
                return Ok(FetchedManifest {
                    digest: d,
                    bytes: self.cache.read(&d).map_err(|e| self.cache_err(e))?,
                    content_type: header(&head, "content-type"),
                });
            }
        }
        let mut resp = self
            .client
            .send(Method::Get, &url, Some(MANIFEST_ACCEPT), &what)?;
        let content_type = header(&resp, "content-type");
        let claimed = header(&resp, "docker-content-digest");
        let bytes = self.read_manifest(&mut resp, &what)?;
        let digest = Sha256Digest::of(&bytes);
        if let Some(claimed) = claimed {
            if claimed != digest.to_string() {
                return Err(self.mismatch(&what, &claimed, &digest.to_string()));
            }
        }
        self.store(&bytes, &digest, None, &what)?;
        Ok(FetchedManifest {
            digest,
            bytes,
            content_type,
        })
    }

    /// A manifest by digest (and size, when a descriptor gives one): from the cache if
    /// present, else downloaded and checked against that digest.
    pub fn manifest_by_digest(
        &self,
        digest: &Sha256Digest,
        size: Option<u64>,
        what: &str,
    ) -> Result<FetchedManifest, PullError> {
        let cached = match size {
            Some(s) => self.cache.contains(digest, s),
            None => self.cache.path(digest).is_some(),
        };
        if cached {
            self.counters.reused();
            return Ok(FetchedManifest {
                digest: *digest,
                bytes: self.cache.read(digest).map_err(|e| self.cache_err(e))?,
                content_type: None,
            });
        }
        let url = self.client.endpoint.manifest_url(&digest.to_string());
        let mut resp = self
            .client
            .send(Method::Get, &url, Some(MANIFEST_ACCEPT), what)?;
        let content_type = header(&resp, "content-type");
        let bytes = self.read_manifest(&mut resp, what)?;
        self.store(&bytes, digest, size, what)?;
        Ok(FetchedManifest {
            digest: *digest,
            bytes,
            content_type,
        })
    }

    fn read_manifest(&self, resp: &mut Response<Body>, what: &str) -> Result<Vec<u8>, PullError> {
        let mut bytes = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.transfer(what, 1, e.to_string()))?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(PullError::Unsupported {
                reference: self.client.reference().to_string(),
                registry: self.client.registry(),
                what: what.to_string(),
                detail: format!("it is larger than {MAX_MANIFEST_BYTES} bytes"),
            });
        }
        self.counters.fetched(bytes.len() as u64);
        Ok(bytes)
    }

    fn store(
        &self,
        bytes: &[u8],
        digest: &Sha256Digest,
        size: Option<u64>,
        what: &str,
    ) -> Result<(), PullError> {
        self.cache
            .insert(bytes, digest, size)
            .map(|_| ())
            .map_err(|e| self.commit_err(e, what))
    }

    /// Downloads every wanted blob not already cached, `parallel` at a time. The first
    /// failure stops workers from starting new downloads and is returned.
    pub fn blobs(&self, wanted: &[Wanted], parallel: usize) -> Result<(), PullError> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let first_err: Mutex<Option<PullError>> = Mutex::new(None);
        let workers = parallel.clamp(1, wanted.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(w) = wanted.get(i) else { break };
                        if let Err(e) = self.blob(&w.desc, &w.what) {
                            failed.store(true, Ordering::Relaxed);
                            first_err.lock().expect("error slot").get_or_insert(e);
                        }
                    }
                });
            }
        });
        match first_err.into_inner().expect("error slot") {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// One blob into the cache. A transfer that breaks off mid-stream is started again (up
    /// to the configured attempts); a wrong digest or size is final, since fetching the
    /// same corrupt copy again would not help.
    pub fn blob(&self, desc: &Descriptor, what: &str) -> Result<(), PullError> {
        if self.cache.contains(&desc.digest, desc.size) {
            self.counters.reused();
            return Ok(());
        }
        let url = self.client.endpoint.blob_url(&desc.digest.to_string());
        let attempts = self.client.attempts();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let resp = self.client.send(Method::Get, &url, None, what)?;
            match self.stream_blob(resp, desc, what)? {
                Ok(n) => {
                    self.counters.fetched(n);
                    return Ok(());
                }
                Err(e) if attempt < attempts => {
                    let delay = self.client.backoff(attempt);
                    tracing::debug!("{what}: {e}; retrying in {delay:?}");
                    std::thread::sleep(delay);
                }
                Err(e) => return Err(self.transfer(what, attempt, e)),
            }
        }
    }

    /// Streams one response into the cache. The outer `Result` is final; the inner `Err`
    /// is a broken transfer worth retrying.
    fn stream_blob(
        &self,
        mut resp: Response<Body>,
        desc: &Descriptor,
        what: &str,
    ) -> Result<Result<u64, String>, PullError> {
        if let Some(len) = header(&resp, "content-length").and_then(|l| l.parse::<u64>().ok()) {
            if len != desc.size {
                return Err(self.size_mismatch(what, desc.size, len.to_string()));
            }
        }
        let mut w = self
            .cache
            .writer(desc.digest, Some(desc.size))
            .map_err(|e| self.cache_err(e))?;
        let mut r = resp.body_mut().as_reader();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Ok(Err(e.to_string())),
            };
            if w.written() + n as u64 > desc.size {
                return Err(self.size_mismatch(
                    what,
                    desc.size,
                    format!("more than {}", desc.size),
                ));
            }
            w.write_all(&buf[..n]).map_err(|e| {
                self.cache_err(CacheError::Io {
                    path: self.cache.blob_dir(),
                    source: e,
                })
            })?;
        }
        if w.written() < desc.size {
            return Ok(Err(format!(
                "connection ended after {} of {} bytes",
                w.written(),
                desc.size
            )));
        }
        w.commit().map_err(|e| self.commit_err(e, what))?;
        Ok(Ok(desc.size))
    }

    fn commit_err(&self, e: CacheError, what: &str) -> PullError {
        match e {
            CacheError::DigestMismatch { expected, actual } => {
                self.mismatch(what, &expected.to_string(), &actual.to_string())
            }
            CacheError::SizeMismatch { expected, actual } => {
                self.size_mismatch(what, expected, actual.to_string())
            }
            other => self.cache_err(other),
        }
    }

    fn mismatch(&self, what: &str, expected: &str, actual: &str) -> PullError {
        PullError::DigestMismatch {
            reference: self.client.reference().to_string(),
            registry: self.client.registry(),
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }
    }

    fn size_mismatch(&self, what: &str, expected: u64, actual: String) -> PullError {
        PullError::SizeMismatch {
            reference: self.client.reference().to_string(),
            registry: self.client.registry(),
            what: what.to_string(),
            expected,
            actual,
        }
    }

    fn transfer(&self, what: &str, attempts: u32, detail: String) -> PullError {
        PullError::Transfer {
            reference: self.client.reference().to_string(),
            registry: self.client.registry(),
            what: what.to_string(),
            attempts,
            detail,
        }
    }

    fn cache_err(&self, source: CacheError) -> PullError {
        PullError::Cache {
            reference: self.client.reference().to_string(),
            source,
        }
    }
}
