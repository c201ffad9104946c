//! Finds the bundle to work on: `--bundle FILE` if given, else this very program, which is
//! the bundle when run as `./delivery.run`. It is opened through `/proc/self/exe` (the
//! file we were started from, even if renamed since) but named by its real path in every
//! message, so an operator reads `/media/usb/delivery.run`, not `/proc/self/exe`. That
//! real path is also where the other parts of a split bundle are looked for.

use anyhow::{Context, Result};
use ferry_bundle::{Bundle, BundleError};
use std::path::{Path, PathBuf};

/// The size marker the builder fills in with the size of the file it is in — the complete
/// bundle, or part 1 of a split one (`ferry_bundle::marker`): how a copy cut short knows
/// what it is missing.
#[used]
#[no_mangle]
pub static FERRY_BUNDLE_SIZE_MARKER: [u8; ferry_bundle::marker::MARKER_LEN] =
    ferry_bundle::marker::BLANK;

/// A copy whose size differs from the one its stub records: named, with both sizes.
fn wrong_size(path: &Path, shown: &Path) -> Option<anyhow::Error> {
    let f = std::fs::File::open(path).ok()?;
    let want = ferry_bundle::marker::expected_size(&f)?;
    let have = f.metadata().ok()?.len();
    let name = shown
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let check =
        format!("copy it again, and compare it with {name}.sha256 (`sha256sum -c {name}.sha256`)");
    if have < want {
        Some(anyhow::anyhow!(
            "{} is cut short: it has {have} of the bundle's {want} bytes ({} missing); {check}",
            shown.display(),
            want - have
        ))
    } else if have > want {
        Some(anyhow::anyhow!(
            "{} has {} bytes more than the bundle's {want}; something was appended to it — {check}",
            shown.display(),
            have - want
        ))
    } else {
        None
    }
}

/// True if the file at `path` has exactly the size its stub's marker records (and so is
/// whole, even without a footer at its end).
fn complete_first_part(path: &Path) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let have = f.metadata().map(|m| m.len()).ok();
    ferry_bundle::marker::expected_size(&f).is_some_and(|want| Some(want) == have)
}

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
    match Bundle::open_named(&path, &shown) {
        Ok(mut b) => {
            b.path = shown;
            Ok(b)
        }
        Err(BundleError::NoFooter { .. } | BundleError::BadFooter { .. })
            if wrong_size(&path, &shown).is_some() =>
        {
            Err(wrong_size(&path, &shown).expect("checked"))
        }
        // Complete by its own marker, yet no footer: part 1 of a split bundle, alone.
        Err(BundleError::NoFooter { .. }) if complete_first_part(&path) => anyhow::bail!(
            "{} is the first part of a split bundle, complete, but its other parts are not beside it: \
             copy {}, … (every part) into {} and run it again",
            shown.display(),
            ferry_bundle::parts::part_path(&shown, 2).display(),
            shown
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| ".".into())
        ),
        Err(BundleError::NoFooter { .. }) if explicit.is_none() => anyhow::bail!(
            "{} carries no bundle (it is the bare ferry-installer, or a copy cut short before its payload); \
             pass --bundle <delivery.run>, or copy the bundle again and compare it with its .sha256 file",
            shown.display()
        ),
        Err(e) => Err(e).with_context(|| format!("opening bundle {}", shown.display())),
    }
}
