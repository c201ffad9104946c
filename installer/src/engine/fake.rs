//! A recording [`System`] for tests: no process is started, every call is recorded, and
//! the "process" can be made to die at any checkpoint. Only compiled for tests: the
//! shipped installer has no crash hook.

use super::plan::{CommandSpec, HealthCheck, ServiceSpec};
use super::system::{CommandOutput, Crash, SysError, System};
use crate::host::Host;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Run(Vec<String>),
    Start(String),
    Stop(String),
    Restart(String),
    Probe(String),
    Random(usize),
    /// An image pushed to the site registry, and whether a login came with it.
    Push(String, bool),
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    running: BTreeSet<String>,
    checkpoints: Vec<String>,
    /// Probe → how many more probes fail (with the message) before it passes.
    failing_probes: BTreeMap<String, (usize, String)>,
    /// argv[0] → (exit status, stderr) for commands that fail.
    failing_commands: BTreeMap<String, (String, String)>,
    crash_at: Option<usize>,
    counter: u8,
    /// Probe needle → service: the probe fails after the service's first restart and
    /// passes again after its second (a new version that is broken, then rolled back).
    broken_after_restart: BTreeMap<String, (String, String)>,
    restarts: BTreeMap<String, usize>,
    /// Services running another command line than ferry last journaled, until restarted.
    stale: BTreeSet<String>,
}

#[derive(Default)]
pub struct RecordingSystem {
    state: Mutex<State>,
}

impl RecordingSystem {
    pub fn new() -> RecordingSystem {
        RecordingSystem::default()
    }
    /// `name` runs (as a process ferry started with another command line than the one
    /// it journaled: a run killed between restarting it and saving the journal).
    pub fn running_stale(self, name: &str) -> Self {
        let mut s = self.state.lock().unwrap();
        s.running.insert(name.to_string());
        s.stale.insert(name.to_string());
        drop(s);
        self
    }
    /// Dies at the `n`-th checkpoint (0-based) from now on.
    pub fn crash_at(self, n: usize) -> Self {
        self.state.lock().unwrap().crash_at = Some(n);
        self
    }
    /// The probe whose `what()` contains `needle` fails `times` times with `why`.
    pub fn fail_probe(self, needle: &str, times: usize, why: &str) -> Self {
        self.state
            .lock()
            .unwrap()
            .failing_probes
            .insert(needle.to_string(), (times, why.to_string()));
        self
    }
    /// The probe whose `what()` contains `needle` fails (with `why`) between the first
    /// and the second restart of `service`: an upgraded service that will not come up.
    pub fn broken_after_restart(self, needle: &str, service: &str, why: &str) -> Self {
        self.state
            .lock()
            .unwrap()
            .broken_after_restart
            .insert(needle.to_string(), (service.to_string(), why.to_string()));
        self
    }
    /// Commands whose program is `program`, or one of whose arguments contains it, fail.
    pub fn fail_command(self, program: &str, stderr: &str) -> Self {
        self.state.lock().unwrap().failing_commands.insert(
            program.to_string(),
            ("exit status: 1".into(), stderr.to_string()),
        );
        self
    }
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }
    pub fn checkpoints(&self) -> Vec<String> {
        self.state.lock().unwrap().checkpoints.clone()
    }
    pub fn running(&self) -> BTreeSet<String> {
        self.state.lock().unwrap().running.clone()
    }
}

impl System for RecordingSystem {
    fn run(&self, cmd: &CommandSpec) -> Result<CommandOutput, SysError> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(Call::Run(cmd.argv.clone()));
        let prog = cmd.argv.first().cloned().unwrap_or_default();
        let failing = s.failing_commands.get(&prog).or_else(|| {
            s.failing_commands
                .iter()
                .find(|(k, _)| {
                    cmd.argv[1.min(cmd.argv.len())..]
                        .iter()
                        .any(|a| a.contains(k.as_str()))
                })
                .map(|(_, v)| v)
        });
        Ok(match failing {
            Some((status, stderr)) => CommandOutput {
                success: false,
                status: status.clone(),
                stdout: String::new(),
                stderr: stderr.clone(),
            },
            None => CommandOutput {
                success: true,
                status: "exit status: 0".into(),
                ..Default::default()
            },
        })
    }
    fn start_service(&self, _host: &Host, svc: &ServiceSpec) -> Result<(), SysError> {
        let mut s = self.state.lock().unwrap();
        if s.running.insert(svc.name.clone()) {
            s.calls.push(Call::Start(svc.name.clone()));
        }
        Ok(())
    }
    fn stop_service(&self, _host: &Host, name: &str) -> Result<(), SysError> {
        let mut s = self.state.lock().unwrap();
        if s.running.remove(name) {
            s.calls.push(Call::Stop(name.to_string()));
        }
        Ok(())
    }
    fn restart_service(&self, _host: &Host, svc: &ServiceSpec) -> Result<(), SysError> {
        let mut s = self.state.lock().unwrap();
        s.running.insert(svc.name.clone());
        s.stale.remove(&svc.name);
        s.calls.push(Call::Restart(svc.name.clone()));
        *s.restarts.entry(svc.name.clone()).or_default() += 1;
        Ok(())
    }
    fn service_pid(&self, _host: &Host, name: &str) -> Option<i32> {
        self.state
            .lock()
            .unwrap()
            .running
            .contains(name)
            .then_some(4242)
    }
    fn service_runs_as_planned(&self, _host: &Host, svc: &ServiceSpec) -> bool {
        !self.state.lock().unwrap().stale.contains(&svc.name)
    }
    fn probe(&self, _host: &Host, check: &HealthCheck) -> Result<String, String> {
        let mut s = self.state.lock().unwrap();
        let what = check.what();
        s.calls.push(Call::Probe(what.clone()));
        for (needle, (service, why)) in &s.broken_after_restart {
            if what.contains(needle.as_str()) && s.restarts.get(service) == Some(&1) {
                return Err(why.clone());
            }
        }
        for (needle, (left, why)) in s.failing_probes.iter_mut() {
            if what.contains(needle.as_str()) && *left > 0 {
                *left -= 1;
                return Err(why.clone());
            }
        }
        Ok(String::new())
    }
    fn random(&self, buf: &mut [u8]) -> Result<(), SysError> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(Call::Random(buf.len()));
        for b in buf.iter_mut() {
            s.counter = s.counter.wrapping_add(1);
            *b = s.counter;
        }
        Ok(())
    }
    fn sleep(&self, _d: Duration) {
        std::thread::sleep(Duration::from_millis(1));
    }
    fn release_host(&self, _host: &Host) -> (usize, usize) {
        (0, 0)
    }
    /// Reads every blob and manifest of the step through `entries` (so a bundle that
    /// does not hold them fails as the real push would) and records the push.
    fn push_image(
        &self,
        push: &super::plan::PushStep,
        login: Option<&crate::site::Login>,
        entries: &dyn super::source::EntrySource,
    ) -> Result<String, SysError> {
        let mut bytes = 0;
        let refs = push
            .blobs
            .iter()
            .map(|b| &b.entry)
            .chain(push.manifests.iter().filter_map(|m| m.entry.as_ref()));
        for e in refs {
            let mut r = entries
                .open(e)
                .map_err(|err| SysError::Other(err.to_string()))?;
            bytes += std::io::copy(&mut r, &mut std::io::sink())
                .map_err(|err| SysError::Other(err.to_string()))?;
        }
        self.state
            .lock()
            .unwrap()
            .calls
            .push(Call::Push(push.image.clone(), login.is_some()));
        Ok(format!("read {bytes} bytes"))
    }
    fn checkpoint(&self, at: &str) -> Result<(), Crash> {
        let mut s = self.state.lock().unwrap();
        let n = s.checkpoints.len();
        s.checkpoints.push(at.to_string());
        if s.crash_at == Some(n) {
            return Err(Crash(at.to_string()));
        }
        Ok(())
    }
}
