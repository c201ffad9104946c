//! The bundle's SBOM: one SPDX 2.3 JSON document, written into every bundle as the entry
//! `sbom.spdx.json` (bundle.json's `sbom` names it, so it is hashed and signed like any
//! entry) and printed by `delivery.run --sbom`.
//!
//! What it lists, and how each is identified:
//! - every image: its full name, manifest (or index) digest as its SHA256 checksum, a
//!   `pkg:oci` purl with the platform; a multi-platform image has one package per carried
//!   platform manifest inside it;
//! - the OS packages inside each image's layers (dpkg and apk databases, read by
//!   streaming the layers: [`layers`]), as `pkg:deb`/`pkg:apk` purls with the
//!   distribution from the image's `os-release`; a package found in several images is
//!   one SPDX package contained by each;
//! - runtime payload binaries with their sha256 and the URL they were downloaded from
//!   (`NOASSERTION` for `--payload` files);
//! - charts with their `Chart.yaml` name and version;
//! - the OS packages the bundle carries for the host (`PACKAGE deb`), when it has any.
//!
//! Relationships: the document DESCRIBES the bundle, which CONTAINS the rest; an image
//! CONTAINS its platforms and packages. `created` is when the build's contents were
//! resolved (`SOURCE_DATE_EPOCH` when set, else the time `ferry.lock` recorded while the
//! build resolves as it says), and `documentNamespace` is derived from the bundle's
//! content: the same inputs give the same document, so rebuilds stay byte-identical.

pub mod layers;
pub mod pkgdb;

use crate::image::{Blob, ResolvedImage};
use anyhow::{Context, Result};
use ferry_bundle::oci::{parse_manifest, Platform};
use ferry_bundle::{BundleManifest, Sha256Digest};
use pkgdb::{Kind, OsPackage};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// Entry path of the SBOM inside the payload.
pub const SBOM_ENTRY: &str = "sbom.spdx.json";

/// A runtime payload file.
#[derive(Debug, Clone)]
pub struct PayloadItem {
    pub payload: String,
    pub role: String,
    /// sha256 of the file itself (before any compression in the bundle).
    pub sha256: Sha256Digest,
    pub url: Option<String>,
}

/// A chart an APP carries.
#[derive(Debug, Clone)]
pub struct ChartItem {
    pub app: String,
    pub name: String,
    pub version: Option<String>,
    pub app_version: Option<String>,
    /// sha256 of the chart archive in the bundle.
    pub sha256: Sha256Digest,
}

/// An OS package carried for the host.
#[derive(Debug, Clone)]
pub struct CarriedPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub distribution: String,
    pub sha256: Option<Sha256Digest>,
}

pub struct Input<'a> {
    pub manifest: &'a BundleManifest,
    pub images: &'a [ResolvedImage],
    pub payloads: Vec<PayloadItem>,
    pub charts: Vec<ChartItem>,
    pub packages: Vec<CarriedPackage>,
    /// The document's `created` (Unix seconds): when the build's contents were resolved
    /// (see `build::resolved_at`), not when this file was written.
    pub created: u64,
}

/// One platform manifest of an image: digest, platform, layers (bottom first).
struct PlatformImage<'a> {
    digest: Sha256Digest,
    platform: String,
    layers: Vec<&'a Blob>,
}

/// The platform manifests of `img` that the bundle carries.
fn platform_images(img: &ResolvedImage) -> Result<Vec<PlatformImage<'_>>> {
    let by_digest: HashMap<Sha256Digest, &Blob> = img.blobs.iter().map(|b| (b.digest, b)).collect();
    let read = |b: &Blob| -> Result<ferry_bundle::oci::Manifest> {
        let bytes = b
            .source
            .read_small()
            .with_context(|| format!("{}: reading {}", img.name, b.digest))?;
        Ok(parse_manifest(&bytes, Some(&b.media_type))
            .with_context(|| format!("{}: {}", img.name, b.digest))?
            .1)
    };
    let one = |b: &Blob, platform: Option<String>| -> Result<PlatformImage<'_>> {
        let m = read(b)?;
        // Filesystem layers only (an artifact's blobs, a chart or a signature, are not tars).
        let layers = m
            .layers
            .iter()
            .filter(|d| d.media_type.is_empty() || d.media_type.contains("tar"))
            .filter_map(|d| by_digest.get(&d.digest).copied())
            .collect();
        let platform = platform.or_else(|| {
            let config = m.config.as_ref().and_then(|c| by_digest.get(&c.digest))?;
            let p = Platform::from_config(&config.source.read_small().ok()?)?;
            Some(platform_string(&p))
        });
        Ok(PlatformImage {
            digest: b.digest,
            platform: platform.unwrap_or_default(),
            layers,
        })
    };
    let root = read(&img.root)?;
    if root.manifests.is_none() {
        return Ok(vec![one(&img.root, img.platforms.first().cloned())?]);
    }
    let mut out = Vec::new();
    for d in root.children() {
        if let Some(b) = by_digest.get(&d.digest) {
            if ferry_bundle::oci::is_image_manifest(&b.media_type) || b.media_type.is_empty() {
                out.push(one(b, d.platform.as_ref().map(platform_string))?);
            }
        }
    }
    Ok(out)
}

fn platform_string(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// Percent-encodes a purl component (keeps `A-Za-z0-9.-_~`).
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An SPDX identifier: `SPDXRef-<kind>-<readable>-<hash of key>` (letters, digits, `.`, `-`).
fn spdx_id(kind: &str, readable: &str, key: &str) -> String {
    let clean: String = readable
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    let h = Sha256Digest::of(key.as_bytes()).hex();
    format!("SPDXRef-{kind}-{clean}-{}", &h[..12])
}

fn purl_os(p: &OsPackage, os: &BTreeMap<String, String>) -> String {
    let (typ, default_ns) = match p.kind {
        Kind::Deb => ("deb", "debian"),
        Kind::Apk => ("apk", "alpine"),
    };
    let ns = os.get("ID").map(String::as_str).unwrap_or(default_ns);
    let mut q = vec![format!("arch={}", pct(&p.arch))];
    if let Some(v) = os.get("VERSION_ID") {
        q.push(format!("distro={}-{}", pct(ns), pct(v)));
    }
    format!(
        "pkg:{typ}/{}/{}@{}?{}",
        pct(ns),
        pct(&p.name),
        pct(&p.version),
        q.join("&")
    )
}

fn purl_oci(img: &ResolvedImage, digest: &Sha256Digest, platform: &str) -> String {
    let r = &img.name;
    let last = r.repository.rsplit('/').next().unwrap_or(&r.repository);
    let mut q = vec![format!(
        "repository_url={}",
        pct(&format!("{}/{}", r.host, r.repository))
    )];
    if let Some(arch) = platform.split('/').nth(1) {
        q.push(format!("arch={}", pct(arch)));
    }
    if let Some(tag) = &r.tag {
        q.push(format!("tag={}", pct(tag)));
    }
    format!(
        "pkg:oci/{}@{}?{}",
        pct(&last.to_ascii_lowercase()),
        pct(&digest.to_string()),
        q.join("&")
    )
}

fn purl_ref(purl: &str) -> Value {
    json!({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl})
}

fn sha256_checksum(d: &Sha256Digest) -> Value {
    json!([{"algorithm": "SHA256", "checksumValue": d.hex()}])
}

/// `YYYY-MM-DDThh:mm:ssZ` of a Unix time (UTC).
fn iso8601(secs: u64) -> String {
    ferry_console::utc(secs, 'T')
}

/// Builds the SPDX document (pretty JSON bytes).
pub fn document(input: &Input) -> Result<Vec<u8>> {
    let m = input.manifest;
    let mut packages: Vec<Value> = Vec::new();
    let mut rels: Vec<Value> = Vec::new();
    let rel = |a: &str, t: &str, b: &str| json!({"spdxElementId": a, "relationshipType": t, "relatedSpdxElement": b});
    let bundle_id = "SPDXRef-Bundle";
    let mut bundle = json!({
        "SPDXID": bundle_id,
        "name": m.name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "INSTALL",
        "comment": format!("ferry bundle for {} (built by {})", m.platform, m.builder),
    });
    if !m.version.is_empty() {
        bundle["versionInfo"] = json!(m.version);
    }
    packages.push(bundle);
    rels.push(rel("SPDXRef-DOCUMENT", "DESCRIBES", bundle_id));

    // Every distinct layer is scanned once, in parallel.
    let mut per_image = Vec::new();
    for img in input.images {
        per_image.push((img, platform_images(img)?));
    }
    let all_layers: Vec<&Blob> = per_image
        .iter()
        .flat_map(|(_, ps)| ps.iter().flat_map(|p| p.layers.iter().copied()))
        .filter(|b| !ferry_bundle::oci::is_foreign_layer(&b.media_type))
        .collect();
    let facts = layers::scan_all(&all_layers);

    let mut os_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut key = Vec::<u8>::new();
    for (n, (img, platforms)) in per_image.iter().enumerate() {
        let id = format!("SPDXRef-Image-{}", n + 1);
        key.extend(img.root.digest.0);
        let single = img.root.digest == platforms.first().map(|p| p.digest).unwrap_or_default();
        let plats: Vec<&str> = platforms.iter().map(|p| p.platform.as_str()).collect();
        packages.push(json!({
            "SPDXID": id,
            "name": img.name.to_string(),
            "versionInfo": img.root.digest.to_string(),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": sha256_checksum(&img.root.digest),
            "externalRefs": [purl_ref(&purl_oci(img, &img.root.digest, if single { plats.first().copied().unwrap_or("") } else { "" }))],
            "comment": format!("platforms: {}; source: {}", plats.join(", "), img.source),
        }));
        rels.push(rel(bundle_id, "CONTAINS", &id));
        for (i, p) in platforms.iter().enumerate() {
            let pid = if single {
                id.clone()
            } else {
                let pid = format!("{id}-{}", i + 1);
                packages.push(json!({
                    "SPDXID": pid,
                    "name": format!("{} ({})", img.name, p.platform),
                    "versionInfo": p.digest.to_string(),
                    "downloadLocation": "NOASSERTION",
                    "filesAnalyzed": false,
                    "primaryPackagePurpose": "CONTAINER",
                    "checksums": sha256_checksum(&p.digest),
                    "externalRefs": [purl_ref(&purl_oci(img, &p.digest, &p.platform))],
                    "comment": format!("platform: {}", p.platform),
                }));
                rels.push(rel(&id, "CONTAINS", &pid));
                pid
            };
            let mut layer_facts = Vec::new();
            let mut unreadable = Vec::new();
            for l in &p.layers {
                match facts.get(&l.digest) {
                    Some(Ok(f)) => layer_facts.push(f),
                    Some(Err(e)) => unreadable.push(format!("{}: {e}", l.digest)),
                    None => {}
                }
            }
            let merged = layers::merge(layer_facts);
            if !unreadable.is_empty() {
                let c = packages
                    .iter_mut()
                    .find(|x| x["SPDXID"] == pid.as_str())
                    .expect("just added");
                c["comment"] = json!(format!(
                    "{}; layers not read for packages: {}",
                    c["comment"].as_str().unwrap_or(""),
                    unreadable.join("; ")
                ));
            }
            for pkg in &merged.packages {
                let purl = purl_os(pkg, &merged.os_release);
                let oid = os_ids.entry(purl.clone()).or_insert_with(|| {
                    let kind = match pkg.kind {
                        Kind::Deb => "deb",
                        Kind::Apk => "apk",
                    };
                    let oid = spdx_id(kind, &format!("{}-{}", pkg.name, pkg.version), &purl);
                    let mut v = json!({
                        "SPDXID": oid,
                        "name": pkg.name,
                        "versionInfo": pkg.version,
                        "downloadLocation": "NOASSERTION",
                        "filesAnalyzed": false,
                        "primaryPackagePurpose": "LIBRARY",
                        "externalRefs": [purl_ref(&purl)],
                    });
                    let mut notes = Vec::new();
                    if let Some(src) = &pkg.source {
                        v["sourceInfo"] = json!(format!("built from source package {src}"));
                    }
                    if let Some(l) = &pkg.license {
                        notes.push(format!("license (apk database): {l}"));
                    }
                    if !notes.is_empty() {
                        v["comment"] = json!(notes.join("; "));
                    }
                    packages.push(v);
                    oid
                });
                rels.push(rel(&pid, "CONTAINS", oid));
            }
        }
    }
    for p in &input.payloads {
        let id = spdx_id(
            "Payload",
            &format!("{}-{}", p.payload, p.role),
            &format!("{}/{}", p.payload, p.role),
        );
        key.extend(p.sha256.0);
        packages.push(json!({
            "SPDXID": id,
            "name": format!("{}/{}", p.payload, p.role),
            "downloadLocation": p.url.clone().unwrap_or_else(|| "NOASSERTION".into()),
            "filesAnalyzed": false,
            "primaryPackagePurpose": "APPLICATION",
            "checksums": sha256_checksum(&p.sha256),
            "comment": format!("runtime payload {}, role {}", p.payload, p.role),
        }));
        rels.push(rel(bundle_id, "CONTAINS", &id));
    }
    for c in &input.charts {
        let id = spdx_id("Chart", &c.app, &c.app);
        key.extend(c.sha256.0);
        let mut v = json!({
            "SPDXID": id,
            "name": c.name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "APPLICATION",
            "checksums": sha256_checksum(&c.sha256),
            "comment": format!("Helm chart of APP {}{}", c.app,
                c.app_version.as_ref().map(|a| format!(", appVersion {a}")).unwrap_or_default()),
        });
        if let Some(ver) = &c.version {
            v["versionInfo"] = json!(ver);
        }
        packages.push(v);
        rels.push(rel(bundle_id, "CONTAINS", &id));
    }
    for p in &input.packages {
        let purl = format!(
            "pkg:deb/{}/{}@{}?arch={}",
            pct(&p.distribution),
            pct(&p.name),
            pct(&p.version),
            pct(&p.arch)
        );
        let id = spdx_id("Carried-deb", &format!("{}-{}", p.name, p.version), &purl);
        let mut v = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "INSTALL",
            "externalRefs": [purl_ref(&purl)],
            "comment": "OS package carried for the host (PACKAGE deb)",
        });
        if let Some(d) = &p.sha256 {
            v["checksums"] = sha256_checksum(d);
        }
        packages.push(v);
        rels.push(rel(bundle_id, "CONTAINS", &id));
    }
    key.extend(m.name.as_bytes());
    key.extend(m.version.as_bytes());
    let namespace = format!(
        "https://spdx.org/spdxdocs/ferry/{}-{}",
        pct(&m.name),
        &Sha256Digest::of(&key).hex()[..32]
    );
    let doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": if m.version.is_empty() { m.name.clone() } else { format!("{} {}", m.name, m.version) },
        "documentNamespace": namespace,
        "creationInfo": {
            "created": iso8601(input.created),
            "creators": [format!("Tool: ferry-{}", env!("CARGO_PKG_VERSION"))],
        },
        "documentDescribes": [bundle_id],
        "packages": packages,
        "relationships": rels,
    });
    Ok(serde_json::to_vec_pretty(&doc).expect("the document serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_purls() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_735_689_599), "2024-12-31T23:59:59Z");
        let p = OsPackage {
            kind: Kind::Deb,
            name: "libc6".into(),
            version: "1:2.36-9+deb12u4".into(),
            arch: "amd64".into(),
            source: None,
            license: None,
        };
        let os: BTreeMap<_, _> = [
            ("ID".to_string(), "debian".to_string()),
            ("VERSION_ID".into(), "12".into()),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            purl_os(&p, &os),
            "pkg:deb/debian/libc6@1%3A2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
        );
        let id = spdx_id("deb", "libc6-1:2.36", "k");
        assert!(id.starts_with("SPDXRef-deb-libc6-1-2.36-"), "{id}");
    }
}
