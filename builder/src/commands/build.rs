//! `ferry build -f Kubefile -o delivery.run [context]`.

use crate::build::{build, BuildOptions};
use crate::cli::{BuildArgs, OutputFormat};
use anyhow::Result;
use std::path::PathBuf;

pub fn run(args: &BuildArgs, output: OutputFormat, quiet: bool) -> Result<()> {
    let context = args.context.clone().unwrap_or_else(|| {
        args.kubefile
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    let platforms: Vec<crate::pull::Platform> = args
        .platform
        .iter()
        .map(|p| {
            p.parse()
                .map_err(|e| anyhow::anyhow!("--platform {p}: {e}"))
        })
        .collect::<Result<_>>()?;
    let mirrors = args
        .registry_mirrors
        .iter()
        .map(|m| {
            m.parse()
                .map_err(|e| anyhow::anyhow!("--registry-mirror {m}: {e}"))
        })
        .collect::<Result<_>>()?;
    let payloads = args
        .payloads
        .iter()
        .map(|p| p.parse().map_err(|e| anyhow::anyhow!("--payload {p}: {e}")))
        .collect::<Result<_>>()?;
    let platform = platforms
        .first()
        .cloned()
        .unwrap_or_else(|| "linux/amd64".parse().expect("a valid platform"));
    let pull = crate::pull::PullOptions {
        platforms,
        mirrors,
        insecure_registries: args.insecure_registries.clone(),
        ..Default::default()
    };
    let opts = BuildOptions {
        kubefile: args.kubefile.clone(),
        context,
        output: args.out.clone(),
        installer: args.installer.clone(),
        platform,
        quiet,
        pull,
        cache_dir: args.cache_dir.clone(),
        payloads,
        no_payload: args.no_payload,
        include_candidates: args.include_candidates,
    };
    let started = std::time::Instant::now();
    let r = build(&opts)?;
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&r)?),
        OutputFormat::Text if !quiet => println!(
            "wrote {} ({} bytes, {} images, {} blobs stored, {} shared blobs stored once; pulled {} blobs, {} from cache) in {:.1}s",
            r.output.display(),
            r.size,
            r.images,
            r.blobs_written,
            r.blobs_shared,
            r.pulled.blobs_fetched,
            r.pulled.blobs_reused,
            started.elapsed().as_secs_f64()
        ),
        OutputFormat::Text => {}
    }
    Ok(())
}
