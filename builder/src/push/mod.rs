//! `ferry push` and `ferry pull`: a bundle in an OCI registry (Harbor, Distribution, Zot).
//!
//! A pushed bundle is one tag, `<host>/<repository>:<tag>`, naming an OCI index:
//!
//! - one entry per carried image: its manifest (or its index, when every platform the
//!   index lists is carried), annotated with the image's full name. The image's manifests,
//!   configs and layers are pushed into the same repository, so the registry lists the
//!   images, keeps them from garbage collection, and shares their layers with every other
//!   repository of that registry;
//! - one *artifact manifest* (`artifactType` [`artifact::ARTIFACT_TYPE`]) whose config says
//!   where the pieces go in the file and whose layers are the installer stub, bundle.json,
//!   the frame, and every entry that is not part of a pushed image (files, charts,
//!   payloads, the layout's `index.json`, and an index only some of whose platforms are
//!   carried).
//!
//! `pull` ([`fetch`]) writes every piece back at its offset and gets the identical file.
//! The layout is defined in `ferry_bundle::artifact` and docs/format.md ("In a registry").
//! Nothing here depends on what the entries are, so whatever the bundle carries travels.
//!
//! Every blob goes to the registry at most once (see `crate::pull::upload` and [`known`]):
//! a second push of the same bundle sends no blob, and a bundle built `FROM` a pushed base
//! mounts the base's blobs instead of uploading them.

pub mod fetch;
pub mod known;

use crate::pull::client::{Access, Client};
use crate::pull::upload::{OpenAt, Outcome, UploadOptions, UploadStats, Uploader};
use crate::pull::{ContentCache, PullOptions};
use anyhow::{bail, Context, Result};
use ferry_bundle::artifact::{self, ArtifactConfig, FrameReader, Span};
use ferry_bundle::graph;
use ferry_bundle::oci::{self, Descriptor, LayoutIndex, Manifest};
use ferry_bundle::reference::Reference;
use ferry_bundle::subfile::SubFile;
use ferry_bundle::{Bundle, Sha256Digest};
use known::KnownBlobs;
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Credentials, insecure registries, retries and timeouts, as for pulls (mirrors are
    /// ignored: a push goes where it is told).
    pub registry: PullOptions,
    pub upload: UploadOptions,
    /// The content cache whose `pushed/` record names mount sources (default
    /// `~/.cache/ferry`).
    pub cache_dir: Option<PathBuf>,
    /// Blob uploads in flight at once.
    pub parallel: usize,
    pub quiet: bool,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            registry: PullOptions::default(),
            upload: UploadOptions::default(),
            cache_dir: None,
            parallel: 4,
            quiet: true,
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PushReport {
    /// `host/repository:tag` pushed to.
    pub reference: String,
    /// Digest of the index the tag names (`ferry pull <repository>@<digest>`).
    pub digest: Sha256Digest,
    /// Digest of the artifact manifest.
    pub artifact: Sha256Digest,
    pub bundle: String,
    /// The bundle's identity (payload sha256).
    pub payload_sha256: Sha256Digest,
    /// Size of the bundle file.
    pub size: u64,
    pub images: usize,
    /// Distinct blobs the push needed (image blobs and artifact layers).
    pub blobs: usize,
    pub uploads: UploadStats,
    pub seconds: f64,
}

/// Where one blob's bytes are.
#[derive(Debug, Clone)]
enum Source {
    /// A range of the bundle file.
    Range {
        offset: u64,
        len: u64,
    },
    Frame,
    Bytes(Vec<u8>),
}

/// One blob to put into the repository.
struct BlobJob {
    desc: Descriptor,
    source: Source,
    mount_from: Vec<String>,
}

/// Everything a push sends, in order.
struct PushPlan {
    blobs: Vec<BlobJob>,
    /// Image manifests and indexes, each after what it references.
    manifests: Vec<Descriptor>,
    artifact: Vec<u8>,
    index: Vec<u8>,
    images: usize,
}

/// Pushes the bundle at `path` to `target` (`host[:port]/repository:tag`).
pub fn push(path: &Path, target: &Reference, opts: &PushOptions) -> Result<PushReport> {
    let started = std::time::Instant::now();
    if target.digest.is_some() {
        bail!("{target}: push to a tag (host/repository:tag), not a digest; the digest is the result of the push");
    }
    let b = Bundle::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reg = opts.registry.clone();
    reg.mirrors.clear();
    let client = Client::with_access(target, &reg, Access::Push)?;
    let cache_root = match &opts.cache_dir {
        Some(d) => d.clone(),
        None => ContentCache::default_dir().unwrap_or_else(|| PathBuf::from(".ferry-cache")),
    };
    let mut known = KnownBlobs::load(&cache_root, &target.host);
    let plan = plan(&b, target, &known).with_context(|| format!("{}", path.display()))?;
    let up = Uploader::new(&client, opts.upload);
    let total: u64 = plan.blobs.iter().map(|j| j.desc.size).sum();
    let bar = ferry_console::bytes_bar(total, "pushing", opts.quiet);
    let spans = artifact::spans(&ArtifactConfig::of(&b), &b.manifest.entries)?;
    upload_blobs(&up, &b, &spans, &plan.blobs, opts.parallel, &|n| bar.inc(n))?;
    bar.finish_and_clear();
    for d in &plan.manifests {
        let bytes = graph::read_document(&b, d)?;
        up.manifest(&d.digest.to_string(), &d.media_type, &bytes)?;
    }
    let artifact = Sha256Digest::of(&plan.artifact);
    up.manifest(&artifact.to_string(), oci::OCI_MANIFEST, &plan.artifact)?;
    let tag = target.tag.as_deref().unwrap_or("latest");
    let digest = up.manifest(tag, oci::OCI_INDEX, &plan.index)?;
    let pushed = plan
        .blobs
        .iter()
        .map(|j| j.desc.digest)
        .chain(plan.manifests.iter().map(|d| d.digest));
    if let Err(e) = known.record(&target.repository, pushed) {
        tracing::warn!(
            "could not record the pushed blobs in {}: {e}",
            cache_root.display()
        );
    }
    let uploads = up.stats();
    tracing::info!(
        "pushed {} to {target}: {} blob(s) uploaded ({} bytes), {} already there, {} mounted",
        b.manifest.name,
        uploads.blobs_uploaded,
        uploads.bytes_uploaded,
        uploads.blobs_present,
        uploads.blobs_mounted
    );
    Ok(PushReport {
        reference: target.to_string(),
        digest,
        artifact,
        bundle: b.manifest.name.clone(),
        payload_sha256: b.footer.payload_sha256,
        size: b.file_len,
        images: plan.images,
        blobs: plan.blobs.len(),
        uploads,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Works out what to send: see the module doc.
fn plan(b: &Bundle, target: &Reference, known: &KnownBlobs) -> Result<PushPlan> {
    let same_registry = |s: &str| {
        Reference::parse(s)
            .ok()
            .filter(|r| r.host == target.host && r.repository != target.repository)
            .map(|r| r.repository)
    };
    let base_repo = b
        .manifest
        .base
        .as_ref()
        .and_then(|base| same_registry(&base.source));
    let mut manifests: Vec<Descriptor> = Vec::new();
    let mut pushed_docs: HashSet<Sha256Digest> = HashSet::new();
    let mut covered: HashSet<Sha256Digest> = HashSet::new();
    // Image blobs with where else they may be found on this registry.
    let mut image_blobs: BTreeMap<Sha256Digest, (Descriptor, Vec<String>)> = BTreeMap::new();
    let mut index = LayoutIndex::new();
    for img in &b.manifest.images {
        let g = match graph::walk_image(b, img) {
            Ok(g) => g,
            // Not all of it is in this file (a delta bundle's base holds the rest): its
            // entries travel as artifact layers like any other, and the file is still
            // re-created exactly; the registry just does not list the image.
            Err(e) => {
                tracing::warn!(
                    "image {} is not listed in the registry's index: {e}",
                    img.name
                );
                continue;
            }
        };
        let from_image = same_registry(&img.source);
        for d in g.documents.iter().filter(|d| d.complete) {
            covered.insert(d.desc.digest);
            if oci::is_image_manifest(&d.desc.media_type) {
                covered.extend(d.refs.iter().map(|r| r.digest));
            }
            if pushed_docs.insert(d.desc.digest) {
                manifests.push(d.desc.clone());
            }
        }
        for blob in &g.blobs {
            let entry = image_blobs
                .entry(blob.digest)
                .or_insert_with(|| (blob.clone(), Vec::new()));
            entry.1.extend(from_image.clone());
        }
        let root = g.root();
        if root.complete {
            index.add_image(&img.name, root.desc.clone());
        } else {
            // An index with only some platforms carried: the carried ones stand for it
            // (the index itself travels as an artifact layer).
            for c in &root.refs {
                if g.documents
                    .iter()
                    .any(|d| d.desc.digest == c.digest && d.complete)
                {
                    index.add_image(&img.name, c.clone());
                }
            }
        }
    }
    let mount = |d: &Sha256Digest, extra: &[String]| -> Vec<String> {
        let mut v: Vec<String> = known
            .repository(d)
            .map(str::to_string)
            .into_iter()
            .collect();
        v.extend(base_repo.clone());
        v.extend(extra.iter().cloned());
        v.retain(|r| r != &target.repository);
        let mut seen = HashSet::new();
        v.retain(|r| seen.insert(r.clone()));
        v
    };
    let range = |e: &ferry_bundle::EntryRecord| Source::Range {
        offset: b.absolute_offset(e),
        len: e.size,
    };
    let mut jobs: Vec<BlobJob> = Vec::new();
    let mut queued: HashSet<Sha256Digest> = HashSet::new();
    for (d, (desc, from)) in &image_blobs {
        if let Some(e) = b.blob_entry(d) {
            queued.insert(*d);
            jobs.push(BlobJob {
                desc: desc.clone(),
                source: range(e),
                mount_from: mount(d, from),
            });
        }
    }
    // The artifact: config, stub, bundle.json, frame, and every entry no image covers.
    let config = ArtifactConfig::of(b).to_json();
    let config_desc = Descriptor::new(
        artifact::CONFIG_MEDIA_TYPE,
        Sha256Digest::of(&config),
        config.len() as u64,
    );
    let spans = artifact::spans(&ArtifactConfig::of(b), &b.manifest.entries)?;
    let frame_len = artifact::frame_len(&spans);
    let (frame_digest, n) = ferry_bundle::digest::hash_reader(FrameReader::new(b, &spans))
        .with_context(|| format!("reading {}", b.path.display()))?;
    if n != frame_len {
        bail!("{}: the file changed while it was read", b.path.display());
    }
    let titled = |mt: &str, digest: Sha256Digest, size: u64, title: &str| {
        let mut d = Descriptor::new(mt, digest, size);
        d.annotations
            .insert(artifact::ANNOTATION_TITLE.to_string(), title.to_string());
        d
    };
    let f = &b.footer;
    let mut layers = vec![
        titled(
            artifact::INSTALLER_MEDIA_TYPE,
            b.manifest.installer.sha256,
            b.manifest.installer.size,
            artifact::TITLE_INSTALLER,
        ),
        titled(
            artifact::MANIFEST_MEDIA_TYPE,
            f.manifest_sha256,
            f.manifest_len,
            artifact::TITLE_MANIFEST,
        ),
        titled(
            artifact::FRAME_MEDIA_TYPE,
            frame_digest,
            frame_len,
            artifact::TITLE_FRAME,
        ),
    ];
    let mut push_job = |desc: &Descriptor, source: Source| {
        if queued.insert(desc.digest) {
            jobs.push(BlobJob {
                mount_from: mount(&desc.digest, &[]),
                desc: desc.clone(),
                source,
            });
        }
    };
    push_job(&config_desc, Source::Bytes(config));
    push_job(
        &layers[0],
        Source::Range {
            offset: 0,
            len: b.manifest.installer.size,
        },
    );
    push_job(
        &layers[1],
        Source::Range {
            offset: f.payload_offset + f.manifest_offset,
            len: f.manifest_len,
        },
    );
    push_job(&layers[2], Source::Frame);
    for e in &b.manifest.entries {
        if e.size == 0 || covered.contains(&e.sha256) {
            continue;
        }
        let layer = titled(artifact::ENTRY_MEDIA_TYPE, e.sha256, e.size, &e.path);
        push_job(&layer, range(e));
        layers.push(layer);
    }
    let mut art = Manifest::image(config_desc, layers);
    art.artifact_type = Some(artifact::ARTIFACT_TYPE.to_string());
    art.annotations = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            b.manifest.name.clone(),
        ),
        (
            "org.opencontainers.image.version".to_string(),
            b.manifest.version.clone(),
        ),
    ]);
    art.annotations.retain(|_, v| !v.is_empty());
    let art_bytes = art.to_json();
    let mut art_desc = Descriptor::new(
        oci::OCI_MANIFEST,
        Sha256Digest::of(&art_bytes),
        art_bytes.len() as u64,
    );
    art_desc.artifact_type = Some(artifact::ARTIFACT_TYPE.to_string());
    index.manifests.insert(0, art_desc);
    Ok(PushPlan {
        blobs: jobs,
        manifests,
        artifact: art_bytes,
        index: serde_json::to_vec(&index).expect("an index serialises"),
        images: b.manifest.images.len(),
    })
}

/// Uploads every blob, `parallel` at a time; the first failure stops new uploads.
fn upload_blobs(
    up: &Uploader,
    b: &Bundle,
    spans: &[Span],
    jobs: &[BlobJob],
    parallel: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_err: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..parallel.clamp(1, jobs.len().max(1)) {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(j) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let open: &OpenAt = &|at| open_at(b, spans, &j.source, at);
                    match up.blob(&j.desc, &j.mount_from, open) {
                        Ok(o) => {
                            if let Outcome::Mounted(from) = o {
                                tracing::debug!("blob {} mounted from {from}", j.desc.digest);
                            }
                            progress(j.desc.size);
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            first_err.lock().expect("error slot").get_or_insert(
                                anyhow::Error::new(e)
                                    .context(format!("pushing {}", b.path.display())),
                            );
                        }
                    }
                }
            });
        }
    });
    match first_err.into_inner().expect("error slot") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A blob's bytes from offset `at` to its end.
fn open_at<'a>(
    b: &'a Bundle,
    spans: &[Span],
    source: &'a Source,
    at: u64,
) -> std::io::Result<Box<dyn Read + 'a>> {
    Ok(match source {
        Source::Range { offset, len } => {
            let mut f = SubFile::new(b.file.clone(), *offset, *len);
            f.seek(SeekFrom::Start(at))?;
            Box::new(f)
        }
        Source::Frame => {
            let mut r = FrameReader::new(b, spans);
            std::io::copy(&mut (&mut r).take(at), &mut std::io::sink())?;
            Box::new(r)
        }
        Source::Bytes(v) => Box::new(std::io::Cursor::new(&v[(at as usize).min(v.len())..])),
    })
}
