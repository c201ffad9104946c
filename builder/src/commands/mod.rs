//! One module per `ferry` command: thin, adds context, delegates to the library.

mod build;
mod images;
mod key;
mod packages;
mod push;

use crate::cli::{Cli, Command, KeyCommand};
use std::path::{Path, PathBuf};

/// The build context: as given, else the Kubefile's directory.
fn context(kubefile: &Path, given: Option<&Path>) -> PathBuf {
    given.map(Path::to_path_buf).unwrap_or_else(|| {
        kubefile
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    })
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(args) => build::run(&args, cli.output, cli.quiet),
        Command::Images(args) => images::run(&args, cli.output),
        Command::Packages(args) => packages::run(&args, cli.output, cli.quiet),
        Command::Push(args) => push::push(&args, cli.output, cli.quiet),
        Command::Pull(args) => push::pull(&args, cli.output, cli.quiet),
        Command::Key(KeyCommand::Generate { out }) => key::generate(&out, cli.output),
    }
}
