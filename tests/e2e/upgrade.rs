//! Day two with the real containerd: v1 installed; a broken v2 fails and v1 keeps
//! serving; v2 killed mid-upgrade converges when run again, after which containerd pulls
//! the changed image's new content under the same name and the added image; `rollback`
//! returns to v1.

use crate::install::{images_and_payload, Sandbox};
use ferry_tests::bins::{build_kubefile, run_fail, run_ok};
use std::path::{Path, PathBuf};
use std::process::Command;

fn build(dir: &Path, out: &str, images: &str, payload: &Path) -> PathBuf {
    let payload = format!("containerd={}", payload.display());
    build_kubefile(
        dir,
        &format!("FROM scratch\nLABEL name=rt\nLABEL version={out}\n{images}"),
        out,
        &["--payload", &payload],
    )
}

/// v2's images: app:1 with image b's content, and an added new:1.
const V2_IMAGES: &str =
    "IMAGE oci:layout:b AS docker.io/library/app:1\nIMAGE oci:layout:a AS docker.io/library/new:1\n";

/// v1 (app:1 with image a's content) and v2 (app:1 now with b's, and an added new:1),
/// both with the runtime `payload`.
pub(crate) fn v1_and_v2(dir: &Path, payload: &Path) -> (PathBuf, PathBuf) {
    let v1 = build(
        dir,
        "v1.run",
        "IMAGE oci:layout:a AS docker.io/library/app:1\n",
        payload,
    );
    let v2 = build(dir, "v2.run", V2_IMAGES, payload);
    (v1, v2)
}

/// Same root and ports as `sb`, another bundle.
pub(crate) fn with_bundle(sb: &Sandbox, bundle: &Path) -> Sandbox {
    Sandbox {
        bundle: bundle.to_path_buf(),
        root: sb.root.clone(),
        port: sb.port,
        join_port: sb.join_port,
    }
}

/// Pulls `name` afresh (any cached copy removed first) and runs it.
pub(crate) fn fresh_run(sb: &Sandbox, name: &str, id: &str) -> String {
    let _ = sb.ctr(&["images", "rm", name]).output();
    sb.pull_and_run(name, id).trim().to_string()
}

#[test]
fn upgrade_serves_new_content_fails_safely_survives_kill_and_rolls_back() {
    let t = tempfile::tempdir().unwrap();
    images_and_payload(t.path());
    let (v1, v2) = v1_and_v2(t.path(), &t.path().join("payload"));
    // v3: v2's images with a containerd that cannot start.
    let broken = t.path().join("broken-payload");
    run_ok(
        Command::new("cp")
            .arg("-r")
            .arg(t.path().join("payload"))
            .arg(&broken),
    );
    std::fs::write(
        broken.join("bin/containerd"),
        "#!/bin/sh\necho broken containerd >&2\nexit 1\n",
    )
    .unwrap();
    let v3 = build(t.path(), "v3.run", V2_IMAGES, &broken);

    let sb = Sandbox::new(&v1, t.path().join("root"));
    run_ok(sb.cmd().arg("-q"));
    assert_eq!(
        fresh_run(&sb, "docker.io/library/app:1", "r1"),
        "hello from image a"
    );

    // A plain install of another version explains and points at upgrade.
    let s2 = with_bundle(&sb, &v2);
    let msg = run_fail(s2.cmd().arg("-q"));
    assert!(msg.contains("upgrade"), "{msg}");

    // The diff, as JSON, without changing anything (no terminal, no --yes: refused).
    let mut c = Command::new(&v2);
    c.arg("--root")
        .arg(&sb.root)
        .args(["upgrade", "--output", "json"]);
    let out = c.output().unwrap();
    assert!(!out.status.success());
    let diff: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(diff["images_added"][0], "docker.io/library/new:1");
    assert_eq!(diff["images_changed"][0][0], "docker.io/library/app:1");

    // A broken v3: the upgrade fails, v1 is back and serving.
    let s3 = with_bundle(&sb, &v3);
    let msg = run_fail(s3.cmd().args(["upgrade", "-q", "--wait-timeout", "5"]));
    assert!(
        msg.contains("upgrade failed") && msg.contains("running again"),
        "{msg}"
    );
    assert_eq!(sb.status()["healthy"], true);
    assert_eq!(
        fresh_run(&sb, "docker.io/library/app:1", "r2"),
        "hello from image a"
    );

    // v2, killed while it runs, then run again: it converges to v2.
    let mut child = s2.cmd().args(["upgrade", "-q"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let _ = child.kill();
    let _ = child.wait();
    run_ok(s2.cmd().args(["upgrade", "-q"]));
    let st = sb.status();
    assert_eq!(st["healthy"], true, "{st}");
    assert_eq!(
        fresh_run(&sb, "docker.io/library/app:1", "r3"),
        "hello from image b"
    );
    assert_eq!(
        fresh_run(&sb, "docker.io/library/new:1", "r4"),
        "hello from image a"
    );

    // rollback returns to v1 on purpose.
    run_ok(s2.cmd().args(["rollback", "-q"]));
    assert_eq!(
        fresh_run(&sb, "docker.io/library/app:1", "r5"),
        "hello from image a"
    );
    std::mem::forget(s2);
    std::mem::forget(s3);
}

#[test]
fn a_delta_upgrade_carries_only_what_changed_and_serves_the_rest_from_v1() {
    let t = tempfile::tempdir().unwrap();
    images_and_payload(t.path());
    let payload = t.path().join("payload");
    let (v1, full) = v1_and_v2(t.path(), &payload);
    let p = format!("containerd={}", payload.display());
    let delta = build_kubefile(
        t.path(),
        &format!("FROM scratch\nLABEL name=rt\nLABEL version=v2.run\n{V2_IMAGES}"),
        "v2-delta.run",
        &["--payload", &p, "--delta-from", v1.to_str().unwrap()],
    );
    let (full_len, delta_len) = (
        std::fs::metadata(&full).unwrap().len(),
        std::fs::metadata(&delta).unwrap().len(),
    );
    // Unchanged: the 4 MiB base layer, image a's layer, the runtime binaries.
    assert!(
        delta_len + (4 << 20) < full_len,
        "delta {delta_len} vs full {full_len}"
    );
    let info: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new(&delta).args(["--info", "--output", "json"]),
    ))
    .unwrap();
    let v1_id: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new(&v1).args(["--info", "--output", "json"]),
    ))
    .unwrap();
    assert_eq!(
        info["delta"]["base"].as_str().unwrap(),
        format!("sha256:{}", v1_id["payload_sha256"].as_str().unwrap())
    );
    run_ok(Command::new(&delta).arg("--check"));

    // Not installable on its own…
    let fresh = Sandbox::new(&delta, t.path().join("fresh"));
    let msg = run_fail(fresh.cmd().arg("-q"));
    assert!(msg.contains("delta bundle"), "{msg}");
    std::mem::forget(fresh);

    // …but an upgrade of v1: containerd gets the new content and the added image.
    let sb = Sandbox::new(&v1, t.path().join("root"));
    run_ok(sb.cmd().arg("-q"));
    assert_eq!(
        fresh_run(&sb, "docker.io/library/app:1", "d1"),
        "hello from image a"
    );
    let sd = with_bundle(&sb, &delta);
    run_ok(sd.cmd().args(["upgrade", "-q"]));
    assert_eq!(
        fresh_run(&sb, "docker.io/library/app:1", "d2"),
        "hello from image b"
    );
    assert_eq!(
        fresh_run(&sb, "docker.io/library/new:1", "d3"),
        "hello from image a"
    );
    std::mem::forget(sd);
}
