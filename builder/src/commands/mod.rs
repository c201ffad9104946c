//! One module per `ferry` command: thin, adds context, delegates to the library.

mod build;
mod images;
mod key;

use crate::cli::{Cli, Command, KeyCommand};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(args) => build::run(&args, cli.output, cli.quiet),
        Command::Images(args) => images::run(&args, cli.output),
        Command::Key(KeyCommand::Generate { out }) => key::generate(&out, cli.output),
    }
}
