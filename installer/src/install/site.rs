//! The `site_registry` phase (`--site-registry`): every image the bundle carries pushed
//! into the site's registry, one engine step per image, before the runtime is told to
//! pull from there (see `crate::site` for the naming and the runtime configuration).
//!
//! Each step lists the image's blobs and manifests as bundle entries, so the push reads
//! them from the staged bundle through the engine's verifying source. A blob that an
//! earlier step of this plan pushes to another site repository is mounted from there
//! (`mount_from`) rather than sent twice. The site's CA (public) and its settings with
//! the login (root only), which the join channel hands to nodes and an upgrade reuses,
//! are written by the registry phase ([`files`]), before the service that reads them.
//!
//! An image whose index lists platforms the bundle does not carry (`--platform a,b` of a
//! wider image) cannot be pushed as that index: registries refuse an index whose children
//! they do not have. Its carried platforms are pushed, and the tag names an index of
//! just those; the plan says so, since a pin to the original index digest will not
//! resolve on the site.

use super::{entry_ref, file, PlanError};
use crate::engine::{Content, Journal, Phase, PhaseName, PushBlob, PushManifest, PushStep, Step};
use crate::host::Host;
use crate::site::{self, SiteConfig};
use ferry_bundle::graph;
use ferry_bundle::oci::{LayoutIndex, OCI_INDEX};
use ferry_bundle::{paths, Bundle, Sha256Digest};
use std::collections::HashMap;

/// The site's files on the first node: its CA (public) and its settings with the login
/// (root only), which the registry service hands to joining nodes. They belong to the
/// registry phase, ahead of the service that reads them.
pub fn files(host: &Host, journal: &Journal, site: &SiteConfig) -> Vec<Step> {
    let mut steps = Vec::new();
    if let Some(ca) = &site.ca_pem {
        steps.push(file(
            host,
            journal,
            site::ca_path(),
            0o644,
            Content::text(ca.clone()),
        ));
    }
    let shown = String::from_utf8(site.public().to_json()).unwrap_or_default()
        + if site.login.is_some() {
            "\n(and the site registry's login, not shown)"
        } else {
            ""
        };
    steps.push(file(
        host,
        journal,
        site::config_path(),
        0o600,
        Content::Private {
            bytes: site.to_json(),
            shown,
        },
    ));
    steps
}

/// The site registry phase of `b`: one push per image; notes for the operator go to
/// `notes`.
pub fn phase(site: &SiteConfig, b: &Bundle, notes: &mut Vec<String>) -> Result<Phase, PlanError> {
    let mut p = Phase::new(PhaseName::SiteRegistry);
    let public = site.public();
    let mut pushed: HashMap<Sha256Digest, String> = HashMap::new();
    for img in &b.manifest.images {
        let fail = |reason: String| PlanError::Other(format!("image {}: {reason}", img.name));
        let g = graph::walk_image(b, img).map_err(|e| fail(e.to_string()))?;
        let repository = site.repository(&img.name);
        let entry =
            |d: &Sha256Digest| entry_ref(b, &paths::blob_entry(d), &format!("image {}", img.name));
        let mut blobs = Vec::new();
        for blob in &g.blobs {
            blobs.push(PushBlob {
                entry: entry(&blob.digest)?,
                mount_from: pushed
                    .get(&blob.digest)
                    .filter(|r| **r != repository)
                    .cloned(),
            });
        }
        let mut manifests = Vec::new();
        for d in g.documents.iter().filter(|d| d.complete) {
            manifests.push(PushManifest {
                digest: d.desc.digest,
                media_type: d.desc.media_type.clone(),
                entry: Some(entry(&d.desc.digest)?),
                bytes: Vec::new(),
            });
        }
        let root = g.root();
        if !root.complete {
            let carried: Vec<_> = root
                .refs
                .iter()
                .filter(|c| {
                    g.documents
                        .iter()
                        .any(|d| d.desc.digest == c.digest && d.complete)
                })
                .cloned()
                .collect();
            if carried.is_empty() || !ferry_bundle::oci::is_index(&root.desc.media_type) {
                return Err(fail(
                    "the bundle does not carry everything it references; it cannot be pushed to a registry".into(),
                ));
            }
            let bytes = serde_json::to_vec(&LayoutIndex::of(carried)).expect("an index serialises");
            let digest = Sha256Digest::of(&bytes);
            notes.push(format!(
                "image {}: its index lists platforms this bundle does not carry; the site gets an index of the carried ones ({digest}), so a pin to {} will not resolve there",
                img.name, img.digest
            ));
            manifests.push(PushManifest {
                digest,
                media_type: OCI_INDEX.to_string(),
                entry: None,
                bytes,
            });
        }
        for d in g.digests() {
            pushed.entry(d).or_insert_with(|| repository.clone());
        }
        p.steps.push(Step::Push(PushStep {
            image: img.name.to_string(),
            target: site.target(&img.name),
            site: public.clone(),
            repository,
            tag: img.name.tag.clone(),
            digest: manifests.last().map(|m| m.digest).unwrap_or(img.digest),
            blobs,
            manifests,
        }));
    }
    Ok(p)
}
