//! What the engine tells the operator while it works, and the plain-text run log.
//!
//! Lines go to stderr (unless `--quiet`) and, always, to the run log
//! (`/var/log/ferry/ferry.log` under `--root`), without colour codes and with a UTC time
//! stamp to the millisecond, so that an install that went wrong at night can be read in the morning.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Reporter {
    quiet: bool,
    log: Option<Mutex<std::fs::File>>,
    log_path: Option<PathBuf>,
    lines: Mutex<Vec<String>>,
}

impl Reporter {
    /// Reports to stderr (unless `quiet`) only.
    pub fn console(quiet: bool) -> Reporter {
        Reporter {
            quiet,
            log: None,
            log_path: None,
            lines: Mutex::new(Vec::new()),
        }
    }

    /// Also appends every line to `log` (created with its directory if missing).
    pub fn with_log(mut self, log: &Path) -> Reporter {
        let f = log
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
            });
        if let Ok(f) = f {
            self.log = Some(Mutex::new(f));
            self.log_path = Some(log.to_path_buf());
        }
        self
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// A line for the operator (stderr) and the log.
    pub fn say(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
        self.log_only(msg);
    }

    /// A line for the log only (details an operator reads when something went wrong).
    pub fn log_only(&self, msg: &str) {
        if let Some(l) = &self.log {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            // `2026-12-01 12:30:01.123Z`: readable in the morning, fine enough to time a
            // phase (scripts/bench-check.sh times staging from these lines).
            let t = ferry_console::utc(now.as_secs(), ' ')
                .replace('Z', &format!(".{:03}Z", now.subsec_millis()));
            if let Ok(mut f) = l.lock() {
                for line in msg.lines() {
                    let _ = writeln!(f, "{t} {line}");
                }
            }
        }
        if let Ok(mut v) = self.lines.lock() {
            v.push(msg.to_string());
        }
    }

    /// Everything said so far (tests).
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|v| v.clone()).unwrap_or_default()
    }
}
