//! `--site-registry`: an install pushes every image into the site's own registry (a real
//! Distribution, with htpasswd over TLS, and with its token auth) under
//! `<path>/<host>/<repository>`, and the sandbox's real containerd then pulls the
//! `docker.io/…` image by its original name from there.

use crate::install::{runtime_bundle, Sandbox};
use ferry_tests::bins::run_ok;
use ferry_tests::registry::{Registry, RegistryOptions};
use ferry_tests::token::TokenServer;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `cmd` with `input` on stdin; returns whether it succeeded, and stdout and stderr
/// together.
fn with_stdin(cmd: &mut Command, input: &str) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// [`with_stdin`] that must succeed.
fn run_with_stdin(cmd: &mut Command, input: &str) -> String {
    let (ok, text) = with_stdin(cmd, input);
    assert!(ok, "{cmd:?} failed: {text}");
    text
}

/// The manifest digest skopeo reads for `reference` (with `creds`).
fn digest_of(reference: &str, creds: &str, tls: Option<&Path>) -> String {
    let mut c = Command::new("skopeo");
    c.args(["inspect", "--raw", &format!("--creds={creds}")]);
    match tls {
        Some(dir) => c.arg(format!("--cert-dir={}", dir.display())),
        None => c.arg("--tls-verify=false"),
    };
    let raw = run_ok(c.arg(format!("docker://{reference}")));
    format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(raw.as_bytes()))
    )
}

/// Pulls `name` through the hosts.toml ferry wrote (as `user`) and runs it.
fn pull_and_run_as(sb: &Sandbox, name: &str, id: &str, user: &str) -> String {
    let hosts = sb.root.join("etc/ferry/containerd/certs.d");
    run_ok(sb.ctr(&[
        "images",
        "pull",
        "--hosts-dir",
        hosts.to_str().unwrap(),
        "--user",
        user,
        name,
    ]));
    run_ok(sb.ctr(&["run", "--rm", name, id]))
}

fn images(bundle: &Path) -> Vec<(String, String)> {
    let info: Value = serde_json::from_str(&run_ok(
        Command::new(bundle).args(["--info", "--output", "json"]),
    ))
    .unwrap();
    info["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn htpasswd_over_tls_site_gets_every_image_and_containerd_pulls_by_original_name() {
    let t = tempfile::tempdir().unwrap();
    let pki = ferry_installer::join::pki::generate(&["127.0.0.1".into()]).unwrap();
    let certs = t.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("server.pem"), &pki.server_pem).unwrap();
    std::fs::write(certs.join("server.key"), &pki.server_key_pem).unwrap();
    // skopeo's --cert-dir takes *.crt as CAs (and a *.key as a client key: kept apart).
    let cas = t.path().join("cas");
    std::fs::create_dir_all(&cas).unwrap();
    std::fs::write(cas.join("ca.crt"), &pki.ca_pem).unwrap();
    let reg = Registry::start_with(RegistryOptions {
        basic: Some(("site".into(), "site-pw".into())),
        tls: Some((certs.join("server.pem"), certs.join("server.key"))),
        ..Default::default()
    })
    .unwrap();
    let bundle = runtime_bundle(t.path());
    let sb = Sandbox::new(&bundle, t.path().join("root"));
    let site = format!("{}/ferry", reg.host());
    let ca = cas.join("ca.crt").display().to_string();
    let flags = [
        "--site-registry",
        &site,
        "--site-registry-ca",
        &ca,
        "--site-registry-user",
        "site",
        "--site-registry-password-stdin",
    ];
    // The plan names the pushes and never shows the password.
    let plan = run_with_stdin(sb.cmd().arg("plan").args(flags), "site-pw\n");
    assert!(
        plan.contains(&format!(
            "push docker.io/library/app:1 to {}/ferry/docker.io/library/app:1",
            reg.host()
        )),
        "{plan}"
    );
    assert!(!plan.contains("site-pw"), "{plan}");

    let out = run_with_stdin(sb.cmd().args(flags), "site-pw\n");
    eprintln!("{out}");
    for (name, digest) in images(&bundle) {
        let (host, rest) = name.split_once('/').unwrap();
        let at = format!("{}/ferry/{host}/{rest}", reg.host());
        assert_eq!(
            digest_of(&at, "site:site-pw", Some(&cas)),
            digest,
            "{at} holds the bundle's {name}"
        );
    }
    let hosts = std::fs::read_to_string(
        sb.root
            .join("etc/ferry/containerd/certs.d/docker.io/hosts.toml"),
    )
    .unwrap();
    assert!(
        hosts.contains(&format!("https://{}/v2/ferry/docker.io", reg.host()))
            && !hosts.contains(&format!("127.0.0.1:{}\"", sb.port)),
        "{hosts}"
    );
    assert_eq!(
        pull_and_run_as(&sb, "docker.io/library/app:1", "site-a", "site:site-pw").trim(),
        "hello from image a"
    );
    assert_eq!(
        pull_and_run_as(&sb, "quay.io/library/app:1", "site-b", "site:site-pw").trim(),
        "hello from image b"
    );
    let st = sb.status();
    assert_eq!(st["images_from"]["kind"], "site", "{st}");
    assert_eq!(st["images_from"]["url"], format!("https://{site}"));
    assert_eq!(st["images_from"]["healthy"], true, "{st}");
    assert_eq!(st["healthy"], true, "{st}");
    let text = run_ok(sb.cmd().arg("status"));
    assert!(
        text.contains(&format!(
            "images:     pulled from the site registry https://{site}"
        )),
        "{text}"
    );
}

#[test]
fn token_auth_site_skips_what_it_has_and_containerd_pulls_through_it() {
    let tokens = TokenServer::start("robot", "t0ken-pw").unwrap();
    let reg = Registry::start_with_token_auth(&tokens).unwrap();
    let t = tempfile::tempdir().unwrap();
    let bundle = runtime_bundle(t.path());
    // The site already has one of the images (pushed earlier, say by another install).
    run_ok(Command::new("skopeo").args([
        "copy",
        "-q",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds=robot:t0ken-pw",
        &format!("oci:{}:a", t.path().join("layout").display()),
        &format!("docker://{}/ferry/docker.io/library/app:1", reg.host()),
    ]));
    let sb = Sandbox::new(&bundle, t.path().join("root"));
    let site = format!("{}/ferry", reg.host());
    let flags = [
        "--site-registry",
        &site,
        "--site-registry-insecure",
        "--site-registry-user",
        "robot",
        "--site-registry-password-stdin",
    ];
    let out = run_with_stdin(sb.cmd().args(flags), "t0ken-pw\n");
    eprintln!("{out}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.contains(&format!("{name} -> ")))
            .unwrap_or_else(|| panic!("no push line for {name}: {out}"))
            .to_string()
    };
    assert!(
        line("docker.io/library/app:1").contains("0 blob(s) uploaded (0 bytes), 3 already there"),
        "{out}"
    );
    // b shares a's base layer: mounted from a's repository, not sent again.
    let b = line("quay.io/library/app:1");
    assert!(
        b.contains("2 blob(s) uploaded") && b.contains("1 mounted"),
        "{b}"
    );
    let scopes = tokens.queries().join("\n");
    assert!(scopes.contains("ferry/quay.io/library/app"), "{scopes}");
    for (name, digest) in images(&bundle) {
        let (host, rest) = name.split_once('/').unwrap();
        assert_eq!(
            digest_of(
                &format!("{}/ferry/{host}/{rest}", reg.host()),
                "robot:t0ken-pw",
                None
            ),
            digest
        );
    }
    assert_eq!(
        pull_and_run_as(&sb, "docker.io/library/app:1", "tok-a", "robot:t0ken-pw").trim(),
        "hello from image a"
    );
    assert_eq!(sb.status()["images_from"]["kind"], "site");
    // A wrong password fails the push and says what to fix.
    let other = Sandbox::new(&bundle, t.path().join("root2"));
    let (ok, err) = with_stdin(other.cmd().args(flags), "wrong\n");
    assert!(!ok);
    assert!(
        err.contains("phase site_registry") && err.contains("the site login was rejected"),
        "{err}"
    );
}
