//! The binaries under test. End-to-end tests run exactly what ships: `target/dist/ferry`,
//! `target/dist/ferry-installer` and `target/dist/ferry-installer-aarch64` as left by
//! `scripts/build.sh` (which `scripts/test.sh` runs first). A missing binary fails the test
//! with the command that makes it. [`qemu_aarch64`] runs aarch64 binaries on this host.

use std::borrow::BorrowMut;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn dist(name: &str) -> PathBuf {
    let p = workspace().join("target/dist").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/build.sh first",
        p.display()
    );
    p
}

pub fn ferry() -> PathBuf {
    dist("ferry")
}

pub fn installer() -> PathBuf {
    dist("ferry-installer")
}

/// The static aarch64 stub, cross-compiled by `scripts/build.sh`.
pub fn installer_aarch64() -> PathBuf {
    dist("ferry-installer-aarch64")
}

/// A command that runs the aarch64 executable `program` under qemu-user
/// (`qemu-aarch64-static`, Debian's qemu-user-static). qemu is named explicitly rather than
/// relying on binfmt_misc, which containers and CI machines often lack. qemu-user presents
/// the guest's own file as `/proc/self/exe`, so a bundle finds its payload as on arm64.
/// Like the kernel it refuses a file without an execute bit, but silently (exit 1).
pub fn qemu_aarch64(program: &Path) -> Command {
    crate::registry::require_tool("qemu-aarch64-static", "apt-get install qemu-user-static")
        .unwrap();
    let mut cmd = Command::new("qemu-aarch64-static");
    cmd.arg(program);
    cmd
}

/// Runs a command, returning its output; panics only if it cannot be started.
pub fn run(mut cmd: impl BorrowMut<Command>) -> Output {
    let cmd = cmd.borrow_mut();
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed; returns stdout.
pub fn run_ok(mut cmd: impl BorrowMut<Command>) -> String {
    let cmd = cmd.borrow_mut();
    let out = run(&mut *cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command that must fail; returns stdout+stderr for message checks.
pub fn run_fail(mut cmd: impl BorrowMut<Command>) -> String {
    let cmd = cmd.borrow_mut();
    let out = run(&mut *cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but should have failed:\n{text}"
    );
    text
}

/// Writes `dir/Kubefile` and builds it with `ferry build -q` into `dir/<out>`, adding
/// `extra` arguments (payloads, `--no-payload`, …). Returns the bundle's path.
pub fn build_kubefile(dir: &Path, kubefile: &str, out: &str, extra: &[&str]) -> PathBuf {
    std::fs::write(dir.join("Kubefile"), kubefile).unwrap();
    let bundle = dir.join(out);
    run_ok(
        Command::new(ferry())
            .args(["build", "-q", "-f"])
            .arg(dir.join("Kubefile"))
            .arg("-o")
            .arg(&bundle)
            .args(extra),
    );
    bundle
}

/// Writes a file, creating its parent directories.
pub fn write_file(path: &Path, contents: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// `len` pseudo-random (xorshift), incompressible bytes from `seed`: content that zstd and
/// gzip cannot shrink, so a file or layer really is that big.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 7) as u8
        })
        .collect()
}
