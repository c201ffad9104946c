//! Downloading release files: retried, resumable, streamed, verified, cached by sha256.
//!
//! Two kinds of file come from a release. *Metadata* (checksum files, `k3s-images.txt`)
//! is small and read into memory (capped at [`MAX_TEXT`]). *Assets* (binaries, archives,
//! tens to hundreds of MB) are never held in memory: they stream into a partial file
//! while being hashed, with a progress bar on a terminal. An asset is asked for with the
//! sha256 it must have, so the content cache ([`ContentCache`]) can answer before any
//! request is made, and the cache's one invariant holds here too: the partial file is
//! renamed to `blobs/sha256/<hex>` only when its sha256 is the expected one; on a mismatch
//! it is deleted and nothing is cached.
//!
//! Why resumable: the assets are large and builders sit behind flaky proxies. The partial
//! file is `<cache>/downloads/<expected hex>.partial`, kept across attempts *and* across
//! runs; a retry asks for `Range: bytes=<have>-` and appends when the server answers 206
//! (a 200 means it ignored the range: start over). An exclusive `flock` on the partial
//! file keeps two builds sharing a cache from writing it at once; the second one finds the
//! asset cached when it gets the lock.
//!
//! Connect errors, timeouts, broken transfers, 5xx and 429 are retried with exponential
//! backoff (the registry client's rules, [`crate::pull`]); a 404 is final, and an
//! unreachable host after the last attempt says that there is no network path and what to
//! do instead (`--payload`, `--release-mirror`). Every URL is fetched through the
//! `--release-mirror` rules ([`super::mirror`]); messages name the upstream URL and, when a
//! mirror was used, the mirrored one.

use super::mirror::{rewrite, ReleaseMirror};
use super::ReleaseError;
use crate::pull::client::{agent, header, retry_after, transient};
use crate::pull::ContentCache;
use ferry_bundle::writeback::WritebackWindows;
use ferry_bundle::Sha256Digest;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use ureq::http::Response;
use ureq::Body;

/// Largest metadata file read into memory.
pub const MAX_TEXT: u64 = 4 << 20;
/// Largest asset accepted: far above any k3s or containerd release file, low enough that
/// a server streaming forever cannot fill the disk.
pub const MAX_ASSET: u64 = 16 << 30;
/// Longest single backoff.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// How downloads behave; `Default` is what `ferry build` uses.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    pub mirrors: Vec<ReleaseMirror>,
    /// Attempts per file (first try included) on connect errors, broken transfers, 5xx, 429.
    pub attempts: u32,
    /// First retry delay, doubled on every further retry.
    pub retry_delay: Duration,
    pub connect_timeout: Duration,
    /// Longest silence tolerated while reading a response.
    pub read_timeout: Duration,
    /// No progress bars.
    pub quiet: bool,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            mirrors: Vec::new(),
            attempts: 4,
            retry_delay: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            quiet: false,
        }
    }
}

/// Downloads the files of one payload (the name goes into "what to do instead" hints).
pub struct Downloader {
    agent: ureq::Agent,
    opts: DownloadOptions,
    cache: ContentCache,
    payload: String,
}

/// A small file's text and the sha256 of its bytes.
#[derive(Debug, Clone)]
pub struct Text {
    pub text: String,
    pub sha256: Sha256Digest,
}

/// Where a request went: the upstream URL and, if a mirror rewrote it, the real one.
struct Target<'a> {
    upstream: &'a str,
    actual: String,
}

impl Target<'_> {
    /// The upstream URL, with ` (through <mirror url>)` when a mirror rewrote it.
    fn described(&self) -> String {
        if self.actual == self.upstream {
            self.upstream.to_string()
        } else {
            format!("{} (through {})", self.upstream, self.actual)
        }
    }
}

impl Downloader {
    pub fn new(opts: DownloadOptions, cache: ContentCache, payload: &str) -> Downloader {
        let agent = agent(opts.connect_timeout, opts.read_timeout);
        Downloader {
            agent,
            opts,
            cache,
            payload: payload.to_string(),
        }
    }

    pub fn cache(&self) -> &ContentCache {
        &self.cache
    }

    fn target<'a>(&self, upstream: &'a str) -> Target<'a> {
        Target {
            upstream,
            actual: rewrite(&self.opts.mirrors, upstream),
        }
    }

    /// A small text file (checksums, image lists), read into memory.
    pub fn text(&self, url: &str) -> Result<Text, ReleaseError> {
        let t = self.target(url);
        let mut attempt = 0;
        loop {
            let mut resp = self.get(&t, 0, &mut attempt)?;
            let mut bytes = Vec::new();
            let read = resp
                .body_mut()
                .as_reader()
                .take(MAX_TEXT + 1)
                .read_to_end(&mut bytes);
            match read {
                Ok(_) if bytes.len() as u64 > MAX_TEXT => {
                    return Err(ReleaseError::TooLarge {
                        url: t.described(),
                        limit: MAX_TEXT,
                    })
                }
                Ok(_) => {
                    let sha256 = Sha256Digest::of(&bytes);
                    let text = String::from_utf8(bytes)
                        .map_err(|_| ReleaseError::NotText { url: t.described() })?;
                    return Ok(Text { text, sha256 });
                }
                Err(e) if attempt < self.opts.attempts => {
                    tracing::debug!("{url}: {e}; retrying");
                    std::thread::sleep(self.backoff(attempt));
                }
                Err(e) => return Err(self.transfer(&t, attempt, e.to_string())),
            }
        }
    }

    /// The cached file holding the asset at `url` with sha256 `expected`, downloading it
    /// first if the cache lacks it. `asset` and `published_in` name the file and where
    /// `expected` comes from in a mismatch message.
    pub fn asset(
        &self,
        url: &str,
        asset: &str,
        expected: &Sha256Digest,
        published_in: &str,
    ) -> Result<PathBuf, ReleaseError> {
        if let Some(p) = self.cache.path(expected) {
            tracing::debug!("{asset}: in the cache ({expected})");
            return Ok(p);
        }
        let dir = self.cache.root().join("downloads");
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let partial = dir.join(format!("{}.partial", expected.hex()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&partial)
            .map_err(|e| io_err(&partial, e))?;
        // Another build sharing this cache may be fetching the same asset: wait for it.
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err(&partial, e.into()))?;
        if let Some(p) = self.cache.path(expected) {
            let _ = std::fs::remove_file(&partial);
            return Ok(p);
        }
        let t = self.target(url);
        let (actual, size) = self.stream(&t, asset, &mut file, &partial)?;
        if actual != *expected {
            let _ = std::fs::remove_file(&partial);
            return Err(ReleaseError::Mismatch {
                asset: asset.to_string(),
                url: t.described(),
                expected: expected.hex(),
                actual: actual.hex(),
                published_in: published_in.to_string(),
            });
        }
        file.sync_all().map_err(|e| io_err(&partial, e))?;
        let dest = self.cache.blob_path(expected);
        std::fs::rename(&partial, &dest).map_err(|e| io_err(&dest, e))?;
        tracing::info!(
            "downloaded {asset} ({size} bytes, {expected}) from {}",
            t.actual
        );
        Ok(dest)
    }

    /// Fills `file` (which may already hold the start of the asset) with the whole asset,
    /// resuming after broken transfers; returns its sha256 and size.
    fn stream(
        &self,
        t: &Target,
        asset: &str,
        file: &mut File,
        path: &Path,
    ) -> Result<(Sha256Digest, u64), ReleaseError> {
        let io = |e| io_err(path, e);
        let mut hasher = Sha256::new();
        let mut have = {
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            let mut r = std::io::BufReader::with_capacity(1 << 20, &mut *file);
            std::io::copy(&mut r, &mut HashSink(&mut hasher)).map_err(io)?
        };
        let bar = ferry_console::bytes_bar(0, asset, self.opts.quiet);
        let mut attempt = 0;
        loop {
            let mut resp = self.get(t, have, &mut attempt)?;
            let status = resp.status().as_u16();
            if have > 0 && !(status == 206 && content_range_start(&resp) == Some(have)) {
                // The server ignored the range (200), or what is on disk is not a prefix it
                // knows (416, another range): start over from byte 0.
                tracing::debug!("{asset}: cannot resume at byte {have} ({status}); starting over");
                (have, hasher) = restart(file, path)?;
                if status != 200 {
                    continue;
                }
            }
            let total = header(&resp, "content-length")
                .and_then(|l| l.parse::<u64>().ok())
                .map(|l| l + have);
            bar.set_length(total.unwrap_or(0));
            bar.set_position(have);
            file.seek(SeekFrom::End(0)).map_err(io)?;
            // Fsynced before it is named: its writeback starts as it downloads.
            let mut windows = WritebackWindows::starting_at(have);
            let mut r = resp.body_mut().as_reader();
            let mut buf = vec![0u8; 256 * 1024];
            let broken = loop {
                let n = match r.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => break Some(e.to_string()),
                };
                if have + n as u64 > MAX_ASSET {
                    let _ = std::fs::remove_file(path);
                    return Err(ReleaseError::TooLarge {
                        url: t.described(),
                        limit: MAX_ASSET,
                    });
                }
                file.write_all(&buf[..n]).map_err(io)?;
                windows.wrote(file, n as u64);
                hasher.update(&buf[..n]);
                have += n as u64;
                bar.inc(n as u64);
            };
            let short = total.filter(|&t| have < t);
            let broken =
                broken.or(short.map(|t| format!("connection ended after {have} of {t} bytes")));
            match broken {
                None => {
                    bar.finish_and_clear();
                    return Ok((Sha256Digest(hasher.finalize().into()), have));
                }
                Some(e) if attempt < self.opts.attempts => {
                    let delay = self.backoff(attempt);
                    tracing::info!("{asset}: {e}; resuming at byte {have} in {delay:?}");
                    std::thread::sleep(delay);
                }
                Some(e) => {
                    bar.finish_and_clear();
                    return Err(self.transfer(t, attempt, e));
                }
            }
        }
    }

    /// A GET (from byte `from` if not 0) answered 200, 206 or 416, with retries.
    /// `attempt` counts the attempts made for this file so far, across calls: a file gets
    /// [`DownloadOptions::attempts`] in all, however they fail.
    fn get(
        &self,
        t: &Target,
        from: u64,
        attempt: &mut u32,
    ) -> Result<Response<Body>, ReleaseError> {
        loop {
            *attempt += 1;
            let attempt = *attempt;
            let last = attempt >= self.opts.attempts;
            let mut req = self.agent.get(&t.actual);
            if from > 0 {
                req = req.header("Range", format!("bytes={from}-"));
            }
            match req.call() {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match status {
                        200 | 206 => return Ok(resp),
                        416 if from > 0 => return Ok(resp),
                        404 => return Err(ReleaseError::NotFound { url: t.described() }),
                        429 | 500..=599 if !last => {
                            let delay = retry_after(&resp)
                                .unwrap_or_else(|| self.backoff(attempt))
                                .min(MAX_DELAY);
                            tracing::debug!("{}: {status}; retrying in {delay:?}", t.actual);
                            std::thread::sleep(delay);
                        }
                        _ => {
                            return Err(ReleaseError::Status {
                                url: t.described(),
                                status,
                                attempts: attempt,
                            })
                        }
                    }
                }
                Err(e) if transient(&e) && !last => {
                    let delay = self.backoff(attempt);
                    tracing::debug!("{}: {e}; retrying in {delay:?}", t.actual);
                    std::thread::sleep(delay);
                }
                Err(e) => return Err(self.unreachable(t, attempt, &e)),
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.opts.retry_delay.saturating_mul(factor).min(MAX_DELAY)
    }

    fn transfer(&self, t: &Target, attempts: u32, detail: String) -> ReleaseError {
        ReleaseError::Transfer {
            url: t.described(),
            attempts,
            detail,
        }
    }

    fn unreachable(&self, t: &Target, attempts: u32, e: &ureq::Error) -> ReleaseError {
        ReleaseError::Unreachable {
            host: host_of(&t.actual).to_string(),
            url: t.described(),
            detail: format!("{e} (after {attempts} attempt(s))"),
            payload: self.payload.clone(),
            prefix: origin_of(t.upstream).to_string(),
        }
    }
}

/// Feeds what is written into a sha256.
struct HashSink<'a>(&'a mut Sha256);

impl Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Empties the partial file: the download starts again from byte 0.
fn restart(file: &mut File, path: &Path) -> Result<(u64, Sha256), ReleaseError> {
    file.set_len(0).map_err(|e| io_err(path, e))?;
    Ok((0, Sha256::new()))
}

fn io_err(path: &Path, source: std::io::Error) -> ReleaseError {
    ReleaseError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The first byte of a 206's `Content-Range: bytes <first>-<last>/<total>`.
fn content_range_start(resp: &Response<Body>) -> Option<u64> {
    let v = header(resp, "content-range")?;
    let range = v.strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// `host[:port]` of a URL.
fn host_of(url: &str) -> &str {
    let o = origin_of(url);
    o.split_once("://").map(|(_, h)| h).unwrap_or(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_hosts() {
        let u = "https://github.com/k3s-io/k3s/releases/download/v1%2Bk3s1/k3s";
        assert_eq!(origin_of(u), "https://github.com");
        assert_eq!(host_of(u), "github.com");
        assert_eq!(host_of("http://127.0.0.1:9/x"), "127.0.0.1:9");
        assert_eq!(origin_of("http://h"), "http://h");
    }
}
