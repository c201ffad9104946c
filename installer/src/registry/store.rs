//! The registry's view of a bundle: which manifests and blobs exist, where their bytes
//! lie, and which `(host, repository)` may serve each of them.
//!
//! Nothing is extracted: a blob is a byte range of a bigger file (the staged
//! `delivery.run`, or a file of an OCI layout). Manifests are small and are read,
//! checked against their digest and kept in memory at load ([`super::load`]); blobs are
//! checked once, in the background or on their first request ([`super::verify`]). A
//! repository only answers for the blobs its own images reference, as a real registry
//! does.

use super::body::read_chunks;
use super::errors::{ApiError, RegistryError};
use super::misses::MissLog;
use super::names::MAX_NAME_LEN;
use super::verify::Verdict;
use ferry_bundle::oci::Descriptor;
use ferry_bundle::parts::FileRange;
use ferry_bundle::reference::{
    check_repository, hub_repository, looks_like_host, normalise_host, Reference, DEFAULT_HOST,
};
use ferry_bundle::{Bundle, Sha256Digest};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// Where a blob's bytes lie: `len` bytes, as ranges of files in order — one range, or
/// several when the blob of a split bundle spans its parts. Files are opened by path per
/// request, so a staged bundle replaced by an upgrade is served from the new file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLocation {
    pub pieces: Vec<FileRange>,
    pub len: u64,
}

impl BlobLocation {
    /// `len` bytes at `offset` of the file at `path`.
    pub fn file(path: PathBuf, offset: u64, len: u64) -> BlobLocation {
        BlobLocation {
            pieces: vec![FileRange { path, offset, len }],
            len,
        }
    }

    /// The bytes of a bundle entry, in whichever parts hold them.
    pub fn in_bundle(b: &Bundle, e: &ferry_bundle::EntryRecord) -> BlobLocation {
        BlobLocation {
            pieces: b.entry_ranges(e),
            len: e.size,
        }
    }

    /// For messages: `<offset> of <file>` (and the further parts it spans).
    pub fn describe(&self) -> String {
        match self.pieces.split_first() {
            Some((first, [])) => {
                format!("at offset {} of {}", first.offset, first.path.display())
            }
            Some((first, rest)) => format!(
                "at offset {} of {} and in {} further part(s)",
                first.offset,
                first.path.display(),
                rest.len()
            ),
            None => "(empty)".to_string(),
        }
    }

    /// The pieces of `len` bytes starting `start` bytes into the blob.
    pub fn slice(&self, start: u64, len: u64) -> Vec<FileRange> {
        let mut out = Vec::new();
        let (mut skip, mut left) = (start, len);
        for p in &self.pieces {
            if left == 0 {
                break;
            }
            if skip >= p.len {
                skip -= p.len;
                continue;
            }
            let take = (p.len - skip).min(left);
            out.push(FileRange {
                path: p.path.clone(),
                offset: p.offset + skip,
                len: take,
            });
            left -= take;
            skip = 0;
        }
        out
    }

    /// Reads `len` bytes from `pieces` in order into `sink` through `buf`-sized reads; a
    /// file shorter than its range is an error.
    pub fn read_pieces(
        pieces: &[FileRange],
        buf: &mut [u8],
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        for p in pieces {
            let file = std::fs::File::open(&p.path)?;
            read_chunks(&file, p.offset, p.len, buf, sink)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.path.display())))?;
        }
        Ok(())
    }
}

/// One image name the registry answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    /// Full normalised name; its tag (if any) becomes a tag of the repository. A
    /// digest-only reference makes the manifest reachable by digest only (e.g. a
    /// signature or SBOM that the referrers API lists).
    pub reference: Reference,
    /// Digest of the top manifest or index.
    pub digest: Sha256Digest,
    /// Its media type, used when the manifest itself does not say.
    pub media_type: String,
}

/// An image the registry does not serve, and why (each was logged as a warning at load).
#[derive(Debug)]
pub struct SkippedImage {
    /// The image's full name.
    pub image: String,
    pub error: RegistryError,
}

/// `(host, repository)`, e.g. `("docker.io", "library/nginx")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RepoKey {
    pub host: String,
    pub repository: String,
}

impl RepoKey {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }
}

/// What one repository may serve.
#[derive(Debug, Default)]
pub(crate) struct Repository {
    pub tags: BTreeMap<String, Sha256Digest>,
    pub manifests: BTreeSet<Sha256Digest>,
    pub blobs: BTreeSet<Sha256Digest>,
}

/// A manifest or index, read and verified at load.
#[derive(Debug)]
pub(crate) struct Manifest {
    pub media_type: String,
    pub bytes: Arc<[u8]>,
    pub subject: Option<Sha256Digest>,
    /// How the referrers API lists this manifest.
    pub descriptor: Descriptor,
    /// Index entries (digest, media type from the descriptor).
    pub children: Vec<(Sha256Digest, String)>,
    /// Config, layers and other blobs (digest, media type).
    pub blobs: Vec<(Sha256Digest, String)>,
}

/// A blob kept in the bundle file, with its memoised digest check (shared with the
/// bodies that verify it while they are sent, see [`super::verify`]).
#[derive(Debug)]
pub(crate) struct Blob {
    pub location: BlobLocation,
    pub verdict: Arc<Verdict>,
}

/// What a blob request resolves to.
pub(crate) enum BlobRef<'a> {
    /// A manifest, served from memory (already verified).
    Manifest(&'a Manifest),
    File(&'a Blob),
}

/// The routing tables of the registry, built once at load and read-only afterwards.
#[derive(Debug)]
pub struct ImageStore {
    pub(crate) repos: BTreeMap<RepoKey, Repository>,
    /// Repository path → hosts carrying it, sorted.
    pub(crate) hosts_by_path: HashMap<String, Vec<String>>,
    pub(crate) manifests: HashMap<Sha256Digest, Manifest>,
    pub(crate) blobs: HashMap<Sha256Digest, Blob>,
    /// Subject digest → manifests naming it as `subject`, sorted.
    pub(crate) referrers: HashMap<Sha256Digest, Vec<Sha256Digest>>,
    /// Images that could not be loaded and are not served.
    pub(crate) skipped: Vec<SkippedImage>,
    /// Routes outside the OCI API (the join channel under `/ferry/`), if any.
    pub(crate) extension: Option<Extension>,
    /// Requests for names, tags and digests the bundle lacks ([`super::misses`]).
    pub(crate) misses: Arc<MissLog>,
}

/// Answers requests under `/ferry/`; `None` means "not found".
pub type ExtensionFn = dyn Fn(&super::http::Request) -> Option<super::http::Response> + Send + Sync;

/// A boxed [`ExtensionFn`] (a newtype so that [`ImageStore`] stays `Debug`).
#[derive(Clone)]
pub struct Extension(pub std::sync::Arc<ExtensionFn>);

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Extension")
    }
}

impl ImageStore {
    /// Builds the routing tables: reads every image's manifest (or index, then its
    /// manifests), checks each against its digest, and records which blobs belong to
    /// which `(host, repository)`. Index entries absent from `blobs` (platforms not
    /// bundled) are skipped; an image that cannot be served (missing or corrupt top
    /// manifest, unknown media type, conflicting tag, …) is skipped with a warning and
    /// listed in [`ImageStore::skipped`], so one bad image never takes down the others.
    pub fn new(images: Vec<StoredImage>, blobs: HashMap<Sha256Digest, BlobLocation>) -> ImageStore {
        let mut loader = super::load::Loader::new(blobs);
        for image in &images {
            loader.add_image(image);
        }
        loader.finish()
    }

    /// The registry's view of opened bundles: every image of their bundle.json (names
    /// and digests already validated when they opened) and every blob as a byte range of
    /// its bundle file. Nothing is read but manifests. The first bundle wins where two
    /// carry the same image name (an upgrade serves the new version first and the old
    /// one's other images until it commits).
    pub fn from_bundles(bundles: &[Bundle]) -> ImageStore {
        let mut blobs = HashMap::new();
        let mut images: Vec<StoredImage> = Vec::new();
        for b in bundles {
            for (digest, at) in b.all_blobs() {
                blobs
                    .entry(digest)
                    .or_insert_with(|| BlobLocation::in_bundle(at.bundle, at.entry));
            }
            for i in &b.manifest.images {
                if images.iter().any(|x| x.reference == i.name) {
                    continue;
                }
                images.push(StoredImage {
                    reference: i.name.clone(),
                    digest: i.digest,
                    media_type: i.media_type.clone(),
                });
            }
        }
        ImageStore::new(images, blobs)
    }

    /// Images that are not served, with the reason (empty when every image loaded).
    pub fn skipped(&self) -> &[SkippedImage] {
        &self.skipped
    }

    /// Records requests for what the bundle lacks in `log` (by default a log of its own,
    /// in memory).
    pub fn with_miss_log(mut self, log: Arc<MissLog>) -> Self {
        self.misses = log;
        self
    }

    /// The requests for names, tags and digests this store could not answer.
    pub fn misses(&self) -> &MissLog {
        &self.misses
    }

    /// Adds routes under `/ferry/` (the join channel) to this store's server.
    pub fn with_extension(mut self, e: Extension) -> Self {
        self.extension = Some(e);
        self
    }

    /// Full names (`host/repository`) of every repository, sorted.
    pub fn repositories(&self) -> Vec<String> {
        self.repos.keys().map(RepoKey::full_name).collect()
    }

    /// Full references (`host/repository:tag`) of every tag, sorted.
    pub fn tagged_images(&self) -> Vec<String> {
        self.repos
            .iter()
            .flat_map(|(k, r)| r.tags.keys().map(move |t| format!("{}:{t}", k.full_name())))
            .collect()
    }

    /// Number of distinct blobs (layers and configs) the store can serve.
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    fn get(&self, host: &str, repository: &str) -> Option<(&RepoKey, &Repository)> {
        let key = RepoKey {
            host: host.to_string(),
            repository: repository.to_string(),
        };
        self.repos.get_key_value(&key)
    }

    /// Maps a request's `<name>` (and containerd's `?ns=`) to a repository; see
    /// [`super::names`] for the rules.
    pub(crate) fn resolve(
        &self,
        name: &str,
        ns: Option<&str>,
    ) -> Result<(&RepoKey, &Repository), ApiError> {
        if name.len() > MAX_NAME_LEN {
            return Err(ApiError::name_invalid(format!(
                "repository name is {} characters long; the limit is {MAX_NAME_LEN}",
                name.len()
            )));
        }
        if let Some(ns) = ns {
            let host = normalise_host(ns).map_err(|e| {
                ApiError::name_invalid(format!("ns={ns:?} is not a registry host: {e}"))
            })?;
            let repository = hub_repository(&host, name);
            check_repository(&repository).map_err(|e| ApiError::name_invalid(e.to_string()))?;
            return self.get(&host, &repository).ok_or_else(|| {
                ApiError::name_unknown(format!(
                    "repository {host}/{repository} is not in this bundle"
                ))
            });
        }
        let mut full_path_valid = false;
        if let Some((first, rest)) = name.split_once('/') {
            if let Some(host) = looks_like_host(first)
                .then(|| normalise_host(first).ok())
                .flatten()
            {
                let repository = hub_repository(&host, rest);
                if check_repository(&repository).is_ok() {
                    full_path_valid = true;
                    if let Some(found) = self.get(&host, &repository) {
                        return Ok(found);
                    }
                }
            }
        }
        if let Err(e) = check_repository(name) {
            return Err(if full_path_valid {
                ApiError::name_unknown(format!("repository {name} is not in this bundle"))
            } else {
                ApiError::name_invalid(e.to_string())
            });
        }
        let mut candidates: Vec<RepoKey> = self
            .hosts_by_path
            .get(name)
            .into_iter()
            .flatten()
            .map(|h| RepoKey {
                host: h.clone(),
                repository: name.to_string(),
            })
            .collect();
        if !name.contains('/') {
            let hub = RepoKey {
                host: DEFAULT_HOST.to_string(),
                repository: hub_repository(DEFAULT_HOST, name),
            };
            if self.repos.contains_key(&hub) {
                candidates.push(hub);
            }
        }
        match candidates.as_slice() {
            [one] => Ok(self
                .repos
                .get_key_value(one)
                .expect("candidates come from the tables")),
            [] => Err(ApiError::name_unknown(format!(
                "repository {name} is not in this bundle"
            ))),
            many => Err(ApiError::name_unknown(format!(
                "repository {name} is ambiguous: this bundle has {}; add ?ns=<registry host> \
                 (containerd does so for a hosts.toml mirror) or name the host in the path, \
                 e.g. /v2/{}/…",
                many.iter()
                    .map(RepoKey::full_name)
                    .collect::<Vec<_>>()
                    .join(", "),
                many[0].full_name()
            ))),
        }
    }

    pub(crate) fn manifest(&self, digest: &Sha256Digest) -> Option<&Manifest> {
        self.manifests.get(digest)
    }

    /// A blob of `repo`: a layer or config from the bundle file, or one of its manifests.
    pub(crate) fn blob<'a>(
        &'a self,
        repo: &Repository,
        digest: &Sha256Digest,
    ) -> Option<BlobRef<'a>> {
        if repo.blobs.contains(digest) {
            return self.blobs.get(digest).map(BlobRef::File);
        }
        if repo.manifests.contains(digest) {
            return self.manifests.get(digest).map(BlobRef::Manifest);
        }
        None
    }

    /// Manifests of `repo` whose `subject` is `subject`, optionally of one artifact type.
    pub(crate) fn referrers(
        &self,
        repo: &Repository,
        subject: &Sha256Digest,
        artifact_type: Option<&str>,
    ) -> Vec<&Descriptor> {
        self.referrers
            .get(subject)
            .into_iter()
            .flatten()
            .filter(|d| repo.manifests.contains(d))
            .filter_map(|d| self.manifests.get(d))
            .map(|m| &m.descriptor)
            .filter(|d| match artifact_type {
                Some(t) => d.artifact_type.as_deref() == Some(t),
                None => true,
            })
            .collect()
    }
}
