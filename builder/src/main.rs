//! `ferry`: parses the command line and hands off to the library. A closed stdout (`ferry
//! images | head -1`) is not a failure: the command ends quietly with exit 0.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = ferry_builder::cli::Cli::parse();
    ferry_console::init_logging(cli.quiet);
    match ferry_builder::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if ferry_console::is_broken_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", ferry_console::error_text(e.as_ref()));
            ExitCode::from(1)
        }
    }
}
