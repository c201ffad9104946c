//! What a pull may be told: platforms, insecure registries, mirrors, credentials, limits.
//!
//! Kept as plain data so that the Kubefile, `ferry build` flags and tests can all fill it the
//! same way; parsing of the user-facing strings (`docker.io=host/prefix`) lives here too
//! so every front end reports the same errors. A platform (`linux/arm64/v8`) is the OCI
//! model's ([`ferry_bundle::oci::Platform`]); hosts are validated and normalised by the
//! bundle crate's one [`normalise_host`].

pub use ferry_bundle::oci::Platform;
use ferry_bundle::reference::{api_host, check_repository, normalise_host, ReferenceError};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Options of a pull. `PullOptions::default()` pulls the builder host's platform,
/// anonymously or with `~/.docker/config.json` credentials, over HTTPS only.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Platforms to keep. Empty means the builder host's own ([`Platform::host`]).
    pub platforms: Vec<Platform>,
    /// `host[:port]` entries spoken to over plain HTTP; every other registry is HTTPS only,
    /// so a typo cannot silently downgrade a real registry.
    pub insecure_registries: Vec<String>,
    /// Build-time mirrors: the image keeps its name, the bytes come from the mirror.
    pub mirrors: Vec<Mirror>,
    /// The Docker config file to read credentials from. `None` means
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (Docker's own order).
    pub docker_config: Option<PathBuf>,
    /// Blob downloads in flight at once. 4 keeps a 1 Gbit/s link busy without starving a
    /// small build machine or tripping registry rate limits.
    pub parallel_downloads: usize,
    /// Attempts per request on connect errors, 5xx and 429 (first try included).
    pub attempts: u32,
    /// First retry delay; doubled on every further retry (capped at 30 s).
    pub retry_delay: Duration,
    /// TCP connect timeout. Reads have their own timeout so a stalled transfer is retried
    /// instead of hanging the build; total transfer time is unbounded (layers can be GBs).
    pub connect_timeout: Duration,
    /// Longest silence tolerated while reading one response.
    pub read_timeout: Duration,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platforms: Vec::new(),
            insecure_registries: Vec::new(),
            mirrors: Vec::new(),
            docker_config: None,
            parallel_downloads: 4,
            attempts: 4,
            retry_delay: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl PullOptions {
    /// The platforms to select: the configured ones, or the host's.
    pub fn effective_platforms(&self) -> Vec<Platform> {
        if self.platforms.is_empty() {
            vec![Platform::host()]
        } else {
            self.platforms.clone()
        }
    }

    pub fn is_insecure(&self, host: &str) -> bool {
        self.insecure_registries
            .iter()
            .any(|h| h.trim_end_matches('/').eq_ignore_ascii_case(host))
    }
}

/// A build-time mirror: `upstream=mirror-host[/path-prefix]`, e.g.
/// `docker.io=localhost:5000/dockerhub` pulls `docker.io/library/nginx` from
/// `localhost:5000/dockerhub/library/nginx` while the bundle still calls it
/// `docker.io/library/nginx`.
///
/// A mirror replaces its upstream; there is no fallback to the upstream when the mirror lacks
/// something. Builds that configure a mirror usually do so because the upstream must not be
/// used (rate limits, policy, vetted content), so a miss is an error naming the mirror rather
/// than a silent trip to the internet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// Upstream registry host as it appears in normalised references (`docker.io`).
    pub upstream: String,
    /// Host (with port) actually contacted.
    pub host: String,
    /// Repository prefix on the mirror, without slashes at either end; may be empty.
    pub prefix: String,
}

/// Why a `--registry-mirror` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mirror {value:?}: {problem}; expected upstream=mirror-host[/path-prefix], e.g. docker.io=localhost:5000/dockerhub")]
pub struct MirrorError {
    pub value: String,
    pub problem: MirrorProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorProblem {
    #[error("missing '='")]
    NoEquals,
    #[error("give a host, not a URL (use --insecure-registry for plain HTTP)")]
    Url,
    #[error("upstream: {0}")]
    Upstream(ReferenceError),
    #[error("mirror host: {0}")]
    Host(ReferenceError),
    #[error("path prefix: {0}")]
    Prefix(ReferenceError),
}

impl FromStr for Mirror {
    type Err = MirrorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |problem| MirrorError {
            value: s.to_string(),
            problem,
        };
        let Some((up, target)) = s.trim().split_once('=') else {
            return Err(bad(MirrorProblem::NoEquals));
        };
        let up = up.trim().trim_end_matches('/');
        let target = target.trim();
        if target.contains("://") {
            return Err(bad(MirrorProblem::Url));
        }
        let (host, prefix) = match target.split_once('/') {
            Some((h, p)) => (h, p.trim_matches('/')),
            None => (target, ""),
        };
        let upstream = normalise_host(up).map_err(|e| bad(MirrorProblem::Upstream(e)))?;
        let host = normalise_host(host).map_err(|e| bad(MirrorProblem::Host(e)))?;
        if !prefix.is_empty() {
            check_repository(prefix).map_err(|e| bad(MirrorProblem::Prefix(e)))?;
        }
        Ok(Mirror {
            upstream,
            // The mirror is contacted, so Docker Hub is its API host.
            host: api_host(&host).to_string(),
            prefix: prefix.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mirrors() {
        let m: Mirror = "docker.io=localhost:5000/dockerhub/".parse().unwrap();
        assert_eq!(
            m,
            Mirror {
                upstream: "docker.io".into(),
                host: "localhost:5000".into(),
                prefix: "dockerhub".into()
            }
        );
        let m: Mirror = "index.docker.io=mirror.local".parse().unwrap();
        assert_eq!((m.upstream.as_str(), m.prefix.as_str()), ("docker.io", ""));
        for bad in [
            "docker.io",
            "=x",
            "a=",
            "a=http://x",
            "a=h/UPPER",
            "a/b=h",
            "a=h\"x",
            "a=h x",
            "a..b=h",
        ] {
            assert!(bad.parse::<Mirror>().is_err(), "{bad}");
        }
        let e = "docker.io=http://x".parse::<Mirror>().unwrap_err();
        assert_eq!(e.problem, MirrorProblem::Url);
    }

    #[test]
    fn insecure_is_exact_host_port() {
        let o = PullOptions {
            insecure_registries: vec!["127.0.0.1:5000".into()],
            ..Default::default()
        };
        assert!(o.is_insecure("127.0.0.1:5000"));
        assert!(!o.is_insecure("127.0.0.1"));
        assert!(!o.is_insecure("127.0.0.1:5001"));
    }
}
