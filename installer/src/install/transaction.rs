//! File changes that are rolled back unless committed (after rustup's
//! `dist/component/transaction.rs`). A phase writes through a transaction; if the phase
//! fails, new files are removed, replaced files restored and created directories removed,
//! so a failed phase leaves the host as it found it. Writes are atomic (temp + rename).

use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct Transaction {
    /// (file, backup of what was there before)
    written: Vec<(PathBuf, Option<PathBuf>)>,
    created_dirs: Vec<PathBuf>,
    committed: bool,
}

impl Default for Transaction {
    fn default() -> Self {
        Self::new()
    }
}

impl Transaction {
    pub fn new() -> Self {
        Transaction {
            written: Vec::new(),
            created_dirs: Vec::new(),
            committed: false,
        }
    }

    /// Creates `dir` and missing parents, remembering which ones were new.
    pub fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut cur = Some(dir);
        while let Some(d) = cur {
            if d.exists() {
                break;
            }
            missing.push(d.to_path_buf());
            cur = d.parent();
        }
        for d in missing.into_iter().rev() {
            match std::fs::create_dir(&d) {
                Ok(()) => self.created_dirs.push(d),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", d.display()))),
            }
        }
        Ok(())
    }

    /// Writes `path` atomically from `data`, backing up an existing file first.
    pub fn write(&mut self, path: &Path, mode: u32, data: &mut dyn Read) -> io::Result<()> {
        let ctx = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        if let Some(parent) = path.parent() {
            self.create_dir_all(parent)?;
        }
        let backup = if path.exists() && !self.written.iter().any(|(p, _)| p == path) {
            let b = sibling(path, "ferry-bak");
            std::fs::rename(path, &b).map_err(ctx)?;
            Some(b)
        } else {
            None
        };
        if !self.written.iter().any(|(p, _)| p == path) {
            self.written.push((path.to_path_buf(), backup));
        }
        let tmp = sibling(path, "ferry-tmp");
        let res = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            io::copy(data, &mut f)?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.flush()?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res.map_err(ctx)
    }

    /// Paths written and directories created (for the journal).
    pub fn touched(&self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        (
            self.written.iter().map(|(p, _)| p.clone()).collect(),
            self.created_dirs.clone(),
        )
    }

    pub fn commit(mut self) {
        for (_, b) in &self.written {
            if let Some(b) = b {
                let _ = std::fs::remove_file(b);
            }
        }
        self.committed = true;
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for (p, backup) in self.written.iter().rev() {
            let _ = std::fs::remove_file(p);
            if let Some(b) = backup {
                let _ = std::fs::rename(b, p);
            }
        }
        for d in self.created_dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn sibling(path: &Path, tag: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{tag}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_and_removes() {
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join("old.conf");
        std::fs::write(&old, "before").unwrap();
        {
            let mut t = Transaction::new();
            t.write(&old, 0o644, &mut &b"after"[..]).unwrap();
            t.write(&d.path().join("new/deep/file"), 0o600, &mut &b"x"[..])
                .unwrap();
            assert_eq!(std::fs::read_to_string(&old).unwrap(), "after");
        }
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "before");
        assert!(!d.path().join("new").exists());
    }

    #[test]
    fn commit_keeps_changes_and_drops_backups() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a");
        std::fs::write(&f, "1").unwrap();
        let mut t = Transaction::new();
        t.write(&f, 0o640, &mut &b"2"[..]).unwrap();
        t.commit();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "2");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }
}
