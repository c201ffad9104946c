//! What a pull may be told: platforms, insecure registries, mirrors, credentials, limits.
//!
//! Kept as plain data so that the Kubefile, `ferry build` flags and tests can all fill it the
//! same way; parsing of the user-facing strings (`linux/arm64/v8`, `docker.io=host/prefix`)
//! lives here too so every front end reports the same errors.

use std::fmt;
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

/// An OCI platform: `os/architecture[/variant]`, e.g. `linux/amd64`, `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.filter(|v| !v.is_empty()).map(str::to_string),
        }
    }

    /// The platform of the machine running the builder, in OCI (GOARCH) spelling.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        };
        let variant = (arch == "arm").then_some("v7");
        Platform::new("linux", arch, variant)
    }

    /// Does a manifest's platform satisfy this requested one? An absent variant in the
    /// request matches any variant; `arm64` and `arm64/v8` are the same thing (as
    /// containerd's matcher treats them).
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        match &self.variant {
            None => true,
            Some(want) => {
                let norm = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
                    ("arm64", None) => Some("v8".to_string()),
                    (_, v) => v.map(str::to_string),
                };
                norm(candidate).as_deref() == Some(want.as_str())
            }
        }
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::new(os, arch, None)),
            [os, arch, var] if ok(os) && ok(arch) && ok(var) => {
                Ok(Platform::new(os, arch, Some(var)))
            }
            _ => Err(format!(
                "invalid platform {s:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm/v7"
            )),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
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

impl FromStr for Mirror {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!(
                "invalid mirror {s:?}: {why}; expected upstream=mirror-host[/path-prefix], \
                 e.g. docker.io=localhost:5000/dockerhub"
            )
        };
        let Some((up, target)) = s.trim().split_once('=') else {
            return Err(bad("missing '='"));
        };
        let up = up.trim().trim_end_matches('/');
        let target = target.trim();
        if target.contains("://") {
            return Err(bad(
                "give a host, not a URL (use insecure_registries for plain HTTP)",
            ));
        }
        let (host, prefix) = match target.split_once('/') {
            Some((h, p)) => (h, p.trim_matches('/')),
            None => (target, ""),
        };
        if up.is_empty() || host.is_empty() || up.contains('/') {
            return Err(bad("empty or malformed host"));
        }
        if !prefix.is_empty() {
            ferry_bundle::reference::check_repository(prefix).map_err(|e| bad(&e))?;
        }
        Ok(Mirror {
            upstream: canonical_host(up),
            host: host.to_ascii_lowercase(),
            prefix: prefix.to_string(),
        })
    }
}

/// Docker Hub has three names; references are normalised to `docker.io`.
pub(crate) fn canonical_host(host: &str) -> String {
    let h = host.to_ascii_lowercase();
    match h.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_platforms() {
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(p, Platform::new("linux", "arm", Some("v7")));
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert_eq!("linux/amd64".parse::<Platform>().unwrap().variant, None);
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn platform_matching() {
        let arm64 = Platform::new("linux", "arm64", None);
        let arm64v8 = Platform::new("linux", "arm64", Some("v8"));
        let want_v8: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(arm64.matches(&arm64v8));
        assert!(want_v8.matches(&arm64));
        assert!(want_v8.matches(&arm64v8));
        let want_v7: Platform = "linux/arm/v7".parse().unwrap();
        assert!(!want_v7.matches(&Platform::new("linux", "arm", Some("v6"))));
        assert!(!arm64.matches(&Platform::new("linux", "amd64", None)));
        assert!(!arm64.matches(&Platform::new("windows", "arm64", None)));
    }

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
        for bad in ["docker.io", "=x", "a=", "a=http://x", "a=h/UPPER"] {
            assert!(bad.parse::<Mirror>().is_err(), "{bad}");
        }
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
