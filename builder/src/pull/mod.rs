//! Pulling images from OCI Distribution registries into the builder's [`ContentCache`].
//!
//! [`pull`] resolves a reference to its manifest (OCI or Docker schema2) or index (OCI
//! index or Docker manifest list), selects platforms, and downloads every blob it needs into
//! the cache, checking every digest and size while the bytes stream past. The returned
//! [`PulledImage`] lists exactly those blobs, all present in the cache, for the bundle
//! writer to copy. [`resolve`] stops before the layers, leaving them to
//! [`PendingPull::fetch`]: `ferry build` fetches them while it writes the bundle.
//!
//! # Platforms and what the bundle keeps
//!
//! * **One platform** (the usual case): the image's root becomes that platform's manifest
//!   and the index is dropped, so the bundle carries no entry that points at content it
//!   does not have. *Exception*: a reference pinned by digest to an index keeps the index as
//!   root, because charts that write `image@sha256:<index>` must find that digest served.
//! * **Several platforms**: the index is kept **as-is** (original bytes) and only the
//!   selected platforms' manifests and blobs are fetched. It is not rewritten down to those
//!   platforms, because a rewritten index has a new digest: `@sha256:` pins in charts,
//!   signatures and SBOM attestations all name the original, and runtimes pulling by
//!   platform only ever follow the entry for their own platform, so the unfetched entries
//!   are never asked for.
//!
//! # HTTP stack
//!
//! `ureq` (blocking, rustls) rather than `oci-client` (async, tokio): the builder is
//! synchronous and a blocking client makes "stream this response into a hashing temp file"
//! a plain `read` loop with flat memory; parallel downloads are a handful of scoped std
//! threads. What `oci-client` would add (token auth, platform selection, digest checks) is a
//! few hundred lines here, written against the spec and unit-tested, in exchange for not
//! pulling an async runtime into the builder. Module map: [`endpoint`] (reference → URL,
//! mirrors, insecure hosts), [`dockerconfig`] (credentials), [`auth`] (challenges,
//! tokens), [`client`] (requests, retries, status → error), [`manifest`] (platform
//! selection), `fetch` (verified transfers into the cache), [`cache`], `probe` (does a
//! manifest exist: candidate verification), and [`upload`] (the push side: blobs and
//! manifests into a registry, used by `ferry push`). Media types,
//! descriptors and the manifest parser are the bundle crate's OCI model
//! ([`ferry_bundle::oci`]), the same the installer's registry reads them with.

pub mod auth;
pub mod cache;
pub mod client;
pub mod dockerconfig;
pub mod endpoint;
pub mod error;
mod fetch;
pub mod manifest;
pub mod options;
mod probe;
pub mod stats;
pub mod upload;

pub use cache::{BlobWriter, CacheError, ContentCache};
pub use dockerconfig::{Credentials, DockerConfig};
pub use error::PullError;
pub use ferry_bundle::oci::Descriptor;
pub use options::{Mirror, MirrorError, Platform, PullOptions};
pub use probe::{probe, Probe};
pub use stats::PullStats;

pub use client::Access;
use client::Client;
use ferry_bundle::oci::{self, Manifest, OciError};
use ferry_bundle::reference::Reference;
use ferry_bundle::Sha256Digest;
use fetch::{Fetcher, Wanted};
use std::collections::HashSet;

/// An image whose blobs are all in the cache.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The reference as asked for (the name the bundle stores; mirrors do not change it).
    pub reference: Reference,
    /// What the reference resolves to in the bundle: a manifest, or an index (see the
    /// module doc for when the index is kept).
    pub root: Descriptor,
    /// Every blob of the image, root included: index (if kept), manifests, configs, layers.
    /// Each appears once and is present in the cache.
    pub blobs: Vec<Descriptor>,
    /// The platforms carried, `os/arch[/variant]`, in the order asked for. A single-
    /// platform image reports its config's platform (empty if it declares none, as for
    /// non-image artifacts).
    pub platforms: Vec<String>,
    /// What this pull transferred.
    pub stats: PullStats,
}

/// Pulls `reference` into `cache`. See the module doc for platform handling.
pub fn pull(
    reference: &Reference,
    opts: &PullOptions,
    cache: &ContentCache,
) -> Result<PulledImage, PullError> {
    let mut pending = resolve(reference, opts, cache)?;
    pending.fetch_all(cache, opts.parallel_downloads)?;
    let image = pending.image;
    tracing::info!(
        "pulled {reference} from {}: {} blob(s) fetched ({} bytes), {} reused",
        pending.client.registry(),
        image.stats.blobs_fetched,
        image.stats.bytes_fetched,
        image.stats.blobs_reused
    );
    Ok(image)
}

/// An image whose manifests and configs are in the cache and whose layers may not be yet:
/// what [`resolve`] returns. Its [`PulledImage`] is complete but for those layers'
/// bytes, so a build can plan (and start writing) while [`PendingPull::fetch`] brings
/// them in, each when its turn comes.
pub struct PendingPull {
    client: Client,
    /// The image as it will be once every layer is fetched; `stats` so far.
    pub image: PulledImage,
    layers: Vec<Wanted>,
}

impl PendingPull {
    /// The layers still to bring into the cache (those it held at [`resolve`] are not).
    pub fn layers(&self) -> impl Iterator<Item = &Descriptor> {
        self.layers.iter().map(|w| &w.desc)
    }

    /// Brings layer `i` of [`Self::layers`] into `cache`, verified like every pulled blob;
    /// returns what that transferred.
    pub fn fetch(&self, cache: &ContentCache, i: usize) -> Result<PullStats, PullError> {
        let f = Fetcher::new(&self.client, cache);
        let w = &self.layers[i];
        f.blob(&w.desc, &w.what)?;
        Ok(f.counters.snapshot())
    }

    /// Closes the connection kept for the next fetch: the caller knows this image's last
    /// layer is in (or will not be asked for), and a kept connection holds ureq's 256 KiB
    /// of buffers until the build ends (300 images held 177 MB).
    pub fn close_idle(&self) {
        self.client.close_idle();
    }

    /// Brings every layer still pending into `cache`, `parallel` at a time; the image's
    /// `stats` then count them and none is left pending.
    pub fn fetch_all(&mut self, cache: &ContentCache, parallel: usize) -> Result<(), PullError> {
        let f = Fetcher::new(&self.client, cache);
        f.blobs(&self.layers, parallel)?;
        self.image.stats.add(&f.counters.snapshot());
        self.layers.clear();
        Ok(())
    }
}

/// Resolves `reference` to its manifests and brings them and the image configs into
/// `cache`; its layers are left to [`PendingPull::fetch`] ([`pull`] fetches them at once).
pub fn resolve(
    reference: &Reference,
    opts: &PullOptions,
    cache: &ContentCache,
) -> Result<PendingPull, PullError> {
    let client = Client::new(reference, opts)?;
    let f = Fetcher::new(&client, cache);
    let wanted_platforms = opts.effective_platforms();

    let root = match &reference.digest {
        Some(d) => f.manifest_by_digest(d, None, &format!("manifest {d}"))?,
        None => f.manifest_by_tag(reference.tag.as_deref().unwrap_or("latest"))?,
    };
    let root_what = format!("manifest {}", root.digest);
    let (root_type, parsed) = parse(
        &client,
        &root.bytes,
        root.content_type.as_deref(),
        &root_what,
    )?;
    let root_desc = Descriptor::new(root_type.clone(), root.digest, root.bytes.len() as u64);

    // (platform from the index, manifest descriptor, its config, its layers)
    let mut images: Vec<(Option<Platform>, Descriptor, Descriptor, Vec<Descriptor>)> = Vec::new();
    let is_index = parsed.is_index(&root_type);
    if is_index {
        let selected = manifest::select(parsed.children(), &wanted_platforms).map_err(|w| {
            PullError::PlatformNotFound {
                reference: client.reference().to_string(),
                registry: client.registry(),
                wanted: w.to_string(),
                available: manifest::offered(parsed.children()),
            }
        })?;
        for (platform, d) in selected {
            let what = format!("manifest {} ({platform})", d.digest);
            let m = f.manifest_by_digest(&d.digest, Some(d.size), &what)?;
            let hint = (!d.media_type.is_empty()).then_some(d.media_type.as_str());
            let (media_type, im) = parse(&client, &m.bytes, hint, &what)?;
            if im.is_index(&media_type) {
                return Err(unsupported(&client, &what, "an index nested in an index"));
            }
            let (config, layers) = image_parts(&client, &what, im)?;
            let desc = Descriptor::new(media_type, d.digest, d.size);
            images.push((Some(platform), desc, config, layers));
        }
    } else {
        let (config, layers) = image_parts(&client, &root_what, parsed)?;
        images.push((None, root_desc.clone(), config, layers));
    }

    let keep_index = is_index && (images.len() > 1 || reference.digest.is_some());
    let root = if is_index && !keep_index {
        images[0].1.clone()
    } else {
        root_desc.clone()
    };
    let mut seen: HashSet<Sha256Digest> = HashSet::new();
    let mut blobs: Vec<Descriptor> = Vec::new();
    if keep_index {
        seen.insert(root_desc.digest);
        blobs.push(root_desc);
    }
    // Configs are fetched now: they are small, and a single manifest's names its
    // platform. Layers are left to the caller. `blobs` lists them all: the manifests,
    // then each config and its layers.
    let (mut configs, mut layers, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for (_, mdesc, config, image_layers) in &images {
        if seen.insert(mdesc.digest) {
            blobs.push(mdesc.clone());
        }
        let parts =
            std::iter::once(("config", config)).chain(image_layers.iter().map(|l| ("layer", l)));
        for (kind, d) in parts {
            if seen.insert(d.digest) {
                rest.push(d.clone());
                let w = Wanted {
                    what: format!("{kind} {}", d.digest),
                    desc: d.clone(),
                };
                match kind {
                    "config" => configs.push(w),
                    // A cached layer is not pending (the caller then needs no client).
                    _ if cache.contains(&d.digest, d.size) => f.counters.reused(),
                    _ => layers.push(w),
                }
            }
        }
    }
    f.blobs(&configs, opts.parallel_downloads)?;
    blobs.extend(rest);

    let mut platforms = Vec::new();
    for (from_index, _, config, _) in &images {
        match from_index {
            Some(p) => platforms.push(p.to_string()),
            None => {
                if let Some(p) = config_platform(&f, config)? {
                    // Only an explicit request is enforced: the host default is a
                    // preference for choosing within an index, not a filter.
                    if !opts.platforms.is_empty() && !opts.platforms.iter().any(|w| w.matches(&p)) {
                        return Err(PullError::PlatformMismatch {
                            reference: client.reference().to_string(),
                            registry: client.registry(),
                            wanted: join(&opts.platforms),
                            actual: p.to_string(),
                        });
                    }
                    platforms.push(p.to_string());
                }
            }
        }
    }
    let stats = f.counters.snapshot();
    // Layers come when the bundle writer reaches this image, maybe minutes later: the
    // connection is not kept open (and its buffers held) until then.
    client.close_idle();
    Ok(PendingPull {
        image: PulledImage {
            reference: reference.clone(),
            root,
            blobs,
            platforms,
            stats,
        },
        layers,
        client,
    })
}

/// The platform a single manifest's config declares, if it is an image config.
fn config_platform(f: &Fetcher, config: &Descriptor) -> Result<Option<Platform>, PullError> {
    if !oci::is_image_config(&config.media_type) || config.size > oci::MAX_MANIFEST_BYTES {
        return Ok(None);
    }
    let bytes = f
        .cache
        .read(&config.digest)
        .map_err(|source| PullError::Cache {
            reference: f.client.reference().to_string(),
            source,
        })?;
    Ok(Platform::from_config(&bytes))
}

/// A manifest's config and layers; an image manifest without a config is malformed.
fn image_parts(
    client: &Client,
    what: &str,
    m: Manifest,
) -> Result<(Descriptor, Vec<Descriptor>), PullError> {
    match m.config {
        Some(config) => Ok((config, m.layers)),
        None => Err(malformed(
            client,
            what,
            "an image manifest without a config".into(),
        )),
    }
}

fn parse(
    client: &Client,
    bytes: &[u8],
    content_type: Option<&str>,
    what: &str,
) -> Result<(String, Manifest), PullError> {
    oci::parse_manifest(bytes, content_type).map_err(|e| match e {
        OciError::Malformed(d) => malformed(client, what, d),
        other => unsupported(client, what, &other.to_string()),
    })
}

fn unsupported(client: &Client, what: &str, detail: &str) -> PullError {
    PullError::Unsupported {
        reference: client.reference().to_string(),
        registry: client.registry(),
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

fn malformed(client: &Client, what: &str, detail: String) -> PullError {
    PullError::Malformed {
        reference: client.reference().to_string(),
        registry: client.registry(),
        what: what.to_string(),
        detail,
    }
}

fn join(ps: &[Platform]) -> String {
    ps.iter()
        .map(Platform::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
