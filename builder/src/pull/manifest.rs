//! Manifests and indexes: the four media types a pull understands and platform selection.
//!
//! OCI image manifests and Docker schema2 manifests have the same shape (config + layers),
//! as do OCI indexes and Docker manifest lists (a list of per-platform manifests), so each
//! pair is parsed by one struct. Docker schema1 (signed, pre-2017) is refused with a hint:
//! registries still serve it for ancient tags, and converting it would change digests.
//! Only the fields ferry needs are parsed; the bytes themselves are stored untouched, since
//! their digest is the image's identity.

use super::options::Platform;
use ferry_bundle::Sha256Digest;
use serde::Deserialize;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_V1: &str = "application/vnd.docker.distribution.manifest.v1";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The `Accept` header for manifest requests: everything ferry can store, nothing else, so
/// the registry never down-converts to schema1.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest accepted: the OCI distribution spec's 4 MiB, which keeps a hostile
/// registry from filling memory with one.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// A content descriptor: what a blob is, its digest and its exact size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Sha256Digest,
    pub size: u64,
}

/// A descriptor as it appears in JSON, before its digest is checked to be sha256.
#[derive(Debug, Clone, Deserialize)]
pub struct RawDescriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<RawPlatform>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RawPlatform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl RawPlatform {
    pub fn platform(&self) -> Platform {
        Platform::new(&self.os, &self.architecture, self.variant.as_deref())
    }
}

impl RawDescriptor {
    /// Converts to a [`Descriptor`]; only sha256 digests are accepted (the bundle and the
    /// cache are addressed by sha256).
    pub fn descriptor(&self) -> Result<Descriptor, String> {
        let digest = Sha256Digest::from_oci(&self.digest)
            .ok_or_else(|| format!("digest {:?} is not sha256:<64 hex>", self.digest))?;
        Ok(Descriptor {
            media_type: self.media_type.clone(),
            digest,
            size: self.size,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImageManifest {
    pub config: RawDescriptor,
    #[serde(default)]
    pub layers: Vec<RawDescriptor>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    pub manifests: Vec<RawDescriptor>,
}

#[derive(Debug, Clone)]
pub enum Parsed {
    Image(ImageManifest),
    Index(Index),
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

/// Why bytes could not be used as a manifest.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    Unsupported(String),
    Malformed(String),
}

/// Works out a manifest's media type and parses it. The type is taken from the JSON's own
/// `mediaType` when present (it is covered by the digest), else from the response's
/// `Content-Type`, else from the document's shape (OCI allows omitting both).
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<(String, Parsed), ParseError> {
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| ParseError::Malformed(e.to_string()))?;
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| c.starts_with("application/vnd."));
    let media_type = match (probe.media_type, header) {
        (Some(m), _) if !m.is_empty() => m,
        (_, Some(h)) => h,
        _ if probe.manifests.is_some() => OCI_INDEX.to_string(),
        _ if probe.config.is_some() => OCI_MANIFEST.to_string(),
        _ => String::new(),
    };
    if probe.schema_version == Some(1) || media_type.starts_with(DOCKER_V1) {
        return Err(ParseError::Unsupported(
            "Docker schema1 manifests are deprecated and not supported; re-push the image \
             with a current docker, skopeo or crane"
                .into(),
        ));
    }
    let bad = |e: serde_json::Error| ParseError::Malformed(e.to_string());
    let parsed = match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            Parsed::Image(serde_json::from_slice(bytes).map_err(bad)?)
        }
        OCI_INDEX | DOCKER_LIST => Parsed::Index(serde_json::from_slice(bytes).map_err(bad)?),
        other => {
            return Err(ParseError::Unsupported(format!(
                "media type {other:?} is neither an image manifest nor an index"
            )))
        }
    };
    Ok((media_type, parsed))
}

/// True for image config media types whose `os`/`architecture` fields are meaningful
/// (artifacts such as Helm charts have other configs and no platform).
pub fn is_image_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

/// The platform an image config declares, if it is an image config and declares one.
pub fn config_platform(config: &[u8]) -> Option<Platform> {
    let p: RawPlatform = serde_json::from_slice(config).ok()?;
    (!p.os.is_empty() && !p.architecture.is_empty()).then(|| p.platform())
}

/// Picks, for each wanted platform, the first index entry that matches it (index order is
/// the publisher's preference, as in containerd). Entries without a platform, such as
/// BuildKit's attestation manifests (`unknown/unknown`), never match. Returns the wanted
/// platform that has no match as `Err`.
pub fn select<'a>(
    index: &'a Index,
    wanted: &[Platform],
) -> Result<Vec<(Platform, &'a RawDescriptor)>, Platform> {
    let mut out: Vec<(Platform, &RawDescriptor)> = Vec::new();
    for w in wanted {
        let found = index
            .manifests
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| w.matches(&p.platform()))
            })
            .ok_or_else(|| w.clone())?;
        let plat = found
            .platform
            .as_ref()
            .map(RawPlatform::platform)
            .unwrap_or_else(|| w.clone());
        if !out.iter().any(|(_, d)| d.digest == found.digest) {
            out.push((plat, found));
        }
    }
    Ok(out)
}

/// `linux/amd64, linux/arm64/v8` — what an index offers, for error messages.
pub fn offered(index: &Index) -> String {
    let v: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| p.platform().to_string())
        .filter(|p| p != "unknown/unknown")
        .collect();
    if v.is_empty() {
        "no platforms".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn index() -> Index {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
              {{"mediaType":"{DOCKER_MANIFEST}","digest":"{D1}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{DOCKER_MANIFEST}","digest":"{D2}","size":2,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D3}","size":3,"platform":{{"os":"unknown","architecture":"unknown"}}}}
            ]}}"#
        );
        match parse(json.as_bytes(), None).unwrap() {
            (m, Parsed::Index(i)) => {
                assert_eq!(m, DOCKER_LIST);
                i
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn selects_platforms_in_request_order() {
        let i = index();
        let want: Vec<Platform> = vec![
            "linux/arm64".parse().unwrap(),
            "linux/amd64".parse().unwrap(),
        ];
        let sel = select(&i, &want).unwrap();
        assert_eq!(sel.len(), 2);
        assert_eq!(sel[0].0.to_string(), "linux/arm64/v8");
        assert_eq!(sel[0].1.digest, D2);
        assert_eq!(sel[1].1.digest, D1);
        let missing = select(&i, &["linux/s390x".parse().unwrap()]).unwrap_err();
        assert_eq!(missing.to_string(), "linux/s390x");
        assert_eq!(offered(&i), "linux/amd64, linux/arm64/v8");
        // The same platform asked twice is kept once.
        let twice = select(
            &i,
            &[
                "linux/amd64".parse().unwrap(),
                "linux/amd64".parse().unwrap(),
            ],
        );
        assert_eq!(twice.unwrap().len(), 1);
    }

    #[test]
    fn media_type_from_body_header_or_shape() {
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{D1}","size":5}},"layers":[]}}"#
        );
        assert_eq!(parse(m.as_bytes(), None).unwrap().0, OCI_MANIFEST);
        assert_eq!(
            parse(
                m.as_bytes(),
                Some(&format!("{DOCKER_MANIFEST}; charset=utf-8"))
            )
            .unwrap()
            .0,
            DOCKER_MANIFEST
        );
        let (_, p) = parse(m.as_bytes(), Some("application/json")).unwrap();
        let Parsed::Image(img) = p else { panic!() };
        assert_eq!(img.config.descriptor().unwrap().size, 5);
    }

    #[test]
    fn refuses_schema1_and_unknown_types() {
        let v1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(matches!(parse(v1, None), Err(ParseError::Unsupported(_))));
        let art = br#"{"mediaType":"application/vnd.example+json"}"#;
        assert!(matches!(parse(art, None), Err(ParseError::Unsupported(_))));
        assert!(matches!(
            parse(b"nope", None),
            Err(ParseError::Malformed(_))
        ));
        let bad_digest = RawDescriptor {
            media_type: String::new(),
            digest: "sha512:00".into(),
            size: 0,
            platform: None,
        };
        assert!(bad_digest.descriptor().is_err());
    }

    #[test]
    fn reads_config_platform() {
        let c = br#"{"architecture":"arm","os":"linux","variant":"v7","rootfs":{}}"#;
        assert_eq!(config_platform(c).unwrap().to_string(), "linux/arm/v7");
        assert_eq!(config_platform(b"{}"), None);
    }
}
