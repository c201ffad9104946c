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
    #[command(flatten)]
    pub install: InstallArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options of installing (and of plan/status/reset, which must agree on where things are).
#[derive(Debug, Args, Clone)]
pub struct InstallArgs {
    /// Install under this prefix instead of `/` (several "hosts" on one machine in tests).
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Data directory on the host (staged bundle, journal, containerd state).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// This node's IP as other nodes reach it (default: the default route's interface).
    #[arg(long, global = true)]
    pub node_ip: Option<String>,
    /// Port of the local registry (loopback, plain HTTP, used by this node's runtime).
    #[arg(long, global = true, default_value_t = 5050)]
    pub registry_port: u16,
    /// TLS port other nodes use for the registry and the join channel.
    #[arg(long, global = true, default_value_t = 5443)]
    pub join_port: u16,
    /// Join the cluster of this master (`ip:port`, as printed by its install).
    #[arg(long, value_name = "MASTER")]
    pub join: Option<String>,
    /// Join token printed by the master's install (`K10…::…`).
    #[arg(long, requires = "join", env = "FERRY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// With --join on a k3s bundle: join as another server (HA control plane), not an agent.
    #[arg(long, requires = "join")]
    pub control_plane: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Turn a failing preflight check into a warning (repeatable; names as in the table).
    #[arg(long, global = true, value_name = "CHECK")]
    pub skip_preflight: Vec<String>,
    /// Longest wait for services and workloads to become healthy, in seconds.
    #[arg(long, global = true, default_value_t = 120)]
    pub wait_timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install the bundle on this host (the default when no command is given).
    Install,
    /// Show every file the install would write and every command it would run; change nothing.
    Plan,
    /// Run the preflight checks only.
    Preflight,
    /// Show what is installed: phases, registry, containerd, services, join command.
    Status,
    /// Stop what ferry started and remove everything it installed, and nothing else.
    Reset,
    /// (internal) Run a service under ferry's supervisor.
    #[command(hide = true)]
    Supervise(SuperviseArgs),
    /// Serve the bundle's images as a read-only OCI registry, in the foreground.
    Registry(RegistryArgs),
}

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub pid_file: PathBuf,
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Address to listen on (plain HTTP; for this node's runtime).
    #[arg(long, default_value = "127.0.0.1:5050")]
    pub listen: String,
    /// Also serve TLS here, for other nodes: the registry and the join channel.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<String>,
    /// Certificate (PEM) for TLS: on --tls-listen if given, else on --listen itself.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA served to joining nodes (they check its hash against their token).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// File holding the join token; its secret authenticates joining nodes.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Address joining nodes use for this registry (`ip:port`), told to them in join info.
    #[arg(long)]
    pub advertise: Option<String>,
}
