//! The join channel between a node and its master, over the master registry's TLS port:
//!
//! | request | auth | answer |
//! |---|---|---|
//! | `GET /ferry/v1/cacerts` | none | the CA PEM (the node checks its hash against the token) |
//! | `GET /ferry/v1/join` | `Bearer <secret>` | [`JoinInfo`] JSON |
//! | `GET /ferry/v1/entry/<entry path>` | `Bearer <secret>` | an entry's stored bytes |
//!
//! The OCI API on the same port is open (read-only images); the join endpoints are not.

use ferry_bundle::Sha256Digest;
use serde::{Deserialize, Serialize};

pub const CACERTS: &str = "/ferry/v1/cacerts";
pub const JOIN: &str = "/ferry/v1/join";
pub const ENTRY_PREFIX: &str = "/ferry/v1/entry/";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinInfo {
    pub bundle_name: String,
    /// The master's bundle identity (payload sha256).
    pub bundle_sha256: Sha256Digest,
    pub platform: String,
    pub cluster: Option<ferry_bundle::manifest::ClusterRecord>,
    /// Registry hosts the bundle's images come from; each gets a mirror on the node.
    pub upstream_hosts: Vec<String>,
    /// The master's TLS registry, e.g. `https://10.0.0.1:5443`.
    pub registry: String,
    /// Runtime files the node needs.
    pub files: Vec<JoinFile>,
    /// `--site-registry`: the site's registry (with its CA and login) every node pulls
    /// from instead of the master's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_registry: Option<crate::site::SiteConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinFile {
    /// Role in the payload, e.g. `bin/containerd`.
    pub role: String,
    pub entry: String,
    pub compression: Option<String>,
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// What the master needs to answer join requests: its bundle and the secret.
pub fn join_info(b: &ferry_bundle::Bundle, registry: &str) -> JoinInfo {
    let m = &b.manifest;
    let hosts: Vec<String> = m.upstream_hosts().into_iter().collect();
    let payload = m
        .cluster
        .as_ref()
        .map(|c| c.distribution.clone())
        .unwrap_or_else(|| ferry_bundle::roles::PAYLOAD_CONTAINERD.into());
    let files = m
        .payloads
        .iter()
        .filter(|p| p.name == payload)
        .flat_map(|p| p.files.iter())
        .filter_map(|(role, entry)| {
            let e = b.locate(entry)?.entry;
            Some(JoinFile {
                role: role.clone(),
                entry: e.path.clone(),
                compression: e.compression.clone(),
                size: e.size,
                sha256: e.sha256,
            })
        })
        .collect();
    JoinInfo {
        bundle_name: m.name.clone(),
        bundle_sha256: b.footer.payload_sha256,
        platform: m.platform.clone(),
        cluster: m.cluster.clone(),
        upstream_hosts: hosts,
        registry: registry.to_string(),
        files,
        site_registry: None,
    }
}
