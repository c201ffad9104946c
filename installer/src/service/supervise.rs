//! The supervisor process behind every non-systemd service: runs the service, restarts it
//! with back-off when it exits, and on SIGTERM stops it (TERM, then KILL after 10 s) and
//! exits. Its own pid is the service's pid file; it removes the file as soon as it is
//! asked to stop.
//! Beside the pid file it keeps `<pid file>.json` ([`SuperviseStatus`]): how often the
//! service exited and how, so that `status` can tell a running service from one that
//! keeps crashing.
//!
//! One supervisor per service: it holds an exclusive lock on its pid file for as long as
//! it lives, and a second one started for the same service (an install killed between
//! starting a supervisor and its pid file appearing, then run again) sees the lock and
//! exits at once with success. Without that lock the kill -9 trials found two
//! containerds fighting over one socket, one of them crash-looping forever.

use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

/// What the supervisor knows about its service's exits.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SuperviseStatus {
    /// Times the service exited and was started again.
    pub restarts: u64,
    /// How it last exited (`exit status: 1`), empty if it never did.
    pub last_exit: String,
    /// When it last exited (seconds since the epoch), 0 if never.
    pub last_exit_at: u64,
}

impl SuperviseStatus {
    pub fn path(pid_file: &Path) -> std::path::PathBuf {
        let mut s = pid_file.as_os_str().to_owned();
        s.push(".json");
        s.into()
    }
    pub fn load(pid_file: &Path) -> Option<SuperviseStatus> {
        serde_json::from_slice(&std::fs::read(Self::path(pid_file)).ok()?).ok()
    }
    /// True when the service exited within the last `window_secs` seconds.
    pub fn recently_failed(&self, window_secs: u64) -> bool {
        let now = now_secs();
        self.last_exit_at != 0 && now.saturating_sub(self.last_exit_at) < window_secs
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The pid file and the status beside it, for [`on_term`] to remove.
static OWN_FILES: std::sync::OnceLock<[std::ffi::CString; 2]> = std::sync::OnceLock::new();

/// SIGTERM/SIGINT: remove the pid file at once (unlink is async-signal-safe), then stop.
/// Once asked to stop, this supervisor no longer counts as running the service, even
/// while it waits up to 10 s for the service to exit: a run that asked and was killed
/// then, run again, must start a new supervisor rather than take this one for running
/// (found by the kill -9 trials: the registry was gone 0.1 s later and health waited for
/// it for 120 s).
extern "C" fn on_term(_: i32) {
    if let Some(files) = OWN_FILES.get() {
        for f in files {
            // SAFETY: unlink of a valid NUL-terminated path; async-signal-safe.
            unsafe { nix::libc::unlink(f.as_ptr()) };
        }
    }
    STOP.store(true, Ordering::SeqCst);
}

pub fn supervise(
    name: &str,
    pid_file: &Path,
    env: &[(String, String)],
    argv: &[String],
) -> io::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    use std::os::unix::ffi::OsStrExt;
    let c_path = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::other(format!("{}: a NUL in the path", p.display())))
    };
    let _ = OWN_FILES.set([c_path(pid_file)?, c_path(&SuperviseStatus::path(pid_file))?]);
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
    let mut lock = match crate::process_lock::ProcessLock::try_take(pid_file) {
        Ok(l) => l,
        Err(held @ crate::process_lock::LockError::Held { .. }) => {
            eprintln!(
                "ferry supervise {name}: already supervised ({held}; lock {}); leaving it be",
                pid_file.display()
            );
            return Ok(());
        }
        Err(crate::process_lock::LockError::Io(e)) => return Err(e),
    };
    {
        use std::io::Write;
        let f = lock.file();
        f.set_len(0)?;
        f.write_all(format!("{}\n", std::process::id()).as_bytes())?;
    }
    let mut status = SuperviseStatus::default();
    let status_path = SuperviseStatus::path(pid_file);
    if !STOP.load(Ordering::SeqCst) {
        let _ = std::fs::write(
            &status_path,
            serde_json::to_vec(&status).unwrap_or_default(),
        );
    }
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
                status.restarts += 1;
                status.last_exit = st.to_string();
                status.last_exit_at = now_secs();
                if !STOP.load(Ordering::SeqCst) {
                    let _ = std::fs::write(
                        &status_path,
                        serde_json::to_vec(&status).unwrap_or_default(),
                    );
                }
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
    // The pid file and the status went when the stop was asked for (`on_term`); removing
    // them now could remove a new supervisor's. Unless the stop came before the pid file
    // was made: then the path still names this supervisor's (locked) file. (Compared by
    // inode: opening the file to read it would drop the lock.)
    use std::os::unix::fs::MetadataExt;
    let mine = lock.file().metadata()?;
    if std::fs::metadata(pid_file).is_ok_and(|m| m.ino() == mine.ino() && m.dev() == mine.dev()) {
        let _ = std::fs::remove_file(pid_file);
        let _ = std::fs::remove_file(&status_path);
    }
    drop(lock);
    Ok(())
}

fn sleep_unless_stopped(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
}
