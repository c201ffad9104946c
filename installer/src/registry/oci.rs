//! Just enough of the OCI image and Docker manifest formats to route a registry.
//!
//! The store reads each manifest or index once, at load, to learn which blobs belong to
//! which repository and which manifests refer to which (`subject`). Unknown fields are
//! ignored and the bytes are always served as stored, so nothing here can alter what a
//! client receives.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// A manifest may not be larger than this (the limit registries commonly apply).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// How deep an index may nest other indexes.
pub const MAX_INDEX_DEPTH: usize = 8;

/// A descriptor as found in manifests and indexes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawDescriptor {
    #[serde(default)]
    pub media_type: String,
    #[serde(default)]
    pub digest: String,
}

/// The union of an image manifest, an image index and their Docker equivalents.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawManifest {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub config: Option<RawDescriptor>,
    #[serde(default)]
    pub layers: Vec<RawDescriptor>,
    /// Present only in an index.
    #[serde(default)]
    pub manifests: Option<Vec<RawDescriptor>>,
    /// OCI 1.1-rc "artifact manifest" blobs; harmless to honour.
    #[serde(default)]
    pub blobs: Vec<RawDescriptor>,
    #[serde(default)]
    pub subject: Option<RawDescriptor>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl RawManifest {
    pub fn is_index(&self, media_type: &str) -> bool {
        self.manifests.is_some() || media_type == OCI_INDEX || media_type == DOCKER_LIST
    }

    /// The artifact type the referrers API reports: `artifactType`, else the config's
    /// media type (OCI image spec 1.1).
    pub fn effective_artifact_type(&self) -> Option<String> {
        self.artifact_type
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| self.config.as_ref().map(|c| c.media_type.clone()))
            .filter(|t| !t.is_empty())
    }
}

/// Layers that registries are not expected to carry (Windows base layers).
pub fn is_foreign_layer(media_type: &str) -> bool {
    media_type.contains("foreign") || media_type.contains("nondistributable")
}

/// One entry of a referrers response.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The body of a referrers response: an image index.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Index<'a> {
    pub schema_version: u32,
    pub media_type: &'a str,
    pub manifests: Vec<&'a Descriptor>,
}
