//! `upgrade` (this bundle over the installed one) and `rollback` (back to the one before):
//! show what changes, ask (refuse without a terminal unless `--yes`), then run it.

use super::settings::{self, RunLock};
use crate::cli::Cli;
use crate::engine::{JournalFile, RealSystem, Reporter};
use crate::install::upgrade;
use anyhow::{Context, Result};
use ferry_console::{out, outln, OutputFormat};
use std::process::ExitCode;

pub fn run(cli: &Cli, rollback: bool) -> Result<ExitCode> {
    let s = settings::install(cli)?;
    let host = &s.host;
    let (jf, _) = JournalFile::open(host.path(&host.journal()))?;
    if jf.journal.role == crate::engine::NodeRole::Join && !rollback {
        return node(cli, &s);
    }
    let old = upgrade::installed(&s, &jf)?;
    let mut new = if rollback {
        upgrade::previous(&s, &jf)?
    } else {
        super::trust::open_admitted(cli)?
    };
    if let Some(d) = new.manifest.delta.clone() {
        // A delta upgrades exactly the bundle it was made from, and reads what it does not
        // carry from that bundle's staged copy.
        if rollback {
            // `previous` attached its base already.
        } else if d.base != old_identity(&old) {
            return Err(upgrade::UpgradeError::WrongBase {
                needs: format!("{} {} ({})", d.base_name, d.base_version, d.base),
                installed: format!(
                    "{} {} ({})",
                    old.manifest.name, old.manifest.version, old.footer.payload_sha256
                ),
            }
            .into());
        } else {
            new.attach_base(old.clone())?;
        }
    }
    if new.manifest.name != old.manifest.name {
        return Err(upgrade::UpgradeError::OtherBundle {
            installed: old.manifest.name.clone(),
            this: new.manifest.name.clone(),
        }
        .into());
    }
    let d = upgrade::diff(&old, &new);
    let same = new.footer.payload_sha256 == old.footer.payload_sha256;
    match cli.output {
        OutputFormat::Json if same => {}
        OutputFormat::Json => ferry_console::print_json(&d)?,
        OutputFormat::Text => out!("{}", upgrade::diff_text(&d))?,
    }
    if same && cli.output == OutputFormat::Text {
        outln!(
            "{} is already the installed version; checking that its services run",
            new.manifest.name
        )?;
    }
    if !same {
        settings::confirm(
            &format!(
                "{} {} under {}?",
                if rollback {
                    "Roll back to"
                } else {
                    "Upgrade to"
                },
                new.manifest.name,
                host.root.display()
            ),
            cli.host.yes,
            true,
        )?;
    }
    let _lock = RunLock::take(host)?;
    let (mut jf, _) = JournalFile::open(host.path(&host.journal()))?;
    let report = Reporter::console(s.quiet).with_log(&host.path(&host.run_log()));
    report.log_only(&format!(
        "{} {} → {}",
        if rollback { "rollback" } else { "upgrade" },
        old.footer.payload_sha256,
        new.footer.payload_sha256
    ));
    let log = host.path(&host.run_log());
    upgrade::run(&s, &new, &mut jf, &RealSystem, &report)
        .with_context(|| format!("log: {}", log.display()))?;
    if !s.quiet {
        eprintln!(
            "{} {}. The version before is kept: `{} rollback` returns to it.",
            if rollback {
                "rolled back to"
            } else {
                "upgraded to"
            },
            new.manifest.name,
            host.path(&host.staged_bundle()).display()
        );
        eprintln!(
            "On each joined node, run its installer's upgrade: {} upgrade",
            host.installer_copy()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `upgrade` on a joined node: whatever its master now runs.
fn node(cli: &Cli, s: &crate::install::InstallSettings) -> Result<ExitCode> {
    let host = &s.host;
    let _lock = RunLock::take(host)?;
    let (mut jf, _) = JournalFile::open(host.path(&host.journal()))?;
    let report = Reporter::console(s.quiet).with_log(&host.path(&host.run_log()));
    let changed = crate::join::node::upgrade(host, &mut jf, &RealSystem, &report, s.wait_timeout)?;
    if cli.output == OutputFormat::Text && !cli.quiet {
        outln!(
            "{}",
            if changed {
                format!("node upgraded to {}", jf.journal.bundle_name)
            } else {
                "node already up to date".to_string()
            }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn old_identity(b: &ferry_bundle::Bundle) -> ferry_bundle::Sha256Digest {
    b.footer.payload_sha256
}
