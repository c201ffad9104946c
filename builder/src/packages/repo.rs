//! An apt repository, read the way apt reads it: the signed `InRelease` first, then only
//! indexes whose SHA256 it lists.
//!
//! Trust flows from the keyring: `InRelease` is verified with `gpgv` ([`super::gpgv`])
//! and only its signed text is parsed; it must be for the suite asked for (so a mirror
//! cannot answer with another suite) and, when it says `Valid-Until`, not expired (so a
//! stale or replayed one is refused). Each `Packages` index is fetched by its hash
//! (`by-hash/SHA256/…` when the repository offers it, which cannot race a mirror
//! update) into the content cache, where the cache's writer checks size and SHA256
//! before it gets its name; a later build reuses it without a download. Indexes are
//! decompressed (xz or gzip) and parsed while they stream. The `.deb`s are then checked
//! against the SHA256 in the index the same way.

use super::gpgv;
use super::index::Index;
use crate::pull::ContentCache;
use ferry_bundle::Sha256Digest;
use ferry_deb::Paragraphs;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One `APT` line (or a default): a repository URL, a suite, its components.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Repo {
    /// Base URL (`http://…/debian`), without a trailing slash.
    pub url: String,
    pub suite: String,
    pub components: Vec<String>,
    pub keyring: PathBuf,
    /// Where the repository was named: `Kubefile:4`, `--apt-mirror`, an apt source file.
    pub from: String,
}

impl Repo {
    pub fn describe(&self) -> String {
        format!("{} {} {}", self.url, self.suite, self.components.join(" "))
    }
    fn dist_url(&self, path: &str) -> String {
        format!("{}/dists/{}/{path}", self.url, self.suite)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error(transparent)]
    Signature(#[from] gpgv::SignatureError),
    #[error("{what}: {reason}")]
    Release { what: String, reason: String },
    #[error("{what}: {source}")]
    Cache {
        what: String,
        #[source]
        source: crate::pull::cache::CacheError,
    },
    #[error(transparent)]
    Index(#[from] super::index::IndexError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// An HTTP client for repositories (plain HTTP is normal for apt: trust comes from the
/// signature, not the transport).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

fn get(agent: &ureq::Agent, url: &str) -> Result<ureq::Body, RepoError> {
    agent
        .get(url)
        .call()
        .map(|r| r.into_body())
        .map_err(|e| RepoError::Http {
            url: url.to_string(),
            reason: e.to_string(),
        })
}

/// A file the signed `Release` text lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// The signed `Release` text, the fields ferry uses.
#[derive(Debug, Clone, Default)]
pub struct Release {
    pub suite: String,
    pub codename: String,
    pub by_hash: bool,
    pub valid_until: Option<u64>,
    pub files: Vec<Listed>,
    pub signers: Vec<String>,
}

impl Release {
    pub fn parse(text: &[u8], what: &str) -> Result<Release, RepoError> {
        let bad = |reason: String| RepoError::Release {
            what: what.to_string(),
            reason,
        };
        let p = Paragraphs::new(text)
            .next()
            .ok_or_else(|| bad("empty".into()))?
            .map_err(|e| bad(e.to_string()))?;
        let mut files = Vec::new();
        for l in p.get("SHA256").unwrap_or("").lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            if let [sha, size, path] = w[..] {
                files.push(Listed {
                    path: path.to_string(),
                    size: size
                        .parse()
                        .map_err(|_| bad(format!("bad size in SHA256 line {l:?}")))?,
                    sha256: sha.to_ascii_lowercase(),
                });
            }
        }
        if files.is_empty() {
            return Err(bad(
                "lists no SHA256 sums (ferry checks every index by SHA256)".into(),
            ));
        }
        Ok(Release {
            suite: p.get("Suite").unwrap_or("").to_string(),
            codename: p.get("Codename").unwrap_or("").to_string(),
            by_hash: p.get("Acquire-By-Hash") == Some("yes"),
            valid_until: p
                .get("Valid-Until")
                .map(|d| parse_rfc2822(d).ok_or_else(|| bad(format!("bad Valid-Until {d:?}"))))
                .transpose()?,
            files,
            signers: Vec::new(),
        })
    }

    pub fn listed(&self, path: &str) -> Option<&Listed> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// Fetches and verifies `InRelease`, and checks it is the suite asked for and current.
pub fn release(agent: &ureq::Agent, repo: &Repo) -> Result<Release, RepoError> {
    let url = repo.dist_url("InRelease");
    let mut body = get(agent, &url)?;
    let tmp = tempfile::NamedTempFile::new().map_err(|source| RepoError::Io {
        what: url.clone(),
        source,
    })?;
    std::io::copy(&mut body.as_reader().take(64 << 20), &mut tmp.as_file()).map_err(|source| {
        RepoError::Io {
            what: url.clone(),
            source,
        }
    })?;
    let v = gpgv::verify(tmp.path(), &repo.keyring, &url)?;
    let mut rel = Release::parse(&v.text, &url)?;
    rel.signers = v.signers;
    check_release(&rel, repo, &url, now())?;
    Ok(rel)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn check_release(rel: &Release, repo: &Repo, what: &str, now: u64) -> Result<(), RepoError> {
    if rel.codename != repo.suite && rel.suite != repo.suite {
        return Err(RepoError::Release {
            what: what.to_string(),
            reason: format!(
                "it is the Release of suite {:?} (codename {:?}), not of {:?}; refusing it",
                rel.suite, rel.codename, repo.suite
            ),
        });
    }
    if let Some(until) = rel.valid_until {
        if until < now {
            return Err(RepoError::Release {
                what: what.to_string(),
                reason: format!(
                    "it expired {} hours ago (Valid-Until): the mirror is stale, or this is a replay",
                    (now - until) / 3600
                ),
            });
        }
    }
    Ok(())
}

/// Reads every component's `Packages` index of `repo` for `arch` into `ix`.
pub fn load_indexes(
    agent: &ureq::Agent,
    cache: &ContentCache,
    repo: &Repo,
    rel: &Release,
    arch: &str,
    repo_no: usize,
    ix: &mut Index,
) -> Result<(), RepoError> {
    for comp in &repo.components {
        let base = format!("{comp}/binary-{arch}/Packages");
        let (listed, kind) = [("xz", Kind::Xz), ("gz", Kind::Gz)]
            .into_iter()
            .find_map(|(ext, k)| rel.listed(&format!("{base}.{ext}")).map(|l| (l, k)))
            .or_else(|| rel.listed(&base).map(|l| (l, Kind::Plain)))
            .ok_or_else(|| RepoError::Release {
                what: repo.dist_url("InRelease"),
                reason: format!(
                    "lists no {base}(.xz|.gz): does the suite have component {comp} for {arch}?"
                ),
            })?;
        let dir = listed.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let mut urls = Vec::new();
        if rel.by_hash {
            urls.push(repo.dist_url(&format!("{dir}/by-hash/SHA256/{}", listed.sha256)));
        }
        urls.push(repo.dist_url(&listed.path));
        let path = fetch_to_cache(
            agent,
            cache,
            &urls,
            &listed.sha256,
            listed.size,
            &mut |_| {},
        )?;
        let what = repo.dist_url(&listed.path);
        let file = std::fs::File::open(&path).map_err(|source| RepoError::Io {
            what: what.clone(),
            source,
        })?;
        let raw = BufReader::with_capacity(1 << 20, file);
        let r: Box<dyn Read> = match kind {
            Kind::Xz => Box::new(xz2::read::XzDecoder::new(raw)),
            Kind::Gz => Box::new(flate2::read::GzDecoder::new(raw)),
            Kind::Plain => Box::new(raw),
        };
        ix.add_stream(BufReader::with_capacity(1 << 20, r), arch, repo_no, &what)?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    Xz,
    Gz,
    Plain,
}

/// Makes sure the blob `sha256` (`size` bytes) is in the cache, downloading it from the
/// first of `urls` that answers; the cache's writer refuses bytes that do not match.
/// `progress` is told every chunk's length.
pub fn fetch_to_cache(
    agent: &ureq::Agent,
    cache: &ContentCache,
    urls: &[String],
    sha256: &str,
    size: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<PathBuf, RepoError> {
    let what = urls.last().cloned().unwrap_or_default();
    let digest = Sha256Digest::from_hex(sha256).ok_or_else(|| RepoError::Release {
        what: what.clone(),
        reason: format!("bad SHA256 {sha256:?}"),
    })?;
    if cache.contains(&digest, size) {
        progress(size);
        return Ok(cache.blob_path(&digest));
    }
    let mut last = None;
    for url in urls {
        let mut body = match get(agent, url) {
            Ok(b) => b,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let cache_err = |source| RepoError::Cache {
            what: url.clone(),
            source,
        };
        let mut w = cache.writer(digest, Some(size)).map_err(cache_err)?;
        let mut r = body.as_reader();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r.read(&mut buf).map_err(|source| RepoError::Io {
                what: url.clone(),
                source,
            })?;
            if n == 0 {
                break;
            }
            std::io::Write::write_all(&mut w, &buf[..n]).map_err(|source| RepoError::Io {
                what: url.clone(),
                source,
            })?;
            progress(n as u64);
            if w.written() > size {
                break;
            }
        }
        return w.commit().map_err(cache_err);
    }
    Err(last.unwrap_or(RepoError::Http {
        url: what,
        reason: "no URL to fetch from".into(),
    }))
}

/// `Sat, 18 Jul 2026 10:16:37 UTC` → seconds since the epoch (UTC/GMT/+0000 only, which
/// is what archives write).
pub fn parse_rfc2822(s: &str) -> Option<u64> {
    let w: Vec<&str> = s.split_whitespace().collect();
    let w = if w.first()?.ends_with(',') {
        &w[1..]
    } else {
        &w[..]
    };
    let [day, mon, year, time, ..] = w else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m.eq_ignore_ascii_case(mon))? as u64
        + 1;
    let year: i64 = year.parse().ok()?;
    let t: Vec<u64> = time.split(':').filter_map(|x| x.parse().ok()).collect();
    let [h, m, sec] = t[..] else { return None };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    u64::try_from(days)
        .ok()
        .map(|d| d * 86400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates_like_archives_write_them() {
        assert_eq!(parse_rfc2822("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_rfc2822("Sat, 11 Jul 2026 10:16:37 UTC"),
            Some(1_783_764_997)
        );
        assert_eq!(
            parse_rfc2822("29 Feb 2024 23:59:59 +0000"),
            Some(1_709_251_199)
        );
        assert_eq!(parse_rfc2822("garbage"), None);
    }

    #[test]
    fn a_release_of_another_suite_or_an_expired_one_is_refused() {
        let text = format!(
            "Suite: stable\nCodename: bookworm\nValid-Until: Sat, 11 Jul 2026 10:16:37 UTC\nSHA256:\n {} 10 main/binary-amd64/Packages.xz\n",
            "ab".repeat(32)
        );
        let rel = Release::parse(text.as_bytes(), "t").unwrap();
        assert_eq!(rel.files[0].size, 10);
        let repo = |suite: &str| Repo {
            url: "http://x".into(),
            suite: suite.into(),
            components: vec!["main".into()],
            keyring: "k".into(),
            from: "test".into(),
        };
        let until = rel.valid_until.unwrap();
        check_release(&rel, &repo("bookworm"), "t", until - 1).unwrap();
        check_release(&rel, &repo("stable"), "t", until - 1).unwrap();
        let e = check_release(&rel, &repo("trixie"), "t", until - 1).unwrap_err();
        assert!(e.to_string().contains("not of \"trixie\""), "{e}");
        let e = check_release(&rel, &repo("bookworm"), "t", until + 7200).unwrap_err();
        assert!(e.to_string().contains("expired 2 hours ago"), "{e}");
        let e = Release::parse(b"Suite: x\n", "t").unwrap_err();
        assert!(e.to_string().contains("no SHA256"), "{e}");
    }
}
