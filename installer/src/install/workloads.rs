//! Workload health on k3s: every Deployment, StatefulSet, DaemonSet and Job in the
//! cluster, read through k3s's embedded kubectl as JSON, judged ready or not, and — for
//! the ones that are not — the reason from their pods (e.g. `ImagePullBackOff: <image>`),
//! so an operator on site sees *which* component is stuck and *why*.
//!
//! An image pull that fails is told apart by what the bundle carries ([`Carried`]): an
//! image the bundle lacks is "not in bundle" (add it to the Kubefile; `status` lists every
//! such request the registry saw); an image it carries failed for another reason, and the
//! kubelet's own message says which (the registry unreachable, another platform, the
//! runtime not configured to use the registry).

use ferry_bundle::reference::Reference;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// The images a bundle carries, as `host/repository:tag` and `host/repository@digest`.
#[derive(Debug, Clone, Default)]
pub struct Carried {
    names: BTreeSet<String>,
    /// False when the bundle could not be read: nothing can be said then.
    known: bool,
}

impl Carried {
    pub fn new(images: &[ferry_bundle::manifest::ImageRecord]) -> Carried {
        let mut names = BTreeSet::new();
        for i in images {
            names.insert(i.name.to_string());
            names.insert(format!("{}@{}", i.name.name(), i.digest));
        }
        Carried { names, known: true }
    }

    /// The images of the staged bundle at `path`; unknown when it cannot be read.
    pub fn of_bundle(path: &Path) -> Carried {
        match ferry_bundle::Bundle::open(path) {
            Ok(b) => Carried::new(&b.manifest.images),
            Err(e) => {
                tracing::debug!("{}: {e}", path.display());
                Carried::default()
            }
        }
    }

    /// Whether the bundle carries `image` (as a pod names it); `None` when unknown.
    pub fn contains(&self, image: &str) -> Option<bool> {
        let r = Reference::parse(image).ok().filter(|_| self.known)?;
        let by_digest = r.digest.map(|d| format!("{}@{d}", r.name()));
        let by_tag = r.tag.as_ref().map(|t| format!("{}:{t}", r.name()));
        Some(
            by_digest
                .into_iter()
                .chain(by_tag)
                .any(|n| self.names.contains(&n)),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkloadHealth {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub ready: bool,
    /// `2/3` style progress.
    pub progress: String,
    /// Why it is not ready (from its pods), empty when ready.
    pub reason: String,
}

fn kubectl(k3s: &Path, args: &[&str]) -> Result<Value, String> {
    let out = std::process::Command::new(k3s)
        .arg("kubectl")
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", k3s.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("kubectl {}: {e}", args.join(" ")))
}

/// Reads and judges every workload.
pub fn check(k3s: &Path, carried: &Carried) -> Result<Vec<WorkloadHealth>, String> {
    let list = kubectl(
        k3s,
        &[
            "get",
            "deployments,statefulsets,daemonsets,jobs",
            "-A",
            "-o",
            "json",
        ],
    )?;
    let pods = kubectl(k3s, &["get", "pods", "-A", "-o", "json"]).unwrap_or(Value::Null);
    Ok(list["items"]
        .as_array()
        .map(|a| a.iter().map(|w| judge(w, &pods, carried)).collect())
        .unwrap_or_default())
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Ready-ness by kind, as `kubectl rollout status` judges it.
pub fn judge(w: &Value, pods: &Value, carried: &Carried) -> WorkloadHealth {
    let kind = w["kind"].as_str().unwrap_or("").to_string();
    let (want, have) = match kind.as_str() {
        "Deployment" => (
            w["spec"]["replicas"].as_i64().unwrap_or(1),
            n(&w["status"]["availableReplicas"]),
        ),
        "StatefulSet" => (
            w["spec"]["replicas"].as_i64().unwrap_or(1),
            n(&w["status"]["readyReplicas"]),
        ),
        "DaemonSet" => (
            n(&w["status"]["desiredNumberScheduled"]),
            n(&w["status"]["numberReady"]),
        ),
        "Job" => (
            w["spec"]["completions"].as_i64().unwrap_or(1),
            n(&w["status"]["succeeded"]),
        ),
        _ => (0, 0),
    };
    let namespace = w["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = w["metadata"]["name"].as_str().unwrap_or("").to_string();
    let ready = have >= want;
    let reason = if ready {
        String::new()
    } else {
        pod_reason(pods, &namespace, &name, carried)
    };
    WorkloadHealth {
        kind,
        namespace,
        name,
        ready,
        progress: format!("{have}/{want}"),
        reason,
    }
}

/// The first waiting/terminated reason of a not-ready container in the workload's pods
/// (pods are matched by name prefix: `<workload>-…`), with its image.
fn pod_reason(pods: &Value, namespace: &str, name: &str, carried: &Carried) -> String {
    let prefix = format!("{name}-");
    for p in pods["items"].as_array().into_iter().flatten() {
        if p["metadata"]["namespace"].as_str() != Some(namespace)
            || !p["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .starts_with(&prefix)
        {
            continue;
        }
        let statuses = p["status"]["initContainerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(
                p["status"]["containerStatuses"]
                    .as_array()
                    .into_iter()
                    .flatten(),
            );
        for c in statuses {
            if c["ready"].as_bool() == Some(true) {
                continue;
            }
            let st = &c["state"];
            let r = st["waiting"]["reason"]
                .as_str()
                .or_else(|| st["terminated"]["reason"].as_str());
            if let Some(r) = r {
                let image = c["image"].as_str().unwrap_or("?");
                let message = st["waiting"]["message"].as_str().unwrap_or("");
                return format!("{r}: {image}{}", pull_failure(r, image, message, carried));
            }
        }
        if let Some(r) = p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| c["reason"].as_str())
        {
            return r.to_string();
        }
    }
    "no pods yet".into()
}

/// For an image pull that failed: ` — not in bundle …`, or ` — in the bundle; <why>`.
fn pull_failure(reason: &str, image: &str, message: &str, carried: &Carried) -> String {
    if !matches!(reason, "ImagePullBackOff" | "ErrImagePull") {
        return String::new();
    }
    let message: String = message.chars().take(300).collect();
    match carried.contains(image) {
        Some(false) => " — not in bundle: add it to the Kubefile (IMAGE or the app's values) and rebuild; `status` lists every image the site asked for and the bundle lacks".into(),
        Some(true) => {
            let m = message.to_ascii_lowercase();
            let why = if m.contains("no match for platform") {
                "the bundle carries it for another platform"
            } else if m.contains("connection refused") || m.contains("dial tcp") || m.contains("i/o timeout") {
                "the registry could not be reached (see `status`)"
            } else if m.contains("not found") {
                "the runtime did not find it through ferry's registry: check its registry mirror configuration (hosts.toml / registries.yaml)"
            } else if m.contains("unauthorized") || m.contains("forbidden") || m.contains("403") {
                "the registry refused the runtime"
            } else {
                "the pull failed for another reason"
            };
            if message.is_empty() {
                format!(" — in the bundle; {why}")
            } else {
                format!(" — in the bundle; {why}: {message}")
            }
        }
        None => String::new(),
    }
}

pub fn table(ws: &[WorkloadHealth]) -> String {
    let mut s = format!(
        "{:<12} {:<40} {:<8} {}\n",
        "KIND", "NAMESPACE/NAME", "READY", "REASON"
    );
    for w in ws {
        s.push_str(&format!(
            "{:<12} {:<40} {:<8} {}\n",
            w.kind,
            format!("{}/{}", w.namespace, w.name),
            w.progress,
            w.reason
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn judges_kinds_and_names_the_stuck_image() {
        let d = json!({"kind": "Deployment", "metadata": {"namespace": "shop", "name": "web"}, "spec": {"replicas": 2}, "status": {"availableReplicas": 1}});
        let pods = json!({"items": [{"metadata": {"namespace": "shop", "name": "web-7f9c-abcde"}, "status": {"containerStatuses": [
            {"ready": false, "image": "docker.io/library/web:1", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}]});
        let h = judge(&d, &pods, &Carried::default());
        assert!(!h.ready);
        assert_eq!(h.progress, "1/2");
        assert_eq!(h.reason, "ImagePullBackOff: docker.io/library/web:1");
        let j = json!({"kind": "Job", "metadata": {"namespace": "a", "name": "m"}, "spec": {}, "status": {"succeeded": 1}});
        assert!(judge(&j, &Value::Null, &Carried::default()).ready);
        let ds = json!({"kind": "DaemonSet", "metadata": {"namespace": "a", "name": "x"}, "status": {"desiredNumberScheduled": 3, "numberReady": 3}});
        assert!(judge(&ds, &Value::Null, &Carried::default()).ready);
        let sts = json!({"kind": "StatefulSet", "metadata": {"namespace": "a", "name": "db"}, "spec": {"replicas": 1}, "status": {}});
        assert_eq!(
            judge(&sts, &Value::Null, &Carried::default()).reason,
            "no pods yet"
        );
    }

    #[test]
    fn a_failed_pull_is_not_in_bundle_or_the_other_failure_it_is() {
        let record = |name: &str| ferry_bundle::manifest::ImageRecord {
            name: Reference::parse(name).unwrap(),
            digest: ferry_bundle::Sha256Digest::of(name.as_bytes()),
            media_type: ferry_bundle::oci::OCI_MANIFEST.into(),
            size: 1,
            source: String::new(),
            platforms: vec![],
            inherited: false,
        };
        let carried = Carried::new(&[record("docker.io/library/web:1")]);
        let digest = ferry_bundle::Sha256Digest::of(b"docker.io/library/web:1");
        assert_eq!(carried.contains("web:1"), Some(true));
        assert_eq!(carried.contains(&format!("web@{digest}")), Some(true));
        assert_eq!(carried.contains("web:2"), Some(false));
        assert_eq!(Carried::default().contains("web:1"), None);

        let d = json!({"kind": "Deployment", "metadata": {"namespace": "shop", "name": "web"}, "spec": {"replicas": 1}, "status": {}});
        let pods = |image: &str, reason: &str, message: &str| {
            json!({"items": [{"metadata": {"namespace": "shop", "name": "web-1"}, "status": {"containerStatuses": [
            {"ready": false, "image": image, "state": {"waiting": {"reason": reason, "message": message}}}]}}]})
        };
        let r = judge(
            &d,
            &pods(
                "quay.io/x/sidecar:2",
                "ImagePullBackOff",
                "Back-off pulling image",
            ),
            &carried,
        )
        .reason;
        assert!(
            r.starts_with("ImagePullBackOff: quay.io/x/sidecar:2 — not in bundle"),
            "{r}"
        );
        let r = judge(
            &d,
            &pods(
                "web:1",
                "ErrImagePull",
                "failed to resolve: no match for platform in manifest",
            ),
            &carried,
        )
        .reason;
        assert!(r.starts_with("ErrImagePull: web:1 — in the bundle; the bundle carries it for another platform: failed"), "{r}");
        let r = judge(
            &d,
            &pods(
                "web:1",
                "ImagePullBackOff",
                "dial tcp 127.0.0.1:5050: connect: connection refused",
            ),
            &carried,
        )
        .reason;
        assert!(
            r.contains("in the bundle; the registry could not be reached"),
            "{r}"
        );
        let r = judge(
            &d,
            &pods("web:1", "CrashLoopBackOff", "back-off restarting"),
            &carried,
        )
        .reason;
        assert_eq!(r, "CrashLoopBackOff: web:1");
    }
}
