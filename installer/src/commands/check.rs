//! `--check`: verify every byte of the bundle (every part of a split one) and its
//! signature; exit 0 only if all of it matches and the host's trust policy accepts the
//! signer.

use crate::cli::Cli;
use anyhow::Result;
use ferry_console::{outln, OutputFormat};
use std::process::ExitCode;
use std::time::Instant;

pub fn run(cli: &Cli) -> Result<ExitCode> {
    let (output, quiet) = (cli.output, cli.quiet);
    let path = crate::locate::bundle_path(cli.bundle.as_deref());
    let started = Instant::now();
    let mut signature = serde_json::Value::Null;
    let mut parts = 1;
    let result = crate::locate::open(cli.bundle.as_deref()).and_then(|b| {
        parts = b.file.parts().len();
        let admitted = super::trust::admit(cli, &b);
        signature = super::trust::json(&admitted, &b);
        let admitted = admitted?;
        if !quiet && output == OutputFormat::Text {
            eprintln!("{}", super::trust::describe(&admitted));
        }
        let bar = ferry_console::bytes_bar(b.file_len, "checking", quiet);
        let r = ferry_bundle::verify::check(&b, &|n| bar.set_position(n));
        bar.finish_and_clear();
        r.map_err(anyhow::Error::from)
    });
    let secs = started.elapsed().as_secs_f64();
    match (&result, output) {
        (Ok(r), OutputFormat::Json) => outln!(
            "{}",
            serde_json::json!({"ok": true, "file": path, "parts": parts, "entries": r.entries,
                "bytes": r.bytes, "seconds": secs, "signature": signature})
        )?,
        (Err(e), OutputFormat::Json) => outln!(
            "{}",
            serde_json::json!({"ok": false, "file": path, "error": format!("{e:#}"), "signature": signature})
        )?,
        (Ok(r), OutputFormat::Text) => {
            if !quiet {
                let parts = if parts > 1 {
                    format!(" in {parts} parts")
                } else {
                    String::new()
                };
                outln!(
                    "OK: {} entries, {} bytes{parts} verified in {:.2}s ({:.0} MB/s)",
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
