//! Where the bytes of a reference come from: scheme, host and repository path on the wire.
//!
//! The image's *name* never changes (the bundle stores `docker.io/library/nginx`); only the
//! place it is fetched from does. Docker Hub's API lives on `registry-1.docker.io`, mirrors
//! substitute host and prefix, and only hosts listed as insecure are spoken to over HTTP.

use super::options::PullOptions;
use ferry_bundle::reference::{api_host, Reference};

/// A resolved place to pull one repository from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Host (with port) actually contacted.
    pub host: String,
    /// Repository path on that host.
    pub repository: String,
    /// Host to look credentials up under (Docker config keys use `docker.io`/the mirror host).
    pub auth_host: String,
    /// The upstream this endpoint mirrors, if it is a mirror; for messages.
    pub mirror_of: Option<String>,
}

impl Endpoint {
    /// Maps a reference to the endpoint to contact, applying the first mirror whose
    /// upstream is the reference's host.
    pub fn resolve(reference: &Reference, opts: &PullOptions) -> Endpoint {
        // Already normalised when the reference was parsed.
        let upstream = reference.host.clone();
        let mirror = opts.mirrors.iter().find(|m| m.upstream == upstream);
        let (host, repository, mirror_of) = match mirror {
            Some(m) if m.prefix.is_empty() => (
                m.host.clone(),
                reference.repository.clone(),
                Some(upstream.clone()),
            ),
            Some(m) => (
                m.host.clone(),
                format!("{}/{}", m.prefix, reference.repository),
                Some(upstream.clone()),
            ),
            None => (
                api_host(&upstream).to_string(),
                reference.repository.clone(),
                None,
            ),
        };
        let scheme = if opts.is_insecure(&host) {
            "http"
        } else {
            "https"
        };
        let auth_host = if mirror_of.is_some() {
            host.clone()
        } else {
            upstream
        };
        Endpoint {
            scheme,
            host,
            repository,
            auth_host,
            mirror_of,
        }
    }

    /// `<scheme>://<host>/v2/<repository>/manifests/<tag-or-digest>`
    pub fn manifest_url(&self, reference: &str) -> String {
        format!(
            "{}://{}/v2/{}/manifests/{}",
            self.scheme, self.host, self.repository, reference
        )
    }

    /// `<scheme>://<host>/v2/<repository>/blobs/<digest>`
    pub fn blob_url(&self, digest: &str) -> String {
        format!(
            "{}://{}/v2/{}/blobs/{}",
            self.scheme, self.host, self.repository, digest
        )
    }

    /// The default token scope for pulling this repository.
    pub fn pull_scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }

    /// The token scope for pushing to this repository (pushing reads too: HEAD first).
    pub fn push_scope(&self) -> String {
        format!("repository:{}:pull,push", self.repository)
    }

    /// `<scheme>://<host>/v2/<repository>/blobs/uploads/`: where a blob upload starts.
    pub fn upload_url(&self) -> String {
        format!(
            "{}://{}/v2/{}/blobs/uploads/",
            self.scheme, self.host, self.repository
        )
    }

    /// An absolute URL for a `Location` a registry answered (which may be a path).
    pub fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}://{}{}", self.scheme, self.host, location)
        }
    }

    /// How the registry is named in messages: `localhost:5000 (mirror of docker.io)`.
    pub fn display_host(&self) -> String {
        match &self.mirror_of {
            Some(up) => format!("{} (mirror of {up})", self.host),
            None => self.host.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pull::options::Mirror;

    fn ep(r: &str, opts: &PullOptions) -> Endpoint {
        Endpoint::resolve(&Reference::parse(r).unwrap(), opts)
    }

    #[test]
    fn maps_references_to_urls() {
        let o = PullOptions::default();
        let e = ep("nginx:1.27", &o);
        assert_eq!(
            e.manifest_url("1.27"),
            "https://registry-1.docker.io/v2/library/nginx/manifests/1.27"
        );
        assert_eq!(e.auth_host, "docker.io");
        assert_eq!(e.pull_scope(), "repository:library/nginx:pull");
        let e = ep("quay.io/argoproj/argocd:v2", &o);
        assert_eq!(
            e.blob_url("sha256:ab"),
            "https://quay.io/v2/argoproj/argocd/blobs/sha256:ab"
        );
        assert_eq!(e.display_host(), "quay.io");
    }

    #[test]
    fn only_listed_hosts_are_plain_http() {
        let o = PullOptions {
            insecure_registries: vec!["localhost:5000".into()],
            ..Default::default()
        };
        assert_eq!(ep("localhost:5000/app", &o).scheme, "http");
        assert_eq!(ep("localhost:5001/app", &o).scheme, "https");
        assert_eq!(ep("localhost/app", &o).scheme, "https");
    }

    #[test]
    fn mirrors_change_where_not_what() {
        let o = PullOptions {
            mirrors: vec!["docker.io=127.0.0.1:5000/hub".parse::<Mirror>().unwrap()],
            insecure_registries: vec!["127.0.0.1:5000".into()],
            ..Default::default()
        };
        let e = ep("busybox", &o);
        assert_eq!(
            e.manifest_url("latest"),
            "http://127.0.0.1:5000/v2/hub/library/busybox/manifests/latest"
        );
        assert_eq!(e.auth_host, "127.0.0.1:5000");
        assert_eq!(e.display_host(), "127.0.0.1:5000 (mirror of docker.io)");
        assert_eq!(e.pull_scope(), "repository:hub/library/busybox:pull");
        // Other registries are untouched.
        assert_eq!(ep("quay.io/a/b", &o).host, "quay.io");
        // No prefix: same repository path.
        let o = PullOptions {
            mirrors: vec!["docker.io=m.local".parse::<Mirror>().unwrap()],
            ..Default::default()
        };
        assert_eq!(
            ep("bitnami/redis:7", &o).manifest_url("7"),
            "https://m.local/v2/bitnami/redis/manifests/7"
        );
    }
}
