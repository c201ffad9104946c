//! Applications → files in k3s's auto-deploy directory.
//!
//! k3s applies every manifest in `/var/lib/rancher/k3s/server/manifests/` like
//! `kubectl apply`, as an `AddOn` named after the file, and re-applies it when the file
//! changes (docs.k3s.io/installation/packaged-components). So deploying apps is writing
//! files; k3s does the rest and keeps doing it after a restart.
//!
//! - A manifests app's files become `<app>-<n>.yaml`, `n` counted from 1 and zero-padded to
//!   the width of the count, so the directory lists them in the order given.
//! - A chart app becomes one `HelmChart` resource in `<app>-chart.yaml` (see
//!   [`super::helmchart`]). Charts up to [`CHART_CONTENT_MAX`] bytes travel inside it as
//!   `chartContent`; larger ones are written to the static directory as
//!   `ferry-<app>.tgz` on **every** server — the apiserver that answers the controller's
//!   download may be any of them — and the resource names them by URL.
//!
//! The numeric and `-chart` suffixes keep file names of different apps apart (an app `a`
//! never writes `a-chart-1.yaml`, which an app `a-chart` would) and away from k3s's own
//! packaged manifests (`coredns.yaml`, `traefik.yaml`, `local-storage.yaml`, …); the plan
//! still refuses any two files with one path.

use super::error::K3sError;
use super::helmchart::{helmchart_yaml, ChartSource, HelmChart};
use super::plan::{App, AppKind, PlannedFile};
use super::{MANIFESTS_DIR, STATIC_CHARTS_DIR};

/// Largest chart archive sent inline as `chartContent`. Its base64 (4/3 of this) plus the
/// rest of the resource must stay well under the ConfigMap limit (1 MiB) and, once wrapped
/// in the apply annotation, under the 256 KiB annotation limit; see [`super::helmchart`].
pub const CHART_CONTENT_MAX: usize = 128 * 1024;

/// HelmChart names k3s itself deploys into `kube-system`; an app of that name would fight
/// k3s over the resource.
pub const RESERVED_CHART_NAMES: [&str; 2] = ["traefik", "traefik-crd"];

/// Longest app name: the controller's install Job is `helm-install-<name>` and Job names
/// must fit a 63-character label; Helm release names are limited to 53.
pub const APP_NAME_MAX: usize = 50;

/// Mode of files in the manifests directory: values may hold secrets.
const MANIFEST_MODE: u32 = 0o600;
/// Mode of a chart archive in the static directory (served anonymously by the apiserver
/// anyway; it holds no values).
const STATIC_CHART_MODE: u32 = 0o644;

/// Checks what k3s and its Helm controller would reject later.
pub fn validate(app: &App) -> Result<(), K3sError> {
    let bad_name = |reason: String| K3sError::BadAppName {
        name: app.name.clone(),
        reason,
    };
    dns_label(&app.name, APP_NAME_MAX).map_err(bad_name)?;
    if let Some(ns) = &app.namespace {
        dns_label(ns, 63).map_err(|reason| K3sError::BadNamespace {
            app: app.name.clone(),
            namespace: ns.clone(),
            reason,
        })?;
    }
    match &app.kind {
        AppKind::Chart { tgz, set, .. } => {
            if RESERVED_CHART_NAMES.contains(&app.name.as_str()) {
                return Err(K3sError::ReservedAppName {
                    name: app.name.clone(),
                });
            }
            if tgz.is_empty() {
                return Err(K3sError::EmptyChart {
                    app: app.name.clone(),
                });
            }
            for (k, _) in set {
                if k.is_empty() || k.contains(['=', ',']) {
                    return Err(K3sError::BadSetKey {
                        app: app.name.clone(),
                        key: k.clone(),
                    });
                }
            }
        }
        AppKind::Manifests { files } => {
            if files.is_empty() {
                return Err(K3sError::NoManifests {
                    app: app.name.clone(),
                });
            }
        }
    }
    Ok(())
}

/// A DNS-1123 label (RFC 1123 as Kubernetes uses it for names): lowercase letters, digits
/// and `-`, starting and ending with a letter or digit, at most `max` characters.
fn dns_label(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() || s.len() > max {
        return Err(format!("must be 1 to {max} characters long"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may hold only lowercase letters, digits and '-'".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

/// Path of a manifests app's `n`-th file (from 1) of `count`.
pub fn manifest_path(app: &str, n: usize, count: usize) -> String {
    let width = count.to_string().len();
    format!("{MANIFESTS_DIR}/{app}-{n:0width$}.yaml")
}

/// Path of a chart app's HelmChart resource.
pub fn helmchart_path(app: &str) -> String {
    format!("{MANIFESTS_DIR}/{app}-chart.yaml")
}

/// File name of a large chart in the static directory.
pub fn static_chart_file(app: &str) -> String {
    format!("ferry-{app}.tgz")
}

/// Whether a chart goes to the static directory instead of inline.
pub fn chart_is_static(tgz: &[u8]) -> bool {
    tgz.len() > CHART_CONTENT_MAX
}

/// The files that deploy `app`, for the first server's manifests directory (and, for a
/// large chart, its static directory).
pub fn deploy_files(app: &App) -> Vec<PlannedFile> {
    match &app.kind {
        AppKind::Manifests { files } => files
            .iter()
            .enumerate()
            .map(|(i, bytes)| PlannedFile {
                path: manifest_path(&app.name, i + 1, files.len()),
                content: bytes.clone(),
                mode: MANIFEST_MODE,
            })
            .collect(),
        AppKind::Chart { tgz, values, set } => {
            let file = static_chart_file(&app.name);
            let chart = if chart_is_static(tgz) {
                ChartSource::StaticUrl { file: &file }
            } else {
                ChartSource::Content(tgz)
            };
            let resource = helmchart_yaml(&HelmChart {
                name: &app.name,
                target_namespace: app.namespace.as_deref(),
                chart,
                values: values.as_deref(),
                set,
            });
            let mut out = vec![PlannedFile {
                path: helmchart_path(&app.name),
                content: resource.into_bytes(),
                mode: MANIFEST_MODE,
            }];
            out.extend(static_files(app));
            out
        }
    }
}

/// The files every server needs for `app`: a large chart's archive in the static
/// directory. Nothing for manifests or small charts.
pub fn static_files(app: &App) -> Vec<PlannedFile> {
    match &app.kind {
        AppKind::Chart { tgz, .. } if chart_is_static(tgz) => vec![PlannedFile {
            path: format!("{STATIC_CHARTS_DIR}/{}", static_chart_file(&app.name)),
            content: tgz.clone(),
            mode: STATIC_CHART_MODE,
        }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifests(name: &str, n: usize) -> App {
        App {
            name: name.into(),
            namespace: None,
            kind: AppKind::Manifests {
                files: (0..n).map(|i| format!("# {i}\n").into_bytes()).collect(),
            },
        }
    }

    fn chart(name: &str, len: usize) -> App {
        App {
            name: name.into(),
            namespace: Some("apps".into()),
            kind: AppKind::Chart {
                tgz: vec![0x1f; len],
                values: None,
                set: vec![],
            },
        }
    }

    #[test]
    fn manifests_are_numbered_in_order() {
        let files = deploy_files(&manifests("web", 12));
        let names: Vec<&str> = files
            .iter()
            .map(|f| f.path.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(names[0], "web-01.yaml");
        assert_eq!(names[11], "web-12.yaml");
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);
        assert!(files.iter().all(|f| f.path.starts_with(MANIFESTS_DIR)));
        assert_eq!(files[3].content, b"# 3\n");
        assert_eq!(
            deploy_files(&manifests("db", 3))[0].path,
            format!("{MANIFESTS_DIR}/db-1.yaml")
        );
    }

    #[test]
    fn small_charts_are_inline_large_ones_static() {
        let small = deploy_files(&chart("small", CHART_CONTENT_MAX));
        assert_eq!(small.len(), 1);
        assert_eq!(small[0].path, format!("{MANIFESTS_DIR}/small-chart.yaml"));
        assert!(String::from_utf8_lossy(&small[0].content).contains("chartContent:"));
        assert!(static_files(&chart("small", CHART_CONTENT_MAX)).is_empty());

        let big = deploy_files(&chart("big", CHART_CONTENT_MAX + 1));
        assert_eq!(big.len(), 2);
        let text = String::from_utf8_lossy(&big[0].content);
        assert!(text.contains("/static/charts/ferry-big.tgz"), "{text}");
        assert!(!text.contains("chartContent"));
        assert_eq!(big[1].path, format!("{STATIC_CHARTS_DIR}/ferry-big.tgz"));
        assert_eq!(big[1].content.len(), CHART_CONTENT_MAX + 1);
        assert_eq!(static_files(&chart("big", CHART_CONTENT_MAX + 1)), big[1..]);
    }

    #[test]
    fn names_k3s_would_reject_are_refused_early() {
        for bad in ["", "Web", "web_1", "-web", "web-", &"a".repeat(51)] {
            assert!(
                matches!(
                    validate(&manifests(bad, 1)),
                    Err(K3sError::BadAppName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(validate(&manifests("web-1", 1)).is_ok());
        assert!(matches!(
            validate(&chart("traefik", 10)),
            Err(K3sError::ReservedAppName { .. })
        ));
        assert!(matches!(
            validate(&chart("x", 0)),
            Err(K3sError::EmptyChart { .. })
        ));
        assert!(matches!(
            validate(&manifests("x", 0)),
            Err(K3sError::NoManifests { .. })
        ));
        let mut ns = chart("x", 1);
        ns.namespace = Some("Bad_NS".into());
        assert!(matches!(validate(&ns), Err(K3sError::BadNamespace { .. })));
        let mut set = chart("x", 1);
        set.kind = AppKind::Chart {
            tgz: vec![1],
            values: None,
            set: vec![("a=b".into(), "c".into())],
        };
        assert!(matches!(validate(&set), Err(K3sError::BadSetKey { .. })));
    }
}
