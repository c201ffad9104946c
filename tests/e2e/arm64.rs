//! arm64: the static aarch64 stub (`target/dist/ferry-installer-aarch64`) run under
//! qemu-user on this x86_64 host, bundles built for `linux/arm64` read and verified by it,
//! and a multi-platform bundle whose registry hands arm64 clients the arm64 manifest of an
//! image index (`skopeo --override-arch arm64`), served by either stub.
//!
//! The images' layer content is the host's busybox: nothing runs it, only the platform
//! the configs and the index declare matters here.

use ferry_tests::bins::{build_kubefile, installer_aarch64, qemu_aarch64, run_fail, run_ok};
use ferry_tests::images::{make_index, ImageBuilder};
use ferry_tests::registry::BundleRegistry;
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// `ferry build --no-payload --platform <platforms> [--installer <stub>]` of one image
/// `oci:layout:<tag>` named `name`, into `dir/<out>` (default stub: the x86_64 one).
fn build(
    dir: &Path,
    tag: &str,
    name: &str,
    out: &str,
    platforms: &str,
    stub: Option<&Path>,
) -> PathBuf {
    let kubefile = format!("FROM scratch\nLABEL name=edge\nIMAGE oci:layout:{tag} AS {name}\n");
    let mut extra = vec!["--no-payload", "--platform", platforms];
    if let Some(stub) = stub {
        extra.extend(["--installer", stub.to_str().unwrap()]);
    }
    build_kubefile(dir, &kubefile, out, &extra)
}

#[test]
fn aarch64_stub_is_a_static_aarch64_elf_that_runs_under_qemu() {
    let stub = installer_aarch64();
    let desc = run_ok(Command::new("file").arg("-b").arg(&stub));
    for want in ["ELF 64-bit", "ARM aarch64", "static", "stripped"] {
        assert!(desc.contains(want), "{}: {desc}", stub.display());
    }
    let help = run_ok(qemu_aarch64(&stub).arg("--help"));
    assert!(
        help.contains("ferry installer") && help.contains("--check"),
        "{help}"
    );
}

#[test]
fn arm64_bundle_reports_and_verifies_itself_under_qemu() {
    let t = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new("edge")
        .platform("linux/arm64")
        .file("/etc/site", "plant-7\n")
        .build(&t.path().join("layout"))
        .unwrap();
    let bundle = build(
        t.path(),
        "edge",
        "example.org/edge/app:1",
        "delivery.run",
        "linux/arm64",
        Some(&installer_aarch64()),
    );
    // The bundle is the aarch64 stub with the payload appended: still an aarch64 ELF.
    let desc = run_ok(Command::new("file").arg("-b").arg(&bundle));
    assert!(desc.contains("ARM aarch64"), "{desc}");

    let info = json(&run_ok(
        qemu_aarch64(&bundle).args(["--info", "--output", "json"]),
    ));
    assert_eq!(info["platform"], "linux/arm64", "{info}");
    assert_eq!(
        info["images"][0]["name"], "example.org/edge/app:1",
        "{info}"
    );
    assert_eq!(info["images"][0]["digest"], image.digest.as_str(), "{info}");
    let checked = run_ok(qemu_aarch64(&bundle).arg("--check"));
    assert!(checked.starts_with("OK"), "{checked}");

    // Verification really runs on the emulated CPU: a flipped payload byte is caught.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let stub = info["installer_size"].as_u64().unwrap() as usize;
    let pos = stub + (bytes.len() - stub) / 2;
    bytes[pos] ^= 0x04;
    let bad = t.path().join("bad.run");
    std::fs::write(&bad, &bytes).unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o755)).unwrap();
    let msg = run_fail(qemu_aarch64(&bad).arg("--check"));
    assert!(msg.contains("FAILED") || msg.contains("error"), "{msg}");
}

/// Which image manifest `skopeo copy --override-arch <arch>` takes from `reference`.
fn pulled_manifest(reference: &str, arch: &str, dir: &Path) -> String {
    let out = dir.join(format!("pulled-{arch}"));
    run_ok(
        Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--override-arch",
                arch,
            ])
            .args(["--src-tls-verify=false", reference])
            .arg(format!("oci:{}:x", out.display())),
    );
    let index = json(&std::fs::read_to_string(out.join("index.json")).unwrap());
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn multi_platform_bundle_serves_each_architecture_its_manifest() {
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    let amd = ImageBuilder::new("amd")
        .platform("linux/amd64")
        .build(&layout)
        .unwrap();
    let arm = ImageBuilder::new("arm")
        .platform("linux/arm64")
        .build(&layout)
        .unwrap();
    let index = make_index(&layout, "multi", &[&amd, &arm]).unwrap();
    let name = "example.org/edge/multi:1";
    let platforms = "linux/amd64,linux/arm64";
    let x86 = build(t.path(), "multi", name, "x86.run", platforms, None);
    let arm_stub = build(
        t.path(),
        "multi",
        name,
        "arm.run",
        platforms,
        Some(&installer_aarch64()),
    );

    for (label, bundle) in [
        ("x86_64 stub", Command::new(&x86)),
        ("aarch64 stub under qemu", qemu_aarch64(&arm_stub)),
    ] {
        let registry = BundleRegistry::start(bundle, &[]).unwrap();
        let reference = format!("docker://{}/{name}", registry.host());
        // The index travels byte for byte: its digest is the one the layout made.
        let raw = run_ok(
            Command::new("skopeo")
                .args(["inspect", "--raw", "--tls-verify=false", &reference])
                .stderr(Stdio::null()),
        );
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(raw.as_bytes())));
        assert_eq!(digest, index.digest, "{label}: {raw}");
        let dir = t.path().join(label.replace(' ', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        for (arch, image) in [("arm64", &arm), ("amd64", &amd)] {
            assert_eq!(
                pulled_manifest(&reference, arch, &dir),
                image.digest,
                "{label}: --override-arch {arch}; registry log:\n{}",
                registry.log()
            );
        }
    }
}
