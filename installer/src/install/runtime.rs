//! The runtime phase: containerd from the bundle's payload, configured so that every
//! upstream registry host the bundle carries is mirrored by ferry's registry (`pull` +
//! `resolve`), names untouched: containerd sends `?ns=<host>` to the mirror.
//!
//! Used by the first node (mirror: the local registry) and by joined nodes (mirror: the
//! master's TLS registry, trusting the pinned CA): one function, two sources of bytes.

use super::{file, PlanError};
use crate::engine::{Content, EntryRef, Journal, Phase, PhaseName};
use crate::host::{Host, HostPath};
use ferry_bundle::Bundle;
use std::collections::BTreeSet;

/// A containerd the host already runs, for bundles that carry no runtime of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostContainerd {
    pub ctr: HostPath,
    pub socket: HostPath,
    /// Where containerd looks for `hosts.toml` files (`config_path`).
    pub certs_dir: HostPath,
}

/// Looks for a containerd on the host: its `ctr` in the usual places and its socket.
pub fn detect_host_containerd(host: &Host) -> Option<HostContainerd> {
    let ctr = [
        "/usr/bin/ctr",
        "/usr/local/bin/ctr",
        "/usr/sbin/ctr",
        "/bin/ctr",
    ]
    .iter()
    .map(|p| HostPath::new(*p).expect("fixed path"))
    .find(|p| host.path(p).exists())?;
    let socket = HostPath::new("/run/containerd/containerd.sock").expect("fixed path");
    host.path(&socket).exists().then(|| HostContainerd {
        ctr,
        socket,
        certs_dir: HostPath::new("/etc/containerd/certs.d").expect("fixed path"),
    })
}

/// The runtime phase of a bundle without a runtime: mirrors for the host's own
/// containerd, nothing else. Its configuration is not touched: containerd 2 reads
/// `/etc/containerd/certs.d` by default; containerd 1.x needs `config_path` set there
/// (the plan says so).
pub fn host_phase(
    host: &Host,
    journal: &Journal,
    c: &HostContainerd,
    upstream: &[String],
    mirror_url: &str,
) -> Phase {
    let mut p = Phase::new(PhaseName::Runtime);
    p.steps = mirror_files(host, journal, &c.certs_dir, upstream, mirror_url, None);
    p
}

/// One `hosts.toml` per upstream host in `dir`, each mirrored by `mirror_url`.
fn mirror_files(
    host: &Host,
    journal: &Journal,
    dir: &HostPath,
    upstream: &[String],
    mirror_url: &str,
    ca: Option<&str>,
) -> Vec<crate::engine::Step> {
    upstream
        .iter()
        .filter_map(|h| {
            let path = dir.join(&format!("{h}/hosts.toml")).ok()?;
            Some(file(
                host,
                journal,
                path,
                0o644,
                Content::text(hosts_toml(h, mirror_url, ca)),
            ))
        })
        .collect()
}

/// Every registry host the bundle's images name (docker.io, quay.io, …), sorted.
pub fn upstream_hosts(bundle: &Bundle) -> BTreeSet<String> {
    bundle.manifest.upstream_hosts()
}

/// A TOML basic string: quoted, with `"`, `\` and control characters escaped, so no value
/// can end the string and inject configuration.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `hosts.toml` for one upstream host (containerd's registry host configuration).
pub fn hosts_toml(upstream: &str, mirror_url: &str, ca_file: Option<&str>) -> String {
    let server = ferry_bundle::reference::upstream_server(upstream);
    let mut s = format!(
        "# Written by ferry: {upstream} images are served by the bundle's registry under their\n\
         # original names (containerd adds ?ns={upstream}). The upstream is never contacted\n\
         # for pulls that the mirror can answer.\nserver = {}\n\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
        toml_string(&server),
        toml_string(mirror_url),
    );
    if let Some(ca) = ca_file {
        s.push_str(&format!("  ca = {}\n", toml_string(ca)));
    }
    s
}

pub fn containerd_config(host: &Host) -> String {
    let p = |x: &HostPath| toml_string(&host.path(x).display().to_string());
    format!(
        "# Written by ferry. containerd for the bundle's workloads; registry mirrors in config_path.\n\
         version = 2\nroot = {root}\nstate = {state}\n\n[grpc]\n  address = {sock}\n\n\
         [plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = {hosts}\n\n\
         [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = {cni}\n  conf_dir = {cniconf}\n",
        root = p(&host.containerd_root()),
        state = p(&host.containerd_state()),
        sock = p(&host.containerd_socket()),
        hosts = p(&host.hosts_dir()),
        cni = p(&host.cni_dir()),
        cniconf = p(&host.cni_conf_dir()),
    )
}

/// The containerd payload's files of a bundle: (role, entry).
pub fn payload_files(b: &Bundle) -> Result<Vec<(String, EntryRef)>, PlanError> {
    let mut out = Vec::new();
    if let Some(p) = b.manifest.payload(ferry_bundle::roles::PAYLOAD_CONTAINERD) {
        for (role, entry) in &p.files {
            out.push((
                role.clone(),
                super::entry_ref(b, entry, &format!("payload containerd {role}"))?,
            ));
        }
    }
    Ok(out)
}

/// Where a runtime payload role is installed, if it is.
pub fn role_path(host: &Host, role: &str) -> Option<HostPath> {
    let (dir, name) = match ferry_bundle::roles::split(role) {
        Some((ferry_bundle::roles::BIN, n)) => (host.bin_dir(), n),
        Some((ferry_bundle::roles::CNI, n)) => (host.cni_dir(), n),
        _ => return None,
    };
    dir.join(name).ok()
}

/// Files and the containerd service for the runtime phase. `mirror_url` is the local
/// registry (`http://127.0.0.1:<port>`) on the first node, the master's over TLS on others
/// (then `ca_file` is the pinned CA, as a host path). `supervisor` is the program that
/// supervises services on this node.
#[allow(clippy::too_many_arguments)]
pub fn phase(
    host: &Host,
    journal: &Journal,
    systemd: bool,
    supervisor: &str,
    payload: Vec<(String, EntryRef)>,
    upstream: &[String],
    mirror_url: &str,
    ca_file: Option<&HostPath>,
) -> Phase {
    let mut p = Phase::new(PhaseName::Runtime);
    for (role, e) in payload {
        if let Some(path) = role_path(host, &role) {
            p.steps
                .push(file(host, journal, path, 0o755, Content::Entry(e)));
        }
    }
    p.steps.push(file(
        host,
        journal,
        host.containerd_config(),
        0o644,
        Content::text(containerd_config(host)),
    ));
    let ca = ca_file.map(|c| host.path(c).display().to_string());
    p.steps.extend(mirror_files(
        host,
        journal,
        &host.hosts_dir(),
        upstream,
        mirror_url,
        ca.as_deref(),
    ));
    let bin = host.path(&host.bin_dir()).display().to_string();
    p.steps.extend(crate::service::steps(
        host,
        journal,
        systemd,
        supervisor,
        "containerd",
        vec![
            host.path(&host.bin("containerd")).display().to_string(),
            "--config".into(),
            host.path(&host.containerd_config()).display().to_string(),
        ],
        vec![(
            "PATH".into(),
            format!("{bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        )],
    ));
    p.seal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_toml_points_at_the_mirror_with_pull_and_resolve() {
        let t = hosts_toml("quay.io", "http://127.0.0.1:5050", None);
        assert!(t.contains("server = \"https://quay.io\""));
        assert!(t.contains("[host.\"http://127.0.0.1:5050\"]"));
        assert!(t.contains("capabilities = [\"pull\", \"resolve\"]"));
        let d = hosts_toml(
            "docker.io",
            "https://10.0.0.1:5443",
            Some("/etc/ferry/ca.pem"),
        );
        assert!(d.contains("registry-1.docker.io") && d.contains("ca = \"/etc/ferry/ca.pem\""));
    }

    #[test]
    fn toml_strings_cannot_be_escaped_from() {
        assert_eq!(toml_string("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        let t = hosts_toml("x.io", "http://h\"]\n[evil]", Some("/c\"a"));
        let v: toml_check::Doc = toml_check::parse(&t);
        assert_eq!(v.tables, ["host.\"http://h\\\"]\\n[evil]\""]);
    }

    /// Just enough TOML reading to see which tables a text declares.
    mod toml_check {
        pub struct Doc {
            pub tables: Vec<String>,
        }
        pub fn parse(t: &str) -> Doc {
            Doc {
                tables: t
                    .lines()
                    .filter(|l| l.starts_with('['))
                    .map(|l| l.trim_start_matches('[').trim_end_matches(']').to_string())
                    .collect(),
            }
        }
    }
}
