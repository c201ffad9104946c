//! Finds the bundle to work on: `--bundle FILE` if given, else this very program
//! (`/proc/self/exe`), which is the bundle when run as `./delivery.run`.

use anyhow::{Context, Result};
use ferry_bundle::{Bundle, BundleError};
use std::path::{Path, PathBuf};

pub fn bundle_path(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}

pub fn open(explicit: Option<&Path>) -> Result<Bundle> {
    let path = bundle_path(explicit);
    match Bundle::open(&path) {
        Err(BundleError::NoFooter { .. }) if explicit.is_none() => anyhow::bail!(
            "this installer carries no bundle (it is the bare ferry-installer); pass --bundle <delivery.run>"
        ),
        other => other.with_context(|| format!("opening bundle {}", path.display())),
    }
}
