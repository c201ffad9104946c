//! The OCI image model, defined once for both halves: media types, descriptors,
//! platforms, the manifest/index parser, and the `oci/index.json` writer and reader.
//!
//! The builder pulls and walks manifests, makes manifests for `docker save` tarballs and
//! writes the bundle's layout index; the installer's registry reads the same documents
//! to learn which blobs belong to which repository, and serves their media types as
//! `Content-Type`. Where each half had its own model they disagreed (which media types
//! are documents, whether a non-sha256 descriptor is skipped or refused); here there is
//! one, with the rules:
//!
//! - Manifests and indexes are parsed by one union type ([`Manifest`]): OCI image
//!   manifests and Docker schema2 manifests share a shape (config + layers), as do OCI
//!   indexes and Docker manifest lists. Unknown fields are ignored; the stored bytes are
//!   always served as-is, so nothing here can alter what a client receives.
//! - Digests are [`Sha256Digest`]: the bundle and the cache are addressed by sha256, so a
//!   descriptor of another algorithm cannot be carried and is refused when parsed.
//! - Every media type read is checked ([`check_media_type`]): a media type reaches HTTP
//!   headers, so CR, LF, other control characters and quotes are refused at load.
//! - Docker schema1 (signed, pre-2017) is refused with a hint: converting it would change
//!   digests.
//!
//! # Why a hand model and not `oci-spec`
//!
//! The builder still uses `oci-spec` (it checks the manifests it makes against it, and the
//! tests here check this model's output against it). But the bundle crate is linked into
//! the static installer stub, which is size-gated at 6 MiB: measured, linking `oci-spec`
//! (with its `regex`, `strum`, `derive_builder` and `getset` code) into the stub grew it
//! from 5,646,120 to 6,436,648 bytes (+790 KB, +14 %), over the gate. It would also be
//! the wrong strictness for a registry: `oci-spec` refuses documents that real
//! registries serve (Docker lists, missing fields) and has its own digest type. The
//! subset here is small and tested against the spec's examples.

use crate::digest::Sha256Digest;
use crate::reference::{looks_like_host, Reference, ReferenceError};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI 1.1-rc "artifact manifest" (withdrawn from the final spec, still found in the
/// wild): its `blobs` are honoured like layers.
pub const OCI_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Prefix of Docker schema1 media types (`…v1+json`, `…v1+prettyjws`).
pub const DOCKER_SCHEMA1_PREFIX: &str = "application/vnd.docker.distribution.manifest.v1";

/// The `Accept` header for manifest requests: everything ferry can store, nothing else,
/// so a registry never down-converts to schema1.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest or index accepted: the OCI distribution spec's 4 MiB, which keeps a
/// hostile registry or bundle from filling memory with one.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// How deep indexes may nest other indexes.
pub const MAX_INDEX_DEPTH: usize = 8;
/// Longest media type accepted.
pub const MAX_MEDIA_TYPE_LEN: usize = 255;

/// Annotation containerd and ferry use for an image's full name in a layout index.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// OCI's own name annotation: a tag (as ferry writes it), or sometimes a full reference
/// (as `skopeo copy … oci:dir:docker.io/library/x:1` writes it).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Content of `oci/oci-layout`.
pub const LAYOUT_FILE: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// Why an OCI document or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OciError {
    #[error("media type {0:?} is not type/subtype[;params] of printable characters (control characters, quotes and backslashes are refused)")]
    MediaType(String),
    #[error(
        "invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"
    )]
    Platform(String),
    #[error("it is {0} bytes; a manifest may have at most {MAX_MANIFEST_BYTES}")]
    TooLarge(u64),
    #[error("not a valid manifest, index or layout index: {0}")]
    Malformed(String),
    #[error("Docker schema1 manifests are deprecated and not supported; re-push the image with a current docker, skopeo or crane")]
    Schema1,
    #[error("media type {0:?} is neither an image manifest nor an index")]
    Unsupported(String),
}

/// True for an OCI index or a Docker manifest list.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// True for a document with a config and layers (or blobs): OCI and Docker image
/// manifests and the OCI 1.1-rc artifact manifest.
pub fn is_image_manifest(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_MANIFEST | DOCKER_MANIFEST | OCI_ARTIFACT_MANIFEST
    )
}

/// True for a media type that names a document (manifest or index) rather than a blob.
pub fn is_document(media_type: &str) -> bool {
    is_index(media_type) || is_image_manifest(media_type)
}

/// True for Docker schema1 media types.
pub fn is_schema1(media_type: &str) -> bool {
    media_type.starts_with(DOCKER_SCHEMA1_PREFIX)
}

/// Layers that registries are not expected to carry (Windows base layers).
pub fn is_foreign_layer(media_type: &str) -> bool {
    media_type.contains("foreign") || media_type.contains("nondistributable")
}

/// True for image config media types whose `os`/`architecture` fields are meaningful
/// (artifacts such as Helm charts have other configs and no platform).
pub fn is_image_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

/// Checks a media type: `type/subtype` of RFC 6838 restricted-name characters, then
/// optionally `;` parameters of printable ASCII without quotes or backslashes. A media
/// type is sent as `Content-Type`, so anything that could split or end a header line is
/// refused.
pub fn check_media_type(mt: &str) -> Result<(), OciError> {
    let bad = || Err(OciError::MediaType(mt.to_string()));
    if mt.is_empty() || mt.len() > MAX_MEDIA_TYPE_LEN {
        return bad();
    }
    let (essence, params) = match mt.split_once(';') {
        Some((e, p)) => (e, Some(p)),
        None => (mt, None),
    };
    let restricted = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match essence.split_once('/') {
        Some((t, s)) if restricted(t) && restricted(s) => {}
        _ => return bad(),
    }
    if let Some(p) = params {
        if !p
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            return bad();
        }
    }
    Ok(())
}

/// The media type without parameters and surrounding space (`a/b; charset=x` → `a/b`).
pub fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or("").trim()
}

pub(crate) fn de_media_type<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if !s.is_empty() {
        check_media_type(&s).map_err(serde::de::Error::custom)?;
    }
    Ok(s)
}

fn de_opt_media_type<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    match s {
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => {
            check_media_type(&s).map_err(serde::de::Error::custom)?;
            Ok(Some(s))
        }
        None => Ok(None),
    }
}

fn de_opt_nonempty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

/// A content descriptor: what a blob is, its digest and its exact size, plus the
/// optional fields manifests and indexes use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// May be empty in what is read (old Docker documents); checked when present.
    #[serde(
        default,
        deserialize_with = "de_media_type",
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    pub digest: Sha256Digest,
    pub size: u64,
    /// Foreign (non-distributable) layers name where they can be fetched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "de_opt_media_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Sha256Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            platform: None,
            annotations: BTreeMap::new(),
            artifact_type: None,
        }
    }
}

/// An OCI platform: `os/architecture[/variant]`, e.g. `linux/amd64`, `linux/arm/v7`.
/// Also the shape of an image config's platform fields, so a config can be read as one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(
        default,
        deserialize_with = "de_opt_nonempty",
        skip_serializing_if = "Option::is_none"
    )]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.filter(|v| !v.is_empty()).map(str::to_string),
            ..Default::default()
        }
    }

    /// The platform of the machine running this code, in OCI (GOARCH) spelling.
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

    /// The platform an image config declares, if it declares one.
    pub fn from_config(config: &[u8]) -> Option<Platform> {
        let p: Platform = serde_json::from_slice(config).ok()?;
        (!p.os.is_empty() && !p.architecture.is_empty()).then_some(p)
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

impl std::str::FromStr for Platform {
    type Err = OciError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::new(os, arch, None)),
            [os, arch, var] if ok(os) && ok(arch) && ok(var) => {
                Ok(Platform::new(os, arch, Some(var)))
            }
            _ => Err(OciError::Platform(s.to_string())),
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

/// The union of an image manifest, an image index and their Docker equivalents (and the
/// 1.1-rc artifact manifest): every field any of them has, all optional. Serialising
/// one gives an image manifest with `layers` always present, as OCI requires.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u32>,
    #[serde(
        default,
        deserialize_with = "de_opt_media_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub media_type: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_opt_media_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Present only in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<Descriptor>>,
    /// 1.1-rc artifact manifest blobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// An OCI image manifest of `config` and `layers`.
    pub fn image(config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: Some(2),
            media_type: Some(OCI_MANIFEST.to_string()),
            config: Some(config),
            layers,
            ..Default::default()
        }
    }

    /// Parses a manifest or index: size limit, JSON, media types checked, schema1
    /// refused. Any media type is accepted here; [`parse_manifest`] also decides the
    /// document's type and refuses what is neither manifest nor index.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, OciError> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(OciError::TooLarge(bytes.len() as u64));
        }
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| OciError::Malformed(e.to_string()))?;
        if m.schema_version == Some(1) || m.media_type.as_deref().is_some_and(is_schema1) {
            return Err(OciError::Schema1);
        }
        Ok(m)
    }

    /// The document's media type: its own `mediaType` (covered by the digest), else
    /// `hint` (a `Content-Type` or the descriptor that pointed here) when it names a
    /// specific type, else its shape (OCI allows omitting both). Empty when nothing says.
    pub fn media_type_or(&self, hint: Option<&str>) -> String {
        if let Some(m) = &self.media_type {
            return m.clone();
        }
        if let Some(h) = hint
            .map(essence)
            .filter(|h| h.starts_with("application/vnd."))
        {
            return h.to_string();
        }
        if self.manifests.is_some() {
            OCI_INDEX.to_string()
        } else if self.config.is_some() {
            OCI_MANIFEST.to_string()
        } else {
            String::new()
        }
    }

    /// Whether this document, of `media_type`, is an index.
    pub fn is_index(&self, media_type: &str) -> bool {
        self.manifests.is_some() || is_index(media_type)
    }

    /// An index's entries (empty for a manifest).
    pub fn children(&self) -> &[Descriptor] {
        self.manifests.as_deref().unwrap_or_default()
    }

    /// A manifest's blobs: config, layers, and 1.1-rc artifact blobs.
    pub fn blob_descriptors(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(self.layers.iter())
            .chain(self.blobs.iter())
    }

    /// The artifact type the referrers API reports: `artifactType`, else the config's
    /// media type (OCI image spec 1.1).
    pub fn effective_artifact_type(&self) -> Option<String> {
        self.artifact_type
            .clone()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.clone()))
            .filter(|t| !t.is_empty())
    }

    /// The JSON bytes of this document (compact; its digest is the digest of these bytes).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest serialises")
    }
}

/// Parses a manifest or index and decides its media type (see
/// [`Manifest::media_type_or`]); a document that is neither an image manifest nor an
/// index is refused.
pub fn parse_manifest(bytes: &[u8], hint: Option<&str>) -> Result<(String, Manifest), OciError> {
    let m = Manifest::parse(bytes)?;
    let media_type = m.media_type_or(hint);
    if is_schema1(&media_type) {
        return Err(OciError::Schema1);
    }
    check_media_type(&media_type).map_err(|_| OciError::Unsupported(media_type.clone()))?;
    if !is_document(&media_type) {
        return Err(OciError::Unsupported(media_type));
    }
    Ok((media_type, m))
}

/// An OCI image index: the layout's `oci/index.json` (one descriptor per image, named by
/// [`ANNOTATION_IMAGE_NAME`] and [`ANNOTATION_REF_NAME`]), and the body of a referrers
/// response. The builder writes the bundle's with [`LayoutIndex::add_image`] and
/// [`LayoutIndex::to_json`]; readers use [`LayoutIndex::parse`] and [`image_name`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutIndex {
    pub schema_version: u32,
    #[serde(
        default,
        deserialize_with = "de_opt_media_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for LayoutIndex {
    fn default() -> Self {
        LayoutIndex {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_string()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }
}

impl LayoutIndex {
    /// An empty index.
    pub fn new() -> LayoutIndex {
        LayoutIndex::default()
    }

    /// An index of `manifests` (a referrers response).
    pub fn of(manifests: Vec<Descriptor>) -> LayoutIndex {
        LayoutIndex {
            manifests,
            ..LayoutIndex::default()
        }
    }

    /// Adds one image: its root descriptor, annotated with the full name
    /// ([`ANNOTATION_IMAGE_NAME`]) and the tag ([`ANNOTATION_REF_NAME`]; the full name
    /// when the reference is pinned by digest only).
    pub fn add_image(&mut self, name: &Reference, root: Descriptor) {
        let mut d = root;
        d.annotations
            .insert(ANNOTATION_IMAGE_NAME.to_string(), name.to_string());
        d.annotations.insert(
            ANNOTATION_REF_NAME.to_string(),
            name.tag.clone().unwrap_or_else(|| name.to_string()),
        );
        self.manifests.push(d);
    }

    /// Reads an index.json: JSON, every descriptor's digest and media type checked.
    pub fn parse(bytes: &[u8]) -> Result<LayoutIndex, OciError> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES * 16 {
            return Err(OciError::TooLarge(bytes.len() as u64));
        }
        serde_json::from_slice(bytes).map_err(|e| OciError::Malformed(e.to_string()))
    }

    /// The index as written into a layout (pretty JSON).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("an index serialises")
    }
}

/// The full image name a layout index entry carries: containerd's
/// [`ANNOTATION_IMAGE_NAME`], else [`ANNOTATION_REF_NAME`] when that holds a full
/// reference starting with a registry host. `Ok(None)` when the entry has no full name
/// (only a tag); `Err` when the containerd name is there but invalid.
pub fn image_name(d: &Descriptor) -> Result<Option<Reference>, ReferenceError> {
    if let Some(name) = d.annotations.get(ANNOTATION_IMAGE_NAME) {
        return Reference::parse(name).map(Some);
    }
    let Some(name) = d.annotations.get(ANNOTATION_REF_NAME) else {
        return Ok(None);
    };
    match name.split_once('/') {
        Some((first, _)) if looks_like_host(first) => Ok(Reference::parse(name).ok()),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn media_types_are_checked_for_header_safety() {
        for ok in [
            OCI_MANIFEST,
            DOCKER_LIST,
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
            "application/vnd.in-toto+json",
            "text/plain; charset=utf-8",
        ] {
            assert_eq!(check_media_type(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "application/vnd.oci.image.manifest.v1+json\r\nX-Evil: 1",
            "application/json\n",
            "application/js\0on",
            "application/\u{7f}x",
            "no-slash",
            "/x",
            "a/",
            "a b/c",
            "a/b; x=\"quoted\"",
            "a/b; x=\\",
            "a/b; x=\t",
            "ä/b",
        ] {
            assert!(check_media_type(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_media_type(&format!("a/{}", "b".repeat(300))).is_err());
    }

    #[test]
    fn descriptors_refuse_hostile_media_types_and_other_digests() {
        let ok = format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":3}}"#);
        let d: Descriptor = serde_json::from_str(&ok).unwrap();
        assert_eq!(d.digest.to_string(), D1);
        let crlf = format!(r#"{{"mediaType":"a/b\r\nX: y","digest":"{D1}","size":3}}"#);
        let e = serde_json::from_str::<Descriptor>(&crlf).unwrap_err();
        assert!(e.to_string().contains("media type"), "{e}");
        let sha512 = r#"{"mediaType":"a/b","digest":"sha512:00","size":3}"#;
        assert!(serde_json::from_str::<Descriptor>(sha512).is_err());
        // No mediaType at all is accepted (old documents), and serialises without one.
        let bare: Descriptor =
            serde_json::from_str(&format!(r#"{{"digest":"{D1}","size":3}}"#)).unwrap();
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            format!(r#"{{"digest":"{D1}","size":3}}"#)
        );
    }

    #[test]
    fn platforms_parse_display_and_match() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p, Platform::new("linux", "arm64", Some("v8")));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!("linux/amd64".parse::<Platform>().unwrap().variant, None);
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert_eq!(
                bad.parse::<Platform>(),
                Err(OciError::Platform(bad.into())),
                "{bad}"
            );
        }
        let arm64 = Platform::new("linux", "arm64", None);
        assert!(p.matches(&arm64));
        assert!(arm64.matches(&p));
        let v7: Platform = "linux/arm/v7".parse().unwrap();
        assert!(!v7.matches(&Platform::new("linux", "arm", Some("v6"))));
        assert!(!arm64.matches(&Platform::new("windows", "arm64", None)));
        let c = br#"{"architecture":"arm","os":"linux","variant":"v7","rootfs":{}}"#;
        assert_eq!(
            Platform::from_config(c).unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(Platform::from_config(b"{}"), None);
        let empty_variant: Platform =
            serde_json::from_str(r#"{"os":"linux","architecture":"amd64","variant":""}"#).unwrap();
        assert_eq!(empty_variant.to_string(), "linux/amd64");
    }

    #[test]
    fn media_type_from_body_hint_or_shape() {
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{D1}","size":5}},"layers":[]}}"#
        );
        assert_eq!(parse_manifest(m.as_bytes(), None).unwrap().0, OCI_MANIFEST);
        let hinted = format!("{DOCKER_MANIFEST}; charset=utf-8");
        assert_eq!(
            parse_manifest(m.as_bytes(), Some(&hinted)).unwrap().0,
            DOCKER_MANIFEST
        );
        let (t, doc) = parse_manifest(m.as_bytes(), Some("application/json")).unwrap();
        assert_eq!(t, OCI_MANIFEST);
        assert_eq!(doc.config.unwrap().size, 5);
        let idx = format!(
            r#"{{"mediaType":"{DOCKER_LIST}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"{D2}","size":2,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        let (t, doc) = parse_manifest(idx.as_bytes(), None).unwrap();
        assert_eq!(t, DOCKER_LIST);
        assert!(doc.is_index(&t));
        assert_eq!(
            doc.children()[0].platform.as_ref().unwrap().to_string(),
            "linux/arm64/v8"
        );
    }

    #[test]
    fn refuses_schema1_unknown_types_and_oversize() {
        let v1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert_eq!(parse_manifest(v1, None), Err(OciError::Schema1));
        let art = br#"{"mediaType":"application/vnd.example+json"}"#;
        assert!(matches!(
            parse_manifest(art, None),
            Err(OciError::Unsupported(_))
        ));
        let unknown_hint =
            format!(r#"{{"config":{{"mediaType":"{OCI_CONFIG}","digest":"{D1}","size":5}}}}"#);
        assert!(matches!(
            parse_manifest(unknown_hint.as_bytes(), Some("application/vnd.unknown")),
            Err(OciError::Unsupported(_))
        ));
        assert!(matches!(
            parse_manifest(b"nope", None),
            Err(OciError::Malformed(_))
        ));
        let crlf = br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json\r\nX: 1"}"#;
        assert!(matches!(
            parse_manifest(crlf, None),
            Err(OciError::Malformed(_))
        ));
        let big = vec![b' '; MAX_MANIFEST_BYTES as usize + 1];
        assert!(matches!(Manifest::parse(&big), Err(OciError::TooLarge(_))));
    }

    #[test]
    fn made_manifests_are_valid_oci() {
        let d = |s: &str| Sha256Digest::parse(s).unwrap();
        let m = Manifest::image(
            Descriptor::new(OCI_CONFIG, d(D1), 5),
            vec![Descriptor::new(OCI_LAYER_GZIP, d(D2), 7)],
        );
        let bytes = m.to_json();
        let spec = oci_spec::image::ImageManifest::from_reader(&bytes[..]).unwrap();
        assert_eq!(spec.layers().len(), 1);
        assert_eq!(spec.config().digest().to_string(), D1);
        assert_eq!(Manifest::parse(&bytes).unwrap(), m);
        // Even with no layers, `layers` is written (OCI requires it).
        let empty = Manifest::image(Descriptor::new(OCI_CONFIG, d(D1), 5), vec![]);
        oci_spec::image::ImageManifest::from_reader(&empty.to_json()[..]).unwrap();
    }

    #[test]
    fn layout_index_round_trips_and_is_valid_oci() {
        let d = Sha256Digest::parse(D1).unwrap();
        let mut idx = LayoutIndex::new();
        let nginx = Reference::parse("nginx:1.27").unwrap();
        idx.add_image(&nginx, Descriptor::new(OCI_MANIFEST, d, 42));
        let pinned = Reference::parse(&format!("quay.io/x/y@{D2}")).unwrap();
        idx.add_image(&pinned, Descriptor::new(OCI_INDEX, d, 43));
        let bytes = idx.to_json();
        let back = LayoutIndex::parse(&bytes).unwrap();
        assert_eq!(back, idx);
        let first = &back.manifests[0];
        assert_eq!(
            first.annotations[ANNOTATION_IMAGE_NAME],
            "docker.io/library/nginx:1.27"
        );
        assert_eq!(first.annotations[ANNOTATION_REF_NAME], "1.27");
        assert_eq!(image_name(first).unwrap(), Some(nginx));
        assert_eq!(
            back.manifests[1].annotations[ANNOTATION_REF_NAME],
            pinned.to_string()
        );
        // The reference implementation reads what this writes.
        let spec = oci_spec::image::ImageIndex::from_reader(&bytes[..]).unwrap();
        assert_eq!(spec.manifests().len(), 2);
        assert_eq!(spec.manifests()[0].size(), 42);
    }

    #[test]
    fn names_come_from_containerd_then_full_ref_name() {
        let d = Sha256Digest::parse(D1).unwrap();
        let with = |pairs: &[(&str, &str)]| {
            let mut x = Descriptor::new(OCI_MANIFEST, d, 1);
            for (k, v) in pairs {
                x.annotations.insert(k.to_string(), v.to_string());
            }
            x
        };
        assert_eq!(image_name(&with(&[(ANNOTATION_REF_NAME, "1")])), Ok(None));
        assert_eq!(
            image_name(&with(&[(ANNOTATION_REF_NAME, "quay.io/x/y:2")]))
                .unwrap()
                .unwrap()
                .to_string(),
            "quay.io/x/y:2"
        );
        assert_eq!(
            image_name(&with(&[(ANNOTATION_REF_NAME, "library/app:1")])),
            Ok(None)
        );
        let both = with(&[
            (ANNOTATION_REF_NAME, "quay.io/x/y:2"),
            (ANNOTATION_IMAGE_NAME, "docker.io/library/app:1"),
        ]);
        assert_eq!(
            image_name(&both).unwrap().unwrap().to_string(),
            "docker.io/library/app:1"
        );
        assert!(image_name(&with(&[(ANNOTATION_IMAGE_NAME, "../x")])).is_err());
    }

    #[test]
    fn layout_index_refuses_hostile_entries() {
        let crlf = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"a/b\nc","digest":"{D1}","size":1}}]}}"#
        );
        assert!(matches!(
            LayoutIndex::parse(crlf.as_bytes()),
            Err(OciError::Malformed(_))
        ));
    }
}
