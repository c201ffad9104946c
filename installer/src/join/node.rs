//! `--join <master> --token <t>`: make this host a node of the master's cluster.
//!
//! Order matters for "wrong token, wrong CA or unreachable master change nothing": the
//! master is contacted and proven (CA hash = token, secret accepted, join info fetched)
//! before preflight, and preflight before the first byte is written. What the node lacks
//! (runtime binaries) it fetches over the pinned channel, verifying each against the
//! sha256 the master's bundle.json records. The node's containerd pulls through the
//! master's TLS registry, trusting only the pinned CA.

use super::protocol::{JoinInfo, CACERTS, ENTRY_PREFIX, JOIN};
use super::{client, pki, tls, token::Token};
use crate::host::Host;
use crate::install::actions::Content;
use crate::install::journal::Journal;
use crate::install::transaction::Transaction;
use crate::install::{health, preflight, runtime};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("cannot reach the master at {addr}: {err} (check the address, the network and that the master's install finished)")]
    Unreachable { addr: String, err: String },
    #[error("the master at {addr} presents a CA whose sha256 is {found}, but the token pins {expected}: refusing to trust it (wrong master, or a man in the middle); nothing was changed")]
    CaMismatch {
        addr: String,
        expected: String,
        found: String,
    },
    #[error("the master at {addr} rejected the token (HTTP {status}); use the token printed by its install or `status`; nothing was changed")]
    TokenRejected { addr: String, status: u16 },
}

pub struct JoinOptions {
    pub master: String,
    pub token: Token,
    /// This node's IP as the cluster sees it (k3s `node-ip`).
    pub node_ip: Option<String>,
    /// Join as an additional k3s server (HA control plane) instead of an agent.
    pub control_plane: bool,
    pub wait_timeout: Duration,
    pub skip_preflight: Vec<String>,
    pub quiet: bool,
}

/// Proves the master and returns its CA and join info. Writes nothing.
pub fn contact(
    master: &str,
    token: &Token,
) -> Result<(Vec<u8>, JoinInfo, std::sync::Arc<rustls::ClientConfig>)> {
    let unreachable = |e: std::io::Error| JoinError::Unreachable {
        addr: master.into(),
        err: e.to_string(),
    };
    let r = client::get(tls::unverified_client(), master, CACERTS, None).map_err(unreachable)?;
    if r.status != 200 {
        return Err(JoinError::Unreachable {
            addr: master.into(),
            err: format!("GET {CACERTS} answered {}", r.status),
        }
        .into());
    }
    let ca = r.bytes(1 << 20).map_err(unreachable)?;
    let found = pki::ca_hash(&ca);
    if found != token.ca_hash {
        return Err(JoinError::CaMismatch {
            addr: master.into(),
            expected: token.ca_hash.clone(),
            found,
        }
        .into());
    }
    let cfg = tls::pinned_client(&ca).map_err(anyhow::Error::msg)?;
    let r = client::get(cfg.clone(), master, JOIN, Some(&token.secret)).map_err(unreachable)?;
    if r.status == 401 || r.status == 403 {
        return Err(JoinError::TokenRejected {
            addr: master.into(),
            status: r.status,
        }
        .into());
    }
    if r.status != 200 {
        bail!("the master at {master} answered {} to {JOIN}", r.status);
    }
    let info: JoinInfo =
        serde_json::from_slice(&r.bytes(16 << 20)?).context("join info from the master")?;
    Ok((ca, info, cfg))
}

pub fn join(host: &Host, o: &JoinOptions) -> Result<Journal> {
    let (ca, info, cfg) = contact(&o.master, &o.token)?;
    let journal_path = host.path(&host.journal());
    let checks = preflight::run(&preflight::Inputs {
        host,
        stage_bytes: info.files.iter().map(|f| f.size * 3).sum(),
        platform: &info.platform,
        ports: vec![],
        cluster: info.cluster.is_some(),
        bundle_sha256: &info.bundle_sha256,
        skip: &o.skip_preflight,
    });
    if !o.quiet {
        eprint!("{}", preflight::table(&checks));
    }
    let failed = preflight::failed(&checks);
    if !failed.is_empty() {
        let names: Vec<_> = failed.iter().map(|c| c.name).collect();
        bail!(
            "preflight failed: {}; nothing was changed",
            names.join(", ")
        );
    }
    let mut j = Journal::load(&journal_path)?.unwrap_or_else(|| Journal {
        bundle_sha256: info.bundle_sha256.clone(),
        bundle_name: info.bundle_name.clone(),
        role: "join".into(),
        ..Default::default()
    });
    let mut tx = Transaction::new();
    for t in host.owned_trees() {
        tx.create_dir_all(&host.path(&t))?;
    }
    tx.write(&host.path(&host.pki("ca.pem")), 0o644, &mut &ca[..])?;
    let me = std::fs::File::open("/proc/self/exe")?;
    let stub_len = ferry_bundle::Bundle::open(std::path::Path::new("/proc/self/exe"))
        .map(|b| b.footer.payload_offset)
        .unwrap_or(u64::MAX);
    tx.write(
        &host.path(&host.installer_copy()),
        0o755,
        &mut me.take(stub_len),
    )?;

    // Runtime binaries: fetched over the pinned channel, each verified before use.
    let mut payload = Vec::new();
    let fetch_dir = host.path(&format!("{}/fetch", host.data_dir));
    std::fs::create_dir_all(&fetch_dir)?;
    for f in &info.files {
        let r = client::get(
            cfg.clone(),
            &o.master,
            &format!("{ENTRY_PREFIX}{}", f.entry),
            Some(&o.token.secret),
        )
        .with_context(|| format!("fetching {} from the master", f.entry))?;
        if r.status != 200 {
            bail!("the master answered {} for {}", r.status, f.entry);
        }
        let tmp = fetch_dir.join(&f.sha256);
        let mut out = std::fs::File::create(&tmp)?;
        let mut h = HashingCopy(Sha256::new());
        h.copy(r.body, &mut out)?;
        let got = hex::encode(h.0.finalize());
        if got != f.sha256 {
            bail!(
                "{} from the master has sha256 {got}, its bundle says {}: refusing it",
                f.entry,
                f.sha256
            );
        }
        payload.push((f.role.clone(), tmp, f.compression.clone()));
    }
    let plan = node_plan(
        host,
        &info,
        o,
        payload.iter().map(|(r, _, _)| r.clone()).collect(),
    )?;
    for fa in &plan.files {
        let dest = host.path(&fa.path);
        match &fa.content {
            Content::Text { text } => tx.write(&dest, fa.mode, &mut text.as_bytes())?,
            _ => {
                let role = payload.iter().find(|(r, _, _)| {
                    fa.path
                        .ends_with(&format!("/{}", r.split_once('/').map(|x| x.1).unwrap_or(r)))
                });
                let Some((_, tmp, comp)) = role else { continue };
                let raw = std::fs::File::open(tmp)?;
                let mut rd: Box<dyn Read> = if comp.as_deref() == Some("zstd") {
                    Box::new(zstd::stream::read::Decoder::new(raw)?)
                } else {
                    Box::new(raw)
                };
                tx.write(&dest, fa.mode, &mut rd)?;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&fetch_dir);
    let strip = |p: &std::path::Path| {
        format!("/{}", p.strip_prefix(&host.root).unwrap_or(p).display()).replace("//", "/")
    };
    let (files, dirs) = tx.touched();
    j.files.extend(files.iter().map(|p| strip(p)));
    j.dirs.extend(dirs.iter().map(|p| strip(p)));
    tx.commit();
    j.record("join", Ok(()));
    j.registry_url = info.registry.clone();
    j.save(&journal_path)?;

    let exe = host.path(&host.installer_copy());
    for s in &plan.services {
        crate::service::ensure_running(host, &exe, s)?;
        j.services.insert(s.name.clone());
    }
    j.record("runtime", Ok(()));
    j.save(&journal_path)?;

    let ctr = host.path(&host.bin("ctr"));
    let sock = host.path(&host.containerd_socket());
    let is_k3s = info.cluster.is_some();
    let r = health::wait_for("runtime", o.wait_timeout, || {
        if is_k3s {
            crate::service::running_pid(host, "k3s")
                .map(|_| ())
                .ok_or_else(|| "k3s is not running".to_string())
        } else {
            health::containerd_ok(&ctr, &sock)
        }
    })
    .and_then(|_| {
        let addr = info.registry.trim_start_matches("https://").to_string();
        match client::get(cfg.clone(), &addr, "/v2/", None) {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(format!("master registry answered {}", r.status)),
            Err(e) => Err(format!("master registry: {e}")),
        }
    });
    j.record("health", r.clone());
    j.save(&journal_path)?;
    r.map_err(anyhow::Error::msg)?;
    Ok(j)
}

struct HashingCopy(Sha256);
impl HashingCopy {
    fn copy(&mut self, mut r: impl Read, w: &mut impl std::io::Write) -> std::io::Result<u64> {
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = r.read(&mut buf)?;
            if k == 0 {
                return Ok(n);
            }
            self.0.update(&buf[..k]);
            w.write_all(&buf[..k])?;
            n += k as u64;
        }
    }
}

/// What joining writes and starts on this node, given the master's join info: used by the
/// join itself and by `plan --join` (which takes the join info from the local bundle).
pub fn node_plan(
    host: &Host,
    info: &JoinInfo,
    o: &JoinOptions,
    roles: Vec<String>,
) -> Result<crate::install::actions::PhasePlan> {
    let hosts: std::collections::BTreeSet<String> = info.upstream_hosts.iter().cloned().collect();
    let fetched = |role: &str| Content::Generated {
        what: format!("{role}, fetched from the master"),
    };
    let plan = if info
        .cluster
        .as_ref()
        .is_some_and(|c| c.distribution == "k3s")
    {
        // k3s on the node: an agent (or, with --control-plane, another server) pointed at
        // the master's API server; its embedded containerd pulls through the master's
        // TLS registry. The k3s token is the join token's secret, which the node has.
        let master_host = o
            .master
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&o.master)
            .to_string();
        let node_ip = o
            .node_ip
            .clone()
            .unwrap_or_else(crate::install::netinfo::default_node_ip);
        let inputs = crate::install::cluster::ClusterInputs {
            host,
            node_ip: &node_ip,
            token: &o.token.secret,
            registry_endpoint: &info.registry,
            registry_ca_file: Some(&host.pki("ca.pem")),
            upstream_hosts: hosts.iter().cloned().collect(),
            apps: vec![],
            k3s_binary: Some(fetched(crate::install::cluster::K3S_BIN)),
            systemd: crate::service::use_systemd(host),
        };
        let role = if o.control_plane {
            crate::install::cluster::ClusterRole::JoinServer {
                master: &master_host,
            }
        } else {
            crate::install::cluster::ClusterRole::Agent {
                master: &master_host,
            }
        };
        crate::install::cluster::plan(&inputs, role)?
    } else {
        runtime::plan(
            host,
            roles
                .iter()
                .map(|role| (role.clone(), fetched(role)))
                .collect(),
            &hosts,
            &info.registry,
            Some(&host.pki("ca.pem")),
        )
    };
    Ok(plan)
}
