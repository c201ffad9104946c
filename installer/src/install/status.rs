//! `status`: what is installed and whether it works, from the journal plus live probes.

use crate::host::Host;
use crate::install::journal::Journal;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    pub running: bool,
    pub pid: Option<i32>,
}

#[derive(Debug, Serialize)]
pub struct RegistryStatus {
    pub url: String,
    pub healthy: bool,
}

#[derive(Debug, Serialize)]
pub struct ContainerdStatus {
    /// Socket path.
    pub address: String,
    pub hosts_dir: String,
    pub running: bool,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub installed: bool,
    pub bundle: String,
    pub role: String,
    pub node_ip: String,
    pub phases: Vec<crate::install::journal::PhaseRecord>,
    pub registry: RegistryStatus,
    pub containerd: ContainerdStatus,
    pub services: Vec<ServiceStatus>,
    pub join_command: String,
    /// Admin kubeconfig on k3s servers (when it exists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
}

pub fn status(host: &Host) -> anyhow::Result<Status> {
    let j = Journal::load(&host.path(&host.journal()))?;
    let installed = j.is_some();
    let j = j.unwrap_or_default();
    let addr = format!("127.0.0.1:{}", j.registry_port);
    let services: Vec<ServiceStatus> = j
        .services
        .iter()
        .map(|n| {
            let pid = crate::service::running_pid(host, n);
            ServiceStatus {
                name: n.clone(),
                running: pid.is_some(),
                pid,
            }
        })
        .collect();
    let running = |n: &str| services.iter().any(|s| s.name == n && s.running);
    Ok(Status {
        installed,
        bundle: j.bundle_name.clone(),
        role: j.role.clone(),
        node_ip: j.node_ip.clone(),
        phases: j.phases.clone(),
        registry: if j.role == "join" {
            RegistryStatus {
                url: j.registry_url.clone(),
                healthy: master_registry_ok(host, &j.registry_url),
            }
        } else {
            RegistryStatus {
                url: format!("http://{addr}"),
                healthy: j.registry_port != 0 && crate::install::health::registry_ok(&addr).is_ok(),
            }
        },
        containerd: ContainerdStatus {
            address: host.path(&host.containerd_socket()).display().to_string(),
            hosts_dir: host.path(&host.hosts_dir()).display().to_string(),
            running: running("containerd"),
        },
        join_command: j.join_command.clone(),
        kubeconfig: Some(host.path(crate::install::KUBECONFIG))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string()),
        services,
    })
}

pub fn text(s: &Status) -> String {
    if !s.installed {
        return "not installed\n".into();
    }
    let mut out = format!(
        "bundle:     {}\nrole:       {}\nnode ip:    {}\n",
        s.bundle, s.role, s.node_ip
    );
    out.push_str(&format!(
        "registry:   {} ({})\n",
        s.registry.url,
        if s.registry.healthy {
            "healthy"
        } else {
            "NOT answering"
        }
    ));
    out.push_str(&format!(
        "containerd: {} ({})\n",
        s.containerd.address,
        if s.containerd.running {
            "running"
        } else {
            "not running"
        }
    ));
    out.push_str("phases:\n");
    for p in &s.phases {
        out.push_str(&format!(
            "  {:<12} {}{}\n",
            p.name,
            p.state,
            if p.error.is_empty() {
                String::new()
            } else {
                format!(": {}", p.error)
            }
        ));
    }
    out.push_str("services:\n");
    for sv in &s.services {
        out.push_str(&format!(
            "  {:<12} {}\n",
            sv.name,
            if sv.running {
                format!("running (pid {})", sv.pid.unwrap_or(0))
            } else {
                "stopped".into()
            }
        ));
    }
    if let Some(k) = &s.kubeconfig {
        out.push_str(&format!("kubeconfig: {k}\n"));
    }
    if !s.join_command.is_empty() {
        out.push_str(&format!("join:       {}\n", s.join_command));
    }
    out
}

/// A joined node's registry is the master's, over TLS with the pinned CA.
fn master_registry_ok(host: &Host, url: &str) -> bool {
    let Ok(ca) = std::fs::read(host.path(&host.pki("ca.pem"))) else {
        return false;
    };
    let Ok(cfg) = crate::join::tls::pinned_client(&ca) else {
        return false;
    };
    crate::join::client::get(cfg, url.trim_start_matches("https://"), "/v2/", None)
        .is_ok_and(|r| r.status == 200)
}
