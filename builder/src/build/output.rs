//! What a build leaves next to the bundle, and what it never leaves.
//!
//! - `<bundle>.sha256`, in `sha256sum` format, so the copy that reaches a site can be
//!   checked with standard tools (`sha256sum -c delivery.run.sha256`) before anything else.
//! - Temporary files (compressed copies, unpacked payloads, a decompressed airgap
//!   tarball) live in one scratch directory, `<bundle>.ferry-tmp/`, removed when the build
//!   ends — also when it is interrupted: Ctrl-C (or SIGTERM) removes the scratch directory
//!   and the half-written `<bundle>.partial`, instead of leaving hundreds of MB behind.

use anyhow::{Context, Result};
use ferry_bundle::digest::hash_reader;
use ferry_bundle::Sha256Digest;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Paths removed if the build is interrupted.
static ON_INTERRUPT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes `paths` (files or directories) when the process gets SIGINT or SIGTERM, then
/// exits with 130. The handler runs on its own thread (the `ctrlc` crate), so it may
/// allocate and remove directories.
pub fn clean_up_on_interrupt(paths: &[PathBuf]) {
    ON_INTERRUPT
        .lock()
        .expect("interrupt list")
        .extend(paths.iter().cloned());
    // Only the first call installs the handler; later ones only add paths.
    let _ = ctrlc::set_handler(|| {
        let paths = ON_INTERRUPT.lock().map(|v| v.clone()).unwrap_or_default();
        for p in &paths {
            let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir_all(p));
        }
        eprintln!("\ninterrupted: removed the partial bundle and temporary files");
        std::process::exit(130);
    });
}

/// The build's scratch directory, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    /// `<out>.ferry-tmp/`, created empty.
    pub fn create(out: &Path) -> Result<Scratch> {
        let mut s = out.as_os_str().to_owned();
        s.push(".ferry-tmp");
        let dir = PathBuf::from(s);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `<out>.sha256` (`<hex>  <file name>`, one line per part of a split bundle) and
/// returns the digest of `out` itself (part 1).
pub fn write_checksum(out: &Path, parts: &[PathBuf]) -> Result<(Sha256Digest, PathBuf)> {
    let one = [out.to_path_buf()];
    let files = if parts.len() > 1 { parts } else { &one[..] };
    let mut text = String::new();
    let mut first = None;
    for f in files {
        let file = std::fs::File::open(f).with_context(|| format!("reading {}", f.display()))?;
        let (digest, _) = hash_reader(file).with_context(|| format!("reading {}", f.display()))?;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        text.push_str(&format!("{}  {name}\n", digest.hex()));
        first.get_or_insert(digest);
    }
    let mut p = out.as_os_str().to_owned();
    p.push(".sha256");
    let sum = PathBuf::from(p);
    std::fs::write(&sum, text).with_context(|| format!("writing {}", sum.display()))?;
    Ok((first.expect("at least one file"), sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_file_is_what_sha256sum_checks() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("delivery.run");
        std::fs::write(&out, b"abc").unwrap();
        let (digest, sum) = write_checksum(&out, &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&sum).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  delivery.run\n"
        );
        assert_eq!(digest, Sha256Digest::of(b"abc"));
        let st = std::process::Command::new("sha256sum")
            .arg("-c")
            .arg(&sum)
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(st.status.success());
    }

    #[test]
    fn scratch_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let s = Scratch::create(&d.path().join("x.run")).unwrap();
        let p = s.path().to_path_buf();
        std::fs::write(p.join("t"), "x").unwrap();
        drop(s);
        assert!(!p.exists());
    }
}
