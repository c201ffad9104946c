//! What a build leaves next to the bundle, and what it never leaves.
//!
//! - `<bundle>.sha256`, in `sha256sum` format, so the copy that reaches a site can be
//!   checked with standard tools (`sha256sum -c delivery.run.sha256`) before anything else.
//! - With several `--platform`s, one bundle per platform beside `-o`, named by its
//!   architecture: `delivery-amd64.run`, `delivery-arm64.run` ([`bundle_paths`]); with
//!   one, the bundle is `-o` itself.
//! - Temporary files (compressed copies, unpacked payloads, a decompressed airgap
//!   tarball) live in one scratch directory, `<bundle>.ferry-tmp/`, removed when the build
//!   ends — also when it is interrupted: Ctrl-C (or SIGTERM) removes the scratch directory
//!   and the half-written `<bundle>.partial`, instead of leaving hundreds of MB behind.

use anyhow::{Context, Result};
use ferry_bundle::digest::hash_reader;
use ferry_bundle::oci::Platform;
use ferry_bundle::Sha256Digest;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Two of `--platform`'s platforms would write the same file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--platform lists {first} and {second}, whose bundles would both be {path}: give each architecture once")]
pub struct SamePath {
    pub first: String,
    pub second: String,
    pub path: PathBuf,
}

/// The bundle for `platform` when a build writes one per platform:
/// `<stem>-<arch>[-<variant>]<.ext>` beside `out` (`delivery.run` → `delivery-arm64.run`).
pub fn platform_path(out: &Path, platform: &Platform) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "delivery".into());
    let ext = out
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let arch = match &platform.variant {
        Some(v) => format!("{}-{v}", platform.architecture),
        None => platform.architecture.clone(),
    };
    out.with_file_name(format!("{stem}-{arch}{ext}"))
}

/// Where each platform's bundle goes, in order: `out` itself for one platform,
/// [`platform_path`] for each of several.
pub fn bundle_paths(out: &Path, platforms: &[Platform]) -> Result<Vec<PathBuf>, SamePath> {
    if platforms.len() <= 1 {
        return Ok(vec![out.to_path_buf()]);
    }
    let paths: Vec<PathBuf> = platforms.iter().map(|p| platform_path(out, p)).collect();
    for (i, p) in paths.iter().enumerate() {
        if let Some(j) = paths[..i].iter().position(|q| q == p) {
            return Err(SamePath {
                first: platforms[j].to_string(),
                second: platforms[i].to_string(),
                path: p.clone(),
            });
        }
    }
    Ok(paths)
}

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
    fn several_platforms_name_one_bundle_each_beside_the_output() {
        let ps: Vec<Platform> = ["linux/amd64", "linux/arm64"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let out = Path::new("out/delivery.run");
        assert_eq!(bundle_paths(out, &ps[..1]).unwrap(), [out]);
        assert_eq!(
            bundle_paths(out, &ps).unwrap(),
            [
                Path::new("out/delivery-amd64.run"),
                Path::new("out/delivery-arm64.run")
            ]
        );
        assert_eq!(
            platform_path(Path::new("edge"), &"linux/arm/v7".parse().unwrap()),
            Path::new("edge-arm-v7")
        );
        assert_eq!(
            platform_path(Path::new("/x/edge.v2.run"), &ps[1]),
            Path::new("/x/edge.v2-arm64.run")
        );
        let twice = [ps[1].clone(), "linux/arm64".parse().unwrap()];
        let e = bundle_paths(out, &twice).unwrap_err().to_string();
        assert!(
            e.contains("delivery-arm64.run") && e.contains("--platform"),
            "{e}"
        );
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
