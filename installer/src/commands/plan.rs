//! `plan`: the very plan `install` (or, with `--join`, `join`) would run, printed
//! instead of run. Nothing on the host changes; the master is not contacted.

use super::settings;
use crate::cli::Cli;
use crate::engine::{print::plan_text, Journal, Plan};
use anyhow::{Context, Result};
use ferry_console::{out, OutputFormat};
use std::process::ExitCode;

fn show(plan: &Plan, output: OutputFormat) -> Result<ExitCode> {
    match output {
        OutputFormat::Json => ferry_console::print_json(plan)?,
        OutputFormat::Text => out!("{}", plan_text(plan))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn journal(host: &crate::host::Host) -> Result<Journal> {
    Ok(Journal::load(&host.path(&host.journal()))?.unwrap_or_default())
}

pub fn install(cli: &Cli) -> Result<ExitCode> {
    let s = settings::install(cli)?;
    let b = super::trust::open_admitted(cli)?;
    let plan = crate::install::plan(&s, &b, &journal(&s.host)?)?;
    show(&plan, cli.output)
}

/// `plan --join <master>`: the join plan, with the join information taken from this
/// bundle (what its master would hand out) instead of from the master.
pub fn join(cli: &Cli, master: &str) -> Result<ExitCode> {
    let js = super::join::join_settings(cli, master)?;
    let host = settings::host(&cli.host)?;
    let b = crate::locate::open(cli.bundle.as_deref())
        .context("plan --join needs the bundle (run it from delivery.run, or pass --bundle)")?;
    let info = crate::join::protocol::join_info(
        &b,
        &format!("https://{master}"),
        Some(&crate::join::protocol::own_platform()),
    )?;
    let plan = crate::join::node::plan(&host, &journal(&host)?, &info, &js)?;
    show(&plan, cli.output)
}
