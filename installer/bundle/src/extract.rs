//! `--extract <dir>`: unpacks the payload's entries, as stored, into a directory.
//!
//! Safety comes in layers. Before anything is written, the whole tar structure is checked
//! against bundle.json ([`crate::verify::check_structure`]): only regular files and
//! directories with normalised relative paths get that far. While writing, every path is
//! walked component by component with `openat(O_NOFOLLOW)` from the target directory, so
//! even a symlink already planted inside the target cannot redirect a write outside it;
//! files are created with `O_EXCL`, never overwritten. Every entry is hashed as it is
//! written; on any mismatch everything this extraction created is removed again.
//!
//! A signed bundle's `bundle.json.sig` is extracted beside `bundle.json` (DER, as
//! `openssl dgst -verify` reads it), after the signature was checked against the key
//! bundle.json names.

use crate::error::{BundleError, Result};
use crate::reader::Bundle;
use crate::tarscan::TarKind;
use crate::verify::check_structure;
use crate::{digest::HashingReader, subfile::SubFile};
use rustix::fd::OwnedFd;
use rustix::fs::{mkdirat, openat, Mode, OFlags, CWD};
use std::io;
use std::path::{Path, PathBuf};

pub struct ExtractReport {
    pub files: usize,
    pub bytes: u64,
}

pub fn extract(b: &Bundle, target: &Path, progress: &dyn Fn(u64)) -> Result<ExtractReport> {
    let entries = check_structure(b)?;
    b.signature()?;
    std::fs::create_dir_all(target).map_err(|e| BundleError::io(target, e))?;
    let root = openat(
        CWD,
        target,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| BundleError::io(target, e.into()))?;
    let mut created: Vec<(PathBuf, bool)> = Vec::new();
    let mut report = ExtractReport { files: 0, bytes: 0 };
    let res = (|| -> Result<()> {
        for t in &entries {
            if t.kind == TarKind::Dir {
                dir_at(&root, &t.path, &mut created)
                    .map_err(|e| BundleError::entry(&t.path, e.to_string()))?;
                continue;
            }
            // check_structure proved every file but bundle.json and its signature is in
            // the entry table; the signature was verified above.
            let expected = if t.path == crate::MANIFEST_PATH {
                Some(b.footer.manifest_sha256)
            } else if t.path == crate::signature::SIGNATURE_PATH {
                None
            } else {
                b.entry(&t.path).map(|e| e.sha256)
            };
            let (parent, name) = match t.path.rsplit_once('/') {
                Some((p, n)) => (Some(p), n),
                None => (None, t.path.as_str()),
            };
            let dir = match parent {
                Some(p) => dir_at(&root, p, &mut created)
                    .map_err(|e| BundleError::entry(&t.path, e.to_string()))?,
                None => rustix::io::dup(&root)
                    .map_err(|e| BundleError::entry(&t.path, e.to_string()))?,
            };
            let fd = openat(
                &dir,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(t.mode & 0o777),
            )
            .map_err(|e| {
                BundleError::entry(
                    &t.path,
                    format!(
                        "cannot create in {}: {e} (extract into an empty directory)",
                        target.display()
                    ),
                )
            })?;
            created.push((PathBuf::from(&t.path), false));
            let mut out = std::fs::File::from(fd);
            let src = SubFile::new(
                b.file.clone(),
                b.footer.payload_offset + t.data_offset,
                t.size,
            );
            let mut src = HashingReader::new(src);
            io::copy(&mut src, &mut out).map_err(|e| BundleError::entry(&t.path, e.to_string()))?;
            let (got, n) = src.finish();
            match expected {
                None if t.path == crate::signature::SIGNATURE_PATH => {}
                Some(expected) if got == expected => {}
                Some(expected) => {
                    return Err(BundleError::EntryChecksum {
                        entry: t.path.clone(),
                        expected: Box::new(expected),
                        found: Box::new(got),
                    })
                }
                None => return Err(BundleError::entry(&t.path, "not listed in bundle.json")),
            }
            report.files += 1;
            report.bytes += n;
            progress(report.bytes);
        }
        Ok(())
    })();
    if let Err(e) = res {
        for (p, is_dir) in created.iter().rev() {
            let full = target.join(p);
            let _ = if *is_dir {
                std::fs::remove_dir(&full)
            } else {
                std::fs::remove_file(&full)
            };
        }
        return Err(e);
    }
    Ok(report)
}

/// Opens (creating as needed) the directory `rel` under `root` without following links.
fn dir_at(root: &OwnedFd, rel: &str, created: &mut Vec<(PathBuf, bool)>) -> io::Result<OwnedFd> {
    let mut cur = rustix::io::dup(root)?;
    let mut sofar = PathBuf::new();
    for comp in rel.split('/') {
        sofar.push(comp);
        match mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
            Ok(()) => created.push((sofar.clone(), true)),
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        cur = openat(
            &cur,
            comp,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            io::Error::other(format!(
                "{}: {e} (a symlink or file is in the way)",
                sofar.display()
            ))
        })?;
    }
    Ok(cur)
}
