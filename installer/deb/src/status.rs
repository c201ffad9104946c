//! dpkg's status database (`<root>/var/lib/dpkg/status`): which packages a host has, at
//! which version. Read, never written: dpkg itself changes it.

use crate::control::Paragraphs;
use crate::version::Version;
use std::collections::BTreeMap;
use std::path::Path;

/// A package as dpkg's database records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub version: Option<Version>,
    pub architecture: String,
    /// The `Status` field's three words, e.g. `install ok installed`.
    pub status: String,
}

impl Installed {
    /// Unpacked and configured: what `dpkg -s` calls installed.
    pub fn is_installed(&self) -> bool {
        self.status.ends_with(" installed")
    }
}

/// Every package in the database, keyed by name (and `name:arch` for foreign ones).
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub packages: BTreeMap<String, Installed>,
}

impl Status {
    /// Reads the status file under `root`; a missing file is an error naming it.
    pub fn read(root: &Path) -> std::io::Result<Status> {
        let path = root.join("var/lib/dpkg/status");
        let f = std::fs::File::open(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Self::parse(std::io::BufReader::new(f), None)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }

    /// Parses a status stream; `native` (the host's architecture) keys foreign packages
    /// as `name:arch`.
    pub fn parse(r: impl std::io::BufRead, native: Option<&str>) -> std::io::Result<Status> {
        let mut packages = BTreeMap::new();
        for p in Paragraphs::new(r) {
            let p = p?;
            let Some(name) = p.get("Package") else {
                continue;
            };
            let architecture = p.get("Architecture").unwrap_or("").to_string();
            let key = match native {
                Some(n)
                    if architecture != n && architecture != "all" && !architecture.is_empty() =>
                {
                    format!("{name}:{architecture}")
                }
                _ => name.to_string(),
            };
            packages.insert(
                key,
                Installed {
                    version: p.get("Version").and_then(|v| Version::parse(v).ok()),
                    architecture,
                    status: p.get("Status").unwrap_or("").to_string(),
                },
            );
        }
        Ok(Status { packages })
    }

    /// The package if dpkg considers it installed.
    pub fn installed(&self, name: &str) -> Option<&Installed> {
        self.packages.get(name).filter(|i| i.is_installed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_installed_and_half_installed() {
        let text = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\n\n\
                    Package: nfs-common\nStatus: install reinstreq half-configured\nArchitecture: amd64\nVersion: 1:2.6.2-4\n\n\
                    Package: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36-9\n";
        let s = Status::parse(text.as_bytes(), Some("amd64")).unwrap();
        assert!(s.installed("libc6").is_some());
        assert!(s.installed("libc6:i386").is_some());
        assert!(s.installed("nfs-common").is_none());
        assert_eq!(
            s.packages["nfs-common"].version.as_ref().unwrap().as_str(),
            "1:2.6.2-4"
        );
        let d = tempfile::tempdir().unwrap();
        let e = Status::read(d.path()).unwrap_err().to_string();
        assert!(e.contains("var/lib/dpkg/status"), "{e}");
    }
}
