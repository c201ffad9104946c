//! `reset`: stop what ferry started and remove everything it installed — and nothing
//! else. Services are stopped first (supervisors, then any containerd shim still bound to
//! ferry's socket), mounts under ferry's trees are detached, then the files the journal
//! lists, ferry's own trees, and the directories it created (only if empty).

use crate::host::Host;
use crate::install::journal::Journal;
use std::path::Path;

#[derive(Debug, Default, serde::Serialize)]
pub struct ResetReport {
    pub services_stopped: Vec<String>,
    pub unmounted: usize,
    pub removed: usize,
}

pub fn reset(host: &Host) -> anyhow::Result<ResetReport> {
    let j = Journal::load(&host.path(&host.journal()))?.unwrap_or_default();
    let mut report = ResetReport::default();
    let mut services: Vec<String> = j.services.iter().cloned().collect();
    for known in ["k3s", "containerd", "registry", "registry-tls"] {
        if !services.iter().any(|s| s == known) {
            services.push(known.into());
        }
    }
    // Stop in reverse dependency order: workloads' runtime before the registry.
    services.sort_by_key(|s| match s.as_str() {
        "k3s" => 0,
        "containerd" => 1,
        _ => 2,
    });
    for s in &services {
        if crate::service::running_pid(host, s).is_some() {
            crate::service::stop(host, s)?;
            report.services_stopped.push(s.clone());
        }
    }
    kill_strays(host);
    report.unmounted = unmount_under(host);
    for f in &j.files {
        if std::fs::remove_file(host.path(f)).is_ok() {
            report.removed += 1;
        }
    }
    for t in host.owned_trees() {
        let p = host.path(&t);
        if p.exists() && std::fs::remove_dir_all(&p).is_ok() {
            report.removed += 1;
        }
    }
    let mut dirs: Vec<&String> = j.dirs.iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
    for d in dirs {
        let _ = std::fs::remove_dir(host.path(d));
    }
    Ok(report)
}

/// Processes (containerd shims, k3s children) whose command line names a ferry path.
fn kill_strays(host: &Host) {
    let marks: Vec<String> = host
        .owned_trees()
        .iter()
        .map(|t| host.path(t).display().to_string())
        .collect();
    let me = std::process::id() as i32;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if marks.iter().any(|m| cmd.contains(&format!("{m}/"))) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
}

/// Detaches every mount below ferry's trees, deepest first.
fn unmount_under(host: &Host) -> usize {
    let trees: Vec<String> = host
        .owned_trees()
        .iter()
        .map(|t| host.path(t).display().to_string())
        .collect();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(|m| m.replace("\\040", " ")))
        .filter(|m| {
            trees
                .iter()
                .any(|t| m == t || m.starts_with(&format!("{t}/")))
        })
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut n = 0;
    for p in points {
        if nix::mount::umount2(Path::new(&p), nix::mount::MntFlags::MNT_DETACH).is_ok() {
            n += 1;
        }
    }
    n
}
