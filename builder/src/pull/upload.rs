//! Uploading to a registry, per the OCI distribution spec ("Pushing blobs", "Pushing
//! manifests"): the other direction of the same [`Client`], with the same credentials,
//! token dance, retries and error messages as a pull.
//!
//! A blob is uploaded at most once per registry: `HEAD` first (present: nothing to do),
//! then a cross-repository mount from each repository the caller knows holds it (`POST
//! …/uploads/?mount=<digest>&from=<repo>`: `201` means mounted, `202` means the registry
//! would not and has opened an ordinary upload instead), and only then the bytes. Blobs up
//! to [`UploadOptions::chunk_size`] go in one `PUT` (monolithic); larger ones in `PATCH`
//! chunks with `Content-Range`, so a connection lost in the middle of a 10 GB layer costs
//! one chunk: the upload's status (`GET <location>` → `Range: 0-<last>`) says where to go
//! on. Bodies are streamed from their source (a range of the bundle file), never held in
//! memory, and the registry checks the digest given at the final `PUT`.
//!
//! Manifests are `PUT` after everything they reference (the caller's order) and skipped
//! when a `HEAD` by digest finds them; the digest the registry answers is compared with
//! the bytes sent.

use super::client::{error_detail, header, Client, Method, OpenBody, ReqBody, Request};
use super::error::PullError;
use ferry_bundle::oci::Descriptor;
use ferry_bundle::Sha256Digest;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use ureq::http::Response;

/// How uploads are made.
#[derive(Debug, Clone, Copy)]
pub struct UploadOptions {
    /// Blobs up to this size go in one `PUT`; larger ones in `PATCH` chunks of this size.
    pub chunk_size: u64,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            chunk_size: 64 << 20,
        }
    }
}

/// What uploads did, for reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UploadStats {
    /// Blobs whose bytes were sent.
    pub blobs_uploaded: u64,
    /// Blobs the repository already had (`HEAD`).
    pub blobs_present: u64,
    /// Blobs mounted from another repository of the same registry.
    pub blobs_mounted: u64,
    /// Bytes of blob content sent (a resent chunk counts again).
    pub bytes_uploaded: u64,
    pub manifests_pushed: u64,
    /// Manifests the repository already had.
    pub manifests_present: u64,
}

#[derive(Default)]
struct Counters {
    uploaded: AtomicU64,
    present: AtomicU64,
    mounted: AtomicU64,
    bytes: AtomicU64,
    manifests: AtomicU64,
    manifests_present: AtomicU64,
}

/// How a blob got into the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Present,
    /// Mounted from this repository.
    Mounted(String),
    Uploaded,
}

/// Opens a blob at an offset; the reader yields the blob's bytes from there to its end.
pub type OpenAt<'a> = dyn Fn(u64) -> std::io::Result<Box<dyn Read + 'a>> + Sync + 'a;

/// Uploads into the repository of one [`Client`] (made with push access).
pub struct Uploader<'a> {
    pub client: &'a Client,
    opts: UploadOptions,
    counters: Counters,
}

impl<'a> Uploader<'a> {
    pub fn new(client: &'a Client, opts: UploadOptions) -> Self {
        Uploader {
            client,
            opts,
            counters: Counters::default(),
        }
    }

    pub fn stats(&self) -> UploadStats {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        UploadStats {
            blobs_uploaded: l(&c.uploaded),
            blobs_present: l(&c.present),
            blobs_mounted: l(&c.mounted),
            bytes_uploaded: l(&c.bytes),
            manifests_pushed: l(&c.manifests),
            manifests_present: l(&c.manifests_present),
        }
    }

    fn repository(&self) -> &str {
        &self.client.endpoint.repository
    }

    /// Whether the repository has the blob, with exactly its size.
    pub fn has_blob(&self, d: &Descriptor) -> Result<bool, PullError> {
        let url = self.client.endpoint.blob_url(&d.digest.to_string());
        let what = format!("blob {}", d.digest);
        let resp = self
            .client
            .exchange(&Request::new(Method::Head, &url), &what)?;
        if resp.status().as_u16() == 404 {
            return Ok(false);
        }
        let resp = self.client.check(resp, &what)?;
        Ok(header(&resp, "content-length")
            .and_then(|l| l.parse::<u64>().ok())
            .is_none_or(|l| l == d.size))
    }

    /// Puts blob `d` into the repository unless it is there; `from` are repositories of
    /// this registry that may hold it (mount sources), `open` its bytes.
    pub fn blob(
        &self,
        d: &Descriptor,
        from: &[String],
        open: &OpenAt,
    ) -> Result<Outcome, PullError> {
        if self.has_blob(d)? {
            self.counters.present.fetch_add(1, Ordering::Relaxed);
            return Ok(Outcome::Present);
        }
        let what = format!("blob {}", d.digest);
        let mut location = None;
        for repo in from.iter().filter(|r| r.as_str() != self.repository()) {
            let url = format!(
                "{}?mount={}&from={}",
                self.client.endpoint.upload_url(),
                d.digest,
                repo
            );
            let resp = self
                .client
                .exchange(&Request::new(Method::Post, &url), &what)?;
            match resp.status().as_u16() {
                201 => {
                    self.counters.mounted.fetch_add(1, Ordering::Relaxed);
                    return Ok(Outcome::Mounted(repo.clone()));
                }
                202 => {
                    location = Some(self.location(&resp, &what)?);
                    break;
                }
                // Not mountable from there (no access, unknown blob): upload instead.
                _ => tracing::debug!("{what}: no mount from {repo} ({})", resp.status()),
            }
        }
        let location = match location {
            Some(l) => l,
            None => self.start_upload(&what)?,
        };
        if d.size <= self.opts.chunk_size {
            let open_all = || open(0);
            let body = ReqBody::Stream {
                len: d.size,
                open: &open_all as &OpenBody,
            };
            let url = with_digest(&location, &d.digest);
            let resp = self.client.exchange(
                &Request::new(Method::Put, &url)
                    .header("Content-Type", "application/octet-stream")
                    .body(body),
                &what,
            )?;
            self.expect(resp, 201, &what)?;
            self.counters.bytes.fetch_add(d.size, Ordering::Relaxed);
        } else {
            let location = self.chunks(d, location, open, &what)?;
            let url = with_digest(&location, &d.digest);
            let resp = self
                .client
                .exchange(&Request::new(Method::Put, &url), &what)?;
            self.expect(resp, 201, &what)?;
        }
        self.counters.uploaded.fetch_add(1, Ordering::Relaxed);
        Ok(Outcome::Uploaded)
    }

    /// `POST …/blobs/uploads/`: a new upload session's location.
    fn start_upload(&self, what: &str) -> Result<String, PullError> {
        let url = self.client.endpoint.upload_url();
        let resp = self
            .client
            .exchange(&Request::new(Method::Post, &url), what)?;
        let resp = self.expect(resp, 202, what)?;
        self.location(&resp, what)
    }

    /// Sends `d` in `PATCH` chunks; returns the location to finish the upload at. A chunk
    /// that fails is resumed from what the registry says it has.
    fn chunks(
        &self,
        d: &Descriptor,
        mut location: String,
        open: &OpenAt,
        what: &str,
    ) -> Result<String, PullError> {
        let mut start = 0u64;
        let mut resyncs = 0;
        while start < d.size {
            let len = self.opts.chunk_size.min(d.size - start);
            let open_chunk =
                || -> std::io::Result<Box<dyn Read + '_>> { Ok(Box::new(open(start)?.take(len))) };
            let req = Request::new(Method::Patch, &location)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("{start}-{}", start + len - 1))
                .body(ReqBody::Stream {
                    len,
                    open: &open_chunk as &OpenBody,
                });
            let sent = self
                .client
                .exchange(&req, what)
                .and_then(|resp| self.expect(resp, 202, what))
                .and_then(|resp| self.location(&resp, what));
            match sent {
                Ok(next) => {
                    location = next;
                    self.counters.bytes.fetch_add(len, Ordering::Relaxed);
                    start += len;
                }
                Err(e) if resyncs < self.client.attempts() => {
                    resyncs += 1;
                    tracing::debug!(
                        "{what}: chunk at {start} failed ({e}); asking where the upload stands"
                    );
                    let (at, loc) = self.status(&location, what)?;
                    location = loc;
                    start = at;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(location)
    }

    /// `GET <location>`: how many bytes the upload has (`Range: 0-<last>`), and where to go on.
    fn status(&self, location: &str, what: &str) -> Result<(u64, String), PullError> {
        let resp = self
            .client
            .exchange(&Request::new(Method::Get, location), what)?;
        let resp = self.expect(resp, 204, what)?;
        let have = header(&resp, "range")
            .and_then(|r| {
                r.trim_start_matches("bytes=")
                    .split_once('-')
                    .and_then(|(_, last)| last.parse::<u64>().ok())
            })
            .map_or(0, |last| last + 1);
        let loc = header(&resp, "location")
            .map(|l| self.client.endpoint.absolute(&l))
            .unwrap_or_else(|| location.to_string());
        Ok((have, loc))
    }

    /// Whether the repository has the manifest `d` (by digest).
    pub fn has_manifest(&self, d: &Descriptor) -> Result<bool, PullError> {
        let url = self.client.endpoint.manifest_url(&d.digest.to_string());
        let what = format!("manifest {}", d.digest);
        let mut req = Request::new(Method::Head, &url);
        if !d.media_type.is_empty() {
            req = req.accept(&d.media_type);
        }
        let resp = self.client.exchange(&req, &what)?;
        if resp.status().as_u16() == 404 {
            return Ok(false);
        }
        self.client.check(resp, &what)?;
        Ok(true)
    }

    /// `PUT`s a manifest or index under `reference` (a tag, or its own digest, in which
    /// case it is skipped when present). Everything it references must be there already.
    pub fn manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Sha256Digest, PullError> {
        let digest = Sha256Digest::of(bytes);
        let what = format!("manifest {digest}");
        if reference == digest.to_string()
            && self.has_manifest(&Descriptor::new(media_type, digest, bytes.len() as u64))?
        {
            self.counters
                .manifests_present
                .fetch_add(1, Ordering::Relaxed);
            return Ok(digest);
        }
        let url = self.client.endpoint.manifest_url(reference);
        let resp = self.client.exchange(
            &Request::new(Method::Put, &url)
                .header("Content-Type", media_type)
                .body(ReqBody::Bytes(bytes)),
            &what,
        )?;
        let resp = self.expect(resp, 201, &what)?;
        if let Some(said) = header(&resp, "docker-content-digest") {
            if said != digest.to_string() {
                return Err(PullError::DigestMismatch {
                    reference: self.client.reference().to_string(),
                    registry: self.client.registry(),
                    what,
                    expected: digest.to_string(),
                    actual: said,
                });
            }
        }
        self.counters.manifests.fetch_add(1, Ordering::Relaxed);
        Ok(digest)
    }

    /// The response if its status is `want` (any 2xx for 201/202/204, as registries
    /// differ there), else the error that explains it.
    fn expect(
        &self,
        mut resp: Response<ureq::Body>,
        want: u16,
        what: &str,
    ) -> Result<Response<ureq::Body>, PullError> {
        let s = resp.status().as_u16();
        if s == want || (200..300).contains(&s) {
            return Ok(resp);
        }
        if (400..500).contains(&s) && s != 401 && s != 403 && s != 404 && s != 429 {
            return Err(PullError::Status {
                reference: self.client.reference().to_string(),
                registry: self.client.registry(),
                what: what.to_string(),
                status: s,
                attempts: 1,
                detail: error_detail(&mut resp),
            });
        }
        self.client.check(resp, what)
    }

    fn location(&self, resp: &Response<ureq::Body>, what: &str) -> Result<String, PullError> {
        header(resp, "location")
            .map(|l| self.client.endpoint.absolute(&l))
            .ok_or_else(|| PullError::Malformed {
                reference: self.client.reference().to_string(),
                registry: self.client.registry(),
                what: what.to_string(),
                detail: format!("the upload answer ({}) has no Location", resp.status()),
            })
    }
}

/// `location` with `digest=<d>` added to its query.
fn with_digest(location: &str, d: &Sha256Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={d}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_joins_the_locations_query() {
        let d = Sha256Digest::of(b"x");
        assert_eq!(
            with_digest("http://h/v2/a/blobs/uploads/u?_state=s", &d),
            format!("http://h/v2/a/blobs/uploads/u?_state=s&digest={d}")
        );
        assert_eq!(
            with_digest("http://h/v2/a/blobs/uploads/u", &d),
            format!("http://h/v2/a/blobs/uploads/u?digest={d}")
        );
    }
}
