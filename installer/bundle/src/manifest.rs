//! `bundle.json`: what the bundle carries and where every byte of it lies.
//!
//! Unknown fields are ignored and every collection defaults to empty, so an older installer
//! can still `--info` a newer bundle of the same format version.
//!
//! A bundle built `FROM` another records that base ([`BaseRecord`]) and marks every item
//! it took from it (`inherited: true` on images, apps, files, payloads and hooks), so
//! `ferry images`, the build report and `--info` can say what came from where. Both are
//! left out of the JSON when absent, so a bundle built `FROM scratch` writes the same
//! bytes as before and older installers read layered bundles (unknown fields are
//! ignored).
//!
//! The fields are typed ([`Reference`], [`Sha256Digest`], [`HostPath`]), so bundle.json
//! is parsed — and every name, digest and destination validated — once, when the bundle
//! opens; code after that never re-parses a string. The JSON on disk is format v1's:
//! image digests as `sha256:<hex>`, entry and stub checksums as bare hex
//! ([`crate::digest::hex_serde`]).

use crate::digest::{hex_serde, Sha256Digest};
use crate::paths::{HostPath, PathError};
use crate::reference::Reference;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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
    /// The release `packages` were resolved for (`OS` in the Kubefile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<crate::packages::OsRecord>,
    /// OS packages (`PACKAGE deb`), in install order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<crate::packages::PackageRecord>,
    /// The bundle this one was built `FROM`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRecord>,
    /// The key that signed this bundle.json (format 2); its signature is the tar entry
    /// `bundle.json.sig` ([`crate::signature`]). Absent: the bundle is not signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<crate::signature::SignerRecord>,
    /// Entry path of the bundle's SPDX 2.3 SBOM (format 2; `sbom.spdx.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<String>,
    /// Every tar entry of the payload except bundle.json itself, in payload order.
    pub entries: Vec<EntryRecord>,
    /// Set when this bundle is a delta: it carries only what its base lacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaRecord>,
}

/// A delta bundle's base and what it takes from it ([`crate::delta`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeltaRecord {
    /// Payload sha256 of the base bundle (its identity, as `--info` shows it).
    pub base: Sha256Digest,
    pub base_name: String,
    #[serde(default)]
    pub base_version: String,
    /// Entries of the complete bundle that the delta does not carry: the base holds them
    /// at the same path with the same size and sha256 (`offset` is the base's).
    pub inherited: Vec<EntryRecord>,
}

/// `FROM <bundle>`: which bundle this one was layered on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BaseRecord {
    /// As written after `FROM`: a `.run` path or a registry reference.
    pub source: String,
    /// The base's `name` and `version`.
    pub name: String,
    #[serde(default)]
    pub version: String,
    /// The base's identity: the sha256 of its payload, as its `--check` and `--info`
    /// show it.
    pub digest: Sha256Digest,
    /// When the base was pulled from a registry: the digest of the index its reference
    /// resolved to (what `ferry pull <source>@<digest>` fetches again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_digest: Option<Sha256Digest>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StubRecord {
    pub size: u64,
    /// Bare hex on disk.
    #[serde(with = "hex_serde")]
    pub sha256: Sha256Digest,
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
    pub name: Reference,
    /// Digest of the top-level manifest (or index) stored for this name.
    pub digest: Sha256Digest,
    /// Checked when read: it is served as `Content-Type`.
    #[serde(deserialize_with = "crate::oci::de_media_type")]
    pub media_type: String,
    /// Sum of the sizes of every blob this image references (shared blobs counted fully).
    pub size: u64,
    /// Where the image came from, as written in the Kubefile.
    #[serde(default)]
    pub source: String,
    /// `os/arch` of each platform carried.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Taken from the base bundle (`FROM`) unchanged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inherited: bool,
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
    /// Taken from the base bundle (`FROM`) unchanged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inherited: bool,
}

/// A `COPY` into the host's filesystem.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(try_from = "RawFileRecord")]
pub struct FileRecord {
    /// Entry path inside the payload.
    pub entry: String,
    /// Absolute, normalised destination on the host (under `--root`).
    pub dest: HostPath,
    pub mode: u32,
    /// Taken from the base bundle (`FROM`) unchanged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inherited: bool,
}

/// A [`FileRecord`] as it is on disk, before its destination is checked.
#[derive(Deserialize)]
struct RawFileRecord {
    entry: String,
    dest: String,
    mode: u32,
    #[serde(default)]
    inherited: bool,
}

/// A `files[]` destination that could leave `--root` or is not a plain absolute path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("files[] entry {entry}: destination {dest:?} is refused: {problem} (a destination must be an absolute, normalised path)")]
pub struct BadDestination {
    pub entry: String,
    pub dest: String,
    pub problem: PathError,
}

impl TryFrom<RawFileRecord> for FileRecord {
    type Error = BadDestination;
    fn try_from(r: RawFileRecord) -> Result<Self, Self::Error> {
        let problem = match HostPath::new(r.dest.as_str()) {
            Ok(dest) if !dest.is_root() => {
                return Ok(FileRecord {
                    entry: r.entry,
                    dest,
                    mode: r.mode,
                    inherited: r.inherited,
                })
            }
            Ok(_) => PathError::Root,
            Err(e) => e.reason,
        };
        Err(BadDestination {
            entry: r.entry,
            dest: r.dest,
            problem,
        })
    }
}

/// A runtime or cluster payload (`payloads/<name>`): containerd, k3s, ….
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayloadRecord {
    pub name: String,
    #[serde(default)]
    pub version: String,
    /// `os/arch` of the hosts these files run on; empty: the bundle's own platform. A
    /// bundle for mixed clusters carries the runtime of every platform it was built for,
    /// so a master can hand an arm64 node its runtime.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub platform: String,
    /// Entry paths of the payload's files, keyed by their role (e.g. `bin/containerd`).
    pub files: BTreeMap<String, String>,
    /// Taken from the base bundle (`FROM`) unchanged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inherited: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HookRecord {
    pub command: String,
    /// Taken from the base bundle (`FROM`) unchanged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inherited: bool,
}

/// One tar entry with the facts needed to check and serve it without reading the tar.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryRecord {
    pub path: String,
    /// Stored size in bytes (as in the tar header).
    pub size: u64,
    /// sha256 of the stored bytes (bare hex on disk).
    #[serde(with = "hex_serde")]
    pub sha256: Sha256Digest,
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
    /// Sum of every entry's stored size.
    pub fn payload_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// Every registry host the bundle's images name (`docker.io`, `quay.io`, …), sorted:
    /// each needs a mirror (hosts.toml, registries.yaml) pointing at ferry's registry.
    pub fn upstream_hosts(&self) -> BTreeSet<String> {
        self.images.iter().map(|i| i.name.host.clone()).collect()
    }

    /// The payload named `name` ([`crate::roles::PAYLOAD_CONTAINERD`], …), if carried.
    pub fn payload(&self, name: &str) -> Option<&PayloadRecord> {
        self.payload_for(name, &self.platform)
    }

    /// The payload `name` for hosts of `platform` (`linux/arm64`).
    pub fn payload_for(&self, name: &str, platform: &str) -> Option<&PayloadRecord> {
        self.payloads.iter().find(|p| {
            p.name == name
                && (p.platform == platform || (p.platform.is_empty() && self.platform == platform))
        })
    }

    /// Every platform this bundle carries a runtime or cluster payload for.
    pub fn payload_platforms(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .payloads
            .iter()
            .map(|p| {
                if p.platform.is_empty() {
                    self.platform.clone()
                } else {
                    p.platform.clone()
                }
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

impl PayloadRecord {
    /// Entry path of the file with `role` ([`crate::roles`]), if the payload has it.
    pub fn file(&self, role: &str) -> Option<&str> {
        self.files.get(role).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    /// bundle.json as format v1 writes it (the shape of bundles built before the fields
    /// were typed): it must still read, and write back to the same JSON.
    fn v1_json(dest: &str, name: &str) -> String {
        let name = serde_json::to_string(name).unwrap();
        format!(
            r#"{{"format":1,"name":"t","installer":{{"size":10,"sha256":"{HEX}"}},
            "images":[{{"name":{name},"digest":"sha256:{HEX}","media_type":"application/vnd.oci.image.manifest.v1+json","size":5,"source":"nginx","platforms":["linux/amd64"]}}],
            "files":[{{"entry":"files/rootfs/opt/a.sh","dest":"{dest}","mode":493}}],
            "payloads":[{{"name":"containerd","version":"","files":{{"bin/ctr":"files/payloads/containerd/bin/ctr"}}}}],
            "entries":[{{"path":"files/rootfs/opt/a.sh","size":3,"sha256":"{HEX}","offset":512,"mode":493}}]}}"#
        )
    }

    #[test]
    fn v1_json_reads_typed_and_writes_back_unchanged() {
        let text = v1_json("/opt/a.sh", "docker.io/library/nginx:1.27");
        let m: BundleManifest = serde_json::from_str(&text).unwrap();
        assert_eq!(m.images[0].name.repository, "library/nginx");
        assert_eq!(m.images[0].digest.hex(), HEX);
        assert_eq!(m.entries[0].sha256.hex(), HEX);
        assert_eq!(m.installer.sha256.hex(), HEX);
        assert_eq!(m.files[0].dest.as_str(), "/opt/a.sh");
        assert_eq!(
            m.payload("containerd").unwrap().file(crate::roles::CTR),
            Some("files/payloads/containerd/bin/ctr")
        );
        assert!(m.payload("k3s").is_none());
        let again: serde_json::Value = serde_json::to_value(&m).unwrap();
        let orig: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in ["installer", "images", "files", "payloads", "entries"] {
            assert_eq!(again[key], orig[key], "{key}");
        }
    }

    #[test]
    fn destination_with_dotdot_is_refused_naming_the_entry() {
        let e = serde_json::from_str::<BundleManifest>(&v1_json("/opt/../../etc/x", "nginx"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("files/rootfs/opt/a.sh") && e.contains("'..'"),
            "{e}"
        );
        let e = serde_json::from_str::<BundleManifest>(&v1_json("opt/a.sh", "nginx"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute"), "{e}");
    }

    #[test]
    fn hostile_image_names_are_refused_when_read() {
        for bad in ["../x:1", "evil\".io/x:1", "a.io\n/x:1"] {
            assert!(
                serde_json::from_str::<BundleManifest>(&v1_json("/opt/a.sh", bad)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn upstream_hosts_are_every_image_host() {
        let mut m: BundleManifest =
            serde_json::from_str(&v1_json("/opt/a.sh", "index.docker.io/x:1")).unwrap();
        let mut quay = m.images[0].clone();
        quay.name = Reference::parse("quay.io/a/b:1").unwrap();
        m.images.push(quay);
        let hosts: Vec<String> = m.upstream_hosts().into_iter().collect();
        assert_eq!(hosts, ["docker.io", "quay.io"]);
    }
}
