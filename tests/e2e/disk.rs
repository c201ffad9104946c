//! Full disks, with real small file systems (tmpfs): under the data directory while the
//! bundle is staged, and under `/opt` while the runtime's files are written. Preflight
//! names the file system and the exact bytes the plan puts there; past preflight
//! (`--skip-preflight disk`) the write fails with the path, the bytes needed and the
//! bytes free, and the phase is undone (nothing half-installed); after the file system
//! grows, a re-run converges and reset leaves nothing.

use crate::install::{runtime_bundle, Sandbox};
use ferry_tests::bins::{run_fail, run_ok};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `bytes` mounted at `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
                .arg(dir),
        );
        Tmpfs(dir.to_path_buf())
    }
    fn grow(&self, bytes: u64) {
        run_ok(
            Command::new("mount")
                .args(["-o", &format!("remount,size={bytes}")])
                .arg(&self.0),
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Files under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let out = Command::new("find")
        .arg(dir)
        .args(["-not", "-type", "d"])
        .output()
        .unwrap();
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches(&dir.display().to_string()).to_string())
        .collect();
    v.sort();
    v
}

fn preflight_disk(sb: &Sandbox) -> Vec<serde_json::Value> {
    let out = sb
        .cmd()
        .args(["preflight", "--output", "json"])
        .output()
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "disk")
        .cloned()
        .collect()
}

#[test]
fn a_full_data_directory_while_staging_is_named_and_a_rerun_converges() {
    let t = tempfile::tempdir().unwrap();
    let bundle = runtime_bundle(t.path());
    let len = std::fs::metadata(&bundle).unwrap().len();
    let root = t.path().join("root");
    let fs = Tmpfs::mount(&root.join("var/lib/ferry"), len / 2);
    let sb = Sandbox::new(&bundle, root.clone());

    // Preflight names the file system and the bytes the staged copy needs.
    let disk = preflight_disk(&sb);
    let tmpfs = disk
        .iter()
        .find(|c| c["detail"].as_str().unwrap().contains("var/lib/ferry"))
        .unwrap_or_else(|| panic!("{disk:?}"));
    assert_eq!(tmpfs["status"], "fail", "{tmpfs}");
    let msg = run_fail(sb.cmd());
    assert!(msg.contains("preflight failed: disk"), "{msg}");

    // Past preflight, the write itself fails, naming the path and the bytes.
    let msg = run_fail(sb.cmd().args(["--skip-preflight", "disk", "-q"]));
    assert!(
        msg.contains("/var/lib/ferry/bundles/")
            && msg.contains(".run: the file system is full")
            && msg.matches("the file system is full").count() == 1
            && msg.contains("needs")
            && msg.contains("free at"),
        "{msg}"
    );
    // Nothing half-installed: no partial copy, only ferry's journal and log.
    let left = files(&root);
    assert!(
        left.iter().all(|f| f.contains("journal.json")
            || f.ends_with("ferry.log")
            || f.ends_with("ferry.lock")),
        "{left:?}"
    );

    fs.grow(len * 3);
    run_ok(sb.cmd().arg("-q"));
    assert_eq!(sb.status()["registry"]["healthy"], true);
    assert_eq!(
        sb.pull_and_run("docker.io/library/app:1", "d1").trim(),
        "hello from image a"
    );
    run_ok(sb.cmd().args(["reset", "-q"]));
    assert_eq!(files(&root), Vec::<String>::new());
}

#[test]
fn a_full_disk_while_writing_files_undoes_the_phase_and_a_rerun_converges() {
    let t = tempfile::tempdir().unwrap();
    let bundle = runtime_bundle(t.path());
    let root = t.path().join("root");
    // /opt gets the COPY (a few bytes) and the runtime's binaries (megabytes).
    let fs = Tmpfs::mount(&root.join("opt"), 1 << 20);
    let sb = Sandbox::new(&bundle, root.clone());

    let disk = preflight_disk(&sb);
    let opt = disk
        .iter()
        .find(|c| {
            c["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("{}/opt", root.display()))
        })
        .unwrap_or_else(|| panic!("{disk:?}"));
    assert_eq!(opt["status"], "fail", "{opt}");

    let msg = run_fail(sb.cmd().args(["--skip-preflight", "disk", "-q"]));
    assert!(
        msg.contains("/opt/ferry/bin/")
            && msg.contains("the file system is full")
            && msg.contains("undone"),
        "{msg}"
    );
    // The phase that ran out of space left nothing of itself.
    assert!(
        files(&root.join("opt/ferry")).is_empty(),
        "{:?}",
        files(&root.join("opt"))
    );
    assert!(!root.join("opt/ferry/bin").exists() || files(&root.join("opt/ferry/bin")).is_empty());

    fs.grow(512 << 20);
    run_ok(sb.cmd().arg("-q"));
    assert_eq!(
        sb.pull_and_run("quay.io/library/app:1", "d2").trim(),
        "hello from image b"
    );
    run_ok(sb.cmd().args(["reset", "-q"]));
    assert_eq!(files(&root), Vec::<String>::new());
}
