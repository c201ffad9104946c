//! Command-line surface of the installer. Options follow makeself where they overlap
//! (`--info --list --check --extract --quiet`), so operators who know `.run` installers
//! already know these; ferry's own actions are subcommands.
//!
//! Argument types that ferry also *writes* (the registry's and the supervisor's command
//! lines, started as services) can render themselves back to an argv (`to_argv`), and a
//! test parses that argv again: what ferry starts is always something it accepts.

use clap::{Args, Parser, Subcommand};
use ferry_console::OutputFormat;
use std::net::IpAddr;
use std::path::PathBuf;

pub const EXIT_CODES: &str = "Exit codes:\n  \
    0  success\n  \
    1  the command failed (the message says why and what to do)\n  \
    2  the command line is wrong\n  \
    3  not installed (status), or preflight failed (install, join, preflight)\n  \
    4  installed but unhealthy (status)";

#[derive(Debug, Parser)]
#[command(
    name = "delivery.run",
    version,
    about = "ferry installer: verifies, stages and installs the bundle appended to this file",
    long_about = "ferry installer: verifies, stages and installs the bundle appended to this file.\n\n\
        Without a command it installs (asking first on a terminal). The read-only options \
        (--info, --list, --check, --extract) never change the host. If the file lost its \
        execute bit on the way, `chmod +x` it (it is a program, not a shell script).",
    after_help = EXIT_CODES
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
    /// Extract the payload's entries (as stored) into DIR, after checking its structure
    /// (a signed bundle's signature too, as DIR/bundle.json.sig).
    #[arg(long, value_name = "DIR", group = "action")]
    pub extract: Option<PathBuf>,
    /// Print the bundle's SBOM (SPDX 2.3 JSON): images with their OS packages, payload
    /// binaries, charts, carried packages.
    #[arg(long, group = "action")]
    pub sbom: bool,
    /// Output format of reports (text, or one JSON document for scripts).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text, global = true)]
    pub output: OutputFormat,
    /// Operate on this bundle file instead of the one appended to this program.
    #[arg(long, value_name = "FILE", global = true, env = "FERRY_BUNDLE")]
    pub bundle: Option<PathBuf>,
    /// Only print errors (and requested data); no progress.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(flatten)]
    pub host: HostArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Same as the `join` command: join the cluster of this master (`ip:port`).
    #[arg(long, value_name = "MASTER")]
    pub join: Option<String>,
    #[command(flatten)]
    pub join_args: JoinArgs,
    #[command(flatten)]
    pub site: SiteArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Where ferry's things are on this host (every command that reads or changes the host
/// must agree on these).
#[derive(Debug, Args, Clone)]
pub struct HostArgs {
    /// Install under this prefix instead of `/` (several "hosts" on one machine in tests).
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Data directory on the host (staged bundle, journal, containerd state).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// This node's IP as other nodes reach it (default: the default route's interface).
    #[arg(long, global = true, value_name = "IP")]
    pub node_ip: Option<IpAddr>,
    /// Port of the local registry (loopback, plain HTTP, used by this node's runtime).
    #[arg(long, global = true, default_value_t = 5050, value_parser = clap::value_parser!(u16).range(1..))]
    pub registry_port: u16,
    /// TLS port other nodes use for the registry and the join channel.
    #[arg(long, global = true, default_value_t = 5443, value_parser = clap::value_parser!(u16).range(1..))]
    pub join_port: u16,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Turn a failing preflight check into a warning (repeatable; names as in the table).
    #[arg(long, global = true, value_name = "CHECK",
          value_parser = clap::builder::PossibleValuesParser::new(crate::install::preflight::CHECKS))]
    pub skip_preflight: Vec<String>,
    /// Longest wait for services and workloads to become healthy, in seconds.
    #[arg(long, global = true, default_value_t = 120, value_name = "SECONDS")]
    pub wait_timeout: u64,
}

/// `--site-registry`: the site's own registry as where images go and are pulled from
/// (install, plan, upgrade).
#[derive(Debug, Args, Clone, Default)]
pub struct SiteArgs {
    /// Push every image into the site's registry under <PATH>/<original host>/<original
    /// repository> and make every node pull from there by the original names.
    #[arg(long, global = true, value_name = "HOST[:PORT]/PATH")]
    pub site_registry: Option<String>,
    /// CA certificate (PEM) the site registry's certificate chains to (default: the host's
    /// trusted CAs).
    #[arg(long, global = true, value_name = "CA.PEM")]
    pub site_registry_ca: Option<PathBuf>,
    /// User for the site registry; the password is read from stdin
    /// (--site-registry-password-stdin).
    #[arg(long, global = true, value_name = "USER")]
    pub site_registry_user: Option<String>,
    /// Read the site registry's password from stdin (one line).
    #[arg(long, global = true)]
    pub site_registry_password_stdin: bool,
    /// The site registry speaks plain HTTP (no TLS).
    #[arg(long, global = true)]
    pub site_registry_insecure: bool,
}

/// Which signers this host accepts. With any of these, or any `*.pem` in the site trust
/// directory (`/etc/ferry/trust` under `--root`), a bundle must be signed by one of the
/// pinned keys: unsigned and foreign-signed bundles are refused before anything is
/// staged or written.
#[derive(Debug, Args, Clone, Default)]
pub struct TrustArgs {
    /// Accept only bundles signed by this public key (PEM, as `ferry key generate` writes
    /// to <prefix>.pub.pem); repeatable.
    #[arg(long, global = true, value_name = "PUB.PEM")]
    pub trust_key: Vec<PathBuf>,
    /// Accept only bundles signed by the key with this fingerprint (`sha256:<hex>`, as
    /// `--info` and `ferry key generate` print); repeatable.
    #[arg(long, global = true, value_name = "SHA256:HEX")]
    pub trust_fingerprint: Vec<ferry_bundle::signature::Fingerprint>,
}

/// Options of joining (with `join`, or `--join` / `plan --join`).
#[derive(Debug, Args, Clone, Default)]
pub struct JoinArgs {
    /// Join token printed by the master's install (`K10…::…`).
    #[arg(long, env = "FERRY_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// On a k3s bundle: join as another server (HA control plane), not an agent.
    #[arg(long, global = true)]
    pub control_plane: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install the bundle on this host (the default when no command is given).
    Install,
    /// Join this host to a master's cluster, with nothing but this installer.
    Join {
        /// The master's join address, as printed by its install (`ip:port`).
        #[arg(value_name = "MASTER")]
        master: String,
    },
    /// Show every file the install (or, with --join, the join) would write and every
    /// command it would run; change nothing.
    Plan,
    /// Run the preflight checks only.
    Preflight,
    /// Show what is installed and whether it works (exit 4 when something is unhealthy).
    Status,
    /// Stop what ferry started, remove what it installed and restore host files it
    /// replaced — nothing else. Asks first unless --yes.
    #[command(alias = "uninstall")]
    Reset,
    /// Upgrade the installed bundle to this (newer) one: shows what changes, asks, then
    /// upgrades; if anything fails, the installed version keeps running.
    Upgrade,
    /// Return to the version installed before the last upgrade.
    Rollback,
    /// (internal) Run a service under ferry's supervisor.
    #[command(hide = true)]
    Supervise(SuperviseArgs),
    /// Serve the bundle's images as a read-only OCI registry, in the foreground.
    Registry(RegistryArgs),
}

#[derive(Debug, Args, Clone, PartialEq, Eq)]
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

impl SuperviseArgs {
    /// The command line (after the program) that parses back into `self`.
    pub fn to_argv(&self) -> Vec<String> {
        let mut v = vec![
            "supervise".to_string(),
            "--name".into(),
            self.name.clone(),
            "--pid-file".into(),
            self.pid_file.display().to_string(),
        ];
        for kv in &self.env {
            v.push(format!("--env={kv}"));
        }
        v.push("--".into());
        v.extend(self.argv.iter().cloned());
        v
    }
}

#[derive(Debug, Args, Clone, PartialEq, Eq)]
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
    /// Also serve the images of this bundle (repeatable), where --bundle has none of that
    /// name: an upgrade serves the old version's images until it commits.
    #[arg(long, value_name = "FILE")]
    pub serve_also: Vec<PathBuf>,
    /// Keep the record of requests for images the bundle lacks in this JSON file (read by
    /// `status`); without it the record lives in memory only.
    #[arg(long, value_name = "FILE")]
    pub misses_file: Option<PathBuf>,
    /// The site registry's settings (`--site-registry` installs), handed to joining nodes.
    #[arg(long, value_name = "FILE")]
    pub site_registry_config: Option<PathBuf>,
}

impl RegistryArgs {
    /// The command line (after the program) that parses back into `self`.
    pub fn to_argv(&self) -> Vec<String> {
        let mut v = vec!["registry".to_string(), format!("--listen={}", self.listen)];
        let mut opt = |flag: &str, val: Option<String>| {
            if let Some(x) = val {
                v.push(format!("--{flag}={x}"));
            }
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        opt("tls-listen", self.tls_listen.clone());
        opt("tls-cert", path(&self.tls_cert));
        opt("tls-key", path(&self.tls_key));
        opt("ca", path(&self.ca));
        opt("token-file", path(&self.token_file));
        opt("advertise", self.advertise.clone());
        opt("misses-file", path(&self.misses_file));
        for p in &self.serve_also {
            v.push(format!("--serve-also={}", p.display()));
        }
        if let Some(p) = &self.site_registry_config {
            v.push(format!("--site-registry-config={}", p.display()));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[String]) -> Cli {
        let mut v = vec!["delivery.run".to_string()];
        v.extend(args.iter().cloned());
        Cli::try_parse_from(v).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn registry_argv_round_trips() {
        let a = RegistryArgs {
            listen: "127.0.0.1:5050".into(),
            tls_listen: Some("0.0.0.0:5443".into()),
            tls_cert: Some("/r/etc/ferry/pki/server.pem".into()),
            tls_key: Some("/r/etc/ferry/pki/server.key".into()),
            ca: Some("/r/etc/ferry/pki/ca.pem".into()),
            token_file: Some("/r/etc/ferry/token".into()),
            advertise: Some("10.0.0.1:5443".into()),
            serve_also: vec!["/r/var/lib/ferry/bundles/a.run".into()],
            misses_file: Some("/r/var/lib/ferry/registry-misses.json".into()),
            site_registry_config: Some("/r/etc/ferry/site-registry/site.json".into()),
        };
        match parse(&a.to_argv()).command {
            Some(Command::Registry(back)) => assert_eq!(back, a),
            other => panic!("{other:?}"),
        }
        let bare = RegistryArgs {
            listen: "[::1]:5000".into(),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            ca: None,
            token_file: None,
            advertise: None,
            serve_also: vec![],
            misses_file: None,
            site_registry_config: None,
        };
        match parse(&bare.to_argv()).command {
            Some(Command::Registry(back)) => assert_eq!(back, bare),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn supervise_argv_round_trips() {
        let a = SuperviseArgs {
            name: "containerd".into(),
            pid_file: "/r/run/ferry/containerd.pid".into(),
            env: vec!["PATH=/opt/ferry/bin:/usr/bin".into(), "A=b=c".into()],
            argv: vec![
                "/r/opt/ferry/bin/containerd".into(),
                "--config".into(),
                "/r/etc/ferry/containerd/config.toml".into(),
            ],
        };
        match parse(&a.to_argv()).command {
            Some(Command::Supervise(back)) => assert_eq!(back, a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_values_are_refused_naming_the_flag() {
        let e = Cli::try_parse_from(["d", "--node-ip", "garbage"]).unwrap_err();
        assert!(e.to_string().contains("--node-ip"), "{e}");
        let e = Cli::try_parse_from(["d", "--skip-preflight", "nonsense"]).unwrap_err();
        assert!(e.to_string().contains("--skip-preflight"), "{e}");
        let e = Cli::try_parse_from(["d", "--registry-port", "0"]).unwrap_err();
        assert!(e.to_string().contains("--registry-port"), "{e}");
    }

    #[test]
    fn uninstall_is_reset() {
        assert!(matches!(
            Cli::try_parse_from(["d", "uninstall"]).unwrap().command,
            Some(Command::Reset)
        ));
    }
}
