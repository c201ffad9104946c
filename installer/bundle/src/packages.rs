//! OS packages a bundle carries (`PACKAGE deb`), as recorded in `bundle.json`.
//!
//! Kept apart from the rest of the manifest: the builder resolves the closure, the
//! installer installs it, and both read these records alone. The `.deb`s are stored as
//! they came from the archive (already compressed; their SHA256 is the archive's), under
//! `files/packages/`.

use crate::digest::{hex_serde, Sha256Digest};
use serde::{Deserialize, Serialize};

/// Directory of the carried `.deb` files inside the payload.
pub const PACKAGES_DIR: &str = "files/packages";

/// The release every carried package was resolved for; the installer refuses a host of
/// another one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OsRecord {
    /// `debian` or `ubuntu` (as `ID` in `/etc/os-release`).
    pub distribution: String,
    /// The suite's codename, e.g. `bookworm` (as `VERSION_CODENAME`).
    pub release: String,
    /// dpkg architecture, e.g. `amd64`.
    pub architecture: String,
}

/// One carried `.deb`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackageRecord {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Entry path of the `.deb` (`files/packages/<name>_<version>_<arch>.deb`).
    pub entry: String,
    pub size: u64,
    /// sha256 of the `.deb`, as the repository's signed index lists it (bare hex on disk,
    /// like the entries').
    #[serde(with = "hex_serde")]
    pub sha256: Sha256Digest,
    /// Install group: packages of one group are installed by one `dpkg -i` (a dependency
    /// cycle); every dependency of a group is in an earlier one. Records are in group order.
    #[serde(default)]
    pub group: u32,
    /// Carried packages this one depends on.
    #[serde(default)]
    pub depends: Vec<String>,
    /// Why it is carried (`PACKAGE deb (Kubefile:5)`, `nfs-common Depends: libtirpc3`).
    #[serde(default)]
    pub why: Vec<String>,
}

/// The entry name of a `.deb`, like the archive's own file names (`:` of an epoch as `%3a`).
pub fn deb_entry(name: &str, version: &str, architecture: &str) -> String {
    format!(
        "{PACKAGES_DIR}/{name}_{}_{architecture}.deb",
        version.replace(':', "%3a")
    )
}
