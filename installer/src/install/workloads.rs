//! Workload health on k3s: every Deployment, StatefulSet, DaemonSet and Job in the
//! cluster, read through k3s's embedded kubectl as JSON, judged ready or not, and — for
//! the ones that are not — the reason from their pods (e.g. `ImagePullBackOff: <image>`),
//! so an operator on site sees *which* component is stuck and *why*.

use serde_json::Value;
use std::path::Path;

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
pub fn check(k3s: &Path) -> Result<Vec<WorkloadHealth>, String> {
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
        .map(|a| a.iter().map(|w| judge(w, &pods)).collect())
        .unwrap_or_default())
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Ready-ness by kind, as `kubectl rollout status` judges it.
pub fn judge(w: &Value, pods: &Value) -> WorkloadHealth {
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
        pod_reason(pods, &namespace, &name)
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
fn pod_reason(pods: &Value, namespace: &str, name: &str) -> String {
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
                return format!("{r}: {}", c["image"].as_str().unwrap_or("?"));
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
        let h = judge(&d, &pods);
        assert!(!h.ready);
        assert_eq!(h.progress, "1/2");
        assert_eq!(h.reason, "ImagePullBackOff: docker.io/library/web:1");
        let j = json!({"kind": "Job", "metadata": {"namespace": "a", "name": "m"}, "spec": {}, "status": {"succeeded": 1}});
        assert!(judge(&j, &Value::Null).ready);
        let ds = json!({"kind": "DaemonSet", "metadata": {"namespace": "a", "name": "x"}, "status": {"desiredNumberScheduled": 3, "numberReady": 3}});
        assert!(judge(&ds, &Value::Null).ready);
        let sts = json!({"kind": "StatefulSet", "metadata": {"namespace": "a", "name": "db"}, "spec": {"replicas": 1}, "status": {}});
        assert_eq!(judge(&sts, &Value::Null).reason, "no pods yet");
    }
}
