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
    /// List the images a Kubefile needs: IMAGE lines and what discovery finds in its APPs.
    Images(ImagesArgs),
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// The Kubefile to read.
    #[arg(short = 'f', long = "file", default_value = "Kubefile")]
    pub kubefile: PathBuf,
    /// Show every file and object that references this image (as written or normalised).
    #[arg(long, value_name = "IMAGE")]
    pub why: Option<String>,
    /// Count candidates (image-like strings outside pod specs) as images.
    #[arg(long)]
    pub include_candidates: bool,
    /// Directory relative paths in the Kubefile are taken from (default: the Kubefile's).
    pub context: Option<PathBuf>,
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
    /// Target platform(s), os/arch[/variant][,…]. One: keep just that manifest of each
    /// multi-platform image. Several: keep the index and those platforms' manifests.
    #[arg(long, default_value = "linux/amd64", value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Registry reachable over plain HTTP (host:port); only these are ever contacted without TLS.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    /// Pull <host>'s images through a mirror while keeping their names, e.g.
    /// docker.io=harbor.local/dockerhub.
    #[arg(long = "registry-mirror", value_name = "HOST=MIRROR[/PATH]")]
    pub registry_mirrors: Vec<String>,
    /// Content cache for pulled blobs (a rebuild fetches no blob it already has).
    #[arg(long, env = "FERRY_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Supply a runtime/cluster payload from local files: <name>=<dir|file.tar.gz>.
    #[arg(long = "payload", value_name = "NAME=PATH")]
    pub payloads: Vec<String>,
    /// Carry no runtime payload: an images-and-files bundle for hosts that already run
    /// containerd or k3s (app updates, format tests).
    #[arg(long, conflicts_with = "payloads")]
    pub no_payload: bool,
    /// Also carry images that discovery found only as candidates (args, env, ConfigMaps, CRs).
    #[arg(long)]
    pub include_candidates: bool,
    /// Directory relative paths in the Kubefile are taken from (default: the Kubefile's).
    pub context: Option<PathBuf>,
}
