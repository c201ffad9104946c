//! Command-line behaviour shared by both binaries: a reader that goes away (`| head`) ends
//! the command quietly with exit 0, nothing on stderr.

use ferry_tests::bins::{ferry, write_file};
use std::io::Read;
use std::process::{Command, Stdio};

/// A Kubefile naming `n` registry images through an IMAGES file (`ferry images` pulls
/// nothing, so no registry is needed).
fn many_images(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let list: String = (0..n)
        .map(|i| format!("quay.io/demo/app-{i}:1\n"))
        .collect();
    write_file(&dir.join("images.txt"), &list);
    let kubefile = dir.join("Kubefile");
    write_file(&kubefile, "FROM scratch\nIMAGES images.txt\n");
    kubefile
}

#[test]
fn ferry_images_on_a_closed_pipe_exits_0_quietly() {
    let t = tempfile::tempdir().unwrap();
    let kubefile = many_images(t.path(), 3);
    // The reader is gone before ferry writes its first line.
    let mut child = Command::new(ferry())
        .args(["images", "-f"])
        .arg(&kubefile)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stderr, "", "nothing on stderr");
}

#[test]
fn ferry_images_piped_to_head_exits_0_quietly() {
    let t = tempfile::tempdir().unwrap();
    // More than a pipe buffer of lines, so ferry is still writing when head exits.
    let kubefile = many_images(t.path(), 5000);
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; {} images -f {} | head -1",
            ferry().display(),
            kubefile.display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert_eq!(stderr, "", "nothing on stderr");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "quay.io/demo/app-0:1\tIMAGES ".to_string()
            + &format!("{}:1\n", t.path().join("images.txt").display())
    );
}
