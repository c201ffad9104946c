//! arm64: the static aarch64 stub (`target/dist/ferry-installer-aarch64`) run under
//! qemu-user on this x86_64 host, bundles built for `linux/arm64` read and verified by it,
//! and a multi-platform bundle whose registry hands arm64 clients the arm64 manifest of an
//! image index (`skopeo --override-arch arm64`), served by either stub. A build for
//! `linux/amd64,linux/arm64` writes one bundle per architecture, each carrying both
//! platforms' runtime.
//!
//! The images' layer content is the host's busybox: nothing runs it, only the platform
//! the configs and the index declare matters here.

use ferry_tests::bins::{
    build_kubefile, ferry, installer_aarch64, qemu_aarch64, run_fail, run_ok, workspace, write_file,
};
use ferry_tests::images::{make_index, ImageBuilder, OciImage};
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

/// An amd64 and an arm64 image and their index, tagged `multi` in `layout`.
fn multi_platform_image(layout: &Path) -> (OciImage, OciImage, OciImage) {
    let amd = ImageBuilder::new("amd")
        .platform("linux/amd64")
        .build(layout)
        .unwrap();
    let arm = ImageBuilder::new("arm")
        .platform("linux/arm64")
        .build(layout)
        .unwrap();
    let index = make_index(layout, "multi", &[&amd, &arm]).unwrap();
    (amd, arm, index)
}

#[test]
fn multi_platform_bundle_serves_each_architecture_its_manifest() {
    let t = tempfile::tempdir().unwrap();
    let (amd, arm, index) = multi_platform_image(&t.path().join("layout"));
    let name = "example.org/edge/multi:1";
    let platforms = "linux/amd64,linux/arm64";
    // One build, one bundle per platform: the x86_64 stub's and the aarch64 stub's.
    build(t.path(), "multi", name, "multi.run", platforms, None);
    let (x86, arm_stub) = (
        t.path().join("multi-amd64.run"),
        t.path().join("multi-arm64.run"),
    );
    assert!(!t.path().join("multi.run").exists());

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

/// The runtime files `bundle`'s master hands a joining node of `platform`
/// (`GET /ferry/v1/join?platform=…`), and its `bin/containerd` among them.
fn joined(
    bundle: &Path,
    platform: &str,
) -> (
    Vec<ferry_installer::join::protocol::JoinFile>,
    ferry_installer::join::protocol::JoinFile,
) {
    let b = ferry_bundle::Bundle::open(bundle).unwrap();
    let info =
        ferry_installer::join::protocol::join_info(&b, "https://10.0.0.1:5443", Some(platform))
            .unwrap_or_else(|e| panic!("{}: {e}", bundle.display()));
    let containerd = info
        .files
        .iter()
        .find(|f| f.role == "bin/containerd")
        .unwrap_or_else(|| panic!("{platform}: {:?}", info.files))
        .clone();
    (info.files, containerd)
}

/// A FAKE arm64 containerd payload: small text files under the roles a containerd payload
/// has. No arm64 containerd can be downloaded here (no internet but package registries);
/// nothing runs these files, the test only follows where they go.
fn fake_arm64_containerd_payload(dir: &Path) -> PathBuf {
    let roles = ferry_bundle::roles::CONTAINERD_REQUIRED.into_iter();
    for role in roles.chain(["cni/bridge"]) {
        write_file(&dir.join(role), &format!("FAKE arm64 {role}\n"));
    }
    dir.to_path_buf()
}

#[test]
fn two_platforms_write_one_bundle_each_carrying_every_runtime() {
    let t = tempfile::tempdir().unwrap();
    let (_, _, index) = multi_platform_image(&t.path().join("layout"));
    let amd_payload = t.path().join("amd64-payload");
    run_ok(
        Command::new("bash")
            .arg(workspace().join("scripts/containerd-payload.sh"))
            .arg(&amd_payload),
    );
    let arm_payload = fake_arm64_containerd_payload(&t.path().join("fake-arm64-payload"));
    std::fs::write(
        t.path().join("Kubefile"),
        "FROM scratch\nLABEL name=mixed\nIMAGE oci:layout:multi AS example.org/edge/multi:1\n",
    )
    .unwrap();
    let out = t.path().join("delivery.run");
    let report = json(&run_ok(
        Command::new(ferry())
            .args(["build", "-q", "--output", "json", "-f"])
            .arg(t.path().join("Kubefile"))
            .arg("-o")
            .arg(&out)
            .args(["--platform", "linux/amd64,linux/arm64", "--payload"])
            .arg(format!("containerd@linux/amd64={}", amd_payload.display()))
            .arg("--payload")
            .arg(format!("containerd@linux/arm64={}", arm_payload.display())),
    ));

    // Two bundles named by architecture, each with its checksum file; no `delivery.run`.
    let (x86, arm64) = (
        t.path().join("delivery-amd64.run"),
        t.path().join("delivery-arm64.run"),
    );
    assert!(!out.exists(), "{report}");
    let outputs = report["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2, "{report}");
    for (o, (platform, path)) in outputs
        .iter()
        .zip([("linux/amd64", &x86), ("linux/arm64", &arm64)])
    {
        assert_eq!(o["platform"], platform, "{report}");
        assert_eq!(o["path"], path.to_str().unwrap(), "{report}");
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(o["size"], bytes.len() as u64, "{report}");
        let hex = hex::encode(Sha256::digest(&bytes));
        assert_eq!(o["sha256"], format!("sha256:{hex}"), "{report}");
        let sum = std::fs::read_to_string(o["checksum_file"].as_str().unwrap()).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(sum, format!("{hex}  {name}\n"));
    }
    // The old fields describe the first bundle; the lock is one file.
    assert_eq!(report["output"], x86.to_str().unwrap(), "{report}");
    assert!(t.path().join("ferry.lock").exists());
    let desc = run_ok(Command::new("file").arg("-b").arg(&arm64));
    assert!(desc.contains("ARM aarch64"), "{desc}");
    let desc = run_ok(Command::new("file").arg("-b").arg(&x86));
    assert!(desc.contains("x86-64"), "{desc}");

    // Each reports its own platform and carries both platforms' runtime; the images are
    // the same (the index kept whole).
    let x86_info = json(&run_ok(
        Command::new(&x86).args(["--info", "--output", "json"]),
    ));
    let arm_info = json(&run_ok(
        qemu_aarch64(&arm64).args(["--info", "--output", "json"]),
    ));
    for (info, own) in [(&x86_info, "linux/amd64"), (&arm_info, "linux/arm64")] {
        assert_eq!(info["platform"], own, "{info}");
        // Both runtimes, each naming its platform (records follow --platform's order).
        for (i, platform) in ["linux/amd64", "linux/arm64"].into_iter().enumerate() {
            assert_eq!(info["payloads"][i]["name"], "containerd", "{info}");
            assert_eq!(info["payloads"][i]["platform"], platform, "{info}");
        }
        assert_eq!(info["payloads"].as_array().unwrap().len(), 2, "{info}");
        assert_eq!(info["images"][0]["digest"], index.digest.as_str(), "{info}");
    }
    let checked = run_ok(qemu_aarch64(&arm64).arg("--check"));
    assert!(checked.starts_with("OK"), "{checked}");
    let checked = run_ok(Command::new(&x86).arg("--check"));
    assert!(checked.starts_with("OK"), "{checked}");

    // The amd64 master hands a joining arm64 node the (fake) arm64 files, from their own
    // platform-qualified entries; its own node gets the real amd64 ones.
    let (arm_files, containerd) = joined(&x86, "linux/arm64");
    assert_eq!(
        containerd.entry,
        "files/payloads/containerd@linux-arm64/bin/containerd"
    );
    let fake = b"FAKE arm64 bin/containerd\n";
    assert_eq!(containerd.sha256.hex(), hex::encode(Sha256::digest(fake)));
    assert!(arm_files.iter().all(|f| f.entry.contains("@linux-arm64/")));
    let (_, containerd) = joined(&x86, "linux/amd64");
    assert!(containerd
        .entry
        .starts_with("files/payloads/containerd/bin/containerd"));
    let b = ferry_bundle::Bundle::open(&x86).unwrap();
    let e = ferry_installer::join::protocol::join_info(
        &b,
        "https://10.0.0.1:5443",
        Some("linux/s390x"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("linux/s390x"), "{e}");
    // And the other way round: an arm64 master hands an amd64 node the real amd64 files.
    let (_, containerd) = joined(&arm64, "linux/amd64");
    assert!(containerd
        .entry
        .starts_with("files/payloads/containerd@linux-amd64/bin/containerd"));

    // A real request from an arm64 node: the amd64 bundle installed as a master (loopback),
    // the arm64 bundle's installer under qemu (as its site would run `delivery-arm64.run
    // join`) joins it. The master serves it the (fake) arm64 runtime, checked by sha256
    // as it streams; the join then stops where the fake containerd cannot start.
    let master = crate::install::Sandbox::new(&x86, t.path().join("master"));
    // FERRY_LOG=debug: the master's join listener logs every request it answers.
    run_ok(master.cmd().arg("-q").env("FERRY_LOG", "debug"));
    let token = std::fs::read_to_string(master.root.join("etc/ferry/token")).unwrap();
    let node = t.path().join("arm64-node");
    let join = qemu_aarch64(&arm64)
        .arg("--root")
        .arg(&node)
        .args(["join", &format!("127.0.0.1:{}", master.join_port)])
        .args([
            "--token",
            token.trim(),
            "--yes",
            "-q",
            "--wait-timeout",
            "5",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&join.stderr);
    let mut logs = String::new();
    for e in std::fs::read_dir(master.root.join("var/log/ferry")).unwrap() {
        logs += &std::fs::read_to_string(e.unwrap().path()).unwrap_or_default();
    }
    // Every arm64 runtime file was asked for and served (200); none of the amd64 ones.
    for role in ["bin/containerd", "bin/runc", "bin/ctr", "cni/bridge"] {
        let got = format!(
            "target=/ferry/v1/entry/files/payloads/containerd@linux-arm64/{role} status=200"
        );
        assert!(
            logs.contains(&got),
            "{got} not in the master's logs:\n{said}"
        );
    }
    assert!(
        !logs.contains("/ferry/v1/entry/files/payloads/containerd/"),
        "an amd64 runtime file went to the arm64 node"
    );
    // The fake containerd cannot run: the join stops there, naming it, and undoes its phase.
    assert!(!join.status.success(), "{said}");
    assert!(said.contains("phase runtime"), "{said}");
    run_ok(
        qemu_aarch64(&arm64)
            .arg("--root")
            .arg(&node)
            .args(["reset", "--yes", "-q"]),
    );

    // An unqualified --payload with several platforms is refused, naming the flag to use.
    let msg = run_fail(
        Command::new(ferry())
            .args(["build", "-q", "-f"])
            .arg(t.path().join("Kubefile"))
            .arg("-o")
            .arg(t.path().join("x.run"))
            .args(["--platform", "linux/amd64,linux/arm64", "--payload"])
            .arg(format!("containerd={}", amd_payload.display())),
    );
    assert!(msg.contains("--payload containerd@linux/arm64="), "{msg}");
}
