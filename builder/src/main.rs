//! `ferry`: parses the command line and hands off to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = ferry_builder::cli::Cli::parse();
    ferry_console::init_logging(cli.quiet);
    match ferry_builder::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
