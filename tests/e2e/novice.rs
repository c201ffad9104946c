//! Safe in a novice's hands (issue #20): each test replays one way an operator at a site
//! was misled or could lose something, and checks what ferry does now.

use crate::install::{runtime_bundle, Sandbox};
use ferry_tests::bins::{build_kubefile, run, run_fail, run_ok, workspace};
use ferry_tests::registry::free_port;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `cmd` with a terminal on stdin (via `script`), answering `answer`.
fn on_a_terminal(cmd: &str, answer: &str) -> std::process::Output {
    let mut c = Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    c.wait_with_output().unwrap()
}

#[test]
fn reset_asks_and_keeps_the_hosts_own_files() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("hosts.site"), "10.9.9.9 plant-7\n").unwrap();
    run_ok(
        Command::new("bash")
            .arg(workspace().join("scripts/demo-images.sh"))
            .arg(t.path()),
    );
    run_ok(
        Command::new("bash")
            .arg(workspace().join("scripts/containerd-payload.sh"))
            .arg(t.path().join("payload")),
    );
    let payload = format!("containerd={}", t.path().join("payload").display());
    let bundle = build_kubefile(
        t.path(),
        "FROM scratch\nLABEL name=site\nIMAGE oci:layout:a AS docker.io/library/app:1\n\
         COPY hosts.site /etc/hosts\n",
        "delivery.run",
        &["--payload", &payload],
    );
    let sb = Sandbox::new(&bundle, t.path().join("root"));
    std::fs::create_dir_all(sb.root.join("etc")).unwrap();
    std::fs::write(sb.root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();

    // plan says that a host file is replaced and that reset puts it back.
    let plan = run_ok(sb.cmd().arg("plan"));
    assert!(
        plan.contains("write /etc/hosts (mode 644) (REPLACES an existing host file"),
        "{plan}"
    );
    run_ok(sb.cmd().arg("-q"));
    assert_eq!(
        std::fs::read_to_string(sb.root.join("etc/hosts")).unwrap(),
        "10.9.9.9 plant-7\n"
    );

    // On a terminal, reset asks; "n" keeps everything.
    let root = sb.root.display().to_string();
    let out = on_a_terminal(&format!("{} --root {root} reset", bundle.display()), "n\n");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not confirmed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(sb.status()["installed"], true);

    // "y" resets, and the site's own /etc/hosts is back.
    let out = on_a_terminal(
        &format!("{} --root {root} uninstall", bundle.display()),
        "y\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        std::fs::read_to_string(sb.root.join("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
}

#[test]
fn a_bundle_without_runtime_uses_the_hosts_containerd() {
    let t = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("bash")
            .arg(workspace().join("scripts/demo-images.sh"))
            .arg(t.path()),
    );
    let bundle = build_kubefile(
        t.path(),
        "FROM scratch\nLABEL name=apps\nIMAGE oci:layout:a AS docker.io/library/app:1\n",
        "apps.run",
        &["--no-payload"],
    );
    let root = t.path().join("root");
    let port = free_port().unwrap();
    let join_port = free_port().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = Command::new(&bundle);
        c.arg("--root").arg(&root).args([
            "--registry-port",
            &port.to_string(),
            "--join-port",
            &join_port.to_string(),
            "--node-ip",
            "127.0.0.1",
            "--yes",
        ]);
        c.args(args);
        c
    };
    // No containerd on this "host": refused before anything is written.
    let msg = run_fail(cmd(&["-q"]));
    assert!(
        msg.contains("carries no container runtime") && msg.contains("nothing was changed"),
        "{msg}"
    );
    assert!(!root.join("var/lib/ferry").exists());

    // The host runs its own containerd (the real one, with its state under the root).
    let c = HostContainerd::start(&root);
    let plan = run_ok(cmd(&["plan"]));
    assert!(
        plan.contains("the host's containerd")
            && plan.contains("/etc/containerd/certs.d/docker.io/hosts.toml"),
        "{plan}"
    );
    run_ok(cmd(&["-q"]));
    run_ok(
        Command::new("ctr")
            .arg("--address")
            .arg(root.join("run/containerd/containerd.sock"))
            .args(["images", "pull", "--hosts-dir"])
            .arg(root.join("etc/containerd/certs.d"))
            .arg("docker.io/library/app:1"),
    );
    run_ok(cmd(&["reset", "-q"]));
    assert!(!root.join("etc/containerd/certs.d/docker.io").exists());
    drop(c);
}

/// A containerd of the host's own (Debian's), with its socket and state under `root`.
struct HostContainerd {
    child: std::process::Child,
}

impl HostContainerd {
    fn start(root: &Path) -> HostContainerd {
        for (dir, bin) in [("usr/bin", "ctr"), ("usr/bin", "containerd")] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            std::os::unix::fs::symlink(which(bin), root.join(dir).join(bin)).unwrap();
        }
        let cfg = root.join("etc/containerd/config.toml");
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        std::fs::write(
            &cfg,
            format!(
                "version = 2\nroot = \"{r}/var/lib/containerd\"\nstate = \"{r}/run/containerd\"\n\
                 [grpc]\n  address = \"{r}/run/containerd/containerd.sock\"\n",
                r = root.display()
            ),
        )
        .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let sock = root.join("run/containerd/containerd.sock");
        for _ in 0..100 {
            if sock.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(sock.exists(), "containerd did not start");
        HostContainerd { child }
    }
}

impl Drop for HostContainerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(bin: &str) -> String {
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {bin}")),
    )
    .trim()
    .to_string()
}

#[test]
fn a_failing_service_is_named_with_its_log_and_status_says_unhealthy() {
    let t = tempfile::tempdir().unwrap();
    let bundle = runtime_bundle(t.path());
    let sb = Sandbox::new(&bundle, t.path().join("root"));
    // Something else holds the registry port; the operator skips the check that says so.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", sb.port)).unwrap();
    let msg = run_fail(
        sb.cmd()
            .args(["-q", "--skip-preflight", "ports", "--wait-timeout", "4"]),
    );
    assert!(
        msg.contains("not healthy after 4.0s")
            && msg.contains("registry.log")
            && msg.contains("in use"),
        "{msg}"
    );
    let st = sb
        .cmd()
        .args(["status", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(4), "status must say unhealthy");
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["healthy"], false);
    let reg = st["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "registry")
        .unwrap();
    assert_ne!(reg["state"], "running", "{reg}");
    // While one install waits, a second one on the same host is refused, not mixed in.
    // The first has the lock once its run is in the log (it logs right after taking it).
    let log_path = sb.root.join("var/log/ferry/ferry.log");
    let runs_logged = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("install of ") && l.contains(") from "))
            .count()
    };
    let before = runs_logged();
    let mut first = sb
        .cmd()
        .args(["-q", "--skip-preflight", "ports", "--wait-timeout", "6"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = std::time::Instant::now();
    while runs_logged() == before {
        assert!(
            waiting.elapsed() < std::time::Duration::from_secs(30),
            "the first install never logged its run"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let msg = run_fail(sb.cmd().args(["-q", "--skip-preflight", "ports"]));
    assert!(
        msg.contains("another ferry install, join or reset is running")
            && msg.contains(&format!("held by pid {}", first.id())),
        "the refusal names the run that holds the host: {msg}"
    );
    let _ = first.wait();
    drop(squatter);
    // The log is plain text (no colour codes) and says where the install stopped.
    let log = std::fs::read_to_string(sb.root.join("var/log/ferry/ferry.log")).unwrap();
    assert!(
        log.contains("==> health") && !log.contains('\u{1b}'),
        "{log}"
    );
}

#[test]
fn impossible_settings_are_refused_naming_the_flag() {
    let t = tempfile::tempdir().unwrap();
    let bundle = build_kubefile(
        t.path(),
        "FROM scratch\nLABEL name=x\nENV A=b\nRUN true\n",
        "x.run",
        &["--no-payload"],
    );
    let msg = run_fail(Command::new(&bundle).args(["--node-ip", "garbage", "plan"]));
    assert!(
        msg.contains("--node-ip") && msg.contains("garbage"),
        "{msg}"
    );
    let out = run(Command::new(&bundle).args([
        "preflight",
        "--registry-port",
        "6111",
        "--join-port",
        "6111",
        "--output",
        "json",
    ]));
    assert_eq!(out.status.code(), Some(3));
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        checks
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "ports"
                && c["status"] == "fail"
                && c["detail"].as_str().unwrap().contains("two services")),
        "{checks}"
    );
    // --help documents the exit codes.
    let help = run_ok(Command::new(&bundle).arg("--help"));
    assert!(
        help.contains("Exit codes") && help.contains("4  installed but unhealthy"),
        "{help}"
    );
    // --info counts the same entries in text and JSON.
    let info: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new(&bundle).args(["--info", "--output", "json"]),
    ))
    .unwrap();
    let text = run_ok(Command::new(&bundle).arg("--info"));
    assert!(
        text.contains(&format!("{} entries", info["entries"])),
        "{text}\n{info}"
    );
}

#[test]
fn a_copy_cut_short_or_grown_says_so_with_both_sizes() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data.bin");
    run_ok(
        Command::new("head")
            .args(["-c", "3000000", "/dev/urandom"])
            .stdout(std::fs::File::create(&data).unwrap()),
    );
    let bundle = build_kubefile(
        t.path(),
        "FROM scratch\nLABEL name=cut\nCOPY data.bin /opt/data.bin\n",
        "delivery.run",
        &["--no-payload"],
    );
    let full = std::fs::metadata(&bundle).unwrap().len();
    // The build left a checksum file that standard tools check.
    run_ok(
        Command::new("sha256sum")
            .args(["-c", "delivery.run.sha256"])
            .current_dir(t.path()),
    );
    let stub = std::fs::metadata(ferry_tests::bins::installer())
        .unwrap()
        .len();
    let bytes = std::fs::read(&bundle).unwrap();
    let half = t.path().join("half.run");
    let cut = stub + 1_000_000;
    std::fs::write(&half, &bytes[..cut as usize]).unwrap();
    std::fs::set_permissions(&half, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for args in [vec!["--check"], vec!["--info"], vec!["plan"]] {
        let msg = run_fail(Command::new(&half).args(&args));
        assert!(
            msg.contains("half.run is cut short")
                && msg.contains(&format!("it has {cut} of the bundle's {full} bytes")),
            "{args:?}: {msg}"
        );
    }
    let grown = t.path().join("grown.run");
    let mut more = bytes.clone();
    more.extend_from_slice(b"trailing junk");
    std::fs::write(&grown, &more).unwrap();
    std::fs::set_permissions(&grown, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let msg = run_fail(Command::new(&grown).arg("--check"));
    assert!(msg.contains("13 bytes more"), "{msg}");
    // The bare installer (and a node's copy of it) is not mistaken for a cut bundle.
    let msg = run_fail(Command::new(ferry_tests::bins::installer()).arg("--info"));
    assert!(msg.contains("carries no bundle"), "{msg}");
}

#[test]
fn impossible_kubefiles_are_refused_at_build_naming_the_line() {
    let t = tempfile::tempdir().unwrap();
    let try_build = |kubefile: &str, extra: &[&str]| {
        std::fs::write(t.path().join("Kubefile"), kubefile).unwrap();
        run_fail(
            Command::new(ferry_tests::bins::ferry())
                .args(["build", "-q", "-f"])
                .arg(t.path().join("Kubefile"))
                .arg("-o")
                .arg(t.path().join("x.run"))
                .args(extra),
        )
    };
    let msg = try_build(
        "FROM scratch\nCLUSTER rke2 v1.30.1+rke2r1\n",
        &["--no-payload"],
    );
    assert!(
        msg.contains("Kubefile:2") && msg.contains("k3s clusters only"),
        "{msg}"
    );
    let msg = try_build("FROM scratch\n# nothing else\n", &["--no-payload"]);
    assert!(msg.contains("nothing to deliver"), "{msg}");
    let msg = try_build(
        "FROM scratch\nLABEL name=x\nRUN true\n",
        &["--no-payload", "--platform", "linux/arm64", "--installer"],
    );
    assert!(msg.contains("--installer"), "{msg}");
    std::fs::write(
        t.path().join("Kubefile"),
        "FROM scratch\nLABEL name=x\nRUN true\n",
    )
    .unwrap();
    let msg = run_fail(
        Command::new(ferry_tests::bins::ferry())
            .args([
                "build",
                "-q",
                "--no-payload",
                "--platform",
                "linux/arm64",
                "-f",
            ])
            .arg(t.path().join("Kubefile"))
            .arg("-o")
            .arg(t.path().join("x.run"))
            .arg("--installer")
            .arg(ferry_tests::bins::installer()),
    );
    assert!(
        msg.contains("runs on x86-64") && msg.contains("linux/arm64"),
        "{msg}"
    );
    assert!(!t.path().join("x.run").exists());
}

#[test]
fn an_interrupted_build_leaves_nothing_behind() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("big.bin");
    run_ok(
        Command::new("head")
            .args(["-c", "400000000", "/dev/urandom"])
            .stdout(std::fs::File::create(&data).unwrap()),
    );
    std::fs::write(
        t.path().join("Kubefile"),
        "FROM scratch\nLABEL name=big\nCOPY big.bin /opt/big.bin\n",
    )
    .unwrap();
    let child = Command::new(ferry_tests::bins::ferry())
        .args(["build", "-q", "--no-payload", "-f"])
        .arg(t.path().join("Kubefile"))
        .arg("-o")
        .arg(t.path().join("big.run"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    nix_kill(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "big.bin" && n != "Kubefile")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn nix_kill(pid: u32, sig: &str) {
    run_ok(
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string()),
    );
}
