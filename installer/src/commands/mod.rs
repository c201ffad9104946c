//! One module per installer command: each parses nothing, adds context and delegates to
//! the library. `run` picks the command from the parsed command line.

mod check;
mod extract;
mod info;
mod install;
mod list;
mod registry;

use crate::cli::{Cli, Command};
use anyhow::Result;
use std::process::ExitCode;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let bundle = cli.bundle.as_deref();
    if cli.info {
        return info::run(bundle, cli.output);
    }
    if cli.list {
        return list::run(bundle, cli.output);
    }
    if cli.check {
        return check::run(bundle, cli.output, cli.quiet);
    }
    if let Some(dir) = &cli.extract {
        return extract::run(bundle, dir, cli.quiet);
    }
    let i = &cli.install;
    if let Some(master) = &i.join {
        if matches!(cli.command, Some(Command::Plan)) {
            return install::join_plan(bundle, master, i, cli.output);
        }
        return install::join(master, i, cli.output, cli.quiet);
    }
    match cli.command {
        Some(Command::Registry(args)) => registry::run(bundle, &args),
        Some(Command::Install) | None => install::install(bundle, i, cli.output, cli.quiet),
        Some(Command::Plan) => install::plan(bundle, i, cli.output),
        Some(Command::Preflight) => install::preflight(bundle, i, cli.output),
        Some(Command::Status) => install::status(i, cli.output),
        Some(Command::Reset) => install::reset(i, cli.output, cli.quiet),
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
