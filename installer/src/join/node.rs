//! `join <master> --token <t>`: make this host a node of the master's cluster.
//!
//! Order matters for "wrong token, wrong CA or unreachable master change nothing": the
//! master is contacted and proven (CA hash = token, secret accepted, join info fetched)
//! before preflight, and preflight before the first byte is written. Then the join is a
//! [`Plan`] run by the same engine as an install: the only difference is where entry
//! bytes come from — the master, over the pinned channel ([`MasterSource`]), each
//! checked against the sha256 the master's bundle.json records. The node's containerd
//! (or k3s agent) pulls through the master's TLS registry, trusting only the pinned CA.

use super::protocol::{JoinInfo, CACERTS, ENTRY_PREFIX, JOIN};
use super::{client, pki, tls, token::Token};
use crate::engine::source::VerifyingReader;
use crate::engine::{
    Content, EntryRef, EntrySource, HealthCheck, Journal, Phase, PhaseName, Plan, PlanKind, Secret,
    SecretSource, SourceError, Step,
};
use crate::host::Host;
use crate::install::{cluster, file, runtime, PlanError};
use std::io::Read;
use std::sync::Arc;
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
    #[error("the master at {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    #[error("the master at {addr} presented a certificate that the CA pinned by the token did not sign ({err}): another server answered in its place (a man in the middle, or the master was reinstalled: then use its new token); nothing was changed")]
    CaChanged { addr: String, err: String },
}

/// How to join.
#[derive(Debug, Clone)]
pub struct JoinSettings {
    /// The master's join address, `ip:port`.
    pub master: String,
    pub token: Token,
    /// Join as another k3s server (HA control plane) instead of an agent.
    pub control_plane: bool,
    pub node_ip: std::net::IpAddr,
    pub wait_timeout: Duration,
    pub systemd: bool,
}

/// What a proven master told us.
pub struct Master {
    pub ca: Vec<u8>,
    pub info: JoinInfo,
    pub tls: Arc<rustls::ClientConfig>,
}

/// Proves the master and returns its CA and join info. Writes nothing.
pub fn contact(master: &str, token: &Token) -> Result<Master, JoinError> {
    let unreachable = |e: std::io::Error| JoinError::Unreachable {
        addr: master.into(),
        err: e.to_string(),
    };
    let r = client::get(tls::unverified_client(), master, CACERTS, None).map_err(unreachable)?;
    if r.status != 200 {
        return Err(JoinError::Unreachable {
            addr: master.into(),
            err: format!("GET {CACERTS} answered {}", r.status),
        });
    }
    let ca = r.bytes(1 << 20).map_err(unreachable)?;
    let found = pki::ca_hash(&ca);
    if found != token.ca_hash {
        return Err(JoinError::CaMismatch {
            addr: master.into(),
            expected: token.ca_hash.clone(),
            found,
        });
    }
    let protocol = |reason: String| JoinError::Protocol {
        addr: master.into(),
        reason,
    };
    let cfg = tls::pinned_client(&ca).map_err(protocol)?;
    let join = format!(
        "{JOIN}?platform={}",
        crate::registry::percent_encode(&super::protocol::own_platform())
    );
    let r = client::get(cfg.clone(), master, &join, Some(&token.secret)).map_err(|e| {
        if client::is_certificate_error(&e) {
            JoinError::CaChanged {
                addr: master.into(),
                err: e.to_string(),
            }
        } else {
            unreachable(e)
        }
    })?;
    if r.status == 401 || r.status == 403 {
        return Err(JoinError::TokenRejected {
            addr: master.into(),
            status: r.status,
        });
    }
    if r.status == 404 {
        // The master says why (e.g. no runtime for this node's platform).
        let body = r.bytes(64 << 10).unwrap_or_default();
        let why = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(protocol(why));
    }
    if r.status != 200 {
        return Err(protocol(format!("answered {} to {JOIN}", r.status)));
    }
    let info: JoinInfo = serde_json::from_slice(&r.bytes(16 << 20).map_err(unreachable)?)
        .map_err(|e| protocol(format!("join info: {e}")))?;
    Ok(Master { ca, info, tls: cfg })
}

/// Entries from the master, over the pinned TLS channel, verified as they stream.
pub struct MasterSource {
    pub addr: String,
    pub secret: String,
    pub tls: Arc<rustls::ClientConfig>,
}

impl EntrySource for MasterSource {
    fn open(&self, e: &EntryRef) -> Result<Box<dyn Read + '_>, SourceError> {
        let r = client::get(
            self.tls.clone(),
            &self.addr,
            &format!("{ENTRY_PREFIX}{}", e.entry),
            Some(&self.secret),
        )
        .map_err(|err| {
            SourceError::Other(if client::is_certificate_error(&err) {
                format!(
                    "fetching {}: the master at {} presented a certificate that the pinned CA did not sign ({err}); another server answered in its place, refusing its bytes",
                    e.entry, self.addr
                )
            } else {
                format!("fetching {} from {}: {err}", e.entry, self.addr)
            })
        })?;
        if r.status != 200 {
            return Err(SourceError::Entry {
                entry: e.entry.clone(),
                reason: format!("the master answered {}", r.status),
            });
        }
        Ok(Box::new(VerifyingReader::new(
            r.body,
            e.entry.clone(),
            e.size,
            e.sha256,
        )))
    }
    fn describe(&self) -> String {
        format!("the master {}", self.addr)
    }
}

/// A joined node's secrets: the master's CA (pinned by the token) and the token's
/// secret (k3s's cluster token).
pub struct JoinSecrets {
    pub ca: Vec<u8>,
    pub secret: String,
}

impl SecretSource for JoinSecrets {
    fn secret(&self, s: Secret) -> Result<Vec<u8>, SourceError> {
        match s {
            Secret::CaCert => Ok(self.ca.clone()),
            Secret::ClusterSecret => Ok(self.secret.clone().into_bytes()),
            Secret::JoinToken => Ok(Token {
                ca_hash: pki::ca_hash(&self.ca),
                secret: self.secret.clone(),
            }
            .to_string()
            .into_bytes()),
            other => Err(SourceError::Other(format!(
                "a joined node has no {}",
                other.describe()
            ))),
        }
    }
}

/// What joining writes, runs and waits for on this node, given the master's join info:
/// used by the join itself and by `plan --join` (which takes the join info from the
/// local bundle).
pub fn plan(
    host: &Host,
    journal: &Journal,
    info: &JoinInfo,
    s: &JoinSettings,
) -> Result<Plan, PlanError> {
    let supervisor = host.path(&host.installer_copy()).display().to_string();
    let entry = |role: &str| -> Option<EntryRef> {
        info.files
            .iter()
            .find(|f| f.role == role)
            .map(|f| EntryRef {
                entry: f.entry.clone(),
                size: f.size,
                sha256: f.sha256,
                zstd: f.compression.as_deref() == Some("zstd"),
                // An older master does not say: a zstd file rarely unpacks to more than
                // four times its size here (binaries).
                unpacked: f.unpacked.unwrap_or(f.size.saturating_mul(4)),
            })
    };
    let mut files = Phase::new(PhaseName::Files);
    files.steps.push(file(
        host,
        journal,
        host.pki("ca.pem"),
        0o644,
        Content::Secret {
            secret: Secret::CaCert,
        },
    ));
    files.steps.push(file(
        host,
        journal,
        host.installer_copy(),
        0o755,
        Content::InstallerStub,
    ));
    // The token stays with the node (root only): `upgrade` contacts the master again.
    files.steps.push(crate::install::token_file(host, journal));
    if let Some(site) = &info.site_registry {
        // The site's registry serves this node too: its CA, and its settings for `status`.
        if let Some(ca) = &site.ca_pem {
            files.steps.push(file(
                host,
                journal,
                crate::site::ca_path(),
                0o644,
                Content::text(ca.clone()),
            ));
        }
        files.steps.push(file(
            host,
            journal,
            crate::site::config_path(),
            0o600,
            Content::Private {
                bytes: site.to_json(),
                shown: String::from_utf8_lossy(&site.public().to_json()).into_owned(),
            },
        ));
    }
    let mut health = Phase::new(PhaseName::Health);
    let is_k3s = info
        .cluster
        .as_ref()
        .is_some_and(|c| c.distribution == ferry_bundle::roles::PAYLOAD_K3S);
    let runtime_phase = if is_k3s {
        // k3s on the node: an agent (or, with --control-plane, another server) pointed at
        // the master's API server; its embedded containerd pulls through the master's
        // TLS registry. The k3s token is the join token's secret, which the node has.
        files.steps.push(cluster::secret_file(host, journal));
        let master_host = s
            .master
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&s.master)
            .to_string();
        let k3s_binary = entry(cluster::K3S_BIN)
            .ok_or_else(|| PlanError::K3s("the master's bundle hands out no k3s binary".into()))?;
        let inputs = cluster::ClusterInputs {
            host,
            journal,
            node_ip: &s.node_ip.to_string(),
            registry_endpoint: &info.registry,
            registry_ca_file: Some(host.pki("ca.pem")),
            site: info.site_registry.as_ref(),
            upstream_hosts: info.upstream_hosts.clone(),
            apps: vec![],
            k3s_binary: Some(Content::Entry(k3s_binary)),
            systemd: s.systemd,
            supervisor: &supervisor,
        };
        let role = if s.control_plane {
            cluster::ClusterRole::JoinServer {
                master: &master_host,
            }
        } else {
            cluster::ClusterRole::Agent {
                master: &master_host,
            }
        };
        let phase = cluster::phase(&inputs, role)?;
        let service = phase
            .services()
            .next()
            .map(|s| s.name.clone())
            .unwrap_or_else(|| "k3s-agent".into());
        health
            .steps
            .push(Step::Wait(HealthCheck::Running { service }));
        phase
    } else {
        let payload = info
            .files
            .iter()
            .filter_map(|f| Some((f.role.clone(), entry(&f.role)?)))
            .collect();
        health.steps.push(Step::Wait(HealthCheck::Containerd {
            ctr: host.bin("ctr"),
            socket: host.containerd_socket(),
            service: "containerd".into(),
        }));
        let ca = host.pki("ca.pem");
        let mirror = match &info.site_registry {
            Some(site) => runtime::Mirror::Site(site),
            None => runtime::Mirror::Ferry {
                url: &info.registry,
                ca: Some(&ca),
            },
        };
        runtime::phase(
            host,
            journal,
            s.systemd,
            &supervisor,
            payload,
            &info.upstream_hosts,
            mirror,
        )
    };
    health.steps.push(Step::Wait(HealthCheck::MasterRegistry {
        url: info.registry.clone(),
    }));
    // OS packages first, as on the master: every node needs them (nfs-common for NFS
    // volumes…); the .debs come from the master like the runtime's files.
    let mut phases = Vec::new();
    let mut notes = Vec::new();
    if let Some((p, n)) = crate::install::packages::phase_of(
        host,
        journal,
        info.os.as_ref(),
        &info.packages,
        |rec| {
            entry(&format!("package/{}", rec.name)).ok_or_else(|| PlanError::MissingEntry {
                what: format!("package {} {}", rec.name, rec.version),
                entry: rec.entry.clone(),
            })
        },
    )? {
        phases.push(p);
        notes.extend(n);
    }
    phases.extend([files, runtime_phase, health]);
    Ok(Plan {
        kind: PlanKind::Join,
        bundle: info.bundle_name.clone(),
        bundle_sha256: info.bundle_sha256,
        notes,
        phases,
    })
}

/// `upgrade` on a joined node, after its master was upgraded: the join plan again, with
/// what the master hands out now, in one transaction; on failure the node returns to what
/// it ran before (the journal keeps the join information it last applied).
pub fn upgrade(
    host: &Host,
    jf: &mut crate::engine::JournalFile,
    sys: &dyn crate::engine::System,
    report: &crate::engine::Reporter,
    wait_timeout: Duration,
) -> anyhow::Result<bool> {
    use anyhow::Context;
    let j = &jf.journal;
    let token_text = std::fs::read_to_string(host.path(&host.token_file()))
        .with_context(|| format!("reading the join token {}", host.token_file()))?;
    let token = Token::parse(token_text.trim())?;
    let master = j.registry_url.trim_start_matches("https://").to_string();
    let s = JoinSettings {
        master: master.clone(),
        token,
        control_plane: j.services.contains("k3s"),
        node_ip: j.node_ip.parse().context("the journal's node ip")?,
        wait_timeout,
        systemd: crate::service::use_systemd(host),
    };
    let m = contact(&s.master, &s.token)?;
    if m.info.bundle_sha256.to_string() == j.bundle_sha256 {
        report.say(&format!(
            "this node already runs {} as its master does",
            m.info.bundle_name
        ));
        return Ok(false);
    }
    let old: Option<JoinInfo> = j
        .join_info
        .clone()
        .and_then(|v| serde_json::from_value(v).ok());
    let new_plan = plan(host, &jf.journal, &m.info, &s)?;
    let source = MasterSource {
        addr: master,
        secret: s.token.secret.clone(),
        tls: m.tls.clone(),
    };
    let secrets = JoinSecrets {
        ca: m.ca.clone(),
        secret: s.token.secret.clone(),
    };
    let engine = crate::engine::Engine {
        sys,
        host,
        res: crate::engine::Resources {
            entries: &source,
            secrets: &secrets,
            stage_from: None,
            self_exe: "/proc/self/exe".into(),
        },
        wait_timeout,
        wait_report_every: Duration::from_secs(5),
        report,
    };
    match engine.run_atomic(&new_plan, jf) {
        Ok(()) => {
            jf.journal.bundle_sha256 = m.info.bundle_sha256.to_string();
            jf.journal.bundle_name = m.info.bundle_name.clone();
            jf.journal.join_info = serde_json::to_value(&m.info).ok();
            jf.save()?;
            Ok(true)
        }
        Err(e) => {
            if let Some(old) = old {
                let back = plan(host, &jf.journal, &old, &s)?;
                engine
                    .run(&back, jf)
                    .context("returning to the node's previous version")?;
            }
            Err(anyhow::anyhow!(
                "node upgrade failed: {e}; every file was put back and the node runs its previous version"
            ))
        }
    }
}
