//! `bundle.json`: what the bundle carries and where every byte of it lies.
//!
//! Unknown fields are ignored and every collection defaults to empty, so an older installer
//! can still `--info` a newer bundle of the same format version.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BundleManifest {
    /// Format version; equals the footer's.
    pub format: u32,
    pub name: String,
    #[serde(default)]
    pub version: String,
    /// `ferry <version>` that built the bundle.
    #[serde(default)]
    pub builder: String,
    /// `os/arch` of the host the bundle installs on, e.g. `linux/amd64`.
    #[serde(default)]
    pub platform: String,
    /// The Kubernetes distribution to bootstrap; `None` = container runtime only.
    #[serde(default)]
    pub cluster: Option<ClusterRecord>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Size and sha256 of the installer stub in front of the payload.
    pub installer: StubRecord,
    #[serde(default)]
    pub images: Vec<ImageRecord>,
    #[serde(default)]
    pub apps: Vec<AppRecord>,
    #[serde(default)]
    pub files: Vec<FileRecord>,
    #[serde(default)]
    pub payloads: Vec<PayloadRecord>,
    #[serde(default)]
    pub hooks: Vec<HookRecord>,
    /// Every tar entry of the payload except bundle.json itself, in payload order.
    pub entries: Vec<EntryRecord>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StubRecord {
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterRecord {
    pub distribution: String,
    pub version: String,
}

/// One image as the cluster will know it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// Full reference including registry host, e.g. `docker.io/library/nginx:1.27`.
    pub name: String,
    /// Digest of the top-level manifest (or index) stored for this name.
    pub digest: String,
    pub media_type: String,
    /// Sum of the sizes of every blob this image references (shared blobs counted fully).
    pub size: u64,
    /// Where the image came from, as written in the Kubefile.
    #[serde(default)]
    pub source: String,
    /// `os/arch` of each platform carried.
    #[serde(default)]
    pub platforms: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppRecord {
    pub name: String,
    /// `chart` or `manifests`.
    pub kind: String,
    /// Entry path (under `files/apps/<name>/`) of the chart archive or manifest directory.
    pub path: String,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub set: Vec<String>,
    #[serde(default)]
    pub images: Vec<String>,
}

/// A `COPY` into the host's filesystem.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRecord {
    /// Entry path inside the payload.
    pub entry: String,
    /// Absolute destination on the host (under `--root`).
    pub dest: String,
    pub mode: u32,
}

/// A runtime or cluster payload (`payloads/<name>`): containerd, k3s, ….
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayloadRecord {
    pub name: String,
    #[serde(default)]
    pub version: String,
    /// Entry paths of the payload's files, keyed by their role (e.g. `bin/containerd`).
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HookRecord {
    pub command: String,
}

/// One tar entry with the facts needed to check and serve it without reading the tar.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryRecord {
    pub path: String,
    /// Stored size in bytes (as in the tar header).
    pub size: u64,
    /// sha256 of the stored bytes, hex.
    pub sha256: String,
    /// Offset of the entry's first data byte, relative to the start of the payload.
    pub offset: u64,
    /// `zstd` when the stored bytes are a zstd frame of the original file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// File mode to restore on extraction (permissions only).
    #[serde(default = "default_mode")]
    pub mode: u32,
}

fn default_mode() -> u32 {
    0o644
}

impl BundleManifest {
    pub fn entry(&self, path: &str) -> Option<&EntryRecord> {
        self.entries.iter().find(|e| e.path == path)
    }
    /// The entry that holds an OCI blob, if the bundle carries it.
    pub fn blob_entry(&self, digest_hex: &str) -> Option<&EntryRecord> {
        self.entry(&format!("{}/blobs/sha256/{digest_hex}", crate::OCI_DIR))
    }
    pub fn payload_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}
