//! The runtime phase: containerd from the bundle's payload, configured so that every
//! upstream registry host the bundle carries is mirrored by ferry's registry (`pull` +
//! `resolve`), names untouched: containerd sends `?ns=<host>` to the mirror.

use super::actions::{Content, FileAction, PhasePlan, ServiceSpec};
use crate::host::Host;
use ferry_bundle::reference::Reference;
use std::collections::BTreeSet;

/// Every registry host the bundle's images name (docker.io, quay.io, …), sorted.
pub fn upstream_hosts(bundle: &ferry_bundle::Bundle) -> BTreeSet<String> {
    bundle
        .manifest
        .images
        .iter()
        .filter_map(|i| Reference::parse(&i.name).ok())
        .map(|r| r.host)
        .collect()
}

/// `hosts.toml` for one upstream host (containerd's registry host configuration).
pub fn hosts_toml(upstream: &str, mirror_url: &str, ca_file: Option<&str>) -> String {
    let server = if upstream == "docker.io" {
        "https://registry-1.docker.io".to_string()
    } else {
        format!("https://{upstream}")
    };
    let mut s = format!(
        "# Written by ferry: {upstream} images are served by the bundle's registry under their\n\
         # original names (containerd adds ?ns={upstream}). The upstream is never contacted\n\
         # for pulls that the mirror can answer.\nserver = \"{server}\"\n\n[host.\"{mirror_url}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    );
    if let Some(ca) = ca_file {
        s.push_str(&format!("  ca = \"{ca}\"\n"));
    }
    s
}

pub fn containerd_config(host: &Host) -> String {
    let p = |x: &str| host.path(x).display().to_string();
    format!(
        "# Written by ferry. containerd for the bundle's workloads; registry mirrors in config_path.\n\
         version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\n[grpc]\n  address = \"{sock}\"\n\n\
         [plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"{hosts}\"\n\n\
         [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"{cni}\"\n  conf_dir = \"{cniconf}\"\n",
        root = p(&host.containerd_root()),
        state = p(&host.containerd_state()),
        sock = p(&host.containerd_socket()),
        hosts = p(&host.hosts_dir()),
        cni = p(&host.cni_dir()),
        cniconf = p("/etc/ferry/cni/net.d"),
    )
}

/// The runtime payload's files of a bundle as (role, content) pairs.
pub fn payload_files(bundle: &ferry_bundle::Bundle) -> Vec<(String, Content)> {
    let m = &bundle.manifest;
    m.payloads
        .iter()
        .filter(|p| p.name == "containerd")
        .flat_map(|p| p.files.iter())
        .filter_map(|(role, entry)| {
            let rec = m.entry(entry)?;
            Some((
                role.clone(),
                Content::Entry {
                    entry: rec.path.clone(),
                    compression: rec.compression.clone(),
                    size: rec.size,
                    sha256: rec.sha256.clone(),
                },
            ))
        })
        .collect()
}

/// Files and the containerd service for the runtime phase. `mirror_url` is the local
/// registry (`http://127.0.0.1:<port>`) on the first node, the master's over TLS on others
/// (then `ca_file` is the pinned CA, as a host path).
pub fn plan(
    host: &Host,
    payload: Vec<(String, Content)>,
    hosts: &BTreeSet<String>,
    mirror_url: &str,
    ca_file: Option<&str>,
) -> PhasePlan {
    let mut files = Vec::new();
    for (role, content) in payload {
        let (dir, name) = match role.split_once('/') {
            Some(("bin", n)) => (format!("{}/bin", crate::host::OPT_DIR), n.to_string()),
            Some(("cni", n)) => (host.cni_dir(), n.to_string()),
            _ => continue,
        };
        files.push(FileAction {
            path: format!("{dir}/{name}"),
            mode: 0o755,
            content,
        });
    }
    files.push(FileAction {
        path: host.containerd_config(),
        mode: 0o644,
        content: Content::text(containerd_config(host)),
    });
    let ca = ca_file.map(|c| host.path(c).display().to_string());
    for h in hosts {
        files.push(FileAction {
            path: format!("{}/{h}/hosts.toml", host.hosts_dir()),
            mode: 0o644,
            content: Content::text(hosts_toml(h, mirror_url, ca.as_deref())),
        });
    }
    let bin = host
        .path(&format!("{}/bin", crate::host::OPT_DIR))
        .display()
        .to_string();
    let services = vec![ServiceSpec {
        name: "containerd".into(),
        argv: vec![
            host.path(&host.bin("containerd")).display().to_string(),
            "--config".into(),
            host.path(&host.containerd_config()).display().to_string(),
        ],
        env: vec![(
            "PATH".into(),
            format!("{bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        )],
    }];
    PhasePlan {
        phase: "runtime".into(),
        files,
        services,
        commands: vec![],
    }
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
}
