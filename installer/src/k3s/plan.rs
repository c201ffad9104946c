//! A node's k3s plan: every file to write and every command to run, decided up front.
//!
//! [`server_plan`] (the first server, which starts the cluster and deploys the apps),
//! [`join_server_plan`] (another server, for HA) and [`agent_plan`] (a worker) turn
//! [`K3sParams`] into a [`K3sPlan`]. Nothing touches the host here: the installer's
//! cluster phase writes `files` (under `--root`, with the journal making a re-run
//! converge), creates `links`, then either runs `commands` (systemd) or starts
//! `supervised` as a background process with a pid file (no systemd). A test can do the
//! same into a temporary root with a recording stand-in for `k3s`.
//!
//! Paths are absolute paths on the host; the caller prefixes its `--root`. Commands and
//! the supervised argv name host paths as they will be once installed (they run on the
//! real host, where `--root` is `/`).
//!
//! Ordering that matters, and why it is the caller's: the registry (DESIGN §3 phase 4)
//! must be serving before k3s starts, since every image, k3s's own included, is pulled
//! through it; k3s reads `config.yaml` and `registries.yaml` only at start, so a re-run that
//! changes their bytes must restart k3s (`systemctl restart <service>`), while files in the
//! manifests directory are picked up live.

use super::apps;
use super::config::{config_yaml, NodeConfig, Role};
use super::error::K3sError;
use super::registries::{endpoint_authority, registries_yaml, MirrorSpec};
use super::unit::{exec_argv, systemd_unit, K3sCommand};
use super::{AGENT_IMAGES_DIR, CONFIG_PATH, DEFAULT_K3S_BINARY, REGISTRIES_PATH, SERVER_PORT};
use ferry_bundle::reference::normalise_host;
use std::collections::BTreeSet;

/// Registry hosts k3s's own images come from (every image of `k3s-images.txt` is
/// `docker.io/rancher/…`). Always mirrored, whatever the bundle lists, so k3s's system
/// pods (pause, coredns, klipper-helm, …) are pulled from ferry's registry.
pub const K3S_IMAGE_HOSTS: [&str; 1] = ["docker.io"];

/// An application to deploy on the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// A DNS-1123 label of at most 50 characters; names the HelmChart / manifest files.
    pub name: String,
    /// Namespace for a chart's objects (created if missing); `None`: k3s's default,
    /// `default`. Manifests carry their own namespaces.
    pub namespace: Option<String>,
    pub kind: AppKind,
}

/// What an application is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppKind {
    /// A Helm chart archive (`.tgz`) with the Kubefile's `VALUES` text and `SET` pairs.
    Chart {
        tgz: Vec<u8>,
        values: Option<String>,
        set: Vec<(String, String)>,
    },
    /// Kubernetes manifests, one file's bytes per element, applied in this order.
    Manifests { files: Vec<Vec<u8>> },
}

/// Everything a k3s node plan depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K3sParams {
    /// IP address the node advertises (`node-ip`); also the first TLS SAN of a server.
    pub node_ip: String,
    /// `node-name`; needed where hosts share a hostname (network-namespace test hosts).
    pub node_name: Option<String>,
    /// Host path of the file holding the cluster token (k3s `token-file`). ferry writes
    /// the join token's secret there on every node.
    pub token_file: String,
    /// Extra TLS SANs for a server's apiserver certificate (host names, VIPs).
    pub tls_sans: Vec<String>,
    /// Packaged components a server does not deploy (`traefik`, `servicelb`, …). Must be
    /// the same on every server.
    pub disable: Vec<String>,
    /// Mode of the admin kubeconfig a server writes.
    pub kubeconfig_mode: u32,
    /// Ferry's registry as this node reaches it: `http://127.0.0.1:5050` on the master,
    /// `https://<master>:5443` on joined nodes.
    pub registry_endpoint: String,
    /// CA file (host path) the registry's certificate must chain to; `https` only.
    pub registry_ca_file: Option<String>,
    /// The site's registry (`--site-registry`): each host's images live under
    /// `<prefix>/<host>` there (a `rewrite` per mirror); `None` for ferry's registry.
    pub site_prefix: Option<String>,
    /// User and password for the registry endpoint.
    pub registry_auth: Option<(String, String)>,
    /// Registry hosts of the images the bundle carries (`docker.io`, `quay.io`, …);
    /// [`K3S_IMAGE_HOSTS`] are added.
    pub upstream_hosts: Vec<String>,
    /// Applications, deployed by the first server.
    pub apps: Vec<App>,
    /// Host path of the k3s binary the unit / supervised process runs.
    pub k3s_binary: String,
    /// Host path of a k3s airgap image tarball to link into k3s's image directory, so k3s
    /// imports it at start. Normally `None`: ferry's registry serves k3s's images.
    pub airgap_images: Option<String>,
    /// Whether PID 1 is systemd (unit + systemctl) or not (supervised process).
    pub systemd: bool,
}

impl K3sParams {
    /// Parameters with ferry's defaults: kubeconfig mode 0600, binary at
    /// [`DEFAULT_K3S_BINARY`], nothing disabled, no apps, no CA, not systemd.
    pub fn new(node_ip: &str, token_file: &str, registry_endpoint: &str) -> K3sParams {
        K3sParams {
            node_ip: node_ip.to_string(),
            node_name: None,
            token_file: token_file.to_string(),
            tls_sans: Vec::new(),
            disable: Vec::new(),
            kubeconfig_mode: 0o600,
            registry_endpoint: registry_endpoint.to_string(),
            registry_ca_file: None,
            site_prefix: None,
            registry_auth: None,
            upstream_hosts: Vec::new(),
            apps: Vec::new(),
            k3s_binary: DEFAULT_K3S_BINARY.to_string(),
            airgap_images: None,
            systemd: false,
        }
    }
}

/// A file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Absolute path on the host.
    pub path: String,
    pub content: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// A symbolic link to create (replacing what is at `path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLink {
    /// Absolute path of the link on the host.
    pub path: String,
    /// Absolute host path it points to.
    pub target: String,
}

/// What to do on a host to make it a k3s node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K3sPlan {
    /// `k3s` (server) or `k3s-agent`, as k3s's install.sh names the service.
    pub service: String,
    /// Files to write, parents created as needed, in this order.
    pub files: Vec<PlannedFile>,
    /// Links to create after the files.
    pub links: Vec<PlannedLink>,
    /// Commands to run to completion, in order, after files and links (systemd only:
    /// `systemctl daemon-reload`, `systemctl enable --now <service>.service`).
    pub commands: Vec<Vec<String>>,
    /// Without systemd: the argv to keep running as a supervised background process.
    pub supervised: Option<Vec<String>>,
}

/// The first server: starts the cluster (`cluster-init`) and deploys the apps.
pub fn server_plan(p: &K3sParams) -> Result<K3sPlan, K3sError> {
    validate(p)?;
    let mut files = vec![config_file(Role::FirstServer, p), registries_file(p)];
    for app in &p.apps {
        files.extend(apps::deploy_files(app));
    }
    finish(p, K3sCommand::Server, files)
}

/// Another server joining the cluster at `master` (host name or IP). It gets no app
/// manifests (the first server's are cluster objects already) but does get large charts'
/// static files, since the controller may download them from any server.
pub fn join_server_plan(p: &K3sParams, master: &str) -> Result<K3sPlan, K3sError> {
    validate(p)?;
    let url = server_url(master)?;
    let mut files = vec![
        config_file(Role::JoinServer { server: &url }, p),
        registries_file(p),
    ];
    for app in &p.apps {
        files.extend(apps::static_files(app));
    }
    finish(p, K3sCommand::Server, files)
}

/// An agent (worker) joining the cluster at `master`. Apps, TLS SANs and `disable` are
/// server matters and are ignored.
pub fn agent_plan(p: &K3sParams, master: &str) -> Result<K3sPlan, K3sError> {
    validate(p)?;
    let url = server_url(master)?;
    let files = vec![
        config_file(Role::Agent { server: &url }, p),
        registries_file(p),
    ];
    finish(p, K3sCommand::Agent, files)
}

/// `https://<master>:6443`, with brackets around an IPv6 address.
pub fn server_url(master: &str) -> Result<String, K3sError> {
    let bad = || K3sError::BadMaster {
        addr: master.to_string(),
    };
    let bare = match (master.strip_prefix('['), master.ends_with(']')) {
        (Some(inner), true) => &inner[..inner.len() - 1],
        (None, false) => master,
        _ => return Err(bad()),
    };
    if bare.is_empty()
        || bare
            .chars()
            .any(|c| c.is_whitespace() || "/@?#[]".contains(c))
    {
        return Err(bad());
    }
    if bare.contains(':') {
        // Only an IPv6 address may contain ':' here; host:port is not a master address.
        bare.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        Ok(format!("https://[{bare}]:{SERVER_PORT}"))
    } else {
        Ok(format!("https://{bare}:{SERVER_PORT}"))
    }
}

fn config_file(role: Role<'_>, p: &K3sParams) -> PlannedFile {
    let mut sans = vec![p.node_ip.clone()];
    for s in &p.tls_sans {
        if !sans.contains(s) {
            sans.push(s.clone());
        }
    }
    let node = NodeConfig {
        token_file: p.token_file.clone(),
        node_ip: p.node_ip.clone(),
        node_name: p.node_name.clone(),
        tls_sans: sans,
        disable: p.disable.clone(),
        kubeconfig_mode: p.kubeconfig_mode,
    };
    PlannedFile {
        path: CONFIG_PATH.to_string(),
        content: config_yaml(role, &node).into_bytes(),
        // Holds the cluster token.
        mode: 0o600,
    }
}

fn registries_file(p: &K3sParams) -> PlannedFile {
    let hosts: BTreeSet<String> = K3S_IMAGE_HOSTS
        .iter()
        .map(|h| h.to_string())
        // validate() has checked every host.
        .chain(
            p.upstream_hosts
                .iter()
                .filter_map(|h| normalise_host(h).ok()),
        )
        .collect();
    let mirrors: Vec<MirrorSpec> = hosts
        .into_iter()
        .map(|host| MirrorSpec {
            rewrite_prefix: p.site_prefix.as_ref().map(|pre| {
                let h = crate::site::host_component(&host);
                if pre.is_empty() {
                    h
                } else {
                    format!("{pre}/{h}")
                }
            }),
            host,
            endpoint: p.registry_endpoint.trim_end_matches('/').to_string(),
            ca_file: p.registry_ca_file.clone(),
            auth: p.registry_auth.clone(),
        })
        .collect();
    PlannedFile {
        path: REGISTRIES_PATH.to_string(),
        content: registries_yaml(&mirrors).into_bytes(),
        // A site login makes it a secret.
        mode: if p.registry_auth.is_some() {
            0o600
        } else {
            0o644
        },
    }
}

fn finish(
    p: &K3sParams,
    cmd: K3sCommand,
    mut files: Vec<PlannedFile>,
) -> Result<K3sPlan, K3sError> {
    let service = cmd.service_name().to_string();
    let mut commands = Vec::new();
    let mut supervised = None;
    if p.systemd {
        files.push(PlannedFile {
            path: cmd.unit_path(),
            content: systemd_unit(&p.k3s_binary, cmd, CONFIG_PATH).into_bytes(),
            mode: 0o644,
        });
        commands.push(vec!["systemctl".into(), "daemon-reload".into()]);
        commands.push(vec![
            "systemctl".into(),
            "enable".into(),
            "--now".into(),
            format!("{service}.service"),
        ]);
    } else {
        supervised = Some(exec_argv(&p.k3s_binary, cmd, CONFIG_PATH));
    }
    let mut seen = BTreeSet::new();
    for f in &files {
        if !seen.insert(f.path.as_str()) {
            return Err(K3sError::PathClash {
                path: f.path.clone(),
            });
        }
    }
    let links = p
        .airgap_images
        .iter()
        .map(|target| {
            let name = target.rsplit('/').next().unwrap_or(target);
            PlannedLink {
                path: format!("{AGENT_IMAGES_DIR}/{name}"),
                target: target.clone(),
            }
        })
        .collect();
    Ok(K3sPlan {
        service,
        files,
        links,
        commands,
        supervised,
    })
}

fn validate(p: &K3sParams) -> Result<(), K3sError> {
    for (field, value) in [
        ("node ip", p.node_ip.as_str()),
        ("token file", p.token_file.as_str()),
        ("registry endpoint", p.registry_endpoint.as_str()),
        ("k3s binary path", p.k3s_binary.as_str()),
    ] {
        if value.is_empty() {
            return Err(K3sError::Empty { field });
        }
        one_line(field, value)?;
    }
    if p.node_ip.chars().any(char::is_whitespace) {
        return Err(K3sError::BadText {
            field: "node ip",
            value: p.node_ip.clone(),
        });
    }
    let optional = [
        ("node name", p.node_name.as_deref()),
        ("registry CA file", p.registry_ca_file.as_deref()),
        ("airgap images path", p.airgap_images.as_deref()),
    ];
    for (field, value) in optional {
        if let Some(v) = value {
            if v.is_empty() {
                return Err(K3sError::Empty { field });
            }
            one_line(field, v)?;
        }
    }
    for s in p.tls_sans.iter().chain(&p.disable) {
        one_line("tls-san/disable entry", s)?;
    }
    check_endpoint(&p.registry_endpoint)?;
    if p.registry_ca_file.is_some() && !p.registry_endpoint.starts_with("https://") {
        return Err(K3sError::CaWithoutTls {
            url: p.registry_endpoint.clone(),
        });
    }
    // Docker Hub's aliases become `docker.io`, as image references are normalised, so
    // the mirror matches the names containerd is asked for.
    for h in &p.upstream_hosts {
        if normalise_host(h).is_err() {
            return Err(K3sError::BadHost { host: h.clone() });
        }
    }
    let mut names = BTreeSet::new();
    for app in &p.apps {
        apps::validate(app)?;
        if !names.insert(app.name.as_str()) {
            return Err(K3sError::DuplicateApp {
                name: app.name.clone(),
            });
        }
    }
    Ok(())
}

fn one_line(field: &'static str, value: &str) -> Result<(), K3sError> {
    if value.contains(['\n', '\r', '\0']) {
        return Err(K3sError::BadText {
            field,
            value: value.to_string(),
        });
    }
    Ok(())
}

/// `http(s)://host[:port]` with at most a trailing `/`: what containerd takes as a mirror.
fn check_endpoint(url: &str) -> Result<(), K3sError> {
    let bad = || K3sError::BadEndpoint {
        url: url.to_string(),
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(bad)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty()
        || endpoint_authority(url) != rest
        || rest
            .chars()
            .any(|c| c.is_whitespace() || "@/?#".contains(c))
    {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k3s::yaml::tests::parse;
    use crate::k3s::{MANIFESTS_DIR, STATIC_CHARTS_DIR};
    use ::base64::Engine;
    use serde_yaml_ng::Value;

    fn params() -> K3sParams {
        let mut p = K3sParams::new("10.0.0.1", "s3cret", "http://127.0.0.1:5050");
        p.upstream_hosts = vec![
            "quay.io".into(),
            "registry.k8s.io".into(),
            "index.docker.io".into(),
        ];
        p.tls_sans = vec!["k3s.example.com".into(), "10.0.0.1".into()];
        p.disable = vec!["traefik".into()];
        p.apps = vec![
            App {
                name: "web".into(),
                namespace: Some("web".into()),
                kind: AppKind::Chart {
                    tgz: b"\x1f\x8b chart bytes".to_vec(),
                    values: Some("replicaCount: 2\n".into()),
                    set: vec![("image.tag".into(), "1.27".into())],
                },
            },
            App {
                name: "db".into(),
                namespace: None,
                kind: AppKind::Manifests {
                    files: vec![b"kind: Namespace\n".to_vec(), b"kind: Service\n".to_vec()],
                },
            },
        ];
        p
    }

    fn file<'a>(plan: &'a K3sPlan, path: &str) -> &'a PlannedFile {
        plan.files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no {path} in {:?}", paths(plan)))
    }

    fn yaml(plan: &K3sPlan, path: &str) -> Value {
        parse(std::str::from_utf8(&file(plan, path).content).unwrap())
    }

    fn paths(plan: &K3sPlan) -> Vec<&str> {
        plan.files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn first_server_plan_without_systemd() {
        let plan = server_plan(&params()).unwrap();
        assert_eq!(plan.service, "k3s");
        assert_eq!(
            paths(&plan),
            [
                CONFIG_PATH.to_string(),
                REGISTRIES_PATH.to_string(),
                format!("{MANIFESTS_DIR}/web-chart.yaml"),
                format!("{MANIFESTS_DIR}/db-1.yaml"),
                format!("{MANIFESTS_DIR}/db-2.yaml"),
            ]
        );
        assert_eq!(file(&plan, CONFIG_PATH).mode, 0o600);
        let cfg = yaml(&plan, CONFIG_PATH);
        assert_eq!(cfg["cluster-init"].as_bool(), Some(true));
        assert_eq!(cfg["token-file"].as_str(), Some("s3cret"));
        let sans: Vec<&str> = cfg["tls-san"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(sans, ["10.0.0.1", "k3s.example.com"]);
        assert!(plan.commands.is_empty());
        assert_eq!(
            plan.supervised.as_deref().unwrap(),
            ["/usr/local/bin/k3s", "server", "--config", CONFIG_PATH]
        );
        assert!(plan.links.is_empty());
    }

    #[test]
    fn every_bundle_host_and_k3s_own_are_mirrored_to_the_registry() {
        let plan = server_plan(&params()).unwrap();
        let reg = yaml(&plan, REGISTRIES_PATH);
        let hosts: Vec<&str> = reg["mirrors"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        // index.docker.io is docker.io; docker.io is there for k3s's own images anyway.
        assert_eq!(hosts, ["docker.io", "quay.io", "registry.k8s.io"]);
        for h in hosts {
            assert_eq!(
                reg["mirrors"][h]["endpoint"][0].as_str(),
                Some("http://127.0.0.1:5050")
            );
        }
        assert!(reg.get("configs").is_none());
    }

    #[test]
    fn helmchart_carries_the_chart_values_and_set() {
        let plan = server_plan(&params()).unwrap();
        let hc = yaml(&plan, &format!("{MANIFESTS_DIR}/web-chart.yaml"));
        let content = ::base64::engine::general_purpose::STANDARD
            .decode(hc["spec"]["chartContent"].as_str().unwrap())
            .unwrap();
        assert_eq!(content, b"\x1f\x8b chart bytes");
        assert_eq!(hc["spec"]["targetNamespace"].as_str(), Some("web"));
        assert_eq!(
            hc["spec"]["valuesContent"].as_str(),
            Some("replicaCount: 2\n")
        );
        assert_eq!(hc["spec"]["set"]["image.tag"].as_str(), Some("1.27"));
        assert_eq!(
            file(&plan, &format!("{MANIFESTS_DIR}/db-2.yaml")).content,
            b"kind: Service\n"
        );
    }

    #[test]
    fn systemd_hosts_get_the_unit_and_systemctl() {
        let mut p = params();
        p.systemd = true;
        let plan = server_plan(&p).unwrap();
        let unit = file(&plan, "/etc/systemd/system/k3s.service");
        assert!(String::from_utf8_lossy(&unit.content)
            .contains("ExecStart=/usr/local/bin/k3s server --config /etc/rancher/k3s/config.yaml"));
        assert_eq!(
            plan.commands,
            [
                vec!["systemctl", "daemon-reload"],
                vec!["systemctl", "enable", "--now", "k3s.service"]
            ]
        );
        assert!(plan.supervised.is_none());
    }

    #[test]
    fn agent_joins_the_master_on_6443_through_the_pinned_registry() {
        let mut p = params();
        p.node_ip = "10.0.0.7".into();
        p.registry_endpoint = "https://10.0.0.1:5443".into();
        p.registry_ca_file = Some("/var/lib/ferry/registry-ca.pem".into());
        p.node_name = Some("worker-7".into());
        p.systemd = true;
        let plan = agent_plan(&p, "10.0.0.1").unwrap();
        assert_eq!(plan.service, "k3s-agent");
        let cfg = yaml(&plan, CONFIG_PATH);
        assert_eq!(cfg["server"].as_str(), Some("https://10.0.0.1:6443"));
        assert_eq!(cfg["token-file"].as_str(), Some("s3cret"));
        assert_eq!(cfg["node-ip"].as_str(), Some("10.0.0.7"));
        assert_eq!(cfg["node-name"].as_str(), Some("worker-7"));
        assert!(cfg.get("cluster-init").is_none());
        assert!(cfg.get("tls-san").is_none());
        let reg = yaml(&plan, REGISTRIES_PATH);
        assert_eq!(
            reg["mirrors"]["quay.io"]["endpoint"][0].as_str(),
            Some("https://10.0.0.1:5443")
        );
        assert_eq!(
            reg["configs"]["10.0.0.1:5443"]["tls"]["ca_file"].as_str(),
            Some("/var/lib/ferry/registry-ca.pem")
        );
        // Apps are the first server's business.
        assert!(!paths(&plan)
            .iter()
            .any(|p| p.starts_with("/var/lib/rancher")));
        assert!(paths(&plan).contains(&"/etc/systemd/system/k3s-agent.service"));
        assert_eq!(
            plan.commands[1],
            ["systemctl", "enable", "--now", "k3s-agent.service"]
        );
    }

    #[test]
    fn joining_server_repeats_critical_values_and_gets_static_charts_only() {
        let mut p = params();
        p.apps.push(App {
            name: "big".into(),
            namespace: None,
            kind: AppKind::Chart {
                tgz: vec![7; apps::CHART_CONTENT_MAX + 1],
                values: None,
                set: vec![],
            },
        });
        let plan = join_server_plan(&p, "fd00::1").unwrap();
        let cfg = yaml(&plan, CONFIG_PATH);
        assert_eq!(cfg["server"].as_str(), Some("https://[fd00::1]:6443"));
        assert!(cfg.get("cluster-init").is_none());
        assert_eq!(cfg["disable"][0].as_str(), Some("traefik"));
        assert_eq!(
            paths(&plan),
            [
                CONFIG_PATH.to_string(),
                REGISTRIES_PATH.to_string(),
                format!("{STATIC_CHARTS_DIR}/ferry-big.tgz"),
            ]
        );
    }

    #[test]
    fn airgap_tarball_is_linked_into_k3s_image_dir() {
        let mut p = params();
        p.airgap_images = Some("/var/lib/ferry/k3s/k3s-airgap-images-amd64.tar.zst".into());
        let plan = server_plan(&p).unwrap();
        assert_eq!(
            plan.links,
            [PlannedLink {
                path: "/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst".into(),
                target: "/var/lib/ferry/k3s/k3s-airgap-images-amd64.tar.zst".into(),
            }]
        );
    }

    /// A change that makes parameters invalid.
    type Breakage = fn(&mut K3sParams);

    #[test]
    fn bad_parameters_are_named() {
        let cases: Vec<(Breakage, &str)> = vec![
            (|p| p.token_file.clear(), "token file"),
            (|p| p.token_file = "a\nb".into(), "line break"),
            (
                |p| p.registry_endpoint = "127.0.0.1:5050".into(),
                "endpoint",
            ),
            (
                |p| p.registry_endpoint = "http://127.0.0.1:5050/v2".into(),
                "endpoint",
            ),
            (
                |p| p.registry_endpoint = "http://u:p@127.0.0.1:5050".into(),
                "endpoint",
            ),
            (|p| p.registry_ca_file = Some("/ca.pem".into()), "not https"),
            (
                |p| p.upstream_hosts.push("https://quay.io".into()),
                "registry host",
            ),
            (|p| p.upstream_hosts.push(String::new()), "registry host"),
            (|p| p.apps.push(p.apps[1].clone()), "given twice"),
        ];
        for (mutate, want) in cases {
            let mut p = params();
            mutate(&mut p);
            let err = server_plan(&p).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
        let mut trailing = params();
        trailing.registry_endpoint = "http://127.0.0.1:5050/".into();
        let plan = server_plan(&trailing).unwrap();
        let reg = yaml(&plan, REGISTRIES_PATH);
        assert_eq!(
            reg["mirrors"]["docker.io"]["endpoint"][0].as_str(),
            Some("http://127.0.0.1:5050")
        );
        for bad in ["", "10.0.0.1:6443", "https://10.0.0.1", "a b", "[::1"] {
            assert!(agent_plan(&params(), bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn plans_are_deterministic() {
        assert_eq!(
            server_plan(&params()).unwrap(),
            server_plan(&params()).unwrap()
        );
    }
}
