//! `--list`: every payload entry with size, offset and sha256 (from bundle.json), and
//! bundle.json itself last (from the footer) — the same rows in text and JSON.

use anyhow::Result;
use ferry_console::{outln, OutputFormat};
use std::path::Path;
use std::process::ExitCode;

pub fn run(bundle: Option<&Path>, output: OutputFormat) -> Result<ExitCode> {
    let b = crate::locate::open(bundle)?;
    match output {
        OutputFormat::Json => {
            let mut rows: Vec<serde_json::Value> = b
                .manifest
                .entries
                .iter()
                .map(|e| serde_json::to_value(e).expect("entries serialise"))
                .collect();
            rows.push(serde_json::json!({
                "path": ferry_bundle::MANIFEST_PATH,
                "size": b.footer.manifest_len,
                "sha256": b.footer.manifest_sha256.hex(),
                "offset": b.footer.manifest_offset,
                "mode": 0o644,
            }));
            ferry_console::print_json(&rows)?
        }
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
                    e.sha256.hex(),
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
