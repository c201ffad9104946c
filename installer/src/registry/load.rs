//! Building an [`ImageStore`]: walk every image from its top manifest down to its layers.
//!
//! Manifests are read once (even when shared by many repositories), checked against
//! their digest, and parsed for their children (index entries) and blobs (config and
//! layers). The walk records each reachable digest in the repository of the image that
//! reached it, so `quay.io/x` cannot be used to read a layer only `docker.io/y` carries.
//! Manifests with a `subject` (signatures, SBOMs) join every repository that holds their
//! subject, which is what the referrers API lists.

use super::errors::RegistryError;
use super::oci::{
    is_foreign_layer, Descriptor, RawManifest, MAX_INDEX_DEPTH, MAX_MANIFEST_BYTES, OCI_INDEX,
    OCI_MANIFEST,
};
use super::store::{Blob, BlobLocation, ImageStore, Manifest, RepoKey, Repository, StoredImage};
use super::verify::Verdict;
use ferry_bundle::reference::{check_repository, check_tag};
use ferry_bundle::Sha256Digest;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

pub(crate) struct Loader {
    locations: HashMap<Sha256Digest, BlobLocation>,
    manifests: HashMap<Sha256Digest, Manifest>,
    repos: BTreeMap<RepoKey, Repository>,
    /// Manifests with a subject but no name of their own (from an OCI layout's index).
    detached: Vec<Sha256Digest>,
    warned: HashSet<Sha256Digest>,
}

impl Loader {
    pub(crate) fn new(locations: HashMap<Sha256Digest, BlobLocation>) -> Self {
        Loader {
            locations,
            manifests: HashMap::new(),
            repos: BTreeMap::new(),
            detached: Vec::new(),
            warned: HashSet::new(),
        }
    }

    /// Adds one named image: its tag, and everything reachable from its manifest.
    pub(crate) fn add_image(&mut self, image: &StoredImage) -> Result<(), RegistryError> {
        let r = &image.reference;
        let invalid = |reason: String| RegistryError::InvalidImage {
            image: r.to_string(),
            reason,
        };
        if r.host.is_empty() {
            return Err(invalid("no registry host".into()));
        }
        check_repository(&r.repository).map_err(invalid)?;
        if let Some(d) = &r.digest {
            if *d != image.digest.oci() {
                return Err(invalid(format!(
                    "the reference pins {d} but the stored manifest is {}",
                    image.digest.oci()
                )));
            }
        }
        if !self.load(&image.digest, &image.media_type)? {
            return Err(RegistryError::MissingManifest {
                image: r.to_string(),
                digest: image.digest.oci(),
            });
        }
        let key = RepoKey {
            host: r.host.clone(),
            repository: r.repository.clone(),
        };
        if let Some(tag) = &r.tag {
            check_tag(tag).map_err(invalid)?;
            let repo = self.repos.entry(key.clone()).or_default();
            if let Some(first) = repo.tags.get(tag) {
                if *first != image.digest {
                    return Err(RegistryError::TagConflict {
                        host: key.host,
                        repository: key.repository,
                        tag: tag.clone(),
                        first: first.oci(),
                        second: image.digest.oci(),
                    });
                }
            }
            repo.tags.insert(tag.clone(), image.digest);
        }
        self.walk(&key, image.digest, &image.media_type)
    }

    /// Adds a manifest that has no name: it joins the repositories of its subject.
    pub(crate) fn add_detached(
        &mut self,
        digest: Sha256Digest,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        if self.load(&digest, media_type)? {
            self.detached.push(digest);
        }
        Ok(())
    }

    /// Whether the manifest is loaded (reading it now if needed); `false` when the blob
    /// is not in the bundle at all.
    fn load(&mut self, digest: &Sha256Digest, hint: &str) -> Result<bool, RegistryError> {
        if self.manifests.contains_key(digest) {
            return Ok(true);
        }
        let Some(loc) = self.locations.get(digest) else {
            return Ok(false);
        };
        if loc.len > MAX_MANIFEST_BYTES {
            return Err(RegistryError::ManifestTooLarge {
                digest: digest.oci(),
                len: loc.len,
                max: MAX_MANIFEST_BYTES,
            });
        }
        let io_err = |source| RegistryError::Io {
            path: loc.path.clone(),
            source,
        };
        let file = File::open(&loc.path).map_err(io_err)?;
        let mut bytes = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut bytes, loc.offset).map_err(io_err)?;
        let actual = Sha256Digest::of(&bytes);
        if actual != *digest {
            return Err(RegistryError::CorruptManifest {
                digest: digest.oci(),
                path: loc.path.clone(),
                actual: actual.oci(),
            });
        }
        let raw: RawManifest =
            serde_json::from_slice(&bytes).map_err(|source| RegistryError::Json {
                what: format!("manifest {}", digest.oci()),
                source,
            })?;
        let media_type = raw
            .media_type
            .clone()
            .filter(|m| !m.is_empty())
            .or_else(|| Some(hint.to_string()).filter(|m| !m.is_empty()))
            .unwrap_or_else(|| {
                if raw.manifests.is_some() {
                    OCI_INDEX.to_string()
                } else {
                    OCI_MANIFEST.to_string()
                }
            });
        let parse = |list: &[super::oci::RawDescriptor]| -> Vec<(Sha256Digest, String)> {
            list.iter()
                .filter_map(|d| match Sha256Digest::from_oci(&d.digest) {
                    Some(x) => Some((x, d.media_type.clone())),
                    None => {
                        tracing::warn!(manifest = %digest.oci(), entry = %d.digest, "skipping a descriptor that is not a sha256 digest");
                        None
                    }
                })
                .collect()
        };
        let (children, blobs) = if raw.is_index(&media_type) {
            (
                parse(raw.manifests.as_deref().unwrap_or_default()),
                Vec::new(),
            )
        } else {
            let mut all: Vec<_> = raw.config.iter().cloned().collect();
            all.extend(raw.layers.iter().cloned());
            all.extend(raw.blobs.iter().cloned());
            (Vec::new(), parse(&all))
        };
        let subject = raw
            .subject
            .as_ref()
            .and_then(|s| Sha256Digest::from_oci(&s.digest));
        let descriptor = Descriptor {
            media_type: media_type.clone(),
            digest: digest.oci(),
            size: bytes.len() as u64,
            artifact_type: raw.effective_artifact_type(),
            annotations: raw.annotations,
        };
        self.manifests.insert(
            *digest,
            Manifest {
                media_type,
                bytes: Arc::from(bytes),
                subject,
                descriptor,
                children,
                blobs,
            },
        );
        Ok(true)
    }

    /// Records `top` and everything below it as belonging to `key`.
    fn walk(&mut self, key: &RepoKey, top: Sha256Digest, hint: &str) -> Result<(), RegistryError> {
        let mut stack = vec![(top, hint.to_string(), 0usize)];
        while let Some((digest, hint, depth)) = stack.pop() {
            if self
                .repos
                .get(key)
                .is_some_and(|r| r.manifests.contains(&digest))
            {
                continue;
            }
            if depth > MAX_INDEX_DEPTH {
                return Err(RegistryError::InvalidImage {
                    image: key.full_name(),
                    reason: format!("indexes nest deeper than {MAX_INDEX_DEPTH} levels"),
                });
            }
            if !self.load(&digest, &hint)? {
                tracing::debug!(repository = %key.full_name(), manifest = %digest.oci(), "index entry not bundled; skipped");
                continue;
            }
            let m = &self.manifests[&digest];
            let children = m.children.clone();
            let blobs = m.blobs.clone();
            let repo = self.repos.entry(key.clone()).or_default();
            repo.manifests.insert(digest);
            for (blob, media_type) in blobs {
                if self.locations.contains_key(&blob) {
                    repo.blobs.insert(blob);
                } else if !is_foreign_layer(&media_type) && self.warned.insert(blob) {
                    tracing::warn!(repository = %key.full_name(), manifest = %digest.oci(), blob = %blob.oci(),
                        "blob referenced by a manifest is not in the bundle; requests for it will get 404");
                }
            }
            for (child, media_type) in children.into_iter().rev() {
                stack.push((child, media_type, depth + 1));
            }
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> ImageStore {
        // A referrer may itself have referrers (a signature of an SBOM): repeat until no
        // repository gains a manifest.
        let detached = std::mem::take(&mut self.detached);
        loop {
            let mut changed = false;
            for d in &detached {
                let Some(subject) = self.manifests[d].subject else {
                    continue;
                };
                let hint = self.manifests[d].media_type.clone();
                let keys: Vec<RepoKey> = self
                    .repos
                    .iter()
                    .filter(|(_, r)| r.manifests.contains(&subject) && !r.manifests.contains(d))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in keys {
                    // Only errors of nesting depth can happen here, and referrers are flat.
                    if let Err(e) = self.walk(&key, *d, &hint) {
                        tracing::warn!(referrer = %d.oci(), error = %e, "skipping referrer");
                    }
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut hosts_by_path: HashMap<String, Vec<String>> = HashMap::new();
        for key in self.repos.keys() {
            hosts_by_path
                .entry(key.repository.clone())
                .or_default()
                .push(key.host.clone());
        }
        let mut referrers: HashMap<Sha256Digest, Vec<Sha256Digest>> = HashMap::new();
        for (digest, m) in &self.manifests {
            if let Some(subject) = m.subject {
                referrers.entry(subject).or_default().push(*digest);
            }
        }
        for list in referrers.values_mut() {
            list.sort();
        }
        let served: HashSet<Sha256Digest> = self
            .repos
            .values()
            .flat_map(|r| r.blobs.iter().copied())
            .collect();
        let blobs = self
            .locations
            .into_iter()
            .filter(|(d, _)| served.contains(d))
            .map(|(d, location)| {
                (
                    d,
                    Blob {
                        location,
                        verdict: Verdict::default(),
                    },
                )
            })
            .collect();
        let store = ImageStore {
            repos: self.repos,
            hosts_by_path,
            manifests: self.manifests,
            blobs,
            referrers,
            extension: None,
        };
        tracing::info!(
            repositories = store.repos.len(),
            manifests = store.manifests.len(),
            blobs = store.blobs.len(),
            "image store loaded"
        );
        store
    }
}
