//! `FROM <bundle>`: a build layered on a base bundle, a `.run` file or a pushed bundle's
//! registry reference.
//!
//! The new bundle starts as a copy of the base's *content* — images, apps, files,
//! payloads, cluster, env, hooks, labels — and the Kubefile's instructions add to it or
//! replace parts of it: an image or app of the same name, a COPY to the same destination,
//! a `--payload` of the same name replaces the base's; `LABEL`/`ENV` keys override; `RUN`
//! hooks run after the base's. Everything taken from the base is marked `inherited` in
//! bundle.json, and bundle.json's `base` records which bundle it was (its payload sha256,
//! and for a registry base the index digest), so `ferry images`, the build report and
//! `--info` can say what came from where.
//!
//! Base bytes are read from the base file in place: an image's blobs and an entry's
//! stored bytes (a zstd entry stays compressed) are ranges of it, copied once into the new
//! bundle and checked against their digests on the way. A registry base is pulled once
//! into the content cache (`bundles/<artifact digest>.run`, resumable; blobs a build
//! already pulled come from the cache) and then read the same way: a rebuild downloads
//! nothing.

use super::BuildOptions;
use crate::image::{Blob, BlobSource, ResolvedImage};
use crate::kubefile::Origin;
use crate::pull::ContentCache;
use crate::push::fetch::{self, FetchOptions};
use anyhow::{bail, Context, Result};
use ferry_bundle::graph;
use ferry_bundle::manifest::{BaseRecord, EntryRecord};
use ferry_bundle::reference::Reference;
use ferry_bundle::{Bundle, BundleManifest, Sha256Digest};
use std::path::{Path, PathBuf};

/// The base a Kubefile names, opened.
pub struct Base {
    pub bundle: Bundle,
    pub record: BaseRecord,
}

/// Whether `FROM <spec>` names a file (a path, or a name ending in `.run`) rather than a
/// registry reference.
pub fn is_file(spec: &str, context: &Path) -> bool {
    spec.ends_with(".run")
        || spec.starts_with('/')
        || spec.starts_with("./")
        || spec.starts_with("../")
        || context.join(spec).is_file()
}

/// The bundle `spec` names as a local file: a path (relative to `dir`), or a registry
/// reference whose bundle is pulled into the content cache (once); with the digest the
/// reference resolved to.
pub fn locate(
    spec: &str,
    dir: &Path,
    opts: &BuildOptions,
) -> Result<(PathBuf, Option<Sha256Digest>)> {
    if is_file(spec, dir) {
        return Ok((dir.join(spec), None));
    }
    let r = Reference::parse(spec)
        .context("neither a bundle file (name it ./x.run) nor a registry reference")?;
    let (path, digest) = pull_into_cache(&r, opts)?;
    Ok((path, Some(digest)))
}

/// Opens (pulling it first, for a reference) the base `spec` written at `at`.
pub fn open(spec: &str, at: &Origin, opts: &BuildOptions) -> Result<Base> {
    let (path, registry_digest) =
        locate(spec, &opts.context, opts).with_context(|| format!("{at}: FROM {spec}"))?;
    let bundle = Bundle::open(&path).with_context(|| format!("{at}: FROM {spec}"))?;
    let m = &bundle.manifest;
    if !m.platform.is_empty() && m.platform != opts.platform.to_string() {
        bail!(
            "{at}: FROM {spec}: the base is for {}, this build for {}; build with --platform {}",
            m.platform,
            opts.platform,
            m.platform
        );
    }
    let record = BaseRecord {
        source: spec.to_string(),
        name: m.name.clone(),
        version: m.version.clone(),
        digest: bundle.footer.payload_sha256,
        registry_digest,
    };
    Ok(Base { bundle, record })
}

/// Pulls a pushed bundle into the content cache once; returns its path and the digest
/// the reference resolved to.
fn pull_into_cache(r: &Reference, opts: &BuildOptions) -> Result<(PathBuf, Sha256Digest)> {
    let cache = match &opts.cache_dir {
        Some(d) => ContentCache::open(d.clone())?,
        None => ContentCache::open_default()?,
    };
    let remote = fetch::resolve(r, &opts.pull)?;
    let dir = cache.root().join("bundles");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.run", remote.artifact_digest.hex()));
    let have = Bundle::open(&path)
        .map(|b| b.footer.payload_sha256 == remote.config.payload_sha256)
        .unwrap_or(false);
    if !have {
        tracing::info!("pulling the base bundle {r} into {}", path.display());
        let f = FetchOptions {
            registry: opts.pull.clone(),
            cache: Some(cache.clone()),
            quiet: opts.quiet,
        };
        fetch::pull_remote(&remote, &path, &f)?;
    }
    Ok((path, remote.digest))
}

/// Reads just bundle.json of a base (for `ferry images`: a registry base is not pulled).
pub fn manifest(
    spec: &str,
    context: &Path,
    opts: &crate::pull::PullOptions,
) -> Result<BundleManifest> {
    if is_file(spec, context) {
        Ok(Bundle::open(&context.join(spec))?.manifest)
    } else {
        Ok(fetch::resolve(&Reference::parse(spec)?, opts)?.manifest)
    }
}

impl Base {
    /// The base's images as the builder resolves images: every blob a range of the base
    /// file. Images named in `replaced` are left out (the Kubefile gives them anew).
    pub fn images(&self, replaced: &dyn Fn(&Reference) -> bool) -> Result<Vec<ResolvedImage>> {
        let b = &self.bundle;
        let blob = |d: &ferry_bundle::oci::Descriptor| -> Result<Blob> {
            let e = b.blob_entry(&d.digest).with_context(|| {
                format!("{}: blob {} is not carried", b.path.display(), d.digest)
            })?;
            Ok(self.blob(d, e))
        };
        let mut out = Vec::new();
        for img in b.manifest.images.iter().filter(|i| !replaced(&i.name)) {
            let g = graph::walk_image(b, img)
                .with_context(|| format!("{}: image {}", b.path.display(), img.name))?;
            let mut blobs = Vec::new();
            for d in g
                .documents
                .iter()
                .rev()
                .map(|d| &d.desc)
                .chain(g.blobs.iter())
            {
                blobs.push(blob(d)?);
            }
            out.push(ResolvedImage {
                name: img.name.clone(),
                source: img.source.clone(),
                root: blob(&g.root().desc)?,
                blobs,
                platforms: img.platforms.clone(),
            });
        }
        Ok(out)
    }

    fn blob(&self, d: &ferry_bundle::oci::Descriptor, e: &EntryRecord) -> Blob {
        Blob {
            digest: d.digest,
            size: e.size,
            media_type: d.media_type.clone(),
            source: self.entry_source(e),
        }
    }

    /// An entry's stored bytes, in place.
    pub fn entry_source(&self, e: &EntryRecord) -> BlobSource {
        BlobSource::File {
            path: self.bundle.path.clone(),
            offset: self.bundle.absolute_offset(e),
            len: e.size,
        }
    }

    /// The entry at `path`, which the base's bundle.json names.
    pub fn entry(&self, path: &str) -> Result<&EntryRecord> {
        self.bundle.entry(path).with_context(|| {
            format!(
                "{}: bundle.json names entry {path}, which the base does not carry",
                self.bundle.path.display()
            )
        })
    }

    /// Every entry under `dir/` (an app's manifest directory).
    pub fn entries_under(&self, dir: &str) -> Vec<&EntryRecord> {
        let prefix = format!("{dir}/");
        self.bundle
            .manifest
            .entries
            .iter()
            .filter(|e| e.path.starts_with(&prefix))
            .collect()
    }
}
