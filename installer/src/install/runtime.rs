//! The runtime phase: containerd from the bundle's payload, configured so that every
//! upstream registry host the bundle carries is mirrored by ferry's registry (`pull` +
//! `resolve`), names untouched: containerd sends `?ns=<host>` to the mirror.
//!
//! Used by the first node (mirror: the local registry) and by joined nodes (mirror: the
//! master's TLS registry, trusting the pinned CA): one function, two sources of bytes.
//! With `--site-registry` the mirror is the site's registry instead ([`Mirror::Site`]):
//! each upstream host's entry points at `<site>/v2/<path>/<host>` with `override_path`
//! (see `crate::site` for why), and a site login reaches containerd's CRI plugin through
//! an imported, root-only auth file rather than the printable config.

use super::{file, PlanError};
use crate::engine::{Content, EntryRef, Journal, Phase, PhaseName};
use crate::host::{Host, HostPath};
use crate::site::SiteConfig;
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
    mirror: Mirror,
) -> Phase {
    let mut p = Phase::new(PhaseName::Runtime);
    p.steps = mirror_files(host, journal, &c.certs_dir, upstream, mirror);
    p
}

/// Where a node's runtime pulls each upstream host's images from.
#[derive(Debug, Clone, Copy)]
pub enum Mirror<'a> {
    /// ferry's registry: `http://127.0.0.1:<port>` on the first node, the master's TLS
    /// registry (trusting the pinned CA, a host path) on joined nodes.
    Ferry {
        url: &'a str,
        ca: Option<&'a HostPath>,
    },
    /// The site's registry, each host under `<path>/<host>`.
    Site(&'a SiteConfig),
}

impl Mirror<'_> {
    /// The `hosts.toml` of `upstream` (host paths mapped under `host`'s root).
    pub fn hosts_toml(&self, host: &Host, upstream: &str) -> String {
        let ca = |p: &HostPath| host.path(p).display().to_string();
        match self {
            Mirror::Ferry { url, ca: c } => hosts_toml(upstream, url, c.map(ca).as_deref(), false),
            Mirror::Site(site) => hosts_toml(
                upstream,
                &site.mirror_url(upstream),
                site.ca_pem
                    .as_ref()
                    .map(|_| ca(&crate::site::ca_path()))
                    .as_deref(),
                true,
            ),
        }
    }
}

/// One `hosts.toml` per upstream host in `dir`, each mirrored by `mirror`.
fn mirror_files(
    host: &Host,
    journal: &Journal,
    dir: &HostPath,
    upstream: &[String],
    mirror: Mirror,
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
                Content::text(mirror.hosts_toml(host, h)),
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

/// `hosts.toml` for one upstream host (containerd's registry host configuration). With
/// `override_path` the mirror URL's path is the registry API root (a site registry's
/// `/v2/<path>/<host>`).
pub fn hosts_toml(
    upstream: &str,
    mirror_url: &str,
    ca_file: Option<&str>,
    override_path: bool,
) -> String {
    let server = ferry_bundle::reference::upstream_server(upstream);
    let by = if override_path {
        "the site's registry under <path>/<host>"
    } else {
        "the bundle's registry"
    };
    let mut s = format!(
        "# Written by ferry: {upstream} images are served by {by}, pulled by their\n\
         # original names (containerd adds ?ns={upstream}). The upstream is never contacted\n\
         # for pulls that the mirror can answer.\nserver = {}\n\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
        toml_string(&server),
        toml_string(mirror_url),
    );
    if override_path {
        s.push_str("  override_path = true\n");
    }
    if let Some(ca) = ca_file {
        s.push_str(&format!("  ca = {}\n", toml_string(ca)));
    }
    s
}

/// containerd's CRI credentials for the site's registry (an `imports` file: the login
/// must not be in the config that `plan` prints).
pub fn site_auth_toml(site: &SiteConfig, login: &crate::site::Login) -> String {
    format!(
        "# Written by ferry: the site registry's login for the CRI plugin (root only).\nversion = 2\n\n\
         [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.{}.auth]\n  username = {}\n  password = {}\n",
        toml_string(&site.registry),
        toml_string(&login.username),
        toml_string(&login.password),
    )
}

/// Where [`site_auth_toml`] goes.
pub fn site_auth_path() -> HostPath {
    HostPath::new("/etc/ferry/containerd/site-registry-auth.toml").expect("fixed path")
}

/// containerd's config; `imports` names the site login's auth file, when there is one.
pub fn containerd_config(host: &Host, imports: Option<&HostPath>) -> String {
    let p = |x: &HostPath| toml_string(&host.path(x).display().to_string());
    let imports = imports
        .map(|i| format!("imports = [{}]\n", p(i)))
        .unwrap_or_default();
    format!(
        "# Written by ferry. containerd for the bundle's workloads; registry mirrors in config_path.\n\
         version = 2\n{imports}root = {root}\nstate = {state}\n\n[grpc]\n  address = {sock}\n\n\
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

/// Files and the containerd service for the runtime phase. `mirror` is the local
/// registry (`http://127.0.0.1:<port>`) on the first node, the master's over TLS on others
/// (with the pinned CA), or the site's registry. `supervisor` is the program that
/// supervises services on this node.
pub fn phase(
    host: &Host,
    journal: &Journal,
    systemd: bool,
    supervisor: &str,
    payload: Vec<(String, EntryRef)>,
    upstream: &[String],
    mirror: Mirror,
) -> Phase {
    let mut p = Phase::new(PhaseName::Runtime);
    for (role, e) in payload {
        if let Some(path) = role_path(host, &role) {
            p.steps
                .push(file(host, journal, path, 0o755, Content::Entry(e)));
        }
    }
    let login = match mirror {
        Mirror::Site(site) => site.login.as_ref().map(|l| (site, l)),
        Mirror::Ferry { .. } => None,
    };
    if let Some((site, l)) = login {
        let text = site_auth_toml(site, l);
        p.steps.push(file(
            host,
            journal,
            site_auth_path(),
            0o600,
            Content::Private {
                shown: text.replace(
                    &toml_string(&l.password),
                    "\"<the site registry password>\"",
                ),
                bytes: text.into_bytes(),
            },
        ));
    }
    let imports = login.map(|_| site_auth_path());
    p.steps.push(file(
        host,
        journal,
        host.containerd_config(),
        0o644,
        Content::text(containerd_config(host, imports.as_ref())),
    ));
    p.steps.extend(mirror_files(
        host,
        journal,
        &host.hosts_dir(),
        upstream,
        mirror,
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
        let t = hosts_toml("quay.io", "http://127.0.0.1:5050", None, false);
        assert!(t.contains("server = \"https://quay.io\""));
        assert!(t.contains("[host.\"http://127.0.0.1:5050\"]"));
        assert!(t.contains("capabilities = [\"pull\", \"resolve\"]"));
        let d = hosts_toml(
            "docker.io",
            "https://10.0.0.1:5443",
            Some("/etc/ferry/ca.pem"),
            false,
        );
        assert!(!d.contains("override_path"));
        assert!(d.contains("registry-1.docker.io") && d.contains("ca = \"/etc/ferry/ca.pem\""));
    }

    #[test]
    fn toml_strings_cannot_be_escaped_from() {
        assert_eq!(toml_string("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        let t = hosts_toml("x.io", "http://h\"]\n[evil]", Some("/c\"a"), false);
        let v: toml_check::Doc = toml_check::parse(&t);
        assert_eq!(v.tables, ["host.\"http://h\\\"]\\n[evil]\""]);
    }

    #[test]
    fn a_site_mirror_is_the_api_root_of_its_host_path() {
        let site = SiteConfig {
            ca_pem: Some("-----BEGIN CERTIFICATE-----".into()),
            login: Some(crate::site::Login {
                username: "robot".into(),
                password: "pa\"ss".into(),
            }),
            ..SiteConfig::parse("harbor.site:8443/proj/ferry").unwrap()
        };
        let host = Host::new(std::path::Path::new("/r"), None).unwrap();
        let t = Mirror::Site(&site).hosts_toml(&host, "quay.io");
        assert!(
            t.contains("[host.\"https://harbor.site:8443/v2/proj/ferry/quay.io\"]"),
            "{t}"
        );
        assert!(t.contains("override_path = true"), "{t}");
        assert!(
            t.contains("ca = \"/r/etc/ferry/site-registry/ca.pem\""),
            "{t}"
        );
        assert!(t.contains("server = \"https://quay.io\""), "{t}");
        let auth = site_auth_toml(&site, site.login.as_ref().unwrap());
        assert!(
            auth.contains("configs.\"harbor.site:8443\".auth]") && auth.contains("\"pa\\\"ss\""),
            "{auth}"
        );
        let cfg = containerd_config(&host, Some(&site_auth_path()));
        assert!(
            cfg.contains("imports = [\"/r/etc/ferry/containerd/site-registry-auth.toml\"]"),
            "{cfg}"
        );
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
