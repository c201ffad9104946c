//! Issue 3's acceptance path: a Kubefile with one APP (a chart with a subchart, split image
//! fields, a CronJob and an initContainer) builds through `--registry-mirror` from a real
//! Distribution registry into a bundle whose `--info` lists exactly the images
//! `helm template` renders, under their original names; a rebuild fetches no blob.

use ferry_tests::bins::{ferry, run_ok, write_file};
use ferry_tests::images::ImageBuilder;
use ferry_tests::registry::Registry;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn chart(dir: &Path) {
    write_file(&dir.join("Chart.yaml"), "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n  - name: cache\n    version: 0.1.0\n    condition: cache.enabled\n");
    write_file(
        &dir.join("values.yaml"),
        "image:\n  registry: docker.io\n  repository: library/web\n  tag: \"1.0\"\n\
         init:\n  image: quay.io/acme/init:2.0\n\
         report:\n  image: registry.k8s.io/acme/report:3.1\n\
         sidecar:\n  enabled: false\n  image: docker.io/library/never:9\n\
         cache:\n  enabled: true\n",
    );
    write_file(
        &dir.join("templates/deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n\
         \x20     initContainers:\n        - name: init\n          image: {{ .Values.init.image }}\n\
         \x20     containers:\n        - name: web\n          image: \"{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n\
         {{- if .Values.sidecar.enabled }}\n        - name: sidecar\n          image: {{ .Values.sidecar.image }}\n{{- end }}\n",
    );
    write_file(
        &dir.join("templates/cron.yaml"),
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: report\nspec:\n  schedule: \"0 * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n            - name: report\n              image: {{ .Values.report.image }}\n",
    );
    let sub = dir.join("charts/cache");
    write_file(
        &sub.join("Chart.yaml"),
        "apiVersion: v2\nname: cache\nversion: 0.1.0\n",
    );
    write_file(
        &sub.join("values.yaml"),
        "image:\n  repository: acme/cache\n  tag: \"7\"\n",
    );
    write_file(
        &sub.join("templates/sts.yaml"),
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: cache\nspec:\n  serviceName: cache\n  selector: {matchLabels: {app: cache}}\n  template:\n    metadata: {labels: {app: cache}}\n    spec:\n      containers:\n        - name: cache\n          image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n",
    );
}

/// Images `helm template` renders for the chart (the oracle), as written.
fn helm_images(chart: &Path) -> BTreeSet<String> {
    let out = run_ok(Command::new("helm").args(["template", "rel"]).arg(chart));
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("image:"))
        .map(|s| s.trim().trim_matches('"').to_string())
        .collect()
}

#[test]
fn chart_app_builds_through_mirror_with_exact_images_and_cached_rebuild() {
    let t = tempfile::tempdir().unwrap();
    let reg = Registry::start().unwrap();
    let layout = t.path().join("layout");
    // Mirror layout in the local registry: <mirror>/<upstream-host-alias>/<repo>.
    let pushes = [
        ("hub/library/web:1.0", "web"),
        ("quay/acme/init:2.0", "init"),
        ("k8s/acme/report:3.1", "report"),
        ("hub/acme/cache:7", "cache"),
    ];
    for (dest, tag) in pushes {
        let img = ImageBuilder::new(tag)
            .file("/who", tag)
            .build(&layout)
            .unwrap();
        img.push(reg.host(), dest, None).unwrap();
    }
    chart(&t.path().join("chart"));
    std::fs::write(t.path().join("Kubefile"), "FROM scratch\nAPP web ./chart\n").unwrap();

    let expected: BTreeSet<String> = helm_images(&t.path().join("chart"))
        .iter()
        .map(|i| {
            ferry_bundle::reference::Reference::parse(i)
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(expected.len(), 4, "oracle: {expected:?}");
    assert!(!expected.iter().any(|i| i.contains("never")));

    let host = reg.host().to_string();
    let build = |out: &str| {
        let mut c = Command::new(ferry());
        c.args(["build", "-q", "--output", "json", "--no-payload", "-f"])
            .arg(t.path().join("Kubefile"))
            .arg("-o")
            .arg(t.path().join(out))
            .arg("--cache-dir")
            .arg(t.path().join("cache"))
            .args(["--insecure-registry", &host])
            .args(["--registry-mirror", &format!("docker.io={host}/hub")])
            .args(["--registry-mirror", &format!("quay.io={host}/quay")])
            .args(["--registry-mirror", &format!("registry.k8s.io={host}/k8s")]);
        let r: serde_json::Value = serde_json::from_str(&run_ok(c)).unwrap();
        r
    };
    let first = build("one.run");
    assert!(
        first["pulled"]["blobs_fetched"].as_u64().unwrap() > 0,
        "{first}"
    );

    let info: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new(t.path().join("one.run")).args(["--info", "--output", "json"]),
    ))
    .unwrap();
    let got: BTreeSet<String> = info["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, expected, "bundle images differ from helm template's");
    assert_eq!(info["apps"][0]["name"], "web");
    assert_eq!(info["apps"][0]["kind"], "chart");
    run_ok(Command::new(t.path().join("one.run")).args(["--check", "-q"]));

    let second = build("two.run");
    assert_eq!(
        second["pulled"]["blobs_fetched"], 0,
        "rebuild fetched blobs again: {second}"
    );
    assert!(second["pulled"]["blobs_reused"].as_u64().unwrap() > 0);

    // `ferry images --why` names the template and field.
    let why = run_ok(
        Command::new(ferry())
            .args(["images", "-f"])
            .arg(t.path().join("Kubefile"))
            .args(["--why", "quay.io/acme/init:2.0"]),
    );
    assert!(
        why.contains("initContainers") && why.contains("deploy.yaml"),
        "{why}"
    );
}
