//! `/etc/rancher/k3s/registries.yaml`: every upstream registry host the bundle carries is
//! mirrored to ferry's registry, so images are pulled by their original names.
//!
//! Format: docs.k3s.io/installation/private-registry ("Registries Configuration File",
//! "Mirrors", "Configs"): top-level `mirrors:` mapping each registry host to an `endpoint:`
//! list, and `configs:` keyed by the endpoint's `host:port` with `tls: ca_file:`.
//!
//! Why one mirror per host and no `rewrite`: the same page ("Redirects") documents that
//! k3s's containerd passes the original registry name to a mirror endpoint in the `ns`
//! query parameter, so a pull of `quay.io/x/y:1` through the mirror arrives at ferry's
//! registry as `GET /v2/x/y/manifests/1?ns=quay.io`. The registry routes on `ns`
//! (DESIGN §3 phase 4), so `docker.io/x/y` and `quay.io/x/y` stay distinct and no image
//! name is ever rewritten: the pod spec, the node's image list and the bundle agree.
//! `rewrite` would change names and is deliberately not used.
//!
//! Endpoints are written without `/v2`: containerd adds the API path itself, and the
//! docs' examples are bare `scheme://host:port`. `http://` must be spelled out ("otherwise
//! it will default to https").
//!
//! The site's registry (`--site-registry`) is the one case for `rewrite`: its images live
//! under `<path>/<host>/<repository>` (see `crate::site`), so each host's mirror is the
//! site with `rewrite: {"^(.*)$": "<path>/<host>/$1"}` (the "Rewrites" section: the pulled
//! name changes, the name the node records does not). Its login, if any, goes into the
//! endpoint's `configs:` entry as `auth: {username, password}` ("Configs").
//!
//! Not used: the `"*"` wildcard mirror (k3s ≥ 1.26). It would send pulls for hosts the
//! bundle does not carry to ferry's registry too; naming each host keeps any registry the
//! site runs itself reachable exactly as before.

use super::yaml::quote;
use std::collections::BTreeMap;

/// One upstream registry host mirrored to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorSpec {
    /// Upstream registry host as it appears in image names: `docker.io`, `quay.io`,
    /// `registry.k8s.io`, `registry.local:5000`.
    pub host: String,
    /// Where to pull instead: `http://127.0.0.1:5050` (the master's own registry) or
    /// `https://<master>:5443` (a joined node).
    pub endpoint: String,
    /// CA certificate (PEM file path on the host) that the endpoint's TLS certificate must
    /// chain to; only meaningful for an `https` endpoint.
    pub ca_file: Option<String>,
    /// Repository prefix the endpoint keeps this host's images under (`<path>/<host>`),
    /// written as a `rewrite` of every name.
    pub rewrite_prefix: Option<String>,
    /// User and password for the endpoint.
    pub auth: Option<(String, String)>,
}

/// The `host[:port]` part of an endpoint URL, which is how `configs:` entries are keyed.
pub fn endpoint_authority(endpoint: &str) -> &str {
    let rest = endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(endpoint);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// The text of `registries.yaml` for `mirrors`, hosts in sorted order (same input, same
/// bytes). Each host gets exactly one endpoint; a `configs:` entry with `tls.ca_file` is
/// written per distinct `https` endpoint that has a CA file (if two mirrors give different
/// CA files for one endpoint, the first wins: [`super::plan`] never builds such input).
pub fn registries_yaml(mirrors: &[MirrorSpec]) -> String {
    let mut hosts: BTreeMap<&str, &MirrorSpec> = BTreeMap::new();
    let mut tls: BTreeMap<&str, &str> = BTreeMap::new();
    let mut auth: BTreeMap<&str, &(String, String)> = BTreeMap::new();
    for m in mirrors {
        hosts.entry(m.host.as_str()).or_insert(m);
        if let Some(ca) = &m.ca_file {
            if m.endpoint.starts_with("https://") {
                tls.entry(endpoint_authority(&m.endpoint))
                    .or_insert(ca.as_str());
            }
        }
        if let Some(a) = &m.auth {
            auth.entry(endpoint_authority(&m.endpoint)).or_insert(a);
        }
    }
    let mut out = String::from(
        "# Written by ferry: pull every image the bundle carries from ferry's registry.\n\
         # containerd sends the original registry host as ?ns=<host>; names are not rewritten.\n\
         # Format: https://docs.k3s.io/installation/private-registry\n",
    );
    out.push_str("mirrors:\n");
    for (host, m) in &hosts {
        out.push_str(&format!(
            "  {}:\n    endpoint:\n      - {}\n",
            quote(host),
            quote(&m.endpoint)
        ));
        if let Some(prefix) = &m.rewrite_prefix {
            out.push_str(&format!(
                "    rewrite:\n      {}: {}\n",
                quote("^(.*)$"),
                quote(&format!("{prefix}/$1"))
            ));
        }
    }
    let authorities: std::collections::BTreeSet<&str> =
        tls.keys().chain(auth.keys()).copied().collect();
    if !authorities.is_empty() {
        out.push_str("configs:\n");
        for a in authorities {
            out.push_str(&format!("  {}:\n", quote(a)));
            if let Some((u, p)) = auth.get(a) {
                out.push_str(&format!(
                    "    auth:\n      username: {}\n      password: {}\n",
                    quote(u),
                    quote(p)
                ));
            }
            if let Some(ca) = tls.get(a) {
                out.push_str(&format!("    tls:\n      ca_file: {}\n", quote(ca)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k3s::yaml::tests::parse;

    fn spec(host: &str, endpoint: &str, ca: Option<&str>) -> MirrorSpec {
        MirrorSpec {
            host: host.into(),
            endpoint: endpoint.into(),
            ca_file: ca.map(String::from),
            rewrite_prefix: None,
            auth: None,
        }
    }

    #[test]
    fn a_site_registry_is_each_hosts_endpoint_with_a_rewrite_and_its_login() {
        let site = |host: &str, prefix: &str| MirrorSpec {
            rewrite_prefix: Some(prefix.into()),
            auth: Some(("robot".into(), "p\"w: x".into())),
            ..spec(
                host,
                "https://harbor.site:8443",
                Some("/etc/ferry/site-registry/ca.pem"),
            )
        };
        let doc = registries_yaml(&[
            site("docker.io", "ferry/docker.io"),
            site("registry.local:5000", "ferry/registry.local_5000"),
        ]);
        let v = parse(&doc);
        assert_eq!(
            v["mirrors"]["docker.io"]["rewrite"]["^(.*)$"].as_str(),
            Some("ferry/docker.io/$1"),
            "{doc}"
        );
        assert_eq!(
            v["mirrors"]["registry.local:5000"]["rewrite"]["^(.*)$"].as_str(),
            Some("ferry/registry.local_5000/$1")
        );
        let c = &v["configs"]["harbor.site:8443"];
        assert_eq!(c["auth"]["username"].as_str(), Some("robot"));
        assert_eq!(c["auth"]["password"].as_str(), Some("p\"w: x"));
        assert_eq!(
            c["tls"]["ca_file"].as_str(),
            Some("/etc/ferry/site-registry/ca.pem")
        );
    }

    #[test]
    fn every_host_is_mirrored_to_the_endpoint() {
        let hosts = [
            "registry.k8s.io",
            "docker.io",
            "quay.io",
            "registry.local:5000",
        ];
        let specs: Vec<_> = hosts
            .iter()
            .map(|h| spec(h, "http://127.0.0.1:5050", None))
            .collect();
        let doc = registries_yaml(&specs);
        let v = parse(&doc);
        let mirrors = v["mirrors"].as_mapping().expect("mirrors mapping");
        assert_eq!(mirrors.len(), hosts.len());
        for h in hosts {
            let eps = v["mirrors"][h]["endpoint"]
                .as_sequence()
                .unwrap_or_else(|| panic!("no endpoint list for {h}\n{doc}"));
            assert_eq!(eps.len(), 1);
            assert_eq!(eps[0].as_str(), Some("http://127.0.0.1:5050"));
            // No rewrite: names must reach the registry unchanged (it routes on ?ns=).
            assert!(v["mirrors"][h].get("rewrite").is_none());
        }
        assert!(
            v.get("configs").is_none(),
            "plain http needs no configs:\n{doc}"
        );
    }

    #[test]
    fn https_endpoint_with_ca_gets_a_tls_config_keyed_by_host_and_port() {
        let ca = "/var/lib/ferry/registry/ca.crt";
        let specs = vec![
            spec("docker.io", "https://10.0.0.1:5443", Some(ca)),
            spec("quay.io", "https://10.0.0.1:5443", Some(ca)),
        ];
        let v = parse(&registries_yaml(&specs));
        let configs = v["configs"].as_mapping().unwrap();
        assert_eq!(configs.len(), 1);
        assert_eq!(
            v["configs"]["10.0.0.1:5443"]["tls"]["ca_file"].as_str(),
            Some(ca)
        );
        assert_eq!(
            v["mirrors"]["quay.io"]["endpoint"][0].as_str(),
            Some("https://10.0.0.1:5443")
        );
    }

    #[test]
    fn ipv6_endpoints_keep_their_brackets() {
        assert_eq!(
            endpoint_authority("https://[fd00::1]:5443"),
            "[fd00::1]:5443"
        );
        assert_eq!(
            endpoint_authority("http://127.0.0.1:5050/"),
            "127.0.0.1:5050"
        );
        let v = parse(&registries_yaml(&[spec(
            "docker.io",
            "https://[fd00::1]:5443",
            Some("/ca.pem"),
        )]));
        assert_eq!(
            v["configs"]["[fd00::1]:5443"]["tls"]["ca_file"].as_str(),
            Some("/ca.pem")
        );
    }

    #[test]
    fn output_is_sorted_and_deterministic() {
        let a = registries_yaml(&[
            spec("quay.io", "http://127.0.0.1:5050", None),
            spec("docker.io", "http://127.0.0.1:5050", None),
        ]);
        let b = registries_yaml(&[
            spec("docker.io", "http://127.0.0.1:5050", None),
            spec("quay.io", "http://127.0.0.1:5050", None),
        ]);
        assert_eq!(a, b);
        assert!(a.find("docker.io").unwrap() < a.find("quay.io").unwrap());
    }

    #[test]
    fn matches_the_documented_shape() {
        // The "With TLS / Without Authentication" example of the k3s docs, field for field.
        let doc = registries_yaml(&[spec(
            "docker.io",
            "https://registry.example.com:5000",
            Some("/ca.pem"),
        )]);
        let v = parse(&doc);
        let top: Vec<&str> = v
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(top, ["mirrors", "configs"]);
        assert_eq!(
            v["mirrors"]["docker.io"]["endpoint"][0].as_str(),
            Some("https://registry.example.com:5000")
        );
        assert_eq!(
            v["configs"]["registry.example.com:5000"]["tls"]["ca_file"].as_str(),
            Some("/ca.pem")
        );
    }
}
