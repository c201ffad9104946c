//! `ferry key generate -o <prefix>`.

use crate::cli::OutputFormat;
use anyhow::Result;
use ferry_console::{outln, print_json};
use std::path::Path;

pub fn generate(prefix: &Path, output: OutputFormat) -> Result<()> {
    let g = crate::sign::generate(prefix)?;
    let fp = g.key.fingerprint().to_string();
    match output {
        OutputFormat::Json => print_json(&serde_json::json!({
            "private_key": g.private, "public_key": g.public, "fingerprint": fp,
        }))?,
        OutputFormat::Text => outln!(
            "wrote {} (secret: keep it, sign with `ferry build --sign {0}`) and {} (for the sites: \
             `delivery.run --trust-key {1}`, or copy it into /etc/ferry/trust/)\nfingerprint: {fp}",
            g.private.display(),
            g.public.display()
        )?,
    }
    Ok(())
}
