//! The real Debian archive and a real Debian root for the package tests.
//!
//! - [`mirror`]: the archive URL this machine's apt uses (read from its apt sources at
//!   run time: no archive host is written in this repository).
//! - [`minbase_root`]: a fresh copy of a `debootstrap --variant=minbase <suite>` root,
//!   the "host" packages are installed into with `--root`. debootstrap runs once per
//!   machine and suite/arch: the finished root is kept under
//!   `~/.cache/ferry-tests/debootstrap/<suite>-<arch>-minbase` (`$FERRY_TEST_CACHE`
//!   overrides `~/.cache/ferry-tests`) and each test gets its own copy.
//! - [`cache_dir`]: a content cache shared by the tests, so indexes and `.deb`s are
//!   downloaded once per machine too.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `~/.cache/ferry-tests` (or `$FERRY_TEST_CACHE`).
pub fn test_cache() -> PathBuf {
    if let Some(d) = std::env::var_os("FERRY_TEST_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/ferry-tests")
}

/// The builder content cache the package tests share.
pub fn cache_dir() -> PathBuf {
    test_cache().join("content")
}

/// The URL of the Debian archive this machine's apt sources name for `suite`.
pub fn mirror(suite: &str) -> String {
    let sources = ferry_builder::packages::sources::read(Path::new("/etc/apt"));
    sources
        .iter()
        .find(|s| s.suite == suite && s.url.starts_with("http"))
        .map(|s| s.url.clone())
        .unwrap_or_else(|| {
            panic!("no apt source for {suite} on this machine (/etc/apt/sources.list[.d]): the package tests need the Debian archive: {sources:#?}")
        })
}

/// The host's dpkg architecture.
pub fn dpkg_arch() -> String {
    let out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .expect("dpkg is needed (Debian host)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fresh copy of a minbase root of `suite` at `dest` (which must not exist).
pub fn minbase_root(suite: &str, dest: &Path) {
    let arch = dpkg_arch();
    let dir = test_cache().join("debootstrap");
    std::fs::create_dir_all(&dir).unwrap();
    let pristine = dir.join(format!("{suite}-{arch}-minbase"));
    {
        // One debootstrap per machine, even with tests running in parallel.
        let lock = std::fs::File::create(dir.join(".lock")).unwrap();
        lock.lock().unwrap();
        if !pristine.join(".ferry-complete").exists() {
            crate::registry::require_tool("debootstrap", "apt-get install debootstrap").unwrap();
            let tmp = dir.join(format!(".{suite}-{arch}-minbase.tmp"));
            let _ = std::fs::remove_dir_all(&tmp);
            let _ = std::fs::remove_dir_all(&pristine);
            let started = std::time::Instant::now();
            let out = Command::new("debootstrap")
                .args(["--variant=minbase", &format!("--arch={arch}"), suite])
                .arg(&tmp)
                .arg(mirror(suite))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "debootstrap failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!(
                "debootstrap {suite} {arch} minbase: {:.0}s (cached in {})",
                started.elapsed().as_secs_f64(),
                pristine.display()
            );
            std::fs::write(tmp.join(".ferry-complete"), "").unwrap();
            std::fs::rename(&tmp, &pristine).unwrap();
        }
    }
    let out = Command::new("cp")
        .arg("-a")
        .arg(&pristine)
        .arg(dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cp -a {} {}: {}",
        pristine.display(),
        dest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // A root, not a booted host: maintainer scripts must not start daemons here
    // (policy-rc.d is how Debian's chroots and container images say so).
    let policy = dest.join("usr/sbin/policy-rc.d");
    std::fs::write(&policy, "#!/bin/sh\nexit 101\n").unwrap();
    std::fs::set_permissions(&policy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// What `dpkg --root <root> -s <package>` says its status is (`None`: not known).
pub fn dpkg_status(root: &Path, package: &str) -> Option<String> {
    let out = Command::new("dpkg")
        .arg("--root")
        .arg(root)
        .args(["-s", package])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Status: ").map(str::to_string))
}
