//! Health probes: does what the install started answer — the registry's `/v2/`,
//! containerd's socket, the k3s node, the bundle's workloads, a joined node's master
//! registry — so "installed" means "working", not "started". The engine's `Wait` steps
//! call [`probe`] until it passes or the wait times out.

use crate::engine::HealthCheck;
use crate::host::Host;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// One probe of `check`: `Ok(report)` when healthy, `Err(why not)` otherwise.
pub fn probe(host: &Host, check: &HealthCheck) -> Result<String, String> {
    let crashing = |service: &str| -> Option<String> {
        let st = crate::service::SuperviseStatus::load(&host.path(&host.pid_file(service)))?;
        st.recently_failed(30).then(|| {
            format!(
                "{service} keeps exiting ({} restarts, last {})",
                st.restarts, st.last_exit
            )
        })
    };
    match check {
        HealthCheck::Registry { addr, service } => registry_ok(addr)
            .map(|_| String::new())
            .map_err(|e| crashing(service).map(|c| format!("{c}; {e}")).unwrap_or(e)),
        HealthCheck::Containerd {
            ctr,
            socket,
            service,
        } => containerd_ok(&host.path(ctr), &host.path(socket))
            .map(|_| String::new())
            .map_err(|e| crashing(service).map(|c| format!("{c}; {e}")).unwrap_or(e)),
        HealthCheck::K3sNode { k3s, .. } => k3s_node_ready(&host.path(k3s)).map(|_| String::new()),
        HealthCheck::Workloads { k3s } => {
            let carried = super::workloads::Carried::of_bundle(&host.path(&host.staged_bundle()));
            let ws = super::workloads::check(&host.path(k3s), &carried)?;
            let table = super::workloads::table(&ws);
            let stuck: Vec<String> = ws
                .iter()
                .filter(|w| !w.ready)
                .map(|w| format!("{} {}/{} ({})", w.kind, w.namespace, w.name, w.reason))
                .collect();
            if stuck.is_empty() {
                Ok(table)
            } else {
                Err(format!("not ready: {}\n{table}", stuck.join("; ")))
            }
        }
        HealthCheck::Running { service } => crate::service::running_pid(host, service)
            .map(|_| String::new())
            .ok_or_else(|| format!("{service} is not running")),
        HealthCheck::MasterRegistry { url } => master_registry_ok(host, url),
    }
}

/// A joined node's registry is the master's, over TLS with the pinned CA.
pub fn master_registry_ok(host: &Host, url: &str) -> Result<String, String> {
    let ca =
        std::fs::read(host.path(&host.pki("ca.pem"))).map_err(|e| format!("pinned CA: {e}"))?;
    let cfg = crate::join::tls::pinned_client(&ca)?;
    match crate::join::client::get(cfg, url.trim_start_matches("https://"), "/v2/", None) {
        Ok(r) if r.status == 200 => Ok(String::new()),
        Ok(r) => Err(format!("{url}/v2/ answered {}", r.status)),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// `GET <path>` over plain HTTP; returns the status code.
pub fn http_status(addr: &str, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf)?;
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status line"))
}

pub fn registry_ok(addr: &str) -> Result<(), String> {
    match http_status(addr, "/v2/") {
        Ok(200) => Ok(()),
        Ok(c) => Err(format!("GET /v2/ answered {c}")),
        Err(e) => Err(e.to_string()),
    }
}

pub fn containerd_ok(ctr: &Path, socket: &Path) -> Result<(), String> {
    let out = std::process::Command::new(ctr)
        .arg("--address")
        .arg(socket)
        .arg("version")
        .output()
        .map_err(|e| format!("{}: {e}", ctr.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The k3s node reports Ready (through k3s's embedded kubectl).
pub fn k3s_node_ready(k3s: &Path) -> Result<(), String> {
    let out = std::process::Command::new(k3s)
        .args(["kubectl", "get", "nodes", "--no-headers"])
        .output()
        .map_err(|e| format!("{}: {e}", k3s.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.success()
        && text
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("Ready"))
    {
        Ok(())
    } else {
        Err(format!(
            "node not Ready yet: {}{}",
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
