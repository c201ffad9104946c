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
    /// Runtime files the node needs (and the `.deb`s of `packages`, role `package/<name>`).
    pub files: Vec<JoinFile>,
    /// The release of `packages` (a bundle with `PACKAGE deb`).
    #[serde(default)]
    pub os: Option<ferry_bundle::packages::OsRecord>,
    /// OS packages every node installs, as in bundle.json.
    #[serde(default)]
    pub packages: Vec<ferry_bundle::packages::PackageRecord>,
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
    /// What it unpacks to on the node (for the node's disk check); older masters omit it.
    #[serde(default)]
    pub unpacked: Option<u64>,
}

/// The platform this program runs on, as bundles name platforms (`linux/arm64`): what a
/// joining node asks its master for.
pub fn own_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    };
    format!("linux/{arch}")
}

/// Why a master cannot serve a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the master's bundle carries no runtime for {asked} (it has {has}); rebuild it with --platform {has},{asked} for a mixed cluster")]
pub struct NoRuntime {
    pub asked: String,
    pub has: String,
}

/// What the master tells a node of `platform` (`None`: the bundle's own) about joining:
/// its bundle, its registry, and the runtime files for that platform.
pub fn join_info(
    b: &ferry_bundle::Bundle,
    registry: &str,
    platform: Option<&str>,
) -> Result<JoinInfo, NoRuntime> {
    let m = &b.manifest;
    let platform = platform.unwrap_or(&m.platform).to_string();
    let hosts: Vec<String> = m.upstream_hosts().into_iter().collect();
    let payload = m
        .cluster
        .as_ref()
        .map(|c| c.distribution.clone())
        .unwrap_or_else(|| ferry_bundle::roles::PAYLOAD_CONTAINERD.into());
    let record = match m.payload_for(&payload, &platform) {
        Some(p) => Some(p),
        // A bundle without a runtime (--no-payload) joins nodes of its own platform only.
        None if m.payloads.is_empty() && platform == m.platform => None,
        None => {
            return Err(NoRuntime {
                asked: platform,
                has: m.payload_platforms().join(","),
            })
        }
    };
    // The bundle's OS packages travel too: a joining node installs them as the master did.
    let debs = m
        .packages
        .iter()
        .map(|p| (format!("package/{}", p.name), p.entry.clone()));
    let files = record
        .into_iter()
        .flat_map(|p| p.files.iter().map(|(r, e)| (r.clone(), e.clone())))
        .chain(debs)
        .filter_map(|(role, entry)| {
            let l = b.locate(&entry)?;
            let e = l.entry;
            Some(JoinFile {
                role,
                entry: e.path.clone(),
                compression: e.compression.clone(),
                size: e.size,
                sha256: e.sha256,
                unpacked: Some(match e.compression.as_deref() {
                    Some("zstd") => crate::install::unpacked_size(l.bundle, e),
                    _ => e.size,
                }),
            })
        })
        .collect();
    Ok(JoinInfo {
        bundle_name: m.name.clone(),
        bundle_sha256: b.footer.payload_sha256,
        platform,
        cluster: m.cluster.clone(),
        upstream_hosts: hosts,
        registry: registry.to_string(),
        files,
        os: m.os.clone(),
        packages: m.packages.clone(),
        site_registry: None,
    })
}
