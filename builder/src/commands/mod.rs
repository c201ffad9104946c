//! One module per `ferry` command: thin, adds context, delegates to the library.

mod build;
mod images;
mod push;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(args) => build::run(&args, cli.output, cli.quiet),
        Command::Images(args) => images::run(&args, cli.output),
        Command::Push(args) => push::push(&args, cli.output, cli.quiet),
        Command::Pull(args) => push::pull(&args, cli.output, cli.quiet),
    }
}
