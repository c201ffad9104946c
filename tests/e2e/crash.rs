//! Crashes at any instant, with real processes: `kill -9` of `delivery.run` install, of an
//! upgrade (v1 installed, v2's `upgrade`), and of a join (two network-namespace hosts, as
//! in `join`) at random instants, each followed
//! by a re-run that must converge — status healthy, the image pulls by its name and runs
//! — and a `reset --yes` after which no file and no process of the host is left. Then
//! power cuts: every process of the host killed at once, with the staged bundle cut
//! short, a half-written `journal.json.tmp`, or `journal.json` itself cut short (the
//! re-run says exactly what to do, and doing it converges).
//!
//! The engine's unit tests crash at every step boundary with a recording fake
//! (`installer/src/install/tests.rs`); these are the real thing at unplanned instants.
//! `FERRY_CRASH_TRIALS` (default 2, so CI stays fast; `scripts/crash-trials.sh` runs 20
//! and more) and `FERRY_CRASH_SEED` (printed, to replay a run) steer them.

use crate::install::{runtime_bundle, Sandbox};
use crate::join::{files_under, install_master, Net};
use crate::upgrade::{fresh_run, v1_and_v2, with_bundle};
use ferry_tests::bins::{installer, run_fail, run_ok};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn trials() -> u64 {
    std::env::var("FERRY_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// A small deterministic generator, seeded from `FERRY_CRASH_SEED` or the clock.
struct Rng(u64);

impl Rng {
    fn new(what: &str) -> Rng {
        let seed = std::env::var("FERRY_CRASH_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("crash: {what}: FERRY_CRASH_SEED={seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Processes whose command line names a path under `root`, with their command lines.
fn processes_under(root: &Path) -> Vec<String> {
    let mark = root.display().to_string();
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| e.file_name().to_string_lossy() != me)
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(&mark)
                .then(|| format!("{}: {cmd}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// A power cut: every process of the host dies at once.
fn power_cut(root: &Path) {
    for p in processes_under(root) {
        let pid = p.split(':').next().unwrap();
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
    let t = Instant::now();
    while !processes_under(root).is_empty() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `cmd`, kills it with SIGKILL after `after`, and reaps it.
fn kill_after(mut cmd: Command, after: Duration) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs a container until it prints something, at most three times: `ctr run` of a
/// container that exits at once sometimes loses its output on a loaded machine (the shim
/// is gone before the I/O is copied; containerd logs "shim disconnected"), which says
/// nothing about the install. The image has pulled and the container ran either way.
fn run_printing(mut run: impl FnMut(u32) -> String) -> String {
    for n in 0..3 {
        let out = run(n);
        if !out.trim().is_empty() {
            return out;
        }
    }
    String::new()
}

/// The end of the host's containerd log, for failure messages.
fn log_tail(root: &Path) -> String {
    let log =
        std::fs::read_to_string(root.join("var/log/ferry/containerd.log")).unwrap_or_default();
    let keep = std::env::temp_dir().join(format!("ferry-crash-{}", std::process::id()));
    let _ = Command::new("cp")
        .arg("-a")
        .arg(root.join("var/log/ferry"))
        .arg(&keep)
        .status();
    eprintln!("crash: logs kept in {}", keep.display());
    let lines: Vec<&str> = log.lines().collect();
    format!(
        "containerd log:\n{}\nprocesses: {:?}",
        lines[lines.len().saturating_sub(40)..].join("\n"),
        processes_under(root)
    )
}

/// After `reset --yes`: no file and no process of the host is left.
fn assert_nothing_left(root: &Path, what: &str) {
    if files_under(root) > 0 {
        let left = Command::new("find")
            .arg(root)
            .arg("-not")
            .arg("-type")
            .arg("d")
            .output()
            .unwrap();
        panic!(
            "{what}: reset left files:\n{}",
            String::from_utf8_lossy(&left.stdout)
        );
    }
    let procs = processes_under(root);
    assert!(procs.is_empty(), "{what}: reset left processes: {procs:?}");
}

fn assert_healthy(sb: &Sandbox, what: &str) {
    let out = sb
        .cmd()
        .args(["status", "--output", "json"])
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: status: {e}: {}", log_tail(&sb.root)));
    assert!(out.status.success(), "{what}: {st}\n{}", log_tail(&sb.root));
    assert_eq!(st["installed"], true, "{what}: {st}");
    assert_eq!(st["registry"]["healthy"], true, "{what}: {st}");
    let phases = st["phases"].as_array().unwrap();
    assert!(phases.iter().all(|p| p["state"] == "done"), "{what}: {st}");
}

#[test]
fn an_install_killed_at_random_instants_converges_and_resets_clean() {
    let t = tempfile::tempdir().unwrap();
    let bundle = runtime_bundle(t.path());
    let sb = Sandbox::new(&bundle, t.path().join("root"));
    let mut rng = Rng::new("install");
    // How long a whole install takes here: the window the kills fall in.
    let started = Instant::now();
    run_ok(sb.cmd().arg("-q"));
    let full = started.elapsed();
    run_ok(sb.cmd().args(["reset", "-q"]));
    assert_nothing_left(&sb.root, "first reset");

    let mut instants = Vec::new();
    for trial in 0..trials() {
        for _ in 0..1 + rng.below(3) {
            let at = Duration::from_millis(rng.below(full.as_millis() as u64));
            instants.push(at);
            let mut c = sb.cmd();
            c.arg("-q");
            kill_after(c, at);
        }
        let what = format!(
            "install trial {trial} (kills at {:?})",
            &instants[instants.len().saturating_sub(3)..]
        );
        run_ok(sb.cmd().arg("-q"));
        assert_healthy(&sb, &what);
        let ran =
            run_printing(|n| sb.pull_and_run("docker.io/library/app:1", &format!("t{trial}-{n}")));
        assert_eq!(
            ran.trim(),
            "hello from image a",
            "{what}: {}",
            log_tail(&sb.root)
        );
        run_ok(sb.cmd().args(["reset", "-q"]));
        assert_nothing_left(&sb.root, &what);
    }
    instants.sort();
    eprintln!(
        "crash: install: {} trials, {} kill -9s at {:?}..{:?} of a {full:?} install; every re-run converged \
         (healthy, image pulled and run); every reset left no file and no process",
        trials(),
        instants.len(),
        instants.first().unwrap(),
        instants.last().unwrap()
    );
}

#[test]
fn an_upgrade_killed_at_random_instants_converges_and_resets_clean() {
    let t = tempfile::tempdir().unwrap();
    crate::install::images_and_payload(t.path());
    let (v1, v2) = v1_and_v2(t.path(), &t.path().join("payload"));
    let sb = Sandbox::new(&v1, t.path().join("root"));
    let up = with_bundle(&sb, &v2);
    let mut rng = Rng::new("upgrade");
    // How long a whole upgrade takes here: the window the kills fall in.
    run_ok(sb.cmd().arg("-q"));
    let started = Instant::now();
    run_ok(up.cmd().args(["upgrade", "-q"]));
    let full = started.elapsed();
    run_ok(sb.cmd().args(["reset", "-q"]));
    assert_nothing_left(&sb.root, "first reset");

    let mut instants = Vec::new();
    for trial in 0..trials() {
        run_ok(sb.cmd().arg("-q"));
        for _ in 0..1 + rng.below(3) {
            let at = Duration::from_millis(rng.below(full.as_millis() as u64));
            instants.push(at);
            let mut c = up.cmd();
            c.args(["upgrade", "-q"]);
            kill_after(c, at);
        }
        let what = format!(
            "upgrade trial {trial} (kills at {:?})",
            &instants[instants.len().saturating_sub(3)..]
        );
        // Run again: the upgrade completes from wherever it was killed.
        run_ok(up.cmd().args(["upgrade", "-q"]));
        assert_healthy(&up, &what);
        for (name, want) in [
            ("docker.io/library/app:1", "hello from image b"),
            ("docker.io/library/new:1", "hello from image a"),
        ] {
            let ran = run_printing(|n| fresh_run(&up, name, &format!("u{trial}-{n}")));
            assert_eq!(ran, want, "{what}: {name}: {}", log_tail(&sb.root));
        }
        run_ok(up.cmd().args(["reset", "-q"]));
        assert_nothing_left(&sb.root, &what);
    }
    instants.sort();
    eprintln!(
        "crash: upgrade: {} trials, {} kill -9s at {:?}..{:?} of a {full:?} upgrade; every re-run converged \
         (healthy, v2's content pulled and run); every reset left no file and no process",
        trials(),
        instants.len(),
        instants.first().unwrap(),
        instants.last().unwrap()
    );
}

#[test]
fn a_join_killed_at_random_instants_converges_and_resets_clean() {
    let t = tempfile::tempdir().unwrap();
    let bundle = runtime_bundle(t.path());
    let net = Net::numbered(1);
    let a = Sandbox::new(&bundle, t.path().join("host-a"));
    let (token, master) = install_master(&net, &bundle, &a, 5443);
    let root = t.path().join("host-b");
    let bare = installer();
    let join = || {
        let mut c = net.exec(&net.b, &bare);
        c.arg("--root").arg(&root).args([
            "--join",
            &master,
            "--token",
            &token,
            "--yes",
            "-q",
            "--wait-timeout",
            "60",
        ]);
        c
    };
    let reset = || {
        let mut c = net.exec(&net.b, &bare);
        c.arg("--root").arg(&root).args(["reset", "-q", "--yes"]);
        c
    };
    let pull = |id: &str| {
        let mut c = net.exec(&net.b, &root.join("opt/ferry/bin/ctr"));
        c.arg("--address")
            .arg(root.join("run/ferry/containerd/containerd.sock"))
            .args(["images", "pull", "--hosts-dir"])
            .arg(root.join("etc/ferry/containerd/certs.d"))
            .arg("docker.io/library/app:1");
        run_ok(c);
        run_printing(|n| {
            let mut r = Command::new(root.join("opt/ferry/bin/ctr"));
            r.arg("--address")
                .arg(root.join("run/ferry/containerd/containerd.sock"))
                .args([
                    "run",
                    "--rm",
                    "docker.io/library/app:1",
                    &format!("{id}-{n}"),
                ]);
            run_ok(r)
        })
    };
    let mut rng = Rng::new("join");
    let started = Instant::now();
    run_ok(join());
    let full = started.elapsed();
    run_ok(reset());
    assert_nothing_left(&root, "first join reset");

    let mut kills = 0;
    for trial in 0..trials() {
        for _ in 0..1 + rng.below(3) {
            kills += 1;
            kill_after(
                join(),
                Duration::from_millis(rng.below(full.as_millis() as u64)),
            );
        }
        let what = format!("join trial {trial}");
        run_ok(join());
        let mut st = net.exec(&net.b, &bare);
        st.arg("--root")
            .arg(&root)
            .args(["status", "--output", "json"]);
        let st: serde_json::Value = serde_json::from_str(&run_ok(st)).unwrap();
        assert_eq!(st["role"], "join", "{what}: {st}");
        assert_eq!(st["registry"]["healthy"], true, "{what}: {st}");
        let ran = pull(&format!("j{trial}"));
        assert_eq!(
            ran.trim(),
            "hello from image a",
            "{what}: {}",
            log_tail(&root)
        );
        run_ok(reset());
        assert_nothing_left(&root, &what);
    }
    eprintln!(
        "crash: join: {} trials, {kills} kill -9s within a {full:?} join; every re-run converged \
         (healthy, image pulled from the master and run); every reset left no file and no process",
        trials()
    );
    run_ok(a.cmd().args(["reset", "-q"]));
}

#[test]
fn power_cuts_with_a_short_staged_bundle_or_a_damaged_journal() {
    let t = tempfile::tempdir().unwrap();
    let bundle = runtime_bundle(t.path());
    let sb = Sandbox::new(&bundle, t.path().join("root"));
    run_ok(sb.cmd().arg("-q"));
    let data = sb.root.join("var/lib/ferry");

    // The staged bundle cut short: staged again, services back from the new copy.
    power_cut(&sb.root);
    let staged = data.join("bundle.run");
    let len = std::fs::metadata(&staged).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&staged)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    let out = run_ok(sb.cmd());
    assert!(out.contains("join"), "{out}");
    assert_healthy(&sb, "short staged bundle");
    assert_eq!(std::fs::metadata(&staged).unwrap().len(), len);
    assert_eq!(
        sb.pull_and_run("quay.io/library/app:1", "p1").trim(),
        "hello from image b"
    );

    // A save of the journal half-written when the power went.
    power_cut(&sb.root);
    std::fs::write(data.join("journal.json.tmp"), "{\"bundle_sha256\": \"sha").unwrap();
    run_ok(sb.cmd().arg("-q"));
    assert_healthy(&sb, "journal.json.tmp left behind");

    // journal.json itself cut short (a disk that lost acknowledged data): the re-run
    // refuses to guess and says what to do; doing it converges.
    power_cut(&sb.root);
    let journal = data.join("journal.json");
    let bytes = std::fs::read(&journal).unwrap();
    std::fs::write(&journal, &bytes[..bytes.len() / 2]).unwrap();
    let msg = run_fail(sb.cmd().arg("-q"));
    let prev = data.join("journal.json.prev");
    let instruction = format!("mv {} {}", prev.display(), journal.display());
    assert!(
        msg.contains("damaged") && msg.contains(&instruction),
        "{msg}"
    );
    std::fs::rename(&prev, &journal).unwrap();
    run_ok(sb.cmd().arg("-q"));
    assert_healthy(&sb, "journal restored from its previous save");
    assert_eq!(
        sb.pull_and_run("docker.io/library/app:1", "p2").trim(),
        "hello from image a"
    );
    run_ok(sb.cmd().args(["reset", "-q"]));
    assert_nothing_left(&sb.root, "power cuts");
}
