//! The site's own registry as where the cluster pulls from (`--site-registry`).
//!
//! Many air-gapped networks already run a registry (Harbor, Distribution, Zot) and want
//! every image there, not in a registry on the first master. With `--site-registry
//! <host[:port]/path>` the install pushes every image the bundle carries into it, under
//! `<path>/<original host>/<original repository>` (`harbor.site/ferry/docker.io/library/
//! nginx:1.27`): hosts are kept apart, so `docker.io/x/y` and `quay.io/x/y` never collide,
//! and the original name can be derived from the pushed one and back. Then every node's
//! runtime is told to pull each original host *through* that path — pod specs, charts and
//! the node's image list keep the original names:
//!
//! - **containerd** (`hosts.toml`, see `crate::install::runtime`): one host entry per
//!   upstream, `https://<site>/v2/<path>/<host>` with `override_path = true`. containerd
//!   otherwise appends `/v2` to a mirror's path (`<site>/<path>/<host>/v2/…`, which no
//!   registry serves); with `override_path` the path is the API root and requests go to
//!   `/v2/<path>/<host>/<repository>/manifests/<tag>`, exactly where the push put them.
//!   (containerd has no `rewrite`; k3s adds one to its containerd.)
//! - **k3s** (`registries.yaml`, see `crate::k3s::registries`): the documented
//!   `rewrite` of each mirror, `"^(.*)$": "<path>/<host>/$1"`, with the endpoint
//!   `https://<site>`; k3s's own docs give a mirror endpoint's path no API-root meaning,
//!   while `rewrite` is documented (k3s ≥ 1.21) for exactly this re-homing.
//!
//! Host names in repository paths: a repository component may hold only lowercase
//! letters, digits and `.`, `_`, `-` separators, so a host's port colon becomes `_`
//! (`registry.local:5000` → `registry.local_5000`) and an IPv6 host loses its brackets
//! with its colons as `-` ([`host_component`]).
//!
//! The push is the install's `site_registry` phase: one engine step per image
//! ([`crate::engine::PushStep`]), journaled, re-run after an interruption, each step
//! skipping what the site already has ([`push`]). The client ([`http`]) is a small blocking
//! HTTP/1.1 client over the installer's rustls (plain HTTP only with
//! `--site-registry-insecure`), so the stub stays within its size budget.

pub mod http;
pub mod push;

use crate::host::HostPath;
use ferry_bundle::reference::{check_repository, normalise_host, Reference};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where the site's registry files live on every node.
pub const DIR: &str = "/etc/ferry/site-registry";

/// The site registry's CA (PEM), when `--site-registry-ca` was given.
pub fn ca_path() -> HostPath {
    HostPath::new(format!("{DIR}/ca.pem")).expect("fixed path")
}

/// The site registry's settings (with credentials), for the join channel (mode 0600).
pub fn config_path() -> HostPath {
    HostPath::new(format!("{DIR}/site.json")).expect("fixed path")
}

/// Credentials for the site's registry. Debug output hides the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Login({}, <redacted>)", self.username)
    }
}

impl Login {
    /// The value of an `Authorization: Basic …` header.
    pub fn basic(&self) -> String {
        use base64::Engine as _;
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The site's registry: where images go and how to reach it. Also what joined nodes get
/// in their join info, and the content of [`config_path`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteConfig {
    /// `host[:port]`.
    pub registry: String,
    /// Repository path prefix (`ferry`, `proj/mirror`); may be empty.
    #[serde(default)]
    pub prefix: String,
    /// Plain HTTP (`--site-registry-insecure`).
    #[serde(default)]
    pub plain_http: bool,
    /// CA the registry's certificate chains to (PEM), if not a system-trusted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<Login>,
}

/// Why `--site-registry` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--site-registry {value:?}: {problem}; expected host[:port]/path, e.g. harbor.site:443/ferry"
)]
pub struct SiteSpecError {
    pub value: String,
    pub problem: String,
}

/// A registry host as one repository path component (see the module doc).
pub fn host_component(host: &str) -> String {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, p)) => (ip.to_string(), p.strip_prefix(':').map(str::to_string)),
            None => (rest.to_string(), None),
        },
        None => match host.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (host.to_string(), None),
        },
    };
    let name = name.to_ascii_lowercase().replace(':', "-");
    match port {
        Some(p) => format!("{name}_{p}"),
        None => name,
    }
}

impl SiteConfig {
    /// Parses `host[:port][/path]` into a config (plain HTTP, no CA, no login yet).
    pub fn parse(spec: &str) -> Result<SiteConfig, SiteSpecError> {
        let bad = |problem: &str| SiteSpecError {
            value: spec.to_string(),
            problem: problem.to_string(),
        };
        let s = spec.trim();
        if s.contains("://") {
            return Err(bad(
                "give host[:port]/path, not a URL (plain HTTP is --site-registry-insecure)",
            ));
        }
        let (host, prefix) = match s.split_once('/') {
            Some((h, p)) => (h, p.trim_matches('/')),
            None => (s, ""),
        };
        let registry = normalise_host(host).map_err(|e| bad(&format!("host: {e}")))?;
        if registry == "docker.io" {
            return Err(bad("Docker Hub is not a site registry"));
        }
        if !prefix.is_empty() {
            check_repository(prefix).map_err(|e| bad(&format!("path: {e}")))?;
        }
        Ok(SiteConfig {
            registry,
            prefix: prefix.to_string(),
            plain_http: false,
            ca_pem: None,
            login: None,
        })
    }

    pub fn scheme(&self) -> &'static str {
        if self.plain_http {
            "http"
        } else {
            "https"
        }
    }

    /// `scheme://host[:port]`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.registry)
    }

    /// `scheme://host[:port]/prefix`, for people.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            self.base_url()
        } else {
            format!("{}/{}", self.base_url(), self.prefix)
        }
    }

    /// `prefix/<host component>` of an upstream host: where its repositories live.
    pub fn host_prefix(&self, upstream: &str) -> String {
        let h = host_component(upstream);
        if self.prefix.is_empty() {
            h
        } else {
            format!("{}/{h}", self.prefix)
        }
    }

    /// The site repository an image is pushed to.
    pub fn repository(&self, image: &Reference) -> String {
        format!("{}/{}", self.host_prefix(&image.host), image.repository)
    }

    /// `host[:port]/repository[:tag]` of an image on the site, for people.
    pub fn target(&self, image: &Reference) -> String {
        let mut s = format!("{}/{}", self.registry, self.repository(image));
        if let Some(t) = &image.tag {
            s.push(':');
            s.push_str(t);
        }
        s
    }

    /// containerd's mirror URL for `upstream` (a `hosts.toml` host with `override_path`).
    pub fn mirror_url(&self, upstream: &str) -> String {
        format!("{}/v2/{}", self.base_url(), self.host_prefix(upstream))
    }

    /// This config without credentials (what is safe to show and to record).
    pub fn public(&self) -> SiteConfig {
        SiteConfig {
            login: None,
            ..self.clone()
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("the site config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_specs_parse_and_refuse_urls_and_bad_paths() {
        let s = SiteConfig::parse("harbor.site:8443/proj/ferry/").unwrap();
        assert_eq!(s.registry, "harbor.site:8443");
        assert_eq!(s.prefix, "proj/ferry");
        assert_eq!(SiteConfig::parse("reg.local").unwrap().prefix, "");
        for bad in [
            "https://h/x",
            "h/UPPER",
            "h/../x",
            "docker.io/x",
            "",
            "h\"x/p",
        ] {
            assert!(SiteConfig::parse(bad).is_err(), "{bad}");
        }
        let e = SiteConfig::parse("http://h/x").unwrap_err().to_string();
        assert!(e.contains("--site-registry-insecure"), "{e}");
    }

    #[test]
    fn images_keep_their_host_apart_under_the_prefix() {
        let s = SiteConfig::parse("site:5000/ferry").unwrap();
        let r = |x: &str| Reference::parse(x).unwrap();
        assert_eq!(
            s.repository(&r("nginx:1.27")),
            "ferry/docker.io/library/nginx"
        );
        assert_eq!(
            s.repository(&r("quay.io/library/nginx:1")),
            "ferry/quay.io/library/nginx"
        );
        assert_eq!(
            s.target(&r("registry.local:5000/a/b:2")),
            "site:5000/ferry/registry.local_5000/a/b:2"
        );
        assert_eq!(
            s.mirror_url("docker.io"),
            "https://site:5000/v2/ferry/docker.io"
        );
        assert_eq!(host_component("[fd00::1]:5000"), "fd00--1_5000");
        assert_eq!(host_component("[fd00::1]"), "fd00--1");
        for h in [
            "registry.local:5000",
            "[fd00::1]:5000",
            "quay.io",
            "10.0.0.1:80",
        ] {
            let repo = format!("p/{}/x", host_component(h));
            assert!(check_repository(&repo).is_ok(), "{repo}");
        }
        let plain = SiteConfig {
            plain_http: true,
            ..SiteConfig::parse("10.0.0.9:5000").unwrap()
        };
        assert_eq!(
            plain.mirror_url("quay.io"),
            "http://10.0.0.9:5000/v2/quay.io"
        );
        assert_eq!(plain.url(), "http://10.0.0.9:5000");
    }

    #[test]
    fn the_login_is_never_shown() {
        let l = Login {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{l:?}").contains("hunter2"));
        let s = SiteConfig {
            login: Some(l),
            ..SiteConfig::parse("h/p").unwrap()
        };
        assert!(!String::from_utf8(s.public().to_json())
            .unwrap()
            .contains("hunter2"));
    }
}
