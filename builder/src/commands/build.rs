//! `ferry build -f Kubefile -o delivery.run [context]`.

use crate::build::{build, BuildOptions, BuildReport};
use crate::cli::{BuildArgs, OutputFormat};
use crate::discover::Status;
use anyhow::Result;
use ferry_console::{outln, print_json};
use std::path::PathBuf;

pub fn run(args: &BuildArgs, output: OutputFormat, quiet: bool) -> Result<()> {
    let context = args.context.clone().unwrap_or_else(|| {
        args.kubefile
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    let pull = crate::pull::PullOptions {
        platforms: args.platform.clone(),
        ..args.registry.pull_options()
    };
    let opts = BuildOptions {
        kubefile: args.kubefile.clone(),
        context,
        output: args.out.clone(),
        installer: args.installer.clone(),
        // clap's default gives at least one.
        platform: args
            .platform
            .first()
            .cloned()
            .unwrap_or_else(|| "linux/amd64".parse().expect("a valid platform")),
        quiet,
        pull,
        cache_dir: args.cache_dir.clone(),
        payloads: args.payloads.clone(),
        no_payload: args.no_payload,
        delta_from: args.delta_from.clone(),
        downloads: crate::release::DownloadOptions {
            mirrors: args.release_mirrors.clone(),
            quiet,
            ..Default::default()
        },
        locked: args.locked,
        candidates: args.candidates.mode(),
        strict: args.strict,
        apt: crate::packages::AptOptions {
            mirrors: args.apt_mirrors.clone(),
            etc_apt: None,
        },
        sign: args.sign.clone(),
        split: args.split.map(|s| s.0),
        sbom: args.sbom.clone(),
    };
    let started = std::time::Instant::now();
    let r = build(&opts)?;
    match output {
        OutputFormat::Json => print_json(&r)?,
        OutputFormat::Text if !quiet => {
            outln!(
                "wrote {} ({} bytes, {} images, {} blobs stored, {} shared blobs stored once; pulled {} blobs, {} from cache) in {:.1}s",
                r.output.display(),
                r.size,
                r.images,
                r.blobs_written,
                r.blobs_shared,
                r.pulled.blobs_fetched,
                r.pulled.blobs_reused,
                started.elapsed().as_secs_f64()
            )?;
            if r.outputs.len() > 1 {
                outln!("one bundle per platform (each host takes the one of its architecture; every bundle carries every platform's runtime for joining nodes):")?;
                for o in &r.outputs {
                    outln!(
                        "  {}\t{} ({} bytes, sha256 {}, in {})",
                        o.platform,
                        o.path.display(),
                        o.size,
                        o.sha256,
                        o.checksum_file.display()
                    )?;
                }
            }
            if r.parts.len() > 1 {
                outln!(
                    "in {} parts: {} … {} (copy them all into one directory and run {})",
                    r.parts.len(),
                    r.parts[0].display(),
                    r.parts[r.parts.len() - 1].display(),
                    r.parts[0].display()
                )?;
            }
            outln!(
                "{} recorded in {} (at the site: sha256sum -c {}); {} {}",
                r.file_sha256,
                r.checksum_file.display(),
                r.checksum_file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                if args.locked { "held to" } else { "wrote" },
                r.lock.display()
            )?;
            if let Some(b) = &r.base {
                let i = &r.inherited;
                outln!(
                    "  FROM {} ({} {}, {}): inherited {} images, {} apps, {} files, {} payloads, {} hooks",
                    b.source,
                    b.name,
                    b.version,
                    b.digest,
                    i.images,
                    i.apps,
                    i.files,
                    i.payloads,
                    i.hooks
                )?;
            }
            discovery_text(&r)?;
            if let Some(fp) = &r.signed_by {
                outln!("signed by key {fp} (sites check it with --trust-key <pub.pem> or --trust-fingerprint {fp})")?;
            }
        }
        OutputFormat::Text => {}
    }
    if let (Some(d), OutputFormat::Text, false) = (&r.delta, output, quiet) {
        outln!(
            "delta of {}: carries {} bytes; {} bytes are taken from the base at the site (the complete bundle has {})",
            d.base,
            r.size,
            d.inherited_bytes,
            d.inherited_bytes + r.size
        )?;
    }
    Ok(())
}

/// What the apps' discovery carried and dropped, one line per image that is not plainly
/// certain (certain images are what a pod template names: `ferry images` lists them).
fn discovery_text(r: &BuildReport) -> Result<()> {
    if r.discovered.is_empty() {
        return Ok(());
    }
    let d = &r.discovery;
    outln!(
        "apps: {} certain images, {} verified candidates carried, {} carried from helm hooks/tests, {} candidates dropped ({} registry checks, {} ms)",
        d.certain,
        d.verified,
        d.hooks,
        d.dropped,
        d.checks,
        d.check_millis
    )?;
    for e in &r.discovered {
        let first = &e.origins[0];
        let at = format!(
            "APP {} {} {}",
            first.app, first.found.file, first.found.field
        );
        match &e.status {
            Status::Certain if e.hooks.is_empty() => {}
            Status::Dropped { reason } => outln!("  dropped  {}\t{at}: {reason}", e.image)?,
            s if s.carried() => outln!("  carried  {}\t{at} [{}]", e.image, e.label())?,
            _ => outln!("  NOT carried  {}\t{at} [{}]", e.image, e.label())?,
        }
    }
    Ok(())
}
