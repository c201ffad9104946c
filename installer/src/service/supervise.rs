//! The supervisor process behind every non-systemd service: runs the service, restarts it
//! with back-off when it exits, and on SIGTERM stops it (TERM, then KILL after 10 s) and
//! exits. Its own pid is the service's pid file; it removes the file on the way out.

use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: i32) {
    STOP.store(true, Ordering::SeqCst);
}

pub fn supervise(
    name: &str,
    pid_file: &Path,
    env: &[(String, String)],
    argv: &[String],
) -> io::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_term),
        SaFlags::empty(),
        SigSet::empty(),
    );
    unsafe {
        sigaction(Signal::SIGTERM, &act).map_err(io::Error::from)?;
        sigaction(Signal::SIGINT, &act).map_err(io::Error::from)?;
    }
    if argv.is_empty() {
        return Err(io::Error::other("supervise: no command"));
    }
    std::fs::write(pid_file, format!("{}\n", std::process::id()))?;
    let mut backoff = Duration::from_millis(500);
    while !STOP.load(Ordering::SeqCst) {
        let started = Instant::now();
        let mut child = match Command::new(&argv[0])
            .args(&argv[1..])
            .envs(env.iter().cloned())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("ferry supervise {name}: cannot start {}: {e}", argv[0]);
                sleep_unless_stopped(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        eprintln!("ferry supervise {name}: started pid {}", child.id());
        loop {
            if let Some(st) = child.try_wait()? {
                eprintln!("ferry supervise {name}: exited with {st}");
                break;
            }
            if STOP.load(Ordering::SeqCst) {
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if child.try_wait()?.is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_millis(500);
        }
        if !STOP.load(Ordering::SeqCst) {
            sleep_unless_stopped(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
    let _ = std::fs::remove_file(pid_file);
    Ok(())
}

fn sleep_unless_stopped(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
}
