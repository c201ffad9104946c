//! `ferry build`: Kubefile in, `delivery.run` out.
//!
//! Two stages. *Plan* reads the Kubefile and resolves everything to local bytes (the
//! runtime or cluster payload from `--payload` or its project's release, see
//! [`crate::release`]; image blobs as byte ranges of layouts, tarballs or the content
//! cache; files from the context) without writing the bundle, and records what it
//! resolved in a [`Lock`] (`ferry.lock`, checked first with `--locked`). A registry image
//! is resolved in plan to its manifests and configs, which name all its blobs; its layers
//! download during write, in the writer's order ([`downloads`]). *Write* then streams each
//! unique blob and file once into the bundle writer, which verifies digests as the bytes
//! pass, except for blobs from the content cache, verified when they were stored (the
//! cache vouches for them: [`crate::image::BlobSource::check`]). Failing in plan costs
//! nothing; failing in write leaves no partial output; `ferry.lock` is written only after
//! the bundle.
//!
//! The same Kubefile, lock and inputs give the same bytes: everything the bundle holds is
//! ordered (images by name, files by path), tar headers and the chart archive are written
//! deterministically, zstd runs with fixed parameters, and nothing records a time, an
//! owner, a temporary path or the cache's location (`tests/e2e/releases.rs` builds twice
//! from different directories and caches and compares the sha256).

pub mod apps;
pub mod base;
mod downloads;
pub(crate) mod files;
pub mod output;
pub mod payload;
pub mod stub;

use crate::discover::select::{Entry, Summary};
use crate::discover::{CandidateMode, Status};
use crate::image::{resolve_local, Blob, BlobSource, ImageSource, ResolvedImage};
use crate::kubefile::{ImageSpec, ImageVia, Recipe};
use crate::lock::{hash_path, Lock, LockedAsset, LockedFile, LockedImage};
use crate::pull::{
    resolve, ContentCache, PendingPull, Platform, PullError, PullOptions, PullStats,
};
use crate::release::{self, DownloadOptions, Downloader};
use anyhow::{bail, Context, Result};
use downloads::Downloads;
use ferry_bundle::manifest::{
    AppRecord, BaseRecord, ClusterRecord, FileRecord, HookRecord, ImageRecord,
};
use ferry_bundle::oci::{Descriptor, LayoutIndex, LAYOUT_FILE};
use ferry_bundle::paths::{self, OCI_INDEX_PATH, OCI_LAYOUT_PATH};
use ferry_bundle::reference::Reference;
use ferry_bundle::roles;
use ferry_bundle::writer::BundleWriter;
use ferry_bundle::{BundleManifest, Footer};
use payload::PayloadSource;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub kubefile: PathBuf,
    pub context: PathBuf,
    pub output: PathBuf,
    pub installer: Option<PathBuf>,
    /// The platform of the target hosts (bundle.json's `platform`).
    pub platform: Platform,
    pub quiet: bool,
    /// Registry pulls: platforms, mirrors, insecure registries, credentials.
    pub pull: PullOptions,
    /// Content cache for pulled blobs (default `~/.cache/ferry`).
    pub cache_dir: Option<PathBuf>,
    /// `--payload name=path` sources.
    pub payloads: Vec<PayloadSource>,
    /// Build without any runtime payload (`--no-payload`).
    pub no_payload: bool,
    /// Write a delta of this earlier bundle (`--delta-from`).
    pub delta_from: Option<PathBuf>,
    /// Release downloads (`--release-mirror`, retries) for payloads without `--payload`.
    pub downloads: DownloadOptions,
    /// `--locked`: refuse to build when anything resolves differently from `ferry.lock`.
    pub locked: bool,
    /// What to do with discovery's candidates (see [`crate::discover::select`]).
    pub candidates: CandidateMode,
    /// Fail when a discovered image that exists is not carried.
    pub strict: bool,
    /// Where `PACKAGE deb` packages come from (`--apt-mirror`).
    pub apt: crate::packages::AptOptions,
    /// Sign bundle.json with this private key (`--sign`).
    pub sign: Option<PathBuf>,
    /// Cut the bundle into parts of at most this many bytes (`--split`).
    pub split: Option<u64>,
    /// Also write the SBOM to this file (`--sbom`).
    pub sbom: Option<PathBuf>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildReport {
    pub output: PathBuf,
    pub size: u64,
    pub images: usize,
    pub blobs_written: usize,
    pub blobs_shared: usize,
    /// sha256 of the payload, bare hex.
    pub payload_sha256: String,
    /// Registry blobs downloaded by this build / found in the content cache.
    pub pulled: PullStats,
    /// sha256 of the whole bundle file, as `sha256sum` prints it.
    pub file_sha256: String,
    /// `<bundle>.sha256`, for `sha256sum -c` at the site.
    pub checksum_file: PathBuf,
    /// The files written: the bundle, or its parts in order (`--split`).
    pub parts: Vec<PathBuf>,
    /// Fingerprint of the key that signed bundle.json (`--sign`).
    pub signed_by: Option<String>,
    /// Time spent making the SBOM (reading every layer's package database).
    pub sbom_seconds: f64,
    /// A delta's base, and the bytes taken from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaReport>,
    /// The `ferry.lock` written (or, with `--locked`, checked).
    pub lock: PathBuf,
    /// What discovery found in the apps and what became of each: certain, verified
    /// candidate, dropped (with the reason); the hooks each was found in.
    pub discovered: Vec<Entry>,
    pub discovery: Summary,
    /// The bundle this one was built `FROM`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRecord>,
    /// What was taken from the base unchanged.
    pub inherited: Inherited,
    /// Every bundle written, one per `--platform` (the fields above describe the first).
    pub outputs: Vec<OutputReport>,
}

/// One bundle a build wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputReport {
    /// `os/arch` of the hosts it installs on (its stub's and bundle.json's).
    pub platform: String,
    pub path: PathBuf,
    pub size: u64,
    /// sha256 of the bundle file, as `sha256sum` prints it.
    pub sha256: String,
    /// `<bundle>.sha256`.
    pub checksum_file: PathBuf,
    /// The files written: the bundle, or its parts in order (`--split`).
    pub parts: Vec<PathBuf>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeltaReport {
    /// `<name> <version> (sha256:…)` of the base.
    pub base: String,
    pub inherited_bytes: u64,
}

/// Counts of what a layered build took from its base.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Inherited {
    pub images: usize,
    pub apps: usize,
    pub files: usize,
    pub payloads: usize,
    pub hooks: usize,
    pub packages: usize,
}

pub fn build(opts: &BuildOptions) -> Result<BuildReport> {
    // A key that cannot sign is found before anything is pulled or written.
    let key = opts
        .sign
        .as_deref()
        .map(crate::sign::SigningKey::load)
        .transpose()?;
    let recipe = Recipe::read(&opts.kubefile, &opts.context)?;
    let platforms = if opts.pull.platforms.is_empty() {
        vec![opts.platform.clone()]
    } else {
        opts.pull.platforms.clone()
    };
    let several = platforms.len() > 1;
    let listed = || {
        platforms
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    if several {
        if let Some(old) = &opts.delta_from {
            bail!(
                "--delta-from {}: a delta upgrades one bundle, and --platform {} writes one bundle per platform; build each platform's delta with its own --platform and --delta-from",
                old.display(),
                listed()
            );
        }
        if !recipe.packages.is_empty() {
            bail!(
                "{}: PACKAGE with --platform {}: OS packages are resolved for one architecture; build each platform with its own --platform",
                opts.kubefile.display(),
                listed()
            );
        }
    }
    let outputs = output::bundle_paths(&opts.output, &platforms)?;
    // Each bundle's stub, found before anything is pulled or written.
    let stubs = platforms
        .iter()
        .map(|p| match several {
            true => stub::locate_among(opts.installer.as_deref(), p),
            false => stub::locate(opts.installer.as_deref(), p),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // `--delta-from`: a bundle file, or a pushed bundle pulled into the cache (once).
    let delta_base = match &opts.delta_from {
        Some(spec) => Some(
            base::locate(&spec.to_string_lossy(), Path::new("."), opts)
                .with_context(|| format!("--delta-from {}", spec.display()))?
                .0,
        ),
        None => None,
    };
    let base = match &recipe.base {
        Some((spec, at)) => Some(base::open(spec, at, opts)?),
        None => None,
    };
    if let Some(c) = &recipe.cluster {
        if c.distribution != roles::PAYLOAD_K3S {
            bail!(
                "{}: CLUSTER {} {}: ferry installs k3s clusters only; write CLUSTER k3s <version>, or leave CLUSTER out for a containerd-only bundle",
                c.origin,
                c.distribution,
                c.version
            );
        }
    }
    let bm = base.as_ref().map(|b| &b.bundle.manifest);
    let mut labels = bm.map(|m| m.labels.clone()).unwrap_or_default();
    labels.extend(recipe.labels.clone());
    let mut env = bm.map(|m| m.env.clone()).unwrap_or_default();
    env.extend(recipe.env.clone());
    let hooks = bm
        .into_iter()
        .flat_map(|m| &m.hooks)
        .map(|h| HookRecord {
            command: h.command.clone(),
            inherited: true,
        })
        .chain(recipe.hooks.iter().map(|h| HookRecord {
            command: h.command.clone(),
            inherited: false,
        }))
        .collect();
    let mut manifest = BundleManifest {
        builder: format!("ferry {}", env!("CARGO_PKG_VERSION")),
        platform: opts.platform.to_string(),
        labels,
        env,
        hooks,
        cluster: match &recipe.cluster {
            Some(c) => Some(ClusterRecord {
                distribution: c.distribution.clone(),
                version: c.version.clone(),
            }),
            None => bm.and_then(|m| m.cluster.clone()),
        },
        base: base.as_ref().map(|b| b.record.clone()),
        ..Default::default()
    };
    // Whether the base already carries image `r` (an app's or the cluster's image is then
    // not pulled again).
    let in_base = |r: &Reference| bm.is_some_and(|m| m.images.iter().any(|i| i.name == *r));
    let mut copies = Vec::new();
    for c in &recipe.copies {
        let planned =
            files::plan_copy(&c.src, c.dest.as_str()).with_context(|| c.origin.to_string())?;
        copies.extend(planned);
    }
    manifest.name = manifest.labels.get("name").cloned().unwrap_or_else(|| {
        opts.output
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bundle".into())
    });
    manifest.version = manifest.labels.get("version").cloned().unwrap_or_default();

    let mut specs = recipe.images.clone();
    let mut planned_apps = Vec::new();
    for a in &recipe.apps {
        let p = apps::discover(a).with_context(|| a.origin.to_string())?;
        for w in &p.discovery.warnings {
            tracing::warn!("APP {}: {w}", a.name);
        }
        planned_apps.push(p);
    }
    // Temporary files go to one scratch directory, removed at the end — and, with the
    // partial bundle, on Ctrl-C.
    let scratch = output::Scratch::create(&opts.output)?;
    let mut remove: Vec<PathBuf> = outputs
        .iter()
        .map(|o| ferry_bundle::writer::partial_path(o))
        .collect();
    remove.push(scratch.path().to_path_buf());
    output::clean_up_on_interrupt(&remove);
    // A layered build keeps the base's runtime or cluster payload unless the Kubefile
    // or --payload asks for one anew.
    let inherit_payload = base.is_some()
        && opts.payloads.is_empty()
        && recipe.cluster.is_none()
        && recipe.runtime.is_none();
    let payloads = if inherit_payload {
        Vec::new()
    } else {
        plan_payloads(opts, &recipe, &platforms, scratch.path())?
    };
    // k3s's own images, of every platform's release (the same names: pulled once).
    if let Some(c) = &recipe.cluster {
        for p in &payloads {
            for r in p.images.iter().filter(|r| !in_base(r)) {
                specs.push(ImageSpec {
                    written: r.to_string(),
                    source: ImageSource::Registry(r.clone()),
                    name: None,
                    via: ImageVia::Cluster(p.name.clone()),
                    origin: c.origin.clone(),
                });
            }
        }
    }
    let mut selection = apps::select(
        &recipe,
        &planned_apps,
        opts.candidates,
        opts.strict,
        &opts.pull,
    )?;
    apps::check_valid(&selection)?;
    for p in &mut planned_apps {
        p.carried = selection.carried_by(&p.spec.name);
    }
    // Candidates are carried on their registry's word; a pull that fails after all is
    // reported (and refused by --strict), not fatal as a certain image's is.
    let mut optional = BTreeSet::new();
    for e in selection
        .carried()
        .filter(|e| e.status != Status::Provided && !in_base(&e.reference))
    {
        let app = &e.origins[0].app;
        let Some(spec) = recipe.apps.iter().find(|a| &a.name == app) else {
            continue;
        };
        if e.origins.iter().all(|o| o.candidate) {
            optional.insert(e.image.clone());
        }
        specs.push(ImageSpec {
            written: e.image.clone(),
            source: ImageSource::Registry(e.reference.clone()),
            name: None,
            via: ImageVia::App(app.clone()),
            origin: spec.origin.clone(),
        });
    }
    let (new_images, mut pulled, failed, pending) = resolve_images(opts, &specs, &optional)?;
    // The base's images first (unless the Kubefile names them anew), then the new ones.
    let mut images = match &base {
        Some(b) => b.images(&|n| new_images.iter().any(|i| i.name == *n))?,
        None => Vec::new(),
    };
    let inherited_images: std::collections::HashSet<String> =
        images.iter().map(|i| i.name.to_string()).collect();
    images.extend(new_images);
    for (image, reason) in failed {
        selection.failed(&image, reason);
    }
    let missing = selection.not_carried();
    if !missing.is_empty() {
        let list: Vec<String> = missing
            .iter()
            .map(|e| format!("  {} ({})", e.image, e.label()))
            .collect();
        if opts.strict {
            bail!(
                "--strict: {} discovered image(s) exist but are not carried:\n{}",
                missing.len(),
                list.join("\n")
            );
        }
        tracing::warn!(
            "{} discovered image(s) exist but are not carried (--strict refuses this):\n{}",
            missing.len(),
            list.join("\n")
        );
    }
    // `_airgap_tmp` keeps a decompressed airgap tarball alive until the bundle is written.
    // An airgap tarball holds one architecture's images: with several platforms they are
    // not imported (the downloaded k3s pulls its images for every platform instead).
    let airgap_from = match payloads.as_slice() {
        [one] => Some(one),
        several_payloads => {
            if let Some(p) = several_payloads
                .iter()
                .find(|p| p.local.is_some() && p.name == roles::PAYLOAD_K3S)
            {
                tracing::warn!(
                    "--payload k3s@{}={} with --platform {}: an airgap tarball holds one architecture's images, so none is imported; name k3s's images in IMAGE lines, or build without --payload to pull them for every platform",
                    p.platform,
                    p.local.as_ref().map(|l| l.display().to_string()).unwrap_or_default(),
                    listed()
                );
            }
            None
        }
    };
    let (k3s, _airgap_tmp) = k3s_images(&manifest, airgap_from, &images, scratch.path())?;
    images.extend(k3s);
    images.sort_by_key(|a| a.name.to_string());

    let payload_files: Vec<PayloadFiles> = payloads
        .iter()
        .map(|p| PayloadFiles {
            name: p.name.clone(),
            version: p.version.clone(),
            platform: p.platform.clone(),
            files: p.files.clone(),
        })
        .collect();
    let packages = crate::packages::for_build(
        &recipe,
        &opts.platform.to_string(),
        &opts.apt,
        opts.cache_dir.as_deref(),
        opts.quiet,
    )?;
    if base.is_none()
        && images.is_empty()
        && copies.is_empty()
        && planned_apps.is_empty()
        && payload_files.is_empty()
        && manifest.hooks.is_empty()
        && manifest.cluster.is_none()
        && packages.is_none()
    {
        bail!(
            "{}: nothing to deliver: no IMAGE, APP, COPY, RUN, CLUSTER or PACKAGE, and no runtime payload",
            opts.kubefile.display()
        );
    }
    let lock_path = Lock::path_for(&opts.kubefile);
    let mut lock = lock_of(&recipe, &images, &copies, &planned_apps, &payloads)?;
    let previous = Lock::read(&lock_path)?;
    lock.resolved_at = Some(resolved_at(previous.as_ref(), &lock));
    if opts.locked {
        let Some(locked) = &previous else {
            bail!(
                "--locked: there is no {} to hold the build to; run `ferry build` once without --locked to write it",
                lock_path.display()
            );
        };
        let diff = locked.differences(&lock);
        if !diff.is_empty() {
            bail!(
                "--locked: this build resolves differently from {}:\n  - {}\nnothing was written; build without --locked to accept the changes and rewrite the lock",
                lock_path.display(),
                diff.join("\n  - ")
            );
        }
    }
    let planned = Planned {
        images: &images,
        copies: &copies,
        payloads: &payload_files,
        apps: &planned_apps,
        packages: packages.as_ref(),
        inherited_images: &inherited_images,
        base: base.as_ref(),
    };
    // One bundle per platform from this one resolution: the same images (pulled once,
    // streamed from the cache into each), its own stub and every platform's payload.
    // Registry layers download meanwhile, in the order the first bundle takes them.
    let downloads = Downloads::new(
        &pending,
        images.iter().flat_map(|i| i.blobs.iter().map(|b| b.digest)),
    );
    let mut written = Vec::new();
    std::thread::scope(|s| -> Result<()> {
        let _stop = downloads::StopOnDrop(&downloads);
        if !downloads.is_empty() {
            for _ in 0..opts.pull.parallel_downloads.max(1) {
                std::thread::Builder::new()
                    .name("layer-download".into())
                    .spawn_scoped(s, || downloads.work())
                    .context("starting a download thread")?;
            }
        }
        for ((platform, out), stub) in platforms.iter().zip(&outputs).zip(&stubs) {
            let mut r = write(
                opts,
                manifest.clone(),
                &planned,
                Writing {
                    tmp_dir: scratch.path(),
                    key: key.as_ref(),
                    created: lock.resolved_at.unwrap_or_default(),
                    platform,
                    stub,
                    output: out,
                    several,
                    delta_from: delta_base.as_deref(),
                    downloads: &downloads,
                },
            )?;
            let (sha, file) = output::write_checksum(out, &r.parts)?;
            r.file_sha256 = sha.to_string();
            r.checksum_file = file;
            r.outputs = vec![OutputReport {
                platform: platform.to_string(),
                path: out.clone(),
                size: r.size,
                sha256: r.file_sha256.clone(),
                checksum_file: r.checksum_file.clone(),
                parts: r.parts.clone(),
            }];
            written.push(r);
        }
        Ok(())
    })?;
    pulled.add(&downloads.stats());
    let outputs: Vec<OutputReport> = written.iter().flat_map(|r| r.outputs.clone()).collect();
    let mut report = written.swap_remove(0);
    report.outputs = outputs;
    report.pulled = pulled;
    report.discovery = selection.summary();
    report.discovered = selection.entries;
    report.lock = lock_path.clone();
    if !opts.locked {
        if let Some(prev) = previous {
            for d in prev.differences(&lock) {
                tracing::info!("ferry.lock: {d}");
            }
        }
        lock.write(&lock_path)?;
    }
    Ok(report)
}

/// `CLUSTER k3s` with `--payload k3s=<dir>`: the images of k3s's airgap tarball, imported
/// into the bundle's OCI layout so that ferry's registry serves them like any other (no
/// second tarball on the host). A `.tar.zst` is decompressed to a temporary file first
/// (the docker-archive reader needs to seek). A downloaded k3s has no tarball: its images
/// were pulled from `k3s-images.txt` with the others.
type AirgapImages = (Vec<ResolvedImage>, Option<tempfile::NamedTempFile>);

fn k3s_images(
    manifest: &BundleManifest,
    payload: Option<&PlannedPayload>,
    have: &[ResolvedImage],
    scratch_dir: &Path,
) -> Result<AirgapImages> {
    if manifest.cluster.as_ref().map(|c| c.distribution.as_str()) != Some(roles::PAYLOAD_K3S) {
        return Ok((vec![], None));
    }
    let Some(dir) = payload.and_then(|p| p.local.as_ref()) else {
        return Ok((vec![], None));
    };
    let Some(tarball) = payload::k3s_airgap_tarball(dir) else {
        tracing::warn!("payload k3s: no k3s-airgap-images-<arch>.tar[.zst] in {}; k3s's own images are not carried", dir.display());
        return Ok((vec![], None));
    };
    let mut tmp = None;
    let tar_path = if tarball.extension().is_some_and(|e| e == "zst") {
        let t = tempfile::NamedTempFile::new_in(scratch_dir)?;
        let mut dec = zstd::stream::read::Decoder::new(std::fs::File::open(&tarball)?)?;
        std::io::copy(&mut dec, &mut t.reopen()?)
            .with_context(|| format!("decompressing {}", tarball.display()))?;
        let p = t.path().to_path_buf();
        tmp = Some(t);
        p
    } else {
        tarball.clone()
    };
    // The file name only: a path would make the bundle depend on where the payload sat.
    let name = tarball.file_name().unwrap_or_default().to_string_lossy();
    let imgs = crate::image::resolve_all(&format!("k3s-airgap:{name}"), &tar_path)?;
    Ok((
        imgs.into_iter()
            .filter(|i| !have.iter().any(|h| h.name == i.name))
            .collect(),
        tmp,
    ))
}

/// The runtime or cluster payload a bundle carries, from `--payload` or a release.
struct PlannedPayload {
    name: String,
    /// The hosts its files run on.
    platform: Platform,
    version: String,
    files: Vec<payload::PayloadFile>,
    /// Release files downloaded for it (for `ferry.lock`).
    assets: Vec<LockedAsset>,
    /// Images the payload itself runs, pulled like `IMAGE` lines (k3s's own).
    images: Vec<Reference>,
    /// The `--payload` directory or archive it came from, if local.
    local: Option<PathBuf>,
    /// Keeps unpacked archive members until the bundle is written.
    _scratch: Option<tempfile::TempDir>,
}

/// The payload of each platform, in `platforms`' order (none with `--no-payload`).
/// `--payload` sources are matched to platforms by [`payload::for_platform`].
fn plan_payloads(
    opts: &BuildOptions,
    recipe: &Recipe,
    platforms: &[Platform],
    scratch_dir: &Path,
) -> Result<Vec<PlannedPayload>> {
    if opts.no_payload {
        return Ok(Vec::new());
    }
    let sources = payload::for_platform(&opts.payloads, platforms)?;
    let mut out = Vec::new();
    for (platform, source) in platforms.iter().zip(sources) {
        // Each platform unpacks and downloads into its own directory.
        let scratch = match platforms.len() {
            1 => scratch_dir.to_path_buf(),
            _ => scratch_dir.join(platform.to_string().replace('/', "-")),
        };
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        out.extend(plan_payload(opts, recipe, platform, source, &scratch)?);
    }
    Ok(out)
}

/// Which payload the bundle needs for hosts of `platform` and where its files are.
/// Runtime-only bundles need `containerd` (`RUNTIME`'s versions, or the defaults);
/// `CLUSTER <distro>` needs the payload of that name. `--payload` (`source`) supplies it
/// from local files; otherwise it is downloaded from its projects' releases
/// ([`crate::release`]); `--no-payload` carries none.
fn plan_payload(
    opts: &BuildOptions,
    recipe: &Recipe,
    platform: &Platform,
    source: Option<&PayloadSource>,
    scratch_dir: &Path,
) -> Result<Option<PlannedPayload>> {
    let (needed, version, at) = match (&recipe.cluster, &recipe.runtime) {
        (Some(c), _) => (
            c.distribution.as_str(),
            Some(c.version.as_str()),
            Some(&c.origin),
        ),
        (None, Some(r)) => (
            roles::PAYLOAD_CONTAINERD,
            r.version.as_deref(),
            Some(&r.origin),
        ),
        (None, None) => (roles::PAYLOAD_CONTAINERD, None, None),
    };
    if opts.no_payload {
        return Ok(None);
    }
    if let Some(PayloadSource {
        name, path: src, ..
    }) = source
    {
        if name != needed {
            bail!("--payload {name}: this bundle needs the {needed} payload, not {name}");
        }
        return Ok(Some(PlannedPayload {
            name: name.clone(),
            platform: platform.clone(),
            version: version.unwrap_or_default().to_string(),
            files: payload::collect(name, src, &scratch_dir.join("payloads"))?,
            assets: Vec::new(),
            images: Vec::new(),
            local: Some(src.clone()),
            _scratch: None,
        }));
    }
    let cache = open_cache(opts)?;
    let downloads = DownloadOptions {
        quiet: opts.quiet || opts.downloads.quiet,
        ..opts.downloads.clone()
    };
    let dl = Downloader::new(downloads, cache.clone(), needed);
    let arch = platform.architecture.as_str();
    let what = match at {
        Some(a) => format!("{a}: payload {needed}"),
        None => format!("payload {needed} (the runtime of a bundle without CLUSTER or RUNTIME)"),
    };
    let fetched = if needed == roles::PAYLOAD_K3S {
        release::k3s::fetch(version.unwrap_or_default(), arch, &dl)
    } else {
        let r = recipe.runtime.as_ref();
        let def = release::definition::Definition::builtin(needed)?;
        release::containerd::Versions::resolve(
            &def,
            version,
            r.and_then(|r| r.runc.as_deref()),
            r.and_then(|r| r.cni.as_deref()),
        )
        .and_then(|v| release::containerd::fetch(&v, arch, &dl, scratch_dir))
    }
    .with_context(|| what.clone())?;
    Ok(Some(PlannedPayload {
        name: fetched.name,
        platform: platform.clone(),
        version: fetched.version,
        files: fetched.files,
        assets: fetched.assets,
        images: fetched.images,
        local: None,
        _scratch: fetched.scratch,
    }))
}

fn open_cache(opts: &BuildOptions) -> Result<ContentCache> {
    Ok(match &opts.cache_dir {
        Some(d) => ContentCache::open(d.clone())?,
        None => ContentCache::open_default()?,
    })
}

/// What `ferry.lock` records for this build: images, release files, local inputs, helm.
fn lock_of(
    recipe: &Recipe,
    images: &[ResolvedImage],
    copies: &[files::PlannedFile],
    apps: &[apps::PlannedApp],
    payloads: &[PlannedPayload],
) -> Result<Lock> {
    let rel = |p: &Path| {
        p.strip_prefix(&recipe.context)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    let file = |kind: &str, path: String, src: &Path, mode: Option<u32>| -> Result<LockedFile> {
        Ok(LockedFile {
            kind: kind.into(),
            path,
            sha256: hash_path(src)?.hex(),
            mode: mode.map(|m| format!("{m:04o}")),
        })
    };
    let mut files = Vec::new();
    for c in copies {
        files.push(file("copy", rel(&c.src), &c.src, Some(c.mode))?);
    }
    let mut helm = None;
    for a in apps {
        let kind = match a.kind {
            crate::discover::AppKind::ChartDir | crate::discover::AppKind::ChartArchive => "chart",
            _ => "manifests",
        };
        files.push(file(kind, rel(&a.spec.path), &a.spec.path, None)?);
        for v in &a.spec.values {
            files.push(file("values", rel(v), v, None)?);
        }
        if let crate::discover::Renderer::Helm { version } = &a.discovery.rendered_with {
            helm = Some(version.clone());
        }
    }
    for p in payloads.iter().filter(|p| p.local.is_some()) {
        // One platform keeps the lock's old `<payload>:<role>`; several name theirs.
        let name = match payloads.len() {
            1 => p.name.clone(),
            _ => format!("{}@{}", p.name, p.platform),
        };
        for f in &p.files {
            files.push(file("payload", format!("{name}:{}", f.role), &f.src, None)?);
        }
    }
    let images = images
        .iter()
        .map(|i| LockedImage {
            name: i.name.to_string(),
            digest: i.root.digest.to_string(),
            platforms: i.platforms.clone(),
        })
        .collect();
    let assets = payloads.iter().flat_map(|p| p.assets.clone()).collect();
    Ok(Lock::new(helm, images, assets, files))
}

/// Resolved images, pull statistics, the `optional` images that could not be pulled (with
/// the reason), and the registry images whose layers are still to download.
type Resolved = (
    Vec<ResolvedImage>,
    PullStats,
    Vec<(String, String)>,
    Vec<downloads::Pending>,
);

/// Resolves every spec. Registry images are resolved `parallel_downloads` at a time to
/// their manifests and configs; their layers are left to [`downloads`], which fetches
/// them while the bundle is written. A registry image named in `optional` (a candidate)
/// is pulled whole here instead, so that one that cannot be pulled is returned as a
/// failure rather than failing the build.
fn resolve_images(
    opts: &BuildOptions,
    specs: &[ImageSpec],
    optional: &BTreeSet<String>,
) -> Result<Resolved> {
    let mut failed = Vec::new();
    let mut by_name: BTreeMap<String, ResolvedImage> = BTreeMap::new();
    let mut stats = PullStats::default();
    let mut pending = Vec::new();
    // Each registry image once by name (an IMAGE line and a chart may both name it).
    let mut seen = BTreeSet::new();
    let registry: Vec<(usize, &Reference, bool)> = specs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.source {
            ImageSource::Registry(r) => {
                let name = s.name.clone().unwrap_or_else(|| r.clone()).to_string();
                let whole = optional.contains(&name);
                seen.insert(name).then_some((i, r, whole))
            }
            _ => None,
        })
        .collect();
    let cache = match registry.is_empty() {
        true => None,
        false => Some(open_cache(opts)?),
    };
    let mut results: BTreeMap<usize, Result<PendingPull, PullError>> = match &cache {
        Some(c) => {
            let pulled = downloads::parallel_map(
                &registry,
                opts.pull.parallel_downloads,
                |(_, r, whole)| {
                    let mut p = resolve(r, &opts.pull, c)?;
                    if *whole {
                        p.fetch_all(c, opts.pull.parallel_downloads)?;
                    }
                    Ok(p)
                },
            );
            registry.iter().map(|(i, ..)| *i).zip(pulled).collect()
        }
        None => BTreeMap::new(),
    };
    for (i, s) in specs.iter().enumerate() {
        let at = s.origin.to_string();
        let img = match &s.source {
            ImageSource::Registry(r) => {
                let name = s.name.clone().unwrap_or_else(|| r.clone());
                // Named twice (an IMAGE line and a chart, say): resolved once, for the first.
                let Some(res) = results.remove(&i) else {
                    continue;
                };
                if by_name.contains_key(&name.to_string()) {
                    continue;
                }
                let p = match res {
                    Ok(p) => p,
                    Err(e) if optional.contains(&name.to_string()) => {
                        failed.push((name.to_string(), e.to_string()));
                        continue;
                    }
                    Err(e) => return Err(e).with_context(|| at.clone()),
                };
                let c = cache.as_ref().expect("a cache for registry images");
                stats.add(&p.image.stats);
                let blob = |d: &Descriptor| Blob {
                    digest: d.digest,
                    size: d.size,
                    media_type: d.media_type.clone(),
                    source: BlobSource::Cached {
                        path: c.blob_path(&d.digest),
                        len: d.size,
                    },
                };
                let img = ResolvedImage {
                    name,
                    source: s.written.clone(),
                    root: blob(&p.image.root),
                    blobs: p.image.blobs.iter().map(blob).collect(),
                    platforms: p.image.platforms.clone(),
                };
                // Nothing left to download (all cached): its client goes now.
                if p.layers().next().is_some() {
                    pending.push(downloads::Pending {
                        pull: p,
                        cache: c.clone(),
                        at: at.clone(),
                    });
                }
                img
            }
            local => {
                resolve_local(&s.written, local, s.name.as_ref()).with_context(|| at.clone())?
            }
        };
        let key = img.name.to_string();
        if let Some(prev) = by_name.get(&key) {
            if prev.root.digest != img.root.digest {
                bail!(
                    "{at}: image name {key} is given twice with different content ({} from {}, {} from {})",
                    prev.root.digest,
                    prev.source,
                    img.root.digest,
                    img.source
                );
            }
            continue;
        }
        by_name.insert(key, img);
    }
    Ok((by_name.into_values().collect(), stats, failed, pending))
}

/// Everything the bundle will carry, resolved to local bytes.
struct Planned<'a> {
    images: &'a [ResolvedImage],
    copies: &'a [files::PlannedFile],
    payloads: &'a [PayloadFiles],
    apps: &'a [apps::PlannedApp],
    /// `PACKAGE deb`: the closure's .debs in the content cache.
    packages: Option<&'a crate::packages::Carried>,
    /// Names of the images taken from the base unchanged.
    inherited_images: &'a std::collections::HashSet<String>,
    /// The bundle this one is built `FROM`: what the Kubefile does not replace is carried
    /// from it.
    base: Option<&'a base::Base>,
}

/// One platform's runtime or cluster payload, as written into every bundle.
struct PayloadFiles {
    name: String,
    version: String,
    platform: Platform,
    files: Vec<payload::PayloadFile>,
}

/// When the build's contents were resolved (Unix seconds): `SOURCE_DATE_EPOCH` when set;
/// else the time `ferry.lock` recorded, while the build resolves exactly as it says; else
/// now. So a rebuild of the same inputs writes the same SBOM, hence the same bundle.
fn resolved_at(previous: Option<&Lock>, now: &Lock) -> u64 {
    if let Some(t) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return t;
    }
    previous
        .filter(|p| p.differences(now).is_empty())
        .and_then(|p| p.resolved_at)
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
}

/// Where temporary files go while writing, the key that signs bundle.json, the time the
/// SBOM says it was created, and which of the build's bundles this is.
struct Writing<'a> {
    tmp_dir: &'a Path,
    key: Option<&'a crate::sign::SigningKey>,
    created: u64,
    /// The hosts this bundle installs on.
    platform: &'a Platform,
    /// Its installer stub ([`stub`]).
    stub: &'a Path,
    output: &'a Path,
    /// The build writes one bundle per platform (payload records name their platform).
    several: bool,
    /// `--delta-from`'s bundle as a local file (pulled into the cache for a reference).
    delta_from: Option<&'a Path>,
    /// Registry layers still downloading: each is waited for before it is copied.
    downloads: &'a Downloads<'a>,
}

fn write(
    opts: &BuildOptions,
    mut manifest: BundleManifest,
    planned: &Planned,
    Writing {
        tmp_dir,
        key,
        created,
        platform,
        stub: stub_path,
        output,
        several,
        delta_from,
        downloads,
    }: Writing<'_>,
) -> Result<BuildReport> {
    let Planned {
        images,
        copies,
        payloads,
        apps: planned_apps,
        packages,
        inherited_images,
        base,
    } = *planned;
    let mut inherited = Inherited {
        images: inherited_images.len(),
        hooks: manifest.hooks.iter().filter(|h| h.inherited).count(),
        ..Default::default()
    };
    manifest.platform = platform.to_string();
    let stub = std::fs::File::open(stub_path)
        .with_context(|| format!("opening {}", stub_path.display()))?;
    let image_sizes = images
        .iter()
        .map(|i| i.size())
        .collect::<Result<Vec<_>, _>>()?;
    let total = crate::image::checked_total(
        image_sizes
            .iter()
            .copied()
            .chain(copies.iter().map(|c| c.size))
            .chain(payloads.iter().flat_map(|p| &p.files).map(|f| f.size))
            .chain(packages.map(|p| p.size())),
    )
    .context("the bundle's parts add up to more than 2^64 bytes")?;
    let bar = ferry_console::bytes_bar(total, "writing", opts.quiet);
    let mut w = BundleWriter::create_with(
        output,
        stub,
        ferry_bundle::writer::WriterOptions { split: opts.split },
    )?;
    if let Some(size) = opts.split {
        // Ctrl-C removes the partial parts too.
        let most = (total / size + 3).min(ferry_bundle::parts::MAX_PARTS as u64) as usize;
        let parts: Vec<PathBuf> = (2..=most)
            .map(|i| ferry_bundle::writer::partial_path(&ferry_bundle::parts::part_path(output, i)))
            .collect();
        output::clean_up_on_interrupt(&parts);
    }
    if let (Some(old), Some(spec)) = (delta_from, &opts.delta_from) {
        let base = ferry_bundle::Bundle::open(old)
            .with_context(|| format!("--delta-from {}", spec.display()))?;
        if base.manifest.name != manifest.name {
            bail!(
                "--delta-from {}: that is bundle {}, this one is {}; a delta upgrades a bundle to a newer version of itself",
                spec.display(),
                base.manifest.name,
                manifest.name
            );
        }
        w.set_base(base);
    }
    w.add_entry(
        OCI_LAYOUT_PATH,
        LAYOUT_FILE.len() as u64,
        0o644,
        LAYOUT_FILE.as_bytes(),
    )?;
    let (mut written, mut shared) = (0usize, 0usize);
    let mut index = LayoutIndex::new();
    for img in images {
        for b in &img.blobs {
            downloads.wait(&b.digest)?;
            let r = b
                .source
                .open()
                .with_context(|| format!("{}: reading blob {}", img.source, b.digest))?;
            let added = w
                .add_blob_checked(&b.digest, b.size, b.source.check(), r)
                .with_context(|| format!("image {} (from {})", img.name, img.source))?;
            if added {
                written += 1
            } else {
                shared += 1
            }
            bar.inc(b.size);
        }
        index.add_image(
            &img.name,
            Descriptor::new(img.root.media_type.clone(), img.root.digest, img.root.size),
        );
        manifest.images.push(ImageRecord {
            name: img.name.clone(),
            digest: img.root.digest,
            media_type: img.root.media_type.clone(),
            size: img.size()?,
            source: img.source.clone(),
            platforms: img.platforms.clone(),
            inherited: inherited_images.contains(&img.name.to_string()),
        });
    }
    let index = index.to_json();
    w.add_entry(OCI_INDEX_PATH, index.len() as u64, 0o644, &index[..])?;
    for c in copies {
        let entry = paths::rootfs_entry(&c.dest);
        let rec = add_maybe_compressed(&mut w, &entry, &c.src, c.size, c.mode, tmp_dir)?;
        manifest.files.push(FileRecord {
            entry: rec.path,
            dest: c.dest.clone(),
            mode: c.mode,
            inherited: false,
        });
        bar.inc(c.size);
    }
    if let Some(base) = base {
        let bm = &base.bundle.manifest;
        for f in bm
            .files
            .iter()
            .filter(|f| !copies.iter().any(|c| c.dest == f.dest))
        {
            carry(&mut w, base, &f.entry)?;
            manifest.files.push(FileRecord {
                inherited: true,
                ..f.clone()
            });
            inherited.files += 1;
        }
    }
    let mut charts = Vec::new();
    for app in planned_apps {
        let (rec, chart) = write_app(&mut w, app, tmp_dir)?;
        manifest.apps.push(rec);
        charts.extend(chart);
    }
    if let Some(base) = base {
        let bm = &base.bundle.manifest;
        for a in bm
            .apps
            .iter()
            .filter(|a| !planned_apps.iter().any(|p| p.spec.name == a.name))
        {
            let mut entries: Vec<String> = match base.bundle.entry(&a.path) {
                Some(e) => vec![e.path.clone()],
                None => base
                    .entries_under(&a.path)
                    .iter()
                    .map(|e| e.path.clone())
                    .collect(),
            };
            entries.extend(a.values.iter().cloned());
            for e in &entries {
                carry(&mut w, base, e)?;
            }
            manifest.apps.push(AppRecord {
                inherited: true,
                ..a.clone()
            });
            inherited.apps += 1;
        }
    }
    let mut payload_items = Vec::new();
    for p in payloads {
        let name = &p.name;
        let own = p.platform == *platform;
        let mut rec = ferry_bundle::manifest::PayloadRecord {
            name: name.clone(),
            version: p.version.clone(),
            // One platform: empty, the bundle's own, as before mixed bundles.
            platform: if several {
                p.platform.to_string()
            } else {
                String::new()
            },
            files: BTreeMap::new(),
            inherited: false,
        };
        for f in &p.files {
            let entry = if own {
                paths::payload_entry(name, &f.role)
            } else {
                paths::payload_entry_for(name, &p.platform.to_string(), &f.role)
            };
            let r = add_maybe_compressed(&mut w, &entry, &f.src, f.size, f.mode, tmp_dir)?;
            rec.files.insert(f.role.clone(), r.path);
            let file = std::fs::File::open(&f.src)
                .with_context(|| format!("reading {}", f.src.display()))?;
            payload_items.push(crate::sbom::PayloadItem {
                payload: if several {
                    format!("{name}@{}", p.platform)
                } else {
                    name.clone()
                },
                role: f.role.clone(),
                sha256: ferry_bundle::digest::hash_reader(file)?.0,
                url: f.url.clone(),
            });
            bar.inc(f.size);
        }
        manifest.payloads.push(rec);
    }
    if let Some(base) = base {
        let bm = &base.bundle.manifest;
        for p in bm
            .payloads
            .iter()
            .filter(|p| !payloads.iter().any(|n| n.name == p.name))
        {
            for entry in p.files.values() {
                carry(&mut w, base, entry)?;
            }
            // The base's record says its hosts' platform outright unless they are this
            // bundle's (and the build is for one platform).
            let hosts = match p.platform.as_str() {
                "" => bm.platform.clone(),
                other => other.to_string(),
            };
            manifest
                .payloads
                .push(ferry_bundle::manifest::PayloadRecord {
                    inherited: true,
                    platform: if !several && hosts == manifest.platform {
                        String::new()
                    } else {
                        hosts
                    },
                    ..p.clone()
                });
            inherited.payloads += 1;
        }
    }
    match (packages, base) {
        (Some(p), _) => {
            p.write(&mut w, &mut manifest)?;
            bar.inc(p.size());
        }
        // No PACKAGE line of its own: the base's OS packages stay.
        (None, Some(base)) if !base.bundle.manifest.packages.is_empty() => {
            let bm = &base.bundle.manifest;
            for p in &bm.packages {
                carry(&mut w, base, &p.entry)?;
                manifest.packages.push(p.clone());
                inherited.packages += 1;
            }
            manifest.os = bm.os.clone();
        }
        _ => {}
    }
    let inherited_bytes = w.inherited_bytes();
    // The SBOM goes in last before bundle.json, which pins (and signs) it like any entry.
    let started = std::time::Instant::now();
    let sbom = crate::sbom::document(&crate::sbom::Input {
        manifest: &manifest,
        images,
        payloads: payload_items,
        charts,
        created,
        packages: manifest
            .packages
            .iter()
            .map(|p| crate::sbom::CarriedPackage {
                name: p.name.clone(),
                version: p.version.clone(),
                arch: p.architecture.clone(),
                distribution: manifest
                    .os
                    .as_ref()
                    .map(|o| o.distribution.clone())
                    .unwrap_or_else(|| "debian".into()),
                sha256: Some(p.sha256),
            })
            .collect(),
    })?;
    let sbom_seconds = started.elapsed().as_secs_f64();
    w.add_entry(crate::sbom::SBOM_ENTRY, sbom.len() as u64, 0o644, &sbom[..])?;
    manifest.sbom = Some(crate::sbom::SBOM_ENTRY.to_string());
    if let Some(path) = &opts.sbom {
        let path = match several {
            true => output::platform_path(path, platform),
            false => path.clone(),
        };
        std::fs::write(&path, &sbom).with_context(|| format!("--sbom {}", path.display()))?;
    }
    manifest.signer = key.map(|k| k.signer_record());
    let sign = |json: &[u8]| key.expect("a signer only with a key").sign(json);
    let done = w.finish_with(manifest, key.map(|_| &sign as ferry_bundle::writer::Signer))?;
    let footer: Footer = done.footer;
    let manifest = done.manifest;
    bar.finish_and_clear();
    let delta = manifest.delta.as_ref().map(|d| DeltaReport {
        base: format!("{} {} ({})", d.base_name, d.base_version, d.base),
        inherited_bytes,
    });
    Ok(BuildReport {
        size: done.size,
        output: output.to_path_buf(),
        images: images.len(),
        blobs_written: written,
        blobs_shared: shared,
        payload_sha256: footer.payload_sha256.hex(),
        pulled: PullStats::default(),
        file_sha256: String::new(),
        checksum_file: PathBuf::new(),
        delta,
        lock: PathBuf::new(),
        discovered: Vec::new(),
        discovery: Summary::default(),
        base: base.map(|b| b.record.clone()),
        inherited,
        parts: done.parts,
        signed_by: key.map(|k| k.public_key().fingerprint().to_string()),
        sbom_seconds,
        outputs: Vec::new(),
    })
}

/// Copies one of the base's entries into the new bundle as stored (a zstd entry stays
/// compressed), checking its bytes against the base's bundle.json on the way.
fn carry(w: &mut BundleWriter, base: &base::Base, entry: &str) -> Result<()> {
    if w.has_entry(entry) {
        return Ok(());
    }
    let e = base.entry(entry)?;
    let r = base.entry_source(e).open()?;
    let rec = w.add_entry_as(&e.path, e.size, e.mode, e.compression.as_deref(), r)?;
    if rec.sha256 != e.sha256 {
        bail!(
            "FROM {}: entry {} has sha256 {}, the base's bundle.json says {}: the base is damaged (run its --check)",
            base.record.source,
            e.path,
            rec.sha256,
            e.sha256
        );
    }
    Ok(())
}

/// Adds a file, zstd-compressed as `<entry>.zst` when that helps (see `files`).
fn add_maybe_compressed(
    w: &mut BundleWriter,
    entry: &str,
    src: &Path,
    size: u64,
    mode: u32,
    tmp_dir: &Path,
) -> Result<ferry_bundle::EntryRecord> {
    Ok(match files::compress_if_helps(src, size, tmp_dir)? {
        Some(tmp) => {
            let len = tmp.as_file().metadata()?.len();
            w.add_entry_as(
                &format!("{entry}.zst"),
                len,
                mode,
                Some("zstd"),
                tmp.reopen()?,
            )?
        }
        None => w.add_entry(
            entry,
            size,
            mode,
            std::fs::File::open(src).with_context(|| format!("reading {}", src.display()))?,
        )?,
    })
}

/// Carries one app: its chart as a `.tgz` (packed here from a directory) or its manifest
/// files, plus its values files; records it with the images carried for it. A chart is
/// also returned for the SBOM.
fn write_app(
    w: &mut BundleWriter,
    app: &apps::PlannedApp,
    tmp_dir: &Path,
) -> Result<(AppRecord, Option<crate::sbom::ChartItem>)> {
    use crate::discover::AppKind;
    let name = &app.spec.name;
    let entry = |rel: &str| paths::app_entry(name, rel);
    let add_file = |w: &mut BundleWriter, entry: &str, src: &Path| -> Result<String> {
        let size = std::fs::metadata(src)?.len();
        let f = std::fs::File::open(src)
            .with_context(|| format!("APP {name}: reading {}", src.display()))?;
        Ok(w.add_entry(entry, size, 0o644, f)?.path)
    };
    let mut chart = None;
    let mut add_chart = |w: &mut BundleWriter, src: &Path| -> Result<String> {
        let size = std::fs::metadata(src)?.len();
        let f = std::fs::File::open(src)
            .with_context(|| format!("APP {name}: reading {}", src.display()))?;
        let rec = w.add_entry(&entry("chart.tgz"), size, 0o644, f)?;
        let meta = crate::discover::chart_meta(&app.spec.path, app.kind)
            .with_context(|| format!("APP {name}: reading Chart.yaml"))?;
        chart = Some(crate::sbom::ChartItem {
            app: name.clone(),
            name: meta.name,
            version: meta.version,
            app_version: meta.app_version,
            sha256: rec.sha256,
        });
        Ok(rec.path)
    };
    let (kind, path) = match app.kind {
        AppKind::ChartDir => {
            let tmp = tempfile::Builder::new()
                .suffix(".tgz")
                .tempfile_in(tmp_dir)?;
            apps::pack_chart(&app.spec.path, tmp.path())?;
            ("chart", add_chart(w, tmp.path())?)
        }
        AppKind::ChartArchive => ("chart", add_chart(w, &app.spec.path)?),
        AppKind::ManifestFile => {
            let fname = app
                .spec
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "manifest.yaml".into());
            add_file(w, &entry(&format!("manifests/{fname}")), &app.spec.path)?;
            ("manifests", entry("manifests"))
        }
        AppKind::ManifestDir => {
            for f in files::plan_copy(&app.spec.path, "/")? {
                let ext = f.src.extension().and_then(|e| e.to_str()).unwrap_or("");
                if matches!(ext, "yaml" | "yml" | "json") {
                    add_file(
                        w,
                        &entry(&format!("manifests/{}", f.dest.relative())),
                        &f.src,
                    )?;
                }
            }
            ("manifests", entry("manifests"))
        }
    };
    let mut values = Vec::new();
    for (i, v) in app.spec.values.iter().enumerate() {
        values.push(add_file(w, &entry(&format!("values-{i}.yaml")), v)?);
    }
    Ok((
        AppRecord {
            name: name.clone(),
            kind: kind.into(),
            path,
            values,
            set: app.spec.set.clone(),
            images: app.carried.clone(),
            inherited: false,
        },
        chart,
    ))
}
