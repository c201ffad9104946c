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
    let opts = BuildOptions {
        kubefile: args.kubefile.clone(),
        context,
        output: args.out.clone(),
        installer: args.installer.clone(),
        platform: args.platform.clone(),
        quiet,
    };
    let started = std::time::Instant::now();
    let r = build(&opts)?;
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&r)?),
        OutputFormat::Text if !quiet => println!(
            "wrote {} ({} bytes, {} images, {} blobs stored, {} shared blobs stored once) in {:.1}s",
            r.output.display(),
            r.size,
            r.images,
            r.blobs_written,
            r.blobs_shared,
            started.elapsed().as_secs_f64()
        ),
        OutputFormat::Text => {}
    }
    Ok(())
}
