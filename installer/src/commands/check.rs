//! `--check`: verify every byte of the bundle; exit 0 only if all of it matches.

use anyhow::Result;
use ferry_console::{outln, OutputFormat};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

pub fn run(bundle: Option<&Path>, output: OutputFormat, quiet: bool) -> Result<ExitCode> {
    let path = crate::locate::bundle_path(bundle);
    let started = Instant::now();
    let result = crate::locate::open(bundle).and_then(|b| {
        let bar = ferry_console::bytes_bar(b.file_len, "checking", quiet);
        let r = ferry_bundle::verify::check(&b, &|n| bar.set_position(n));
        bar.finish_and_clear();
        r.map_err(anyhow::Error::from)
    });
    let secs = started.elapsed().as_secs_f64();
    match (&result, output) {
        (Ok(r), OutputFormat::Json) => outln!(
            "{}",
            serde_json::json!({"ok": true, "file": path, "entries": r.entries, "bytes": r.bytes, "seconds": secs})
        )?,
        (Err(e), OutputFormat::Json) => outln!(
            "{}",
            serde_json::json!({"ok": false, "file": path, "error": format!("{e:#}")})
        )?,
        (Ok(r), OutputFormat::Text) => {
            if !quiet {
                outln!(
                    "OK: {} entries, {} bytes verified in {:.2}s ({:.0} MB/s)",
                    r.entries,
                    r.bytes,
                    secs,
                    r.bytes as f64 / secs.max(1e-9) / 1e6
                )?;
            }
        }
        (Err(e), OutputFormat::Text) => eprintln!("check FAILED: {e:#}"),
    }
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
