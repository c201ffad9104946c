//! Finds the installer stub that goes in front of the payload.
//!
//! Order: `--installer FILE`, `$FERRY_INSTALLER`, then `ferry-installer` next to the
//! running `ferry` (where `scripts/build.sh` and a release archive put it). The stub must
//! already be stripped: `strip` after appending would cut the payload off.

use std::path::{Path, PathBuf};

pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return check(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("FERRY_INSTALLER") {
        return check(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let beside = exe.with_file_name("ferry-installer");
    check(beside)
        .map_err(|e| format!("{e}; build it with scripts/build.sh or pass --installer <file>"))
}

fn check(p: PathBuf) -> Result<PathBuf, String> {
    let mut magic = [0u8; 4];
    let f = std::fs::File::open(&p).map_err(|e| format!("installer stub {}: {e}", p.display()))?;
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut magic, 0)
        .map_err(|e| format!("installer stub {}: {e}", p.display()))?;
    if &magic != b"\x7fELF" {
        return Err(format!(
            "installer stub {} is not an ELF executable",
            p.display()
        ));
    }
    Ok(p)
}
