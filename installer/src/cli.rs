//! Command-line surface of the installer. Options follow makeself where they overlap
//! (`--info --list --check --extract --quiet`), so operators who know `.run` installers
//! already know these; ferry's own actions are subcommands.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "delivery.run",
    version,
    about = "ferry installer: verifies, stages and installs the bundle appended to this file",
    long_about = "ferry installer: verifies, stages and installs the bundle appended to this file.\n\n\
        Without options it installs. The read-only options (--info, --list, --check, --extract) \
        never change the host."
)]
pub struct Cli {
    /// Print the bundle's name, labels, platform, images (name and manifest digest) and sizes.
    #[arg(long, group = "action")]
    pub info: bool,
    /// List every entry of the payload with its size, offset and sha256.
    #[arg(long, group = "action")]
    pub list: bool,
    /// Verify every byte: footer, installer, bundle.json, every entry and the whole payload.
    #[arg(long, group = "action")]
    pub check: bool,
    /// Extract the payload's entries (as stored) into DIR, after checking its structure.
    #[arg(long, value_name = "DIR", group = "action")]
    pub extract: Option<PathBuf>,
    /// Output format for --info, --list, --check and the status/plan commands.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text, global = true)]
    pub output: OutputFormat,
    /// Operate on this bundle file instead of the one appended to this program.
    #[arg(long, value_name = "FILE", global = true, env = "FERRY_BUNDLE")]
    pub bundle: Option<PathBuf>,
    /// Only print errors (and requested data); no progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the bundle's images as a read-only OCI registry, in the foreground.
    Registry(RegistryArgs),
}

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5050")]
    pub listen: String,
}
