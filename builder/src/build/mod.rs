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
pub mod payload;
pub mod stub;

use crate::image::{resolve_local, Blob, BlobSource, ImageSource, ResolvedImage, OCI_INDEX};
use crate::kubefile::{Instruction, Kubefile};
use crate::pull::{pull, ContentCache, PullOptions, PullStats};
use anyhow::{bail, Context, Result};
use ferry_bundle::manifest::{FileRecord, HookRecord, ImageRecord};
use ferry_bundle::reference::Reference;
use ferry_bundle::writer::BundleWriter;
use ferry_bundle::{BundleManifest, Footer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub kubefile: PathBuf,
    pub context: PathBuf,
    pub output: PathBuf,
    pub installer: Option<PathBuf>,
    pub platform: String,
    pub quiet: bool,
    /// Registry pulls: platforms, mirrors, insecure registries, credentials.
    pub pull: PullOptions,
    /// Content cache for pulled blobs (default `~/.cache/ferry`).
    pub cache_dir: Option<PathBuf>,
    /// `--payload name=path` sources.
    pub payloads: Vec<(String, PathBuf)>,
    /// Build without any runtime payload (`--no-payload`).
    pub no_payload: bool,
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
    pub payload_sha256: String,
    /// Registry blobs downloaded by this build / found in the content cache.
    pub pulled: PullStats,
}

/// One image line of the Kubefile, before resolution.
struct ImageSpec {
    line: usize,
    source: String,
    name: Option<String>,
}

pub fn build(opts: &BuildOptions) -> Result<BuildReport> {
    let kf = Kubefile::read(&opts.kubefile)?;
    let ctx = &opts.context;
    let mut manifest = BundleManifest {
        builder: format!("ferry {}", env!("CARGO_PKG_VERSION")),
        platform: opts.platform.clone(),
        ..Default::default()
    };
    let mut specs = Vec::new();
    let mut copies = Vec::new();
    let mut app_specs: Vec<apps::AppSpec> = Vec::new();
    for l in kf.iter() {
        let at = || format!("{}:{}", opts.kubefile.display(), l.line);
        match &l.ins {
            Instruction::From(base) if base == "scratch" => {}
            Instruction::From(base) => bail!(
                "{}: FROM {base}: layering on a base bundle is not supported yet; use FROM scratch",
                at()
            ),
            Instruction::Image { sources, name } => {
                specs.extend(sources.iter().map(|s| ImageSpec {
                    line: l.line,
                    source: s.clone(),
                    name: name.clone(),
                }))
            }
            Instruction::Images(file) => {
                let p = ctx.join(file);
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("{}: IMAGES {}", at(), p.display()))?;
                for line in text
                    .lines()
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && !s.starts_with('#'))
                {
                    specs.push(ImageSpec {
                        line: l.line,
                        source: line.to_string(),
                        name: None,
                    });
                }
            }
            Instruction::Copy { src, dest } => {
                let planned = files::plan_copy(&ctx.join(src), dest).with_context(at)?;
                copies.extend(planned);
            }
            Instruction::Label { key, value } => {
                manifest.labels.insert(key.clone(), value.clone());
            }
            Instruction::Env { key, value } => {
                manifest.env.insert(key.clone(), value.clone());
            }
            Instruction::Run(cmd) => manifest.hooks.push(HookRecord {
                command: cmd.clone(),
            }),
            Instruction::Cluster {
                distribution,
                version,
            } => {
                manifest.cluster = Some(ferry_bundle::manifest::ClusterRecord {
                    distribution: distribution.clone(),
                    version: version.clone(),
                })
            }
            Instruction::App { name, path } => app_specs.push(apps::AppSpec {
                name: name.clone(),
                path: ctx.join(path),
                values: vec![],
                set: vec![],
                line: l.line,
            }),
            Instruction::Values { app, file } => {
                let a = app_specs
                    .iter_mut()
                    .find(|a| &a.name == app)
                    .expect("checked by the parser");
                a.values.push(ctx.join(file));
            }
            Instruction::Set { app, assignment } => {
                let a = app_specs
                    .iter_mut()
                    .find(|a| &a.name == app)
                    .expect("checked by the parser");
                a.set.push(assignment.clone());
            }
            other => bail!("{}: {other:?} is not supported by this build yet", at()),
        }
    }
    manifest.name = manifest.labels.get("name").cloned().unwrap_or_else(|| {
        opts.output
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bundle".into())
    });
    manifest.version = manifest.labels.get("version").cloned().unwrap_or_default();

    let mut planned_apps = Vec::new();
    for a in &app_specs {
        let p =
            apps::discover(a).with_context(|| format!("{}:{}", opts.kubefile.display(), a.line))?;
        for w in &p.discovery.warnings {
            tracing::warn!("APP {}: {w}", a.name);
        }
        for (r, _) in apps::image_refs(&p, opts.include_candidates)? {
            specs.push(ImageSpec {
                line: a.line,
                source: r.to_string(),
                name: None,
            });
        }
        planned_apps.push(p);
    }
    let (mut images, pulled) = resolve_images(opts, ctx, &specs)?;
    // `_airgap_tmp` keeps a decompressed airgap tarball alive until the bundle is written.
    let (k3s, _airgap_tmp) = k3s_images(opts, &manifest, &images)?;
    images.extend(k3s);
    let payload_files = plan_payloads(opts, &manifest)?;
    let mut report = write(
        opts,
        manifest,
        &images,
        &copies,
        &payload_files,
        &planned_apps,
    )?;
    report.pulled = pulled;
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
) -> Result<AirgapImages> {
    if manifest.cluster.as_ref().map(|c| c.distribution.as_str()) != Some("k3s") {
        return Ok((vec![], None));
    }
    let Some((_, dir)) = opts.payloads.iter().find(|(n, _)| n == "k3s") else {
        return Ok((vec![], None));
    };
    let Some(tarball) = payload::k3s_airgap_tarball(dir) else {
        tracing::warn!("payload k3s: no k3s-airgap-images-<arch>.tar[.zst] in {}; k3s's own images are not carried", dir.display());
        return Ok((vec![], None));
    };
    let scratch_dir = opts
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut tmp = None;
    let tar_path = if tarball.extension().is_some_and(|e| e == "zst") {
        let t = tempfile::NamedTempFile::new_in(&scratch_dir)?;
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
) -> Result<Vec<(String, Vec<payload::PayloadFile>)>> {
    let needed = match &manifest.cluster {
        Some(c) => c.distribution.clone(),
        None => "containerd".to_string(),
    };
    let mut out = Vec::new();
    for (name, src) in &opts.payloads {
        if name != &needed {
            bail!("--payload {name}: this bundle needs the {needed} payload, not {name}");
        }
        let scratch = opts
            .output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join(".ferry-scratch");
        out.push((name.clone(), payload::collect(name, src, &scratch)?));
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
                    out.push((needed.clone(), payload::collect(&needed, &dir, &scratch)?));
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
    ctx: &Path,
    specs: &[ImageSpec],
) -> Result<(Vec<ResolvedImage>, PullStats)> {
    let kubefile = &opts.kubefile;
    let mut by_name: BTreeMap<String, ResolvedImage> = BTreeMap::new();
    let mut stats = PullStats::default();
    let mut cache: Option<ContentCache> = None;
    for s in specs {
        let at = format!("{}:{}", kubefile.display(), s.line);
        let name = s
            .name
            .as_deref()
            .map(Reference::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("{at}: AS {e}"))?;
        let src = ImageSource::parse(&s.source, ctx).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        let img = match &src {
            ImageSource::Registry(r) => {
                // Named twice (an IMAGE line and a chart, say): pull once.
                if by_name.contains_key(&name.clone().unwrap_or_else(|| r.clone()).to_string()) {
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
                let blob = |d: &crate::pull::Descriptor| Blob {
                    digest: d.digest,
                    size: d.size,
                    media_type: d.media_type.clone(),
                    source: BlobSource::whole_file(c.blob_path(&d.digest), d.size),
                };
                ResolvedImage {
                    name: name.clone().unwrap_or_else(|| r.clone()),
                    source: s.source.clone(),
                    root: blob(&p.root),
                    blobs: p.blobs.iter().map(blob).collect(),
                    platforms: p.platforms.clone(),
                }
            }
            _ => resolve_local(&s.source, &src, name.as_ref()).with_context(|| at.clone())?,
        };
        let key = img.name.to_string();
        if let Some(prev) = by_name.get(&key) {
            if prev.root.digest != img.root.digest {
                bail!("{at}: image name {key} is given twice with different content ({} from {}, {:?} from {})", prev.root.digest.oci(), prev.source, img.root.digest, img.source);
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
) -> Result<BuildReport> {
    let stub_path = stub::locate(opts.installer.as_deref()).map_err(anyhow::Error::msg)?;
    let stub = std::fs::File::open(&stub_path)
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
            .chain(payloads.iter().flat_map(|p| &p.1).map(|f| f.size)),
    )
    .context("the bundle's parts add up to more than 2^64 bytes")?;
    let bar = ferry_console::bytes_bar(total, "writing", opts.quiet);
    let mut w = BundleWriter::create(&opts.output, stub)?;
    let tmp_dir = opts
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    w.add_entry(
        "oci/oci-layout",
        30,
        0o644,
        &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
    )?;
    let (mut written, mut shared) = (0usize, 0usize);
    let mut index_manifests = Vec::new();
    for img in images {
        for b in &img.blobs {
            let r = b
                .source
                .open()
                .with_context(|| format!("{}: reading blob {:?}", img.source, b.digest))?;
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
        let tag = img.name.tag.clone().unwrap_or_else(|| img.name.to_string());
        index_manifests.push(serde_json::json!({
            "mediaType": img.root.media_type,
            "digest": img.root.digest.oci(),
            "size": img.root.size,
            "annotations": {
                "io.containerd.image.name": img.name.to_string(),
                "org.opencontainers.image.ref.name": tag,
            }
        }));
        manifest.images.push(ImageRecord {
            name: img.name.to_string(),
            digest: img.root.digest.oci(),
            media_type: img.root.media_type.clone(),
            size: img.size()?,
            source: img.source.clone(),
            platforms: img.platforms.clone(),
        });
    }
    let index = serde_json::to_vec_pretty(
        &serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_manifests}),
    )?;
    w.add_entry("oci/index.json", index.len() as u64, 0o644, &index[..])?;
    for c in copies {
        let entry = files::entry_for(&c.dest);
        let rec = add_maybe_compressed(&mut w, &entry, &c.src, c.size, c.mode, &tmp_dir)?;
        manifest.files.push(FileRecord {
            entry: rec.path,
            dest: c.dest.clone(),
            mode: c.mode,
        });
        bar.inc(c.size);
    }
    for app in planned_apps {
        manifest.apps.push(write_app(&mut w, app, &tmp_dir)?);
    }
    for (name, pfiles) in payloads {
        let mut rec = ferry_bundle::manifest::PayloadRecord {
            name: name.clone(),
            version: String::new(),
            files: BTreeMap::new(),
        };
        for f in pfiles {
            let entry = payload::entry_for(name, &f.role);
            let r = add_maybe_compressed(&mut w, &entry, &f.src, f.size, f.mode, &tmp_dir)?;
            rec.files.insert(f.role.clone(), r.path);
            bar.inc(f.size);
        }
        manifest.payloads.push(rec);
    }
    let (footer, _): (Footer, _) = w.finish(manifest)?;
    bar.finish_and_clear();
    Ok(BuildReport {
        size: footer.payload_offset + footer.payload_len + ferry_bundle::footer::FOOTER_LEN as u64,
        output: opts.output.clone(),
        images: images.len(),
        blobs_written: written,
        blobs_shared: shared,
        payload_sha256: footer.payload_sha256.hex(),
        pulled: PullStats::default(),
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
fn write_app(
    w: &mut BundleWriter,
    app: &apps::PlannedApp,
    tmp_dir: &Path,
) -> Result<ferry_bundle::manifest::AppRecord> {
    use crate::discover::AppKind;
    let name = &app.spec.name;
    let base = format!("{}/apps/{name}", ferry_bundle::FILES_DIR);
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
            (
                "chart",
                add_file(w, &format!("{base}/chart.tgz"), tmp.path())?,
            )
        }
        AppKind::ChartArchive => (
            "chart",
            add_file(w, &format!("{base}/chart.tgz"), &app.spec.path)?,
        ),
        AppKind::ManifestFile => {
            let fname = app
                .spec
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "manifest.yaml".into());
            add_file(w, &format!("{base}/manifests/{fname}"), &app.spec.path)?;
            ("manifests", format!("{base}/manifests"))
        }
        AppKind::ManifestDir => {
            for f in files::plan_copy(&app.spec.path, "/")? {
                let ext = f.src.extension().and_then(|e| e.to_str()).unwrap_or("");
                if matches!(ext, "yaml" | "yml" | "json") {
                    add_file(
                        w,
                        &format!("{base}/manifests{}", f.dest.trim_end_matches('/')),
                        &f.src,
                    )?;
                }
            }
            ("manifests", format!("{base}/manifests"))
        }
    };
    let mut values = Vec::new();
    for (i, v) in app.spec.values.iter().enumerate() {
        values.push(add_file(w, &format!("{base}/values-{i}.yaml"), v)?);
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
    Ok(ferry_bundle::manifest::AppRecord {
        name: name.clone(),
        kind: kind.into(),
        path,
        values,
        set: app.spec.set.clone(),
        images,
    })
}
