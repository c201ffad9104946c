//! Installing a bundle on its first node: what the install *is*, as a [`Plan`].
//!
//! [`plan`] turns the bundle and the operator's settings into the phases of DESIGN §3 —
//! stage (verify + copy in one read) → files (`COPY`) → registry (CA, certificate, join
//! token, the registry service) → runtime (containerd) or cluster (k3s) → health →
//! hooks (`RUN`). `plan` prints that value and `install` hands the same value to the
//! engine (`crate::engine`), which journals, resumes and rolls back. Preflight runs
//! before anything is written and is not part of the plan.

pub mod cluster;
pub mod health;
pub mod netinfo;
pub mod packages;
pub mod preflight;
pub mod reset;
pub mod runtime;
pub mod secrets;
pub mod site;
pub mod stage;
pub mod status;
pub mod upgrade;
pub mod workloads;

use crate::cli::RegistryArgs;
use crate::engine::{
    existing, CommandSpec, Content, EntryRef, FileStep, HealthCheck, Journal, Phase, PhaseName,
    Plan, PlanKind, Secret, Step,
};
use crate::host::{Host, HostPath, HostPathError};
use ferry_bundle::Bundle;
use std::net::IpAddr;
use std::time::Duration;

/// Everything an install (or its plan) depends on besides the bundle.
#[derive(Debug, Clone)]
pub struct InstallSettings {
    pub host: Host,
    pub node_ip: IpAddr,
    /// Loopback port of the registry this node's runtime pulls from.
    pub registry_port: u16,
    /// TLS port other nodes use for the registry and the join channel.
    pub join_port: u16,
    pub wait_timeout: Duration,
    pub skip_preflight: Vec<String>,
    pub quiet: bool,
    /// Services as systemd units (PID 1 is systemd and the root is the real `/`).
    pub systemd: bool,
    /// How the operator started this program (`./delivery.run`), for printed commands.
    pub invocation: String,
    /// The host's own containerd, if it has one (used when the bundle carries no runtime).
    pub host_containerd: Option<runtime::HostContainerd>,
    /// During an upgrade: the staged bundle of the version being left, whose images the
    /// registry keeps serving until the upgrade commits.
    pub serve_also: Option<HostPath>,
    /// `--site-registry`: images go to the site's registry and every node pulls from it.
    pub site: Option<crate::site::SiteConfig>,
}

impl InstallSettings {
    /// A plain install on `host` with the default ports and node address 10.0.0.1: what
    /// unit tests and the fuzz targets plan with.
    pub fn example(host: Host) -> InstallSettings {
        InstallSettings {
            host,
            node_ip: IpAddr::from([10, 0, 0, 1]),
            registry_port: 5050,
            join_port: 5443,
            wait_timeout: Duration::from_secs(1),
            skip_preflight: vec![],
            quiet: true,
            systemd: false,
            invocation: "./delivery.run".into(),
            host_containerd: None,
            serve_also: None,
            site: None,
        }
    }
    pub fn registry_addr(&self) -> String {
        format!("127.0.0.1:{}", self.registry_port)
    }
    pub fn advertise(&self) -> String {
        match self.node_ip {
            IpAddr::V6(ip) => format!("[{ip}]:{}", self.join_port),
            IpAddr::V4(ip) => format!("{ip}:{}", self.join_port),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("bundle.json files[]: {0}; the bundle was not made by a trustworthy ferry")]
    BadDestination(#[from] HostPathError),
    #[error("bundle.json: {what} names entry {entry}, which the bundle does not carry")]
    MissingEntry { what: String, entry: String },
    #[error("cannot plan k3s: {0}")]
    K3s(String),
    #[error("{0}")]
    Other(String),
}

/// An entry of `b` as a plan's content (carried, or for a delta inherited from its base).
pub fn entry_ref(b: &Bundle, entry: &str, what: &str) -> Result<EntryRef, PlanError> {
    let l = b.locate(entry).ok_or_else(|| PlanError::MissingEntry {
        what: what.to_string(),
        entry: entry.to_string(),
    })?;
    let rec = l.entry;
    let zstd = rec.compression.as_deref() == Some("zstd");
    Ok(EntryRef {
        entry: rec.path.clone(),
        size: rec.size,
        sha256: rec.sha256,
        zstd,
        unpacked: if zstd {
            unpacked_size(l.bundle, rec)
        } else {
            rec.size
        },
    })
}

/// The size a zstd entry unpacks to, from its frame header (the builder always records
/// it); the stored size if the header does not say.
pub fn unpacked_size(b: &Bundle, rec: &ferry_bundle::EntryRecord) -> u64 {
    let mut head = [0u8; 18];
    let n = b
        .file
        .read_at(&mut head, b.absolute_offset(rec))
        .unwrap_or(0)
        .min(rec.size as usize);
    match zstd::zstd_safe::get_frame_content_size(&head[..n]) {
        Ok(Some(len)) => len,
        _ => rec.size,
    }
}

/// A file step, with what the host has at `path` now.
pub fn file(host: &Host, journal: &Journal, path: HostPath, mode: u32, content: Content) -> Step {
    Step::WriteFile(FileStep {
        existing: existing(host, journal, &path),
        path,
        mode,
        content,
    })
}

/// The join token, root only: printed by the master, kept by nodes for `upgrade`.
pub fn token_file(host: &Host, journal: &Journal) -> Step {
    file(
        host,
        journal,
        host.token_file(),
        0o600,
        Content::Secret {
            secret: Secret::JoinToken,
        },
    )
}

/// The install plan of `b` on this host: one function per phase, in the order they run.
pub fn plan(s: &InstallSettings, b: &Bundle, journal: &Journal) -> Result<Plan, PlanError> {
    if let (Some(d), None) = (&b.manifest.delta, &b.base) {
        return Err(PlanError::Other(format!(
            "this is a delta bundle: it carries only what {} {} ({}) lacks, so it installs only as \
             an upgrade of a host where that bundle is installed; install the complete bundle",
            d.base_name, d.base_version, d.base
        )));
    }
    let mut notes = Vec::new();
    let mut phases = vec![stage_phase(s, b)];
    if let Some((phase, n)) = packages::phase(&s.host, journal, b)? {
        notes.extend(n);
        phases.push(phase);
    }
    phases.push(files_phase(s, b, journal)?);
    phases.push(registry_phase(s, b, journal));
    phases.extend(site_phase(s, b, &mut notes)?);
    let (runtime, health) = runtime_phase(s, b, journal, &mut notes)?;
    phases.push(runtime);
    phases.push(health);
    phases.extend(hooks_phase(s, b));
    Ok(Plan {
        kind: PlanKind::Install,
        bundle: b.manifest.name.clone(),
        bundle_sha256: b.footer.payload_sha256,
        notes,
        phases,
    })
}

/// The program services are supervised by: the bundle's staged copy.
fn supervisor(s: &InstallSettings, b: &Bundle) -> String {
    let host = &s.host;
    host.path(&host.staged_version(&b.footer.payload_sha256))
        .display()
        .to_string()
}

/// stage: verify every byte while copying the bundle beside earlier versions, and point
/// `bundle.run` at it.
fn stage_phase(s: &InstallSettings, b: &Bundle) -> Phase {
    let host = &s.host;
    let staged = host.staged_version(&b.footer.payload_sha256);
    let mut stage = Phase::new(PhaseName::Stage);
    stage.steps.push(Step::Stage {
        dest: staged.clone(),
        size: b.file_len,
        payload_sha256: b.footer.payload_sha256,
    });
    stage.steps.push(Step::Link {
        target: staged
            .as_str()
            .strip_prefix(&format!("{}/", host.data_dir))
            .unwrap_or(staged.as_str())
            .to_string(),
        path: host.staged_bundle(),
    });
    stage
}

/// files: the Kubefile's `COPY` destinations.
fn files_phase(s: &InstallSettings, b: &Bundle, journal: &Journal) -> Result<Phase, PlanError> {
    let mut files = Phase::new(PhaseName::Files);
    for f in &b.manifest.files {
        let e = entry_ref(b, &f.entry, &format!("COPY to {}", f.dest))?;
        files.steps.push(file(
            &s.host,
            journal,
            f.dest.clone(),
            f.mode & 0o7777,
            Content::Entry(e),
        ));
    }
    Ok(files)
}

/// registry: the cluster CA, the registry's certificate, the join token, and the
/// registry service (loopback for this node, TLS + join channel for others).
fn registry_phase(s: &InstallSettings, b: &Bundle, journal: &Journal) -> Phase {
    let host = &s.host;
    let mut registry = Phase::new(PhaseName::Registry);
    for (name, secret, mode) in [
        ("ca.pem", Secret::CaCert, 0o644),
        ("ca.key", Secret::CaKey, 0o600),
        ("server.pem", Secret::ServerCert, 0o644),
        ("server.key", Secret::ServerKey, 0o600),
    ] {
        registry.steps.push(file(
            host,
            journal,
            host.pki(name),
            mode,
            Content::Secret { secret },
        ));
    }
    registry.steps.push(token_file(host, journal));
    let exe = supervisor(s, b);
    let pki = |n: &str| host.path(&host.pki(n));
    let registry_args = RegistryArgs {
        listen: s.registry_addr(),
        tls_listen: Some(format!(
            "{}:{}",
            if s.node_ip.is_ipv6() {
                "[::]"
            } else {
                "0.0.0.0"
            },
            s.join_port
        )),
        tls_cert: Some(pki("server.pem")),
        tls_key: Some(pki("server.key")),
        ca: Some(pki("ca.pem")),
        token_file: Some(host.path(&host.token_file())),
        advertise: Some(s.advertise()),
        serve_also: s.serve_also.iter().map(|p| host.path(p)).collect(),
        misses_file: Some(host.path(&host.registry_misses())),
        site_registry_config: s
            .site
            .as_ref()
            .map(|_| host.path(&crate::site::config_path())),
    };
    if let Some(site) = &s.site {
        registry.steps.extend(site::files(host, journal, site));
    }
    let mut argv = vec![exe.clone()];
    argv.extend(registry_args.to_argv());
    argv.extend(["--bundle".to_string(), exe.clone()]);
    registry.steps.extend(crate::service::steps(
        host,
        journal,
        s.systemd,
        &exe,
        "registry",
        argv,
        vec![],
    ));
    registry.seal()
}

/// site_registry (`--site-registry`): every image pushed into the site's registry.
fn site_phase(
    s: &InstallSettings,
    b: &Bundle,
    notes: &mut Vec<String>,
) -> Result<Option<Phase>, PlanError> {
    let Some(site) = &s.site else {
        return Ok(None);
    };
    let phase = site::phase(site, b, notes)?;
    notes.push(format!(
        "images are pushed to the site registry {} (under <path>/<host>/<repository>) and every node pulls them from there by their original names; ferry's registry service stays for the join channel",
        site.url()
    ));
    Ok(Some(phase))
}

/// runtime or cluster: containerd (the bundle's, or the host's own for a bundle without
/// one) or k3s, mirrored to ferry's registry; and the health checks that go with it.
fn runtime_phase(
    s: &InstallSettings,
    b: &Bundle,
    journal: &Journal,
    notes: &mut Vec<String>,
) -> Result<(Phase, Phase), PlanError> {
    let host = &s.host;
    let exe = supervisor(s, b);
    let upstream: Vec<String> = runtime::upstream_hosts(b).into_iter().collect();
    let ferry_url = format!("http://{}", s.registry_addr());
    let mirror = match &s.site {
        Some(site) => runtime::Mirror::Site(site),
        None => runtime::Mirror::Ferry {
            url: &ferry_url,
            ca: None,
        },
    };
    let mut health = Phase::new(PhaseName::Health);
    health.steps.push(Step::Wait(HealthCheck::Registry {
        addr: s.registry_addr(),
        service: "registry".into(),
    }));
    let phase = match &b.manifest.cluster {
        None if runtime::payload_files(b)?.is_empty() => {
            let c = s.host_containerd.as_ref().ok_or_else(|| {
                PlanError::Other(
                    "this bundle carries no container runtime (built with --no-payload) and this host \
                     has no containerd (looked for ctr in /usr/bin, /usr/local/bin, /usr/sbin, /bin and \
                     for /run/containerd/containerd.sock): install containerd first, or use a bundle \
                     built with the containerd payload"
                        .into(),
                )
            })?;
            notes.push(format!(
                "this bundle carries no runtime: the host's containerd ({}, socket {}) pulls through \
                 ferry's registry using the hosts.toml files below in {}; containerd 2 reads them by \
                 default, containerd 1.x needs config_path = \"{}\" in its CRI registry settings, \
                 and ctr needs --hosts-dir {}",
                c.ctr, c.socket, c.certs_dir, c.certs_dir, c.certs_dir
            ));
            health.steps.push(Step::Wait(HealthCheck::Containerd {
                ctr: c.ctr.clone(),
                socket: c.socket.clone(),
                service: "containerd".into(),
            }));
            runtime::host_phase(host, journal, c, &upstream, mirror)
        }
        None => {
            health.steps.push(Step::Wait(HealthCheck::Containerd {
                ctr: host.bin("ctr"),
                socket: host.containerd_socket(),
                service: "containerd".into(),
            }));
            let payload = runtime::payload_files(b)?;
            runtime::phase(host, journal, s.systemd, &exe, payload, &upstream, mirror)
        }
        Some(c) if c.distribution == ferry_bundle::roles::PAYLOAD_K3S => {
            let mut phase = cluster::phase(
                &cluster::ClusterInputs {
                    host,
                    journal,
                    node_ip: &s.node_ip.to_string(),
                    registry_endpoint: &ferry_url,
                    registry_ca_file: None,
                    site: s.site.as_ref(),
                    upstream_hosts: upstream,
                    apps: cluster::apps(b)?,
                    k3s_binary: Some(Content::Entry(cluster::k3s_binary(b)?)),
                    systemd: s.systemd,
                    supervisor: &exe,
                },
                cluster::ClusterRole::FirstServer,
            )?;
            phase.steps.insert(0, cluster::secret_file(host, journal));
            let k3s = host.bin("k3s");
            health.steps.push(Step::Wait(HealthCheck::K3sNode {
                k3s: k3s.clone(),
                service: "k3s".into(),
            }));
            health
                .steps
                .push(Step::Wait(HealthCheck::Workloads { k3s }));
            phase
        }
        Some(c) => {
            return Err(PlanError::Other(format!(
                "bundle.json: cluster distribution {:?} is not one this installer knows (k3s)",
                c.distribution
            )))
        }
    };
    Ok((phase, health))
}

/// hooks: the Kubefile's `RUN` commands, after everything is healthy.
fn hooks_phase(s: &InstallSettings, b: &Bundle) -> Option<Phase> {
    if b.manifest.hooks.is_empty() {
        return None;
    }
    let env = hook_env(s, b);
    let mut hooks = Phase::new(PhaseName::Hooks);
    for h in &b.manifest.hooks {
        hooks.steps.push(Step::Run(CommandSpec {
            argv: vec!["sh".into(), "-c".into(), h.command.clone()],
            env: env.clone(),
        }));
    }
    Some(hooks)
}

/// An engine for `b`'s plans on this host: entries from `b`'s staged copy, secrets made
/// (or reused) here.
pub fn with_engine<T>(
    s: &InstallSettings,
    b: &Bundle,
    sys: &dyn crate::engine::System,
    report: &crate::engine::Reporter,
    f: impl FnOnce(&crate::engine::Engine) -> T,
) -> T {
    let host = &s.host;
    let staged =
        crate::engine::StagedBundle::new(host.path(&host.staged_version(&b.footer.payload_sha256)));
    let secrets = secrets::InstallSecrets::new(host, sys, s.node_ip.to_string())
        .with_site_login(s.site.as_ref().and_then(|x| x.login.clone()));
    let engine = crate::engine::Engine {
        sys,
        host,
        res: crate::engine::Resources {
            entries: &staged,
            secrets: &secrets,
            stage_from: Some(b),
            self_exe: b.path.clone(),
        },
        wait_timeout: s.wait_timeout,
        wait_report_every: Duration::from_secs(5),
        report,
    };
    f(&engine)
}

/// Runs the install plan of `b` through the engine.
pub fn run(
    s: &InstallSettings,
    b: &Bundle,
    plan: &Plan,
    jf: &mut crate::engine::JournalFile,
    sys: &dyn crate::engine::System,
    report: &crate::engine::Reporter,
) -> Result<(), crate::engine::EngineError> {
    with_engine(s, b, sys, report, |e| e.run(plan, jf))
}

/// Records in the journal who this host is about to be: the server of bundle `b`.
pub fn claim(journal: &mut Journal, s: &InstallSettings, b: &Bundle) {
    journal.bundle_sha256 = b.footer.payload_sha256.to_string();
    journal.bundle_name = b.manifest.name.clone();
    journal.role = crate::engine::NodeRole::Server;
    journal.node_ip = s.node_ip.to_string();
    journal.registry_port = s.registry_port;
    journal.join_port = s.join_port;
    journal.staged = s.host.staged_version(&b.footer.payload_sha256).to_string();
    journal.site_registry = s.site.as_ref().map(|x| x.url()).unwrap_or_default();
}

/// k3s's admin kubeconfig (a host path).
pub const KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";

/// The environment `RUN` hooks see: the Kubefile's `ENV`, overridable by the operator's
/// own environment, plus `KUBECONFIG` for k3s bundles and `FERRY_ROOT`.
pub fn hook_env(s: &InstallSettings, b: &Bundle) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = b
        .manifest
        .env
        .iter()
        .map(|(k, v)| (k.clone(), std::env::var(k).unwrap_or_else(|_| v.clone())))
        .collect();
    if b.manifest.cluster.is_some() {
        let kc = HostPath::new(KUBECONFIG).expect("fixed path");
        env.push(("KUBECONFIG".into(), s.host.path(&kc).display().to_string()));
    }
    env.push(("FERRY_ROOT".into(), s.host.root.display().to_string()));
    env
}

#[cfg(test)]
mod site_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod upgrade_tests;
