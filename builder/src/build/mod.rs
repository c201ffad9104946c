//! `ferry build`: Kubefile in, `delivery.run` out.
//!
//! Two stages. *Plan* reads the Kubefile and resolves everything to local bytes (image
//! blobs as byte ranges of layouts, tarballs or the content cache; files from the
//! context) without writing the bundle. *Write* then streams each unique blob and file
//! once into the bundle writer, which verifies digests as the bytes pass. Failing in plan
//! costs nothing; failing in write leaves no partial output.

pub mod apps;
pub mod fetch;
mod files;
pub mod output;
pub mod payload;
pub mod stub;

use crate::image::{resolve_local, Blob, BlobSource, ImageSource, ResolvedImage};
use crate::kubefile::{ImageSpec, ImageVia, Recipe};
use crate::pull::{pull, ContentCache, Platform, PullOptions, PullStats};
use anyhow::{bail, Context, Result};
use ferry_bundle::manifest::{AppRecord, ClusterRecord, FileRecord, HookRecord, ImageRecord};
use ferry_bundle::oci::{Descriptor, LayoutIndex, LAYOUT_FILE};
use ferry_bundle::paths::{self, OCI_INDEX_PATH, OCI_LAYOUT_PATH};
use ferry_bundle::reference::Reference;
use ferry_bundle::roles;
use ferry_bundle::writer::BundleWriter;
use ferry_bundle::{BundleManifest, Footer};
use payload::PayloadSource;
use std::collections::BTreeMap;
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
    /// Also carry images that discovery only found as candidates.
    pub include_candidates: bool,
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
    /// A delta's base, and the bytes taken from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaReport>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeltaReport {
    /// `<name> <version> (sha256:…)` of the base.
    pub base: String,
    pub inherited_bytes: u64,
}

pub fn build(opts: &BuildOptions) -> Result<BuildReport> {
    let recipe = Recipe::read(&opts.kubefile, &opts.context)?;
    if let Some((base, at)) = &recipe.base {
        bail!(
            "{at}: FROM {base}: layering on a base bundle is not supported yet; use FROM scratch"
        );
    }
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
    if let Some(p) = recipe.packages.first() {
        bail!(
            "{}: PACKAGE {} {}: OS packages are not supported by this build yet",
            p.origin,
            p.kind,
            p.names.join(" ")
        );
    }
    let mut manifest = BundleManifest {
        builder: format!("ferry {}", env!("CARGO_PKG_VERSION")),
        platform: opts.platform.to_string(),
        labels: recipe.labels.clone(),
        env: recipe.env.clone(),
        hooks: recipe
            .hooks
            .iter()
            .map(|h| HookRecord {
                command: h.command.clone(),
            })
            .collect(),
        cluster: recipe.cluster.as_ref().map(|c| ClusterRecord {
            distribution: c.distribution.clone(),
            version: c.version.clone(),
        }),
        ..Default::default()
    };
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
        for (r, _) in apps::image_refs(&p, opts.include_candidates)? {
            specs.push(ImageSpec {
                written: r.to_string(),
                source: ImageSource::Registry(r),
                name: None,
                via: ImageVia::App(a.name.clone()),
                origin: a.origin.clone(),
            });
        }
        planned_apps.push(p);
    }
    // Temporary files go to one scratch directory, removed at the end — and, with the
    // partial bundle, on Ctrl-C.
    let scratch = output::Scratch::create(&opts.output)?;
    output::clean_up_on_interrupt(&[
        ferry_bundle::writer::partial_path(&opts.output),
        scratch.path().to_path_buf(),
    ]);
    let (mut images, pulled) = resolve_images(opts, &specs)?;
    // `_airgap_tmp` keeps a decompressed airgap tarball alive until the bundle is written.
    let (k3s, _airgap_tmp) = k3s_images(opts, &manifest, &images, scratch.path())?;
    images.extend(k3s);
    let payload_files = plan_payloads(opts, &manifest, scratch.path())?;
    if images.is_empty()
        && copies.is_empty()
        && planned_apps.is_empty()
        && payload_files.is_empty()
        && manifest.hooks.is_empty()
        && manifest.cluster.is_none()
    {
        bail!(
            "{}: nothing to deliver: no IMAGE, APP, COPY, RUN or CLUSTER, and no runtime payload",
            opts.kubefile.display()
        );
    }
    let mut report = write(
        opts,
        manifest,
        &images,
        &copies,
        &payload_files,
        &planned_apps,
        scratch.path(),
    )?;
    report.pulled = pulled;
    let (sha, file) = output::write_checksum(&opts.output)?;
    report.file_sha256 = sha.to_string();
    report.checksum_file = file;
    Ok(report)
}

/// `CLUSTER k3s`: the images of k3s's airgap tarball, imported into the bundle's OCI
/// layout so that ferry's registry serves them like any other (no second tarball on the
/// host). A `.tar.zst` is decompressed to a temporary file first (the docker-archive
/// reader needs to seek).
type AirgapImages = (Vec<ResolvedImage>, Option<tempfile::NamedTempFile>);

fn k3s_images(
    opts: &BuildOptions,
    manifest: &BundleManifest,
    have: &[ResolvedImage],
    scratch_dir: &Path,
) -> Result<AirgapImages> {
    if manifest.cluster.as_ref().map(|c| c.distribution.as_str()) != Some(roles::PAYLOAD_K3S) {
        return Ok((vec![], None));
    }
    let Some(dir) = opts
        .payloads
        .iter()
        .find(|p| p.name == roles::PAYLOAD_K3S)
        .map(|p| &p.path)
    else {
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
    let source = format!("k3s-airgap:{}", tarball.display());
    let imgs = crate::image::resolve_all(&source, &tar_path)?;
    Ok((
        imgs.into_iter()
            .filter(|i| !have.iter().any(|h| h.name == i.name))
            .collect(),
        tmp,
    ))
}

/// Which payload the bundle needs and its files. Runtime-only bundles need `containerd`;
/// `CLUSTER <distro>` needs the payload of that name.
fn plan_payloads(
    opts: &BuildOptions,
    manifest: &BundleManifest,
    scratch_dir: &Path,
) -> Result<Vec<(String, Vec<payload::PayloadFile>)>> {
    let needed = match &manifest.cluster {
        Some(c) => c.distribution.clone(),
        None => roles::PAYLOAD_CONTAINERD.to_string(),
    };
    let mut out = Vec::new();
    for PayloadSource { name, path: src } in &opts.payloads {
        if name != &needed {
            bail!("--payload {name}: this bundle needs the {needed} payload, not {name}");
        }
        out.push((
            name.clone(),
            payload::collect(name, src, &scratch_dir.join("payloads"))?,
        ));
    }
    if out.is_empty() && !opts.no_payload {
        if let Some(text) = fetch::builtin(&needed) {
            // A connected builder downloads the pinned release assets (once; cached).
            let def = fetch::parse(text)?;
            let cache = match &opts.cache_dir {
                Some(d) => d.clone(),
                None => crate::pull::ContentCache::default_dir()
                    .unwrap_or_else(|| PathBuf::from(".ferry-cache")),
            };
            match fetch::fetch(&def, &cache) {
                Ok(dir) => {
                    let scratch = cache.join("scratch");
                    let mut files = payload::collect(&needed, &dir, &scratch)?;
                    for f in &mut files {
                        f.url = def.source_url(&f.role).map(str::to_string);
                    }
                    out.push((needed.clone(), files));
                    return Ok(out);
                }
                Err(e) => bail!(
                    "this bundle needs the {needed} payload and downloading it failed: {e:#}\n\
                     pass --payload {needed}=<dir|file.tar.gz> instead (see payloads/{needed}/README.md)"
                ),
            }
        }
        bail!(
            "this bundle needs the {needed} payload (the runtime the host will run); pass --payload {needed}=<dir|file.tar.gz> \
             (see payloads/{needed}/README.md; scripts/containerd-payload.sh assembles one from local packages)"
        );
    }
    Ok(out)
}

fn resolve_images(
    opts: &BuildOptions,
    specs: &[ImageSpec],
) -> Result<(Vec<ResolvedImage>, PullStats)> {
    let mut by_name: BTreeMap<String, ResolvedImage> = BTreeMap::new();
    let mut stats = PullStats::default();
    let mut cache: Option<ContentCache> = None;
    for s in specs {
        let at = s.origin.to_string();
        let img = match &s.source {
            ImageSource::Registry(r) => {
                let name = s.name.clone().unwrap_or_else(|| r.clone());
                // Named twice (an IMAGE line and a chart, say): pull once.
                if by_name.contains_key(&name.to_string()) {
                    continue;
                }
                if cache.is_none() {
                    cache = Some(match &opts.cache_dir {
                        Some(d) => ContentCache::open(d.clone())?,
                        None => ContentCache::open_default()?,
                    });
                }
                let c = cache.as_ref().unwrap();
                let p = pull(r, &opts.pull, c).with_context(|| at.clone())?;
                stats.add(&p.stats);
                let blob = |d: &Descriptor| Blob {
                    digest: d.digest,
                    size: d.size,
                    media_type: d.media_type.clone(),
                    source: BlobSource::whole_file(c.blob_path(&d.digest), d.size),
                };
                ResolvedImage {
                    name,
                    source: s.written.clone(),
                    root: blob(&p.root),
                    blobs: p.blobs.iter().map(blob).collect(),
                    platforms: p.platforms.clone(),
                }
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
    Ok((by_name.into_values().collect(), stats))
}

fn write(
    opts: &BuildOptions,
    mut manifest: BundleManifest,
    images: &[ResolvedImage],
    copies: &[files::PlannedFile],
    payloads: &[(String, Vec<payload::PayloadFile>)],
    planned_apps: &[apps::PlannedApp],
    tmp_dir: &Path,
) -> Result<BuildReport> {
    let platforms = if opts.pull.platforms.is_empty() {
        std::slice::from_ref(&opts.platform)
    } else {
        &opts.pull.platforms[..]
    };
    let (stub_path, platform) = stub::locate_for(opts.installer.as_deref(), platforms)?;
    manifest.platform = platform.to_string();
    let stub = std::fs::File::open(&stub_path)
        .with_context(|| format!("opening {}", stub_path.display()))?;
    let total: u64 = images.iter().map(|i| i.size()).sum::<u64>()
        + copies.iter().map(|c| c.size).sum::<u64>()
        + payloads
            .iter()
            .flat_map(|p| &p.1)
            .map(|f| f.size)
            .sum::<u64>();
    let bar = ferry_console::bytes_bar(total, "writing", opts.quiet);
    let mut w = BundleWriter::create(&opts.output, stub)?;
    if let Some(old) = &opts.delta_from {
        let base = ferry_bundle::Bundle::open(old)
            .with_context(|| format!("--delta-from {}", old.display()))?;
        if base.manifest.name != manifest.name {
            bail!(
                "--delta-from {}: that is bundle {}, this one is {}; a delta upgrades a bundle to a newer version of itself",
                old.display(),
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
            let r = b
                .source
                .open()
                .with_context(|| format!("{}: reading blob {}", img.source, b.digest))?;
            let added = w
                .add_blob(&b.digest, b.size, r)
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
            size: img.size(),
            source: img.source.clone(),
            platforms: img.platforms.clone(),
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
        });
        bar.inc(c.size);
    }
    for app in planned_apps {
        manifest.apps.push(write_app(&mut w, app, tmp_dir)?);
    }
    for (name, pfiles) in payloads {
        let mut rec = ferry_bundle::manifest::PayloadRecord {
            name: name.clone(),
            version: String::new(),
            files: BTreeMap::new(),
        };
        for f in pfiles {
            let entry = paths::payload_entry(name, &f.role);
            let r = add_maybe_compressed(&mut w, &entry, &f.src, f.size, f.mode, tmp_dir)?;
            rec.files.insert(f.role.clone(), r.path);
            bar.inc(f.size);
        }
        manifest.payloads.push(rec);
    }
    let inherited_bytes = w.inherited_bytes();
    let (footer, manifest): (Footer, _) = w.finish(manifest)?;
    bar.finish_and_clear();
    let delta = manifest.delta.as_ref().map(|d| DeltaReport {
        base: format!("{} {} ({})", d.base_name, d.base_version, d.base),
        inherited_bytes,
    });
    Ok(BuildReport {
        size: footer.payload_offset + footer.payload_len + ferry_bundle::footer::FOOTER_LEN as u64,
        output: opts.output.clone(),
        images: images.len(),
        blobs_written: written,
        blobs_shared: shared,
        payload_sha256: footer.payload_sha256.hex(),
        pulled: PullStats::default(),
        file_sha256: String::new(),
        checksum_file: PathBuf::new(),
        delta,
    })
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
/// files, plus its values files; records it with the images discovery found.
fn write_app(w: &mut BundleWriter, app: &apps::PlannedApp, tmp_dir: &Path) -> Result<AppRecord> {
    use crate::discover::AppKind;
    let name = &app.spec.name;
    let entry = |rel: &str| paths::app_entry(name, rel);
    let add_file = |w: &mut BundleWriter, entry: &str, src: &Path| -> Result<String> {
        let size = std::fs::metadata(src)?.len();
        let f = std::fs::File::open(src)
            .with_context(|| format!("APP {name}: reading {}", src.display()))?;
        Ok(w.add_entry(entry, size, 0o644, f)?.path)
    };
    let (kind, path) = match app.kind {
        AppKind::ChartDir => {
            let tmp = tempfile::Builder::new()
                .suffix(".tgz")
                .tempfile_in(tmp_dir)?;
            apps::pack_chart(&app.spec.path, tmp.path())?;
            ("chart", add_file(w, &entry("chart.tgz"), tmp.path())?)
        }
        AppKind::ChartArchive => ("chart", add_file(w, &entry("chart.tgz"), &app.spec.path)?),
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
    let mut images: Vec<String> = app
        .discovery
        .images
        .iter()
        .filter_map(|f| Reference::parse(&f.image).ok())
        .map(|r| r.to_string())
        .collect();
    images.sort();
    images.dedup();
    Ok(AppRecord {
        name: name.clone(),
        kind: kind.into(),
        path,
        values,
        set: app.spec.set.clone(),
        images,
    })
}
