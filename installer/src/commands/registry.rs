//! `registry`: serve the bundle's images read-only, in the foreground.

use crate::cli::RegistryArgs;
use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;

pub fn run(_bundle: Option<&Path>, _args: &RegistryArgs) -> Result<ExitCode> {
    anyhow::bail!("registry: not wired yet")
}
