//! The install engine: one way to change a host, used by install, join (and upgrade).
//!
//! Why an engine: what ferry does to a host must be reviewable before it happens
//! (`plan`), resumable after a crash, undoable when a phase fails, and removable by
//! `reset` without touching what ferry did not create. Those properties are easy to lose
//! when every command writes files its own way, so every command instead *describes* its
//! work as a [`Plan`] and hands it to [`Engine::run`]:
//!
//! - [`plan`]: the vocabulary — phases of steps (write a file from bytes, a bundle entry
//!   or a secret; link; keep a service running; run a command; wait for health).
//! - [`run`]: executes a plan phase by phase, each phase in one [`transaction`],
//!   journaled in [`journal`] when done.
//! - [`transaction`]: file changes recorded before they are made, rolled back on error
//!   or by the next run after a crash; host files replaced are kept for `reset`.
//! - [`system`]: every other side effect (commands, services, probes, randomness) behind
//!   one trait, with a recording fake (`fake`, tests only).
//! - [`source`]: where entry bytes come from — the staged bundle, or the master — always
//!   verified against bundle.json.
//! - [`print`] and [`report`]: the plan for people, and progress lines plus the run log.
//! - [`writeback`]: large copies (staging) that start their writeback as they go.
//!
//! Install and join differ only in the plan they build and the source they read from.

#[cfg(test)]
pub mod fake;
pub mod journal;
pub mod plan;
pub mod print;
pub mod report;
pub mod run;
pub mod source;
pub mod system;
pub mod transaction;
pub mod writeback;

pub use journal::{Journal, JournalFile, NodeRole};
pub use plan::{
    CommandSpec, Content, DpkgStep, EntryRef, Existing, FileStep, HealthCheck, Phase, PhaseName,
    Plan, PlanKind, PushBlob, PushManifest, PushStep, Secret, ServiceManager, ServiceSpec, Step,
};
pub use report::Reporter;
pub use run::{Engine, EngineError, Resources, StepError};
pub use source::{EntrySource, SecretSource, SourceError, StagedBundle};
pub use system::{RealSystem, System};

/// What a file step will find at `path`, judged from the journal and the host.
pub fn existing(
    host: &crate::host::Host,
    journal: &Journal,
    path: &crate::host::HostPath,
) -> Existing {
    if journal.files.contains(path.as_str()) {
        Existing::Ours
    } else if std::fs::symlink_metadata(host.path(path)).is_ok() {
        Existing::HostFile
    } else {
        Existing::Nothing
    }
}

/// Creates ferry's own directory trees (data, /etc/ferry, /run/ferry, logs, /opt/ferry)
/// in a transaction of their own, so that the journal knows which of them ferry made and
/// `reset` removes exactly those.
pub fn claim_trees(
    host: &crate::host::Host,
    jf: &mut JournalFile,
) -> Result<(), transaction::TxError> {
    // Which directories are missing must be known before the journal's first save
    // creates the data directory. A run killed right after that save left the data
    // directory (and its parents) holding nothing but the journal: those are ferry's too,
    // or reset would leave them, and all the runtime later puts in them, behind (found by
    // the kill -9 trials, tests/e2e/crash.rs).
    //
    // An interrupted earlier claim is undone first: it removes the directories that run
    // made, and they must then count as missing, or nothing would record them when they
    // are made again (found by the kill -9 trials too: /var/log/ferry outlived reset).
    transaction::Transaction::recover(host, jf)?;
    let journal = host.journal();
    let mut missing: Vec<crate::host::HostPath> = Vec::new();
    for t in host.owned_trees() {
        let mut cur = Some(t);
        let mut child: Option<String> = None;
        while let Some(d) = cur {
            let exists = std::fs::symlink_metadata(host.path(&d)).is_ok();
            if exists
                && (d.as_str() == "/"
                    || !holds_only_the_journal(host, &d, child.as_deref(), &journal))
            {
                break;
            }
            child = d.as_str().rsplit('/').next().map(str::to_string);
            cur = d.parent();
            if !missing.contains(&d) {
                missing.push(d);
            }
        }
    }
    missing.sort_by_key(|d| d.as_str().len());
    let mut tx = transaction::Transaction::begin(host, jf, "prepare")?;
    tx.adopt_dirs(&missing)?;
    tx.commit(None)
}

/// Whether directory `d` lies on the journal's path and holds nothing but ferry's journal
/// files (the data directory: and at least one of them), or only the one directory
/// (`child`) on the way down to them. A mount point is never ferry's: an operator may
/// mount a disk as the data directory.
fn holds_only_the_journal(
    host: &crate::host::Host,
    d: &crate::host::HostPath,
    child: Option<&str>,
    journal: &crate::host::HostPath,
) -> bool {
    use std::os::unix::fs::MetadataExt;
    if !journal.starts_with(d) {
        return false;
    }
    let real = host.path(d);
    let dev = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    if real.parent().is_none_or(|p| dev(p) != dev(&real)) {
        return false;
    }
    let Ok(rd) = std::fs::read_dir(&real) else {
        return false;
    };
    let names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let is_journal =
        |n: &str| matches!(n, "journal.json" | "journal.json.tmp" | "journal.json.prev");
    match child {
        None => !names.is_empty() && names.iter().all(|n| is_journal(n)),
        Some(c) => names.iter().all(|n| n == c),
    }
}
