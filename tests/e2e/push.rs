//! Bundles in registries: `ferry push`, `ferry pull` and `FROM <bundle>` against real
//! Distribution registries (htpasswd Basic auth, and Distribution's own token auth with a
//! JWT-signing token server), read back by skopeo.

use ferry_tests::bins::{build_kubefile, ferry, noise, run_fail, run_ok, workspace};
use ferry_tests::images::ImageBuilder;
use ferry_tests::registry::{write_docker_config, Gateway, GatewayOptions, Registry};
use ferry_tests::token::TokenServer;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `ferry` with credentials only from `docker_dir` (never the developer's own) and the
/// content cache at `cache`.
fn ferry_in(docker_dir: &Path, cache: &Path) -> Command {
    let mut c = Command::new(ferry());
    c.env("DOCKER_CONFIG", docker_dir)
        .env("FERRY_CACHE_DIR", cache)
        .arg("--output")
        .arg("json");
    c
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

/// The demo images (`dir/layout`, tags a and b) and a base bundle `dir/base.run` carrying
/// them under two hosts, two files, an env, a hook and labels.
fn base_bundle(dir: &Path) -> PathBuf {
    run_ok(
        Command::new("bash")
            .arg(workspace().join("scripts/demo-images.sh"))
            .arg(dir),
    );
    std::fs::write(dir.join("hello.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(dir.join("motd"), "base motd\n").unwrap();
    build_kubefile(
        dir,
        "FROM scratch\nLABEL name=base\nLABEL version=1\n\
         IMAGE oci:layout:a AS docker.io/library/app:1\n\
         IMAGE oci:layout:b AS quay.io/library/app:1\n\
         COPY hello.sh /opt/demo/hello.sh\nCOPY motd /etc/motd\n\
         ENV SITE=one\nENV TIER=base\nRUN echo base-hook\n",
        "base.run",
        &["--no-payload"],
    )
}

fn skopeo_raw(reference: &str, creds: Option<&str>) -> Value {
    let mut c = Command::new("skopeo");
    c.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some(cr) = creds {
        c.arg(format!("--creds={cr}"));
    }
    json(&run_ok(c.arg(format!("docker://{reference}"))))
}

#[test]
fn push_then_pull_is_byte_identical_with_basic_auth_and_a_second_push_sends_no_blob() {
    let reg = Registry::start_with_basic_auth("ferry", "s3cret").unwrap();
    let t = tempfile::tempdir().unwrap();
    let bundle = base_bundle(t.path());
    let target = format!("{}/bundles/base:1", reg.host());
    let cache = t.path().join("cache");

    // Without credentials: a 401 that names the registry and says what to do.
    let err = run_fail(
        ferry_in(&t.path().join("nodocker"), &cache)
            .args(["push"])
            .arg(&bundle)
            .args([&target, "--insecure-registry", reg.host()]),
    );
    assert!(
        err.contains("401") && err.contains(reg.host()) && err.contains("docker login"),
        "{err}"
    );

    let docker = t.path().join("docker");
    write_docker_config(&docker, reg.host(), "ferry", "s3cret").unwrap();
    let push = |cache: &Path| {
        json(&run_ok(
            ferry_in(&docker, cache).arg("push").arg(&bundle).args([
                &target,
                "--insecure-registry",
                reg.host(),
            ]),
        ))
    };
    let first = push(&cache);
    eprintln!("first push: {first}");
    assert_eq!(first["images"], 2);
    let blobs = first["blobs"].as_u64().unwrap();
    assert_eq!(first["uploads"]["blobs_uploaded"].as_u64(), Some(blobs));
    assert_eq!(first["uploads"]["blobs_present"], 0);

    // The registry lists the tag; the index names the artifact and both images.
    let tags = json(&run_ok(Command::new("skopeo").args([
        "list-tags",
        "--tls-verify=false",
        "--creds=ferry:s3cret",
        &format!("docker://{}/bundles/base", reg.host()),
    ])));
    assert_eq!(tags["Tags"], serde_json::json!(["1"]));
    let index = skopeo_raw(&target, Some("ferry:s3cret"));
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(
        entries[0]["artifactType"], "application/vnd.ferry.bundle.v1+json",
        "{index}"
    );
    let names: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["annotations"]["io.containerd.image.name"].as_str())
        .collect();
    assert_eq!(names, ["docker.io/library/app:1", "quay.io/library/app:1"]);
    // Each image is a real manifest in the repository, and so is the artifact.
    let image = skopeo_raw(
        &format!(
            "{}/bundles/base@{}",
            reg.host(),
            entries[1]["digest"].as_str().unwrap()
        ),
        Some("ferry:s3cret"),
    );
    assert_eq!(image["layers"].as_array().unwrap().len(), 2, "{image}");
    let art = skopeo_raw(
        &format!(
            "{}/bundles/base@{}",
            reg.host(),
            entries[0]["digest"].as_str().unwrap()
        ),
        Some("ferry:s3cret"),
    );
    let titles: Vec<&str> = art["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["annotations"]["org.opencontainers.image.title"].as_str())
        .collect();
    assert_eq!(&titles[..3], ["installer", "bundle.json", "frame"], "{art}");
    assert!(
        titles.contains(&"files/rootfs/opt/demo/hello.sh"),
        "{titles:?}"
    );
    assert!(
        !titles.iter().any(|t| t.starts_with("oci/blobs/")),
        "images are not layers: {titles:?}"
    );

    // Pull into an empty cache: the identical file, and it checks.
    let pulled = t.path().join("pulled.run");
    let p = json(&run_ok(
        ferry_in(&docker, &t.path().join("empty-cache"))
            .args(["pull", &target, "-o"])
            .arg(&pulled)
            .args(["--insecure-registry", reg.host()]),
    ));
    eprintln!("pull: {p}");
    assert_eq!(sha256_file(&pulled), sha256_file(&bundle));
    assert_eq!(p["file_sha256"], sha256_file(&bundle).as_str());
    assert_eq!(
        std::fs::read_to_string(t.path().join("pulled.run.sha256")).unwrap(),
        format!("{}  pulled.run\n", sha256_file(&bundle))
    );
    assert_eq!(p["blobs_from_cache"], 0);
    run_ok(Command::new(&pulled).arg("--check"));
    assert!(!t.path().join("pulled.run.partial").exists());
    assert!(!t.path().join("pulled.run.partial.json").exists());

    // A delta against the pushed bundle, named by its reference: pulled once into the
    // build's cache, and the delta records the pushed bundle as its base.
    let v2 = t.path().join("v2");
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::write(v2.join("motd"), "v2 motd\n").unwrap();
    std::fs::write(
        v2.join("Kubefile"),
        format!(
            "FROM scratch\nLABEL name=base\nLABEL version=2\n\
             IMAGE oci:{}:a AS docker.io/library/app:1\nCOPY motd /etc/motd\n",
            t.path().join("layout").display()
        ),
    )
    .unwrap();
    let delta = v2.join("v2.run");
    let built = json(&run_ok(
        ferry_in(&docker, &t.path().join("delta-cache"))
            .args(["build", "--output", "json", "--no-payload", "-f"])
            .arg(v2.join("Kubefile"))
            .arg("-o")
            .arg(&delta)
            .args(["--delta-from", &target, "--insecure-registry", reg.host()]),
    ));
    let base_id = ferry_bundle::Bundle::open(&bundle)
        .unwrap()
        .footer
        .payload_sha256;
    assert!(
        built["delta"]["base"]
            .as_str()
            .unwrap()
            .contains(&base_id.to_string()),
        "{built}"
    );
    let info = json(&run_ok(
        Command::new(&delta).args(["--info", "--output", "json"]),
    ));
    assert_eq!(info["delta"]["base"], base_id.to_string(), "{info}");

    // A second push sends no blob; a push from another machine (no record) neither.
    for c in [&cache, &t.path().join("other-cache")] {
        let again = push(c);
        assert_eq!(again["uploads"]["blobs_uploaded"], 0, "{again}");
        assert_eq!(again["uploads"]["bytes_uploaded"], 0, "{again}");
        assert_eq!(again["uploads"]["blobs_present"].as_u64(), Some(blobs));
        assert_eq!(again["digest"], first["digest"], "same bundle, same index");
    }
}

#[test]
fn token_auth_from_a_pushed_base_adds_an_image_and_mounts_the_base_blobs() {
    let tokens = TokenServer::start("robot", "t0ken-pw").unwrap();
    let reg = Registry::start_with_token_auth(&tokens).unwrap();
    let t = tempfile::tempdir().unwrap();
    let base = base_bundle(t.path());
    let docker = t.path().join("docker");
    write_docker_config(&docker, reg.host(), "robot", "t0ken-pw").unwrap();
    let cache = t.path().join("cache");
    let base_ref = format!("{}/bundles/base:1", reg.host());
    // The token realm is plain HTTP too: credentials go there only when it is listed.
    let insecure = [
        "--insecure-registry",
        reg.host(),
        "--insecure-registry",
        tokens.host(),
    ];
    let pushed = json(&run_ok(
        ferry_in(&docker, &cache)
            .arg("push")
            .arg(&base)
            .arg(&base_ref)
            .args(insecure),
    ));
    let scopes = tokens.queries().join("\n");
    assert!(
        ["pull%2Cpush", "pull,push", "push%2Cpull", "push,pull"]
            .iter()
            .any(|a| scopes.contains(&format!("scope=repository:bundles/base:{a}"))),
        "{scopes}"
    );

    // A layered Kubefile: FROM the pushed base, one more image, one file replaced.
    let app = t.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let extra = ImageBuilder::new("extra")
        .file("/extra.txt", "the new image\n")
        .build(&app.join("layout"))
        .unwrap();
    std::fs::write(app.join("motd"), "app motd\n").unwrap();
    let kubefile = format!(
        "FROM {base_ref}\nLABEL name=app\nIMAGE {} AS docker.io/library/extra:2\n\
         COPY motd /etc/motd\nENV TIER=app\nRUN echo app-hook\n",
        extra.oci_ref()
    );
    let build_cache = t.path().join("build-cache");
    std::fs::write(app.join("Kubefile"), &kubefile).unwrap();
    let listed = json(&run_ok(
        ferry_in(&docker, &build_cache)
            .args(["images", "-f"])
            .arg(app.join("Kubefile"))
            .args(insecure),
    ));
    assert_eq!(
        listed["images"]["docker.io/library/app:1"]["origins"][0]["via"],
        "FROM"
    );
    assert_eq!(
        listed["images"]["docker.io/library/extra:2"]["origins"][0]["via"],
        "IMAGE"
    );
    let bundle = app.join("app.run");
    let report = json(&run_ok(
        ferry_in(&docker, &build_cache)
            .args(["build", "-f"])
            .arg(app.join("Kubefile"))
            .arg("-o")
            .arg(&bundle)
            .arg("--no-payload")
            .args(insecure),
    ));
    eprintln!("build: {report}");
    assert_eq!(report["images"], 3);
    assert_eq!(report["inherited"]["images"], 2);
    assert_eq!(
        report["inherited"]["files"], 1,
        "hello.sh; /etc/motd is replaced"
    );
    assert_eq!(report["base"]["source"], base_ref.as_str());
    run_ok(Command::new(&bundle).arg("--check"));
    let info = json(&run_ok(
        Command::new(&bundle).args(["--info", "--output", "json"]),
    ));
    let base_info = json(&run_ok(
        Command::new(&base).args(["--info", "--output", "json"]),
    ));
    assert_eq!(
        info["base"]["digest"],
        format!("sha256:{}", base_info["payload_sha256"].as_str().unwrap())
    );
    assert_eq!(info["base"]["registry_digest"], pushed["digest"]);
    let mut images: Vec<(String, bool)> = info["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["inherited"] == true,
            )
        })
        .collect();
    images.sort();
    assert_eq!(
        images,
        [
            ("docker.io/library/app:1".to_string(), true),
            ("docker.io/library/extra:2".to_string(), false),
            ("quay.io/library/app:1".to_string(), true),
        ]
    );
    assert_eq!(info["env"]["SITE"], "one");
    assert_eq!(info["env"]["TIER"], "app", "the Kubefile's ENV wins");
    let hooks: Vec<&str> = info["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["command"].as_str().unwrap())
        .collect();
    assert_eq!(hooks, ["echo base-hook", "echo app-hook"]);
    let text = run_ok(Command::new(&bundle).arg("--info"));
    assert!(
        text.contains(&format!("base:      FROM {base_ref}")),
        "{text}"
    );
    assert!(
        text.contains("docker.io/library/extra:2") && text.contains("(from base)"),
        "{text}"
    );

    // The base was pulled once into the build's cache; a rebuild reads it from there.
    let cached: Vec<PathBuf> = std::fs::read_dir(build_cache.join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|x| x != "sha256"))
        .collect();
    assert_eq!(cached.len(), 1);
    assert_eq!(sha256_file(&cached[0]), sha256_file(&base));
    let mtime = std::fs::metadata(&cached[0]).unwrap().modified().unwrap();
    run_ok(
        ferry_in(&docker, &build_cache)
            .args(["build", "-f"])
            .arg(app.join("Kubefile"))
            .arg("-o")
            .arg(app.join("again.run"))
            .arg("--no-payload")
            .args(insecure),
    );
    assert_eq!(
        std::fs::metadata(&cached[0]).unwrap().modified().unwrap(),
        mtime
    );
    assert_eq!(
        sha256_file(&app.join("again.run")),
        sha256_file(&bundle),
        "builds are reproducible"
    );

    // Pushing the layered bundle next to its base mounts the base's blobs.
    let app_ref = format!("{}/bundles/app:1", reg.host());
    let before = tokens.requests();
    let p = json(&run_ok(
        ferry_in(&docker, &cache)
            .arg("push")
            .arg(&bundle)
            .arg(&app_ref)
            .args(insecure),
    ));
    eprintln!("app push: {p}");
    let u = &p["uploads"];
    assert!(u["blobs_mounted"].as_u64().unwrap() >= 5, "{p}");
    // What is new: the app's image and files, bundle.json, the frame — and the stub, whose
    // size marker holds this bundle's length (so no two bundles share a stub blob).
    let size = std::fs::metadata(&bundle).unwrap().len();
    let stub = ferry_bundle::Bundle::open(&bundle)
        .unwrap()
        .footer
        .payload_offset;
    assert!(
        u["bytes_uploaded"].as_u64().unwrap() < stub + (size - stub) / 4,
        "only what is new is uploaded: {p}"
    );
    let scopes = tokens.queries()[before..].join("\n");
    assert!(
        scopes.contains("repository:bundles/base:pull"),
        "the mount asks to read the base: {scopes}"
    );
    let pulled = t.path().join("app-pulled.run");
    run_ok(
        ferry_in(&docker, &t.path().join("empty"))
            .args(["pull", &app_ref, "-o"])
            .arg(&pulled)
            .args(insecure),
    );
    assert_eq!(sha256_file(&pulled), sha256_file(&bundle));
}

#[test]
fn an_interrupted_pull_resumes_where_it_stopped() {
    let reg = Registry::start().unwrap();
    let t = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("bash")
            .arg(workspace().join("scripts/demo-images.sh"))
            .arg(t.path()),
    );
    // Incompressible files, stored as they are: several large pieces.
    for (seed, name) in ["one.bin", "two.bin", "three.bin"].iter().enumerate() {
        std::fs::write(t.path().join(name), noise(6 << 20, seed as u32 + 1)).unwrap();
    }
    let bundle = build_kubefile(
        t.path(),
        "FROM scratch\nIMAGE oci:layout:a AS docker.io/library/app:1\n\
         COPY one.bin /data/one.bin\nCOPY two.bin /data/two.bin\nCOPY three.bin /data/three.bin\n",
        "big.run",
        &["--no-payload"],
    );
    let docker = t.path().join("docker");
    let cache = t.path().join("cache");
    run_ok(ferry_in(&docker, &cache).arg("push").arg(&bundle).args([
        &format!("{}/b/big:1", reg.host()),
        "--insecure-registry",
        reg.host(),
    ]));
    let out = t.path().join("pulled.run");
    // The network goes away after a few blobs: the pull fails and says how to go on.
    let gone = Gateway::start(
        &reg,
        GatewayOptions {
            blobs_then_fail: Some(5),
            ..Default::default()
        },
    )
    .unwrap();
    let err = run_fail(
        ferry_in(&docker, &t.path().join("empty"))
            .args(["pull", &format!("{}/b/big:1", gone.host()), "-o"])
            .arg(&out)
            .args(["--insecure-registry", gone.host()]),
    );
    assert!(err.contains("run the same pull again to resume"), "{err}");
    let state: Value =
        serde_json::from_slice(&std::fs::read(t.path().join("pulled.run.partial.json")).unwrap())
            .unwrap();
    assert!(state["done"].as_u64().unwrap() > 0, "{state}");
    // Again, over a network that cuts the first two downloads off halfway.
    let flaky = Gateway::start(
        &reg,
        GatewayOptions {
            truncate_first_blobs: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let p = json(&run_ok(
        ferry_in(&docker, &t.path().join("empty"))
            .args(["pull", &format!("{}/b/big:1", flaky.host()), "-o"])
            .arg(&out)
            .args(["--insecure-registry", flaky.host()]),
    ));
    eprintln!("resumed pull: {p}");
    assert_eq!(p["bytes_resumed"], state["done"]);
    assert_eq!(
        p["file_sha256"],
        sha256_file(&bundle).as_str(),
        "the kept part is hashed too"
    );
    let size = std::fs::metadata(&bundle).unwrap().len();
    assert!(
        p["bytes_fetched"].as_u64().unwrap() < size,
        "what the first pull wrote is not fetched again: {p}"
    );
    assert_eq!(sha256_file(&out), sha256_file(&bundle));
}

#[test]
fn from_a_file_inherits_everything_and_the_kubefile_replaces_by_name() {
    let t = tempfile::tempdir().unwrap();
    let base = base_bundle(t.path());
    std::fs::write(t.path().join("hello2.sh"), "#!/bin/sh\necho replaced\n").unwrap();
    // The same name with other content replaces the base's image.
    let bundle = build_kubefile(
        t.path(),
        "FROM ./base.run\nIMAGE oci:layout:b AS docker.io/library/app:1\n\
         COPY hello2.sh /opt/demo/hello.sh\nLABEL version=2\n",
        "layered.run",
        &["--no-payload"],
    );
    run_ok(Command::new(&bundle).arg("--check"));
    let info = json(&run_ok(
        Command::new(&bundle).args(["--info", "--output", "json"]),
    ));
    let base_info = json(&run_ok(
        Command::new(&base).args(["--info", "--output", "json"]),
    ));
    assert_eq!(info["name"], "base", "the base's name label is inherited");
    assert_eq!(info["version"], "2");
    assert_eq!(info["base"]["source"], "./base.run");
    assert!(info["base"].get("registry_digest").is_none());
    let by_name = |v: &Value, n: &str| -> Value {
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == n)
            .unwrap()
            .clone()
    };
    let app = by_name(&info, "docker.io/library/app:1");
    assert_eq!(
        app["inherited"],
        Value::Null,
        "replaced, not inherited: {app}"
    );
    assert_eq!(
        app["digest"],
        by_name(&base_info, "quay.io/library/app:1")["digest"]
    );
    assert_eq!(by_name(&info, "quay.io/library/app:1")["inherited"], true);
    let files: Vec<(String, bool)> = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["dest"].as_str().unwrap().to_string(),
                f["inherited"] == true,
            )
        })
        .collect();
    assert!(
        files.contains(&("/opt/demo/hello.sh".into(), false)),
        "{files:?}"
    );
    assert!(files.contains(&("/etc/motd".into(), true)), "{files:?}");
    let out = t.path().join("x");
    run_ok(Command::new(&bundle).arg("--extract").arg(&out));
    assert_eq!(
        std::fs::read_to_string(out.join("files/rootfs/opt/demo/hello.sh")).unwrap(),
        "#!/bin/sh\necho replaced\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("files/rootfs/etc/motd")).unwrap(),
        "base motd\n"
    );
    // A base that is not there is named with its Kubefile line.
    let err = run_fail(
        Command::new(ferry())
            .args(["build", "-f"])
            .arg({
                std::fs::write(t.path().join("K2"), "FROM ./nope.run\n").unwrap();
                t.path().join("K2")
            })
            .arg("-o")
            .arg(t.path().join("n.run"))
            .arg("--no-payload"),
    );
    assert!(err.contains("K2:1") && err.contains("nope.run"), "{err}");
}
