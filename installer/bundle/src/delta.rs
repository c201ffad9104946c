//! Delta bundles: a newer version that carries only what an older one lacks.
//!
//! Carrying 20 GB through an air gap again for a 200 MB change is the daily pain of
//! upgrades. A delta bundle (`ferry build --delta-from old.run`) is a complete bundle in
//! every respect but one: entries that the old bundle (its *base*) holds at the same path
//! with the same size and sha256 are not carried but listed in bundle.json's
//! `delta.inherited`. On a host where the base is staged, the delta is [attached](Bundle::attach_base)
//! to it and [`Bundle::locate`] finds every entry of the complete bundle — the carried
//! ones in the delta file, the inherited ones in the base file — so nothing is copied or
//! reassembled: the registry serves unchanged blobs straight out of the old staged file.
//!
//! Staged bundles live side by side as `bundles/<first 16 hex of payload sha256>.run`,
//! so a delta finds its base beside it ([`base_path_beside`]).

use crate::error::{BundleError, Result};
use crate::manifest::EntryRecord;
use crate::reader::Bundle;
use crate::subfile::SubFile;
use crate::Sha256Digest;
use std::path::{Path, PathBuf};

/// File name a staged bundle has: `<first 16 hex of its payload sha256>.run`.
pub fn staged_name(payload_sha256: &Sha256Digest) -> String {
    format!("{}.run", &payload_sha256.hex()[..16])
}

/// Where a delta staged at `staged` finds its base: beside it, by its identity.
pub fn base_path_beside(staged: &Path, base: &Sha256Digest) -> PathBuf {
    staged.with_file_name(staged_name(base))
}

/// Where an entry's bytes are: which bundle file, and the entry's record there.
pub struct Located<'a> {
    pub bundle: &'a Bundle,
    pub entry: &'a EntryRecord,
}

impl Located<'_> {
    pub fn open(&self) -> SubFile {
        self.bundle.open_entry(self.entry)
    }
    pub fn absolute_offset(&self) -> u64 {
        self.bundle.absolute_offset(self.entry)
    }
}

impl Bundle {
    /// Attaches a delta's base, checking that it is the base the delta was built on and
    /// that it holds every inherited entry (same path, size and sha256).
    pub fn attach_base(&mut self, base: Bundle) -> Result<()> {
        let Some(d) = &self.manifest.delta else {
            return Ok(());
        };
        if base.footer.payload_sha256 != d.base {
            return Err(BundleError::BadManifest {
                reason: format!(
                    "this delta is built on {} {} ({}), but {} is {} {} ({})",
                    d.base_name,
                    d.base_version,
                    d.base,
                    base.path.display(),
                    base.manifest.name,
                    base.manifest.version,
                    base.footer.payload_sha256
                ),
            });
        }
        for e in &d.inherited {
            match base.entry(&e.path) {
                Some(b) if b.size == e.size && b.sha256 == e.sha256 => {}
                _ => {
                    return Err(BundleError::entry(
                        &e.path,
                        format!(
                            "inherited from the base {}, which does not hold it with this size and sha256",
                            base.path.display()
                        ),
                    ))
                }
            }
        }
        self.base = Some(Box::new(base));
        Ok(())
    }

    /// Opens a staged delta's base beside it (`bundles/<id>.run`) and attaches it. A
    /// bundle that is not a delta is left as it is.
    pub fn attach_base_beside(&mut self) -> Result<()> {
        let Some(d) = &self.manifest.delta else {
            return Ok(());
        };
        let p = base_path_beside(&self.path, &d.base);
        let base = Bundle::open(&p).map_err(|e| BundleError::BadManifest {
            reason: format!(
                "this is a delta of {} {} ({}), whose staged copy {} cannot be opened: {e}",
                d.base_name,
                d.base_version,
                d.base,
                p.display()
            ),
        })?;
        self.attach_base(base)
    }

    /// The entry at `path` of the complete bundle: carried, or inherited from the
    /// attached base.
    pub fn locate(&self, path: &str) -> Option<Located<'_>> {
        if let Some(e) = self.entry(path) {
            return Some(Located {
                bundle: self,
                entry: e,
            });
        }
        let base = self.base.as_deref()?;
        self.manifest
            .delta
            .as_ref()?
            .inherited
            .iter()
            .any(|e| e.path == path)
            .then(|| base.entry(path))
            .flatten()
            .map(|e| Located {
                bundle: base,
                entry: e,
            })
    }

    /// Every blob of the complete bundle (carried and inherited), with where it is.
    pub fn all_blobs(&self) -> Vec<(Sha256Digest, Located<'_>)> {
        let mut out: Vec<(Sha256Digest, Located<'_>)> = self
            .blobs()
            .map(|(d, e)| {
                (
                    d,
                    Located {
                        bundle: self,
                        entry: e,
                    },
                )
            })
            .collect();
        if let (Some(base), Some(delta)) = (self.base.as_deref(), &self.manifest.delta) {
            for e in &delta.inherited {
                if let (Some(d), Some(be)) =
                    (crate::paths::blob_digest(&e.path), base.entry(&e.path))
                {
                    out.push((
                        d,
                        Located {
                            bundle: base,
                            entry: be,
                        },
                    ));
                }
            }
        }
        out
    }

    /// Bytes of the complete bundle's entries (carried + inherited).
    pub fn complete_bytes(&self) -> u64 {
        self.manifest.payload_bytes()
            + self
                .manifest
                .delta
                .as_ref()
                .map(|d| d.inherited.iter().map(|e| e.size).sum::<u64>())
                .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::BundleWriter;
    use crate::BundleManifest;
    use std::io::Read;

    fn manifest(name: &str) -> BundleManifest {
        BundleManifest {
            name: name.into(),
            ..Default::default()
        }
    }

    fn read(l: &Located<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        l.open().read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn a_delta_carries_only_what_its_base_lacks_and_finds_the_rest_there() {
        let d = tempfile::tempdir().unwrap();
        let (x, y) = (vec![1u8; 5000], vec![2u8; 7000]);
        let (dx, dy) = (Sha256Digest::of(&x), Sha256Digest::of(&y));
        let base_path = d.path().join("v1.run");
        let mut w = BundleWriter::create(&base_path, &b"stub"[..]).unwrap();
        w.add_blob(&dx, x.len() as u64, &x[..]).unwrap();
        w.add_entry("files/same", 4, 0o644, &b"same"[..]).unwrap();
        w.add_entry("files/changed", 3, 0o644, &b"old"[..]).unwrap();
        w.finish(manifest("app")).unwrap();
        let base = Bundle::open(&base_path).unwrap();

        let delta_path = d.path().join("v2.run");
        let mut w = BundleWriter::create(&delta_path, &b"stub"[..]).unwrap();
        w.set_base(Bundle::open(&base_path).unwrap());
        assert!(!w.add_blob(&dx, x.len() as u64, &x[..]).unwrap());
        assert!(w.add_blob(&dy, y.len() as u64, &y[..]).unwrap());
        w.add_entry("files/same", 4, 0o644, &b"same"[..]).unwrap();
        w.add_entry("files/changed", 3, 0o644, &b"new"[..]).unwrap();
        assert_eq!(w.inherited_bytes(), 5000 + 4);
        w.finish(manifest("app")).unwrap();

        let mut delta = Bundle::open(&delta_path).unwrap();
        assert!(delta.is_delta());
        assert!(delta.entry("files/same").is_none(), "not carried");
        assert!(delta.blob_entry(&dx).is_none());
        // Without its base it cannot give inherited entries…
        assert!(delta.locate("files/same").is_none());
        // …with it, every entry of the complete bundle is found where it is.
        let mut other = base.clone();
        other.footer.payload_sha256 = Sha256Digest::of(b"another bundle");
        assert!(delta.attach_base(other).is_err());
        delta.attach_base(base).unwrap();
        assert_eq!(read(&delta.locate("files/same").unwrap()), b"same");
        assert_eq!(read(&delta.locate("files/changed").unwrap()), b"new");
        let blobs = delta.all_blobs();
        assert_eq!(blobs.len(), 2);
        for (dg, l) in &blobs {
            assert_eq!(Sha256Digest::of(&read(l)), *dg);
        }
        assert_eq!(delta.complete_bytes(), 5000 + 7000 + 4 + 3);
        // The delta itself passes the full check.
        crate::verify::check(&delta, &|_| {}).unwrap();
    }
}
