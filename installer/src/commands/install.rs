//! `install` (the default): preflight, confirmation, then the install plan run by the
//! engine; prints the join command.

use super::settings::{self, RunLock};
use crate::cli::Cli;
use crate::engine::{JournalFile, RealSystem, Reporter};
use crate::install::{self, preflight};
use anyhow::{Context, Result};
use ferry_console::{outln, OutputFormat};
use serde_json::json;
use std::process::ExitCode;

pub fn run(cli: &Cli) -> Result<ExitCode> {
    let s = settings::install(cli)?;
    // Trust first: a bundle this host does not accept is refused before anything is written.
    let b = super::trust::open_admitted(cli)?;
    let host = &s.host;
    // The plan first: a bundle this host cannot take is refused before anything changes.
    let journal = crate::engine::Journal::load(&host.path(&host.journal()))?.unwrap_or_default();
    let plan = install::plan(&s, &b, &journal).context("nothing was changed")?;
    let checks = super::preflight::checks(&s, &b);
    if !s.quiet {
        eprint!("{}", preflight::table(&checks));
    }
    let failed = preflight::failed(&checks);
    if !failed.is_empty() {
        let names: Vec<_> = failed
            .iter()
            .map(|c| format!("{} ({}: {})", c.name, c.detail, c.fix))
            .collect();
        eprintln!(
            "error: preflight failed: {}; nothing was changed (fix it, or skip a check with --skip-preflight <name>)",
            names.join(", ")
        );
        return Ok(ExitCode::from(super::exit::NOT_INSTALLED_OR_PREFLIGHT));
    }
    settings::confirm(
        &format!(
            "Install bundle {} under {}?",
            b.manifest.name,
            host.root.display()
        ),
        cli.host.yes,
        false,
    )?;
    let _lock = RunLock::take(host)?;
    let (mut jf, _) = JournalFile::open(host.path(&host.journal()))?;
    // Who this host is, in the journal's very first save.
    install::claim(&mut jf.journal, &s, &b);
    crate::engine::claim_trees(host, &mut jf)?;
    let report = Reporter::console(s.quiet).with_log(&host.path(&host.run_log()));
    report.log_only(&format!(
        "install of {} ({}) from {}",
        b.manifest.name,
        b.footer.payload_sha256,
        b.path.display()
    ));
    let log = host.path(&host.run_log());
    install::run(&s, &b, &plan, &mut jf, &RealSystem, &report)
        .with_context(|| format!("install of {} (log: {})", b.manifest.name, log.display()))?;

    let token = std::fs::read_to_string(host.path(&host.token_file())).unwrap_or_default();
    jf.journal.join_command = format!(
        "{} join {} --token {}",
        s.invocation,
        s.advertise(),
        token.trim()
    );
    jf.save()?;
    report.log_only("install finished");
    match cli.output {
        OutputFormat::Json => ferry_console::print_json(&json!({
            "ok": true,
            "phases": jf.journal.phases,
            "join_command": jf.journal.join_command,
            "preflight": checks,
            "log": log,
        }))?,
        OutputFormat::Text => {
            if !s.quiet {
                eprintln!(
                    "installed {}. Later: {} status | reset (the staged copy: {}). Log: {}",
                    b.manifest.name,
                    s.invocation,
                    host.path(&host.staged_bundle()).display(),
                    log.display()
                );
            }
            outln!("To add a node, run on it:\n  {}", jf.journal.join_command)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
