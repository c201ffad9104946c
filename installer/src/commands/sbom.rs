//! `--sbom`: print the bundle's SBOM (SPDX 2.3 JSON, written by the builder), checked
//! against its sha256 in bundle.json while it streams out.

use anyhow::{bail, Result};
use std::path::Path;
use std::process::ExitCode;

pub fn run(bundle: Option<&Path>) -> Result<ExitCode> {
    let b = crate::locate::open(bundle)?;
    let Some(entry) = b.manifest.sbom.as_deref().and_then(|p| b.entry(p)) else {
        if b.is_delta() && b.manifest.sbom.is_some() {
            bail!(
                "{}: this delta inherits its SBOM from its base bundle; run --sbom on the installed \
                 (staged) bundle after the upgrade, or on the complete bundle",
                b.path.display()
            );
        }
        bail!(
            "{} carries no SBOM (it was built by a ferry older than format 2); rebuild it with a current ferry",
            b.path.display()
        );
    };
    let mut r = crate::engine::source::VerifyingReader::new(
        b.open_entry(entry),
        entry.path.clone(),
        entry.size,
        entry.sha256,
    );
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut r, &mut out)?;
    Ok(ExitCode::SUCCESS)
}
