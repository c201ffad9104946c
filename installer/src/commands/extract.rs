//! `--extract DIR`: unpack the payload entries as stored (and a signed bundle's
//! `bundle.json.sig`); never writes outside DIR. The host's trust policy applies.

use crate::cli::Cli;
use anyhow::{Context, Result};
use ferry_console::outln;
use std::path::Path;
use std::process::ExitCode;

pub fn run(cli: &Cli, dir: &Path) -> Result<ExitCode> {
    let quiet = cli.quiet;
    let b = super::trust::open_admitted(cli)?;
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
