//! Trust and media end to end: a signed bundle checked with openssl alone and refused
//! under a foreign key before anything is written; a bundle split into 4 MiB parts that
//! checks, serves, installs with the real containerd and names a damaged part; the SBOM
//! of a Debian-based image validated by the reference SPDX tools.

use crate::install::{images_and_payload, Sandbox};
use ferry_tests::bins::{build_kubefile, ferry, run, run_fail, run_ok, workspace};
use ferry_tests::images::ImageBuilder;
use ferry_tests::registry::BundleRegistry;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `ferry key generate -o dir/<name>`: (private, public, fingerprint).
fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let out: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new(ferry())
            .args(["key", "generate", "--output", "json", "-o"])
            .arg(dir.join(name)),
    ))
    .unwrap();
    (
        dir.join(format!("{name}.key.pem")),
        dir.join(format!("{name}.pub.pem")),
        out["fingerprint"].as_str().unwrap().to_string(),
    )
}

/// Every file under `root` (empty if it does not exist).
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn demo_images(dir: &Path) {
    run_ok(
        Command::new("bash")
            .arg(workspace().join("scripts/demo-images.sh"))
            .arg(dir),
    );
}

const ONE_IMAGE: &str =
    "FROM scratch\nLABEL name=signed\nIMAGE oci:layout:a AS docker.io/library/app:1\n";

#[test]
fn signature_verifies_with_openssl_and_foreign_or_missing_signatures_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    demo_images(dir);
    let (key, public, fp) = keypair(dir, "vendor");
    let (_, other_pub, other_fp) = keypair(dir, "other");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The fingerprint is sha256 of the DER public key, as openssl computes it.
    let der = run(Command::new("openssl")
        .args(["pkey", "-pubin", "-outform", "DER", "-in"])
        .arg(&public));
    assert_eq!(fp, format!("sha256:{}", hex::encode(sha2_of(&der.stdout))));

    let key_arg = key.to_str().unwrap();
    let bundle = build_kubefile(
        dir,
        ONE_IMAGE,
        "signed.run",
        &["--no-payload", "--sign", key_arg],
    );
    let info: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new(&bundle).args(["--info", "--output", "json"]),
    ))
    .unwrap();
    assert_eq!(info["signature"]["signed"], true, "{info}");
    assert_eq!(info["signature"]["fingerprint"], fp.as_str());
    let text = run_ok(Command::new(&bundle).arg("--info"));
    assert!(
        text.contains(&fp) && text.contains("compare this fingerprint"),
        "{text}"
    );

    // Standard tools: extract, then openssl verifies the DER signature over bundle.json.
    let x = dir.join("x");
    run_ok(Command::new(&bundle).arg("--extract").arg(&x).arg("-q"));
    let verify = |pubkey: &Path| {
        run(Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(pubkey)
            .arg("-signature")
            .arg(x.join("bundle.json.sig"))
            .arg(x.join("bundle.json")))
    };
    let ok = verify(&public);
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("Verified OK"));
    assert!(
        !verify(&other_pub).status.success(),
        "a foreign key verified"
    );
    // The payload is still a plain tar holding both files.
    let p = info["installer_size"].as_u64().unwrap() + 1;
    let names = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("tail -c +{p} {} | tar -t", bundle.display())),
    );
    assert!(names.contains("bundle.json.sig"), "{names}");
    if let Ok(cosign) = which("cosign") {
        // cosign reads base64 signatures.
        let b64 = dir.join("bundle.json.sig.b64");
        std::fs::write(
            &b64,
            base64_of(&std::fs::read(x.join("bundle.json.sig")).unwrap()),
        )
        .unwrap();
        run_ok(
            Command::new(cosign)
                .args(["verify-blob", "--insecure-ignore-tlog", "--key"])
                .arg(&public)
                .arg("--signature")
                .arg(&b64)
                .arg(x.join("bundle.json")),
        );
    }

    // Pinned keys: the right one passes --check, a foreign one is refused by install
    // before anything is written under --root.
    run_ok(Command::new(&bundle).args(["--check", "-q", "--trust-fingerprint", &fp]));
    let root = dir.join("root");
    let sb = Sandbox::new(&bundle, root.clone());
    let e = run_fail(sb.cmd().arg("--trust-key").arg(&other_pub));
    assert!(
        e.contains("does not trust") && e.contains(&fp) && e.contains(&other_fp),
        "{e}"
    );
    assert!(files_under(&root).is_empty(), "{:?}", files_under(&root));
    let e = run_fail(Command::new(&bundle).args(["--check", "--trust-fingerprint", &other_fp]));
    assert!(e.contains("does not trust"), "{e}");

    // The site trust directory under --root pins keys the same way.
    let trust = root.join("etc/ferry/trust");
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::copy(&other_pub, trust.join("other.pem")).unwrap();
    let e = run_fail(sb.cmd());
    assert!(
        e.contains("does not trust") && e.contains("other.pem"),
        "{e}"
    );
    assert_eq!(files_under(&root), [trust.join("other.pem")]);
    let e = run_fail(sb.cmd().arg("plan"));
    assert!(e.contains("does not trust"), "{e}");

    // An unsigned bundle is refused once a key is pinned, and accepted (said so) without.
    let unsigned = build_kubefile(dir, ONE_IMAGE, "unsigned.run", &["--no-payload"]);
    let e = run_fail(
        Command::new(&unsigned)
            .args(["--check", "--trust-key"])
            .arg(&public),
    );
    assert!(e.contains("is not signed"), "{e}");
    let out = run(Command::new(&unsigned).arg("--check"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not signed"));
}

fn sha2_of(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn which(tool: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(tool))
                .find(|p| p.is_file())
        })
        .ok_or(())
}

fn parts_of(bundle: &Path) -> Vec<PathBuf> {
    (1..)
        .map(|i| ferry_bundle::parts::part_path(bundle, i))
        .take_while(|p| p.exists())
        .collect()
}

#[test]
fn split_into_4_mib_parts_checks_serves_installs_and_names_a_damaged_part() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    images_and_payload(dir);
    let payload = format!("containerd={}", dir.join("payload").display());
    let bundle = build_kubefile(
        dir,
        "FROM scratch\nLABEL name=parts\n\
         IMAGE oci:layout:a AS docker.io/library/app:1\n\
         IMAGE oci:layout:b AS quay.io/library/app:1\n",
        "delivery.run",
        &["--payload", &payload, "--split", "4M"],
    );
    let parts = parts_of(&bundle);
    assert!(parts.len() >= 4, "{parts:?}");
    let stub = std::fs::metadata(ferry_tests::bins::installer())
        .unwrap()
        .len();
    // Part 1 is the whole installer stub (it must run); the others are at most 4 MiB.
    assert!(std::fs::metadata(&parts[0]).unwrap().len() >= stub);
    for p in &parts[1..] {
        assert!(
            std::fs::metadata(p).unwrap().len() <= 4 << 20,
            "{}",
            p.display()
        );
    }
    let out = run_ok(Command::new(&bundle).arg("--check"));
    assert!(out.contains(&format!("in {} parts", parts.len())), "{out}");
    // sha256sum checks every part at the site.
    run_ok(
        Command::new("sha256sum")
            .args(["-c", "delivery.run.sha256"])
            .current_dir(dir),
    );
    // Part 1 alone knows it is complete and says what is missing.
    let alone = dir.join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(&parts[0], alone.join("delivery.run")).unwrap();
    let e = run_fail(Command::new(alone.join("delivery.run")).arg("--info"));
    assert!(
        e.contains("first part of a split bundle") && e.contains("delivery.run.002"),
        "{e}"
    );

    // `cat` joins the parts into a valid single-file bundle.
    let whole = dir.join("whole.run");
    run_ok(Command::new("sh").arg("-c").arg(format!(
        "cat {} {}.0* > {} && chmod +x {2}",
        bundle.display(),
        bundle.display(),
        whole.display()
    )));
    run_ok(Command::new(&whole).args(["--check", "-q"]));

    // The registry serves straight from the parts (the 4 MiB layer spans two of them).
    let reg = BundleRegistry::start(Command::new(&bundle), &[]).unwrap();
    let copy = dir.join("copied");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{}/quay.io/library/app:1", reg.host()))
            .arg(format!("oci:{}:x", copy.display())),
    );
    drop(reg);

    // Installs from the parts: staged as one file, images pulled and run by name.
    let sb = Sandbox::new(&bundle, dir.join("root"));
    run_ok(sb.cmd().arg("-q"));
    assert_eq!(
        sb.pull_and_run("docker.io/library/app:1", "a").trim(),
        "hello from image a"
    );
    let staged = sb.root.join("var/lib/ferry/bundle.run");
    let staged_len = std::fs::metadata(&staged).unwrap().len();
    let total: u64 = parts
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(staged_len, total, "staged as the joined bundle");

    // A flipped byte in part 2 is reported as part 2; a missing part by its name.
    flip(&parts[1], 1000);
    let e = run_fail(Command::new(&bundle).arg("--check"));
    assert!(
        e.contains(&format!("part 2 of {}", parts.len())) && e.contains("copy it again"),
        "{e}"
    );
    std::fs::remove_file(&parts[2]).unwrap();
    let e = run_fail(Command::new(&bundle).arg("--info"));
    assert!(e.contains("part 3") && e.contains("is missing"), "{e}");
}

/// Flips one bit of the file at `path` (a part: a few MiB).
fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 1;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn sbom_lists_the_debian_packages_of_an_image_and_validates() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    // A Debian-based image: the dpkg database of real packages (as this Debian host
    // records them) and its os-release, in a layer built with umoci.
    let status =
        run_ok(Command::new("dpkg-query").args(["--status", "bash", "coreutils", "libc6"]));
    assert!(status.contains("Package: coreutils"), "{status}");
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap();
    let img = ImageBuilder::new("deb")
        .file("/var/lib/dpkg/status", &status)
        .file("/etc/os-release", &os_release)
        .build(&dir.join("layout"))
        .unwrap();
    let beside = dir.join("beside.spdx.json");
    let started = std::time::Instant::now();
    let bundle = build_kubefile(
        dir,
        "FROM scratch\nLABEL name=sbom\nLABEL version=1.2\nIMAGE oci:layout:deb AS docker.io/acme/debian-app:1\n",
        "delivery.run",
        &["--no-payload", "--sbom", beside.to_str().unwrap()],
    );
    eprintln!("build with SBOM: {:.2}s", started.elapsed().as_secs_f64());
    let printed = run_ok(Command::new(&bundle).arg("--sbom"));
    assert_eq!(
        printed.as_bytes(),
        std::fs::read(&beside).unwrap(),
        "--sbom prints what the build wrote beside"
    );
    let validate = run(Command::new("pyspdxtools").arg("-i").arg(&beside));
    assert!(
        validate.status.success(),
        "pyspdxtools refused the SBOM:\n{}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let pkgs = doc["packages"].as_array().unwrap();
    let image = pkgs
        .iter()
        .find(|p| p["name"] == "docker.io/acme/debian-app:1")
        .unwrap_or_else(|| panic!("image missing: {doc}"));
    assert_eq!(image["versionInfo"], img.digest.as_str());
    assert!(image["comment"].as_str().unwrap().contains("linux/amd64"));
    for name in ["bash", "coreutils", "libc6"] {
        let version = status
            .split("\n\n")
            .find(|s| s.starts_with(&format!("Package: {name}\n")))
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Version: ")))
            .unwrap();
        let p = pkgs
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from the SBOM"));
        assert_eq!(p["versionInfo"], version);
        let purl = p["externalRefs"][0]["referenceLocator"].as_str().unwrap();
        assert!(
            purl.starts_with(&format!("pkg:deb/debian/{name}@")),
            "{purl}"
        );
        // The image contains it.
        assert!(doc["relationships"].as_array().unwrap().iter().any(|r| {
            r["spdxElementId"] == image["SPDXID"]
                && r["relationshipType"] == "CONTAINS"
                && r["relatedSpdxElement"] == p["SPDXID"]
        }));
    }
}

use std::os::unix::fs::PermissionsExt;
