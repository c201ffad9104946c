//! `ferry push <bundle.run> <host[:port]/repository:tag>` and `ferry pull <ref> -o <file>`.

use crate::cli::{OutputFormat, PullArgs, PushArgs, RemoteArgs};
use crate::pull::upload::UploadOptions;
use crate::pull::{ContentCache, PullOptions};
use crate::push::fetch::{self, FetchOptions};
use crate::push::{self, PushOptions};
use anyhow::Result;
use ferry_console::{outln, print_json};

fn registry(r: &RemoteArgs) -> PullOptions {
    PullOptions {
        insecure_registries: r.insecure_registries.clone(),
        ..Default::default()
    }
}

pub fn push(args: &PushArgs, output: OutputFormat, quiet: bool) -> Result<()> {
    let opts = PushOptions {
        registry: registry(&args.registry),
        upload: UploadOptions {
            chunk_size: args.chunk_size << 20,
        },
        cache_dir: args.registry.cache_dir.clone(),
        quiet: quiet || output == OutputFormat::Json,
        ..Default::default()
    };
    let r = push::push(&args.bundle, &args.reference, &opts)?;
    match output {
        OutputFormat::Json => print_json(&r)?,
        OutputFormat::Text if !quiet => outln!(
            "pushed {} ({} bytes, {} images) to {}@{} in {:.1}s: {} blobs uploaded ({} bytes), {} already there, {} mounted; {} manifests pushed, {} already there",
            args.bundle.display(),
            r.size,
            r.images,
            r.reference,
            r.digest,
            r.seconds,
            r.uploads.blobs_uploaded,
            r.uploads.bytes_uploaded,
            r.uploads.blobs_present,
            r.uploads.blobs_mounted,
            r.uploads.manifests_pushed,
            r.uploads.manifests_present
        )?,
        OutputFormat::Text => {}
    }
    Ok(())
}

pub fn pull(args: &PullArgs, output: OutputFormat, quiet: bool) -> Result<()> {
    let cache = match &args.registry.cache_dir {
        Some(d) => ContentCache::open(d.clone()).ok(),
        None => ContentCache::open_default().ok(),
    };
    let opts = FetchOptions {
        registry: registry(&args.registry),
        cache,
        quiet: quiet || output == OutputFormat::Json,
    };
    let r = fetch::pull(&args.reference, &args.out, &opts)?;
    match output {
        OutputFormat::Json => print_json(&r)?,
        OutputFormat::Text if !quiet => outln!(
            "pulled {} ({}) into {} ({} bytes, sha256 {} in {}.sha256) in {:.1}s: {} blobs downloaded ({} bytes), {} from the cache{}",
            r.reference,
            r.digest,
            r.output.display(),
            r.size,
            r.file_sha256,
            r.output.display(),
            r.seconds,
            r.blobs_fetched,
            r.bytes_fetched,
            r.blobs_from_cache,
            if r.bytes_resumed > 0 {
                format!(", resumed after {} bytes", r.bytes_resumed)
            } else {
                String::new()
            }
        )?,
        OutputFormat::Text => {}
    }
    Ok(())
}
