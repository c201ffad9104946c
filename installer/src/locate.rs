//! Finds the bundle to work on: `--bundle FILE` if given, else this very program, which is
//! the bundle when run as `./delivery.run`. It is opened through `/proc/self/exe` (the
//! file we were started from, even if renamed since) but named by its real path in every
//! message, so an operator reads `/media/usb/delivery.run`, not `/proc/self/exe`.

use anyhow::{Context, Result};
use ferry_bundle::{Bundle, BundleError};
use std::path::{Path, PathBuf};

/// The bundle's path as the operator knows it.
pub fn bundle_path(explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .ok()
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("/proc/self/exe")),
    }
}

pub fn open(explicit: Option<&Path>) -> Result<Bundle> {
    let shown = bundle_path(explicit);
    let path = explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
    match Bundle::open(&path) {
        Ok(mut b) => {
            b.path = shown;
            Ok(b)
        }
        Err(BundleError::NoFooter { .. }) if explicit.is_none() => anyhow::bail!(
            "{} carries no bundle (it is the bare ferry-installer, or a copy cut short before its payload); \
             pass --bundle <delivery.run>, or copy the bundle again and compare it with its .sha256 file",
            shown.display()
        ),
        Err(e) => Err(e).with_context(|| format!("opening bundle {}", shown.display())),
    }
}
