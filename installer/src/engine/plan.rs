//! The plan vocabulary: what an install, a join (and later an upgrade) does to a host,
//! as data.
//!
//! A [`Plan`] is a list of [`Phase`]s; a phase is a list of [`Step`]s executed in order
//! inside one file transaction and journaled as a unit. Everything a step needs is in
//! the step: file bytes or where to get them ([`Content`]), a service's full argv, a
//! command's argv and environment, what to wait for. `plan` prints exactly this value and
//! `install` executes exactly this value, so the two cannot disagree.
//!
//! Paths are host paths (`/etc/ferry/…`); the executor maps them under `--root`.

use crate::host::HostPath;
use ferry_bundle::Sha256Digest;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;

/// What a plan makes of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// The first node: stages the bundle, serves its images, starts the cluster.
    Install,
    /// Another node, fed by its master over the pinned channel.
    Join,
}

/// A whole plan: what `plan` prints and the engine runs.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub kind: PlanKind,
    /// Name of the bundle being installed (or joined).
    pub bundle: String,
    /// The bundle's identity: sha256 of its payload, as `--check` verifies it.
    pub bundle_sha256: Sha256Digest,
    /// What the operator should know about this plan beyond its steps.
    pub notes: Vec<String>,
    pub phases: Vec<Phase>,
}

/// The phases, in the order they run. A phase is journaled when all its steps are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseName {
    /// verify every byte of the bundle while copying it to the data directory.
    Stage,
    /// OS packages (`PACKAGE deb`) the host lacks, installed with dpkg.
    Packages,
    /// `COPY` destinations, and on joined nodes what the master hands out.
    Files,
    /// The cluster CA, the registry's certificate, the join token, the registry service.
    Registry,
    /// `--site-registry`: every image pushed into the site's own registry.
    SiteRegistry,
    /// containerd with a `hosts.toml` per upstream registry host.
    Runtime,
    /// k3s: config, registries.yaml, apps in the auto-deploy directory, the service.
    Cluster,
    /// Waits until what was started answers.
    Health,
    /// The Kubefile's `RUN` hooks.
    Hooks,
}

impl PhaseName {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::Stage => "stage",
            PhaseName::Packages => "packages",
            PhaseName::Files => "files",
            PhaseName::Registry => "registry",
            PhaseName::SiteRegistry => "site_registry",
            PhaseName::Runtime => "runtime",
            PhaseName::Cluster => "cluster",
            PhaseName::Health => "health",
            PhaseName::Hooks => "hooks",
        }
    }
    /// Phases whose steps are re-run even when journaled as done: checking health again is
    /// how a re-run proves the install still works.
    pub fn reruns(self) -> bool {
        matches!(self, PhaseName::Health)
    }
}

impl fmt::Display for PhaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: PhaseName,
    pub steps: Vec<Step>,
}

impl Phase {
    pub fn new(name: PhaseName) -> Phase {
        Phase {
            name,
            steps: Vec::new(),
        }
    }
    pub fn files(&self) -> impl Iterator<Item = &FileStep> {
        self.steps.iter().filter_map(|s| match s {
            Step::WriteFile(f) => Some(f),
            _ => None,
        })
    }
    pub fn services(&self) -> impl Iterator<Item = &ServiceSpec> {
        self.steps.iter().filter_map(|s| match s {
            Step::Service(s) => Some(s),
            _ => None,
        })
    }

    /// Sets each service's revision from its own spec and every file of this phase.
    pub fn seal(mut self) -> Phase {
        let mut files = Sha256::new();
        for f in self.files() {
            files.update(f.path.as_str().as_bytes());
            files.update(f.mode.to_le_bytes());
            files.update(f.content.identity().0);
        }
        for step in &mut self.steps {
            if let Step::Service(svc) = step {
                let mut h = files.clone();
                for a in &svc.argv {
                    h.update(a.as_bytes());
                    h.update([0]);
                }
                for (k, v) in &svc.env {
                    h.update(format!("{k}={v}").as_bytes());
                    h.update([0]);
                }
                svc.revision = Sha256Digest(h.finalize().into());
            }
        }
        self
    }
}

/// One thing the engine does.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Verify the bundle being installed, every byte, while copying it to `dest`.
    Stage {
        dest: HostPath,
        size: u64,
        payload_sha256: Sha256Digest,
    },
    /// Write a file (atomically: the old one stays in place until the new one is whole).
    WriteFile(FileStep),
    /// Create a symbolic link (replacing what is at `path`). `target` is relative to
    /// the link's directory, or an absolute host path.
    Link { path: HostPath, target: String },
    /// Take away a file ferry wrote earlier (an upgrade no longer has it); a host file it
    /// had replaced goes back.
    Remove { path: HostPath },
    /// Keep a long-running service running.
    Service(ServiceSpec),
    /// Run a command to completion; a non-zero exit fails the phase.
    Run(CommandSpec),
    /// Wait until a check passes, or fail the phase when the wait times out.
    Wait(HealthCheck),
    /// Install OS packages with dpkg (see `crate::install::packages`).
    Dpkg(DpkgStep),
    /// Push one image of the bundle into the site's registry (skipping what it has).
    Push(PushStep),
}

/// One `dpkg -i` of packages that install together (a group of the bundle's closure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DpkgStep {
    /// `dpkg [--root <root>] … -i <spooled .deb>…`, with a non-interactive environment.
    pub command: CommandSpec,
    /// Packages the host does not have: journaled before dpkg runs, removed by `reset`.
    pub install: Vec<String>,
    /// Packages the host has at an older version: upgraded, and left in place by `reset`
    /// (the host's own packages; the older version is not carried).
    pub upgrade: Vec<String>,
}

/// One image into the site's registry: its blobs, then its manifests (each after what it
/// references), then its tag. Everything is read from the bundle and verified on the way;
/// the registry checks each digest again.
#[derive(Debug, Clone, Serialize)]
pub struct PushStep {
    /// The image's name on the cluster, unchanged (`docker.io/library/nginx:1.27`).
    pub image: String,
    /// Where it goes, for people (`site:5000/ferry/docker.io/library/nginx:1.27`).
    pub target: String,
    /// The site (without credentials: those come from the secrets at run time).
    pub site: crate::site::SiteConfig,
    /// Repository on the site.
    pub repository: String,
    /// The tag to set (none for an image named by digest only).
    pub tag: Option<String>,
    /// What the tag names.
    pub digest: Sha256Digest,
    /// Configs and layers.
    pub blobs: Vec<PushBlob>,
    /// Manifests and indexes, children first, the one the tag names last.
    pub manifests: Vec<PushManifest>,
}

impl PushStep {
    /// Bytes of blob content the step may send.
    pub fn bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.entry.size).sum()
    }
}

/// A blob to push, and a site repository an earlier step pushed it to (mounted from
/// there rather than sent again).
#[derive(Debug, Clone, Serialize)]
pub struct PushBlob {
    pub entry: EntryRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_from: Option<String>,
}

/// A manifest to push: a bundle entry, or bytes made at plan time (an index reduced to
/// the platforms the bundle carries).
#[derive(Debug, Clone, Serialize)]
pub struct PushManifest {
    pub digest: Sha256Digest,
    pub media_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<EntryRef>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "bytes_for_people"
    )]
    pub bytes: Vec<u8>,
}

/// A file to write.
#[derive(Debug, Clone, Serialize)]
pub struct FileStep {
    pub path: HostPath,
    pub mode: u32,
    pub content: Content,
    /// What is at `path` now; a host file that ferry replaces is kept and restored by reset.
    pub existing: Existing,
}

/// What a file step finds at its path when planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Existing {
    Nothing,
    /// A file ferry wrote earlier (rewritten in place).
    Ours,
    /// A file of the host's own: ferry keeps the original under its data directory, and
    /// `reset` puts it back.
    HostFile,
}

/// Where a file's bytes come from.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    /// The bytes themselves (configs, units, a chart archive, the master's pinned CA).
    Bytes {
        #[serde(serialize_with = "bytes_for_people")]
        bytes: Vec<u8>,
    },
    /// An entry of the bundle, decompressed if stored with zstd. Install reads it from
    /// the staged bundle, a joining node from its master; either way its size and sha256
    /// are checked as it streams.
    Entry(EntryRef),
    /// Made on this host at install time; never printed.
    Secret { secret: Secret },
    /// This program without its payload: the bare installer joined nodes run services with.
    InstallerStub,
    /// Bytes known when planning that hold a credential (the site registry's password):
    /// written as they are, printed as `shown`.
    Private {
        #[serde(skip)]
        bytes: Vec<u8>,
        shown: String,
    },
}

impl Content {
    /// What the content is, as a digest: the same content always gives the same one.
    pub fn identity(&self) -> Sha256Digest {
        match self {
            Content::Bytes { bytes } => Sha256Digest::of(bytes),
            Content::Entry(e) => e.sha256,
            Content::Secret { secret } => Sha256Digest::of(format!("secret {secret:?}").as_bytes()),
            Content::InstallerStub => Sha256Digest::of(b"installer stub"),
            Content::Private { bytes, .. } => Sha256Digest::of(bytes),
        }
    }
    /// Bytes this content puts on the host (see [`Plan::written`]).
    pub fn written_bytes(&self, stub_bytes: u64) -> u64 {
        match self {
            Content::Bytes { bytes } | Content::Private { bytes, .. } => bytes.len() as u64,
            Content::Entry(e) => e.unpacked,
            Content::Secret { .. } => SECRET_BYTES,
            Content::InstallerStub => stub_bytes,
        }
    }
    pub fn text(s: impl Into<String>) -> Content {
        Content::Bytes {
            bytes: s.into().into_bytes(),
        }
    }
    pub fn bytes(b: Vec<u8>) -> Content {
        Content::Bytes { bytes: b }
    }
}

/// Text for people: UTF-8 text as is, anything else as its size and sha256.
fn bytes_for_people<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&describe_bytes(b))
}

/// Printable form of file bytes: the text itself, or `(N bytes, sha256:…)` for binaries.
pub fn describe_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(t) if !t.contains('\0') => t.to_string(),
        _ => format!(
            "({} bytes of binary data, {})",
            b.len(),
            Sha256Digest::of(b)
        ),
    }
}

/// An entry of the bundle, with what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryRef {
    pub entry: String,
    /// Stored size and sha256 (before decompression).
    pub size: u64,
    pub sha256: Sha256Digest,
    pub zstd: bool,
    /// Bytes written to the host: `size`, or for zstd the size its frame header records.
    pub unpacked: u64,
}

/// Secrets made at install time. Reused when an interrupted install is resumed, so a
/// printed join token stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Secret {
    /// The cluster CA certificate (ECDSA P-256); its hash is pinned by join tokens.
    CaCert,
    CaKey,
    /// The registry's serving certificate, for the node IP, signed by the CA.
    ServerCert,
    ServerKey,
    /// `K10<sha256 of the CA>::<secret>`, printed as part of the join command.
    JoinToken,
    /// The token's secret alone, which k3s reads as its cluster token (`token-file`).
    ClusterSecret,
    /// The site registry's user and password (JSON), given at install (stdin).
    SiteLogin,
}

impl Secret {
    pub fn describe(self) -> &'static str {
        match self {
            Secret::CaCert => "cluster CA certificate (ECDSA P-256), made at install",
            Secret::CaKey => "cluster CA key, made at install",
            Secret::ServerCert => "registry certificate for the node IP, signed by the CA",
            Secret::ServerKey => "registry key, made at install",
            Secret::JoinToken => "join token K10<sha256 of the CA>::<32 random bytes, hex>",
            Secret::ClusterSecret => "the join token's secret (k3s cluster token)",
            Secret::SiteLogin => "the site registry's user and password, given at install",
        }
    }
}

/// A service ferry keeps running: under systemd a unit, elsewhere ferry's supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSpec {
    /// `registry`, `containerd`, `k3s` or `k3s-agent`.
    pub name: String,
    /// The service's own command line (host paths as they are on this host).
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// How it is kept running (the argv that starts the supervisor, or the systemd unit).
    pub manager: ServiceManager,
    /// What the running service is made of: its command line and environment and every
    /// file its phase writes. A service running another revision is restarted (an
    /// upgrade replaced its binary or config; a rollback put the old ones back).
    pub revision: Sha256Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServiceManager {
    /// `<program> supervise --name … --pid-file … -- <argv>`, detached, with a pid file.
    Supervisor { argv: Vec<String> },
    /// A unit written by an earlier file step, started with `systemctl enable --now`.
    Systemd { unit: String },
}

/// A command to run to completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandSpec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl CommandSpec {
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> CommandSpec {
        CommandSpec {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
        }
    }
}

/// What a wait waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum HealthCheck {
    /// `GET /v2/` on ferry's registry answers 200.
    Registry { addr: String, service: String },
    /// `ctr version` talks to containerd's socket.
    Containerd {
        ctr: HostPath,
        socket: HostPath,
        service: String,
    },
    /// The k3s node reports Ready (`k3s kubectl get nodes`).
    K3sNode { k3s: HostPath, service: String },
    /// Every workload the bundle deployed is available.
    Workloads { k3s: HostPath },
    /// A service's supervised process is up (joined k3s agents: their readiness is the
    /// master's to see).
    Running { service: String },
    /// The master's TLS registry answers `/v2/` with the pinned CA.
    MasterRegistry { url: String },
}

impl HealthCheck {
    /// Short name for progress lines: "waiting for <what>".
    pub fn what(&self) -> String {
        match self {
            HealthCheck::Registry { addr, .. } => format!("the registry on {addr}"),
            HealthCheck::Containerd { .. } => "containerd".into(),
            HealthCheck::K3sNode { .. } => "the k3s node to be Ready".into(),
            HealthCheck::Workloads { .. } => "the bundle's workloads to be available".into(),
            HealthCheck::Running { service } => format!("{service} to run"),
            HealthCheck::MasterRegistry { url } => format!("the master's registry {url}"),
        }
    }
    /// The service whose log explains a failure of this check, if any.
    pub fn service(&self) -> Option<&str> {
        match self {
            HealthCheck::Registry { service, .. }
            | HealthCheck::Containerd { service, .. }
            | HealthCheck::K3sNode { service, .. }
            | HealthCheck::Running { service } => Some(service),
            HealthCheck::Workloads { .. } | HealthCheck::MasterRegistry { .. } => None,
        }
    }
}

/// A file a plan writes, and how many bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    pub phase: PhaseName,
    pub path: HostPath,
    pub bytes: u64,
}

/// Room counted for a secret (a PEM certificate or key, a token): one block.
pub const SECRET_BYTES: u64 = 4096;

impl Plan {
    /// Every file the plan writes, with its size: the staged bundle (unless
    /// `already_staged`), and each file's content as it lands on the host (an entry
    /// unpacked, bytes as they are, a secret as [`SECRET_BYTES`], the installer stub as
    /// `stub_bytes`). Preflight sums these per file system; the plan is data, so this is
    /// exactly what the engine will write, not a guess.
    pub fn written(&self, stub_bytes: u64, already_staged: bool) -> Vec<Written> {
        let mut out = Vec::new();
        for p in &self.phases {
            for s in &p.steps {
                let (path, bytes) = match s {
                    Step::Stage { .. } if already_staged => continue,
                    Step::Stage { dest, size, .. } => (dest, *size),
                    Step::WriteFile(f) => (&f.path, f.content.written_bytes(stub_bytes)),
                    _ => continue,
                };
                out.push(Written {
                    phase: p.name,
                    path: path.clone(),
                    bytes,
                });
            }
        }
        out
    }

    pub fn phase(&self, name: PhaseName) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == name)
    }
    /// Every file step of every phase.
    pub fn files(&self) -> impl Iterator<Item = (PhaseName, &FileStep)> {
        self.phases
            .iter()
            .flat_map(|p| p.files().map(move |f| (p.name, f)))
    }
    pub fn services(&self) -> impl Iterator<Item = &ServiceSpec> {
        self.phases.iter().flat_map(|p| p.services())
    }
}
