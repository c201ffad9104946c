//! `status`: what is installed and whether it works, from the journal plus live probes.
//! A service that keeps exiting is "crash-looping", not "running"; anything unhealthy
//! makes `status` exit non-zero, so scripts and monitoring can rely on its exit code.
//! It also lists what the site asked the registry for and the bundle lacks (the record
//! the registry keeps in `<data-dir>/registry-misses.json`, see `registry::misses`): the
//! images to add to the Kubefile. Those do not make `status` unhealthy by themselves (a
//! mistyped `ctr pull` is one too); a pod they keep from starting does, in the health table.

use crate::engine::{Journal, NodeRole};
use crate::host::Host;
use crate::registry::misses::{self, Miss};
use crate::registry::MissReport;
use crate::service::SuperviseStatus;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    /// `running`, `crash-looping` or `stopped`.
    pub state: String,
    pub running: bool,
    pub pid: Option<i32>,
    pub restarts: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_exit: String,
    /// The service's log file.
    pub log: String,
}

#[derive(Debug, Serialize)]
pub struct RegistryStatus {
    pub url: String,
    pub healthy: bool,
}

/// Requests for names, tags and digests the bundle lacks.
#[derive(Debug, Serialize)]
pub struct MissingImages {
    /// Where the registry keeps the record.
    pub file: String,
    /// Most recently asked first.
    pub requests: Vec<Miss>,
    /// Most distinct requests the registry keeps.
    pub capacity: usize,
    /// Requests not recorded because the record was full.
    pub overflowed: u64,
    /// The record could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Which registry this node's runtime pulls the bundle's images from.
#[derive(Debug, Serialize)]
pub struct ImagesFrom {
    /// `site` (`--site-registry`), `ferry` (this node's registry) or `master` (a joined
    /// node pulling from its master's).
    pub kind: String,
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
    /// Every service runs and the registry answers.
    pub healthy: bool,
    /// What is wrong, one line each.
    pub problems: Vec<String>,
    pub bundle: String,
    pub role: String,
    pub node_ip: String,
    pub phases: Vec<crate::engine::journal::PhaseRecord>,
    pub registry: RegistryStatus,
    /// What clients asked the registry for and the bundle does not have.
    pub missing_images: MissingImages,
    /// Where the runtime pulls images from (the site's registry, or ferry's).
    pub images_from: ImagesFrom,
    pub containerd: ContainerdStatus,
    pub services: Vec<ServiceStatus>,
    pub join_command: String,
    /// Admin kubeconfig on k3s servers (when it exists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// The staged bundle, which can run `status` and `reset` later.
    pub staged_bundle: String,
    /// The plain-text log of install runs.
    pub log: String,
}

pub fn status(host: &Host) -> anyhow::Result<Status> {
    let j = Journal::load(&host.path(&host.journal()))?;
    let installed = j.is_some();
    let j = j.unwrap_or_default();
    let services: Vec<ServiceStatus> = j
        .services
        .iter()
        .map(|n| {
            let pid = crate::service::running_pid(host, n);
            let sup = SuperviseStatus::load(&host.path(&host.pid_file(n))).unwrap_or_default();
            let looping = pid.is_some() && sup.recently_failed(60);
            ServiceStatus {
                name: n.clone(),
                state: match (pid, looping) {
                    (None, _) => "stopped",
                    (Some(_), true) => "crash-looping",
                    (Some(_), false) => "running",
                }
                .into(),
                running: pid.is_some() && !looping,
                pid,
                restarts: sup.restarts,
                last_exit: sup.last_exit,
                log: host.path(&host.log_file(n)).display().to_string(),
            }
        })
        .collect();
    let running = |n: &str| services.iter().any(|s| s.name == n && s.running);
    let registry = if j.role == NodeRole::Join {
        RegistryStatus {
            url: j.registry_url.clone(),
            healthy: crate::install::health::master_registry_ok(host, &j.registry_url).is_ok(),
        }
    } else {
        let addr = format!("127.0.0.1:{}", j.registry_port);
        RegistryStatus {
            url: format!("http://{addr}"),
            healthy: j.registry_port != 0 && crate::install::health::registry_ok(&addr).is_ok(),
        }
    };
    let images_from = if j.site_registry.is_empty() {
        ImagesFrom {
            kind: if j.role == NodeRole::Join {
                "master"
            } else {
                "ferry"
            }
            .into(),
            url: registry.url.clone(),
            healthy: registry.healthy,
        }
    } else {
        let site: Option<crate::site::SiteConfig> =
            std::fs::read(host.path(&crate::site::config_path()))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
        let healthy = site
            .as_ref()
            .and_then(|s| crate::site::push::Client::new(s, s.login.as_ref()).ok())
            .is_some_and(|c| c.ping().is_ok());
        ImagesFrom {
            kind: "site".into(),
            url: j.site_registry.clone(),
            healthy,
        }
    };
    let mut problems = Vec::new();
    if installed {
        if images_from.kind == "site" && !images_from.healthy {
            problems.push(format!(
                "the site registry {} does not answer (nodes cannot pull new images)",
                images_from.url
            ));
        }
        for p in j.phases.iter().filter(|p| p.state != "done") {
            problems.push(format!("phase {} {}: {}", p.name, p.state, p.error));
        }
        for s in services.iter().filter(|s| !s.running) {
            problems.push(format!(
                "service {} is {}{} (log: {})",
                s.name,
                s.state,
                if s.last_exit.is_empty() {
                    String::new()
                } else {
                    format!(", last {}", s.last_exit)
                },
                s.log
            ));
        }
        if !registry.healthy {
            problems.push(format!("registry {} does not answer", registry.url));
        }
    }
    let misses_file = host.path(&host.registry_misses());
    let (record, error) = match misses::read(&misses_file) {
        Ok(r) => (r.unwrap_or_default(), None),
        Err(e) => (MissReport::default(), Some(e)),
    };
    let missing_images = MissingImages {
        file: misses_file.display().to_string(),
        requests: record.misses,
        capacity: misses::MAX_ENTRIES,
        overflowed: record.overflowed,
        error,
    };
    let kubeconfig = crate::host::HostPath::new(crate::install::KUBECONFIG)
        .ok()
        .map(|k| host.path(&k))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string());
    Ok(Status {
        installed,
        healthy: installed && problems.is_empty(),
        problems,
        bundle: j.bundle_name.clone(),
        role: j.role.as_str().into(),
        node_ip: j.node_ip.clone(),
        phases: j.phases.clone(),
        registry,
        missing_images,
        images_from,
        containerd: ContainerdStatus {
            address: host.path(&host.containerd_socket()).display().to_string(),
            hosts_dir: host.path(&host.hosts_dir()).display().to_string(),
            running: running("containerd"),
        },
        join_command: j.join_command.clone(),
        kubeconfig,
        staged_bundle: host.path(&host.staged_bundle()).display().to_string(),
        log: host.path(&host.run_log()).display().to_string(),
        services,
    })
}

pub fn text(s: &Status) -> String {
    if !s.installed {
        return "not installed\n".into();
    }
    let mut out = format!(
        "bundle:     {}\nrole:       {}\nnode ip:    {}\nhealth:     {}\n",
        s.bundle,
        s.role,
        s.node_ip,
        if s.healthy { "healthy" } else { "UNHEALTHY" }
    );
    out.push_str(&format!(
        "registry:   {} ({})\n",
        s.registry.url,
        if s.registry.healthy {
            "answering"
        } else {
            "NOT answering"
        }
    ));
    out.push_str(&format!(
        "images:     pulled from {} {} ({})\n",
        match s.images_from.kind.as_str() {
            "site" => "the site registry",
            "master" => "the master's registry",
            _ => "ferry's registry",
        },
        s.images_from.url,
        if s.images_from.healthy {
            "answering"
        } else {
            "NOT answering"
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
            "  {:<12} {}{}\n",
            sv.name,
            match sv.pid {
                Some(pid) => format!("{} (pid {pid})", sv.state),
                None => sv.state.clone(),
            },
            if sv.restarts > 0 {
                format!(", {} restarts, last {}", sv.restarts, sv.last_exit)
            } else {
                String::new()
            }
        ));
    }
    out.push_str(&missing_text(&s.missing_images, &s.role));
    if !s.problems.is_empty() {
        out.push_str("problems:\n");
        for p in &s.problems {
            out.push_str(&format!("  - {p}\n"));
        }
    }
    if let Some(k) = &s.kubeconfig {
        out.push_str(&format!("kubeconfig: {k}\n"));
    }
    if !s.join_command.is_empty() {
        out.push_str(&format!("join:       {}\n", s.join_command));
    }
    out.push_str(&format!(
        "later:      {} status | reset   (the staged bundle)\nlog:        {}\n",
        s.staged_bundle, s.log
    ));
    out
}

/// The "not in the bundle" section: nothing when nothing was missed.
fn missing_text(m: &MissingImages, role: &str) -> String {
    let mut out = String::new();
    if let Some(e) = &m.error {
        out.push_str(&format!(
            "not in bundle: the registry's record is unreadable: {e}\n"
        ));
    }
    if m.requests.is_empty() {
        if role == NodeRole::Join.as_str() {
            out.push_str(
                "not in bundle: this node pulls from the master's registry; run status there\n",
            );
        }
        return out;
    }
    out.push_str(&format!(
        "not in bundle ({} asked for, the registry could not serve them; add them to the Kubefile and rebuild):\n",
        m.requests.len()
    ));
    for r in &m.requests {
        let asked = match r.asked {
            misses::Asked::Manifest => "",
            misses::Asked::Blob => " (blob)",
            misses::Asked::Tags => " (tag list)",
        };
        out.push_str(&format!(
            "  {}{asked}: {} request{}, first {}, last {}, from {}\n",
            r.image,
            r.count,
            if r.count == 1 { "" } else { "s" },
            misses::utc(r.first_seen),
            misses::utc(r.last_seen),
            if r.clients.is_empty() {
                "?".to_string()
            } else {
                r.clients.join(", ")
            }
        ));
    }
    if m.overflowed > 0 {
        out.push_str(&format!(
            "  … and {} more request(s) not recorded: the record is full ({} entries)\n",
            m.overflowed, m.capacity
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::misses::{Asked, Miss};

    fn miss(image: &str, count: u64, clients: &[&str]) -> Miss {
        Miss {
            image: image.into(),
            host: Some("quay.io".into()),
            repository: "x/y".into(),
            reference: Some("1".into()),
            asked: Asked::Manifest,
            error: "NAME_UNKNOWN".into(),
            count,
            first_seen: 1_777_628_478,
            last_seen: 1_777_628_538,
            clients: clients.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn images_the_bundle_lacks_are_listed_under_their_heading() {
        let mut m = MissingImages {
            file: "/var/lib/ferry/registry-misses.json".into(),
            requests: vec![],
            capacity: 512,
            overflowed: 0,
            error: None,
        };
        assert_eq!(missing_text(&m, "server"), "");
        assert!(missing_text(&m, "join").contains("master's registry"));
        m.requests = vec![
            miss("quay.io/x/y:1", 3, &["10.0.0.7", "10.0.0.8"]),
            miss("quay.io/x/z:2", 1, &[]),
        ];
        m.overflowed = 4;
        let t = missing_text(&m, "server");
        assert!(t.starts_with("not in bundle (2 asked for"), "{t}");
        assert!(
            t.contains("  quay.io/x/y:1: 3 requests, first 2026-05-01 09:41:18Z, last 2026-05-01 09:42:18Z, from 10.0.0.7, 10.0.0.8\n"),
            "{t}"
        );
        assert!(t.contains("  quay.io/x/z:2: 1 request, "), "{t}");
        assert!(
            t.contains("4 more request(s) not recorded: the record is full (512 entries)"),
            "{t}"
        );
        m.error = Some("x.json: expected value".into());
        assert!(missing_text(&m, "server")
            .starts_with("not in bundle: the registry's record is unreadable: x.json"));
    }
}
