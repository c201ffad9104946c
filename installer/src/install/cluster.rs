//! The cluster phase for `CLUSTER k3s` bundles: the k3s driver's plan (`crate::k3s`),
//! carried into the engine's vocabulary unchanged — its files as bytes (a chart archive
//! stays a chart archive), its links as links, its service under the name the driver
//! gives it (`k3s` or `k3s-agent`) — plus the k3s binary from the payload.

use super::{entry_ref, file, PlanError};
use crate::engine::{CommandSpec, Content, EntryRef, Journal, Phase, PhaseName, Step};
use crate::host::{Host, HostPath};
use crate::k3s::{self, App, AppKind, K3sParams, K3sPlan};
use ferry_bundle::Bundle;
use std::io::Read;

/// Role of the k3s binary in the payload.
pub const K3S_BIN: &str = k3s::payload::BINARY_ROLE;

/// An entry's bytes, checked against bundle.json (read before the bundle is staged, so
/// they are verified here rather than trusted).
fn read_verified(b: &Bundle, entry: &str, what: &str) -> Result<Vec<u8>, PlanError> {
    let e = entry_ref(b, entry, what)?;
    let at = b.locate(entry).expect("entry_ref found it");
    let mut v = Vec::with_capacity(e.size as usize);
    crate::engine::source::VerifyingReader::new(at.open(), e.entry.clone(), e.size, e.sha256)
        .read_to_end(&mut v)
        .map_err(|err| PlanError::Other(format!("{what}: {err}")))?;
    Ok(v)
}

/// The bundle's apps as the k3s driver wants them (chart bytes, values, manifests).
pub fn apps(b: &Bundle) -> Result<Vec<App>, PlanError> {
    let mut out = Vec::new();
    for a in &b.manifest.apps {
        let what = format!("APP {}", a.name);
        let kind = if a.kind == "chart" {
            // The builder merges a chart's VALUES files into one (`helm -f a -f b`
            // semantics); older bundles may list several, of which helm would let the
            // last one win for every key it sets.
            let values = match a.values.last() {
                Some(v) => Some(String::from_utf8(read_verified(b, v, &what)?).map_err(|_| {
                    PlanError::Other(format!("{what}: values file {v} is not UTF-8 text"))
                })?),
                None => None,
            };
            let set = a
                .set
                .iter()
                .filter_map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect();
            AppKind::Chart {
                tgz: read_verified(b, &a.path, &what)?,
                values,
                set,
            }
        } else {
            let prefix = format!("{}/", a.path);
            let files = b
                .manifest
                .entries
                .iter()
                .filter(|e| e.path.starts_with(&prefix))
                .map(|e| read_verified(b, &e.path, &what))
                .collect::<Result<_, _>>()?;
            AppKind::Manifests { files }
        };
        out.push(App {
            name: a.name.clone(),
            namespace: None,
            kind,
        });
    }
    Ok(out)
}

/// The file k3s reads its cluster token from (`token-file`): the join token's secret.
pub fn secret_file(host: &Host, journal: &Journal) -> Step {
    file(
        host,
        journal,
        host.cluster_secret_file(),
        0o600,
        Content::Secret {
            secret: crate::engine::Secret::ClusterSecret,
        },
    )
}

/// The k3s binary of the bundle's k3s payload.
pub fn k3s_binary(b: &Bundle) -> Result<EntryRef, PlanError> {
    let entry = b
        .manifest
        .payload(ferry_bundle::roles::PAYLOAD_K3S)
        .and_then(|p| p.file(K3S_BIN))
        .ok_or_else(|| {
            PlanError::K3s(
                "the bundle says CLUSTER k3s but carries no k3s binary (payload k3s, bin/k3s); rebuild it with the k3s payload".into(),
            )
        })?;
    entry_ref(b, entry, "payload k3s bin/k3s")
}

pub struct ClusterInputs<'a> {
    pub host: &'a Host,
    pub journal: &'a Journal,
    pub node_ip: &'a str,
    pub registry_endpoint: &'a str,
    pub registry_ca_file: Option<HostPath>,
    /// The site's registry, when images are pulled from there instead.
    pub site: Option<&'a crate::site::SiteConfig>,
    pub upstream_hosts: Vec<String>,
    pub apps: Vec<App>,
    /// The k3s binary (a bundle entry, fetched from the master on joined nodes).
    pub k3s_binary: Option<Content>,
    pub systemd: bool,
    /// The program that supervises services on this node.
    pub supervisor: &'a str,
}

pub enum ClusterRole<'a> {
    FirstServer,
    Agent { master: &'a str },
    JoinServer { master: &'a str },
}

/// The k3s phase (paths stay host paths; `--root` maps them).
pub fn phase(i: &ClusterInputs, role: ClusterRole) -> Result<Phase, PlanError> {
    let host = i.host;
    let bin_path = host.bin("k3s");
    let mut p = K3sParams::new(
        i.node_ip,
        &host.path(&host.cluster_secret_file()).display().to_string(),
        i.registry_endpoint,
    );
    p.registry_ca_file = i
        .registry_ca_file
        .as_ref()
        .map(|c| host.path(c).display().to_string());
    if let Some(site) = i.site {
        p.registry_endpoint = site.base_url();
        p.registry_ca_file = site
            .ca_pem
            .as_ref()
            .map(|_| host.path(&crate::site::ca_path()).display().to_string());
        p.site_prefix = Some(site.prefix.clone());
        p.registry_auth = site
            .login
            .as_ref()
            .map(|l| (l.username.clone(), l.password.clone()));
    }
    p.upstream_hosts = i.upstream_hosts.clone();
    p.apps = i.apps.clone();
    p.k3s_binary = host.path(&bin_path).display().to_string();
    p.systemd = i.systemd;
    let kp: K3sPlan = match role {
        ClusterRole::FirstServer => k3s::server_plan(&p),
        ClusterRole::Agent { master } => k3s::agent_plan(&p, master),
        ClusterRole::JoinServer { master } => k3s::join_server_plan(&p, master),
    }
    .map_err(|e| PlanError::K3s(e.to_string()))?;
    let mut phase = Phase::new(PhaseName::Cluster);
    if let Some(c) = &i.k3s_binary {
        phase
            .steps
            .push(file(host, i.journal, bin_path, 0o755, c.clone()));
    }
    let password = i.site.and_then(|s| s.login.as_ref()).map(|l| &l.password);
    for f in kp.files {
        let path = HostPath::new(f.path).map_err(|e| PlanError::K3s(e.to_string()))?;
        let content = match password {
            // registries.yaml holds the site login: written as is, never printed.
            Some(pw) if path.as_str() == k3s::REGISTRIES_PATH => Content::Private {
                shown: String::from_utf8_lossy(&f.content).replace(
                    &crate::k3s::yaml::quote(pw),
                    "\"<the site registry password>\"",
                ),
                bytes: f.content,
            },
            _ => Content::bytes(f.content),
        };
        phase
            .steps
            .push(file(host, i.journal, path, f.mode, content));
    }
    for l in kp.links {
        let bad = |e: crate::host::HostPathError| PlanError::K3s(e.to_string());
        phase.steps.push(Step::Link {
            path: HostPath::new(l.path).map_err(bad)?,
            target: HostPath::new(l.target).map_err(bad)?.to_string(),
        });
    }
    let enable = format!("{}.service", kp.service);
    for c in kp.commands {
        // `systemctl enable --now <service>` is the engine's service step (so a resumed
        // install makes sure it runs); the rest (daemon-reload) runs as given.
        if c.iter().any(|a| a == "--now") && c.last() == Some(&enable) {
            continue;
        }
        phase.steps.push(Step::Run(CommandSpec::new(c)));
    }
    match kp.supervised {
        Some(argv) => phase.steps.extend(crate::service::steps(
            host,
            i.journal,
            false,
            i.supervisor,
            &kp.service,
            argv,
            vec![],
        )),
        None => phase.steps.push(Step::Service(crate::engine::ServiceSpec {
            name: kp.service.clone(),
            argv: vec![],
            env: vec![],
            manager: crate::engine::ServiceManager::Systemd { unit: enable },
            revision: Default::default(),
        })),
    }
    Ok(phase.seal())
}
