//! `status`: what is installed here and whether it works.

use super::settings;
use crate::cli::Cli;
use crate::install::status;
use anyhow::Result;
use ferry_console::{out, OutputFormat};
use std::process::ExitCode;

pub fn run(cli: &Cli) -> Result<ExitCode> {
    let s = status::status(&settings::host(&cli.host)?)?;
    match cli.output {
        OutputFormat::Json => ferry_console::print_json(&s)?,
        OutputFormat::Text => out!("{}", status::text(&s))?,
    }
    Ok(if !s.installed {
        ExitCode::from(super::exit::NOT_INSTALLED_OR_PREFLIGHT)
    } else if !s.healthy {
        ExitCode::from(super::exit::UNHEALTHY)
    } else {
        ExitCode::SUCCESS
    })
}
