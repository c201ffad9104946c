//! `/etc/rancher/k3s/config.yaml` for the three kinds of node ferry makes.
//!
//! Format: docs.k3s.io/installation/configuration ("Configuration File"): each key is the
//! CLI flag without its leading `--`, repeatable flags are YAML lists, boolean flags are
//! `true`/`false`. Flag names are the ones of docs.k3s.io/cli/server and
//! docs.k3s.io/cli/agent; they are constants below so a typo is a compile error, not a
//! flag k3s silently ignores.
//!
//! Choices, and why:
//! - Settings go in the config file rather than on the command line, so the unit and the
//!   supervised argv are the same for every node (`k3s server --config <path>`), and the
//!   token is in a root-only file (`token-file`) instead of in `ps` output and the unit.
//! - First server: `cluster-init: true` (embedded etcd), so more servers can join later
//!   (HA) without a datastore migration.
//! - Joining servers repeat `disable`: the docs list `--disable=servicelb` among the
//!   "critical configuration values" that must match on every server or the join fails.
//! - Every node gets `disable-default-registry-endpoint: true` (k3s ≥ 1.26.13/1.27.10/
//!   1.28.6/1.29.1): on an air-gapped host the default endpoint can only time out, and
//!   without it a missing image is reported as a network error from the upstream host
//!   instead of ferry's registry's "not in this bundle" answer.
//! - Agents get no server-only keys (`tls-san`, `disable`, `write-kubeconfig-mode`).

use super::yaml::{quote, string_list};

/// `--token-file`: file holding the shared secret used to join a server or agent to a
/// cluster. A file rather than `--token`, so the secret is in neither `ps` output, the
/// unit, nor the plan ferry prints.
pub const TOKEN_FILE: &str = "token-file";
/// `--server`: server to connect to (`https://<master>:6443`).
pub const SERVER: &str = "server";
/// `--node-ip`: IP address to advertise for the node.
pub const NODE_IP: &str = "node-ip";
/// `--node-name`: node name (defaults to the hostname; hosts that share one need it).
pub const NODE_NAME: &str = "node-name";
/// `--tls-san`: extra Subject Alternative Names on the server certificate.
pub const TLS_SAN: &str = "tls-san";
/// `--cluster-init`: initialize a new cluster using embedded etcd.
pub const CLUSTER_INIT: &str = "cluster-init";
/// `--disable`: packaged components not to deploy (`traefik`, `servicelb`, …).
pub const DISABLE: &str = "disable";
/// `--write-kubeconfig-mode`: mode of the admin kubeconfig k3s writes.
pub const WRITE_KUBECONFIG_MODE: &str = "write-kubeconfig-mode";
/// `--disable-default-registry-endpoint`: no fallback to the upstream registry when a
/// mirror is configured for it.
pub const DISABLE_DEFAULT_REGISTRY_ENDPOINT: &str = "disable-default-registry-endpoint";

/// What kind of node the config is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role<'a> {
    /// The first server: starts the cluster (`cluster-init: true`).
    FirstServer,
    /// Another server joining through `server`, an `https://<master>:6443` URL.
    JoinServer { server: &'a str },
    /// An agent (worker) joining through `server`.
    Agent { server: &'a str },
}

/// The node's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Host path of the file holding the cluster token.
    pub token_file: String,
    pub node_ip: String,
    pub node_name: Option<String>,
    /// Servers only: SANs on the apiserver certificate (the node IP is added by the plan).
    pub tls_sans: Vec<String>,
    /// Servers only: packaged components to disable.
    pub disable: Vec<String>,
    /// Servers only: mode of `/etc/rancher/k3s/k3s.yaml`.
    pub kubeconfig_mode: u32,
}

/// The text of `config.yaml` for `node` in `role`. Keys appear in a fixed order; lists
/// that are empty are left out (k3s's defaults apply).
pub fn config_yaml(role: Role<'_>, node: &NodeConfig) -> String {
    let mut out = String::from(
        "# Written by ferry. Keys are k3s server/agent flags without the leading --.\n\
         # Format: https://docs.k3s.io/installation/configuration#configuration-file\n",
    );
    let mut scalar = |key: &str, value: String| {
        out.push_str(&format!("{key}: {value}\n"));
    };
    match role {
        Role::FirstServer => {}
        Role::JoinServer { server } | Role::Agent { server } => scalar(SERVER, quote(server)),
    }
    scalar(TOKEN_FILE, quote(&node.token_file));
    scalar(NODE_IP, quote(&node.node_ip));
    if let Some(name) = &node.node_name {
        scalar(NODE_NAME, quote(name));
    }
    let server = !matches!(role, Role::Agent { .. });
    if server {
        if role == Role::FirstServer {
            scalar(CLUSTER_INIT, "true".into());
        }
        scalar(
            WRITE_KUBECONFIG_MODE,
            quote(&format!("{:04o}", node.kubeconfig_mode)),
        );
    }
    scalar(DISABLE_DEFAULT_REGISTRY_ENDPOINT, "true".into());
    if server {
        for (key, list) in [(TLS_SAN, &node.tls_sans), (DISABLE, &node.disable)] {
            if !list.is_empty() {
                out.push_str(&format!("{key}:\n{}", string_list(list, 2)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k3s::yaml::tests::parse;
    use serde_yaml_ng::Value;

    fn node() -> NodeConfig {
        NodeConfig {
            token_file: "/etc/ferry/cluster-secret".into(),
            node_ip: "10.0.0.2".into(),
            node_name: None,
            tls_sans: vec!["10.0.0.2".into(), "k3s.example.com".into()],
            disable: vec!["traefik".into(), "servicelb".into()],
            kubeconfig_mode: 0o600,
        }
    }

    fn keys(v: &Value) -> Vec<String> {
        v.as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    }

    fn strings(v: &Value) -> Vec<&str> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect()
    }

    #[test]
    fn first_server_has_exactly_the_documented_keys() {
        let v = parse(&config_yaml(Role::FirstServer, &node()));
        assert_eq!(
            keys(&v),
            [
                "token-file",
                "node-ip",
                "cluster-init",
                "write-kubeconfig-mode",
                "disable-default-registry-endpoint",
                "tls-san",
                "disable"
            ]
        );
        assert_eq!(v["token-file"].as_str(), Some("/etc/ferry/cluster-secret"));
        assert_eq!(v["node-ip"].as_str(), Some("10.0.0.2"));
        assert_eq!(v["cluster-init"].as_bool(), Some(true));
        assert_eq!(v["write-kubeconfig-mode"].as_str(), Some("0600"));
        assert_eq!(v["disable-default-registry-endpoint"].as_bool(), Some(true));
        assert_eq!(strings(&v["tls-san"]), ["10.0.0.2", "k3s.example.com"]);
        assert_eq!(strings(&v["disable"]), ["traefik", "servicelb"]);
        assert!(v.get("server").is_none());
    }

    #[test]
    fn joining_server_points_at_the_master_without_cluster_init() {
        let v = parse(&config_yaml(
            Role::JoinServer {
                server: "https://10.0.0.1:6443",
            },
            &node(),
        ));
        assert_eq!(v["server"].as_str(), Some("https://10.0.0.1:6443"));
        assert!(v.get("cluster-init").is_none());
        // Critical values must match the first server's, or the join is refused.
        assert_eq!(strings(&v["disable"]), ["traefik", "servicelb"]);
        assert_eq!(v["token-file"].as_str(), Some("/etc/ferry/cluster-secret"));
    }

    #[test]
    fn agent_has_only_agent_flags() {
        let mut n = node();
        n.node_name = Some("worker-1".into());
        let v = parse(&config_yaml(
            Role::Agent {
                server: "https://10.0.0.1:6443",
            },
            &n,
        ));
        assert_eq!(
            keys(&v),
            [
                "server",
                "token-file",
                "node-ip",
                "node-name",
                "disable-default-registry-endpoint"
            ]
        );
        assert_eq!(v["server"].as_str(), Some("https://10.0.0.1:6443"));
        assert_eq!(v["node-name"].as_str(), Some("worker-1"));
    }

    #[test]
    fn values_that_look_like_other_types_stay_strings() {
        let mut n = node();
        n.token_file = "no".into();
        n.kubeconfig_mode = 0o644;
        n.tls_sans = vec!["yes".into(), "1.5".into()];
        let v = parse(&config_yaml(Role::FirstServer, &n));
        assert_eq!(v["token-file"].as_str(), Some("no"));
        assert_eq!(v["write-kubeconfig-mode"].as_str(), Some("0644"));
        assert_eq!(strings(&v["tls-san"]), ["yes", "1.5"]);
    }

    #[test]
    fn empty_lists_are_left_to_k3s_defaults() {
        let mut n = node();
        n.disable.clear();
        n.tls_sans.clear();
        let v = parse(&config_yaml(Role::FirstServer, &n));
        assert!(v.get("disable").is_none());
        assert!(v.get("tls-san").is_none());
    }
}
