//! The journal (`<data>/journal.json`): what ferry did to this host, durably.
//!
//! It records which phases are done, every file and directory ferry created, every host
//! file it replaced (with where the original is kept), the services it started, the
//! node's role, and — while a phase runs — the phase's *pending* changes. It is written
//! atomically (temp file, fsync, rename, fsync of the directory) before each change a
//! phase makes, so after a crash, `kill -9` or power cut the next run finds either the
//! old or the new journal, rolls back the pending changes of an interrupted phase (see
//! [`super::transaction`]) and resumes. `reset` reads it to remove exactly what ferry
//! installed and to restore what it replaced.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What this host is to ferry. A host keeps one role until `reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Installed from a bundle: serves the images, runs the first k3s server.
    #[default]
    Server,
    /// Joined to a master with `join`.
    Join,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Server => "server",
            NodeRole::Join => "join",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Journal {
    /// Payload sha256 of the bundle (`sha256:<hex>`): a different bundle is not resumed.
    pub bundle_sha256: String,
    pub bundle_name: String,
    #[serde(default)]
    pub role: NodeRole,
    pub phases: Vec<PhaseRecord>,
    /// Host paths of files (and links) ferry wrote.
    #[serde(default)]
    pub files: BTreeSet<String>,
    /// Host paths of directories ferry created, for removal on reset.
    #[serde(default)]
    pub dirs: BTreeSet<String>,
    /// Host files ferry replaced → where their originals are kept (host paths). `reset`
    /// puts every original back.
    #[serde(default)]
    pub replaced: BTreeMap<String, String>,
    #[serde(default)]
    pub services: BTreeSet<String>,
    /// The revision each service was last started with (see `ServiceSpec::revision`).
    #[serde(default)]
    pub revisions: BTreeMap<String, String>,
    /// OS packages ferry installed (not those it upgraded), in install order: `reset`
    /// removes them, newest first. Recorded before dpkg runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    #[serde(default)]
    pub node_ip: String,
    #[serde(default)]
    pub registry_port: u16,
    #[serde(default)]
    pub join_port: u16,
    #[serde(default)]
    pub join_command: String,
    /// Registry this node's runtime pulls from (joined nodes: the master's, over TLS).
    #[serde(default)]
    pub registry_url: String,
    /// The site's registry the runtime pulls every image through (`--site-registry`),
    /// as `scheme://host[:port]/path`; empty when ferry's registry serves them.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub site_registry: String,
    /// The changes of a phase that has not finished; rolled back by the next run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingTx>,
    /// The staged bundle the installed version runs from (host path).
    #[serde(default)]
    pub staged: String,
    /// The staged bundle of the version before it, kept for `rollback` until the next
    /// upgrade (host path; empty when there is none).
    #[serde(default)]
    pub previous: String,
    /// An upgrade under way: if a run finds this, the upgrade was interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeState>,
    /// On joined nodes: what the master handed out at the last join or upgrade, so an
    /// interrupted node upgrade can return to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_info: Option<serde_json::Value>,
}

/// An upgrade in progress (or interrupted).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UpgradeState {
    /// Payload sha256 (`sha256:<hex>`) and staged path of the version being left.
    pub from: String,
    pub from_staged: String,
    /// … and of the version being installed.
    pub to: String,
    pub to_staged: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseRecord {
    pub name: String,
    /// `done` or `failed`.
    pub state: String,
    /// Seconds since the epoch.
    pub at: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// An unfinished phase's changes, in the order they were made.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PendingTx {
    pub phase: String,
    pub changes: Vec<Change>,
}

/// One change a transaction made (recorded *before* it is made).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A file ferry wrote, taken away: moved aside to `aside` (dropped at commit). If it
    /// had replaced a host file, that original (kept at `original`) is moved back.
    Remove {
        path: String,
        aside: String,
        #[serde(default)]
        original: Option<String>,
    },
    /// A directory created (it did not exist).
    Dir { path: String },
    /// A file or link written at `path`. `backup` holds what was there before (a hard link
    /// to the old inode), if anything; `host_file` says the old one was the host's own
    /// (kept until reset) rather than ferry's (dropped at commit).
    File {
        path: String,
        #[serde(default)]
        backup: Option<String>,
        #[serde(default)]
        host_file: bool,
    },
    /// A service started. Undoing the phase stops it: it was started from files the
    /// rollback removes (found by the kill -9 trials: a supervisor started by a killed
    /// run outlived the rollback of its phase and started containerd without a config).
    Service { name: String },
}

/// The journal one save earlier, kept next to it: what to fall back to if the disk loses
/// the latest save (see [`Journal::load`]'s error).
pub fn previous(path: &Path) -> PathBuf {
    path.with_extension("json.prev")
}

impl Journal {
    /// Reads the journal; `None` if there is none. A journal that does not parse (a disk
    /// that lost part of it after a power cut; every save is fsynced, so ferry itself
    /// never leaves one half-written) is an error that says what to do: ferry will not
    /// guess what it installed.
    pub fn load(path: &Path) -> std::io::Result<Option<Journal>> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                let prev = previous(path);
                let fallback = match std::fs::read(&prev).map(|b| serde_json::from_slice::<Journal>(&b)) {
                    Ok(Ok(_)) => format!(
                        "ferry keeps the journal one save earlier: `mv {} {}` and run again — the re-run undoes or \
                         finishes the interrupted phase (only the very last change may be unrecorded: a *.ferry-tmp \
                         file next to a file of the plan can be deleted)",
                        prev.display(),
                        path.display()
                    ),
                    _ => format!(
                        "{} is not usable either. Without a journal ferry cannot tell what it installed: stop \
                         ferry's services (kill the `supervise` processes of this root), put back the host files \
                         kept under {}/backups/ (each at its own path), then remove ferry's directories \
                         (the data directory, /etc/ferry, /opt/ferry, /run/ferry, /var/log/ferry) and install again",
                        prev.display(),
                        path.parent().map(|d| d.display().to_string()).unwrap_or_default()
                    ),
                };
                std::io::Error::other(format!(
                    "{}: damaged ({e}): ferry's record of what it installed was cut short, by a power cut or a \
                     disk error. {fallback}",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            )),
        }
    }

    pub fn is_done(&self, phase: &str) -> bool {
        self.phases
            .iter()
            .any(|p| p.name == phase && p.state == "done")
    }

    pub fn record(&mut self, phase: &str, result: Result<(), String>) {
        self.phases.retain(|p| p.name != phase);
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (state, error) = match result {
            Ok(()) => ("done", String::new()),
            Err(e) => ("failed", e),
        };
        self.phases.push(PhaseRecord {
            name: phase.into(),
            state: state.into(),
            at,
            error,
        });
    }
}

/// The journal and the file it lives in. Every [`JournalFile::save`] is atomic.
#[derive(Debug)]
pub struct JournalFile {
    pub path: PathBuf,
    pub journal: Journal,
}

impl JournalFile {
    /// Loads the journal at `path`, or starts an empty one (nothing is written yet).
    pub fn open(path: PathBuf) -> std::io::Result<(JournalFile, bool)> {
        let (journal, existed) = match Journal::load(&path)? {
            Some(j) => (j, true),
            None => (Journal::default(), false),
        };
        Ok((JournalFile { path, journal }, existed))
    }

    pub fn save(&self) -> std::io::Result<()> {
        save_atomically(&self.path, &self.journal)
    }
}

fn save_atomically(path: &Path, j: &Journal) -> std::io::Result<()> {
    let ctx = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(ctx)?;
    }
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(ctx)?;
        f.write_all(&serde_json::to_vec_pretty(j).expect("journal serialises"))
            .map_err(ctx)?;
        f.sync_all().map_err(ctx)?;
    }
    // The current journal stays reachable as the previous one: a disk that loses the
    // new save still has it (hard link: no copy; replaced on every save).
    let prev = previous(path);
    let _ = std::fs::remove_file(&prev);
    match std::fs::hard_link(path, &prev) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ctx(e)),
    }
    std::fs::rename(&tmp, path).map_err(ctx)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(ctx)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_atomically_and_reloads() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("journal.json");
        let (mut jf, existed) = JournalFile::open(p.clone()).unwrap();
        assert!(!existed);
        jf.journal.bundle_sha256 = "sha256:ab".into();
        jf.journal.record("stage", Ok(()));
        jf.journal.record("registry", Err("port busy".into()));
        jf.journal.record("registry", Ok(()));
        jf.journal.pending = Some(PendingTx {
            phase: "files".into(),
            changes: vec![Change::File {
                path: "/etc/x".into(),
                backup: Some("/var/lib/ferry/backups/etc/x".into()),
                host_file: true,
            }],
        });
        jf.save().unwrap();
        let back = Journal::load(&p).unwrap().unwrap();
        assert!(back.is_done("stage") && back.is_done("registry"));
        assert_eq!(back.phases.len(), 2);
        assert_eq!(back.pending, jf.journal.pending);
        assert!(!d.path().join("journal.json.tmp").exists());
    }

    #[test]
    fn a_damaged_journal_is_named_with_what_to_do() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("journal.json");
        std::fs::write(&p, "{ half").unwrap();
        let e = Journal::load(&p).unwrap_err().to_string();
        assert!(e.contains("journal.json") && e.contains("damaged"), "{e}");
        assert!(e.contains("backups/") && e.contains("install again"), "{e}");

        // With a journal one save earlier, the message says how to use it.
        let (mut jf, _) = JournalFile::open(p.with_extension("x")).unwrap();
        jf.path = p.clone();
        jf.journal.bundle_name = "one".into();
        std::fs::remove_file(&p).unwrap();
        jf.save().unwrap();
        jf.journal.bundle_name = "two".into();
        jf.save().unwrap();
        assert_eq!(
            Journal::load(&previous(&p)).unwrap().unwrap().bundle_name,
            "one"
        );
        let whole = std::fs::read(&p).unwrap();
        std::fs::write(&p, &whole[..whole.len() / 2]).unwrap();
        let e = Journal::load(&p).unwrap_err().to_string();
        assert!(
            e.contains(&format!("mv {} {}", previous(&p).display(), p.display())),
            "{e}"
        );
    }

    #[test]
    fn a_leftover_temporary_journal_is_ignored_and_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("journal.json");
        let (mut jf, _) = JournalFile::open(p.clone()).unwrap();
        jf.journal.bundle_name = "b".into();
        jf.save().unwrap();
        // A power cut while the next save was being written.
        std::fs::write(p.with_extension("json.tmp"), "{ \"bundle_sha").unwrap();
        let (mut jf, existed) = JournalFile::open(p.clone()).unwrap();
        assert!(existed);
        assert_eq!(jf.journal.bundle_name, "b");
        jf.journal.bundle_name = "c".into();
        jf.save().unwrap();
        assert_eq!(Journal::load(&p).unwrap().unwrap().bundle_name, "c");
        assert!(!p.with_extension("json.tmp").exists());
    }
}
