//! `reset`: stop what ferry started and remove everything it installed — and nothing
//! else. Services are stopped first (supervisors, then any containerd shim still bound to
//! ferry's socket), mounts under ferry's trees are detached, then host files ferry
//! replaced get their originals back, the files the journal lists are removed, ferry's
//! own trees go (only those ferry created), and the directories it created (only if
//! empty). A directory or file that was on the host before ferry stays.

use crate::engine::{Journal, JournalFile, System};
use crate::host::{Host, HostPath};

#[derive(Debug, Default, serde::Serialize)]
pub struct ResetReport {
    pub services_stopped: Vec<String>,
    /// OS packages ferry installed, removed with `dpkg -r`.
    pub packages_removed: Vec<String>,
    pub unmounted: usize,
    pub removed: usize,
    /// Host files put back as they were before ferry replaced them.
    pub restored: Vec<String>,
    /// What could not be removed or restored, with the reason.
    pub failures: Vec<String>,
}

/// Services reset always looks for, journaled or not (a crash may have started one
/// before the journal said so).
pub const KNOWN_SERVICES: [&str; 4] = ["k3s", "k3s-agent", "containerd", "registry"];

pub fn reset(host: &Host, sys: &dyn System) -> anyhow::Result<ResetReport> {
    let (mut jf, _) = JournalFile::open(host.path(&host.journal()))?;
    // An interrupted phase first: its changes are undone like any failed phase's.
    let _ = crate::engine::transaction::Transaction::recover(host, &mut jf);
    let j: Journal = jf.journal;
    let mut report = ResetReport::default();
    let mut services: Vec<String> = j.services.iter().cloned().collect();
    for known in KNOWN_SERVICES {
        if !services.iter().any(|s| s == known) {
            services.push(known.into());
        }
    }
    // Stop in reverse dependency order: workloads' runtime before the registry.
    services.sort_by_key(|s| match s.as_str() {
        "k3s" | "k3s-agent" => 0,
        "containerd" => 1,
        _ => 2,
    });
    for s in &services {
        if sys.service_pid(host, s).is_some() || j.services.contains(s) {
            if let Err(e) = sys.stop_service(host, s) {
                report.failures.push(format!("stopping {s}: {e}"));
            } else if j.services.contains(s) {
                report.services_stopped.push(s.clone());
            }
        }
    }
    let (_, unmounted) = sys.release_host(host);
    report.unmounted = unmounted;
    report.packages_removed = crate::install::packages::remove(host, sys, &j, &mut report.failures);

    for (path, backup) in &j.replaced {
        let (Ok(p), Ok(b)) = (HostPath::new(path.clone()), HostPath::new(backup.clone())) else {
            continue;
        };
        match std::fs::rename(host.path(&b), host.path(&p)) {
            Ok(()) => report.restored.push(path.clone()),
            Err(e) => report
                .failures
                .push(format!("restoring {path} from {backup}: {e}")),
        }
    }
    for f in j.files.iter().filter(|f| !j.replaced.contains_key(*f)) {
        let Ok(p) = HostPath::new(f.clone()) else {
            continue;
        };
        match std::fs::remove_file(host.path(&p)) {
            Ok(()) => report.removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report.failures.push(format!("removing {f}: {e}")),
        }
    }
    for t in host.owned_trees() {
        let p = host.path(&t);
        if j.dirs.contains(t.as_str()) && p.exists() {
            match std::fs::remove_dir_all(&p) {
                Ok(()) => report.removed += 1,
                Err(e) => report.failures.push(format!("removing {}: {e}", t)),
            }
        }
    }
    // What ferry left in trees it did not create (a data directory that is the
    // operator's own mount, say): the runtime state ferry configured, its journal and
    // kept originals.
    for state in [host.containerd_root(), host.containerd_state()] {
        match std::fs::remove_dir_all(host.path(&state)) {
            Ok(()) => report.removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report.failures.push(format!("removing {state}: {e}")),
        }
    }
    let journal = host.path(&host.journal());
    let _ = std::fs::remove_file(crate::engine::journal::previous(&journal));
    let _ = std::fs::remove_file(journal.with_extension("json.tmp"));
    let _ = std::fs::remove_file(journal);
    let _ = std::fs::remove_dir_all(host.path(&host.backups()));
    let mut dirs: Vec<&String> = j.dirs.iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
    for d in dirs {
        if let Ok(p) = HostPath::new(d.clone()) {
            let _ = std::fs::remove_dir(host.path(&p));
        }
    }
    Ok(report)
}

/// Processes (containerd shims, k3s children) whose command line names a ferry path.
pub fn kill_strays(host: &Host) -> usize {
    let marks: Vec<String> = host
        .owned_trees()
        .iter()
        .map(|t| host.path(t).display().to_string())
        .collect();
    let me = std::process::id() as i32;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
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
            n += 1;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    n
}

/// Detaches every mount below ferry's trees, deepest first.
pub fn unmount_under(host: &Host) -> usize {
    let trees: Vec<String> = host
        .owned_trees()
        .iter()
        .map(|t| host.path(t).display().to_string())
        .collect();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(|m| m.replace("\\040", " ")))
        // Strictly below: a tree that is itself a mount point is the operator's disk
        // (a data directory on its own volume), not something ferry's runtime mounted.
        .filter(|m| trees.iter().any(|t| m.starts_with(&format!("{t}/"))))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut n = 0;
    for p in points {
        if nix::mount::umount2(std::path::Path::new(&p), nix::mount::MntFlags::MNT_DETACH).is_ok() {
            n += 1;
        }
    }
    n
}
