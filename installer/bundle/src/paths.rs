//! Paths, defined once: what a safe entry path is, what a safe host destination is, and
//! where each kind of content lives inside the payload.
//!
//! One function decides what a safe entry path is, and both the writer (refuses to create
//! a bad bundle) and the reader (refuses a hostile one) call it. Host destinations
//! (`files[].dest`) are a [`HostPath`]: parsed when bundle.json is read, so a destination
//! that could leave `--root` (`/etc/../../x`) never reaches the installer's file code.
//! The entry-path builders ([`blob_entry`], [`rootfs_entry`], [`app_entry`],
//! [`payload_entry`], [`payload_entry_for`]) are the only place the payload's directory scheme is spelled out.

use crate::digest::Sha256Digest;
use std::fmt;

/// Longest entry path accepted. Generous for real content, small enough to bound memory.
pub const MAX_PATH_LEN: usize = 1024;

/// The OCI layout's marker file.
pub const OCI_LAYOUT_PATH: &str = "oci/oci-layout";
/// The OCI layout's index: one descriptor per image (see [`crate::oci::LayoutIndex`]).
pub const OCI_INDEX_PATH: &str = "oci/index.json";
/// Directory of the OCI blobs, named by their sha256 hex.
pub const BLOBS_DIR: &str = "oci/blobs/sha256";

/// Why a path was refused. The caller adds which entry or destination it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty path")]
    Empty,
    #[error("path longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("absolute path")]
    Absolute,
    #[error("not an absolute path")]
    Relative,
    #[error("path contains NUL or backslash")]
    BadCharacter,
    #[error("path contains NUL")]
    Nul,
    #[error("empty path component (// or trailing /)")]
    EmptyComponent,
    #[error("'.' component")]
    DotComponent,
    #[error("'..' component escapes the target")]
    DotDotComponent,
    #[error("the root directory itself is not a file destination")]
    Root,
}

/// Checks each `/`-separated component of `rel` (no leading `/`): none empty, `.` or `..`.
fn check_components(rel: &str) -> Result<(), PathError> {
    for comp in rel.split('/') {
        match comp {
            "" => return Err(PathError::EmptyComponent),
            "." => return Err(PathError::DotComponent),
            ".." => return Err(PathError::DotDotComponent),
            _ => {}
        }
    }
    Ok(())
}

/// Checks that `path` is a relative, normalised, portable entry path: no leading `/`, no
/// `.`/`..`/empty components, no NUL, no backslash, no trailing slash.
pub fn check_entry_path(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute);
    }
    if path.contains('\0') || path.contains('\\') {
        return Err(PathError::BadCharacter);
    }
    check_components(path)
}

/// Longest host path accepted (Linux's `PATH_MAX`).
pub const MAX_HOST_PATH_LEN: usize = 4096;

/// An absolute, normalised path on the host (`/opt/demo/hello.sh`, `/etc/ferry/token`),
/// before `--root` maps it: no `.`, `..` or empty components, no NUL. Whatever a bundle
/// (`files[].dest`) or an install plan names, mapping it under `--root` by joining
/// [`HostPath::relative`] cannot leave the root. One type for both: the builder checks
/// COPY destinations with it, bundle.json's destinations are parsed into it when a bundle
/// opens, and the installer's engine plans every path it writes as one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPath(String);

/// A path that is not a [`HostPath`], and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path:?} is not a usable host path: {reason}")]
pub struct HostPathError {
    pub path: String,
    pub reason: PathError,
}

impl HostPath {
    /// Checks `p`; `/` itself is a host path (a directory), see [`HostPath::is_root`].
    pub fn new(p: impl Into<String>) -> Result<HostPath, HostPathError> {
        let path = p.into();
        match Self::check(&path) {
            Ok(()) => Ok(HostPath(path)),
            Err(reason) => Err(HostPathError { path, reason }),
        }
    }

    fn check(path: &str) -> Result<(), PathError> {
        if path.is_empty() {
            return Err(PathError::Empty);
        }
        if path.len() > MAX_HOST_PATH_LEN {
            return Err(PathError::TooLong);
        }
        let rel = path.strip_prefix('/').ok_or(PathError::Relative)?;
        if path.contains('\0') {
            return Err(PathError::Nul);
        }
        if rel.is_empty() {
            return Ok(());
        }
        check_components(rel)
    }

    /// The absolute path, `/opt/x`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Without the leading `/` (`opt/x`; empty for `/`): what to join onto `--root`.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// True for `/` itself, which is no file's destination.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The parent directory (`/` has none).
    pub fn parent(&self) -> Option<HostPath> {
        if self.is_root() {
            return None;
        }
        let i = self.0.rfind('/')?;
        Some(HostPath(if i == 0 {
            "/".into()
        } else {
            self.0[..i].into()
        }))
    }

    /// `self/name`; `name` must be one or more plain components.
    pub fn join(&self, name: &str) -> Result<HostPath, HostPathError> {
        HostPath::new(format!("{}/{name}", self.0.trim_end_matches('/')))
    }

    /// Whether `self` is `dir` or lies below it.
    pub fn starts_with(&self, dir: &HostPath) -> bool {
        self.0 == dir.0 || dir.is_root() || self.0.starts_with(&format!("{}/", dir.0))
    }
}

impl fmt::Display for HostPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for HostPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for HostPath {
    type Err = HostPathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostPath::new(s)
    }
}

impl TryFrom<String> for HostPath {
    type Error = HostPathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        HostPath::new(s)
    }
}

impl From<HostPath> for String {
    fn from(p: HostPath) -> String {
        p.0
    }
}

serde_as_string!(HostPath);

/// Entry path of an OCI blob: `oci/blobs/sha256/<hex>`.
pub fn blob_entry(d: &Sha256Digest) -> String {
    format!("{BLOBS_DIR}/{}", d.hex())
}

/// The digest an entry path names, if it is an OCI blob's entry.
pub fn blob_digest(entry: &str) -> Option<Sha256Digest> {
    entry
        .strip_prefix(BLOBS_DIR)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(Sha256Digest::from_hex)
}

/// Entry path of a `COPY` destined for `dest` on the host: `files/rootfs/<dest>`.
pub fn rootfs_entry(dest: &HostPath) -> String {
    format!("{}/rootfs/{}", crate::FILES_DIR, dest.relative())
}

/// Entry path of an application's file: `files/apps/<app>/<rel>` (`rel` without a
/// leading `/`, e.g. `chart.tgz`, `manifests/deploy.yaml`, `values-0.yaml`).
pub fn app_entry(app: &str, rel: &str) -> String {
    format!(
        "{}/apps/{app}/{}",
        crate::FILES_DIR,
        rel.trim_start_matches('/')
    )
}

/// Entry path of a payload's file: `files/payloads/<payload>/<role>` (see [`crate::roles`]).
/// The runtime of the bundle's own platform lives here.
pub fn payload_entry(payload: &str, role: &str) -> String {
    format!("{}/payloads/{payload}/{role}", crate::FILES_DIR)
}

/// Entry path of a payload's file for hosts of another `platform` (`linux/arm64`) than the
/// bundle's own, in a bundle for mixed clusters:
/// `files/payloads/<payload>@<os>-<arch>[-<variant>]/<role>`, e.g.
/// `files/payloads/containerd@linux-arm64/bin/containerd`. Never equal to
/// [`payload_entry`] (payload names have no `@`), nor to another platform's.
pub fn payload_entry_for(payload: &str, platform: &str, role: &str) -> String {
    format!(
        "{}/payloads/{payload}@{}/{role}",
        crate::FILES_DIR,
        platform.replace('/', "-")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_paths() {
        assert!(check_entry_path("oci/blobs/sha256/abc").is_ok());
        assert!(check_entry_path("files/a b/c.tar.zst").is_ok());
        assert!(check_entry_path("..hidden").is_ok());
    }

    #[test]
    fn refuses_escapes() {
        for (p, why) in [
            ("", PathError::Empty),
            ("/etc/passwd", PathError::Absolute),
            ("../x", PathError::DotDotComponent),
            ("a/../../x", PathError::DotDotComponent),
            ("a//b", PathError::EmptyComponent),
            ("a/./b", PathError::DotComponent),
            ("a/", PathError::EmptyComponent),
            ("a\\..\\b", PathError::BadCharacter),
            ("a\0b", PathError::BadCharacter),
        ] {
            assert_eq!(check_entry_path(p), Err(why), "{p:?}");
        }
    }

    #[test]
    fn host_paths_are_absolute_and_cannot_climb() {
        let p = HostPath::new("/opt/demo/hello.sh").unwrap();
        assert_eq!(p.relative(), "opt/demo/hello.sh");
        assert_eq!(p.to_string(), "/opt/demo/hello.sh");
        for (bad, why) in [
            ("/etc/../../x", PathError::DotDotComponent),
            ("/..", PathError::DotDotComponent),
            ("/a/./b", PathError::DotComponent),
            ("/a//b", PathError::EmptyComponent),
            ("/a/", PathError::EmptyComponent),
            ("relative/x", PathError::Relative),
            ("etc", PathError::Relative),
            ("", PathError::Empty),
            ("/a\0b", PathError::Nul),
        ] {
            assert_eq!(
                HostPath::new(bad).map_err(|e| e.reason),
                Err(why),
                "{bad:?}"
            );
        }
        let e = HostPath::new("/a/../b").unwrap_err().to_string();
        assert!(e.contains("\"/a/../b\"") && e.contains("'..'"), "{e}");
        let root = HostPath::new("/").unwrap();
        assert!(root.is_root() && root.parent().is_none());
        assert_eq!(p.parent().unwrap().as_str(), "/opt/demo");
        assert_eq!(HostPath::new("/etc").unwrap().parent(), Some(root.clone()));
        assert_eq!(root.join("etc").unwrap().as_str(), "/etc");
        assert!(root.join("../x").is_err());
        let etc = HostPath::new("/etc").unwrap();
        assert!(HostPath::new("/etc/x").unwrap().starts_with(&etc));
        assert!(!HostPath::new("/etcx").unwrap().starts_with(&etc));
        assert!(etc.starts_with(&root));
    }

    #[test]
    fn host_path_serde_validates() {
        let p: HostPath = serde_json::from_str("\"/opt/x\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"/opt/x\"");
        let e = serde_json::from_str::<HostPath>("\"/opt/../x\"").unwrap_err();
        assert!(e.to_string().contains("'..'"), "{e}");
    }

    #[test]
    fn entry_paths_are_built_in_one_place() {
        let d = Sha256Digest::of(b"x");
        assert_eq!(blob_entry(&d), format!("oci/blobs/sha256/{}", d.hex()));
        assert_eq!(blob_digest(&blob_entry(&d)), Some(d));
        assert_eq!(blob_digest("oci/blobs/sha256/zz"), None);
        assert_eq!(blob_digest("files/x"), None);
        let dest = HostPath::new("/opt/a.sh").unwrap();
        assert_eq!(rootfs_entry(&dest), "files/rootfs/opt/a.sh");
        assert_eq!(app_entry("web", "chart.tgz"), "files/apps/web/chart.tgz");
        assert_eq!(
            payload_entry("containerd", crate::roles::CONTAINERD),
            "files/payloads/containerd/bin/containerd"
        );
        let arm = payload_entry_for("containerd", "linux/arm64", crate::roles::CONTAINERD);
        assert_eq!(arm, "files/payloads/containerd@linux-arm64/bin/containerd");
        assert!(check_entry_path(&arm).is_ok());
        assert_ne!(
            payload_entry_for("k3s", "linux/arm64/v8", "k3s"),
            payload_entry_for("k3s", "linux/arm64", "k3s")
        );
    }
}
