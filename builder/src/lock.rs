//! `ferry.lock`: what a build resolved everything to, so that it can be proved and
//! repeated.
//!
//! Tags move and release files get re-uploaded; a bundle built next month from the same
//! Kubefile may silently carry other bytes. `ferry build` therefore writes, beside the
//! Kubefile, every image's manifest digest (and platforms), every downloaded release file's
//! upstream URL and sha256, every local input's sha256 (charts, manifests, values files,
//! COPY sources, `--payload` files) and the helm version that rendered the charts.
//! `ferry build --locked` resolves everything again and refuses, naming each item, when
//! anything differs; it writes nothing then. Together with the deterministic bundle writer
//! this gives the guarantee: same Kubefile, same lock, same inputs → the same
//! `delivery.run`, byte for byte. The format is documented in `docs/lock.md`.
//!
//! TOML, because people review it in merge requests: one `[[image]]`, `[[asset]]` or
//! `[[file]]` table per item, sorted, so a change shows as a small diff. Paths are relative
//! to the build context and URLs are the upstream ones (never a `--release-mirror`), so
//! the lock means the same on every machine.

use crate::build::files::walk_sorted;
use anyhow::{Context, Result};
use ferry_bundle::digest::hash_reader;
use ferry_bundle::Sha256Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file name, beside the Kubefile.
pub const LOCK_FILE: &str = "ferry.lock";
/// The format this ferry reads and writes.
pub const LOCK_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    /// `helm version --short` of the helm that rendered the charts; absent without charts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<String>,
    #[serde(default, rename = "image")]
    pub images: Vec<LockedImage>,
    #[serde(default, rename = "asset")]
    pub assets: Vec<LockedAsset>,
    #[serde(default, rename = "file")]
    pub files: Vec<LockedFile>,
    /// When these contents were first resolved (Unix seconds, UTC): the SBOM's `created`.
    /// Kept by every rebuild that resolves the same, so rebuilds stay byte-identical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<u64>,
}

/// An image as the bundle carries it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedImage {
    /// The full name the cluster uses (`docker.io/library/nginx:1.27`).
    pub name: String,
    /// The manifest (or index) digest carried for it.
    pub digest: String,
    pub platforms: Vec<String>,
}

/// A file downloaded from a release.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedAsset {
    /// Upstream URL (not a mirror's).
    pub url: String,
    /// Bare hex.
    pub sha256: String,
}

/// A local input.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedFile {
    /// `chart`, `manifests`, `values`, `copy` or `payload`.
    pub kind: String,
    /// Relative to the build context; for `payload`, `<payload>:<role>`.
    pub path: String,
    /// Bare hex; for a directory the tree hash of [`hash_path`].
    pub sha256: String,
    /// `copy` only: the mode the file is installed with, octal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl Lock {
    /// A lock of these items, in canonical order.
    pub fn new(
        helm: Option<String>,
        mut images: Vec<LockedImage>,
        mut assets: Vec<LockedAsset>,
        mut files: Vec<LockedFile>,
    ) -> Lock {
        images.sort();
        images.dedup();
        assets.sort();
        assets.dedup();
        files.sort();
        files.dedup();
        Lock {
            version: LOCK_VERSION,
            helm,
            images,
            assets,
            files,
            resolved_at: None,
        }
    }

    /// `ferry.lock` beside `kubefile`.
    pub fn path_for(kubefile: &Path) -> PathBuf {
        kubefile.with_file_name(LOCK_FILE)
    }

    /// Reads a lock; `None` if the file does not exist.
    pub fn read(path: &Path) -> Result<Option<Lock>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let lock: Lock = toml::from_str(&text)
            .with_context(|| format!("{}: not a ferry.lock this ferry can read", path.display()))?;
        anyhow::ensure!(
            lock.version == LOCK_VERSION,
            "{}: lock format version {}, this ferry reads version {LOCK_VERSION}",
            path.display(),
            lock.version
        );
        Ok(Some(lock))
    }

    /// Writes the lock atomically (a temp file renamed over the old one).
    pub fn write(&self, path: &Path) -> Result<()> {
        let body = toml::to_string(self).context("serialising ferry.lock")?;
        let text = format!(
            "# ferry.lock: what `ferry build` resolved this Kubefile to (docs/lock.md).\n\
             # Written by every build; `ferry build --locked` refuses anything that differs.\n\n{body}"
        );
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("writing {}", path.display()))?;
        std::fs::write(tmp.path(), text).with_context(|| format!("writing {}", path.display()))?;
        tmp.persist(path)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// What resolves differently in `now` than in this (locked) lock, one line per item.
    pub fn differences(&self, now: &Lock) -> Vec<String> {
        let mut out = Vec::new();
        if self.helm != now.helm {
            out.push(format!(
                "helm: the charts are rendered with {} but ferry.lock has {}",
                now.helm.as_deref().unwrap_or("no helm"),
                self.helm.as_deref().unwrap_or("no helm")
            ));
        }
        compare(
            &mut out,
            &self.images,
            &now.images,
            |i| format!("image {}", i.name),
            |was, is| {
                if was.digest != is.digest {
                    format!(
                        "resolves to {} but ferry.lock has {} (the tag moved?)",
                        is.digest, was.digest
                    )
                } else {
                    format!(
                        "carries platforms [{}] but ferry.lock has [{}]",
                        is.platforms.join(", "),
                        was.platforms.join(", ")
                    )
                }
            },
        );
        compare(
            &mut out,
            &self.assets,
            &now.assets,
            |a| format!("release file {}", a.url),
            |was, is| {
                format!(
                    "has sha256 {} but ferry.lock has {} (re-published upstream?)",
                    is.sha256, was.sha256
                )
            },
        );
        compare(
            &mut out,
            &self.files,
            &now.files,
            |f| format!("{} {}", f.kind, f.path),
            |was, is| {
                if was.sha256 != is.sha256 {
                    format!(
                        "changed: sha256 {} but ferry.lock has {}",
                        is.sha256, was.sha256
                    )
                } else {
                    format!(
                        "mode {} but ferry.lock has {}",
                        is.mode.as_deref().unwrap_or("-"),
                        was.mode.as_deref().unwrap_or("-")
                    )
                }
            },
        );
        out
    }
}

/// Adds a line for every item that changed, appeared or disappeared, items matched by
/// the name `key` gives them.
fn compare<T: PartialEq>(
    out: &mut Vec<String>,
    locked: &[T],
    now: &[T],
    key: impl Fn(&T) -> String,
    changed: impl Fn(&T, &T) -> String,
) {
    let locked: BTreeMap<String, &T> = locked.iter().map(|t| (key(t), t)).collect();
    let now: BTreeMap<String, &T> = now.iter().map(|t| (key(t), t)).collect();
    for (k, is) in &now {
        match locked.get(k) {
            Some(was) if was != is => out.push(format!("{k}: {}", changed(was, is))),
            Some(_) => {}
            None => out.push(format!("{k}: not in ferry.lock (new in the build)")),
        }
    }
    for k in locked.keys().filter(|k| !now.contains_key(*k)) {
        out.push(format!("{k}: in ferry.lock but no longer in the build"));
    }
}

/// sha256 of a file's bytes; for a directory, of its tree: every regular file below it
/// (symlinks followed, as the build follows them), sorted by relative path, as lines
/// `<relative path>\0<x if executable>\0<sha256 hex>\n`. Only the executable bit of a mode
/// counts: it is all a packed chart keeps, and umask differences between checkouts
/// must not make a tree "change".
pub fn hash_path(path: &Path) -> Result<Sha256Digest> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_dir() {
        let f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(hash_reader(f)
            .with_context(|| format!("reading {}", path.display()))?
            .0);
    }
    let mut tree = Sha256::new();
    for (rel, file) in walk_sorted(path)? {
        use std::os::unix::fs::PermissionsExt;
        let exec = std::fs::metadata(&file)?.permissions().mode() & 0o100 != 0;
        let sha = hash_path(&file)?;
        tree.update(format!(
            "{rel}\0{}\0{}\n",
            if exec { "x" } else { "" },
            sha.hex()
        ));
    }
    Ok(Sha256Digest(tree.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, digest: char) -> LockedImage {
        LockedImage {
            name: name.into(),
            digest: format!("sha256:{}", digest.to_string().repeat(64)),
            platforms: vec!["linux/amd64".into()],
        }
    }

    fn sample() -> Lock {
        Lock::new(
            Some("v4.1.4".into()),
            vec![
                image("docker.io/library/b:1", 'b'),
                image("docker.io/library/a:1", 'a'),
            ],
            vec![LockedAsset {
                url: "https://github.com/k3s-io/k3s/releases/download/v1.32.3%2Bk3s1/k3s".into(),
                sha256: "c".repeat(64),
            }],
            vec![LockedFile {
                kind: "copy".into(),
                path: "conf/a.yaml".into(),
                sha256: "d".repeat(64),
                mode: Some("0644".into()),
            }],
        )
    }

    #[test]
    fn round_trips_through_the_file_sorted() {
        let d = tempfile::tempdir().unwrap();
        let p = Lock::path_for(&d.path().join("Kubefile"));
        assert_eq!(p, d.path().join("ferry.lock"));
        assert_eq!(Lock::read(&p).unwrap(), None);
        let l = sample();
        assert_eq!(l.images[0].name, "docker.io/library/a:1");
        l.write(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.contains("[[image]]") && text.contains("%2Bk3s1"),
            "{text}"
        );
        assert_eq!(Lock::read(&p).unwrap(), Some(l.clone()));
        assert!(l.differences(&l).is_empty());
        std::fs::write(&p, text.replace("version = 1", "version = 9")).unwrap();
        let e = Lock::read(&p).unwrap_err().to_string();
        assert!(e.contains("version 9"), "{e}");
    }

    #[test]
    fn differences_name_each_item() {
        let locked = sample();
        let mut now = sample();
        now.images[0].digest = format!("sha256:{}", "e".repeat(64));
        now.images.remove(1);
        now.images.push(image("quay.io/x/new:1", 'f'));
        now.assets[0].sha256 = "0".repeat(64);
        now.files[0].mode = Some("0755".into());
        now.helm = None;
        let d = locked.differences(&now).join("\n");
        for want in [
            "helm: the charts are rendered with no helm but ferry.lock has v4.1.4",
            "image docker.io/library/a:1: resolves to sha256:eeee",
            "image quay.io/x/new:1: not in ferry.lock",
            "image docker.io/library/b:1: in ferry.lock but no longer in the build",
            "release file https://github.com/k3s-io/k3s/releases/download/v1.32.3%2Bk3s1/k3s: has sha256 0000",
            "copy conf/a.yaml: mode 0755 but ferry.lock has 0644",
        ] {
            assert!(d.contains(want), "missing {want:?} in\n{d}");
        }
    }

    #[test]
    fn tree_hashes_see_content_names_and_exec_bits_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("chart");
        std::fs::create_dir_all(t.join("templates")).unwrap();
        std::fs::write(t.join("Chart.yaml"), "name: x\n").unwrap();
        std::fs::write(t.join("templates/a.yaml"), "a\n").unwrap();
        let h0 = hash_path(&t).unwrap();
        std::fs::set_permissions(t.join("Chart.yaml"), std::fs::Permissions::from_mode(0o664))
            .unwrap();
        assert_eq!(hash_path(&t).unwrap(), h0, "group write does not count");
        std::fs::set_permissions(t.join("Chart.yaml"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let h1 = hash_path(&t).unwrap();
        assert_ne!(h1, h0, "the exec bit counts");
        std::fs::write(t.join("templates/a.yaml"), "b\n").unwrap();
        assert_ne!(hash_path(&t).unwrap(), h1, "content counts");
        std::fs::rename(t.join("templates/a.yaml"), t.join("templates/b.yaml")).unwrap();
        let names: Vec<String> = walk_sorted(&t).unwrap().into_iter().map(|x| x.0).collect();
        assert_eq!(names, ["Chart.yaml", "templates/b.yaml"]);
        assert_eq!(
            hash_path(&t.join("Chart.yaml")).unwrap(),
            Sha256Digest::of(b"name: x\n")
        );
    }
}
