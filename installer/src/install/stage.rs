//! verify + stage: one sequential read of the bundle that both checks every byte and
//! writes the copy the registry will serve from. The copy is written as `.partial` and
//! renamed only after the check passed, so a staged bundle is always a verified one.

use crate::host::Host;
use anyhow::{Context, Result};
use ferry_bundle::Bundle;
use std::io::BufWriter;
use std::os::unix::fs::PermissionsExt;

/// True if `host` already has a staged copy of exactly this bundle (same footer).
pub fn already_staged(host: &Host, bundle: &Bundle) -> bool {
    match Bundle::open(&host.path(&host.staged_bundle())) {
        Ok(s) => s.footer == bundle.footer && s.file_len == bundle.file_len,
        Err(_) => false,
    }
}

pub fn verify_and_stage(host: &Host, bundle: &Bundle, quiet: bool) -> Result<()> {
    let dest = host.path(&host.staged_bundle());
    let partial = dest.with_extension("run.partial");
    std::fs::create_dir_all(dest.parent().unwrap())?;
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut w = BufWriter::with_capacity(4 << 20, file);
    let bar = ferry_console::bytes_bar(bundle.file_len, "verifying", quiet);
    let res = ferry_bundle::verify::check_and_copy(bundle, &|n| bar.set_position(n), Some(&mut w));
    bar.finish_and_clear();
    let res = res.map_err(anyhow::Error::from).and_then(|_| {
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o755))?;
        f.sync_all()?;
        std::fs::rename(&partial, &dest)?;
        Ok(())
    });
    if res.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    res.with_context(|| {
        format!(
            "verifying {} and staging it to {}",
            bundle.path.display(),
            dest.display()
        )
    })
}
