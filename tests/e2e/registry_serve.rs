//! `delivery.run registry` in the foreground, as an operator would run it: plain HTTP,
//! and TLS on the same listener with `--tls-cert/--tls-key`, each checked with skopeo.

use ferry_tests::bins::{ferry, run_ok, workspace};
use ferry_tests::registry::BundleRegistry;
use std::process::{Command, Stdio};

#[test]
fn serves_plain_and_tls_from_the_bundle_file() {
    let t = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("bash")
            .arg(workspace().join("scripts/demo-images.sh"))
            .arg(t.path()),
    );
    std::fs::write(
        t.path().join("Kubefile"),
        "FROM scratch\nIMAGE oci:layout:a AS quay.io/acme/app:1\n",
    )
    .unwrap();
    let bundle = t.path().join("r.run");
    run_ok(
        Command::new(ferry())
            .args(["build", "-q", "--no-payload", "-f"])
            .arg(t.path().join("Kubefile"))
            .arg("-o")
            .arg(&bundle),
    );

    let plain = BundleRegistry::start(Command::new(&bundle), &[]).unwrap();
    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/acme/app:1", plain.host())),
    );
    assert!(raw.contains("schemaVersion"), "{raw}");

    // TLS with a self-signed certificate for 127.0.0.1, trusted through skopeo's cert dir.
    let certs = t.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=ferry-test",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
            ])
            .arg(certs.join("key.pem"))
            .arg("-out")
            .arg(certs.join("ca.crt"))
            .stderr(Stdio::null()),
    );
    let tls = BundleRegistry::start(
        Command::new(&bundle),
        &[
            "--tls-cert",
            certs.join("ca.crt").to_str().unwrap(),
            "--tls-key",
            certs.join("key.pem").to_str().unwrap(),
        ],
    )
    .unwrap();
    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--cert-dir"])
            .arg(&certs)
            .arg(format!("docker://{}/quay.io/acme/app:1", tls.host())),
    );
    assert!(raw.contains("schemaVersion"), "{raw}");
}
