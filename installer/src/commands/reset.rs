//! `reset` (alias `uninstall`): asks first (on a terminal; refuses without one unless
//! `--yes`), then undoes the install.

use super::settings::{self, RunLock};
use crate::cli::Cli;
use crate::engine::RealSystem;
use anyhow::Result;
use ferry_console::{outln, OutputFormat};
use std::process::ExitCode;

pub fn run(cli: &Cli) -> Result<ExitCode> {
    let host = settings::host(&cli.host)?;
    settings::confirm(
        &format!(
            "Stop ferry's services and remove everything ferry installed under {}?",
            host.root.display()
        ),
        cli.host.yes,
        true,
    )?;
    let lock = RunLock::take(&host)?;
    let r = crate::install::reset::reset(&host, &RealSystem)?;
    lock.remove();
    match cli.output {
        OutputFormat::Json => ferry_console::print_json(&r)?,
        OutputFormat::Text if !cli.quiet => {
            outln!(
                "reset: stopped {:?}, detached {} mounts, removed {} paths, restored {} host files",
                r.services_stopped,
                r.unmounted,
                r.removed,
                r.restored.len()
            )?;
            if !r.packages_removed.is_empty() {
                outln!(
                    "reset: removed the packages ferry installed: {}",
                    r.packages_removed.join(" ")
                )?;
            }
            for f in &r.failures {
                outln!("  could not: {f}")?;
            }
        }
        OutputFormat::Text => {}
    }
    Ok(if r.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::exit::FAILED)
    })
}
