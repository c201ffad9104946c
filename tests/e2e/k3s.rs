//! `CLUSTER k3s` bundles. **No k3s binary can be had on these machines**, so the payload's
//! `k3s` here is a RECORDING STAND-IN (a shell script written below): it records every
//! command line it is started with, stays up as `server`/`agent`, and answers
//! `kubectl get nodes` with one Ready node. What is checked is real: the files ferry
//! writes (registries.yaml, config.yaml, the HelmChart) against k3s's documented formats,
//! the command lines, the airgap images imported into the bundle and served, and that
//! `plan` = what install writes, and `reset` leaves nothing.

use ferry_tests::bins::{build_kubefile, run_ok, workspace, write_file};
use ferry_tests::plan::file_text as file;
use ferry_tests::registry::free_port;
use std::path::Path;
use std::process::Command;

const STAND_IN: &str = r#"#!/bin/sh
# RECORDING STAND-IN for k3s, used only by ferry's tests: no real k3s binary can be had here.
# It records its command lines, stays up as server/agent, and answers the kubectl queries
# ferry's health phase makes with one Ready node and one Deployment `web` — available, or
# (with FERRY_STANDIN_UNHEALTHY=1) stuck with a pod in ImagePullBackOff.
echo "$*" >> "$0.calls"
case "$1" in
  server|agent) exec sleep 100000 ;;
esac
case "$*" in
  *"get nodes"*) echo "standin Ready control-plane,etcd 1m v1.31.4+k3s1" ;;
  *"get deployments"*)
    if [ -n "$FERRY_STANDIN_UNHEALTHY" ]; then avail=0; else avail=1; fi
    echo '{"items":[{"kind":"Deployment","metadata":{"namespace":"default","name":"web"},"spec":{"replicas":1},"status":{"availableReplicas":'$avail'}}]}' ;;
  *"get pods"*)
    echo '{"items":[{"metadata":{"namespace":"default","name":"web-5d8f-x1"},"status":{"containerStatuses":[{"ready":false,"image":"docker.io/library/app:1","state":{"waiting":{"reason":"ImagePullBackOff"}}}]}}]}' ;;
esac
"#;

fn k3s_payload(dir: &Path, layout: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("k3s"), STAND_IN).unwrap();
    let tar = dir.join("k3s-airgap-images-amd64.tar");
    // k3s's airgap tarball is a multi-image `docker save`; one image under two tags here.
    run_ok(
        Command::new("skopeo")
            .args([
                "copy",
                "-q",
                "--additional-tag",
                "docker.io/rancher/mirrored-coredns-coredns:1.12.0",
            ])
            .arg(format!("oci:{}:a", layout.display()))
            .arg(format!(
                "docker-archive:{}:docker.io/rancher/mirrored-pause:3.6",
                tar.display()
            )),
    );
    run_ok(Command::new("zstd").args(["-q", "--rm"]).arg(&tar));
}

fn k3s_bundle(dir: &Path) -> std::path::PathBuf {
    run_ok(
        Command::new("bash")
            .arg(workspace().join("scripts/demo-images.sh"))
            .arg(dir),
    );
    k3s_payload(&dir.join("k3s-payload"), &dir.join("layout"));
    write_file(
        &dir.join("chart/Chart.yaml"),
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    write_file(
        &dir.join("chart/values.yaml"),
        "image: docker.io/library/app:1\n",
    );
    write_file(
        &dir.join("chart/templates/d.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n        - name: web\n          image: {{ .Values.image }}\n",
    );
    // Real charts are large (dashboards, CRDs): this one packs to more than the 128 KiB
    // that travel inline in a HelmChart, so it goes to k3s's static charts directory.
    let blob = ferry_tests::bins::noise(200 * 1024, 7);
    std::fs::create_dir_all(dir.join("chart/files")).unwrap();
    std::fs::write(dir.join("chart/files/dashboards.bin"), blob).unwrap();
    write_file(&dir.join("values-site.yaml"), "replicas: 2\n");
    let kubefile = format!(
        "FROM scratch\nCLUSTER k3s v1.31.4+k3s1\nLABEL name=k3s-demo\n\
         IMAGE oci:layout:a AS docker.io/library/app:1\n\
         IMAGE oci:layout:b AS registry.k8s.io/app:1\n\
         APP web ./chart\nVALUES web values-site.yaml\nSET web replicas=3\n\
         ENV SITE=plant-7\nRUN echo \"$SITE $KUBECONFIG\" > {}/hook.out\n",
        dir.display()
    );
    let payload = format!("k3s={}", dir.join("k3s-payload").display());
    build_kubefile(dir, &kubefile, "k3s.run", &["--payload", &payload])
}

#[test]
fn k3s_plan_install_join_plan_and_reset_with_a_recording_stand_in() {
    let t = tempfile::tempdir().unwrap();
    let bundle = k3s_bundle(t.path());
    let info: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new(&bundle).args(["--info", "--output", "json"]),
    ))
    .unwrap();
    assert_eq!(info["cluster"]["distribution"], "k3s");
    let names: Vec<&str> = info["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    for n in [
        "docker.io/rancher/mirrored-pause:3.6",
        "docker.io/rancher/mirrored-coredns-coredns:1.12.0",
        "docker.io/library/app:1",
        "registry.k8s.io/app:1",
    ] {
        assert!(names.contains(&n), "{n} not in {names:?}");
    }
    assert!(
        !info["entries"].to_string().contains("airgap"),
        "airgap tarball carried as a file"
    );

    let root = t.path().join("root");
    let port = free_port().unwrap();
    let join_port = free_port().unwrap();
    let base = |c: &mut Command, timeout: &str| {
        c.arg("--root").arg(&root).args([
            "--node-ip",
            "10.1.2.3",
            "--registry-port",
            &port.to_string(),
            "--join-port",
            &join_port.to_string(),
            "--yes",
            "-q",
            "--skip-preflight",
            "ip_forward",
            "--skip-preflight",
            "br_netfilter",
            "--skip-preflight",
            "default_route",
            "--wait-timeout",
            timeout,
        ]);
    };
    let mut c = Command::new(&bundle);
    base(&mut c, "20");
    let plan: serde_json::Value =
        serde_json::from_str(&run_ok(c.args(["plan", "--output", "json"]))).unwrap();

    let reg = file(&plan, "/etc/rancher/k3s/registries.yaml");
    for host in ["docker.io", "registry.k8s.io"] {
        assert!(
            reg.contains(&format!("{host}:")) || reg.contains(&format!("\"{host}\":")),
            "no mirror for {host}:\n{reg}"
        );
    }
    assert!(reg.contains(&format!("http://127.0.0.1:{port}")), "{reg}");
    assert!(
        !reg.contains("rewrite"),
        "names must not be rewritten:\n{reg}"
    );
    let cfg = file(&plan, "/etc/rancher/k3s/config.yaml");
    for k in ["token-file:", "node-ip:", "tls-san:", "cluster-init: true"] {
        assert!(cfg.contains(k), "config.yaml lacks {k}:\n{cfg}");
    }
    assert!(cfg.contains("10.1.2.3"));
    let hc = file(
        &plan,
        "/var/lib/rancher/k3s/server/manifests/web-chart.yaml",
    );
    assert!(
        hc.contains("kind: HelmChart")
            && hc.contains("https://%{KUBERNETES_API}%/static/charts/ferry-web.tgz")
            && !hc.contains("chartContent")
            && hc.contains("replicas"),
        "{hc}"
    );
    let cmds = plan.to_string();
    assert!(
        cmds.contains("\"server\"") && cmds.contains("k3s/config.yaml"),
        "{cmds}"
    );

    // A workload that never becomes ready is named with its reason, and the install fails…
    let mut c = Command::new(&bundle);
    base(&mut c, "2");
    c.env("FERRY_STANDIN_UNHEALTHY", "1");
    let msg = ferry_tests::bins::run_fail(c);
    assert!(
        msg.contains("Deployment default/web")
            && msg.contains("ImagePullBackOff: docker.io/library/app:1 — in the bundle; "),
        "{msg}"
    );
    // …and a re-run, once it is healthy, converges.
    let mut c = Command::new(&bundle);
    base(&mut c, "20");
    run_ok(c);
    let calls = std::fs::read_to_string(root.join("opt/ferry/bin/k3s.calls")).unwrap();
    assert!(
        calls.lines().any(
            |l| l.starts_with("server --config ") && l.ends_with("etc/rancher/k3s/config.yaml")
        ),
        "{calls}"
    );
    for p in ferry_tests::plan::written_paths(&plan, &root) {
        assert!(p.exists(), "planned {} not written", p.display());
    }
    // The chart archive (> 128 KiB, gzip) landed byte for byte in the static directory.
    let x = t.path().join("extracted");
    run_ok(Command::new(&bundle).arg("--extract").arg(&x));
    let carried = std::fs::read(x.join("files/apps/web/chart.tgz")).unwrap();
    assert!(carried.len() > 128 * 1024, "{}", carried.len());
    assert_eq!(
        std::fs::read(root.join("var/lib/rancher/k3s/server/static/charts/ferry-web.tgz")).unwrap(),
        carried
    );
    // The RUN hook ran after the apps, with the Kubefile's ENV and KUBECONFIG.
    let hook = std::fs::read_to_string(t.path().join("hook.out")).unwrap();
    assert_eq!(
        hook.trim(),
        format!(
            "plant-7 {}",
            root.join("etc/rancher/k3s/k3s.yaml").display()
        )
    );
    let written = std::fs::read_to_string(root.join("etc/rancher/k3s/config.yaml")).unwrap();
    assert!(written.contains("token-file:"), "{written}");
    let secret = std::fs::read_to_string(root.join("etc/ferry/cluster-secret")).unwrap();
    let token = std::fs::read_to_string(root.join("etc/ferry/token")).unwrap();
    assert!(
        token.trim().ends_with(&format!("::{secret}")),
        "{token} / {secret}"
    );
    // k3s's own images are served by ferry's registry under their original names.
    let status = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!(
                "docker://127.0.0.1:{port}/docker.io/rancher/mirrored-pause:3.6"
            )),
    );
    assert!(status.contains("schemaVersion"), "{status}");

    // A node's join plan: k3s agent against https://<master>:6443, mirrors to the master's TLS registry.
    let token = std::fs::read_to_string(root.join("etc/ferry/token")).unwrap();
    let mut c = Command::new(&bundle);
    c.arg("--root").arg(t.path().join("node")).args([
        "--join",
        "10.1.2.3:5443",
        "--token",
        token.trim(),
        "--node-ip",
        "10.1.2.4",
        "plan",
        "--output",
        "json",
    ]);
    let jp: serde_json::Value = serde_json::from_str(&run_ok(c)).unwrap();
    let cfg = file(&jp, "/etc/rancher/k3s/config.yaml");
    assert!(
        cfg.contains("server: https://10.1.2.3:6443")
            || cfg.contains("server: \"https://10.1.2.3:6443\""),
        "{cfg}"
    );
    assert!(!cfg.contains("cluster-init"), "{cfg}");
    let reg = file(&jp, "/etc/rancher/k3s/registries.yaml");
    assert!(
        reg.contains("https://10.1.2.3:5443") && reg.contains("ca_file"),
        "{reg}"
    );
    assert!(jp.to_string().contains("\"agent\""), "{jp}");
    assert!(!t.path().join("node").exists(), "plan --join wrote files");

    let mut c = Command::new(&bundle);
    c.arg("--root").arg(&root).args(["reset", "-q", "--yes"]);
    run_ok(c);
    let left: Vec<_> = walk(&root);
    assert!(left.is_empty(), "reset left {left:?}");
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}
