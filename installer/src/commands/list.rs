//! `--list`: every payload entry with size, offset and sha256 (from bundle.json).

use anyhow::Result;
use ferry_console::{outln, OutputFormat};
use std::path::Path;
use std::process::ExitCode;

pub fn run(bundle: Option<&Path>, output: OutputFormat) -> Result<ExitCode> {
    let b = crate::locate::open(bundle)?;
    match output {
        OutputFormat::Json => ferry_console::print_json(&b.manifest.entries)?,
        OutputFormat::Text => {
            for e in &b.manifest.entries {
                let z = if e.compression.is_some() {
                    " (zstd)"
                } else {
                    ""
                };
                outln!(
                    "{:>14}  {:>14}  {}  {}{z}",
                    e.size,
                    e.offset,
                    e.sha256,
                    e.path
                )?;
            }
            outln!(
                "{:>14}  {:>14}  {}  {}",
                b.footer.manifest_len,
                b.footer.manifest_offset,
                b.footer.manifest_sha256.hex(),
                ferry_bundle::MANIFEST_PATH
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
