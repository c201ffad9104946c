//! Long-running services (registry, containerd, k3s): one code path that uses systemd
//! where PID 1 is systemd on the real root, and otherwise (containers, CI, `--root`
//! sandboxes) runs the service under ferry's own supervisor: a detached `supervise`
//! process that restarts the service when it dies and records pid files.
//!
//! [`steps`] turns a service into plan steps (a unit file and `systemctl`, or the
//! supervisor's command line); the engine's `System` starts and stops them through
//! [`ensure_running`] and [`stop`].

mod supervise;
pub mod systemd;

pub use supervise::{supervise, SuperviseStatus};

use crate::cli::SuperviseArgs;
use crate::engine::{CommandSpec, Content, Journal, ServiceManager, ServiceSpec, Step};
use crate::host::Host;
use std::io;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// True when PID 1 is systemd (and so units, not supervised processes, are used).
pub fn systemd_is_pid1() -> bool {
    std::fs::read_to_string("/proc/1/comm")
        .map(|s| s.trim() == "systemd")
        .unwrap_or(false)
}

pub fn use_systemd(host: &Host) -> bool {
    host.is_real_root() && systemd_is_pid1()
}

/// The plan steps that keep `name` running: `argv` is the service's own command line;
/// `supervisor` the program (the staged bundle, or the bare installer on joined nodes)
/// whose `supervise` command keeps it alive where there is no systemd.
pub fn steps(
    host: &Host,
    journal: &Journal,
    systemd: bool,
    supervisor: &str,
    name: &str,
    argv: Vec<String>,
    env: Vec<(String, String)>,
) -> Vec<Step> {
    let mut spec = ServiceSpec {
        name: name.to_string(),
        argv,
        env,
        manager: ServiceManager::Supervisor { argv: vec![] },
        revision: Default::default(),
    };
    if systemd {
        let unit = systemd::unit_name(name);
        spec.manager = ServiceManager::Systemd { unit: unit.clone() };
        vec![
            crate::install::file(
                host,
                journal,
                systemd::unit_path(name),
                0o644,
                Content::text(systemd::unit(&spec)),
            ),
            Step::Run(CommandSpec::new(["systemctl", "daemon-reload"])),
            Step::Service(spec),
        ]
    } else {
        let mut args = vec![supervisor.to_string()];
        args.extend(supervise_args(host, &spec).to_argv());
        spec.manager = ServiceManager::Supervisor { argv: args };
        vec![Step::Service(spec)]
    }
}

/// The supervisor's arguments for `spec` (after the program name).
pub fn supervise_args(host: &Host, spec: &ServiceSpec) -> SuperviseArgs {
    SuperviseArgs {
        name: spec.name.clone(),
        pid_file: host.path(&host.pid_file(&spec.name)),
        env: spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        argv: spec.argv.clone(),
    }
}

/// The supervisor pid recorded for `name`, if that process is alive and has not been
/// asked to stop. (A supervisor removes its pid file when it handles SIGTERM; before it
/// has, the signal is pending.)
pub fn running_pid(host: &Host, name: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(host.path(&host.pid_file(name)))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (alive(pid) && !stop_pending(pid)).then_some(pid)
}

/// True when SIGTERM or SIGINT waits to be handled by `pid`.
fn stop_pending(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let stop = (1u64 << (nix::libc::SIGTERM - 1)) | (1u64 << (nix::libc::SIGINT - 1));
    status
        .lines()
        .filter_map(|l| {
            l.strip_prefix("SigPnd:")
                .or_else(|| l.strip_prefix("ShdPnd:"))
        })
        .filter_map(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .any(|mask| mask & stop != 0)
}

/// Whether the running supervisor of `name` (if any) was started with `supervisor` (its
/// whole argv; the program name itself is not compared).
pub fn runs_with(host: &Host, name: &str, supervisor: &[String]) -> bool {
    let Some(pid) = running_pid(host, name) else {
        return true;
    };
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return true;
    };
    let raw = raw.strip_suffix(&[0]).unwrap_or(&raw);
    let running: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    running.get(1..) == supervisor.get(1..)
}

pub fn alive(pid: i32) -> bool {
    pid > 0
        && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(false)
}

/// The last lines of a service's log, with its path, for error messages.
pub fn log_tail(host: &Host, name: &str) -> String {
    let path = host.path(&host.log_file(name));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(8)..];
    if tail.is_empty() {
        return String::new();
    }
    format!(
        "\n  last lines of {}:\n{}",
        path.display(),
        tail.iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// Starts a supervised service unless it already runs. `supervisor` is the full argv
/// that starts its supervisor.
pub fn ensure_running(host: &Host, spec: &ServiceSpec, supervisor: &[String]) -> io::Result<()> {
    if let Some(pid) = running_pid(host, &spec.name) {
        // Asked to stop a moment ago, it may not have handled the signal at the first look.
        std::thread::sleep(Duration::from_millis(20));
        if running_pid(host, &spec.name) == Some(pid) {
            return Ok(());
        }
    }
    // A supervisor asked to stop by a run killed since (or started by one and not yet
    // settled) is let go first: it would otherwise count as running, then be gone.
    stop_supervised(host, &spec.name);
    let log = host.path(&host.log_file(&spec.name));
    std::fs::create_dir_all(log.parent().expect("log files live in a directory"))?;
    std::fs::create_dir_all(
        host.path(&host.pid_file(&spec.name))
            .parent()
            .expect("pid files live in a directory"),
    )?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let mut cmd = Command::new(&supervisor[0]);
    cmd.args(&supervisor[1..])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(io::Error::from));
    }
    let mut child = cmd.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("starting supervisor for {}: {e}", spec.name),
        )
    })?;
    // Wait for the pid file so that callers see a running service.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if running_pid(host, &spec.name).is_some() {
            std::thread::spawn(move || child.wait());
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            // Success: another supervisor (of a run killed a moment ago) holds the
            // service; its pid file is about to appear.
            if st.success() {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            return Err(io::Error::other(format!(
                "supervisor for {} exited at once ({st}){}",
                spec.name,
                log_tail(host, &spec.name)
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(io::Error::other(format!(
        "supervisor for {} did not start{}",
        spec.name,
        log_tail(host, &spec.name)
    )))
}

/// Stops a service and waits for it (and its child) to exit.
pub fn stop(host: &Host, name: &str) -> io::Result<()> {
    if use_systemd(host) {
        return systemd::stop(name);
    }
    stop_supervised(host, name);
    Ok(())
}

/// Stops every supervisor of `name`, running or already stopping, and removes its pid file.
fn stop_supervised(host: &Host, name: &str) {
    let pid_path = host.path(&host.pid_file(name));
    // A supervisor started a moment ago (by a run killed since) may not have written its
    // pid file yet: it is found by its command line instead.
    let mut pids: Vec<i32> = running_pid(host, name).into_iter().collect();
    for p in supervisors_of(&pid_path) {
        if !pids.contains(&p) {
            pids.push(p);
        }
    }
    for pid in pids {
        terminate(pid);
    }
    let _ = std::fs::remove_file(&pid_path);
}

/// Asks supervisor `pid` to stop (again, if it was asked already) and waits for it; kills
/// its process group after 15 s (it gives its service 10 s).
fn terminate(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(-pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Supervisor processes whose command line names `pid_file`.
fn supervisors_of(pid_file: &std::path::Path) -> Vec<i32> {
    let mark = format!("--pid-file\0{}\0", pid_file.display());
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&pid| pid != std::process::id() as i32)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains("\0supervise\0") && c.contains(&mark)
                })
                .unwrap_or(false)
        })
        .filter(|&pid| alive(pid))
        .collect()
}
