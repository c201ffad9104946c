//! A `HelmChart` resource (`helm.cattle.io/v1`) for k3s's built-in Helm controller.
//!
//! Fields: docs.k3s.io/add-ons/helm ("HelmChart Field Definitions"). The resource lives in
//! `kube-system` (where k3s's own charts live and the controller's install Job runs); the
//! chart's objects go to `spec.targetNamespace`, created if missing (`createNamespace`).
//!
//! The chart travels with the resource: `spec.chartContent` is the `.tgz` in base64, so no
//! chart repository is needed on the air-gapped site. Charts too large for that (the
//! controller copies `chartContent` into a ConfigMap, limited to 1 MiB:
//! github.com/k3s-io/helm-controller/issues/267; and the applied object must fit
//! Kubernetes' 256 KiB annotation limit: github.com/k3s-io/k3s/issues/2663) are instead
//! referenced as `spec.chart: https://%{KUBERNETES_API}%/static/charts/<file>`, served from
//! each server's `/var/lib/rancher/k3s/server/static/` — the way k3s ships its own Traefik
//! chart ([`ChartSource::StaticUrl`]).
//!
//! `spec.set` keeps `helm --set` typing. The controller reads it as a map of int-or-string
//! and passes integers and the strings `true`/`false`/`null` with `--set`, everything else
//! with `--set-string` (helm-controller `pkg/controllers/chart/chart.go`, `typedVal`). So a
//! value that `helm --set` would read as an integer is written as a YAML integer, booleans
//! and null as those strings, and the rest as strings. Integers beyond 32 bits cannot be
//! held by the int-or-string type and go as strings.

use super::yaml::{quote, text};
use base64::Engine as _;
use std::collections::BTreeMap;

/// Namespace of every HelmChart resource ferry writes.
pub const HELMCHART_NAMESPACE: &str = "kube-system";

/// Where the controller gets the chart archive from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSource<'a> {
    /// The `.tgz` itself, written as `spec.chartContent` (base64).
    Content(&'a [u8]),
    /// A file in the servers' static directory, named in `spec.chart` through the
    /// `%{KUBERNETES_API}%` template: `https://%{KUBERNETES_API}%/static/charts/<file>`.
    StaticUrl { file: &'a str },
}

/// One HelmChart resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmChart<'a> {
    /// `metadata.name`; also the Helm release name.
    pub name: &'a str,
    /// `spec.targetNamespace` (created if missing); `None` leaves k3s's default, `default`.
    pub target_namespace: Option<&'a str>,
    pub chart: ChartSource<'a>,
    /// `spec.valuesContent`: a values file's text, as given.
    pub values: Option<&'a str>,
    /// `spec.set`: `key=value` pairs as given to `helm --set`; a later key overrides an
    /// earlier one, as with repeated `--set`.
    pub set: &'a [(String, String)],
}

/// `spec.chart` for a chart file in the static directory.
pub fn static_chart_url(file: &str) -> String {
    format!("https://%{{KUBERNETES_API}}%/static/charts/{file}")
}

/// The resource as a YAML document.
pub fn helmchart_yaml(c: &HelmChart<'_>) -> String {
    let mut out = format!(
        "# Written by ferry. Fields: https://docs.k3s.io/add-ons/helm\n\
         apiVersion: helm.cattle.io/v1\n\
         kind: HelmChart\n\
         metadata:\n  \
           name: {}\n  \
           namespace: {HELMCHART_NAMESPACE}\n  \
           labels:\n    \
             app.kubernetes.io/managed-by: ferry\n\
         spec:\n",
        quote(c.name)
    );
    match &c.chart {
        ChartSource::Content(tgz) => {
            out.push_str(&format!(
                "  chartContent: {}\n",
                quote(&base64::engine::general_purpose::STANDARD.encode(tgz))
            ));
        }
        ChartSource::StaticUrl { file } => {
            out.push_str(&format!("  chart: {}\n", quote(&static_chart_url(file))));
        }
    }
    if let Some(ns) = c.target_namespace {
        out.push_str(&format!(
            "  targetNamespace: {}\n  createNamespace: true\n",
            quote(ns)
        ));
    }
    if let Some(values) = c.values {
        out.push_str(&format!("  valuesContent: {}", text(values, 4)));
    }
    if !c.set.is_empty() {
        let set: BTreeMap<&str, &str> = c
            .set
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        out.push_str("  set:\n");
        for (k, v) in set {
            out.push_str(&format!("    {}: {}\n", quote(k), set_value(v)));
        }
    }
    out
}

/// A `spec.set` value: a YAML integer where `helm --set` would read an integer that fits
/// the controller's int-or-string, else a quoted string (see the module doc).
pub fn set_value(v: &str) -> String {
    // helm's strvals typedVal: "0", or digits not starting with 0, parse as int64.
    let helm_int = v == "0" || (!v.starts_with('0') && v.parse::<i64>().is_ok());
    match v.parse::<i32>() {
        Ok(n) if helm_int => n.to_string(),
        _ => quote(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k3s::yaml::tests::parse;
    use ::base64::Engine;

    fn decode(s: &str) -> Vec<u8> {
        ::base64::engine::general_purpose::STANDARD
            .decode(s)
            .unwrap()
    }

    #[test]
    fn chart_content_decodes_to_the_chart_bytes() {
        let tgz: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let doc = helmchart_yaml(&HelmChart {
            name: "web",
            target_namespace: Some("web"),
            chart: ChartSource::Content(&tgz),
            values: Some("image:\n  tag: v1\nreplicaCount: 2\n"),
            set: &[],
        });
        let v = parse(&doc);
        assert_eq!(v["apiVersion"].as_str(), Some("helm.cattle.io/v1"));
        assert_eq!(v["kind"].as_str(), Some("HelmChart"));
        assert_eq!(v["metadata"]["name"].as_str(), Some("web"));
        assert_eq!(v["metadata"]["namespace"].as_str(), Some("kube-system"));
        assert_eq!(decode(v["spec"]["chartContent"].as_str().unwrap()), tgz);
        assert_eq!(v["spec"]["targetNamespace"].as_str(), Some("web"));
        assert_eq!(v["spec"]["createNamespace"].as_bool(), Some(true));
        assert_eq!(
            v["spec"]["valuesContent"].as_str(),
            Some("image:\n  tag: v1\nreplicaCount: 2\n")
        );
        assert!(v["spec"].get("chart").is_none());
        assert!(v["spec"].get("set").is_none());
        // valuesContent is a readable literal block, not an escaped one-liner.
        assert!(
            doc.contains("  valuesContent: |\n    image:\n      tag: v1\n"),
            "{doc}"
        );
    }

    #[test]
    fn large_charts_are_named_by_their_static_url() {
        let doc = helmchart_yaml(&HelmChart {
            name: "big",
            target_namespace: None,
            chart: ChartSource::StaticUrl {
                file: "ferry-big.tgz",
            },
            values: None,
            set: &[],
        });
        let v = parse(&doc);
        assert_eq!(
            v["spec"]["chart"].as_str(),
            Some("https://%{KUBERNETES_API}%/static/charts/ferry-big.tgz")
        );
        assert!(v["spec"].get("chartContent").is_none());
        assert!(v["spec"].get("targetNamespace").is_none());
        assert!(v["spec"].get("valuesContent").is_none());
    }

    #[test]
    fn set_keeps_helm_typing_and_last_value_wins() {
        let set: Vec<(String, String)> = [
            ("replicaCount", "3"),
            ("image.tag", "1.27"),
            ("service.enabled", "true"),
            ("zeroPadded", "007"),
            ("big", "12345678901"),
            ("negative", "-5"),
            ("nothing", "null"),
            ("list", "a,b"),
            ("image.tag", "1.28"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let doc = helmchart_yaml(&HelmChart {
            name: "web",
            target_namespace: Some("web"),
            chart: ChartSource::Content(b"x"),
            values: None,
            set: &set,
        });
        let v = parse(&doc);
        let s = &v["spec"]["set"];
        assert_eq!(s.as_mapping().unwrap().len(), 8, "{doc}");
        assert_eq!(s["replicaCount"].as_i64(), Some(3));
        assert_eq!(s["negative"].as_i64(), Some(-5));
        assert_eq!(s["image.tag"].as_str(), Some("1.28"));
        assert_eq!(s["service.enabled"].as_str(), Some("true"));
        assert_eq!(s["zeroPadded"].as_str(), Some("007"));
        assert_eq!(s["big"].as_str(), Some("12345678901"));
        assert_eq!(s["nothing"].as_str(), Some("null"));
        assert_eq!(s["list"].as_str(), Some("a,b"));
    }
}
