//! Image references, normalised the way Docker does (`nginx` → `docker.io/library/nginx:latest`).
//!
//! The bundle stores every image under its full normalised name, and the registry routes by
//! `(host, repository)`, so both halves must agree on normalisation: it lives here, once.

use std::fmt;

pub const DEFAULT_HOST: &str = "docker.io";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host (with port if any), e.g. `docker.io`, `localhost:5000`.
    pub host: String,
    /// Repository path, e.g. `library/nginx`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>` pin.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises a reference. A reference with neither tag nor digest gets
    /// `latest`, as `docker pull` does.
    pub fn parse(s: &str) -> Result<Reference, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty image reference".into());
        }
        if s.len() > 4096 {
            return Err("image reference longer than 4096 characters".into());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let (alg, hex) = d
                    .split_once(':')
                    .ok_or_else(|| format!("{s}: digest must be <algorithm>:<hex>"))?;
                if alg != "sha256" || crate::Sha256Digest::from_hex(hex).is_none() {
                    return Err(format!(
                        "{s}: digest must be sha256: followed by 64 lowercase hex characters"
                    ));
                }
                (r, Some(d.to_string()))
            }
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
            check_tag(t).map_err(|e| format!("{s}: {e}"))?;
        }
        let (host, repo) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_HOST.to_string(), name.to_string()),
        };
        let host = if host == "index.docker.io" || host == "registry-1.docker.io" {
            DEFAULT_HOST.to_string()
        } else {
            host
        };
        let repository = if host == DEFAULT_HOST && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo
        };
        check_repository(&repository).map_err(|e| format!("{s}: {e}"))?;
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

    /// Returns a copy with a different tag/digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
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

/// Tag grammar of the distribution spec: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn check_tag(t: &str) -> Result<(), String> {
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
        Err(format!("invalid tag {t:?}"))
    }
}

/// Repository grammar of the distribution spec: lowercase components of
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` separated by `/`.
pub fn check_repository(r: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "invalid repository name {r:?} (lowercase letters, digits, and . _ - / separators)"
        ))
    };
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
        assert_eq!(
            n("index.docker.io/library/busybox"),
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
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "UPPER/case",
            "a@sha256:xyz",
            "a:b:c",
            "a//b",
            "nginx:-x",
            "a/../b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
