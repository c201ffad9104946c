//! Payloads from upstream releases for any version, `ferry.lock`, and byte-identical
//! rebuilds: the real `ferry` binary against a real Distribution registry (k3s's own
//! images and an app's) and a local HTTP server laid out exactly like GitHub releases
//! (`tests/support/releases.rs`), reached with `--release-mirror https://github.com=…`.
//!
//! **No k3s binary can be had on these machines**: the `k3s` the release mirror serves is
//! a STAND-IN file (a shell script that says so, plus random bytes), published with a real
//! `sha256sum-amd64.txt` and `k3s-images.txt` the way k3s publishes them. Likewise the
//! containerd, runc and CNI release files below are STAND-INS in the real archive layouts.
//! What is checked is ferry's side: URLs (tag encoded), verification against the
//! checksum files, images pulled by their original names through a registry mirror, the
//! lock, and that two builds are the same bytes.

use ferry_bundle::paths::payload_entry;
use ferry_tests::bins::{ferry, run, run_fail, run_ok, write_file};
use ferry_tests::images::ImageBuilder;
use ferry_tests::registry::{free_port, Registry};
use ferry_tests::releases::{sha256_file, ReleaseServer};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A version the code does not name anywhere.
const K3S_TAG: &str = "v1.32.3+k3s1";
const K3S_REPO: &str = "k3s-io/k3s";
const PAUSE: &str = "docker.io/rancher/mirrored-pause:3.6";
const COREDNS: &str = "docker.io/rancher/mirrored-coredns-coredns:1.12.0";

/// Deterministic pseudo-random bytes (incompressible, so stored as-is in the bundle).
fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

/// The STAND-IN for a binary: a script saying what it is, then random bytes.
fn stand_in(what: &str, seed: u32) -> Vec<u8> {
    let mut b = format!(
        "#!/bin/sh\n# STAND-IN for {what} in ferry's tests: no real one can be had here.\nexit 0\n"
    )
    .into_bytes();
    b.extend(noise(256 * 1024, seed));
    b
}

/// Publishes k3s `tag` (stand-in binary, image list, checksum file) on `rel`.
fn publish_k3s(rel: &ReleaseServer, tag: &str) -> Vec<u8> {
    let k3s = stand_in("the k3s binary", 3);
    let arm = stand_in("the k3s arm64 binary", 4);
    let images = format!("{PAUSE}\n{COREDNS}\n");
    rel.publish(
        K3S_REPO,
        tag,
        "sha256sum-amd64.txt",
        &[
            ("k3s", &k3s),
            ("k3s-arm64", &arm),
            ("k3s-images.txt", images.as_bytes()),
        ],
    );
    k3s
}

/// `ferry build -q` run in `cwd`, pulling docker.io through `reg` and GitHub releases
/// through `rel`, with no credentials from the developer's own `~/.docker`.
fn ferry_build(cwd: &Path, reg: &Registry, rel: &ReleaseServer, args: &[&str]) -> Command {
    let mut c = Command::new(ferry());
    c.current_dir(cwd)
        .env("DOCKER_CONFIG", cwd.join("no-docker-config"))
        .args(["build", "-q"])
        .args(["--registry-mirror", &format!("docker.io={}", reg.host())])
        .args(["--insecure-registry", reg.host()])
        .args([
            "--release-mirror",
            &format!("https://github.com={}", rel.url()),
        ])
        .args(args);
    c
}

fn sha256_hex(p: &Path) -> String {
    sha256_file(p)
}

/// A context directory: Kubefile, a chart, COPY files.
fn context(dir: &Path) -> PathBuf {
    let ctx = dir.join("site");
    write_file(
        &ctx.join("Kubefile"),
        &format!(
            "FROM scratch\nCLUSTER k3s {K3S_TAG}\nLABEL name=k3s-release\n\
             IMAGE app:1\nIMAGE rancher/mirrored-pause:3.6\n\
             APP web ./chart\nCOPY conf /etc/site\n"
        ),
    );
    write_file(
        &ctx.join("chart/Chart.yaml"),
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    write_file(
        &ctx.join("chart/values.yaml"),
        "image: docker.io/library/app:1\n",
    );
    write_file(
        &ctx.join("chart/templates/d.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n        - name: web\n          image: {{ .Values.image }}\n",
    );
    // Compressible: stored as zstd, so the compressor's output is part of what must repeat.
    write_file(
        &ctx.join("conf/site.yaml"),
        &"site: plant-7\nreplicas: 3\n".repeat(200),
    );
    write_file(&ctx.join("conf/bin/run.sh"), "#!/bin/sh\necho run\n");
    ctx
}

fn push_image(reg: &Registry, layout: &Path, tag: &str, repo: &str) -> String {
    let img = ImageBuilder::new(tag).build(layout).unwrap();
    img.push(reg.host(), repo, None).unwrap();
    img.digest
}

#[test]
fn k3s_of_any_version_from_a_release_mirror_locked_and_byte_identical() {
    let t = tempfile::tempdir().unwrap();
    let reg = Registry::start().unwrap();
    let rel = ReleaseServer::start().unwrap();
    let layout = t.path().join("layout");
    push_image(&reg, &layout, "pause", "rancher/mirrored-pause:3.6");
    push_image(
        &reg,
        &layout,
        "coredns",
        "rancher/mirrored-coredns-coredns:1.12.0",
    );
    let app1 = push_image(&reg, &layout, "app1", "library/app:1");
    let k3s = publish_k3s(&rel, K3S_TAG);
    let ctx = context(t.path());

    // Build 1: from inside the context, relative paths, its own cache.
    let out1 = t.path().join("out1/delivery.run");
    std::fs::create_dir_all(out1.parent().unwrap()).unwrap();
    let started = std::time::Instant::now();
    run_ok(ferry_build(
        &ctx,
        &reg,
        &rel,
        &[
            "-f",
            "Kubefile",
            "-o",
            "../out1/delivery.run",
            "--cache-dir",
            "../cache1",
        ],
    ));
    eprintln!("build 1 (empty cache): {:?}", started.elapsed());

    let info: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new(&out1).args(["--info", "--output", "json"]),
    ))
    .unwrap();
    assert_eq!(info["cluster"]["version"], K3S_TAG);
    let mut names: Vec<&str> = info["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    names.sort();
    // k3s's images from k3s-images.txt, pause deduplicated with the IMAGE line.
    assert_eq!(names, ["docker.io/library/app:1", COREDNS, PAUSE]);
    let payload = &info["payloads"][0];
    assert_eq!(payload["name"], "k3s");
    assert_eq!(payload["version"], K3S_TAG);
    assert_eq!(payload["files"]["bin/k3s"], payload_entry("k3s", "bin/k3s"));
    let x = t.path().join("x");
    run_ok(Command::new(&out1).arg("--extract").arg(&x));
    assert_eq!(
        std::fs::read(x.join(payload_entry("k3s", "bin/k3s"))).unwrap(),
        k3s,
        "the verified stand-in is what the bundle carries"
    );
    let requests: Vec<String> = rel.requests().into_iter().map(|r| r.0).collect();
    for asset in ["sha256sum-amd64.txt", "k3s", "k3s-images.txt"] {
        let want = format!("/k3s-io/k3s/releases/download/v1.32.3%2Bk3s1/{asset}");
        assert!(requests.contains(&want), "{want} not in {requests:?}");
    }

    let lock_path = ctx.join("ferry.lock");
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    for want in [
        format!("url = \"https://github.com/k3s-io/k3s/releases/download/v1.32.3%2Bk3s1/k3s\"\nsha256 = \"{}\"", hex_sha(&k3s)),
        format!("name = \"docker.io/library/app:1\"\ndigest = \"{app1}\"\nplatforms = [\"linux/amd64\"]"),
        format!("name = \"{COREDNS}\""),
        "kind = \"chart\"\npath = \"chart\"".into(),
        "kind = \"copy\"\npath = \"conf/bin/run.sh\"".into(),
        "helm = \"v".into(),
    ] {
        assert!(lock.contains(&want), "{want:?} not in ferry.lock:\n{lock}");
    }

    // Build 2: from another directory, absolute paths, an empty cache, held to the lock.
    let elsewhere = t.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let out2 = t.path().join("out2/delivery.run");
    std::fs::create_dir_all(out2.parent().unwrap()).unwrap();
    let kubefile = ctx.join("Kubefile");
    let cache2 = t.path().join("cache2");
    let started = std::time::Instant::now();
    run_ok(ferry_build(
        &elsewhere,
        &reg,
        &rel,
        &[
            "-f",
            kubefile.to_str().unwrap(),
            "-o",
            out2.to_str().unwrap(),
            "--cache-dir",
            cache2.to_str().unwrap(),
            "--locked",
        ],
    ));
    eprintln!(
        "build 2 (other cwd, empty cache, --locked): {:?}",
        started.elapsed()
    );
    let (a, b) = (sha256_hex(&out1), sha256_hex(&out2));
    eprintln!("delivery.run sha256: {a} and {b}");
    assert_eq!(a, b, "two builds of the same inputs are byte-identical");
    assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), lock);

    // A flipped byte in the served k3s: the build fails naming the asset and both
    // sha256s, and caches nothing.
    let served = rel.path(K3S_REPO, K3S_TAG, "k3s");
    let mut bad = k3s.clone();
    *bad.last_mut().unwrap() ^= 1;
    std::fs::write(&served, &bad).unwrap();
    let cache3 = t.path().join("cache3");
    let e = run_fail(ferry_build(
        &ctx,
        &reg,
        &rel,
        &["-o", "../out3.run", "--cache-dir", cache3.to_str().unwrap()],
    ));
    eprintln!("{e}");
    assert!(
        e.contains(&format!("k3s: downloaded sha256 {}", hex_sha(&bad)))
            && e.contains(&hex_sha(&k3s))
            && e.contains("sha256sum-amd64.txt")
            && e.contains("Kubefile:2"),
        "{e}"
    );
    assert!(!cache3.join("blobs/sha256").join(hex_sha(&bad)).exists());
    assert!(!cache3.join("blobs/sha256").join(hex_sha(&k3s)).exists());
    let leftovers: Vec<_> = std::fs::read_dir(cache3.join("downloads"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "nothing cached: {leftovers:?}");
    assert!(!t.path().join("out3.run").exists());
    std::fs::write(&served, &k3s).unwrap();

    // The tag moves in the registry: --locked refuses, naming the image, writing nothing.
    let app2 = push_image(&reg, &layout, "app2", "library/app:1");
    assert_ne!(app1, app2);
    let e = run_fail(ferry_build(
        &ctx,
        &reg,
        &rel,
        &["-o", "../out4.run", "--cache-dir", "../cache1", "--locked"],
    ));
    eprintln!("{e}");
    assert!(
        e.contains(&format!(
            "image docker.io/library/app:1: resolves to {app2} but ferry.lock has {app1}"
        )),
        "{e}"
    );
    assert!(!t.path().join("out4.run").exists());
    assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), lock);
    // Without --locked the build accepts the new digest and rewrites the lock.
    run_ok(ferry_build(
        &ctx,
        &reg,
        &rel,
        &["-o", "../out4.run", "--cache-dir", "../cache1"],
    ));
    assert!(std::fs::read_to_string(&lock_path).unwrap().contains(&app2));
}

fn hex_sha(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(b))
}

#[test]
fn a_missing_release_or_no_network_says_what_to_do() {
    let t = tempfile::tempdir().unwrap();
    let rel = ReleaseServer::start().unwrap();
    publish_k3s(&rel, K3S_TAG);
    write_file(
        &t.path().join("Kubefile"),
        "FROM scratch\nCLUSTER k3s v1.99.0+k3s1\n",
    );
    let build = |mirror: &str| {
        let mut c = Command::new(ferry());
        c.current_dir(t.path())
            .env(
                "FERRY_RELEASE_MIRROR",
                format!("https://github.com={mirror}"),
            )
            .args(["build", "-q", "-o", "out.run", "--cache-dir", "cache"]);
        c
    };
    let e = run_fail(build(&rel.url()));
    eprintln!("{e}");
    assert!(
        e.contains("Kubefile:2: payload k3s")
            && e.contains("k3s v1.99.0+k3s1: no such release")
            && e.contains("https://github.com/k3s-io/k3s/releases/download/v1.99.0%2Bk3s1/sha256sum-amd64.txt")
            && e.contains("The versions are listed at https://github.com/k3s-io/k3s/releases"),
        "{e}"
    );

    // Nothing listens on this port: as on a machine without network.
    let dead = format!("http://127.0.0.1:{}", free_port().unwrap());
    let started = std::time::Instant::now();
    let e = run_fail(build(&dead));
    eprintln!("{e} ({:?})", started.elapsed());
    assert!(
        e.contains(&format!("cannot reach {}", &dead["http://".len()..]))
            && e.contains("no network path")
            && e.contains("--payload k3s=<dir|file.tar.gz>")
            && e.contains("--release-mirror https://github.com=<proxy URL>"),
        "{e}"
    );
    assert!(!t.path().join("out.run").exists());
    assert!(!t.path().join("ferry.lock").exists());
}

#[test]
fn containerd_runtime_of_any_version_verified_and_resumed() {
    let t = tempfile::tempdir().unwrap();
    let rel = ReleaseServer::start().unwrap();
    // Versions the code does not name (CNI takes payloads/containerd's default).
    let (containerd, runc) = ("2.1.1", "1.3.0");
    let cni = "1.6.2";
    let tgz = |members: &[(&str, Vec<u8>)]| -> Vec<u8> {
        let d = tempfile::tempdir().unwrap();
        for (name, body) in members {
            let p = d.path().join("root").join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        let out = d.path().join("a.tgz");
        run_ok(
            Command::new("tar")
                .arg("-czf")
                .arg(&out)
                .arg("-C")
                .arg(d.path().join("root"))
                .arg("."),
        );
        std::fs::read(out).unwrap()
    };
    let c_asset = format!("containerd-static-{containerd}-linux-amd64.tar.gz");
    let c_tgz = tgz(&[
        ("bin/containerd", stand_in("containerd", 5)),
        ("bin/containerd-shim-runc-v2", stand_in("the runc shim", 6)),
        ("bin/ctr", stand_in("ctr", 7)),
        ("bin/containerd-stress", stand_in("containerd-stress", 8)),
    ]);
    let c_tag = format!("v{containerd}");
    let c_sums = format!("{c_asset}.sha256sum");
    rel.publish(
        "containerd/containerd",
        &c_tag,
        &c_sums,
        &[(&c_asset, &c_tgz)],
    );
    let runc_bin = stand_in("runc", 9);
    let r_tag = format!("v{runc}");
    let runc_files: [(&str, &[u8]); 2] = [("runc.amd64", &runc_bin), ("runc.arm64", b"other")];
    rel.publish("opencontainers/runc", &r_tag, "runc.sha256sum", &runc_files);
    let n_asset = format!("cni-plugins-linux-amd64-v{cni}.tgz");
    let plugins = ["bridge", "host-local", "loopback", "portmap", "dhcp"];
    let n_tgz = tgz(&plugins
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, stand_in(p, 10 + i as u32)))
        .collect::<Vec<_>>());
    let n_tag = format!("v{cni}");
    let n_sums = format!("{n_asset}.sha256");
    rel.publish(
        "containernetworking/plugins",
        &n_tag,
        &n_sums,
        &[(&n_asset, &n_tgz)],
    );
    // The runc download breaks off after 100 KiB once: the build resumes it.
    rel.cut_next("opencontainers/runc", &r_tag, "runc.amd64", 100 * 1024);

    write_file(
        &t.path().join("Kubefile"),
        &format!("FROM scratch\nRUNTIME containerd {containerd} runc={runc}\n"),
    );
    let out = run(Command::new(ferry())
        .current_dir(t.path())
        .args(["build", "-o", "rt.run", "--cache-dir", "cache"])
        .args([
            "--release-mirror",
            &format!("https://github.com={}", rel.url()),
        ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("runc.amd64: ") && stderr.contains("resuming at byte 102400"),
        "{stderr}"
    );
    let ranged: Vec<_> = rel
        .requests()
        .into_iter()
        .filter(|(p, r)| p.ends_with("/runc.amd64") && r.is_some())
        .collect();
    assert_eq!(ranged.len(), 1, "{:?}", rel.requests());
    assert_eq!(ranged[0].1.as_deref(), Some("bytes=102400-"));

    let bundle = t.path().join("rt.run");
    let info: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new(&bundle).args(["--info", "--output", "json"]),
    ))
    .unwrap();
    let p = &info["payloads"][0];
    assert_eq!(
        (p["name"].as_str(), p["version"].as_str()),
        (Some("containerd"), Some(containerd))
    );
    let mut roles: Vec<&str> = p["files"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        [
            "bin/containerd",
            "bin/containerd-shim-runc-v2",
            "bin/ctr",
            "bin/runc",
            "cni/bridge",
            "cni/host-local",
            "cni/loopback",
            "cni/portmap"
        ]
    );
    let x = t.path().join("x");
    run_ok(Command::new(&bundle).arg("--extract").arg(&x));
    assert_eq!(
        std::fs::read(x.join(payload_entry("containerd", "bin/runc"))).unwrap(),
        runc_bin,
        "the resumed download is whole"
    );
    let lock = std::fs::read_to_string(t.path().join("ferry.lock")).unwrap();
    for url in [
        format!(
            "https://github.com/containerd/containerd/releases/download/v{containerd}/{c_asset}"
        ),
        format!("https://github.com/opencontainers/runc/releases/download/v{runc}/runc.amd64"),
        format!(
            "https://github.com/containernetworking/plugins/releases/download/v{cni}/{n_asset}"
        ),
    ] {
        assert!(
            lock.contains(&format!("url = \"{url}\"")),
            "{url} not in\n{lock}"
        );
    }

    // A second build finds every asset in the cache: no release file is downloaded again.
    let before = rel.requests().len();
    std::fs::create_dir_all(t.path().join("again")).unwrap();
    run_ok(
        Command::new(ferry())
            .current_dir(t.path())
            .args([
                "build",
                "-q",
                "-o",
                "again/rt.run",
                "--cache-dir",
                "cache",
                "--locked",
            ])
            .args([
                "--release-mirror",
                &format!("https://github.com={}", rel.url()),
            ]),
    );
    let again: Vec<String> = rel.requests()[before..]
        .iter()
        .map(|r| r.0.clone())
        .collect();
    assert!(
        again
            .iter()
            .all(|p| p.ends_with(".sha256sum") || p.ends_with(".sha256")),
        "only the checksum files are asked again: {again:?}"
    );
    assert_eq!(
        sha256_hex(&bundle),
        sha256_hex(&t.path().join("again/rt.run"))
    );
}
