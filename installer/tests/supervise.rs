//! The supervisor (`ferry-installer supervise`, the real binary) and `service::ensure_running`
//! when a run was killed right after asking a supervisor to stop: the next run must not take
//! that supervisor, still shutting down, for a running service.

use ferry_installer::engine::{ServiceManager, ServiceSpec};
use ferry_installer::host::Host;
use ferry_installer::service::{alive, ensure_running, running_pid, stop, supervise_args};
use std::time::{Duration, Instant};

/// A service that takes about 3 s to stop after SIGTERM, and so does its supervisor.
fn slow_to_stop(host: &Host) -> (ServiceSpec, Vec<String>) {
    let mut spec = ServiceSpec {
        name: "slow".into(),
        argv: vec![
            "sh".into(),
            "-c".into(),
            "trap 'sleep 3; exit 0' TERM; while :; do sleep 0.2; done".into(),
        ],
        env: vec![],
        manager: ServiceManager::Supervisor { argv: vec![] },
        revision: Default::default(),
    };
    let mut supervisor = vec![env!("CARGO_BIN_EXE_ferry-installer").to_string()];
    supervisor.extend(supervise_args(host, &spec).to_argv());
    spec.manager = ServiceManager::Supervisor {
        argv: supervisor.clone(),
    };
    (spec, supervisor)
}

fn wait_for_pid(host: &Host) -> i32 {
    let t = Instant::now();
    loop {
        if let Some(p) = running_pid(host, "slow") {
            return p;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no supervisor came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_supervisor_asked_to_stop_is_not_taken_for_running_and_a_new_one_starts() {
    let d = tempfile::tempdir().unwrap();
    let host = Host::new(d.path(), None).unwrap();
    let (spec, supervisor) = slow_to_stop(&host);
    ensure_running(&host, &spec, &supervisor).unwrap();
    let old = wait_for_pid(&host);

    // A run asks it to stop, and is killed before it starts the next one.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // It no longer counts as running (at once: the signal is pending, then its handler
    // removes the pid file first thing), though it lives on for seconds.
    let t = Instant::now();
    while running_pid(&host, "slow").is_some() {
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "a supervisor asked to stop still counts as running"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(alive(old));

    // The next run starts the service: not by trusting the old supervisor.
    ensure_running(&host, &spec, &supervisor).unwrap();
    let new = wait_for_pid(&host);
    assert_ne!(
        new, old,
        "the supervisor that was stopping was taken for running"
    );
    assert!(
        !alive(old),
        "the old supervisor still runs beside the new one"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(running_pid(&host, "slow"), Some(new), "the new one stays");

    stop(&host, "slow").unwrap();
    assert_eq!(running_pid(&host, "slow"), None);
    assert!(!alive(new));
    assert!(
        !host.path(&host.pid_file("slow")).exists(),
        "the pid file outlived its supervisor"
    );
}
