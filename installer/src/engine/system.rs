//! Every side effect on a host that is not a file write, behind one trait.
//!
//! Like youki's `Syscall` and rust-extensions' `Spawner`: the engine runs commands,
//! starts and stops services, probes health, draws random bytes and sleeps only through
//! [`System`]. [`RealSystem`] does it for real; the recording fake in
//! [`super::fake`] records every call and can simulate a crash at any step, so resume,
//! rollback and reset are unit-tested without root and without a single real process.
//! File writes are the transaction's job ([`super::transaction`]); they work the same in
//! tests, under a temporary `--root`.

use super::plan::{CommandSpec, HealthCheck, PushStep, ServiceManager, ServiceSpec};
use super::source::EntrySource;
use crate::host::Host;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Service(String),
    #[error("{0}")]
    Other(String),
}

/// What a finished command said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    pub success: bool,
    /// Exit status as text (`exit status: 2`, `signal: 9`).
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

/// The simulated death of the process at a checkpoint (tests only: the real system never
/// crashes on purpose).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("simulated crash at {0}")]
pub struct Crash(pub String);

pub trait System {
    /// Runs a command to completion and returns what it printed.
    fn run(&self, cmd: &CommandSpec) -> Result<CommandOutput, SysError>;
    /// Starts `svc` unless it already runs.
    fn start_service(&self, host: &Host, svc: &ServiceSpec) -> Result<(), SysError>;
    /// Stops a service and waits for it to exit.
    fn stop_service(&self, host: &Host, name: &str) -> Result<(), SysError>;
    /// Stops `svc` and starts it again (its binary or configuration changed).
    fn restart_service(&self, host: &Host, svc: &ServiceSpec) -> Result<(), SysError> {
        match &svc.manager {
            ServiceManager::Systemd { unit } => {
                let out = self.run(&CommandSpec::new(["systemctl", "restart", unit]))?;
                if out.success {
                    Ok(())
                } else {
                    Err(SysError::Service(format!(
                        "systemctl restart {unit}: {} {}",
                        out.status,
                        out.stderr.trim()
                    )))
                }
            }
            ServiceManager::Supervisor { .. } => {
                self.stop_service(host, &svc.name)?;
                self.start_service(host, svc)
            }
        }
    }
    /// The pid of a running supervised service.
    fn service_pid(&self, host: &Host, name: &str) -> Option<i32>;
    /// Whether the running `svc` was started as `svc` says (its supervisor's command
    /// line). False when it runs another one: a run killed after restarting a service but
    /// before journaling its revision leaves the journal believing the old one.
    fn service_runs_as_planned(&self, _host: &Host, _svc: &ServiceSpec) -> bool {
        true
    }
    /// One probe of a health check: `Ok(report)` when it passes (the report, possibly
    /// empty, is shown to the operator), `Err(why not)` otherwise.
    fn probe(&self, host: &Host, check: &HealthCheck) -> Result<String, String>;
    /// Fills `buf` with random bytes from the kernel.
    fn random(&self, buf: &mut [u8]) -> Result<(), SysError>;
    fn sleep(&self, d: Duration);
    /// Kills stray processes started from ferry's paths (containerd shims, k3s children)
    /// and detaches mounts below ferry's trees, for `reset`. Returns (killed, unmounted).
    fn release_host(&self, host: &Host) -> (usize, usize);
    /// Pushes one image into the site's registry (bytes from `entries`); returns what it
    /// did, for the progress line.
    fn push_image(
        &self,
        push: &PushStep,
        login: Option<&crate::site::Login>,
        entries: &dyn EntrySource,
    ) -> Result<String, SysError>;
    /// A point where a test may make the process "die". The real system never does.
    fn checkpoint(&self, _at: &str) -> Result<(), Crash> {
        Ok(())
    }
}

/// The real host.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealSystem;

impl System for RealSystem {
    fn run(&self, cmd: &CommandSpec) -> Result<CommandOutput, SysError> {
        let program = cmd.argv.first().cloned().unwrap_or_default();
        let out = std::process::Command::new(&program)
            .args(&cmd.argv[1.min(cmd.argv.len())..])
            .envs(cmd.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|source| SysError::Spawn {
                program: program.clone(),
                source,
            })?;
        Ok(CommandOutput {
            success: out.status.success(),
            status: out.status.to_string(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn start_service(&self, host: &Host, svc: &ServiceSpec) -> Result<(), SysError> {
        match &svc.manager {
            ServiceManager::Supervisor { argv } => crate::service::ensure_running(host, svc, argv)
                .map_err(|e| SysError::Service(e.to_string())),
            ServiceManager::Systemd { unit } => {
                let out = self.run(&CommandSpec::new(["systemctl", "enable", "--now", unit]))?;
                if out.success {
                    Ok(())
                } else {
                    Err(SysError::Service(format!(
                        "systemctl enable --now {unit}: {} {}",
                        out.status,
                        out.stderr.trim()
                    )))
                }
            }
        }
    }

    fn stop_service(&self, host: &Host, name: &str) -> Result<(), SysError> {
        crate::service::stop(host, name).map_err(|e| SysError::Service(e.to_string()))
    }

    fn service_pid(&self, host: &Host, name: &str) -> Option<i32> {
        crate::service::running_pid(host, name)
    }

    fn service_runs_as_planned(&self, host: &Host, svc: &ServiceSpec) -> bool {
        match &svc.manager {
            ServiceManager::Supervisor { argv } => crate::service::runs_with(host, &svc.name, argv),
            ServiceManager::Systemd { .. } => true,
        }
    }

    fn probe(&self, host: &Host, check: &HealthCheck) -> Result<String, String> {
        crate::install::health::probe(host, check)
    }

    fn random(&self, buf: &mut [u8]) -> Result<(), SysError> {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(buf))
            .map_err(|e| SysError::Other(format!("/dev/urandom: {e}")))
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }

    fn release_host(&self, host: &Host) -> (usize, usize) {
        (
            crate::install::reset::kill_strays(host),
            crate::install::reset::unmount_under(host),
        )
    }

    fn push_image(
        &self,
        push: &PushStep,
        login: Option<&crate::site::Login>,
        entries: &dyn EntrySource,
    ) -> Result<String, SysError> {
        let c = crate::site::push::Client::new(&push.site, login).map_err(SysError::Other)?;
        c.push(push, entries)
            .map(|p| p.to_string())
            .map_err(SysError::Other)
    }
}
