//! Console output shared by `ferry` and the installer: progress bars that appear only on a
//! terminal and never with `--quiet` (so scripts and CI logs stay clean), and tracing to
//! stderr with the level from `FERRY_LOG`, so log lines never mix with data on stdout.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A byte-count progress bar, hidden when stderr is not a terminal or when `quiet`.
pub fn bytes_bar(total: u64, message: &str, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if quiet || !std::io::stderr().is_terminal() {
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
pub fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
