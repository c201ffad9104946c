//! Debian version numbers and how they sort: Debian policy §5.6.12, as dpkg implements
//! it (`verrevcmp` in dpkg's `lib/dpkg/version.c`).
//!
//! `[epoch:]upstream[-revision]`: epochs compare as numbers; upstream and revision
//! compare alternately by their non-digit parts (letters before everything else, `~`
//! before even the end of the string) and their digit parts (as numbers). A missing
//! revision equals `0`. The builder uses this to pick candidates and check constraints,
//! the installer to tell whether the host already has a package at least as new; the
//! tests check it against `dpkg --compare-versions` on many pairs.

use std::cmp::Ordering;
use std::fmt;

/// A parsed Debian version. Equality and order follow dpkg (`1.0` == `1.00` == `0:1.0-0`),
/// while `Display` shows the version as it was written.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    epoch: u64,
    /// Byte ranges of upstream and revision within `text`.
    upstream: (usize, usize),
    revision: (usize, usize),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a Debian version: {reason}")]
pub struct VersionError {
    pub text: String,
    pub reason: &'static str,
}

impl Version {
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let text = s.trim().to_string();
        let bad = |reason| VersionError {
            text: text.clone(),
            reason,
        };
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        if text.chars().any(|c| c.is_whitespace()) {
            return Err(bad("it contains whitespace"));
        }
        let (epoch, rest_start) = match text.find(':') {
            Some(i) => {
                let e = &text[..i];
                if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("the epoch (before ':') must be a number"));
                }
                (e.parse().map_err(|_| bad("the epoch is too large"))?, i + 1)
            }
            None => (0, 0),
        };
        let rest = &text[rest_start..];
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) => (
                (rest_start, rest_start + i),
                (rest_start + i + 1, text.len()),
            ),
            None => ((rest_start, text.len()), (text.len(), text.len())),
        };
        if upstream.0 == upstream.1 {
            return Err(bad("the upstream version is empty"));
        }
        if revision.0 == revision.1 && upstream.1 < text.len() {
            return Err(bad("the revision (after the last '-') is empty"));
        }
        Ok(Version {
            epoch,
            upstream,
            revision,
            text,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    pub fn upstream(&self) -> &str {
        &self.text[self.upstream.0..self.upstream.1]
    }
    pub fn revision(&self) -> &str {
        &self.text[self.revision.0..self.revision.1]
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream().as_bytes(), other.upstream().as_bytes()))
            .then_with(|| verrevcmp(self.revision().as_bytes(), other.revision().as_bytes()))
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version {}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}
impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Version::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Sort weight of a non-digit character: `~` first, then the end of the string, then
/// letters, then everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`.
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let at = |s: &[u8], k: usize| s.get(k).copied();
    let digit = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_digit());
    while i < a.len() || j < b.len() {
        while (at(a, i).is_some() && !digit(at(a, i))) || (at(b, j).is_some() && !digit(at(b, j))) {
            let (ac, bc) = (order(at(a, i)), order(at(b, j)));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while at(a, i) == Some(b'0') {
            i += 1;
        }
        while at(b, j) == Some(b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(at(a, i)) && digit(at(b, j)) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(at(a, i)) {
            return Ordering::Greater;
        }
        if digit(at(b, j)) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn policy_examples() {
        assert!(v("1.0~rc1") < v("1.0"));
        assert!(v("1.0") < v("1.0+b1"));
        assert!(v("1.0-1") < v("1.0-1ubuntu1"));
        assert!(v("1:0.1") > v("9.9"));
        assert!(v("~~") < v("~~a"));
        assert!(v("~~a") < v("~"));
        assert!(v("~") < v("0"));
        assert!(v("0") < v("a"));
        assert_eq!(v("1.0"), v("1.00"));
        assert_eq!(v("1.0"), v("0:1.0-0"));
        assert_eq!(v("2.36-9+deb12u4").upstream(), "2.36");
        assert_eq!(v("2.36-9+deb12u4").revision(), "9+deb12u4");
        assert_eq!(v("1:2.3-4-5").upstream(), "2.3-4");
        assert_eq!(v("1:2.3-4-5").epoch(), 1);
    }

    #[test]
    fn rejects_what_is_not_a_version() {
        for bad in ["", "a:1", ":1", "1 2", "1:-2", "1.0-"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }

    /// Every pair, compared by us and by the real `dpkg --compare-versions`.
    #[test]
    fn agrees_with_dpkg_compare_versions() {
        let Ok(out) = std::process::Command::new("dpkg").arg("--version").output() else {
            panic!("dpkg is needed for this test (scripts/deps.sh installs it)");
        };
        assert!(out.status.success());
        let versions = [
            "0",
            "1",
            "1.0",
            "1.00",
            "1.0-0",
            "1.0-1",
            "1.0-1ubuntu1",
            "1.0~rc1",
            "1.0~rc1-1",
            "1.0+b1",
            "1.0a",
            "1.0.1",
            "1.0-10",
            "1.0-9",
            "1:0.9",
            "2:0",
            "1.2.3~beta",
            "1.2.3~~",
            "1.2.3~",
            "1.2.3",
            "1.2.3+dfsg-1",
            "1.2.3+dfsg1-1",
            "1.2.3.0",
            "10",
            "9.99",
            "2.36-9+deb12u4",
            "2.36-9+deb12u10",
            "2.36-9",
            "0.0~git20230101.abc-1",
            "1.0-1+b1",
            "1.0-1.1",
            "1.0-1~bpo12+1",
            "a",
            "A",
            "1.0-a",
            "1.0-A",
            "1.0+",
            "1.0.",
            "1:1.0-1",
            "3.0.11-1~deb12u2",
            "3.0.11-1~deb12u10",
            "252.36-1~deb12u1",
            "1.1.1w-0+deb11u1",
            "0.6.1+really0.6.0-1",
            "1.0-0.1",
            "001.002",
        ];
        for (i, a) in versions.iter().enumerate() {
            for b in &versions[i..] {
                let ours = v(a).cmp(&v(b));
                assert_eq!(v(b).cmp(&v(a)), ours.reverse(), "{b} vs {a}");
                let lt = std::process::Command::new("dpkg")
                    .args(["--compare-versions", a, "lt", b])
                    .status()
                    .unwrap()
                    .success();
                let eq = std::process::Command::new("dpkg")
                    .args(["--compare-versions", a, "eq", b])
                    .status()
                    .unwrap()
                    .success();
                let theirs = if lt {
                    Ordering::Less
                } else if eq {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                };
                assert_eq!(ours, theirs, "{a} vs {b}");
            }
        }
    }
}
