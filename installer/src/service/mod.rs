//! Long-running services (registry, containerd, k3s): one code path that uses systemd
//! where PID 1 is systemd on the real root, and otherwise (containers, CI, `--root`
//! sandboxes) runs the service under ferry's own supervisor: a detached `supervise`
//! process that restarts the service when it dies and records pid files.

mod supervise;
pub mod systemd;

pub use supervise::supervise;

use crate::host::Host;
use crate::install::actions::ServiceSpec;
use std::io;
use std::path::Path;
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

/// The supervisor pid recorded for `name`, if that process is alive.
pub fn running_pid(host: &Host, name: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(host.path(&host.pid_file(name)))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    alive(pid).then_some(pid)
}

pub fn alive(pid: i32) -> bool {
    pid > 0
        && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(false)
}

/// The argv that starts `spec` under the supervisor (what `plan` shows).
pub fn supervise_argv(host: &Host, exe: &str, spec: &ServiceSpec) -> Vec<String> {
    let mut v = vec![
        exe.to_string(),
        "supervise".into(),
        "--name".into(),
        spec.name.clone(),
        "--pid-file".into(),
        host.path(&host.pid_file(&spec.name)).display().to_string(),
    ];
    for (k, val) in &spec.env {
        v.push("--env".into());
        v.push(format!("{k}={val}"));
    }
    v.push("--".into());
    v.extend(spec.argv.iter().cloned());
    v
}

/// Starts `spec` unless it already runs. `exe` is the program that supervises (the staged
/// bundle or the installer itself).
pub fn ensure_running(host: &Host, exe: &Path, spec: &ServiceSpec) -> io::Result<()> {
    if use_systemd(host) {
        return systemd::ensure(spec);
    }
    if running_pid(host, &spec.name).is_some() {
        return Ok(());
    }
    let log = host.path(&host.log_file(&spec.name));
    std::fs::create_dir_all(log.parent().unwrap())?;
    std::fs::create_dir_all(host.path(&host.pid_file(&spec.name)).parent().unwrap())?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let argv = supervise_argv(host, &exe.display().to_string(), spec);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
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
            return Err(io::Error::other(format!(
                "supervisor for {} exited at once ({st}); see {}",
                spec.name,
                log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(io::Error::other(format!(
        "supervisor for {} did not start; see {}",
        spec.name,
        log.display()
    )))
}

/// Stops a service and waits for it (and its child) to exit.
pub fn stop(host: &Host, name: &str) -> io::Result<()> {
    if use_systemd(host) {
        return systemd::stop(name);
    }
    let pid_path = host.path(&host.pid_file(name));
    if let Some(pid) = running_pid(host, name) {
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
    let _ = std::fs::remove_file(&pid_path);
    Ok(())
}
