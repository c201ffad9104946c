//! One module per installer command: each turns the parsed command line into settings,
//! adds context and delegates to the library (`install`, `join`, `engine`). `run` picks
//! the command.

mod check;
mod extract;
mod info;
mod install;
mod join;
mod list;
mod plan;
mod preflight;
pub(crate) mod registry;
mod reset;
mod sbom;
mod settings;
mod status;
mod trust;
mod upgrade;

use crate::cli::{Cli, Command};
use anyhow::{bail, Result};
use std::process::ExitCode;

/// Exit codes (documented in `--help` and the README).
pub mod exit {
    pub const FAILED: u8 = 1;
    pub const NOT_INSTALLED_OR_PREFLIGHT: u8 = 3;
    pub const UNHEALTHY: u8 = 4;
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let bundle = cli.bundle.as_deref();
    if cli.info {
        return info::run(&cli);
    }
    if cli.list {
        return list::run(bundle, cli.output);
    }
    if cli.check {
        return check::run(&cli);
    }
    if let Some(dir) = &cli.extract {
        return extract::run(&cli, dir);
    }
    if cli.sbom {
        return sbom::run(bundle);
    }
    // `--join <master>` is the `join` command; with `plan` it plans the join. Anything
    // else with it is a mistake that must not quietly join (or quietly not join).
    match (&cli.join, &cli.command) {
        (Some(m), None) => return join::run(&cli, m),
        (Some(m), Some(Command::Plan)) => return plan::join(&cli, m),
        (Some(_), Some(other)) => bail!(
            "--join cannot be combined with the {} command; run `join <master> --token <token>` on its own",
            command_name(other)
        ),
        _ => {}
    }
    match &cli.command {
        Some(Command::Registry(args)) => registry::run(bundle, args),
        Some(Command::Install) | None => install::run(&cli),
        Some(Command::Join { master }) => join::run(&cli, master),
        Some(Command::Plan) => plan::install(&cli),
        Some(Command::Preflight) => preflight::run(&cli),
        Some(Command::Status) => status::run(&cli),
        Some(Command::Reset) => reset::run(&cli),
        Some(Command::Upgrade) => upgrade::run(&cli, false),
        Some(Command::Rollback) => upgrade::run(&cli, true),
        Some(Command::Supervise(a)) => {
            let env = a
                .env
                .iter()
                .filter_map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect::<Vec<_>>();
            crate::service::supervise(&a.name, &a.pid_file, &env, &a.argv)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Install => "install",
        Command::Join { .. } => "join",
        Command::Plan => "plan",
        Command::Preflight => "preflight",
        Command::Status => "status",
        Command::Reset => "reset",
        Command::Upgrade => "upgrade",
        Command::Rollback => "rollback",
        Command::Supervise(_) => "supervise",
        Command::Registry(_) => "registry",
    }
}

/// Human-readable byte size.
pub fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn join_is_never_silently_combined_with_another_command() {
        for other in ["reset", "status", "install", "preflight"] {
            let cli = Cli::try_parse_from(["d", "--join", "10.0.0.1:5443", other]).unwrap();
            let e = run(cli).unwrap_err().to_string();
            assert!(e.contains("cannot be combined"), "{other}: {e}");
        }
    }
}
