//! `ferry-installer`: the stub at the front of every `delivery.run`. Parses the command
//! line and hands off to `ferry_installer::commands`; all the work lives in the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = ferry_installer::cli::Cli::parse();
    ferry_console::init_logging(cli.quiet);
    match ferry_installer::commands::run(cli) {
        Ok(code) => code,
        // The reader of our output went away (`| head`): not a failure.
        Err(e) if ferry_console::is_broken_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", ferry_console::error_text(e.as_ref()));
            ExitCode::from(1)
        }
    }
}
