//! Upgrading an installed bundle to a newer one (and `rollback` to the one before).
//!
//! An upgrade is the new version's install plan, run by the engine in ONE transaction
//! ([`Engine::run_atomic`]): the new bundle is staged beside the old one, the registry
//! serves both (new names first) until the upgrade commits, files are rewritten where
//! they changed and removed where the new version no longer has them, services whose
//! binary or configuration changed are restarted (their revision differs), and health
//! must pass within `--wait-timeout`. Only then does the transaction commit. If anything
//! fails, every file goes back and the old plan is run again, so the services converge
//! back to the old version — a running application is never removed because an upgrade
//! failed. A crash leaves the journal's `upgrade` state behind; the next run first
//! returns to the old version, then upgrades again.

use super::{plan, InstallSettings, PlanError};
use crate::engine::journal::UpgradeState;
use crate::engine::{EngineError, JournalFile, Phase, PhaseName, Plan, Reporter, Step, System};
use crate::host::HostPath;
use ferry_bundle::Bundle;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("nothing is installed here; install the bundle first (`{0}`)")]
    NotInstalled(String),
    #[error("this host is a joined node: run the upgrade on its master, then `upgrade` here with the node's installer")]
    JoinedNode,
    #[error("the installed bundle is {installed}, this one is {this}: an upgrade replaces a bundle with a newer version of itself; `reset` first to install another one")]
    OtherBundle { installed: String, this: String },
    #[error("the installed bundle's staged copy {0} cannot be opened ({1}); the install is damaged — `reset` and install again")]
    StagedMissing(String, String),
    #[error("there is no previous version to roll back to (it is kept only after an upgrade)")]
    NoPrevious,
    #[error("this delta bundle upgrades {needs}, but {installed} is installed; use the complete bundle, or a delta made from the installed one (ferry build --delta-from)")]
    WrongBase { needs: String, installed: String },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("upgrade failed: {cause}; every file was put back and {old} is running again")]
    RolledBack { cause: String, old: String },
    #[error("upgrade failed: {cause}; and returning to {old} failed too: {back}")]
    RollbackFailed {
        cause: String,
        old: String,
        back: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("journal: {0}")]
    Journal(#[from] std::io::Error),
}

/// What changes between two versions of a bundle.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Diff {
    pub from: String,
    pub to: String,
    pub images_added: Vec<String>,
    pub images_removed: Vec<String>,
    /// (name, old digest, new digest)
    pub images_changed: Vec<(String, String, String)>,
    pub apps_added: Vec<String>,
    pub apps_removed: Vec<String>,
    pub apps_changed: Vec<String>,
    /// Runtime or cluster payload files (role) whose bytes differ.
    pub payload_changed: Vec<String>,
    /// `k3s v1 → v2`, when the cluster version changes.
    pub cluster: Option<String>,
    pub files_added: Vec<String>,
    pub files_removed: Vec<String>,
    pub files_changed: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.images_added.is_empty()
            && self.images_removed.is_empty()
            && self.images_changed.is_empty()
            && self.apps_added.is_empty()
            && self.apps_removed.is_empty()
            && self.apps_changed.is_empty()
            && self.payload_changed.is_empty()
            && self.cluster.is_none()
            && self.files_added.is_empty()
            && self.files_removed.is_empty()
            && self.files_changed.is_empty()
    }
}

fn entry_sha(b: &Bundle, path: &str) -> String {
    b.locate(path)
        .map(|l| l.entry.sha256.to_string())
        .unwrap_or_default()
}

/// Compares two versions of a bundle by what the host gets: images by digest, apps by the
/// bytes of their chart or manifests and values, payload files, COPY destinations.
pub fn diff(old: &Bundle, new: &Bundle) -> Diff {
    let (om, nm) = (&old.manifest, &new.manifest);
    let mut d = Diff {
        from: format!("{} {}", om.name, om.version).trim().to_string(),
        to: format!("{} {}", nm.name, nm.version).trim().to_string(),
        ..Default::default()
    };
    let oi: BTreeMap<String, String> = om
        .images
        .iter()
        .map(|i| (i.name.to_string(), i.digest.to_string()))
        .collect();
    let ni: BTreeMap<String, String> = nm
        .images
        .iter()
        .map(|i| (i.name.to_string(), i.digest.to_string()))
        .collect();
    for (n, dg) in &ni {
        match oi.get(n) {
            None => d.images_added.push(n.clone()),
            Some(o) if o != dg => d.images_changed.push((n.clone(), o.clone(), dg.clone())),
            _ => {}
        }
    }
    d.images_removed = oi
        .keys()
        .filter(|n| !ni.contains_key(*n))
        .cloned()
        .collect();
    let app_id = |b: &Bundle, a: &ferry_bundle::manifest::AppRecord| {
        let prefix = format!("{}/", a.path);
        let mut parts = vec![entry_sha(b, &a.path)];
        parts.extend(
            b.manifest
                .entries
                .iter()
                .filter(|e| e.path.starts_with(&prefix))
                .map(|e| e.sha256.to_string()),
        );
        parts.extend(a.values.iter().map(|v| entry_sha(b, v)));
        parts.extend(a.set.iter().cloned());
        parts.join(",")
    };
    let oa: BTreeMap<&str, String> = om
        .apps
        .iter()
        .map(|a| (a.name.as_str(), app_id(old, a)))
        .collect();
    let na: BTreeMap<&str, String> = nm
        .apps
        .iter()
        .map(|a| (a.name.as_str(), app_id(new, a)))
        .collect();
    for (n, id) in &na {
        match oa.get(n) {
            None => d.apps_added.push(n.to_string()),
            Some(o) if o != id => d.apps_changed.push(n.to_string()),
            _ => {}
        }
    }
    d.apps_removed = oa
        .keys()
        .filter(|n| !na.contains_key(*n))
        .map(|n| n.to_string())
        .collect();
    let payload = |b: &Bundle| -> BTreeMap<String, String> {
        b.manifest
            .payloads
            .iter()
            // This host's runtime: a mixed-cluster bundle also carries other platforms'.
            .filter(|p| b.manifest.payload(&p.name) == Some(*p))
            .flat_map(|p| {
                p.files
                    .iter()
                    .map(move |(role, e)| (format!("{} {role}", p.name), entry_sha(b, e)))
            })
            .collect()
    };
    let (op, np) = (payload(old), payload(new));
    let roles: BTreeSet<&String> = op.keys().chain(np.keys()).collect();
    d.payload_changed = roles
        .into_iter()
        .filter(|r| op.get(*r) != np.get(*r))
        .cloned()
        .collect();
    let cl = |b: &Bundle| {
        b.manifest
            .cluster
            .as_ref()
            .map(|c| format!("{} {}", c.distribution, c.version))
            .unwrap_or_else(|| "none".into())
    };
    if cl(old) != cl(new) {
        d.cluster = Some(format!("{} → {}", cl(old), cl(new)));
    }
    let files = |b: &Bundle| -> BTreeMap<String, String> {
        b.manifest
            .files
            .iter()
            .map(|f| (f.dest.to_string(), entry_sha(b, &f.entry)))
            .collect()
    };
    let (of, nf) = (files(old), files(new));
    for (p, sha) in &nf {
        match of.get(p) {
            None => d.files_added.push(p.clone()),
            Some(o) if o != sha => d.files_changed.push(p.clone()),
            _ => {}
        }
    }
    d.files_removed = of
        .keys()
        .filter(|p| !nf.contains_key(*p))
        .cloned()
        .collect();
    d
}

/// The diff for people.
pub fn diff_text(d: &Diff) -> String {
    let mut s = format!("upgrade {} → {}\n", d.from, d.to);
    let mut list = |what: &str, items: &[String]| {
        for i in items {
            s.push_str(&format!("  {what:<16} {i}\n"));
        }
    };
    list("image added", &d.images_added);
    list("image removed", &d.images_removed);
    let changed: Vec<String> = d
        .images_changed
        .iter()
        .map(|(n, o, nw)| format!("{n} ({} → {})", short(o), short(nw)))
        .collect();
    list("image changed", &changed);
    list("app added", &d.apps_added);
    list("app removed", &d.apps_removed);
    list("app changed", &d.apps_changed);
    list("payload changed", &d.payload_changed);
    list("file added", &d.files_added);
    list("file removed", &d.files_removed);
    list("file changed", &d.files_changed);
    if let Some(c) = &d.cluster {
        s.push_str(&format!("  cluster          {c}\n"));
    }
    if d.is_empty() {
        s.push_str("  (no change the host would see)\n");
    }
    s
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// The installed version: its staged bundle.
pub fn installed(s: &InstallSettings, jf: &JournalFile) -> Result<Bundle, UpgradeError> {
    let j = &jf.journal;
    if j.bundle_sha256.is_empty() {
        return Err(UpgradeError::NotInstalled(s.invocation.clone()));
    }
    if j.role == crate::engine::NodeRole::Join {
        return Err(UpgradeError::JoinedNode);
    }
    let staged = if j.staged.is_empty() {
        s.host.staged_bundle()
    } else {
        HostPath::new(j.staged.clone())
            .map_err(|e| UpgradeError::StagedMissing(j.staged.clone(), e.to_string()))?
    };
    let mut b = Bundle::open(&s.host.path(&staged))
        .map_err(|e| UpgradeError::StagedMissing(staged.to_string(), e.to_string()))?;
    b.attach_base_beside()
        .map_err(|e| UpgradeError::StagedMissing(staged.to_string(), e.to_string()))?;
    Ok(b)
}

/// The plan that upgrades `old` (staged at `old_staged`) to `new`: the new version's
/// install plan, its registry also serving the old images, plus the removal of files the
/// old version wrote and the new one does not.
pub fn plan_upgrade(
    s: &InstallSettings,
    old: &Bundle,
    old_staged: &HostPath,
    new: &Bundle,
    jf: &JournalFile,
) -> Result<Plan, PlanError> {
    let mut during = s.clone();
    during.serve_also = Some(old_staged.clone());
    let mut p = plan(&during, new, &jf.journal)?;
    let old_plan = plan(s, old, &jf.journal)?;
    let keep: BTreeSet<&HostPath> = p.files().map(|(_, f)| &f.path).collect();
    let gone: Vec<Step> = old_plan
        .files()
        .filter(|(_, f)| !keep.contains(&f.path))
        .map(|(_, f)| Step::Remove {
            path: f.path.clone(),
        })
        .collect();
    if !gone.is_empty() {
        match p.phases.iter_mut().find(|ph| ph.name == PhaseName::Files) {
            Some(files) => files.steps.extend(gone),
            None => p.phases.insert(
                1,
                Phase {
                    name: PhaseName::Files,
                    steps: gone,
                },
            ),
        }
    }
    p.notes.push(format!(
        "upgrade: every file change commits only when health passes; on failure {} is restored and running",
        old.manifest.name
    ));
    Ok(p)
}

#[derive(Debug)]
pub struct Upgraded {
    pub from: String,
    pub to: String,
}

/// Runs the upgrade of the installed version to `new` (`rollback` passes the previous
/// version as `new`).
pub fn run(
    s: &InstallSettings,
    new: &Bundle,
    jf: &mut JournalFile,
    sys: &dyn System,
    report: &Reporter,
) -> Result<Upgraded, UpgradeError> {
    let host = &s.host;
    // An interrupted upgrade first goes back to where it started.
    if let Some(st) = jf.journal.upgrade.clone() {
        report.say(&format!(
            "==> an earlier upgrade was interrupted: returning to {} first",
            st.from
        ));
        let from = HostPath::new(st.from_staged.clone())
            .map_err(|e| UpgradeError::StagedMissing(st.from_staged.clone(), e.to_string()))?;
        let old = Bundle::open(&host.path(&from))
            .map_err(|e| UpgradeError::StagedMissing(st.from_staged.clone(), e.to_string()))?;
        crate::engine::transaction::Transaction::recover(host, jf).map_err(EngineError::from)?;
        let old_plan = plan(s, &old, &jf.journal)?;
        engine(s, &old, sys, report).run(&old_plan, jf)?;
        jf.journal.upgrade = None;
        jf.save()?;
    }
    let old = installed(s, jf)?;
    if old.footer.payload_sha256 == new.footer.payload_sha256 {
        // Already this version (perhaps an upgrade that committed just before a crash):
        // make sure every service runs this version's revision.
        let p = plan(s, new, &jf.journal)?;
        engine(s, new, sys, report).run(&p, jf)?;
        return Ok(Upgraded {
            from: old.manifest.name.clone(),
            to: new.manifest.name.clone(),
        });
    }
    let old_staged = s.host.staged_version(&old.footer.payload_sha256);
    let new_staged = s.host.staged_version(&new.footer.payload_sha256);
    let p = plan_upgrade(s, &old, &old_staged, new, jf)?;
    jf.journal.upgrade = Some(UpgradeState {
        from: old.footer.payload_sha256.to_string(),
        from_staged: old_staged.to_string(),
        to: new.footer.payload_sha256.to_string(),
        to_staged: new_staged.to_string(),
    });
    jf.save()?;
    if let Err(e) = engine(s, new, sys, report).run_atomic(&p, jf) {
        if matches!(e, EngineError::Crashed(_)) {
            return Err(e.into());
        }
        // Files are back; make the services converge to the old version again.
        report.say(&format!(
            "==> upgrade failed: {e}; returning to the old version"
        ));
        let cause = format!("{e}");
        let old_plan = plan(s, &old, &jf.journal)?;
        let back = engine(s, &old, sys, report).run(&old_plan, jf);
        jf.journal.upgrade = None;
        jf.save()?;
        return Err(match back {
            Ok(()) => UpgradeError::RolledBack {
                cause,
                old: old.manifest.name.clone(),
            },
            Err(b) => UpgradeError::RollbackFailed {
                cause,
                old: old.manifest.name.clone(),
                back: b.to_string(),
            },
        });
    }
    // Committed: the new version is the installed one; the old one is kept for rollback,
    // the one before it is released.
    let released = std::mem::take(&mut jf.journal.previous);
    {
        let j = &mut jf.journal;
        j.bundle_sha256 = new.footer.payload_sha256.to_string();
        j.bundle_name = new.manifest.name.clone();
        j.staged = new_staged.to_string();
        j.previous = old_staged.to_string();
        j.upgrade = None;
    }
    jf.save()?;
    // A delta reads from its base: the current version's and the previous one's bases stay.
    let bases: Vec<String> = [new.manifest.delta.as_ref(), old.manifest.delta.as_ref()]
        .into_iter()
        .flatten()
        .map(|d| s.host.staged_version(&d.base).to_string())
        .collect();
    if !released.is_empty()
        && released != new_staged.as_str()
        && released != old_staged.as_str()
        && !bases.contains(&released)
    {
        if let Ok(r) = HostPath::new(released) {
            let mut tx = crate::engine::transaction::Transaction::begin(host, jf, "release")
                .map_err(EngineError::from)?;
            tx.remove(&r).map_err(EngineError::from)?;
            tx.commit(None).map_err(EngineError::from)?;
        }
    }
    // The registry stops serving the old version's images.
    let final_plan = plan(s, new, &jf.journal)?;
    engine(s, new, sys, report).run(&final_plan, jf)?;
    Ok(Upgraded {
        from: old.manifest.name.clone(),
        to: new.manifest.name.clone(),
    })
}

/// The previous version, for `rollback`.
pub fn previous(s: &InstallSettings, jf: &JournalFile) -> Result<Bundle, UpgradeError> {
    let p = &jf.journal.previous;
    if p.is_empty() {
        return Err(UpgradeError::NoPrevious);
    }
    let hp = HostPath::new(p.clone())
        .map_err(|e| UpgradeError::StagedMissing(p.clone(), e.to_string()))?;
    let mut b = Bundle::open(&s.host.path(&hp))
        .map_err(|e| UpgradeError::StagedMissing(p.clone(), e.to_string()))?;
    b.attach_base_beside()
        .map_err(|e| UpgradeError::StagedMissing(p.clone(), e.to_string()))?;
    Ok(b)
}

fn engine<'a>(
    s: &'a InstallSettings,
    b: &'a Bundle,
    sys: &'a dyn System,
    report: &'a Reporter,
) -> EngineHandle<'a> {
    EngineHandle { s, b, sys, report }
}

/// The engine for one version's plans.
struct EngineHandle<'a> {
    s: &'a InstallSettings,
    b: &'a Bundle,
    sys: &'a dyn System,
    report: &'a Reporter,
}

impl EngineHandle<'_> {
    fn run(&self, plan: &Plan, jf: &mut JournalFile) -> Result<(), EngineError> {
        super::with_engine(self.s, self.b, self.sys, self.report, |e| e.run(plan, jf))
    }
    fn run_atomic(&self, plan: &Plan, jf: &mut JournalFile) -> Result<(), EngineError> {
        super::with_engine(self.s, self.b, self.sys, self.report, |e| {
            e.run_atomic(plan, jf)
        })
    }
}
