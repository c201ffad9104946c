//! The package databases found inside image layers: dpkg's `var/lib/dpkg/status` (and
//! distroless's `var/lib/dpkg/status.d/*`, one file per package) and Alpine's
//! `lib/apk/db/installed`, plus `os-release` to name the distribution.
//!
//! Only what an SBOM needs is kept (name, version, architecture, source package); the
//! records are small so that a bundle of hundreds of images stays flat in memory.

use std::collections::BTreeMap;

/// Which package manager a package belongs to (its purl type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Deb,
    Apk,
}

/// One installed OS package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OsPackage {
    pub kind: Kind,
    pub name: String,
    pub version: String,
    pub arch: String,
    /// The source package it was built from (dpkg `Source:`, apk `o:`), if different.
    pub source: Option<String>,
    /// apk `L:` (SPDX-like already), dpkg has none in its database.
    pub license: Option<String>,
}

/// deb822 paragraphs (`Field: value`, continuation lines, blank-line separated) as maps
/// of the fields an SBOM reads.
fn deb822(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut cur: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // Continuation: descriptions and conffiles, which an SBOM does not need.
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            cur.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Packages dpkg records as installed (a `Status` ending in `installed`, or no `Status`
/// at all as in distroless's `status.d/` files).
pub fn parse_dpkg(text: &str) -> Vec<OsPackage> {
    deb822(text)
        .into_iter()
        .filter(|p| p.get("status").is_none_or(|s| s.ends_with(" installed")))
        .filter_map(|p| {
            let name = p.get("package")?.clone();
            let version = p.get("version")?.clone();
            // `Source: name (version)` when the source version differs.
            let source = p
                .get("source")
                .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
                .filter(|s| !s.is_empty() && *s != name);
            Some(OsPackage {
                kind: Kind::Deb,
                arch: p.get("architecture").cloned().unwrap_or_default(),
                name,
                version,
                source,
                license: None,
            })
        })
        .collect()
}

/// apk's `installed` database: `X:value` lines, blank-line separated records.
pub fn parse_apk(text: &str) -> Vec<OsPackage> {
    let mut out = Vec::new();
    let mut rec: BTreeMap<char, String> = BTreeMap::new();
    let mut flush = |rec: &mut BTreeMap<char, String>| {
        if let (Some(name), Some(version)) = (rec.get(&'P'), rec.get(&'V')) {
            out.push(OsPackage {
                kind: Kind::Apk,
                name: name.clone(),
                version: version.clone(),
                arch: rec.get(&'A').cloned().unwrap_or_default(),
                source: rec.get(&'o').filter(|o| *o != name).cloned(),
                license: rec.get(&'L').cloned(),
            });
        }
        rec.clear();
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut rec);
            continue;
        }
        let mut chars = line.chars();
        if let (Some(k), Some(':')) = (chars.next(), chars.next()) {
            rec.entry(k).or_insert_with(|| chars.as_str().to_string());
        }
    }
    flush(&mut rec);
    out
}

/// `os-release`: `KEY=value` lines, values optionally quoted.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once('=')?;
            let v = v.trim().trim_matches('"').trim_matches('\'');
            (!k.starts_with('#')).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_keeps_installed_packages() {
        let status = "Package: bash\nStatus: install ok installed\nPriority: required\n\
            Architecture: amd64\nVersion: 5.2.15-2+b2\nDescription: GNU Bourne Again SHell\n \
            Bash is an sh-compatible command language interpreter.\n\n\
            Package: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: amd64\n\n\
            Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n\
            Source: glibc (2.36-9)\nVersion: 2.36-9+deb12u4\n";
        let p = parse_dpkg(status);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].version.as_str()),
            ("bash", "5.2.15-2+b2")
        );
        assert_eq!(p[1].source.as_deref(), Some("glibc"));
        // distroless status.d files have no Status field.
        let d = parse_dpkg("Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n");
        assert_eq!(d[0].arch, "all");
    }

    #[test]
    fn apk_installed_and_os_release() {
        let db = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\n\
            P:busybox-binsh\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\no:busybox\n";
        let p = parse_apk(db);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].source, None, "origin = name");
        assert_eq!(p[1].source.as_deref(), Some("busybox"));
        assert_eq!(p[1].license.as_deref(), Some("GPL-2.0-only"));
        let os = parse_os_release("ID=debian\nVERSION_ID=\"12\"\n# c\nPRETTY_NAME='x y'\n");
        assert_eq!(os["ID"], "debian");
        assert_eq!(os["VERSION_ID"], "12");
        assert_eq!(os["PRETTY_NAME"], "x y");
    }
}
