//! Console output shared by `ferry` and the installer, defined once:
//!
//! - [`OutputFormat`]: `--output text|json`, the same flag and values in both binaries.
//! - [`outln!`] / [`print_json`]: data on stdout that returns an error instead of
//!   panicking when the reader went away, and [`is_broken_pipe`] so that `main` ends
//!   quietly with exit 0 (`delivery.run --list | head -1`, `ferry images | head`). Rust
//!   ignores SIGPIPE, and resetting it process-wide is wrong here: the same binary is the
//!   registry server, which a client hanging up must not kill.
//! - Progress bars that appear only on a terminal and never with `--quiet` (so scripts
//!   and CI logs stay clean), and tracing to stderr with the level from `FERRY_LOG`, so
//!   log lines never mix with data on stdout. Colour only on a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};

/// `--output`: how a command prints what it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON document on stdout, for scripts.
    Json,
}

/// Writes formatted text to stdout; an error (not a panic) when stdout is closed.
pub fn write_stdout(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
}

/// `println!` that returns `io::Result<()>`: use with `?` so that a closed pipe ends the
/// command quietly instead of panicking.
#[macro_export]
macro_rules! outln {
    () => { $crate::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` counterpart of [`outln!`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*)) };
}

/// Prints `value` as pretty JSON on stdout, followed by a newline.
pub fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    write_stdout(format_args!("{text}\n"))
}

/// True when an error (anywhere in its chain) is a write to a closed pipe: the reader of
/// our stdout has gone (`| head`), which is not a failure of the command.
pub fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// An error and its causes on one line, as `{:#}` prints them, except that a cause whose
/// text the line already holds is not repeated (errors that show their source in their
/// own message, as thiserror's `"{source}"` does, would otherwise print it twice).
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let more = err.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cur = err.source();
    }
    text
}

/// `s` made safe for one line of a terminal: anything but printable ASCII becomes `?`,
/// and it is cut at `max` characters with an ellipsis. Errors from parsers quote the
/// bytes they choked on; read from a binary (a layer that is not a tar), those bytes
/// would scramble the operator's terminal, and random bytes decode to any script.
pub fn printable(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// `2026-05-01<sep>09:41:18Z` for Unix seconds `t` (UTC, proleptic Gregorian calendar):
/// `sep` `'T'` gives ISO 8601 (SPDX's `created`), `' '` the form people read in `status`.
pub fn utc(t: u64, sep: char) -> String {
    let (days, secs) = (t / 86_400, t % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}{sep}{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// True when stderr is a terminal (progress bars and colour are shown only then).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A byte-count progress bar, hidden when stderr is not a terminal or when `quiet`.
pub fn bytes_bar(total: u64, message: &str, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if quiet || !stderr_is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// Logs to stderr; level from `FERRY_LOG` (default `info`, or `warn` with `--quiet`).
/// ANSI colour only when stderr is a terminal, so piped output and log files stay plain.
pub fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_is_terminal())
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_cuts_and_masks_binary_bytes() {
        let raw = String::from_utf8_lossy(b"bad cksum \x1b[2J\xff\xfe\n ok");
        assert_eq!(printable(&raw, 100), "bad cksum ?[2J??? ok");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("a\u{67c}b", 10), "a?b");
        assert_eq!(printable("abc", 3), "abc");
    }

    #[test]
    fn broken_pipe_is_found_through_context() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "closed");
        let e = anyhow_like(io);
        assert!(is_broken_pipe(&*e));
        let other: Box<dyn std::error::Error> = Box::new(std::io::Error::other("x"));
        assert!(!is_broken_pipe(&*other));
    }

    #[test]
    fn error_text_names_each_cause_once() {
        let e = anyhow_like(std::io::Error::other("disk full"));
        assert_eq!(error_text(&*e), "printing: disk full");
        #[derive(Debug)]
        struct Says(std::io::Error);
        impl std::fmt::Display for Says {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "phase stage: {}", self.0)
            }
        }
        impl std::error::Error for Says {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Says(std::io::Error::other("disk full"));
        assert_eq!(error_text(&e), "phase stage: disk full");
    }

    #[derive(Debug)]
    struct Wrap(std::io::Error);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("printing")
        }
    }
    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    fn anyhow_like(e: std::io::Error) -> Box<dyn std::error::Error> {
        Box::new(Wrap(e))
    }
}
