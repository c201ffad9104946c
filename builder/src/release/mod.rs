//! Runtime and cluster payloads from the projects' own releases, for any version.
//!
//! `CLUSTER k3s <version>` and `RUNTIME containerd [<version>]` name a release; nothing
//! about a version is written into ferry. Each project publishes its files on GitHub as
//! `https://github.com/<owner>/<repo>/releases/download/<tag>/<asset>` (the tag
//! URL-encoded: `v1.32.3%2Bk3s1`) together with a checksum file, and that checksum file is
//! what an asset is verified against, the way k3s's own `install.sh` verifies the k3s
//! binary: [`k3s`] reads `sha256sum-<arch>.txt` and `k3s-images.txt`, [`containerd`] reads
//! containerd's `<asset>.sha256sum`, runc's `runc.sha256sum` and the CNI plugins'
//! `<asset>.sha256`. A new version therefore needs no change to ferry.
//!
//! `payloads/<name>/payload.toml` ([`definition`]) keeps the default versions (containerd,
//! runc, CNI plugins) and optional sha256 *pins* by URL: extra assurance for a vetted
//! version, which must agree with the published checksum when present.
//!
//! What a download may and may not do (retries, resuming, the cache, mirrors) is in
//! [`download`] and [`mirror`]. What the checksum files prove: that the bytes are the ones
//! the project published under that name, read over TLS from the same host. Pins and
//! `ferry.lock` ([`crate::lock`]) then prove that they are the same bytes as last time.

pub mod checksums;
pub mod containerd;
pub mod definition;
pub mod download;
pub mod k3s;
pub mod mirror;

pub use download::{DownloadOptions, Downloader};
pub use mirror::ReleaseMirror;

use crate::build::payload::PayloadFile;
use crate::lock::LockedAsset;
use checksums::Checksums;
use definition::Definition;
use ferry_bundle::reference::Reference;
use std::path::PathBuf;

/// Why a release file could not be had. Each names the file (asset and upstream URL; a
/// `url` field reads `<upstream> (through <mirror URL>)` when a mirror was used) and says
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{project} {version}: no such release: {url} answered 404 (not found). The versions are listed at {releases}")]
    NoSuchRelease {
        project: String,
        version: String,
        url: String,
        releases: String,
    },
    #[error("{url}: not found (404)")]
    NotFound { url: String },
    #[error("{asset}: downloaded sha256 {actual} does not match {expected} published in {published_in}; the download from {url} was discarded and nothing was cached (a proxy or mirror serving another file? check it, or pass --payload with vetted files)")]
    Mismatch {
        asset: String,
        url: String,
        expected: String,
        actual: String,
        published_in: String,
    },
    #[error("{asset} is not listed in {published_in} (it lists: {listed}); the release has no such file for this platform")]
    NotListed {
        asset: String,
        published_in: String,
        listed: String,
    },
    #[error("{asset}: the sha256 pinned in payloads/{payload}/payload.toml ({pinned}) differs from the one published in {published_in} ({published}); refusing it until they agree")]
    PinMismatch {
        asset: String,
        payload: String,
        pinned: String,
        published: String,
        published_in: String,
    },
    #[error("cannot reach {host} to download {url}: {detail}. This machine has no network path to it: pass --payload {payload}=<dir|file.tar.gz> with files you already have, or --release-mirror {prefix}=<proxy URL> (or FERRY_RELEASE_MIRROR) to download through a proxy that mirrors {prefix}")]
    Unreachable {
        host: String,
        url: String,
        detail: String,
        payload: String,
        prefix: String,
    },
    #[error("{url}: HTTP {status} after {attempts} attempt(s)")]
    Status {
        url: String,
        status: u16,
        attempts: u32,
    },
    #[error("{url}: the transfer failed after {attempts} attempt(s): {detail}")]
    Transfer {
        url: String,
        attempts: u32,
        detail: String,
    },
    #[error("{url}: larger than {limit} bytes; refusing it")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: not UTF-8 text")]
    NotText { url: String },
    #[error("{project} version {version:?}: {problem}")]
    BadVersion {
        project: String,
        version: String,
        problem: String,
    },
    #[error("{project} publishes no release files for {arch}; it has {known}")]
    UnknownArch {
        project: String,
        arch: String,
        known: String,
    },
    #[error("{0}")]
    Definition(String),
    #[error("{archive}: {problem}")]
    Archive { archive: String, problem: String },
    #[error("release cache {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A payload made of release files: the files by role, what was downloaded (for
/// `ferry.lock`), and the images the payload needs (k3s's own).
#[derive(Debug)]
pub struct FetchedPayload {
    pub name: String,
    pub version: String,
    pub files: Vec<PayloadFile>,
    pub assets: Vec<LockedAsset>,
    pub images: Vec<Reference>,
    /// Where unpacked archive members live until the bundle is written.
    pub scratch: Option<tempfile::TempDir>,
}

/// One release of a GitHub repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubRelease {
    /// `owner/name`.
    pub repo: &'static str,
    pub tag: String,
}

impl GithubRelease {
    /// `https://github.com/<repo>/releases/download/<encoded tag>/<asset>`.
    pub fn url(&self, asset: &str) -> String {
        format!(
            "https://github.com/{}/releases/download/{}/{asset}",
            self.repo,
            encode(&self.tag)
        )
    }

    /// The page listing every release: where to look up valid versions.
    pub fn releases_page(&self) -> String {
        format!("https://github.com/{}/releases", self.repo)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (`+` → `%2B`).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Checks a version from the Kubefile before it goes into a URL: release tags are made of
/// letters, digits, `.`, `+`, `-` and `_`.
pub fn check_version(project: &str, version: &str) -> Result<(), ReleaseError> {
    let ok = !version.is_empty()
        && version.len() <= 128
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
        && !version.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(ReleaseError::BadVersion {
            project: project.into(),
            version: version.into(),
            problem: "a release version is letters, digits, '.', '+', '-' and '_'".into(),
        })
    }
}

/// A release's checksum file, fetched and parsed.
pub struct Published {
    /// Upstream URL of the checksum file (what messages cite).
    pub url: String,
    pub sums: Checksums,
}

/// Fetches a release's checksum file `file`. It is the first file of a release ferry
/// asks for, so its 404 is reported as "no such release" with where to list versions.
pub fn published(
    dl: &Downloader,
    project: &str,
    version: &str,
    release: &GithubRelease,
    file: &str,
) -> Result<Published, ReleaseError> {
    let url = release.url(file);
    match dl.text(&url) {
        Ok(t) => Ok(Published {
            sums: Checksums::parse(&t.text),
            url,
        }),
        Err(ReleaseError::NotFound { url }) => Err(ReleaseError::NoSuchRelease {
            project: project.into(),
            version: version.into(),
            url,
            releases: release.releases_page(),
        }),
        Err(e) => Err(e),
    }
}

/// The sha256 `published` gives `asset`, checked against a pin in `def` if there is one.
pub fn expected_sha256(
    def: &Definition,
    url: &str,
    asset: &str,
    published: &Published,
) -> Result<ferry_bundle::Sha256Digest, ReleaseError> {
    let sha = published
        .sums
        .find(asset)
        .ok_or_else(|| ReleaseError::NotListed {
            asset: asset.into(),
            published_in: published.url.clone(),
            listed: published.sums.names().join(", "),
        })?;
    if let Some(pin) = def.pin(url)? {
        if pin != sha {
            return Err(ReleaseError::PinMismatch {
                asset: asset.into(),
                payload: def.name.clone(),
                pinned: pin.hex(),
                published: sha.hex(),
                published_in: published.url.clone(),
            });
        }
    }
    Ok(sha)
}

/// Downloads (or finds cached) `asset` of `release`, verified against `published` (and a
/// pin); returns the cached file and its lock record.
pub fn verified_asset(
    dl: &Downloader,
    def: &Definition,
    release: &GithubRelease,
    asset: &str,
    published: &Published,
) -> Result<(PathBuf, LockedAsset), ReleaseError> {
    let url = release.url(asset);
    let sha = expected_sha256(def, &url, asset, published)?;
    let path = dl.asset(&url, asset, &sha, &published.url)?;
    Ok((
        path,
        LockedAsset {
            url,
            sha256: sha.hex(),
        },
    ))
}

/// Maps an OCI architecture (`amd64`, `arm64`, `arm`) to a project's name for it.
pub fn arch_name<'a>(
    project: &str,
    arch: &str,
    names: &[(&str, &'a str)],
) -> Result<&'a str, ReleaseError> {
    names
        .iter()
        .find(|(a, _)| *a == arch)
        .map(|(_, n)| *n)
        .ok_or_else(|| ReleaseError::UnknownArch {
            project: project.into(),
            arch: arch.into(),
            known: names.iter().map(|(a, _)| *a).collect::<Vec<_>>().join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_urls_encode_the_tag() {
        let r = GithubRelease {
            repo: "k3s-io/k3s",
            tag: "v1.32.3+k3s1".into(),
        };
        assert_eq!(
            r.url("sha256sum-amd64.txt"),
            "https://github.com/k3s-io/k3s/releases/download/v1.32.3%2Bk3s1/sha256sum-amd64.txt"
        );
        assert_eq!(r.releases_page(), "https://github.com/k3s-io/k3s/releases");
        assert_eq!(encode("a b/~_"), "a%20b%2F~_");
    }

    #[test]
    fn a_pin_must_agree_with_the_published_checksum() {
        let url = "https://github.com/k3s-io/k3s/releases/download/v1%2Bk3s1/k3s";
        let published = Published {
            url: "https://github.com/k3s-io/k3s/releases/download/v1%2Bk3s1/sha256sum-amd64.txt"
                .into(),
            sums: Checksums::parse(&format!("{}  k3s\n", "a".repeat(64))),
        };
        let def = |pin: char| {
            Definition::parse(
                "k3s",
                &format!(
                    "name = \"k3s\"\n[pins]\n\"{url}\" = \"{}\"\n",
                    pin.to_string().repeat(64)
                ),
            )
            .unwrap()
        };
        let got = expected_sha256(&def('a'), url, "k3s", &published).unwrap();
        assert_eq!(got.hex(), "a".repeat(64));
        let e = expected_sha256(&def('b'), url, "k3s", &published)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("k3s: the sha256 pinned in payloads/k3s/payload.toml (bbbb")
                && e.contains(&format!(
                    "differs from the one published in {} (aaaa",
                    published.url
                )),
            "{e}"
        );
        let e = expected_sha256(&def('a'), url, "k3s-arm64", &published)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("k3s-arm64 is not listed in") && e.contains("it lists: k3s"),
            "{e}"
        );
    }

    #[test]
    fn versions_cannot_leave_the_release_path() {
        for ok in ["v1.32.3+k3s1", "2.0.5", "1.7.0-rc.1"] {
            check_version("k3s", ok).unwrap();
        }
        for bad in ["", "../x", "v1/2", "v1 2", "-x", ".."] {
            let e = check_version("k3s", bad).unwrap_err().to_string();
            assert!(e.starts_with("k3s version"), "{e}");
        }
    }
}
