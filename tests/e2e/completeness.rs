//! Issue 12: every image the cluster will ask for is carried, and the site names any that
//! is not.
//!
//! Build side: an operator-style chart (a custom resource's `spec.image`, a
//! `--config-reloader=<ref>` flag, an env var holding a reference, a sidecar composed from
//! istio-style `hub`/`image`/`tag` values split across maps, a helm test hook, and bare
//! words) is built against a real Distribution registry that holds exactly the real
//! references (behind `--registry-mirror`s, as a site mirror would). The bundle must carry
//! exactly those and drop the bare words, with every report saying why.
//!
//! Site side: a pull of an image the bundle lacks, through the installed registry by real
//! clients (containerd's `ctr` with `?ns=`, skopeo with the host in the path), shows up in
//! `status --output json` with its host, count, times and client.

use super::install::{runtime_bundle, Sandbox};
use ferry_tests::bins::{ferry, run, run_fail, run_ok, write_file};
use ferry_tests::images::ImageBuilder;
use ferry_tests::registry::Registry;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The operator chart. `pilot` (a custom resource field) and `proxyv2` (the mesh's plain
/// image name) are bare words that exist on no registry.
fn operator_chart(dir: &Path) {
    write_file(
        &dir.join("Chart.yaml"),
        "apiVersion: v2\nname: operator\nversion: 0.1.0\n",
    );
    write_file(
        &dir.join("values.yaml"),
        "operator:\n  image: quay.io/acme/operator:1.0\n\
         reloader: quay.io/acme/config-reloader:0.7\n\
         sidecar: ghcr.io/acme/sidecar:2.1\n\
         monitor:\n  image: quay.io/acme/monitor:3.0\n\
         mesh:\n  hub: docker.io/acme\n  tag: \"1.22\"\n  proxy: proxyv2\n\
         test:\n  image: docker.io/library/tester:1\n",
    );
    write_file(
        &dir.join("templates/deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: operator\nspec:\n  selector: {matchLabels: {app: operator}}\n  template:\n    metadata: {labels: {app: operator}}\n    spec:\n      containers:\n        - name: operator\n          image: {{ .Values.operator.image }}\n          args:\n            - --config-reloader={{ .Values.reloader }}\n            - --log-level=info\n          env:\n            - name: SIDECAR_IMAGE\n              value: {{ .Values.sidecar }}\n            - name: WATCH_NAMESPACE\n              value: default\n",
    );
    write_file(
        &dir.join("templates/monitor.yaml"),
        "apiVersion: acme.io/v1\nkind: Monitor\nmetadata:\n  name: main\nspec:\n  image: {{ .Values.monitor.image }}\n  replicas: 2\n  exporter:\n    image: pilot\n",
    );
    // istio-style: the control plane builds its sidecar from global.hub, global.proxy.image
    // and global.tag, handed over as JSON in a ConfigMap.
    write_file(
        &dir.join("templates/mesh.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mesh-injector\ndata:\n  values: |-\n{{ dict \"global\" (dict \"hub\" .Values.mesh.hub \"tag\" .Values.mesh.tag \"proxy\" (dict \"image\" .Values.mesh.proxy)) | toPrettyJson | indent 4 }}\n",
    );
    write_file(
        &dir.join("templates/tests/test.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: operator-test\n  annotations:\n    helm.sh/hook: test\nspec:\n  restartPolicy: Never\n  containers:\n    - name: test\n      image: {{ .Values.test.image }}\n",
    );
}

/// The references that exist, as `(mirror path, name)`.
const REAL: &[(&str, &str)] = &[
    ("quay/acme/operator:1.0", "quay.io/acme/operator:1.0"),
    (
        "quay/acme/config-reloader:0.7",
        "quay.io/acme/config-reloader:0.7",
    ),
    ("ghcr/acme/sidecar:2.1", "ghcr.io/acme/sidecar:2.1"),
    ("quay/acme/monitor:3.0", "quay.io/acme/monitor:3.0"),
    ("hub/acme/proxyv2:1.22", "docker.io/acme/proxyv2:1.22"),
    ("hub/library/tester:1", "docker.io/library/tester:1"),
];

struct Fixture {
    dir: tempfile::TempDir,
    reg: Registry,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::start().unwrap();
        let layout = dir.path().join("layout");
        for (path, name) in REAL {
            let tag = name.rsplit('/').next().unwrap().replace([':', '.'], "-");
            ImageBuilder::new(&tag)
                .file("/who", name)
                .build(&layout)
                .unwrap()
                .push(reg.host(), path, None)
                .unwrap();
        }
        operator_chart(&dir.path().join("chart"));
        std::fs::write(
            dir.path().join("Kubefile"),
            "FROM scratch\nAPP operator ./chart\n",
        )
        .unwrap();
        Fixture { dir, reg }
    }

    /// `ferry <cmd>` reaching the registry through mirrors of the three upstream hosts.
    fn ferry(&self, cmd: &str) -> Command {
        let host = self.reg.host();
        let mut c = Command::new(ferry());
        c.arg(cmd)
            .arg("-f")
            .arg(self.dir.path().join("Kubefile"))
            .args(["--insecure-registry", host])
            .args(["--registry-mirror", &format!("docker.io={host}/hub")])
            .args(["--registry-mirror", &format!("quay.io={host}/quay")])
            .args(["--registry-mirror", &format!("ghcr.io={host}/ghcr")]);
        c
    }

    fn build(&self, out: &str, extra: &[&str]) -> Command {
        let mut c = self.ferry("build");
        c.args(["--no-payload", "-o"])
            .arg(self.dir.path().join(out))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(extra);
        c
    }

    fn bundle_images(&self, out: &str) -> BTreeSet<String> {
        let info: Value = serde_json::from_str(&run_ok(
            Command::new(self.dir.path().join(out)).args(["--info", "--output", "json"]),
        ))
        .unwrap();
        info["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    }
}

fn names(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn real() -> BTreeSet<String> {
    REAL.iter().map(|(_, n)| n.to_string()).collect()
}

fn entry<'a>(report: &'a Value, image: &str) -> &'a Value {
    report["discovered"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["image"] == image)
        .unwrap_or_else(|| panic!("{image} not in {report}"))
}

#[test]
fn operator_chart_carries_exactly_the_real_references_and_drops_bare_words() {
    let f = Fixture::new();
    let report: Value =
        serde_json::from_str(&run_ok(f.build("one.run", &["-q", "--output", "json"]))).unwrap();
    assert_eq!(f.bundle_images("one.run"), real(), "{report:#}");

    // Each image says why it is carried; each dropped word says why it is not.
    for (image, status, clue) in [
        ("quay.io/acme/operator:1.0", "certain", "pod-template"),
        ("docker.io/library/tester:1", "certain", "pod-template"),
        ("quay.io/acme/monitor:3.0", "verified", "key"),
        ("quay.io/acme/config-reloader:0.7", "verified", "flag"),
        ("ghcr.io/acme/sidecar:2.1", "verified", "env"),
        ("docker.io/acme/proxyv2:1.22", "verified", "composed"),
    ] {
        let e = entry(&report, image);
        assert_eq!(e["status"], status, "{e:#}");
        assert_eq!(e["origins"][0]["clue"]["type"], clue, "{e:#}");
    }
    let tester = entry(&report, "docker.io/library/tester:1");
    assert_eq!(tester["hooks"], serde_json::json!(["test"]));
    let proxy = entry(&report, "docker.io/acme/proxyv2:1.22");
    assert_eq!(
        proxy["origins"][0]["field"],
        "data.values#global.proxy.image"
    );
    for bare in [
        "docker.io/library/pilot:latest",
        "docker.io/library/proxyv2:latest",
    ] {
        let e = entry(&report, bare);
        assert_eq!(e["status"], "dropped", "{e:#}");
        let reason = e["reason"].as_str().unwrap();
        assert!(
            reason.contains("not found on") && reason.contains(f.reg.host()),
            "{reason}"
        );
    }
    assert_eq!(report["discovery"]["certain"], 2);
    assert_eq!(report["discovery"]["verified"], 4);
    assert_eq!(report["discovery"]["dropped"], 2);
    assert_eq!(report["discovery"]["hooks"], 1);
    assert_eq!(report["discovery"]["checks"], 6);

    // The text report of the build says the same.
    let text = run_ok(f.build("text.run", &[]));
    assert!(
        text.contains("apps: 2 certain images, 4 verified candidates carried, 1 carried from helm hooks/tests, 2 candidates dropped"),
        "{text}"
    );
    assert!(
        text.contains("carried  docker.io/library/tester:1")
            && text.contains("[certain, helm hook test]"),
        "{text}"
    );
    assert!(
        text.contains("dropped  docker.io/library/pilot:latest")
            && text.contains("spec.exporter.image"),
        "{text}"
    );

    // `ferry images` lists what the build carries, and why.
    let listing = run_ok(f.ferry("images"));
    let carried: BTreeSet<String> = listing
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert_eq!(carried, real(), "{listing}");
    for (image, label) in [
        ("quay.io/acme/monitor:3.0", "[verified candidate]"),
        ("docker.io/library/tester:1", "[certain, helm hook test]"),
        ("quay.io/acme/operator:1.0", "[certain]"),
    ] {
        let line = listing.lines().find(|l| l.starts_with(image)).unwrap();
        assert!(line.ends_with(label), "{line}");
    }
    let dropped = listing.split("dropped candidates").nth(1).unwrap();
    assert!(
        dropped.contains("docker.io/library/pilot:latest") && dropped.contains("not found on"),
        "{listing}"
    );
    let json: Value =
        serde_json::from_str(&run_ok(f.ferry("images").args(["--output", "json"]))).unwrap();
    assert_eq!(
        json["images"]["quay.io/acme/monitor:3.0"]["status"],
        "verified"
    );
    assert_eq!(
        json["images"]["docker.io/library/tester:1"]["hooks"][0],
        "test"
    );
    assert!(
        json["dropped"]["docker.io/library/proxyv2:latest"]["reason"]
            .as_str()
            .unwrap()
            .contains("not found")
    );

    let why = run_ok(
        f.ferry("images")
            .args(["--why", "quay.io/acme/config-reloader:0.7"]),
    );
    assert!(
        why.starts_with("quay.io/acme/config-reloader:0.7: verified candidate")
            && why.contains("flag --config-reloader")
            && why.contains("templates/deployment.yaml")
            && why.contains("registry: exists on"),
        "{why}"
    );
    let why = run_ok(f.ferry("images").args(["--why", "pilot"]));
    assert!(
        why.contains("dropped candidate") && why.contains("Monitor main spec.exporter.image"),
        "{why}"
    );
}

#[test]
fn candidates_none_all_and_strict() {
    let f = Fixture::new();
    // none: only what pod templates name.
    run_ok(f.build("none.run", &["-q", "--candidates", "none"]));
    assert_eq!(
        f.bundle_images("none.run"),
        names(&["quay.io/acme/operator:1.0", "docker.io/library/tester:1"])
    );
    // --strict refuses that, naming every existing reference left behind.
    let msg = run_fail(f.build("strict.run", &["-q", "--candidates", "none", "--strict"]));
    assert!(
        msg.contains("--strict: 4 discovered image(s) exist but are not carried"),
        "{msg}"
    );
    for image in [
        "quay.io/acme/monitor:3.0",
        "quay.io/acme/config-reloader:0.7",
        "ghcr.io/acme/sidecar:2.1",
        "docker.io/acme/proxyv2:1.22",
    ] {
        assert!(msg.contains(image), "{image}: {msg}");
    }
    assert!(!msg.contains("pilot"), "{msg}");
    assert!(!f.dir.path().join("strict.run").exists());
    // The default carries everything that exists, so --strict passes.
    run_ok(f.build("verified.run", &["-q", "--strict"]));
    assert_eq!(f.bundle_images("verified.run"), real());
    // all (and its old name): candidates unasked, bare words still asked and dropped.
    let report: Value = serde_json::from_str(&run_ok(f.build(
        "all.run",
        &["-q", "--output", "json", "--include-candidates"],
    )))
    .unwrap();
    assert_eq!(f.bundle_images("all.run"), real());
    assert_eq!(
        entry(&report, "quay.io/acme/monitor:3.0")["status"],
        "unverified"
    );
    assert_eq!(
        entry(&report, "docker.io/library/pilot:latest")["status"],
        "dropped"
    );
    assert_eq!(report["discovery"]["checks"], 2);
}

/// A candidate its registry has, but not for the bundle's platform: verified, then not
/// carried; the build says so, and --strict refuses it.
#[test]
fn a_verified_candidate_that_cannot_be_carried_is_named() {
    let t = tempfile::tempdir().unwrap();
    let reg = Registry::start().unwrap();
    ImageBuilder::new("arm")
        .platform("linux/arm64")
        .build(&t.path().join("layout"))
        .unwrap()
        .push(reg.host(), "acme/armonly:1", None)
        .unwrap();
    let host = reg.host();
    write_file(
        &t.path().join("app/operator.yaml"),
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: op\ndata:\n  HELPER_IMAGE: {host}/acme/armonly:1\n"),
    );
    write_file(&t.path().join("Kubefile"), "FROM scratch\nAPP op ./app\n");
    let build = |out: &str, strict: bool| {
        let mut c = Command::new(ferry());
        c.args(["build", "--no-payload", "--output", "json", "-f"])
            .arg(t.path().join("Kubefile"))
            .arg("-o")
            .arg(t.path().join(out))
            .args(["--insecure-registry", host])
            .arg("--cache-dir")
            .arg(t.path().join("cache"));
        if strict {
            c.arg("--strict");
        }
        c
    };
    let out = run(build("lenient.run", false));
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = entry(&report, &format!("{host}/acme/armonly:1"));
    assert_eq!(e["status"], "failed", "{e:#}");
    assert!(
        e["reason"].as_str().unwrap().contains("linux/arm64"),
        "{e:#}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exist but are not carried"), "{stderr}");
    let msg = run_fail(build("strict.run", true));
    assert!(
        msg.contains("--strict: 1 discovered image(s)") && msg.contains("acme/armonly:1"),
        "{msg}"
    );
}

/// Polls `status --output json` until `missing_images.requests` holds `want` (the registry
/// writes its record at most once a second).
fn wait_for_misses(sb: &Sandbox, want: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = run(sb.cmd().args(["status", "--output", "json"]));
        let st: Value = serde_json::from_slice(&out.stdout).unwrap();
        let have: Vec<&str> = st["missing_images"]["requests"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["image"].as_str()).collect())
            .unwrap_or_default();
        if want.iter().all(|w| have.contains(w)) {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "misses {want:?} not in status: {st:#}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn the_site_names_every_image_it_asked_for_and_the_bundle_lacks() {
    let t = tempfile::tempdir().unwrap();
    let bundle = runtime_bundle(t.path());
    let sb = Sandbox::new(&bundle, t.path().join("root"));
    run_ok(sb.cmd().arg("-q"));
    assert_eq!(
        sb.status()["missing_images"]["requests"],
        serde_json::json!([]),
        "nothing missed yet"
    );

    // containerd asks with ?ns=docker.io; the pull fails (no upstream either).
    let hosts = sb.root.join("etc/ferry/containerd/certs.d");
    let out = run(sb.ctr(&[
        "images",
        "pull",
        "--hosts-dir",
        hosts.to_str().unwrap(),
        "docker.io/library/missing:1",
    ]));
    assert!(!out.status.success(), "{out:?}");
    // skopeo names the host in the path; a tag the bundle lacks of an image it has.
    let out = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--retry-times=0",
        &format!("docker://127.0.0.1:{}/quay.io/library/app:2", sb.port),
    ]));
    assert!(!out.status.success(), "{out:?}");

    let st = wait_for_misses(
        &sb,
        &["docker.io/library/missing:1", "quay.io/library/app:2"],
    );
    let requests = st["missing_images"]["requests"].as_array().unwrap();
    let missing = requests
        .iter()
        .find(|m| m["image"] == "docker.io/library/missing:1")
        .unwrap();
    assert_eq!(missing["host"], "docker.io");
    assert_eq!(missing["repository"], "library/missing");
    assert_eq!(missing["reference"], "1");
    assert_eq!(missing["asked"], "manifest");
    assert_eq!(missing["error"], "NAME_UNKNOWN");
    assert!(missing["count"].as_u64().unwrap() >= 1, "{missing}");
    assert_eq!(missing["clients"], serde_json::json!(["127.0.0.1"]));
    assert!(missing["first_seen"].as_u64().unwrap() <= missing["last_seen"].as_u64().unwrap());
    let tag = requests
        .iter()
        .find(|m| m["image"] == "quay.io/library/app:2")
        .unwrap();
    assert_eq!(tag["error"], "MANIFEST_UNKNOWN");
    assert_eq!(st["missing_images"]["overflowed"], 0);
    // Missed images are listed, not counted as unhealthy by themselves.
    assert_eq!(st["healthy"], true, "{st:#}");

    let text = run_ok(sb.cmd().arg("status"));
    let section = text
        .split("not in bundle (")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        section.contains("docker.io/library/missing:1: ") && section.contains("from 127.0.0.1"),
        "{text}"
    );
}
