//! Which repositories of a registry are known to hold a blob: the mount sources of a push.
//!
//! A registry mounts a blob from another of its repositories instead of receiving it again
//! (`POST …/uploads/?mount=<digest>&from=<repo>`), but it does not say where a blob is;
//! the pusher must name the repository. ferry knows three kinds of them: the repository
//! of the base a bundle was built `FROM` (bundle.json `base`), the repository an image
//! came from when it is on the same registry, and every repository this machine pushed a
//! bundle to before, recorded here after each push in the content cache's
//! `pushed/<host>` file (`<digest hex> <repository>` per line; later lines win). The
//! record is a hint: a mount that fails falls back to an upload, so a stale line costs
//! one request, never correctness.

use ferry_bundle::Sha256Digest;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Blobs known to be in repositories of one registry.
#[derive(Debug, Default)]
pub struct KnownBlobs {
    path: Option<PathBuf>,
    by_digest: HashMap<Sha256Digest, String>,
}

impl KnownBlobs {
    /// The record for `host` in the cache at `cache_root` (empty if there is none yet).
    pub fn load(cache_root: &Path, host: &str) -> KnownBlobs {
        let path = cache_root.join("pushed").join(file_name(host));
        let mut by_digest = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                if let Some((hex, repo)) = line.split_once(' ') {
                    if let Some(d) = Sha256Digest::from_hex(hex) {
                        by_digest.insert(d, repo.to_string());
                    }
                }
            }
        }
        KnownBlobs {
            path: Some(path),
            by_digest,
        }
    }

    /// A repository known to hold `d`, if any.
    pub fn repository(&self, d: &Sha256Digest) -> Option<&str> {
        self.by_digest.get(d).map(String::as_str)
    }

    /// Records that `repository` now holds `digests` (appended to the record file).
    pub fn record(
        &mut self,
        repository: &str,
        digests: impl IntoIterator<Item = Sha256Digest>,
    ) -> std::io::Result<()> {
        let mut lines = String::new();
        for d in digests {
            if self.by_digest.get(&d).map(String::as_str) != Some(repository) {
                lines.push_str(&format!("{} {repository}\n", d.hex()));
                self.by_digest.insert(d, repository.to_string());
            }
        }
        let Some(path) = &self.path else {
            return Ok(());
        };
        if lines.is_empty() {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?
            .write_all(lines.as_bytes())
    }
}

/// A host (`h:5000`, `[::1]:5000`) as a file name.
fn file_name(host: &str) -> String {
    host.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_and_later_lines_win() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Sha256Digest::of(b"a"), Sha256Digest::of(b"b"));
        let mut k = KnownBlobs::load(dir.path(), "127.0.0.1:5000");
        assert_eq!(k.repository(&a), None);
        k.record("x/base", [a, b]).unwrap();
        k.record("x/app", [b]).unwrap();
        let again = KnownBlobs::load(dir.path(), "127.0.0.1:5000");
        assert_eq!(again.repository(&a), Some("x/base"));
        assert_eq!(again.repository(&b), Some("x/app"));
        assert_eq!(KnownBlobs::load(dir.path(), "other:1").repository(&a), None);
        assert!(dir.path().join("pushed/127.0.0.1_5000").is_file());
    }
}
