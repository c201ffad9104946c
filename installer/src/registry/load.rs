//! Building an [`ImageStore`]: walk every image from its top manifest down to its layers.
//!
//! Manifests are read once (even when shared by many repositories), checked against
//! their digest, and parsed (with the bundle crate's one OCI model, [`ferry_bundle::oci`])
//! for their children (index entries) and blobs (config and layers). The walk records
//! each reachable digest in the repository of the image that reached it, so `quay.io/x`
//! cannot be used to read a layer only `docker.io/y` carries. Manifests with a `subject`
//! (signatures, SBOMs) join every repository that holds their subject, which is what the
//! referrers API lists.
//!
//! One bad image must not take down every other one: an image whose manifests cannot be
//! read, are corrupt, nest too deep, have a media type that is neither manifest nor index
//! (or one that is not a safe header value), or whose tag conflicts with an earlier image
//! is skipped, logged as a warning and listed in [`ImageStore::skipped`]. An image is
//! walked completely before anything is recorded for it, so a skipped image leaves no
//! half-registered tags or blobs behind.

use super::errors::RegistryError;
use super::store::{
    Blob, BlobLocation, ImageStore, Manifest, RepoKey, Repository, SkippedImage, StoredImage,
};
use ferry_bundle::oci::{self, is_foreign_layer, Descriptor, MAX_INDEX_DEPTH, MAX_MANIFEST_BYTES};
use ferry_bundle::reference::{check_repository, check_tag};
use ferry_bundle::Sha256Digest;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

pub(crate) struct Loader {
    locations: HashMap<Sha256Digest, BlobLocation>,
    manifests: HashMap<Sha256Digest, Manifest>,
    repos: BTreeMap<RepoKey, Repository>,
    /// Manifests with a subject but no name of their own (from an OCI layout's index).
    detached: Vec<Sha256Digest>,
    warned: HashSet<Sha256Digest>,
    skipped: Vec<SkippedImage>,
}

/// What one image reaches: its manifests and the blobs the bundle has.
#[derive(Default)]
struct Reach {
    manifests: BTreeSet<Sha256Digest>,
    blobs: BTreeSet<Sha256Digest>,
}

impl Loader {
    pub(crate) fn new(locations: HashMap<Sha256Digest, BlobLocation>) -> Self {
        Loader {
            locations,
            manifests: HashMap::new(),
            repos: BTreeMap::new(),
            detached: Vec::new(),
            warned: HashSet::new(),
            skipped: Vec::new(),
        }
    }

    /// Adds one named image (its tag, and everything reachable from its manifest), or
    /// skips it with a warning if it cannot be served. Returns whether it was added.
    pub(crate) fn add_image(&mut self, image: &StoredImage) -> bool {
        match self.try_add_image(image) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(image = %image.reference, %error, "skipping this image: the registry will not serve it");
                self.skipped.push(SkippedImage {
                    image: image.reference.to_string(),
                    error,
                });
                false
            }
        }
    }

    fn try_add_image(&mut self, image: &StoredImage) -> Result<(), RegistryError> {
        let r = &image.reference;
        let invalid = |reason: String| RegistryError::InvalidImage {
            image: r.to_string(),
            reason,
        };
        if r.host.is_empty() {
            return Err(invalid("no registry host".into()));
        }
        check_repository(&r.repository).map_err(|e| invalid(e.to_string()))?;
        if let Some(d) = &r.digest {
            if *d != image.digest {
                return Err(invalid(format!(
                    "the reference pins {d} but the stored manifest is {}",
                    image.digest
                )));
            }
        }
        if !self.load(&image.digest, &image.media_type)? {
            return Err(RegistryError::MissingManifest {
                image: r.to_string(),
                digest: image.digest.to_string(),
            });
        }
        let key = RepoKey {
            host: r.host.clone(),
            repository: r.repository.clone(),
        };
        if let Some(tag) = &r.tag {
            check_tag(tag).map_err(|e| invalid(e.to_string()))?;
            if let Some(first) = self.repos.get(&key).and_then(|repo| repo.tags.get(tag)) {
                if *first != image.digest {
                    return Err(RegistryError::TagConflict {
                        host: key.host,
                        repository: key.repository,
                        tag: tag.clone(),
                        first: first.to_string(),
                        second: image.digest.to_string(),
                    });
                }
            }
        }
        let reach = self.reach(&key, image.digest, &image.media_type)?;
        let repo = self.repos.entry(key).or_default();
        if let Some(tag) = &r.tag {
            repo.tags.insert(tag.clone(), image.digest);
        }
        repo.manifests.extend(reach.manifests);
        repo.blobs.extend(reach.blobs);
        Ok(())
    }

    /// Adds a manifest that has no name: it joins the repositories of its subject.
    pub(crate) fn add_detached(&mut self, digest: Sha256Digest, media_type: &str) {
        match self.load(&digest, media_type) {
            Ok(true) => self.detached.push(digest),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(manifest = %digest, error = %e, "skipping an unnamed manifest")
            }
        }
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
                digest: digest.to_string(),
                len: loc.len,
                max: MAX_MANIFEST_BYTES,
            });
        }
        let first = loc
            .pieces
            .first()
            .map(|p| p.path.clone())
            .unwrap_or_default();
        let mut bytes = Vec::with_capacity(loc.len as usize);
        let mut buf = vec![0u8; (loc.len as usize).clamp(1, 64 << 10)];
        BlobLocation::read_pieces(&loc.pieces, &mut buf, &mut |b| {
            bytes.extend_from_slice(b);
            Ok(())
        })
        .map_err(|source| RegistryError::Io {
            path: first.clone(),
            source,
        })?;
        let actual = Sha256Digest::of(&bytes);
        if actual != *digest {
            return Err(RegistryError::CorruptManifest {
                digest: digest.to_string(),
                path: first,
                actual: actual.to_string(),
            });
        }
        let hint = Some(hint).filter(|h| !h.is_empty());
        let (media_type, doc) =
            oci::parse_manifest(&bytes, hint).map_err(|source| RegistryError::Manifest {
                digest: digest.to_string(),
                source,
            })?;
        let pairs = |list: &mut dyn Iterator<Item = &Descriptor>| -> Vec<(Sha256Digest, String)> {
            list.map(|d| (d.digest, d.media_type.clone())).collect()
        };
        let (children, blobs) = if doc.is_index(&media_type) {
            (pairs(&mut doc.children().iter()), Vec::new())
        } else {
            (Vec::new(), pairs(&mut doc.blob_descriptors()))
        };
        let mut descriptor = Descriptor::new(media_type.clone(), *digest, bytes.len() as u64);
        descriptor.artifact_type = doc.effective_artifact_type();
        descriptor.annotations = doc.annotations.clone();
        self.manifests.insert(
            *digest,
            Manifest {
                media_type,
                bytes: Arc::from(bytes),
                subject: doc.subject.as_ref().map(|s| s.digest),
                descriptor,
                children,
                blobs,
            },
        );
        Ok(true)
    }

    /// Everything `top` reaches, loading manifests as needed; changes no repository.
    fn reach(
        &mut self,
        key: &RepoKey,
        top: Sha256Digest,
        hint: &str,
    ) -> Result<Reach, RegistryError> {
        let mut reach = Reach::default();
        let mut stack = vec![(top, hint.to_string(), 0usize)];
        while let Some((digest, hint, depth)) = stack.pop() {
            if reach.manifests.contains(&digest) {
                continue;
            }
            if depth > MAX_INDEX_DEPTH {
                return Err(RegistryError::InvalidImage {
                    image: key.full_name(),
                    reason: format!("indexes nest deeper than {MAX_INDEX_DEPTH} levels"),
                });
            }
            if !self.load(&digest, &hint)? {
                tracing::debug!(repository = %key.full_name(), manifest = %digest, "index entry not bundled; skipped");
                continue;
            }
            reach.manifests.insert(digest);
            let m = &self.manifests[&digest];
            for (blob, media_type) in &m.blobs {
                if self.locations.contains_key(blob) {
                    reach.blobs.insert(*blob);
                } else if !is_foreign_layer(media_type) && self.warned.insert(*blob) {
                    tracing::warn!(repository = %key.full_name(), manifest = %digest, %blob,
                        "blob referenced by a manifest is not in the bundle; requests for it will get 404");
                }
            }
            for (child, media_type) in m.children.iter().rev() {
                stack.push((*child, media_type.clone(), depth + 1));
            }
        }
        Ok(reach)
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
                    match self.reach(&key, *d, &hint) {
                        Ok(reach) => {
                            let repo = self.repos.entry(key).or_default();
                            repo.manifests.extend(reach.manifests);
                            repo.blobs.extend(reach.blobs);
                            changed = true;
                        }
                        Err(e) => tracing::warn!(referrer = %d, error = %e, "skipping referrer"),
                    }
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
                        verdict: Default::default(),
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
            skipped: self.skipped,
            extension: None,
            misses: super::misses::MissLog::in_memory(),
        };
        tracing::info!(
            repositories = store.repos.len(),
            manifests = store.manifests.len(),
            blobs = store.blobs.len(),
            skipped = store.skipped.len(),
            "image store loaded"
        );
        store
    }
}
