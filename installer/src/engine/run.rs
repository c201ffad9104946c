//! The engine: runs a [`Plan`] on a host, phase by phase.
//!
//! For each phase: a phase the journal records as done is skipped (its services are
//! started again if they are not running: the host may have rebooted); otherwise its
//! steps run in order inside one [`Transaction`], and the phase is journaled as done in
//! the same atomic save that commits its files. A failing step rolls the phase's files
//! back and journals the failure with its cause; the next run retries the phase. A
//! crash leaves the phase pending in the journal and the next run undoes it first.

use super::journal::JournalFile;
use super::plan::{
    CommandSpec, Content, FileStep, HealthCheck, Phase, Plan, PushStep, Secret, ServiceSpec, Step,
};
use super::report::Reporter;
use super::source::{EntrySource, SecretSource, SourceError};
use super::system::{Crash, SysError, System};
use super::transaction::{Transaction, TxError};
use crate::host::{Host, HostPath};
use ferry_bundle::Bundle;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("phase {phase}: {source}")]
    Phase {
        phase: String,
        #[source]
        source: StepError,
    },
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error(transparent)]
    Crashed(#[from] Crash),
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("writing {path}: {source}")]
    Write {
        path: HostPath,
        #[source]
        source: TxError,
    },
    #[error("{what}: {source}")]
    Source {
        what: String,
        #[source]
        source: SourceError,
    },
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error("`{argv}` failed ({status}){stderr}")]
    Command {
        argv: String,
        status: String,
        stderr: String,
    },
    #[error("{what} not healthy after {secs:.1}s: {last}{log}")]
    Timeout {
        what: String,
        secs: f64,
        last: String,
        /// The service's log: path and last lines, when there is one.
        log: String,
    },
    #[error("{path}: the file system is full: {detail}; free space there (or install on a larger disk) and run again — this phase's changes were undone")]
    NoSpace { path: HostPath, detail: String },
    #[error("staging the bundle: {0}")]
    Stage(String),
    #[error("{0}")]
    Packages(String),
    #[error("{0}")]
    Rollback(#[from] TxError),
}

/// What the engine reads from besides the plan itself.
pub struct Resources<'a> {
    /// Bundle entries (the staged bundle, or the master).
    pub entries: &'a dyn EntrySource,
    pub secrets: &'a dyn SecretSource,
    /// The bundle this program carries, for a `Stage` step.
    pub stage_from: Option<&'a Bundle>,
    /// This program, whose stub part a `Content::InstallerStub` file is.
    pub self_exe: PathBuf,
}

pub struct Engine<'a> {
    pub sys: &'a dyn System,
    pub host: &'a Host,
    pub res: Resources<'a>,
    /// Longest wait of each `Wait` step.
    pub wait_timeout: Duration,
    /// How often a wait says what it waits for.
    pub wait_report_every: Duration,
    pub report: &'a Reporter,
}

impl Engine<'_> {
    pub fn run(&self, plan: &Plan, jf: &mut JournalFile) -> Result<(), EngineError> {
        if let Some(phase) = Transaction::recover(self.host, jf)? {
            self.report.say(&format!(
                "==> undid the unfinished changes of phase {phase} (interrupted earlier)"
            ));
        }
        for phase in &plan.phases {
            let name = phase.name.as_str();
            if jf.journal.is_done(name) && !phase.name.reruns() && !self.undone_since(phase) {
                for svc in phase.services() {
                    self.start(svc, jf)?;
                }
                continue;
            }
            self.report.say(&format!("==> {name}"));
            match self.run_phase(phase, jf) {
                Ok(()) => {}
                Err(EngineError::Phase { phase, source }) => {
                    jf.journal.record(&phase, Err(source.to_string()));
                    jf.save().map_err(TxError::Journal)?;
                    return Err(EngineError::Phase { phase, source });
                }
                Err(e) => return Err(e),
            }
            self.sys.checkpoint(&format!("{name}/done"))?;
        }
        Ok(())
    }

    /// Runs every phase of `plan` inside ONE transaction, committed only when all of them
    /// (health included) have passed: an upgrade either completes or leaves every file as
    /// it was. Phases are reported as they finish; the journal records them all as done at
    /// the commit. On error the transaction is rolled back (the caller then makes the
    /// services converge back to the old plan); a crash leaves it pending for the next
    /// run to roll back.
    pub fn run_atomic(&self, plan: &Plan, jf: &mut JournalFile) -> Result<(), EngineError> {
        Transaction::recover(self.host, jf)?;
        let mut tx = Transaction::begin(self.host, jf, "upgrade")?;
        for phase in &plan.phases {
            let name = phase.name.as_str();
            self.report.say(&format!("==> {name}"));
            for (i, step) in phase.steps.iter().enumerate() {
                if let Err(c) = self.sys.checkpoint(&format!("{name}/{i}")) {
                    tx.abandon();
                    return Err(c.into());
                }
                if let Err(e) = self.step(step, &mut tx) {
                    let source = match tx.rollback() {
                        Ok(()) => e,
                        Err(r) => StepError::Stage(format!("{e}; and then {r}")),
                    };
                    return Err(EngineError::Phase {
                        phase: name.to_string(),
                        source,
                    });
                }
            }
        }
        if let Err(c) = self.sys.checkpoint("commit") {
            tx.abandon();
            return Err(c.into());
        }
        for phase in &plan.phases {
            tx.journal().record(phase.name.as_str(), Ok(()));
        }
        tx.commit(None)?;
        Ok(())
    }

    /// Whether what a journaled phase made is gone since: a staged bundle cut short or
    /// missing (a disk that lost data in a power cut, or someone's `rm`). Such a phase
    /// runs again; its services, down after the power cut, start from the new copy.
    fn undone_since(&self, phase: &Phase) -> bool {
        let Some(b) = self.res.stage_from else {
            return false;
        };
        phase.steps.iter().any(|s| match s {
            Step::Stage { dest, .. } if !crate::install::stage::already_staged(self.host, dest, b) => {
                self.report.say(&format!(
                    "==> the staged bundle {} is damaged or missing (cut short by a power cut?): staging it again",
                    self.host.path(dest).display()
                ));
                true
            }
            _ => false,
        })
    }

    fn start(&self, svc: &ServiceSpec, jf: &mut JournalFile) -> Result<(), EngineError> {
        let running = self.sys.service_pid(self.host, &svc.name).is_some();
        self.converge(svc, &mut jf.journal, running)
            .map_err(|e| EngineError::Phase {
                phase: "services".into(),
                source: e.into(),
            })?;
        jf.save().map_err(TxError::Journal)?;
        Ok(())
    }

    /// Makes `svc` run at its revision: started if it is not `running`, restarted if it
    /// runs another revision. Recorded in the journal before anything starts, so that
    /// `reset` stops it whatever happens next.
    fn converge(
        &self,
        svc: &ServiceSpec,
        j: &mut crate::engine::Journal,
        running: bool,
    ) -> Result<(), SysError> {
        j.services.insert(svc.name.clone());
        let want = svc.revision.to_string();
        let had = j.revisions.insert(svc.name.clone(), want.clone());
        // The journal's revision is what ferry last started; the process may run another
        // (a run killed between restarting it and saving the journal): its command line
        // says which.
        let stale = running && !self.sys.service_runs_as_planned(self.host, svc);
        if running && (had.as_deref() != Some(want.as_str()) || stale) {
            self.report.say(&format!(
                "    restarting {} (its binary or configuration changed)",
                svc.name
            ));
            self.sys.restart_service(self.host, svc)
        } else {
            self.sys.start_service(self.host, svc)
        }
    }

    fn run_phase(&self, phase: &Phase, jf: &mut JournalFile) -> Result<(), EngineError> {
        let name = phase.name.as_str();
        let fail = |source: StepError| EngineError::Phase {
            phase: name.to_string(),
            source,
        };
        let mut tx = Transaction::begin(self.host, jf, name)?;
        for (i, step) in phase.steps.iter().enumerate() {
            if let Err(c) = self.sys.checkpoint(&format!("{name}/{i}")) {
                tx.abandon();
                return Err(c.into());
            }
            if let Err(e) = self.step(step, &mut tx) {
                return Err(fail(match tx.rollback() {
                    Ok(()) => e,
                    Err(r) => StepError::Stage(format!("{e}; and then {r}")),
                }));
            }
        }
        tx.commit(Some(name))
            .map_err(|e| fail(StepError::Rollback(e)))
    }

    fn step(&self, step: &Step, tx: &mut Transaction) -> Result<(), StepError> {
        match step {
            Step::Stage { dest, .. } => self.stage(dest, tx),
            Step::WriteFile(f) => self.write(f, tx),
            Step::Remove { path } => tx.remove(path).map_err(|source| StepError::Write {
                path: path.clone(),
                source,
            }),
            Step::Link { path, target } => {
                tx.symlink(path, target).map_err(|source| StepError::Write {
                    path: path.clone(),
                    source,
                })
            }
            Step::Service(svc) => {
                // A service this phase starts is recorded in the transaction before it
                // starts: undoing the phase stops it (also when its supervisor has not
                // written its pid file yet). One running before keeps running.
                let running = self.sys.service_pid(self.host, &svc.name).is_some();
                if !running {
                    tx.service_started(&svc.name)
                        .map_err(|source| StepError::Write {
                            path: self.host.pid_file(&svc.name),
                            source,
                        })?;
                }
                Ok(self.converge(svc, tx.journal(), running)?)
            }
            Step::Run(cmd) => self.command(cmd),
            Step::Dpkg(d) => {
                tx.note(|j| {
                    for p in &d.install {
                        if !j.packages.contains(p) {
                            j.packages.push(p.clone());
                        }
                    }
                })?;
                self.command(&d.command)
                    .map_err(|e| crate::install::packages::dpkg_failed(d, e))
            }
            Step::Wait(check) => self.wait(check),
            Step::Push(push) => self.push(push),
        }
    }

    /// Runs a command, showing what it prints; a non-zero exit is an error with its stderr.
    fn command(&self, cmd: &CommandSpec) -> Result<(), StepError> {
        self.report
            .log_only(&format!("running {}", cmd.argv.join(" ")));
        let out = self.sys.run(cmd)?;
        for l in out.stdout.lines().chain(out.stderr.lines()) {
            self.report.say(&format!("    {l}"));
        }
        if out.success {
            Ok(())
        } else {
            let err = out.stderr.trim();
            Err(StepError::Command {
                argv: cmd.argv.join(" "),
                status: out.status,
                stderr: if err.is_empty() {
                    String::new()
                } else {
                    format!(": {err}")
                },
            })
        }
    }

    /// Pushes one image into the site's registry, with the site login from the secrets.
    fn push(&self, push: &PushStep) -> Result<(), StepError> {
        let login = match self.res.secrets.secret(Secret::SiteLogin) {
            Ok(b) if !b.is_empty() => Some(
                serde_json::from_slice(&b)
                    .map_err(|e| StepError::Stage(format!("the site registry login: {e}")))?,
            ),
            _ => None,
        };
        self.report
            .log_only(&format!("pushing {} to {}", push.image, push.target));
        let done = self
            .sys
            .push_image(push, login.as_ref(), self.res.entries)?;
        self.report
            .say(&format!("    {} -> {}: {done}", push.image, push.target));
        Ok(())
    }

    fn write(&self, f: &FileStep, tx: &mut Transaction) -> Result<(), StepError> {
        let source = |what: String| move |source| StepError::Source { what, source };
        let mut reader: Box<dyn Read + '_> = match &f.content {
            Content::Bytes { bytes } => Box::new(&bytes[..]),
            Content::Entry(e) => {
                let raw = self.res.entries.open(e).map_err(source(format!(
                    "{} from {}",
                    e.entry,
                    self.res.entries.describe()
                )))?;
                if e.zstd {
                    Box::new(zstd::stream::read::Decoder::new(raw).map_err(|err| {
                        StepError::Source {
                            what: e.entry.clone(),
                            source: SourceError::Other(err.to_string()),
                        }
                    })?)
                } else {
                    raw
                }
            }
            Content::Secret { secret } => Box::new(std::io::Cursor::new(
                self.res
                    .secrets
                    .secret(*secret)
                    .map_err(source(secret.describe().to_string()))?,
            )),
            Content::InstallerStub => {
                Box::new(std::io::Cursor::new(bare_installer(&self.res.self_exe)?))
            }
            Content::Private { bytes, .. } => Box::new(&bytes[..]),
        };
        let stub = std::fs::metadata(&self.res.self_exe).map_or(0, |m| m.len());
        tx.write(&f.path, f.mode, &mut reader)
            .map_err(|source| self.write_error(&f.path, f.content.written_bytes(stub), source))
    }

    /// A failed write; a full file system says where and how much is needed.
    fn write_error(
        &self,
        path: &HostPath,
        need: u64,
        source: super::transaction::TxError,
    ) -> StepError {
        let full = match &source {
            TxError::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::StorageFull
                    || source.kind() == std::io::ErrorKind::QuotaExceeded
                    || source.to_string().contains("No space left")
            }
            _ => false,
        };
        if !full {
            return StepError::Write {
                path: path.clone(),
                source,
            };
        }
        let mut at = self.host.path(path);
        while std::fs::symlink_metadata(&at).is_err() {
            match at.parent() {
                Some(p) => at = p.to_path_buf(),
                None => break,
            }
        }
        let free = nix::sys::statvfs::statvfs(&at)
            .map(|s| s.blocks_available() * s.fragment_size())
            .unwrap_or(0);
        StepError::NoSpace {
            path: path.clone(),
            detail: format!(
                "this file needs {}, and {} is free at {}",
                crate::install::preflight::size(need),
                crate::install::preflight::size(free),
                at.display()
            ),
        }
    }

    /// Verifies every byte of the bundle while copying it to `dest`; skips the copy when
    /// `dest` already holds exactly this bundle.
    fn stage(&self, dest: &HostPath, tx: &mut Transaction) -> Result<(), StepError> {
        let b = self
            .res
            .stage_from
            .ok_or_else(|| StepError::Stage("no bundle to stage".into()))?;
        if crate::install::stage::already_staged(self.host, dest, b) {
            return Ok(());
        }
        let bar = ferry_console::bytes_bar(b.file_len, "verifying", self.report.is_quiet());
        let r = tx.write_with(dest, 0o755, |f| {
            let mut w = super::writeback::Writeback::new(f);
            ferry_bundle::verify::check_and_copy(b, &|n| bar.set_position(n), Some(&mut w))
                .map(|_| ())
                .map_err(std::io::Error::other)
        });
        bar.finish_and_clear();
        r.map_err(|source| self.write_error(dest, b.file_len, source))
    }

    /// Probes `check` until it passes or the timeout ends; says what it waits for every
    /// few seconds; on timeout names the last error and the service's own log.
    fn wait(&self, check: &HealthCheck) -> Result<(), StepError> {
        let started = Instant::now();
        let deadline = started + self.wait_timeout;
        let mut next_report = started + self.wait_report_every;
        loop {
            match self.sys.probe(self.host, check) {
                Ok(report) => {
                    if !report.is_empty() {
                        self.report.say(report.trim_end());
                    }
                    return Ok(());
                }
                Err(last) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(StepError::Timeout {
                            what: check.what(),
                            secs: self.wait_timeout.as_secs_f64(),
                            last,
                            log: check
                                .service()
                                .map(|s| crate::service::log_tail(self.host, s))
                                .unwrap_or_default(),
                        });
                    }
                    if now >= next_report {
                        let left = deadline.saturating_duration_since(now).as_secs();
                        self.report.say(&format!(
                            "    waiting for {} ({left}s left): {}",
                            check.what(),
                            last.lines().next().unwrap_or("")
                        ));
                        next_report = now + self.wait_report_every;
                    }
                    self.sys.sleep(Duration::from_millis(200));
                }
            }
        }
    }
}

/// This program without its payload, with its size marker blank again: a bare installer
/// (a marker with a size would make it think it is a bundle cut short).
fn bare_installer(exe: &std::path::Path) -> Result<Vec<u8>, StepError> {
    let fail = |e: std::io::Error| StepError::Stage(format!("{}: {e}", exe.display()));
    let stub_len = Bundle::open(exe)
        .map(|b| b.footer.payload_offset)
        .unwrap_or(u64::MAX);
    let mut bytes = Vec::new();
    std::fs::File::open(exe)
        .map_err(fail)?
        .take(stub_len)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    if let Some(at) = ferry_bundle::marker::find(&bytes) {
        bytes[at..at + ferry_bundle::marker::MARKER_LEN]
            .copy_from_slice(&ferry_bundle::marker::encode(0));
    }
    Ok(bytes)
}
