//! Command-line surface of `ferry`, the builder.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Builds delivery.run bundles for air-gapped Kubernetes sites"
)]
pub struct Cli {
    /// Only print errors and requested data; no progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text, global = true)]
    pub output: OutputFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a delivery.run from a Kubefile.
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The Kubefile to read.
    #[arg(short = 'f', long = "file", default_value = "Kubefile")]
    pub kubefile: PathBuf,
    /// Where to write the bundle.
    #[arg(short = 'o', long = "out", default_value = "delivery.run")]
    pub out: PathBuf,
    /// Installer stub to put in front of the payload (default: ferry-installer beside ferry).
    #[arg(long, env = "FERRY_INSTALLER")]
    pub installer: Option<PathBuf>,
    /// Target platform of the bundle (os/arch).
    #[arg(long, default_value = "linux/amd64")]
    pub platform: String,
    /// Directory relative paths in the Kubefile are taken from (default: the Kubefile's).
    pub context: Option<PathBuf>,
}
