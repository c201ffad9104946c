//! The cluster phase for `CLUSTER k3s` bundles: the k3s binary from the payload, and the
//! files and service the k3s driver (`crate::k3s`) plans — registries.yaml mirroring every
//! upstream host to ferry's registry, config.yaml, the unit or supervised process, and
//! the apps in k3s's auto-deploy directory (charts as HelmChart with `chartContent`).

use super::actions::{Content, FileAction, PhasePlan, ServiceSpec};
use crate::host::Host;
use crate::k3s::{self, App, AppKind, K3sParams, K3sPlan};
use anyhow::{Context, Result};
use ferry_bundle::Bundle;

/// Role of the k3s binary in the payload.
pub const K3S_BIN: &str = k3s::payload::BINARY_ROLE;

/// The bundle's apps as the k3s driver wants them (chart bytes, values, manifests).
pub fn apps(b: &Bundle) -> Result<Vec<App>> {
    use std::io::Read;
    let read = |entry: &str| -> Result<Vec<u8>> {
        let e = b
            .entry(entry)
            .with_context(|| format!("bundle entry {entry} missing"))?;
        let mut v = Vec::new();
        b.open_entry(e).read_to_end(&mut v)?;
        Ok(v)
    };
    let mut out = Vec::new();
    for a in &b.manifest.apps {
        let kind = if a.kind == "chart" {
            let values = match a.values.last() {
                Some(v) => {
                    Some(String::from_utf8(read(v)?).with_context(|| format!("{v} is not UTF-8"))?)
                }
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
                tgz: read(&a.path)?,
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
                .map(|e| read(&e.path))
                .collect::<Result<_>>()?;
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

pub struct ClusterInputs<'a> {
    pub host: &'a Host,
    pub node_ip: &'a str,
    pub token: &'a str,
    pub registry_endpoint: &'a str,
    pub registry_ca_file: Option<&'a str>,
    pub upstream_hosts: Vec<String>,
    pub apps: Vec<App>,
    /// `k3s` payload binary as (entry, compression, size, sha256) content.
    pub k3s_binary: Option<Content>,
    pub systemd: bool,
}

pub enum ClusterRole<'a> {
    FirstServer,
    Agent { master: &'a str },
    JoinServer { master: &'a str },
}

/// Turns a k3s plan into a ferry phase plan (paths stay host paths; `--root` maps them).
pub fn plan(i: &ClusterInputs, role: ClusterRole) -> Result<PhasePlan> {
    let host = i.host;
    let bin_path = host.bin("k3s");
    let mut p = K3sParams::new(i.node_ip, i.token, i.registry_endpoint);
    p.registry_ca_file = i
        .registry_ca_file
        .map(|c| host.path(c).display().to_string());
    p.upstream_hosts = i.upstream_hosts.clone();
    p.apps = i.apps.clone();
    p.k3s_binary = host.path(&bin_path).display().to_string();
    p.systemd = i.systemd;
    let kp: K3sPlan = match role {
        ClusterRole::FirstServer => k3s::server_plan(&p),
        ClusterRole::Agent { master } => k3s::agent_plan(&p, master),
        ClusterRole::JoinServer { master } => k3s::join_server_plan(&p, master),
    }
    .map_err(|e| anyhow::anyhow!("k3s plan: {e}"))?;
    let mut files = Vec::new();
    if let Some(c) = &i.k3s_binary {
        files.push(FileAction {
            path: bin_path,
            mode: 0o755,
            content: c.clone(),
        });
    }
    for f in kp.files {
        let text = String::from_utf8(f.content).context("k3s driver produced non-UTF-8 text")?;
        files.push(FileAction {
            path: f.path,
            mode: f.mode,
            content: Content::text(text),
        });
    }
    let services = match kp.supervised {
        Some(argv) => vec![ServiceSpec {
            name: "k3s".into(),
            argv,
            env: vec![],
        }],
        None => vec![],
    };
    Ok(PhasePlan {
        phase: "cluster".into(),
        files,
        services,
        commands: kp.commands,
    })
}
