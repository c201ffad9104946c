//! The packages of a target's repositories, as the resolver needs them.
//!
//! A `Packages` index is read as a stream of paragraphs (see `ferry_deb::control`) and
//! only the fields that resolution, download and the bundle need are kept: a bookworm
//! `main` index is 50 MB of text for ~64,000 packages, of which this keeps a few
//! megabytes. Relationship fields are kept as text and parsed when the resolver first
//! looks at a package: most packages are never looked at.

use ferry_deb::{parse_provides, Paragraph, Paragraphs, Version};
use std::collections::HashMap;
use std::io::BufRead;

/// One binary package of one repository.
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: Version,
    pub architecture: String,
    pub depends: Option<String>,
    pub pre_depends: Option<String>,
    /// Virtual packages this one provides, with the version it provides (if any).
    pub provides: Vec<(String, Option<Version>)>,
    pub essential: bool,
    pub priority: String,
    /// Path of the `.deb` below the repository URL (`pool/main/…`).
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// Which repository (index into the resolver's repository list).
    pub repo: usize,
}

impl Package {
    /// In every installation of the release: `Essential: yes` or `Priority: required`.
    pub fn in_base(&self) -> bool {
        self.essential || self.priority == "required"
    }
    pub fn id(&self) -> String {
        format!("{} {} ({})", self.name, self.version, self.architecture)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{index}: {source}")]
    Read {
        index: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{index}, paragraph at line {line} (package {package}): {reason}")]
    Field {
        index: String,
        line: usize,
        package: String,
        reason: String,
    },
}

/// Every package of the target's architecture (and `all`) in the repositories read.
#[derive(Debug, Default)]
pub struct Index {
    pub packages: Vec<Package>,
    by_name: HashMap<String, Vec<usize>>,
    /// Virtual name → (providing package, provided version).
    providers: HashMap<String, Vec<(usize, Option<Version>)>>,
}

impl Index {
    /// Reads one `Packages` stream of repository `repo`; `what` names it in errors.
    pub fn add_stream(
        &mut self,
        r: impl BufRead,
        arch: &str,
        repo: usize,
        what: &str,
    ) -> Result<usize, IndexError> {
        let mut n = 0;
        for p in Paragraphs::new(r) {
            let p = p.map_err(|source| IndexError::Read {
                index: what.to_string(),
                source,
            })?;
            if let Some(pkg) = package(&p, arch, repo, what)? {
                self.add(pkg);
                n += 1;
            }
        }
        Ok(n)
    }

    pub fn add(&mut self, pkg: Package) {
        let i = self.packages.len();
        for (virt, v) in &pkg.provides {
            self.providers
                .entry(virt.clone())
                .or_default()
                .push((i, v.clone()));
        }
        self.by_name.entry(pkg.name.clone()).or_default().push(i);
        self.packages.push(pkg);
    }

    /// Every version of `name`, newest first.
    pub fn versions(&self, name: &str) -> Vec<usize> {
        let mut v = self.by_name.get(name).cloned().unwrap_or_default();
        v.sort_by(|a, b| self.packages[*b].version.cmp(&self.packages[*a].version));
        v
    }

    /// Packages providing the virtual package `name`, with the version they provide.
    pub fn providers(&self, name: &str) -> &[(usize, Option<Version>)] {
        self.providers.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.packages.len()
    }
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }
}

fn package(
    p: &Paragraph,
    arch: &str,
    repo: usize,
    what: &str,
) -> Result<Option<Package>, IndexError> {
    let name = p.get("Package").unwrap_or("").to_string();
    let err = |reason: String| IndexError::Field {
        index: what.to_string(),
        line: p.line,
        package: name.clone(),
        reason,
    };
    if name.is_empty() {
        return Err(err("no Package field".into()));
    }
    let architecture = p.get("Architecture").unwrap_or("").to_string();
    if architecture != arch && architecture != "all" {
        return Ok(None);
    }
    let version = Version::parse(p.get("Version").unwrap_or("")).map_err(|e| err(e.to_string()))?;
    let provides = match p.get("Provides") {
        Some(f) => parse_provides(f)
            .map_err(|e| err(format!("Provides: {e}")))?
            .into_iter()
            .map(|r| (r.name, r.constraint.map(|(_, v)| v)))
            .collect(),
        None => Vec::new(),
    };
    let filename = p
        .get("Filename")
        .ok_or_else(|| err("no Filename field".into()))?
        .to_string();
    if filename.starts_with('/') || filename.split('/').any(|c| c == "..") {
        return Err(err(format!("unsafe Filename {filename:?}")));
    }
    let sha256 = p
        .get("SHA256")
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| err("no SHA256 field (ferry verifies every .deb by SHA256)".into()))?
        .to_ascii_lowercase();
    let size = p
        .get("Size")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err("no Size field".into()))?;
    Ok(Some(Package {
        name,
        version,
        architecture,
        depends: p.get("Depends").map(str::to_string),
        pre_depends: p.get("Pre-Depends").map(str::to_string),
        provides,
        essential: p.get("Essential") == Some("yes"),
        priority: p.get("Priority").unwrap_or("optional").to_string(),
        filename,
        size,
        sha256,
        repo,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_target_architecture_and_all() {
        let text = "Package: a\nVersion: 1\nArchitecture: amd64\nFilename: pool/a.deb\nSize: 3\nSHA256: {h}\nProvides: v (= 2), w\n\n\
                    Package: a\nVersion: 1\nArchitecture: arm64\nFilename: pool/a2.deb\nSize: 3\nSHA256: {h}\n\n\
                    Package: b\nVersion: 2\nArchitecture: all\nFilename: pool/b.deb\nSize: 3\nSHA256: {h}\nPriority: required\n"
            .replace("{h}", &"ab".repeat(32));
        let mut ix = Index::default();
        assert_eq!(ix.add_stream(text.as_bytes(), "amd64", 0, "t").unwrap(), 2);
        assert_eq!(ix.versions("a").len(), 1);
        assert_eq!(ix.providers("v")[0].1.as_ref().unwrap().as_str(), "2");
        assert!(ix.providers("w")[0].1.is_none());
        assert!(ix.packages[ix.versions("b")[0]].in_base());
        let bad = "Package: c\nVersion: 1\nArchitecture: amd64\nFilename: ../x.deb\nSize: 1\nSHA256: 00\n";
        let e = ix
            .add_stream(bad.as_bytes(), "amd64", 0, "idx")
            .unwrap_err()
            .to_string();
        assert!(e.contains("idx") && e.contains("package c"), "{e}");
    }
}
