//! `delivery.run registry` in the foreground, as an operator would run it: plain HTTP,
//! and TLS on the same listener with `--tls-cert/--tls-key`, each checked with skopeo.

use ferry_tests::bins::{ferry, run_ok, workspace};
use ferry_tests::registry::free_port;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Serving(Child);
impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(bundle: &Path, extra: &[&str], port: u16) -> Serving {
    let child = Command::new(bundle)
        .args(["registry", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Serving(child)
}

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

    let port = free_port().unwrap();
    let _s = serve(&bundle, &[], port);
    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://127.0.0.1:{port}/acme/app:1")),
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
    let tport = free_port().unwrap();
    let _tls = serve(
        &bundle,
        &[
            "--tls-cert",
            certs.join("ca.crt").to_str().unwrap(),
            "--tls-key",
            certs.join("key.pem").to_str().unwrap(),
        ],
        tport,
    );
    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--cert-dir"])
            .arg(&certs)
            .arg(format!("docker://127.0.0.1:{tport}/quay.io/acme/app:1")),
    );
    assert!(raw.contains("schemaVersion"), "{raw}");
}
