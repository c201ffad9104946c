//! `--extract DIR`: unpack the payload entries as stored; never writes outside DIR.

use anyhow::{Context, Result};
use ferry_console::outln;
use std::path::Path;
use std::process::ExitCode;

pub fn run(bundle: Option<&Path>, dir: &Path, quiet: bool) -> Result<ExitCode> {
    let b = crate::locate::open(bundle)?;
    let bar = ferry_console::bytes_bar(b.manifest.payload_bytes(), "extracting", quiet);
    let r = ferry_bundle::extract::extract(&b, dir, &|n| bar.set_position(n))
        .with_context(|| format!("extracting into {}", dir.display()))?;
    bar.finish_and_clear();
    if !quiet {
        outln!(
            "extracted {} files ({} bytes) into {}",
            r.files,
            r.bytes,
            dir.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
