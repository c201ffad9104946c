//! File changes that are rolled back unless committed — even across a crash.
//!
//! After rustup's `dist/component/transaction.rs`, with one addition an installer on
//! someone else's host needs: every change is recorded in the journal (as
//! [`Change`]s of the pending phase) *before* it is made, so a `kill -9` or power cut in
//! the middle of a phase is undone by the next run ([`Transaction::recover`]) instead of
//! leaving a half-written host.
//!
//! Writing a file never leaves a moment where the target is missing: what is there is
//! kept by a hard link (the backup), the new bytes go to a temporary sibling that is
//! fsynced and renamed over the target. A backup of a file ferry wrote earlier is
//! dropped at commit; a backup of a *host's* file is kept under `<data>/backups/` and
//! recorded in the journal's `replaced` map, so `reset` can put the original back —
//! ferry never loses a file it did not create. A rollback that cannot restore something
//! says what, instead of swallowing it.

use super::journal::{Change, JournalFile, PendingTx};
use crate::host::{Host, HostPath};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TxError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("saving the journal: {0}")]
    Journal(#[source] io::Error),
    #[error("{path} is a directory; ferry only replaces files")]
    IsDirectory { path: PathBuf },
    #[error(transparent)]
    Rollback(#[from] RollbackError),
}

/// What a rollback could not undo: each path with the reason.
#[derive(Debug, thiserror::Error)]
#[error("rolling back left {} change(s) undone: {}", .failures.len(), .failures.iter().map(|(p, e)| format!("{p}: {e}")).collect::<Vec<_>>().join("; "))]
pub struct RollbackError {
    pub failures: Vec<(String, String)>,
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> TxError + '_ {
    move |source| TxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub struct Transaction<'a> {
    host: &'a Host,
    jf: &'a mut JournalFile,
    open: bool,
}

impl<'a> Transaction<'a> {
    /// Starts a transaction for `phase`. An earlier interrupted one must have been
    /// recovered first.
    pub fn begin(
        host: &'a Host,
        jf: &'a mut JournalFile,
        phase: &str,
    ) -> Result<Transaction<'a>, TxError> {
        if jf.journal.pending.is_some() {
            Self::recover(host, jf)?;
        }
        jf.journal.pending = Some(PendingTx {
            phase: phase.to_string(),
            changes: Vec::new(),
        });
        jf.save().map_err(TxError::Journal)?;
        Ok(Transaction {
            host,
            jf,
            open: true,
        })
    }

    /// Undoes the pending changes an interrupted run left in the journal. Returns the
    /// phase they belonged to, if there were any.
    pub fn recover(host: &Host, jf: &mut JournalFile) -> Result<Option<String>, TxError> {
        let Some(p) = jf.journal.pending.clone() else {
            return Ok(None);
        };
        let (kept, r) = undo(host, &p.changes);
        // Directories ferry made that now hold something else (its own journal, or a
        // file someone put there) stay, and stay ferry's for reset to consider.
        jf.journal.dirs.extend(kept);
        jf.journal.pending = None;
        jf.save().map_err(TxError::Journal)?;
        r?;
        Ok(Some(p.phase))
    }

    fn pending(&mut self) -> &mut PendingTx {
        self.jf.journal.pending.as_mut().expect("open transaction")
    }

    fn record(&mut self, c: Change) -> Result<(), TxError> {
        self.pending().changes.push(c);
        self.jf.save().map_err(TxError::Journal)
    }

    /// The journal, to record facts that commit with the phase (services, ports…).
    pub fn journal(&mut self) -> &mut super::journal::Journal {
        &mut self.jf.journal
    }

    /// Records that the phase starts service `name` (before it is started), so that
    /// undoing the phase stops it.
    pub fn service_started(&mut self, name: &str) -> Result<(), TxError> {
        self.record(Change::Service {
            name: name.to_string(),
        })
    }

    /// Records a fact in the journal and saves it at once: for effects outside the
    /// transaction (packages dpkg installs) that must be known even after a crash.
    pub fn note(&mut self, f: impl FnOnce(&mut super::journal::Journal)) -> Result<(), TxError> {
        f(&mut self.jf.journal);
        self.jf.save().map_err(TxError::Journal)
    }

    /// Records `dirs` (found missing before the transaction began, shortest first) as
    /// created by it, creating those still missing. The journal's own directory is made
    /// by the first save, before any transaction can record it: this adopts it.
    pub fn adopt_dirs(&mut self, dirs: &[HostPath]) -> Result<(), TxError> {
        for d in dirs {
            self.record(Change::Dir {
                path: d.to_string(),
            })?;
            let real = self.host.path(d);
            match std::fs::create_dir(&real) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_at(&real)(e)),
            }
        }
        Ok(())
    }

    /// Creates `dir` and its missing parents, remembering which ones were new.
    pub fn create_dir_all(&mut self, dir: &HostPath) -> Result<(), TxError> {
        let mut missing = Vec::new();
        let mut cur = Some(dir.clone());
        while let Some(d) = cur {
            let real = self.host.path(&d);
            match std::fs::symlink_metadata(&real) {
                Ok(m) if m.is_dir() => break,
                Ok(m) if m.file_type().is_symlink() && real.is_dir() => break,
                Ok(_) => {
                    return Err(TxError::Io {
                        path: real,
                        source: io::Error::other("a file is in the way of a directory"),
                    })
                }
                Err(_) => {}
            }
            cur = d.parent();
            missing.push(d);
        }
        for d in missing.into_iter().rev() {
            self.record(Change::Dir {
                path: d.to_string(),
            })?;
            let real = self.host.path(&d);
            match std::fs::create_dir(&real) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_at(&real)(e)),
            }
        }
        Ok(())
    }

    /// Writes `path` atomically from `data` with `mode`, keeping what was there.
    pub fn write(
        &mut self,
        path: &HostPath,
        mode: u32,
        data: &mut dyn Read,
    ) -> Result<(), TxError> {
        self.write_with(path, mode, |f| io::copy(data, f).map(|_| ()))
    }

    /// Like [`Self::write`], with `fill` writing the new file's bytes; the file replaces
    /// `path` only if `fill` succeeds.
    pub fn write_with(
        &mut self,
        path: &HostPath,
        mode: u32,
        fill: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
    ) -> Result<(), TxError> {
        self.replace(path, |tmp| {
            let mut f = std::fs::File::create(tmp)?;
            fill(&mut f)?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.flush()?;
            f.sync_all()
        })
    }

    /// Makes `path` a symbolic link to `target` (relative, or an absolute host path),
    /// keeping what was there.
    pub fn symlink(&mut self, path: &HostPath, target: &str) -> Result<(), TxError> {
        let target = target.to_string();
        self.replace(path, move |tmp| std::os::unix::fs::symlink(&target, tmp))
    }

    fn replace(
        &mut self,
        path: &HostPath,
        make: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Result<(), TxError> {
        if let Some(parent) = path.parent() {
            self.create_dir_all(&parent)?;
        }
        let real = self.host.path(path);
        let already = self
            .pending()
            .changes
            .iter()
            .any(|c| matches!(c, Change::File { path: p, .. } if p == path.as_str()));
        if !already {
            let existing = std::fs::symlink_metadata(&real).ok();
            if existing.as_ref().is_some_and(|m| m.is_dir()) {
                return Err(TxError::IsDirectory { path: real });
            }
            let (backup, host_file) = match existing {
                None => (None, false),
                Some(_) => {
                    let host_file = !self.jf.journal.files.contains(path.as_str());
                    let b = if host_file {
                        self.host
                            .backups()
                            .join(path.as_str().trim_start_matches('/'))
                            .expect("a host path under the backups directory")
                    } else {
                        HostPath::new(format!("{path}.ferry-bak")).expect("sibling")
                    };
                    (Some(b), host_file)
                }
            };
            // The backup's directory first, so that undoing (newest first) restores the
            // file before it removes that directory.
            if let Some(parent) = backup.as_ref().and_then(HostPath::parent) {
                self.create_dir_all(&parent)?;
            }
            self.record(Change::File {
                path: path.to_string(),
                backup: backup.as_ref().map(|b| b.to_string()),
                host_file,
            })?;
            if let Some(b) = &backup {
                let b_real = self.host.path(b);
                if !host_file {
                    let _ = std::fs::remove_file(&b_real);
                }
                keep_copy(&real, &b_real).map_err(io_at(&b_real))?;
            }
        }
        let tmp = sibling(&real, "ferry-tmp");
        let _ = std::fs::remove_file(&tmp);
        let res = make(&tmp).and_then(|()| std::fs::rename(&tmp, &real));
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res.map_err(io_at(&real))?;
        if let Some(dir) = real.parent() {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    /// Takes away a file ferry wrote (an upgrade dropped it). If it had replaced a host
    /// file, the host's original goes back in its place.
    pub fn remove(&mut self, path: &HostPath) -> Result<(), TxError> {
        let real = self.host.path(path);
        if std::fs::symlink_metadata(&real).is_err() {
            return Ok(());
        }
        let aside = HostPath::new(format!("{path}.ferry-removed")).expect("sibling");
        let original = self.jf.journal.replaced.get(path.as_str()).cloned();
        self.record(Change::Remove {
            path: path.to_string(),
            aside: aside.to_string(),
            original: original.clone(),
        })?;
        let aside_real = self.host.path(&aside);
        let _ = std::fs::remove_file(&aside_real);
        std::fs::rename(&real, &aside_real).map_err(io_at(&real))?;
        if let Some(o) = original.and_then(|o| HostPath::new(o).ok()) {
            std::fs::rename(self.host.path(&o), &real).map_err(io_at(&real))?;
        }
        Ok(())
    }

    /// Makes the phase's changes permanent: the journal lists every file and directory
    /// created and every host file replaced (with its kept original), and — in the same
    /// atomic save — records `phase` as done. Backups of ferry's own earlier files go.
    pub fn commit(mut self, done: Option<&str>) -> Result<(), TxError> {
        let p = self.jf.journal.pending.take().expect("open transaction");
        let j = &mut self.jf.journal;
        let mut drop_backups = Vec::new();
        for c in &p.changes {
            match c {
                Change::Remove { path, aside, .. } => {
                    j.files.remove(path);
                    j.replaced.remove(path);
                    drop_backups.push(aside.clone());
                }
                Change::Dir { path } => {
                    j.dirs.insert(path.clone());
                }
                Change::Service { .. } => {}
                Change::File {
                    path,
                    backup,
                    host_file,
                } => {
                    j.files.insert(path.clone());
                    match (backup, host_file) {
                        (Some(b), true) => {
                            j.replaced.insert(path.clone(), b.clone());
                        }
                        (Some(b), false) => drop_backups.push(b.clone()),
                        (None, _) => {}
                    }
                }
            }
        }
        if let Some(phase) = done {
            j.record(phase, Ok(()));
        }
        self.open = false;
        self.jf.save().map_err(TxError::Journal)?;
        for b in drop_backups {
            if let Ok(hp) = HostPath::new(b) {
                let _ = std::fs::remove_file(self.host.path(&hp));
            }
        }
        Ok(())
    }

    /// Undoes every change of this transaction, newest first.
    pub fn rollback(mut self) -> Result<(), TxError> {
        self.open = false;
        Self::recover(self.host, self.jf).map(|_| ())
    }

    /// Leaves the pending changes in the journal, as a crash would: the next run's
    /// [`Transaction::recover`] undoes them. Used to simulate `kill -9` in tests.
    pub fn abandon(mut self) {
        self.open = false;
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            self.open = false;
            if let Err(e) = Self::recover(self.host, self.jf) {
                eprintln!("error: {e}");
            }
        }
    }
}

/// Undoes `changes`, newest first; collects what could not be undone, and returns the
/// directories it created that are no longer empty (kept).
fn undo(host: &Host, changes: &[Change]) -> (Vec<String>, Result<(), RollbackError>) {
    let mut failures = Vec::new();
    let mut kept = Vec::new();
    for c in changes.iter().rev() {
        match c {
            Change::Remove {
                path,
                aside,
                original,
            } => {
                let (Ok(p), Ok(a)) = (HostPath::new(path.clone()), HostPath::new(aside.clone()))
                else {
                    continue;
                };
                let (real, aside_real) = (host.path(&p), host.path(&a));
                if std::fs::symlink_metadata(&aside_real).is_err() {
                    continue; // not moved yet
                }
                let mut r = Ok(());
                if let Some(o) = original
                    .as_ref()
                    .and_then(|o| HostPath::new(o.clone()).ok())
                {
                    if std::fs::symlink_metadata(&real).is_ok() {
                        r = std::fs::rename(&real, host.path(&o));
                    }
                }
                let r = r.and_then(|()| std::fs::rename(&aside_real, &real));
                if let Err(e) = r {
                    failures.push((path.clone(), e.to_string()));
                }
            }
            Change::File { path, backup, .. } => {
                let Ok(hp) = HostPath::new(path.clone()) else {
                    continue;
                };
                let real = host.path(&hp);
                let _ = std::fs::remove_file(sibling(&real, "ferry-tmp"));
                let r = match backup {
                    Some(b) => {
                        let b_real = HostPath::new(b.clone()).map(|b| host.path(&b));
                        match b_real {
                            // The backup exists: the target may have been replaced.
                            Ok(b_real) if std::fs::symlink_metadata(&b_real).is_ok() => {
                                std::fs::rename(&b_real, &real)
                            }
                            // No backup was made yet, so the target was never touched.
                            _ => Ok(()),
                        }
                    }
                    None => match std::fs::remove_file(&real) {
                        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                        r => r,
                    },
                };
                if let Err(e) = r {
                    failures.push((path.clone(), e.to_string()));
                }
            }
            Change::Service { name } => {
                if let Err(e) = crate::service::stop(host, name) {
                    failures.push((format!("service {name}"), e.to_string()));
                }
            }
            Change::Dir { path } => {
                let Ok(hp) = HostPath::new(path.clone()) else {
                    continue;
                };
                match std::fs::remove_dir(host.path(&hp)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                        kept.push(path.clone())
                    }
                    Err(e) => failures.push((path.clone(), e.to_string())),
                }
            }
        }
    }
    let r = if failures.is_empty() {
        Ok(())
    } else {
        Err(RollbackError { failures })
    };
    (kept, r)
}

/// Keeps what is at `from` under the name `to`: a hard link (no copy, same inode), or a
/// copy with the same permissions where the two are on different filesystems.
fn keep_copy(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(18 /* EXDEV */) => {
            let m = std::fs::symlink_metadata(from)?;
            if m.file_type().is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
            } else {
                std::fs::copy(from, to)?;
                std::fs::set_permissions(to, m.permissions())?;
                std::fs::File::open(to)?.sync_all()
            }
        }
        Err(e) => Err(e),
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

    fn setup() -> (tempfile::TempDir, Host, JournalFile) {
        let d = tempfile::tempdir().unwrap();
        let host = Host::new(d.path(), None).unwrap();
        let (jf, _) = JournalFile::open(host.path(&host.journal())).unwrap();
        (d, host, jf)
    }
    fn hp(s: &str) -> HostPath {
        HostPath::new(s).unwrap()
    }
    fn read(host: &Host, p: &str) -> Option<String> {
        std::fs::read_to_string(host.path(&hp(p))).ok()
    }

    #[test]
    fn rollback_restores_and_removes() {
        let (_d, host, mut jf) = setup();
        std::fs::create_dir_all(host.path(&hp("/etc"))).unwrap();
        std::fs::write(host.path(&hp("/etc/old.conf")), "before").unwrap();
        {
            let mut t = Transaction::begin(&host, &mut jf, "files").unwrap();
            t.write(&hp("/etc/old.conf"), 0o644, &mut &b"after"[..])
                .unwrap();
            t.write(&hp("/new/deep/file"), 0o600, &mut &b"x"[..])
                .unwrap();
            assert_eq!(read(&host, "/etc/old.conf").as_deref(), Some("after"));
            t.rollback().unwrap();
        }
        assert_eq!(read(&host, "/etc/old.conf").as_deref(), Some("before"));
        assert!(!host.path(&hp("/new")).exists());
        assert!(jf.journal.pending.is_none());
    }

    #[test]
    fn commit_keeps_host_originals_for_reset_and_drops_own_backups() {
        let (_d, host, mut jf) = setup();
        std::fs::create_dir_all(host.path(&hp("/etc"))).unwrap();
        std::fs::write(host.path(&hp("/etc/hosts")), "site").unwrap();
        let mut t = Transaction::begin(&host, &mut jf, "files").unwrap();
        t.write(&hp("/etc/hosts"), 0o640, &mut &b"ferry"[..])
            .unwrap();
        t.commit(Some("files")).unwrap();
        assert_eq!(read(&host, "/etc/hosts").as_deref(), Some("ferry"));
        let kept = jf.journal.replaced.get("/etc/hosts").cloned().unwrap();
        assert_eq!(read(&host, &kept).as_deref(), Some("site"));
        assert!(jf.journal.is_done("files"));
        assert_eq!(
            std::fs::metadata(host.path(&hp("/etc/hosts")))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o640
        );
        // Rewriting ferry's own file: no new original is kept, the old one stays.
        let mut t = Transaction::begin(&host, &mut jf, "files").unwrap();
        t.write(&hp("/etc/hosts"), 0o644, &mut &b"ferry 2"[..])
            .unwrap();
        t.commit(Some("files")).unwrap();
        assert_eq!(read(&host, &kept).as_deref(), Some("site"));
        assert!(!host.path(&hp("/etc/hosts.ferry-bak")).exists());
    }

    #[test]
    fn an_abandoned_transaction_is_undone_by_the_next_run() {
        let (_d, host, mut jf) = setup();
        std::fs::create_dir_all(host.path(&hp("/etc"))).unwrap();
        std::fs::write(host.path(&hp("/etc/motd")), "hello").unwrap();
        let mut t = Transaction::begin(&host, &mut jf, "files").unwrap();
        t.write(&hp("/etc/motd"), 0o644, &mut &b"replaced"[..])
            .unwrap();
        t.write(&hp("/opt/x/y"), 0o644, &mut &b"new"[..]).unwrap();
        t.abandon();
        // A new process reads the journal from disk.
        let (mut jf2, _) = JournalFile::open(jf.path.clone()).unwrap();
        assert!(jf2.journal.pending.is_some());
        assert_eq!(
            Transaction::recover(&host, &mut jf2).unwrap().as_deref(),
            Some("files")
        );
        assert_eq!(read(&host, "/etc/motd").as_deref(), Some("hello"));
        assert!(!host.path(&hp("/opt")).exists());
        assert!(!host.path(&hp("/var/lib/ferry/backups/etc/motd")).exists());
    }

    #[test]
    fn a_crash_before_the_backup_leaves_the_target_alone() {
        let (_d, host, mut jf) = setup();
        std::fs::create_dir_all(host.path(&hp("/etc"))).unwrap();
        std::fs::write(host.path(&hp("/etc/a")), "orig").unwrap();
        // The change is recorded, then the process dies before linking the backup.
        jf.journal.pending = Some(PendingTx {
            phase: "files".into(),
            changes: vec![Change::File {
                path: "/etc/a".into(),
                backup: Some("/var/lib/ferry/backups/etc/a".into()),
                host_file: true,
            }],
        });
        jf.save().unwrap();
        Transaction::recover(&host, &mut jf).unwrap();
        assert_eq!(read(&host, "/etc/a").as_deref(), Some("orig"));
    }

    #[test]
    fn a_directory_someone_filled_is_kept_and_a_failed_rollback_is_reported() {
        let (_d, host, mut jf) = setup();
        let mut t = Transaction::begin(&host, &mut jf, "files").unwrap();
        t.write(&hp("/d/f"), 0o644, &mut &b"x"[..]).unwrap();
        // Someone puts a file into the directory the transaction created.
        std::fs::write(host.path(&hp("/d/theirs")), "y").unwrap();
        t.rollback().unwrap();
        assert_eq!(read(&host, "/d/theirs").as_deref(), Some("y"));
        assert!(
            jf.journal.dirs.contains("/d"),
            "kept, and still ferry's to reset"
        );

        // A change that cannot be undone is named.
        let mut t = Transaction::begin(&host, &mut jf, "files").unwrap();
        t.write(&hp("/e/f"), 0o644, &mut &b"x"[..]).unwrap();
        let real = host.path(&hp("/e/f"));
        std::fs::remove_file(&real).unwrap();
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("inside"), "z").unwrap();
        let e = t.rollback().unwrap_err().to_string();
        assert!(e.contains("/e/f:"), "{e}");
    }

    /// A service a phase started goes with the phase when it is undone (found by the
    /// kill -9 trials: it outlived its files and restarted without its config).
    #[test]
    fn undoing_a_phase_stops_the_services_it_started() {
        let (_d, host, mut jf) = setup();
        let mut sleeper = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid_file = host.path(&host.pid_file("svc"));
        std::fs::create_dir_all(pid_file.parent().unwrap()).unwrap();
        std::fs::write(&pid_file, format!("{}\n", sleeper.id())).unwrap();
        let mut t = Transaction::begin(&host, &mut jf, "runtime").unwrap();
        t.write(&hp("/etc/svc.conf"), 0o644, &mut &b"x"[..])
            .unwrap();
        t.service_started("svc").unwrap();
        t.abandon();
        let (mut jf2, _) = JournalFile::open(jf.path.clone()).unwrap();
        Transaction::recover(&host, &mut jf2).unwrap();
        assert!(
            sleeper.try_wait().unwrap().is_some(),
            "the service still runs"
        );
        assert!(!pid_file.exists());
        assert!(read(&host, "/etc/svc.conf").is_none());
    }

    #[test]
    fn removing_puts_a_replaced_host_file_back_and_can_be_undone() {
        let (_d, host, mut jf) = setup();
        std::fs::create_dir_all(host.path(&hp("/etc"))).unwrap();
        std::fs::write(host.path(&hp("/etc/hosts")), "site").unwrap();
        let mut t = Transaction::begin(&host, &mut jf, "files").unwrap();
        t.write(&hp("/etc/hosts"), 0o644, &mut &b"ferry"[..])
            .unwrap();
        t.write(&hp("/opt/x"), 0o644, &mut &b"ours"[..]).unwrap();
        t.commit(Some("files")).unwrap();
        // Undone: everything as it was.
        let mut t = Transaction::begin(&host, &mut jf, "upgrade").unwrap();
        t.remove(&hp("/etc/hosts")).unwrap();
        t.remove(&hp("/opt/x")).unwrap();
        assert_eq!(read(&host, "/etc/hosts").as_deref(), Some("site"));
        assert_eq!(read(&host, "/opt/x"), None);
        t.rollback().unwrap();
        assert_eq!(read(&host, "/etc/hosts").as_deref(), Some("ferry"));
        assert_eq!(read(&host, "/opt/x").as_deref(), Some("ours"));
        // Committed: the host's file is back and no longer ferry's.
        let mut t = Transaction::begin(&host, &mut jf, "upgrade").unwrap();
        t.remove(&hp("/etc/hosts")).unwrap();
        t.remove(&hp("/opt/x")).unwrap();
        t.commit(None).unwrap();
        assert_eq!(read(&host, "/etc/hosts").as_deref(), Some("site"));
        assert!(!jf.journal.files.contains("/etc/hosts") && jf.journal.replaced.is_empty());
        assert!(!host.path(&hp("/opt/x.ferry-removed")).exists());
    }

    #[test]
    fn links_are_written_and_undone() {
        let (_d, host, mut jf) = setup();
        let mut t = Transaction::begin(&host, &mut jf, "cluster").unwrap();
        t.symlink(&hp("/a/link"), "/opt/target").unwrap();
        assert_eq!(
            std::fs::read_link(host.path(&hp("/a/link"))).unwrap(),
            Path::new("/opt/target")
        );
        t.rollback().unwrap();
        assert!(std::fs::symlink_metadata(host.path(&hp("/a/link"))).is_err());
    }
}
