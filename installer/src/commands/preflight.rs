//! `preflight`: the checks an install makes before writing anything, on their own.

use super::settings;
use crate::cli::Cli;
use crate::engine::NodeRole;
use crate::install::{preflight, InstallSettings};
use anyhow::Result;
use ferry_bundle::Bundle;
use ferry_console::{out, OutputFormat};
use std::process::ExitCode;

/// The install's preflight checks for `b` with settings `s`. The disk check sums what the
/// install plan writes, so the plan is made here too (it writes nothing).
pub fn checks(s: &InstallSettings, b: &Bundle) -> Vec<preflight::Check> {
    let staged = crate::install::stage::already_staged(
        &s.host,
        &s.host.staged_version(&b.footer.payload_sha256),
        b,
    );
    let journal = crate::engine::Journal::load(&s.host.path(&s.host.journal()))
        .ok()
        .flatten()
        .unwrap_or_default();
    let writes = crate::install::plan(s, b, &journal)
        .map(|p| p.written(0, staged))
        .unwrap_or_default();
    let mut checks = preflight::run(&preflight::Inputs {
        host: &s.host,
        writes,
        platform: &b.manifest.platform,
        ports: vec![s.registry_port, s.join_port],
        cluster: b.manifest.cluster.is_some(),
        bundle_sha256: &b.footer.payload_sha256.to_string(),
        bundle_name: &b.manifest.name,
        role: NodeRole::Server,
        invocation: &s.invocation,
        skip: &s.skip_preflight,
    });
    let mut pkg = crate::install::packages::preflight(&s.host, &b.manifest);
    preflight::skip(&mut pkg, &s.skip_preflight);
    checks.extend(pkg);
    checks
}

pub fn run(cli: &Cli) -> Result<ExitCode> {
    let s = settings::install(cli)?;
    let b = crate::locate::open(cli.bundle.as_deref())?;
    let checks = checks(&s, &b);
    match cli.output {
        OutputFormat::Json => ferry_console::print_json(&checks)?,
        OutputFormat::Text => out!("{}", preflight::table(&checks))?,
    }
    Ok(if preflight::failed(&checks).is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::exit::NOT_INSTALLED_OR_PREFLIGHT)
    })
}
