//! A lock that only this process holds: the host's run lock (one install, join, upgrade or
//! reset at a time) and each supervisor's pid file.
//!
//! Why not `flock`: a `flock` belongs to the open file, and a child forked to start a
//! service shares it until it execs. When the parent is killed in that moment, the lock
//! outlives it for as long as the child takes to exec; a run started right after was told
//! "another ferry install is running" with none running (seen once in the kill -9 trials,
//! tests/e2e/crash.rs, on a loaded machine). A POSIX record lock (`F_SETLK`) belongs to the
//! process: a fork does not inherit it and it goes when the process does. Its one trap is
//! that closing *any* descriptor of the file in this process drops it, so the locked files
//! are opened here only, and nothing else in the process opens them.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds the lock; its pid when the kernel says it.
    #[error("held by {}", match .pid { Some(p) => format!("pid {p}"), None => "another process".to_string() })]
    Held { pid: Option<i32> },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// An exclusive lock on a whole file, released when this value is dropped or the process
/// ends (however it ends).
#[derive(Debug)]
pub struct ProcessLock {
    file: File,
}

fn whole_file(kind: i32) -> nix::libc::flock {
    // SAFETY: flock is plain old data; all-zero is a valid value for every field.
    let mut l: nix::libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = kind as _;
    l.l_whence = nix::libc::SEEK_SET as _;
    l.l_start = 0;
    l.l_len = 0;
    l
}

impl ProcessLock {
    /// Opens (creating it if missing, keeping its content) and locks `path` without waiting.
    pub fn try_take(path: &Path) -> Result<ProcessLock, LockError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        let want = whole_file(nix::libc::F_WRLCK);
        // SAFETY: F_SETLK reads a valid flock struct; the descriptor is open.
        if unsafe { nix::libc::fcntl(file.as_raw_fd(), nix::libc::F_SETLK, &want) } == 0 {
            return Ok(ProcessLock { file });
        }
        let e = std::io::Error::last_os_error();
        if !matches!(
            e.raw_os_error(),
            Some(nix::libc::EACCES) | Some(nix::libc::EAGAIN)
        ) {
            return Err(e.into());
        }
        let mut who = whole_file(nix::libc::F_WRLCK);
        // SAFETY: F_GETLK fills a valid flock struct; the descriptor is open.
        let pid = (unsafe { nix::libc::fcntl(file.as_raw_fd(), nix::libc::F_GETLK, &mut who) }
            == 0
            && who.l_type as i32 != nix::libc::F_UNLCK
            && who.l_pid > 0)
            .then_some(who.l_pid);
        Err(LockError::Held { pid })
    }

    /// The locked file (to write a pid into, say). Never clone or reopen it: closing any
    /// other descriptor of the file would drop the lock.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }
}

#[cfg(test)]
mod tests {
    //! The other holder must be another process (POSIX locks never conflict within one),
    //! so these fork. The test harness runs threads, so a forked child calls only
    //! async-signal-safe functions: raw open/fcntl/write/nanosleep and `_exit`.
    use super::*;
    use nix::libc;
    use nix::unistd::{fork, ForkResult};
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    fn c_path(path: &Path) -> CString {
        CString::new(path.as_os_str().as_bytes()).unwrap()
    }

    /// In a forked child: tries to lock `path`; exit 0 when it got the lock, 1 when it is
    /// held (the holder's pid written to `report`), 2 on any other failure.
    unsafe fn child_try(path: &CString, report: i32) -> ! {
        let fd = libc::open(path.as_ptr(), libc::O_RDWR);
        if fd < 0 {
            libc::_exit(2);
        }
        let want = whole_file(libc::F_WRLCK);
        if libc::fcntl(fd, libc::F_SETLK, &want) == 0 {
            libc::_exit(0);
        }
        let mut who = whole_file(libc::F_WRLCK);
        if libc::fcntl(fd, libc::F_GETLK, &mut who) != 0 {
            libc::_exit(2);
        }
        let pid = who.l_pid.to_ne_bytes();
        libc::write(report, pid.as_ptr().cast(), pid.len());
        libc::_exit(1);
    }

    /// What a forked child sees when it tries `path`: Ok(()) when it got the lock, Err(pid)
    /// of the holder otherwise.
    fn another_process_tries(path: &Path) -> Result<(), i32> {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let path = c_path(path);
        let (r, w) = nix::unistd::pipe().unwrap();
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => unsafe { child_try(&path, w.as_raw_fd()) },
            ForkResult::Parent { child } => {
                drop(w);
                let mut pid = Vec::new();
                File::from(r).read_to_end(&mut pid).unwrap();
                match nix::sys::wait::waitpid(child, None).unwrap() {
                    nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
                    nix::sys::wait::WaitStatus::Exited(_, 1) => {
                        Err(i32::from_ne_bytes(pid[..4].try_into().unwrap()))
                    }
                    other => panic!("the child failed: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn another_process_is_refused_and_told_who_holds_it_until_the_lock_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("x.lock");
        let held = ProcessLock::try_take(&path).unwrap();
        assert_eq!(another_process_tries(&path), Err(std::process::id() as i32));
        drop(held);
        assert_eq!(another_process_tries(&path), Ok(()));
    }

    #[test]
    fn a_forked_child_does_not_keep_the_lock_of_a_parent_that_died() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("x.lock");
        std::fs::write(&path, "").unwrap();
        let c = c_path(&path);
        // A child takes the lock, forks a grandchild that keeps the descriptor open for
        // three seconds (a child between fork and exec, slowed down), and dies at once.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => unsafe {
                let fd = libc::open(c.as_ptr(), libc::O_RDWR);
                let want = whole_file(libc::F_WRLCK);
                if fd < 0 || libc::fcntl(fd, libc::F_SETLK, &want) != 0 {
                    libc::_exit(2);
                }
                if libc::fork() == 0 {
                    let t = libc::timespec {
                        tv_sec: 3,
                        tv_nsec: 0,
                    };
                    libc::nanosleep(&t, std::ptr::null_mut());
                    libc::_exit(0);
                }
                libc::_exit(0);
            },
            ForkResult::Parent { child } => {
                let st = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
        // The grandchild still runs with the descriptor open; the lock must be free.
        let taken = ProcessLock::try_take(&path);
        assert!(taken.is_ok(), "the lock outlived its holder: {taken:?}");
    }
}
