//! The join channel between a node and its master, over the master registry's TLS port:
//!
//! | request | auth | answer |
//! |---|---|---|
//! | `GET /ferry/v1/cacerts` | none | the CA PEM (the node checks its hash against the token) |
//! | `GET /ferry/v1/join` | `Bearer <secret>` | [`JoinInfo`] JSON |
//! | `GET /ferry/v1/entry/<entry path>` | `Bearer <secret>` | an entry's stored bytes |
//!
//! The OCI API on the same port is open (read-only images); the join endpoints are not.

use serde::{Deserialize, Serialize};

pub const CACERTS: &str = "/ferry/v1/cacerts";
pub const JOIN: &str = "/ferry/v1/join";
pub const ENTRY_PREFIX: &str = "/ferry/v1/entry/";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinInfo {
    pub bundle_name: String,
    pub bundle_sha256: String,
    pub platform: String,
    pub cluster: Option<ferry_bundle::manifest::ClusterRecord>,
    /// Registry hosts the bundle's images come from; each gets a mirror on the node.
    pub upstream_hosts: Vec<String>,
    /// The master's TLS registry, e.g. `https://10.0.0.1:5443`.
    pub registry: String,
    /// Runtime files the node needs.
    pub files: Vec<JoinFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinFile {
    /// Role in the payload, e.g. `bin/containerd`.
    pub role: String,
    pub entry: String,
    pub compression: Option<String>,
    pub size: u64,
    pub sha256: String,
    /// What it unpacks to on the node (for the node's disk check); older masters omit it.
    #[serde(default)]
    pub unpacked: Option<u64>,
}

/// What the master needs to answer join requests: its bundle and the secret.
pub fn join_info(b: &ferry_bundle::Bundle, registry: &str) -> JoinInfo {
    let m = &b.manifest;
    let mut hosts: Vec<String> = m
        .images
        .iter()
        .filter_map(|i| {
            ferry_bundle::reference::Reference::parse(&i.name)
                .ok()
                .map(|r| r.host)
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    let payload = m
        .cluster
        .as_ref()
        .map(|c| c.distribution.clone())
        .unwrap_or_else(|| "containerd".into());
    let files = m
        .payloads
        .iter()
        .filter(|p| p.name == payload)
        .flat_map(|p| p.files.iter())
        .filter_map(|(role, entry)| {
            let e = m.entry(entry)?;
            Some(JoinFile {
                role: role.clone(),
                entry: e.path.clone(),
                compression: e.compression.clone(),
                size: e.size,
                sha256: e.sha256.clone(),
                unpacked: Some(match e.compression.as_deref() {
                    Some("zstd") => crate::install::unpacked_size(b, e),
                    _ => e.size,
                }),
            })
        })
        .collect();
    JoinInfo {
        bundle_name: m.name.clone(),
        bundle_sha256: b.footer.payload_sha256.oci(),
        platform: m.platform.clone(),
        cluster: m.cluster.clone(),
        upstream_hosts: hosts,
        registry: registry.to_string(),
        files,
    }
}
