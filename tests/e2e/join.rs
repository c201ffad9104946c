//! Two hosts as network namespaces joined by a veth pair, each with its own `--root`, and
//! no route anywhere else (air-gapped): host A installs a runtime-only bundle; host B joins
//! with only the bare installer, and its containerd pulls `docker.io/library/app:1` by its
//! original name from A's registry over TLS with the pinned CA, and runs it. Wrong tokens,
//! a foreign CA and an unreachable master are refused with nothing written.

use crate::install::{runtime_bundle, Sandbox};
use ferry_tests::bins::{installer, run_fail, run_ok};
use std::path::Path;
use std::process::Command;

/// Two namespaces `a` and `b` on 10.77.<n>.1 and .2, removed on drop.
pub(crate) struct Net {
    pub a: String,
    pub b: String,
    pub n: u32,
}

impl Net {
    pub fn new() -> Net {
        Net::numbered(0)
    }
    /// Another pair of hosts (`i` apart), for tests that run at the same time.
    pub fn numbered(i: u32) -> Net {
        let n = std::process::id() % 200 + 20 + 17 * i;
        let (a, b) = (format!("ferry-a-{n}"), format!("ferry-b-{n}"));
        let ip = |args: &[&str]| run_ok(Command::new("ip").args(args));
        let _ = Command::new("ip").args(["netns", "del", &a]).output();
        let _ = Command::new("ip").args(["netns", "del", &b]).output();
        ip(&["netns", "add", &a]);
        ip(&["netns", "add", &b]);
        let (va, vb) = (format!("fva{n}"), format!("fvb{n}"));
        ip(&[
            "link", "add", &va, "netns", &a, "type", "veth", "peer", "name", &vb, "netns", &b,
        ]);
        for (ns, dev, addr) in [
            (&a, &va, format!("10.77.{n}.1/24")),
            (&b, &vb, format!("10.77.{n}.2/24")),
        ] {
            ip(&["-n", ns, "addr", "add", &addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        Net { a, b, n }
    }
    pub fn ip_a(&self) -> String {
        format!("10.77.{}.1", self.n)
    }
    /// Runs `prog` in namespace `ns`'s network only (`nsenter --net`): unlike
    /// `ip netns exec` it keeps the host's mounts, so /sys/fs/cgroup stays visible to the
    /// runtime, as on a real second machine.
    pub fn exec(&self, ns: &str, prog: &Path) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{ns}")).arg(prog);
        c
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
    }
}

pub(crate) fn files_under(p: &Path) -> usize {
    if !p.exists() {
        return 0;
    }
    walk(p)
}
fn walk(p: &Path) -> usize {
    std::fs::read_dir(p)
        .unwrap()
        .flatten()
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                walk(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// `program` run on host A of `net` as the master of sandbox `a` (its root, address and
/// ports, `--yes`).
pub(crate) fn on_master(net: &Net, a: &Sandbox, join_port: u16, program: &Path) -> Command {
    let mut c = net.exec(&net.a, program);
    c.arg("--root").arg(&a.root).args([
        "--node-ip",
        &net.ip_a(),
        "--registry-port",
        &a.port.to_string(),
        "--join-port",
        &join_port.to_string(),
        "--yes",
    ]);
    c
}

/// Installs `bundle` on host A of `net` (sandbox `a`, join port `join_port`); returns the
/// join token it printed and the master's address.
pub(crate) fn install_master(
    net: &Net,
    bundle: &Path,
    a: &Sandbox,
    join_port: u16,
) -> (String, String) {
    let mut c = on_master(net, a, join_port, bundle);
    c.arg("-q");
    let out = run_ok(c);
    let token = out
        .split("--token ")
        .nth(1)
        .expect("join command printed")
        .trim()
        .to_string();
    let master = format!("{}:{join_port}", net.ip_a());
    assert!(out.contains(&format!(" join {master} --token ")), "{out}");
    (token, master)
}

#[test]
fn node_joins_with_bare_installer_and_pulls_from_master_over_pinned_tls() {
    let t = tempfile::tempdir().unwrap();
    let bundle = runtime_bundle(t.path());
    let net = Net::new();
    let a = Sandbox::new(&bundle, t.path().join("host-a"));
    let root_b = t.path().join("host-b");
    let join_port = 5443;

    // Host A: full install inside its namespace.
    let (token, master) = install_master(&net, &bundle, &a, join_port);
    let on_a = |program: &Path, args: &[&str]| {
        let mut c = on_master(&net, &a, join_port, program);
        c.args(args);
        c
    };

    let bare = installer();
    let join = |tok: &str, m: &str| {
        let mut c = net.exec(&net.b, &bare);
        c.arg("--root").arg(&root_b).args([
            "--join",
            m,
            "--token",
            tok,
            "--yes",
            "-q",
            "--wait-timeout",
            "60",
        ]);
        c
    };
    // Wrong secret, foreign CA hash, unreachable master: clear errors, nothing written on B.
    let (hash, _) = token.trim_start_matches("K10").split_once("::").unwrap();
    let wrong_secret = format!("K10{hash}::{}", "0".repeat(64));
    let msg = run_fail(join(&wrong_secret, &master));
    assert!(msg.contains("rejected the token"), "{msg}");
    let wrong_ca = format!("K10{}::{}", "1".repeat(64), "0".repeat(64));
    let msg = run_fail(join(&wrong_ca, &master));
    assert!(msg.contains("refusing to trust it"), "{msg}");
    let msg = run_fail(join(&token, &format!("10.77.{}.9:{join_port}", net.n)));
    assert!(msg.contains("cannot reach the master"), "{msg}");
    assert_eq!(files_under(&root_b), 0, "a refused join wrote files");

    // The real join, with only the bare installer on B.
    run_ok(join(&token, &master));
    let b = Sandbox {
        bundle: bare.clone(),
        root: root_b.clone(),
        port: 0,
        join_port: 0,
    };
    // B's containerd pulls by the original name (through B's network: from A) and runs it.
    let pull_and_run_on_b = |id: &str| {
        let _ = b.ctr(&["images", "rm", "docker.io/library/app:1"]).output();
        let mut pull = net.exec(&net.b, &root_b.join("opt/ferry/bin/ctr"));
        pull.arg("--address")
            .arg(root_b.join("run/ferry/containerd/containerd.sock"))
            .args(["images", "pull", "--hosts-dir"])
            .arg(root_b.join("etc/ferry/containerd/certs.d"))
            .arg("docker.io/library/app:1");
        run_ok(pull);
        run_ok(b.ctr(&["run", "--rm", "docker.io/library/app:1", id]))
            .trim()
            .to_string()
    };
    assert_eq!(pull_and_run_on_b("j1"), "hello from image a");

    let mut st = net.exec(&net.b, &bare);
    st.arg("--root")
        .arg(&root_b)
        .args(["status", "--output", "json"]);
    let st: serde_json::Value = serde_json::from_str(&run_ok(st)).unwrap();
    assert_eq!(st["role"], "join");
    assert_eq!(st["registry"]["url"], format!("https://{master}"));
    assert_eq!(st["registry"]["healthy"], true);

    // Day two: the master upgrades to v2 (app:1 now has b's content); the node follows
    // with its own installer's `upgrade`, and pulls the new content under the same name.
    let payload = format!("containerd={}", t.path().join("payload").display());
    let v2 = ferry_tests::bins::build_kubefile(
        t.path(),
        "FROM scratch\nLABEL name=rt\nIMAGE oci:layout:b AS docker.io/library/app:1\n",
        "v2.run",
        &["--payload", &payload],
    );
    let out = ferry_tests::bins::run(on_a(&v2, &["upgrade"]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("ferry-installer upgrade"), "{said}");
    let mut up = net.exec(&net.b, &root_b.join("var/lib/ferry/ferry-installer"));
    up.arg("--root")
        .arg(&root_b)
        .args(["upgrade", "--yes", "-q"]);
    run_ok(up);
    assert_eq!(pull_and_run_on_b("j2"), "hello from image b");

    // A joined node is not quietly turned into a second master.
    let mut c = Command::new(&bundle);
    c.arg("--root")
        .arg(&root_b)
        .args(["--yes", "-q", "--skip-preflight", "ports"]);
    let msg = run_fail(c);
    assert!(
        msg.contains("earlier_install") || msg.contains("joined to a master"),
        "{msg}"
    );
    let mut c = Command::new(&bundle);
    c.arg("--root").arg(&root_b).args([
        "preflight",
        "--output",
        "json",
        "--skip-preflight",
        "ports",
    ]);
    let checks = String::from_utf8(c.output().unwrap().stdout).unwrap();
    assert!(checks.contains("was joined to a master"), "{checks}");

    let mut r = Command::new(&bare);
    r.arg("--root").arg(&root_b).args(["reset", "-q", "--yes"]);
    run_ok(r);
    assert_eq!(files_under(&root_b), 0, "reset on the node left files");
    std::mem::forget(b);
}
