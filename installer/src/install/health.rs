//! Health: bounded waits until what the install started answers — the registry's `/v2/`
//! and containerd's socket — so "installed" means "working", not "started".

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

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

/// Waits until `probe` succeeds or `timeout` passes; returns the last error on timeout.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "{what} not healthy after {}s: {e}",
                    timeout.as_secs()
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
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
