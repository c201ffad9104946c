//! Image references and registry hosts, normalised the way Docker does
//! (`nginx` → `docker.io/library/nginx:latest`), defined once for both halves.
//!
//! The bundle stores every image under its full normalised name, the registry routes by
//! `(host, repository)`, the runtime phase writes one `certs.d/<host>/hosts.toml` per
//! host and the k3s driver one `registries.yaml` mirror per host, and the builder looks
//! up credentials by host. All of them must agree on what a host is, so
//! [`normalise_host`] is the only place that decides: it validates `host[:port]` and
//! `[v6]:port`, lowercases, and folds Docker Hub's aliases into `docker.io`. Because a
//! host becomes a directory name and a TOML/YAML key on the target, anything that could
//! climb a path or break out of a string (`/`, `..`, quotes, whitespace, control
//! characters) is refused here rather than escaped in each writer.
//!
//! A [`Reference`] is (de)serialised as its string form and parsed — so validated — when
//! bundle.json is read: a hostile name never gets past `Bundle::open`.

use crate::digest::{DigestError, Sha256Digest};
use std::fmt;

/// Docker Hub's canonical name, as references are normalised.
pub const DEFAULT_HOST: &str = "docker.io";
/// Other names of Docker Hub that references may use; folded into [`DEFAULT_HOST`].
pub const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];
/// The host Docker Hub's registry API actually answers on (`docker.io` does not).
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// Longest reference accepted.
pub const MAX_REFERENCE_LEN: usize = 4096;
/// Longest registry host accepted (a DNS name plus `:port`).
pub const MAX_HOST_LEN: usize = 253 + 6;

/// Why a reference, host, tag or repository was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error("image reference longer than {MAX_REFERENCE_LEN} characters")]
    TooLong,
    #[error("registry host {host:?} is invalid: {reason}")]
    Host { host: String, reason: &'static str },
    #[error("invalid tag {0:?} (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')")]
    Tag(String),
    #[error("invalid repository name {0:?} (lowercase letters, digits, and . _ - / separators)")]
    Repository(String),
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// A problem of one part, with the whole reference it was found in.
    #[error("image reference {reference:?}: {problem}")]
    In {
        reference: String,
        problem: Box<ReferenceError>,
    },
}

fn host_err(host: &str, reason: &'static str) -> ReferenceError {
    ReferenceError::Host {
        host: host.to_string(),
        reason,
    }
}

/// Validates and normalises a registry host: `name[:port]` (DNS labels of letters,
/// digits and `-`) or `[ipv6][:port]`, lowercased, Docker Hub's aliases folded into
/// `docker.io`. Refuses everything else, in particular `/`, `..`, quotes, whitespace and
/// control characters, so the result is safe as a path component and inside a quoted
/// TOML or YAML string.
pub fn normalise_host(host: &str) -> Result<String, ReferenceError> {
    if host.is_empty() {
        return Err(host_err(host, "empty"));
    }
    if host.len() > MAX_HOST_LEN {
        return Err(host_err(host, "longer than 259 characters"));
    }
    if let Some(bad) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')))
    {
        return Err(host_err(
            host,
            match bad {
                '/' => "contains '/'",
                c if c.is_whitespace() => "contains whitespace",
                c if c.is_control() => "contains a control character",
                '"' | '\'' | '`' => "contains a quote",
                _ => "only letters, digits, '.', '-', ':' and [ipv6] are allowed",
            },
        ));
    }
    let host = host.to_ascii_lowercase();
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| host_err(&host, "unterminated [ipv6]"))?;
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(host_err(&host, "not an IPv6 address inside [ ]"));
        }
        match after {
            "" => (None, None),
            p => (
                None,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| host_err(&host, "text after ]"))?,
                ),
            ),
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host.as_str()), None),
        }
    };
    if let Some(name) = name {
        if name.contains('[') || name.contains(']') {
            return Err(host_err(&host, "brackets are only for [ipv6]"));
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if !name.split('.').all(label_ok) {
            return Err(host_err(
                &host,
                "each dot-separated label must be 1-63 letters, digits or '-' (no empty label, no leading or trailing '-')",
            ));
        }
    }
    if let Some(p) = port {
        if p.is_empty()
            || p.len() > 5
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.parse::<u32>().map_or(true, |n| n > 65535)
        {
            return Err(host_err(&host, "port must be a number up to 65535"));
        }
    }
    Ok(if DOCKER_HUB_ALIASES.contains(&host.as_str()) {
        DEFAULT_HOST.to_string()
    } else {
        host
    })
}

/// Docker's rule for the first component of a name: a registry host if it contains `.`
/// or `:` or is `localhost`; otherwise a Docker Hub namespace.
pub fn looks_like_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

/// Docker Hub's official images live under `library/`: `docker.io` + `nginx` is
/// `library/nginx`, as `docker pull` normalises it.
pub fn hub_repository(host: &str, repository: &str) -> String {
    if host == DEFAULT_HOST && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_string()
    }
}

/// The host a normalised registry host's API answers on: [`DOCKER_HUB_API_HOST`] for
/// `docker.io` (which has no API of its own), the host itself otherwise.
pub fn api_host(host: &str) -> &str {
    if host == DEFAULT_HOST {
        DOCKER_HUB_API_HOST
    } else {
        host
    }
}

/// The URL a normalised host's registry API answers on: `https://registry-1.docker.io`
/// for `docker.io`, `https://<host>` otherwise. Used as the upstream `server` of
/// containerd's `hosts.toml`.
pub fn upstream_server(host: &str) -> String {
    format!("https://{}", api_host(host))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host (with port if any), normalised by [`normalise_host`]: `docker.io`,
    /// `localhost:5000`.
    pub host: String,
    /// Repository path, e.g. `library/nginx`.
    pub repository: String,
    pub tag: Option<String>,
    /// `@sha256:…` pin.
    pub digest: Option<Sha256Digest>,
}

impl Reference {
    /// Parses and normalises a reference. A reference with neither tag nor digest gets
    /// `latest`, as `docker pull` does.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let s = s.trim();
        Self::parse_inner(s).map_err(|problem| match problem {
            e @ (ReferenceError::Empty | ReferenceError::TooLong) => e,
            problem => ReferenceError::In {
                reference: s.to_string(),
                problem: Box::new(problem),
            },
        })
    }

    fn parse_inner(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() > MAX_REFERENCE_LEN {
            return Err(ReferenceError::TooLong);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(Sha256Digest::parse(d)?)),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        if let Some(t) = &tag {
            check_tag(t)?;
        }
        let (host, repo) = match name.split_once('/') {
            Some((first, remainder)) if looks_like_host(first) => {
                (normalise_host(first)?, remainder.to_string())
            }
            _ => (DEFAULT_HOST.to_string(), name.to_string()),
        };
        let repository = hub_repository(&host, &repo);
        check_repository(&repository)?;
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t,
        };
        Ok(Reference {
            host,
            repository,
            tag,
            digest,
        })
    }

    /// `host/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    /// Returns a copy with a different tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The URL this image's registry answers on (see [`upstream_server`]).
    pub fn upstream_server(&self) -> String {
        upstream_server(&self.host)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

serde_as_string!(Reference);

/// Tag grammar of the distribution spec: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn check_tag(t: &str) -> Result<(), ReferenceError> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::Tag(t.to_string()))
    }
}

/// Repository grammar of the distribution spec: lowercase components of
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` separated by `/`.
pub fn check_repository(r: &str) -> Result<(), ReferenceError> {
    let bad = || Err(ReferenceError::Repository(r.to_string()));
    if r.is_empty() || r.len() > 255 {
        return bad();
    }
    for comp in r.split('/') {
        let b = comp.as_bytes();
        if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric()
        {
            return bad();
        }
        if !b.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'_' || c == b'-'
        }) {
            return bad();
        }
        if comp.contains("..") || comp.contains("___") || comp.contains("._") || comp.contains("_.")
        {
            return bad();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(n("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(n("nginx:1.27"), "docker.io/library/nginx:1.27");
        assert_eq!(n("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(
            n("quay.io/argoproj/argocd:v2"),
            "quay.io/argoproj/argocd:v2"
        );
        assert_eq!(n("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(n("localhost/app:1"), "localhost/app:1");
        assert_eq!(n("Quay.IO/x/y:1"), "quay.io/x/y:1");
        assert_eq!(n("[::1]:5000/app:1"), "[::1]:5000/app:1");
        assert_eq!(
            n("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            n("registry-1.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            n(&format!("registry.k8s.io/pause@{d}")),
            format!("registry.k8s.io/pause@{d}")
        );
        assert_eq!(
            n(&format!("nginx:1@{d}")),
            format!("docker.io/library/nginx:1@{d}")
        );
        let r = Reference::parse(&format!("nginx@{d}")).unwrap();
        assert_eq!(r.digest.unwrap().to_string(), d);
        assert_eq!(r.tag, None);
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "UPPER/case",
            "a@sha256:xyz",
            "a@md5:00",
            "a:b:c",
            "a//b",
            "nginx:-x",
            "a/../b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn refuses_hosts_that_could_inject_into_paths_or_toml() {
        for bad in [
            "../x/y:1",
            "a..b/x:1",
            "evil\".io/x:1",
            "evil'.io/x:1",
            "a.io\n[host]/x:1",
            "a.io\r/x:1",
            "a\u{7}.io/x:1",
            "a .io/x:1",
            "a.io:99999/x:1",
            "[zz]:1/x:1",
            "a.io]/x:1",
        ] {
            let e = Reference::parse(bad).unwrap_err();
            assert!(
                matches!(&e, ReferenceError::In { problem, .. } if matches!(**problem, ReferenceError::Host { .. } | ReferenceError::Repository(_) | ReferenceError::Tag(_))),
                "{bad:?}: {e:?}"
            );
        }
        let e = Reference::parse("a\"b.io/x:1").unwrap_err().to_string();
        assert!(e.contains("quote"), "{e}");
        let e = Reference::parse("a\nb.io/x:1").unwrap_err().to_string();
        assert!(
            e.contains("control character") || e.contains("whitespace"),
            "{e}"
        );
        assert!(
            !e.contains('\n'),
            "the message shows the newline escaped: {e}"
        );
    }

    #[test]
    fn hosts_are_validated_and_hub_aliases_folded() {
        let ok = |h: &str| normalise_host(h).unwrap();
        assert_eq!(ok("quay.io"), "quay.io");
        assert_eq!(ok("Registry-1.Docker.io"), "docker.io");
        assert_eq!(ok("index.docker.io"), "docker.io");
        assert_eq!(ok("docker.io"), "docker.io");
        assert_eq!(ok("localhost:5000"), "localhost:5000");
        assert_eq!(ok("[::1]:5000"), "[::1]:5000");
        assert_eq!(ok("[fe80::1]"), "[fe80::1]");
        assert_eq!(ok("10.0.0.1:443"), "10.0.0.1:443");
        for bad in [
            "", "a..b", "..", ".", "-a.io", "a-.io", "a.io:", "a.io:x", "a.io/b", "a/../b", "a b",
            "a\tb", "a\nb", "a\r\nb", "a\0b", "a\"b", "a'b", "a`b", "a=b", "a;b", "[zz]", "[::1",
            "[::1]x", "a[b]", "x:123456", "x:65536", "ä.io",
        ] {
            assert!(normalise_host(bad).is_err(), "{bad:?} accepted");
        }
        assert!(normalise_host(&"a".repeat(300)).is_err());
    }

    #[test]
    fn upstream_servers() {
        assert_eq!(upstream_server("docker.io"), "https://registry-1.docker.io");
        assert_eq!(upstream_server("quay.io"), "https://quay.io");
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("localhost:5000"), "localhost:5000");
        assert_eq!(
            Reference::parse("localhost:5000/x")
                .unwrap()
                .upstream_server(),
            "https://localhost:5000"
        );
    }

    #[test]
    fn hub_gets_library() {
        assert_eq!(hub_repository("docker.io", "app"), "library/app");
        assert_eq!(hub_repository("docker.io", "a/b"), "a/b");
        assert_eq!(hub_repository("quay.io", "app"), "app");
    }

    #[test]
    fn serde_is_the_string_form_and_validates() {
        let r: Reference = serde_json::from_str("\"nginx:1\"").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx:1");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            "\"docker.io/library/nginx:1\""
        );
        assert!(serde_json::from_str::<Reference>("\"../x:1\"").is_err());
        assert!(serde_json::from_str::<Reference>("\"a\\\".io/x\"").is_err());
    }
}
