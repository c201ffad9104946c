//! Installing a runtime-only bundle into a `--root` sandbox with the real containerd and
//! runc from the bundle's payload: pull by original names through ferry's hosts.toml,
//! run, survive `kill -9` at any phase, `plan` = what is written, `reset` leaves nothing.

use ferry_tests::bins::{build_kubefile, run_fail, run_ok, workspace};
use ferry_tests::registry::free_port;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The demo images (`dir/layout`, tags a and b) and a containerd payload from this
/// machine's packages (`dir/payload`).
pub fn images_and_payload(dir: &Path) {
    run_ok(
        Command::new("bash")
            .arg(workspace().join("scripts/demo-images.sh"))
            .arg(dir),
    );
    run_ok(
        Command::new("bash")
            .arg(workspace().join("scripts/containerd-payload.sh"))
            .arg(dir.join("payload")),
    );
}

/// A runtime-only bundle: containerd payload from this machine's packages, and two images
/// with the same repository path on different hosts and different content.
pub fn runtime_bundle(dir: &Path) -> PathBuf {
    images_and_payload(dir);
    std::fs::write(dir.join("hello.sh"), "#!/bin/sh\necho hi\n").unwrap();
    let payload = format!("containerd={}", dir.join("payload").display());
    build_kubefile(
        dir,
        "FROM scratch\nLABEL name=rt\n\
         IMAGE oci:layout:a AS docker.io/library/app:1\n\
         IMAGE oci:layout:b AS quay.io/library/app:1\n\
         COPY hello.sh /opt/demo/hello.sh\n",
        "delivery.run",
        &["--payload", &payload],
    )
}

/// A host sandbox: its own root and registry port; reset on drop so no service outlives a test.
pub struct Sandbox {
    pub bundle: PathBuf,
    pub root: PathBuf,
    pub port: u16,
    pub join_port: u16,
}

impl Sandbox {
    pub fn new(bundle: &Path, root: PathBuf) -> Sandbox {
        Sandbox {
            bundle: bundle.to_path_buf(),
            root,
            port: free_port().unwrap(),
            join_port: free_port().unwrap(),
        }
    }
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bundle);
        c.arg("--root")
            .arg(&self.root)
            .arg("--registry-port")
            .arg(self.port.to_string())
            .arg("--join-port")
            .arg(self.join_port.to_string())
            .arg("--node-ip")
            .arg("127.0.0.1")
            .arg("--yes");
        c
    }
    pub fn ctr(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.root.join("opt/ferry/bin/ctr"));
        c.arg("--address")
            .arg(self.root.join("run/ferry/containerd/containerd.sock"))
            .args(args);
        c
    }
    /// `status --output json`, which must say the install is healthy.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&run_ok(self.cmd().args(["status", "--output", "json"]))).unwrap()
    }
    /// Pulls `name` through the hosts dir ferry wrote and runs it; returns its output.
    pub fn pull_and_run(&self, name: &str, id: &str) -> String {
        let hosts = self.root.join("etc/ferry/containerd/certs.d");
        run_ok(self.ctr(&[
            "images",
            "pull",
            "--hosts-dir",
            hosts.to_str().unwrap(),
            name,
        ]));
        run_ok(self.ctr(&["run", "--rm", name, id]))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.cmd().args(["reset", "-q"]).output();
    }
}

fn files_under(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else {
                out.insert(p);
            }
        }
    }
    out
}

#[test]
fn runtime_only_install_pulls_by_original_name_and_resets_clean() {
    let t = tempfile::tempdir().unwrap();
    let bundle = runtime_bundle(t.path());
    let sb = Sandbox::new(&bundle, t.path().join("root"));

    let plan: serde_json::Value =
        serde_json::from_str(&run_ok(sb.cmd().args(["plan", "--output", "json"]))).unwrap();
    assert!(
        !sb.root.exists() || files_under(&sb.root).is_empty(),
        "plan wrote files"
    );
    let planned: BTreeSet<PathBuf> = ferry_tests::plan::written_paths(&plan, &sb.root)
        .into_iter()
        .collect();
    assert!(
        plan.to_string().contains("containerd/config.toml"),
        "{plan}"
    );
    assert!(ferry_tests::plan::steps(&plan)
        .any(|s| s["step"] == "service" && s["name"] == "containerd"));

    let out = run_ok(sb.cmd().arg("-q"));
    assert!(
        out.contains(" join 127.0.0.1:") && out.contains("--token "),
        "{out}"
    );

    // Same path, two hosts, two contents: each name gets its own.
    assert_eq!(
        sb.pull_and_run("docker.io/library/app:1", "a").trim(),
        "hello from image a"
    );
    assert_eq!(
        sb.pull_and_run("quay.io/library/app:1", "b").trim(),
        "hello from image b"
    );

    // skopeo copies from the same registry (full-path form: skopeo cannot send ?ns=).
    let copy = t.path().join("copied");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false"])
            .arg(format!(
                "docker://127.0.0.1:{}/quay.io/library/app:1",
                sb.port
            ))
            .arg(format!("oci:{}:x", copy.display())),
    );
    assert!(copy.join("index.json").exists());

    let st = sb.status();
    assert_eq!(
        st["containerd"]["address"],
        sb.root
            .join("run/ferry/containerd/containerd.sock")
            .display()
            .to_string()
    );
    assert_eq!(
        st["containerd"]["hosts_dir"],
        sb.root
            .join("etc/ferry/containerd/certs.d")
            .display()
            .to_string()
    );
    let join = st["join_command"].as_str().unwrap();
    assert!(
        join.starts_with(&format!(
            "{} join 127.0.0.1:{} --token K10",
            sb.bundle.display(),
            sb.join_port
        )),
        "{join}"
    );
    assert_eq!(st["registry"]["healthy"], true);
    assert_eq!(
        std::fs::read_to_string(sb.root.join("opt/demo/hello.sh")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );

    // Every file the plan names was written; every file written outside runtime state was planned.
    let written = files_under(&sb.root);
    for p in &planned {
        assert!(written.contains(p), "planned {} not written", p.display());
    }
    let state = [
        "var/lib/ferry/containerd",
        "run/ferry",
        "var/log/ferry",
        "var/lib/ferry/journal.json",
        "var/lib/ferry/registry-misses.json",
        "var/lib/ferry/journal.json.prev",
        "run/ferry.lock",
    ];
    for w in &written {
        let rel = w.strip_prefix(&sb.root).unwrap();
        if state.iter().any(|s| rel.starts_with(s)) {
            continue;
        }
        assert!(
            planned.contains(w),
            "{} written but not in the plan",
            w.display()
        );
    }

    // Without a terminal to ask on and without --yes, reset refuses and changes nothing.
    let mut no = Command::new(&sb.bundle);
    no.arg("--root").arg(&sb.root).arg("reset");
    let msg = run_fail(&mut no);
    assert!(msg.contains("pass --yes"), "{msg}");
    assert_eq!(sb.status()["installed"], true);

    run_ok(sb.cmd().args(["uninstall", "-q"]));
    let left = files_under(&sb.root);
    assert!(left.is_empty(), "reset left files: {left:?}");
    let st: serde_json::Value = serde_json::from_slice(
        &sb.cmd()
            .args(["status", "--output", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(st["installed"], false);
}

#[test]
fn an_install_killed_at_any_phase_resumes_and_converges() {
    let t = tempfile::tempdir().unwrap();
    let bundle = runtime_bundle(t.path());
    let sb = Sandbox::new(&bundle, t.path().join("root"));
    // kill -9 at several instants of the install (staging, files, services), re-running
    // the install after each; the engine's unit tests cover every step boundary.
    for ms in [20, 60, 150, 400, 900] {
        let mut child = sb.cmd().arg("-q").spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    run_ok(sb.cmd().arg("-q"));
    let st = sb.status();
    let done: Vec<&str> = st["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "done")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in ["stage", "files", "registry", "runtime", "health"] {
        assert!(done.contains(&p), "phase {p} not done: {st}");
    }
    assert_eq!(
        sb.pull_and_run("docker.io/library/app:1", "k").trim(),
        "hello from image a"
    );
    // A second full run is a no-op that still succeeds.
    run_ok(sb.cmd().arg("-q"));
}

#[test]
fn failing_preflight_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let bundle = runtime_bundle(t.path());
    let sb = Sandbox::new(&bundle, t.path().join("root"));
    let busy = std::net::TcpListener::bind(("0.0.0.0", sb.port)).unwrap();
    let msg = run_fail(sb.cmd());
    assert!(
        msg.contains("preflight failed: ports") && msg.contains("nothing was changed"),
        "{msg}"
    );
    assert!(!sb.root.exists() || files_under(&sb.root).is_empty());
    let json: serde_json::Value = serde_json::from_slice(
        &sb.cmd()
            .args(["preflight", "--output", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "ports" && c["status"] == "fail"),
        "{json}"
    );
    drop(busy);
}
