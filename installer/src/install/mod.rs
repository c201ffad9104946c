//! Installing a bundle on a host, as journaled phases (DESIGN §3):
//! preflight → verify+stage → files → registry → runtime → apps → health → join info.
//!
//! Every phase but preflight and stage is first *planned* ([`actions::PhasePlan`]: files,
//! services, commands) and then executed through a [`transaction::Transaction`], so
//! `plan` shows exactly what `install` does and a failed phase is rolled back. The journal
//! records each finished phase; a re-run after a crash or `kill -9` skips finished phases
//! (making sure their services run) and converges to the same state.

pub mod actions;
pub mod cluster;
pub mod health;
pub mod journal;
pub mod netinfo;
pub mod preflight;
pub mod reset;
pub mod runtime;
pub mod stage;
pub mod status;
pub mod transaction;
pub mod workloads;

use crate::host::Host;
use actions::{Content, FileAction, PhasePlan, ServiceSpec};
use anyhow::{bail, Context, Result};
use ferry_bundle::Bundle;
use journal::Journal;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;
use transaction::Transaction;

/// Everything an install (or its plan) needs to know.
pub struct InstallCtx {
    pub host: Host,
    /// The bundle being installed (this file, or `--bundle`).
    pub bundle: Bundle,
    pub node_ip: String,
    pub registry_port: u16,
    /// TLS port other nodes use for the registry and the join channel.
    pub join_port: u16,
    pub wait_timeout: Duration,
    pub skip_preflight: Vec<String>,
    pub quiet: bool,
}

impl InstallCtx {
    pub fn registry_addr(&self) -> String {
        format!("127.0.0.1:{}", self.registry_port)
    }
    /// The program services are started with: the staged bundle.
    pub fn service_exe(&self) -> PathBuf {
        self.host.path(&self.host.staged_bundle())
    }
    pub fn has_cluster(&self) -> bool {
        self.bundle.manifest.cluster.is_some()
    }
}

/// Plans of every phase after staging, in order.
pub fn plan_phases(ctx: &InstallCtx) -> Vec<PhasePlan> {
    let host = &ctx.host;
    let mut plans = Vec::new();
    let files = ctx
        .bundle
        .manifest
        .files
        .iter()
        .filter_map(|f| {
            let rec = ctx.bundle.manifest.entry(&f.entry)?;
            Some(FileAction {
                path: f.dest.clone(),
                mode: f.mode,
                content: Content::Entry {
                    entry: rec.path.clone(),
                    compression: rec.compression.clone(),
                    size: rec.size,
                    sha256: rec.sha256.clone(),
                },
            })
        })
        .collect();
    plans.push(PhasePlan {
        phase: "files".into(),
        files,
        ..Default::default()
    });
    let staged = ctx.service_exe().display().to_string();
    let gen = |what: &str| Content::Generated { what: what.into() };
    let pki = |n: &str| host.path(&host.pki(n)).display().to_string();
    plans.push(PhasePlan {
        phase: "registry".into(),
        files: vec![
            FileAction {
                path: host.pki("ca.pem"),
                mode: 0o644,
                content: gen("cluster CA certificate (ECDSA P-256)"),
            },
            FileAction {
                path: host.pki("ca.key"),
                mode: 0o600,
                content: gen("cluster CA key"),
            },
            FileAction {
                path: host.pki("server.pem"),
                mode: 0o644,
                content: gen(&format!(
                    "registry certificate for {} signed by the CA",
                    ctx.node_ip
                )),
            },
            FileAction {
                path: host.pki("server.key"),
                mode: 0o600,
                content: gen("registry key"),
            },
            FileAction {
                path: host.token_file(),
                mode: 0o600,
                content: gen("join token K10<sha256 of ca.pem>::<32 random bytes, hex>"),
            },
        ],
        services: vec![ServiceSpec {
            name: "registry".into(),
            argv: vec![
                staged.clone(),
                "registry".into(),
                "--listen".into(),
                ctx.registry_addr(),
                "--tls-listen".into(),
                format!("0.0.0.0:{}", ctx.join_port),
                "--tls-cert".into(),
                pki("server.pem"),
                "--tls-key".into(),
                pki("server.key"),
                "--ca".into(),
                pki("ca.pem"),
                "--token-file".into(),
                host.path(&host.token_file()).display().to_string(),
                "--advertise".into(),
                format!("{}:{}", ctx.node_ip, ctx.join_port),
                "--bundle".into(),
                staged,
            ],
            env: vec![],
        }],
        ..Default::default()
    });
    let hosts = runtime::upstream_hosts(&ctx.bundle);
    let endpoint = format!("http://{}", ctx.registry_addr());
    if !ctx.has_cluster() {
        plans.push(runtime::plan(
            host,
            runtime::payload_files(&ctx.bundle),
            &hosts,
            &endpoint,
            None,
        ));
    } else {
        plans.push(cluster_plan(ctx, &hosts, &endpoint));
    }
    plans.push(PhasePlan {
        phase: "join_info".into(),
        ..Default::default()
    });
    plans
}

/// The k3s phase. The k3s token is the join token's secret: known once the registry phase
/// has made it (plans are recomputed before every phase), shown as a placeholder before.
fn cluster_plan(
    ctx: &InstallCtx,
    hosts: &std::collections::BTreeSet<String>,
    endpoint: &str,
) -> PhasePlan {
    let host = &ctx.host;
    let token = std::fs::read_to_string(host.path(&host.token_file()))
        .ok()
        .and_then(|t| crate::join::token::Token::parse(&t).ok())
        .map(|t| t.secret)
        .unwrap_or_else(|| "<generated-at-install>".into());
    let k3s_binary = ctx
        .bundle
        .manifest
        .payloads
        .iter()
        .filter(|p| p.name == "k3s")
        .find_map(|p| {
            let e = ctx.bundle.manifest.entry(p.files.get(cluster::K3S_BIN)?)?;
            Some(Content::Entry {
                entry: e.path.clone(),
                compression: e.compression.clone(),
                size: e.size,
                sha256: e.sha256.clone(),
            })
        });
    let inputs = cluster::ClusterInputs {
        host,
        node_ip: &ctx.node_ip,
        token: &token,
        registry_endpoint: endpoint,
        registry_ca_file: None,
        upstream_hosts: hosts.iter().cloned().collect(),
        apps: cluster::apps(&ctx.bundle).unwrap_or_default(),
        k3s_binary,
        systemd: crate::service::use_systemd(host),
    };
    match cluster::plan(&inputs, cluster::ClusterRole::FirstServer) {
        Ok(p) => p,
        Err(e) => PhasePlan {
            phase: "cluster".into(),
            commands: vec![vec!["false".into(), format!("cannot plan k3s: {e:#}")]],
            ..Default::default()
        },
    }
}

/// The environment `RUN` hooks see: the Kubefile's `ENV`, overridable by the operator's
/// own environment, plus `KUBECONFIG` for k3s bundles and `FERRY_ROOT`.
pub fn hook_env(ctx: &InstallCtx) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = ctx
        .bundle
        .manifest
        .env
        .iter()
        .map(|(k, v)| (k.clone(), std::env::var(k).unwrap_or_else(|_| v.clone())))
        .collect();
    if ctx.has_cluster() {
        env.push((
            "KUBECONFIG".into(),
            ctx.host.path(KUBECONFIG).display().to_string(),
        ));
    }
    env.push(("FERRY_ROOT".into(), ctx.host.root.display().to_string()));
    env
}

/// k3s's admin kubeconfig (a host path).
pub const KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";

/// `RUN` hooks, in Kubefile order, after the apps are deployed and healthy. A failing hook
/// stops the install (and is re-run on resume).
fn run_hooks(ctx: &InstallCtx) -> Result<()> {
    let env = hook_env(ctx);
    for h in &ctx.bundle.manifest.hooks {
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(&h.command)
            .envs(env.iter().cloned())
            .status()
            .with_context(|| format!("running hook {:?}", h.command))?;
        if !st.success() {
            bail!("hook {:?} failed: {st}", h.command);
        }
    }
    Ok(())
}

/// The commands a plan's services amount to (supervisor argv, or systemctl).
pub fn service_commands(ctx: &InstallCtx, spec: &ServiceSpec) -> Vec<Vec<String>> {
    if crate::service::use_systemd(&ctx.host) {
        vec![
            vec!["systemctl".into(), "daemon-reload".into()],
            vec![
                "systemctl".into(),
                "enable".into(),
                "--now".into(),
                crate::service::systemd::unit_name(&spec.name),
            ],
        ]
    } else {
        vec![crate::service::supervise_argv(
            &ctx.host,
            &ctx.service_exe().display().to_string(),
            spec,
        )]
    }
}

pub struct Outcome {
    pub journal: Journal,
    pub checks: Vec<preflight::Check>,
}

pub fn preflight(ctx: &InstallCtx) -> Vec<preflight::Check> {
    let stage_bytes = if stage::already_staged(&ctx.host, &ctx.bundle) {
        0
    } else {
        ctx.bundle.file_len
    };
    preflight::run(&preflight::Inputs {
        host: &ctx.host,
        stage_bytes,
        platform: &ctx.bundle.manifest.platform,
        ports: vec![ctx.registry_port, ctx.join_port],
        cluster: ctx.has_cluster(),
        bundle_sha256: &ctx.bundle.footer.payload_sha256.hex(),
        skip: &ctx.skip_preflight,
    })
}

pub fn install(ctx: &InstallCtx) -> Result<Outcome> {
    let checks = preflight(ctx);
    if !ctx.quiet {
        eprint!("{}", preflight::table(&checks));
    }
    let failed = preflight::failed(&checks);
    if !failed.is_empty() {
        let names: Vec<_> = failed.iter().map(|c| c.name).collect();
        bail!("preflight failed: {} (fix them, or skip with --skip-preflight <name>); nothing was changed", names.join(", "));
    }
    let host = &ctx.host;
    let journal_path = host.path(&host.journal());
    let mut j = Journal::load(&journal_path)?.unwrap_or_else(|| Journal {
        bundle_sha256: ctx.bundle.footer.payload_sha256.hex(),
        bundle_name: ctx.bundle.manifest.name.clone(),
        role: "server".into(),
        ..Default::default()
    });
    j.node_ip = ctx.node_ip.clone();
    j.registry_port = ctx.registry_port;
    let mut tx = Transaction::new();
    // Create ferry's own trees up front, so that every directory created for it (parents
    // included) is in the journal and `reset` can remove exactly those.
    for t in host.owned_trees() {
        tx.create_dir_all(&host.path(&t))?;
    }
    record_touched(&mut j, host, &tx);
    tx.commit();
    j.save(&journal_path)?;

    if !(j.is_done("stage") && stage::already_staged(host, &ctx.bundle)) {
        step(ctx, "verify+stage");
        let r = stage::verify_and_stage(host, &ctx.bundle, ctx.quiet);
        j.record(
            "verify",
            r.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")),
        );
        j.record(
            "stage",
            r.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")),
        );
        j.files.insert(host.staged_bundle());
        j.save(&journal_path)?;
        r?;
        crash_point("stage");
    }
    let staged = Bundle::open(&ctx.service_exe()).context("opening the staged bundle")?;

    let phase_names: Vec<String> = plan_phases(ctx).into_iter().map(|p| p.phase).collect();
    for name in phase_names {
        // Recomputed per phase: a later phase may depend on what an earlier one made.
        let Some(plan) = plan_phases(ctx).into_iter().find(|p| p.phase == name) else {
            continue;
        };
        if j.is_done(&plan.phase) {
            for s in &plan.services {
                crate::service::ensure_running(host, &ctx.service_exe(), s)?;
            }
            continue;
        }
        step(ctx, &plan.phase);
        let r = execute(ctx, &staged, &plan, &mut j);
        j.record(
            &plan.phase,
            r.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")),
        );
        j.save(&journal_path)?;
        r.with_context(|| format!("phase {}", plan.phase))?;
        crash_point(&plan.phase);
    }

    step(ctx, "health");
    let r = check_health(ctx);
    j.record("health", r.clone());
    j.save(&journal_path)?;
    r.map_err(anyhow::Error::msg)?;

    if !j.is_done("hooks") && !ctx.bundle.manifest.hooks.is_empty() {
        step(ctx, "hooks");
        let r = run_hooks(ctx);
        j.record(
            "hooks",
            r.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")),
        );
        j.save(&journal_path)?;
        r?;
    }

    let token = std::fs::read_to_string(host.path(&host.token_file())).unwrap_or_default();
    j.join_command = format!(
        "./delivery.run --join {}:{} --token {}",
        ctx.node_ip,
        ctx.join_port,
        token.trim()
    );
    j.save(&journal_path)?;
    Ok(Outcome { journal: j, checks })
}

/// Test hook: `FERRY_CRASH_AFTER=<phase>` makes the installer die like `kill -9` right
/// after that phase is journaled, so tests can prove resume at every phase boundary.
fn crash_point(phase: &str) {
    if std::env::var("FERRY_CRASH_AFTER").is_ok_and(|p| p == phase) {
        eprintln!("FERRY_CRASH_AFTER={phase}: aborting");
        std::process::abort();
    }
}

fn step(ctx: &InstallCtx, name: &str) {
    if !ctx.quiet {
        eprintln!("==> {name}");
    }
}

fn record_touched(j: &mut Journal, host: &Host, tx: &Transaction) {
    let strip = |p: &std::path::Path| {
        format!("/{}", p.strip_prefix(&host.root).unwrap_or(p).display()).replace("//", "/")
    };
    let (files, dirs) = tx.touched();
    j.files.extend(files.iter().map(|p| strip(p)));
    j.dirs.extend(dirs.iter().map(|p| strip(p)));
}

/// Writes a phase's files in a transaction, then starts its services; rolls the files
/// back if anything fails.
fn execute(ctx: &InstallCtx, staged: &Bundle, plan: &PhasePlan, j: &mut Journal) -> Result<()> {
    let host = &ctx.host;
    let mut tx = Transaction::new();
    let mut generated: Option<std::collections::BTreeMap<String, Vec<u8>>> = None;
    for f in &plan.files {
        let dest = host.path(&f.path);
        let mut reader: Box<dyn Read> = match &f.content {
            Content::Generated { .. } => {
                if generated.is_none() {
                    generated = Some(generate_secrets(ctx)?);
                }
                let bytes = generated
                    .as_ref()
                    .unwrap()
                    .get(&f.path)
                    .cloned()
                    .with_context(|| format!("nothing generated for {}", f.path))?;
                Box::new(std::io::Cursor::new(bytes))
            }
            Content::Text { text } => Box::new(std::io::Cursor::new(text.clone().into_bytes())),
            Content::Entry {
                entry, compression, ..
            } => {
                let rec = staged
                    .entry(entry)
                    .with_context(|| format!("bundle entry {entry} missing"))?;
                let raw = staged.open_entry(rec);
                if compression.as_deref() == Some("zstd") {
                    Box::new(zstd::stream::read::Decoder::new(raw)?)
                } else {
                    Box::new(raw)
                }
            }
            Content::Bundle { .. } => continue,
        };
        tx.write(&dest, f.mode, &mut reader)
            .with_context(|| format!("writing {}", f.path))?;
    }
    for s in &plan.services {
        crate::service::ensure_running(host, &ctx.service_exe(), s)
            .with_context(|| format!("starting {}", s.name))?;
        j.services.insert(s.name.clone());
    }
    for c in &plan.commands {
        let st = std::process::Command::new(&c[0])
            .args(&c[1..])
            .status()
            .with_context(|| format!("running {}", c[0]))?;
        if !st.success() {
            bail!("{} failed: {st}", c.join(" "));
        }
    }
    record_touched(j, host, &tx);
    tx.commit();
    Ok(())
}

/// The CA, registry certificate, keys and join token: reused if an earlier (interrupted)
/// run made them, so a resumed install keeps the token it may already have printed.
fn generate_secrets(ctx: &InstallCtx) -> Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let host = &ctx.host;
    let names = ["ca.pem", "ca.key", "server.pem", "server.key"];
    let mut out = std::collections::BTreeMap::new();
    let existing: Vec<Option<Vec<u8>>> = names
        .iter()
        .map(|n| std::fs::read(host.path(&host.pki(n))).ok())
        .collect();
    let token_existing = std::fs::read(host.path(&host.token_file())).ok();
    if let (true, Some(token)) = (existing.iter().all(Option::is_some), token_existing) {
        for (n, b) in names.iter().zip(existing) {
            out.insert(host.pki(n), b.unwrap_or_default());
        }
        out.insert(host.token_file(), token);
        return Ok(out);
    }
    let pki = crate::join::pki::generate(&[ctx.node_ip.clone(), "127.0.0.1".into()])
        .context("generating the cluster CA")?;
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    let token = crate::join::token::Token {
        ca_hash: crate::join::pki::ca_hash(pki.ca_pem.as_bytes()),
        secret: hex::encode(secret),
    };
    out.insert(host.pki("ca.pem"), pki.ca_pem.into_bytes());
    out.insert(host.pki("ca.key"), pki.ca_key_pem.into_bytes());
    out.insert(host.pki("server.pem"), pki.server_pem.into_bytes());
    out.insert(host.pki("server.key"), pki.server_key_pem.into_bytes());
    out.insert(host.token_file(), token.to_string().into_bytes());
    Ok(out)
}

fn check_health(ctx: &InstallCtx) -> Result<(), String> {
    let addr = ctx.registry_addr();
    health::wait_for("registry", ctx.wait_timeout, || health::registry_ok(&addr))?;
    if ctx.has_cluster() {
        let k3s = ctx.host.path(&ctx.host.bin("k3s"));
        health::wait_for("k3s node", ctx.wait_timeout, || {
            health::k3s_node_ready(&k3s)
        })?;
        let mut last = Vec::new();
        let r = health::wait_for("workloads", ctx.wait_timeout, || {
            last = workloads::check(&k3s)?;
            let stuck: Vec<String> = last
                .iter()
                .filter(|w| !w.ready)
                .map(|w| format!("{} {}/{} ({})", w.kind, w.namespace, w.name, w.reason))
                .collect();
            if stuck.is_empty() {
                Ok(())
            } else {
                Err(format!("not ready: {}", stuck.join("; ")))
            }
        });
        if !ctx.quiet || r.is_err() {
            eprint!("{}", workloads::table(&last));
        }
        r?;
    } else {
        let ctr = ctx.host.path(&ctx.host.bin("ctr"));
        let sock = ctx.host.path(&ctx.host.containerd_socket());
        health::wait_for("containerd", ctx.wait_timeout, || {
            health::containerd_ok(&ctr, &sock)
        })?;
    }
    Ok(())
}
