//! The builder's registry client against a real Distribution registry filled with real
//! images: auth flavours, mirrors, digest pins, platform selection, the content cache, and
//! what happens when the registry serves tampered bytes or fails.
//!
//! These call `ferry_builder::pull` as a library: the point is the client's behaviour on
//! the wire, which `ferry build` then only wraps.

use anyhow::Result;
use ferry_builder::pull::{pull, ContentCache, Mirror, PullError, PullOptions};
use ferry_bundle::reference::Reference;
use ferry_tests::images::{make_index, ImageBuilder, OciImage};
use ferry_tests::registry::{write_docker_config, Gateway, GatewayOptions, Registry};
use std::path::Path;
use std::time::Duration;
use tempfile::TempDir;

/// Options for talking to loopback registries over HTTP, with credentials only from the
/// given docker config (never the developer's own `~/.docker`).
fn opts(insecure: &[&str], docker_config: &Path) -> PullOptions {
    PullOptions {
        insecure_registries: insecure.iter().map(|h| h.to_string()).collect(),
        docker_config: Some(docker_config.to_path_buf()),
        retry_delay: Duration::from_millis(20),
        platforms: vec!["linux/amd64".parse().unwrap()],
        ..Default::default()
    }
}

/// A temp dir with an empty cache and a path for a (missing) docker config.
struct Env {
    dir: TempDir,
    cache: ContentCache,
}

impl Env {
    fn new() -> Result<Env> {
        let dir = tempfile::tempdir()?;
        let cache = ContentCache::open(dir.path().join("cache"))?;
        Ok(Env { dir, cache })
    }
    fn no_config(&self) -> std::path::PathBuf {
        self.dir.path().join("no-docker-config/config.json")
    }
    fn layout(&self) -> std::path::PathBuf {
        self.dir.path().join("layout")
    }
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn stray_temp_files(cache: &ContentCache) -> usize {
    std::fs::read_dir(cache.blob_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count()
}

#[test]
fn anonymous_pull_fills_the_cache_and_a_second_pull_fetches_nothing() -> Result<()> {
    let reg = Registry::start()?;
    let env = Env::new()?;
    let img = ImageBuilder::new("v1")
        .file("/etc/hello", "hello from ferry\n")
        .random_layer_mib(3)
        .cmd(&["cat", "/etc/hello"])
        .build(&env.layout())?;
    img.push(reg.host(), "apps/hello:1.0", None)?;

    let r = reference(&format!("{}/apps/hello:1.0", reg.host()));
    let o = opts(&[reg.host()], &env.no_config());
    let first = pull(&r, &o, &env.cache)?;
    assert_eq!(first.reference, r);
    assert_eq!(
        first.root.digest.to_string(),
        img.digest,
        "root is the pushed manifest"
    );
    assert_eq!(
        first.root.media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(first.platforms, vec!["linux/amd64"]);
    // manifest + config + 2 layers, each once, each in the cache with the right content.
    assert_eq!(first.blobs.len(), 4, "{:?}", first.blobs);
    let mut expected: Vec<String> = img.config_and_layers()?;
    expected.insert(0, img.digest.clone());
    let got: Vec<String> = first.blobs.iter().map(|b| b.digest.to_string()).collect();
    assert_eq!(got, expected);
    for b in &first.blobs {
        let path = env.cache.path(&b.digest).expect("blob in cache");
        assert_eq!(std::fs::metadata(&path)?.len(), b.size);
        assert!(env.cache.verify(&b.digest)?, "{path:?} has its digest");
    }
    let total: u64 = first.blobs.iter().map(|b| b.size).sum();
    assert!(total > 3 << 20, "the random layer is really there");
    assert_eq!(first.stats.blobs_fetched, 4);
    assert_eq!(first.stats.blobs_reused, 0);
    assert_eq!(first.stats.bytes_fetched, total);

    let second = pull(&r, &o, &env.cache)?;
    assert_eq!(second.root, first.root);
    assert_eq!(second.blobs, first.blobs);
    assert_eq!(second.stats.blobs_fetched, 0, "nothing fetched twice");
    assert_eq!(second.stats.bytes_fetched, 0);
    assert_eq!(second.stats.blobs_reused, 4);
    assert_eq!(stray_temp_files(&env.cache), 0);
    Ok(())
}

#[test]
fn digest_pinned_pull_and_clear_not_found() -> Result<()> {
    let reg = Registry::start()?;
    let env = Env::new()?;
    let img = ImageBuilder::new("v1").build(&env.layout())?;
    img.push(reg.host(), "pinned/app:v1", None)?;
    let o = opts(&[reg.host()], &env.no_config());

    let r = reference(&format!("{}/pinned/app@{}", reg.host(), img.digest));
    let p = pull(&r, &o, &env.cache)?;
    assert_eq!(p.root.digest.to_string(), img.digest);
    assert_eq!(p.reference.tag, None);
    assert_eq!(p.stats.blobs_fetched, 3);

    let missing = format!("sha256:{}", "0".repeat(64));
    let r = reference(&format!("{}/pinned/app@{missing}", reg.host()));
    let err = pull(&r, &o, &env.cache).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, PullError::NotFound { .. }), "{msg}");
    assert!(
        msg.contains(reg.host()) && msg.contains(&missing) && msg.contains("404"),
        "{msg}"
    );

    let r = reference(&format!("{}/pinned/app:no-such-tag", reg.host()));
    let msg = pull(&r, &o, &env.cache).unwrap_err().to_string();
    eprintln!("{msg}");
    assert!(msg.contains("manifest no-such-tag not found"), "{msg}");
    Ok(())
}

#[test]
fn basic_auth_uses_docker_config_and_explains_a_401() -> Result<()> {
    let reg = Registry::start_with_basic_auth("ferry", "s3cret")?;
    let env = Env::new()?;
    let img = ImageBuilder::new("v1").build(&env.layout())?;
    img.push(reg.host(), "private/app:v1", reg.credentials())?;
    let r = reference(&format!("{}/private/app:v1", reg.host()));

    let err = pull(&r, &opts(&[reg.host()], &env.no_config()), &env.cache).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, PullError::Unauthorized { .. }), "{msg}");
    assert!(msg.contains(&format!("401 from {}", reg.host())), "{msg}");
    assert!(
        msg.contains(&format!("docker login {}", reg.host())),
        "{msg}"
    );

    let wrong = write_docker_config(&env.dir.path().join("wrong"), reg.host(), "ferry", "nope")?;
    let msg = pull(&r, &opts(&[reg.host()], &wrong), &env.cache)
        .unwrap_err()
        .to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("401") && msg.contains(&wrong.display().to_string()),
        "{msg}"
    );

    let good = write_docker_config(
        &env.dir.path().join("docker"),
        reg.host(),
        "ferry",
        "s3cret",
    )?;
    let p = pull(&r, &opts(&[reg.host()], &good), &env.cache)?;
    assert_eq!(p.root.digest.to_string(), img.digest);
    assert_eq!(p.stats.blobs_fetched, 3);

    // The username/password form of an auths entry works too.
    let alt = env.dir.path().join("alt/config.json");
    std::fs::create_dir_all(alt.parent().unwrap())?;
    std::fs::write(
        &alt,
        format!(
            r#"{{"auths":{{"http://{}/v2/":{{"username":"ferry","password":"s3cret"}}}}}}"#,
            reg.host()
        ),
    )?;
    let again = pull(&r, &opts(&[reg.host()], &alt), &env.cache)?;
    assert_eq!(again.stats.blobs_fetched, 0);
    Ok(())
}

#[test]
fn bearer_token_flow_fetches_one_token_for_all_blobs() -> Result<()> {
    let reg = Registry::start()?;
    let env = Env::new()?;
    let img = ImageBuilder::new("v1")
        .random_layer_mib(1)
        .build(&env.layout())?;
    img.push(reg.host(), "team/app:v1", None)?;
    let gw = Gateway::start(
        &reg,
        GatewayOptions {
            bearer: Some(("robot".into(), "t0ken-pw".into())),
            ..Default::default()
        },
    )?;
    let r = reference(&format!("{}/team/app:v1", gw.host()));

    let cfg = write_docker_config(
        &env.dir.path().join("docker"),
        gw.host(),
        "robot",
        "t0ken-pw",
    )?;
    let p = pull(&r, &opts(&[gw.host()], &cfg), &env.cache)?;
    assert_eq!(p.root.digest.to_string(), img.digest);
    assert_eq!(p.stats.blobs_fetched, 4);
    assert_eq!(
        gw.token_requests(),
        1,
        "one token, shared by the parallel downloads"
    );
    let q = gw.last_token_query();
    assert!(
        q.contains("service=ferry-test") && q.contains("scope=repository:team/app:pull"),
        "{q}"
    );

    let env2 = Env::new()?;
    let bad = write_docker_config(&env2.dir.path().join("docker"), gw.host(), "robot", "wrong")?;
    let err = pull(&r, &opts(&[gw.host()], &bad), &env2.cache).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, PullError::Token { .. }), "{msg}");
    assert!(
        msg.contains("credentials rejected") && msg.contains("/token"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn mirror_serves_docker_hub_names_without_renaming() -> Result<()> {
    let reg = Registry::start()?;
    let env = Env::new()?;
    let img = ImageBuilder::new("v1").build(&env.layout())?;
    img.push(reg.host(), "hub/library/busybox:1.36", None)?;

    let mut o = opts(&[reg.host()], &env.no_config());
    o.mirrors = vec![format!("docker.io={}/hub", reg.host())
        .parse::<Mirror>()
        .unwrap()];
    let r = reference("busybox:1.36");
    let p = pull(&r, &o, &env.cache)?;
    assert_eq!(p.reference.to_string(), "docker.io/library/busybox:1.36");
    assert_eq!(p.root.digest.to_string(), img.digest);

    let err = pull(&reference("nginx:1.27"), &o, &env.cache)
        .unwrap_err()
        .to_string();
    eprintln!("{err}");
    assert!(err.contains("docker.io/library/nginx:1.27"), "{err}");
    assert!(
        err.contains(&format!("{} (mirror of docker.io)", reg.host())),
        "{err}"
    );
    assert!(err.contains("the mirror lacks it"), "{err}");
    Ok(())
}

#[test]
fn tampered_blob_is_named_and_never_cached() -> Result<()> {
    let reg = Registry::start()?;
    let env = Env::new()?;
    let img = ImageBuilder::new("v1")
        .random_layer_mib(1)
        .build(&env.layout())?;
    img.push(reg.host(), "victim/app:v1", None)?;
    let layer = img.config_and_layers()?.pop().unwrap();
    let data = reg.blob_data_path(&layer);
    let mut bytes = std::fs::read(&data)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff; // same size, different content
    std::fs::write(&data, &bytes)?;

    let r = reference(&format!("{}/victim/app:v1", reg.host()));
    let err = pull(&r, &opts(&[reg.host()], &env.no_config()), &env.cache).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, PullError::DigestMismatch { .. }), "{msg}");
    assert!(
        msg.contains(&format!("layer {layer}")) && msg.contains(reg.host()),
        "{msg}"
    );
    let digest = ferry_bundle::Sha256Digest::parse(&layer).unwrap();
    assert!(
        env.cache.path(&digest).is_none(),
        "nothing stored under the layer's name"
    );
    assert_eq!(stray_temp_files(&env.cache), 0);
    Ok(())
}

#[test]
fn retries_through_503s() -> Result<()> {
    let reg = Registry::start()?;
    let env = Env::new()?;
    let img = ImageBuilder::new("v1").build(&env.layout())?;
    img.push(reg.host(), "flaky/app:v1", None)?;
    let gw = Gateway::start(
        &reg,
        GatewayOptions {
            fail_first: 3,
            ..Default::default()
        },
    )?;
    let r = reference(&format!("{}/flaky/app:v1", gw.host()));
    let p = pull(&r, &opts(&[gw.host()], &env.no_config()), &env.cache)?;
    assert_eq!(p.root.digest.to_string(), img.digest);
    assert!(gw.v2_requests() >= 3 + 4, "the 503s were retried");

    let gw = Gateway::start(
        &reg,
        GatewayOptions {
            fail_first: 100,
            ..Default::default()
        },
    )?;
    let r = reference(&format!("{}/flaky/app:v1", gw.host()));
    let mut o = opts(&[gw.host()], &env.no_config());
    o.attempts = 3;
    let msg = pull(&r, &o, &ContentCache::open(env.dir.path().join("c2"))?)
        .unwrap_err()
        .to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("503") && msg.contains("after 3 attempt(s)"),
        "{msg}"
    );
    assert_eq!(gw.v2_requests(), 3);
    Ok(())
}

#[test]
fn broken_transfers_are_retried_and_never_cached_half_done() -> Result<()> {
    let reg = Registry::start()?;
    let env = Env::new()?;
    let img = ImageBuilder::new("v1")
        .random_layer_mib(2)
        .build(&env.layout())?;
    img.push(reg.host(), "cut/app:v1", None)?;
    let gw = Gateway::start(
        &reg,
        GatewayOptions {
            truncate_first_blobs: 2,
            ..Default::default()
        },
    )?;
    let r = reference(&format!("{}/cut/app:v1", gw.host()));
    let p = pull(&r, &opts(&[gw.host()], &env.no_config()), &env.cache)?;
    assert_eq!(p.stats.blobs_fetched, 4);
    for b in &p.blobs {
        assert!(env.cache.verify(&b.digest)?);
    }
    assert_eq!(stray_temp_files(&env.cache), 0);

    // Every attempt cut off: a clear error, and nothing under the blobs' names.
    let gw = Gateway::start(
        &reg,
        GatewayOptions {
            truncate_first_blobs: 1000,
            ..Default::default()
        },
    )?;
    let r = reference(&format!("{}/cut/app:v1", gw.host()));
    let mut o = opts(&[gw.host()], &env.no_config());
    o.attempts = 2;
    let cache = ContentCache::open(env.dir.path().join("c2"))?;
    let msg = pull(&r, &o, &cache).unwrap_err().to_string();
    eprintln!("{msg}");
    assert!(msg.contains("failed after 2 attempt(s)"), "{msg}");
    let layers = img.config_and_layers()?;
    for d in &layers {
        let d = ferry_bundle::Sha256Digest::parse(d).unwrap();
        assert!(cache.path(&d).is_none());
    }
    assert_eq!(stray_temp_files(&cache), 0);
    Ok(())
}

/// An amd64 and an arm64 image joined in one OCI index, pushed to `repo:multi`.
fn push_multi_arch(
    reg: &Registry,
    layout: &Path,
    repo: &str,
    format: Option<&str>,
) -> Result<(OciImage, OciImage, OciImage)> {
    let amd = ImageBuilder::new("amd64")
        .platform("linux/amd64")
        .build(layout)?;
    let arm = ImageBuilder::new("arm64")
        .platform("linux/arm64/v8")
        .build(layout)?;
    let index = make_index(layout, "multi", &[&amd, &arm])?;
    index.push_as(reg.host(), &format!("{repo}:multi"), None, format)?;
    Ok((amd, arm, index))
}

#[test]
fn platform_selection_from_an_oci_index() -> Result<()> {
    let reg = Registry::start()?;
    let env = Env::new()?;
    let (amd, arm, index) = push_multi_arch(&reg, &env.layout(), "multi/app", None)?;
    let r = reference(&format!("{}/multi/app:multi", reg.host()));
    let mut o = opts(&[reg.host()], &env.no_config());

    // One platform: the root is that platform's manifest; the index is not carried.
    o.platforms = vec!["linux/arm64".parse().unwrap()];
    let p = pull(&r, &o, &env.cache)?;
    assert_eq!(p.root.digest.to_string(), arm.digest);
    assert_eq!(p.platforms, vec!["linux/arm64/v8"]);
    let digests: Vec<String> = p.blobs.iter().map(|b| b.digest.to_string()).collect();
    assert!(
        !digests.contains(&index.digest) && !digests.contains(&amd.digest),
        "{digests:?}"
    );
    assert_eq!(digests.len(), 3);

    // Several platforms: the original index is kept, byte for byte, with both images.
    o.platforms = vec![
        "linux/amd64".parse().unwrap(),
        "linux/arm64/v8".parse().unwrap(),
    ];
    let p = pull(&r, &o, &env.cache)?;
    assert_eq!(p.root.digest.to_string(), index.digest);
    assert_eq!(p.root.media_type, "application/vnd.oci.image.index.v1+json");
    assert_eq!(p.platforms, vec!["linux/amd64", "linux/arm64/v8"]);
    let digests: Vec<String> = p.blobs.iter().map(|b| b.digest.to_string()).collect();
    assert_eq!(digests[0], index.digest);
    assert!(digests.contains(&amd.digest) && digests.contains(&arm.digest));
    assert_eq!(digests.len(), 1 + 3 + 3);
    // The index itself was cached by the first pull (it is what the tag resolved to).
    assert_eq!(p.stats.blobs_fetched, 3, "only the amd64 image was new");
    assert_eq!(p.stats.blobs_reused, 1 + 3);

    // A platform the index lacks: the error lists what it offers.
    o.platforms = vec!["linux/s390x".parse().unwrap()];
    let msg = pull(&r, &o, &env.cache).unwrap_err().to_string();
    eprintln!("{msg}");
    assert!(msg.contains("no image for linux/s390x"), "{msg}");
    assert!(msg.contains("linux/amd64, linux/arm64/v8"), "{msg}");

    // Pinned to the index by digest with one platform: the index stays the root, so the
    // pinned digest can be served from the bundle.
    let pinned = reference(&format!("{}/multi/app@{}", reg.host(), index.digest));
    o.platforms = vec!["linux/amd64".parse().unwrap()];
    let p = pull(&pinned, &o, &env.cache)?;
    assert_eq!(p.root.digest.to_string(), index.digest);
    assert_eq!(p.platforms, vec!["linux/amd64"]);
    Ok(())
}

#[test]
fn docker_schema2_manifest_list_and_platform_mismatch() -> Result<()> {
    let reg = Registry::start()?;
    let env = Env::new()?;
    push_multi_arch(&reg, &env.layout(), "docker/app", Some("v2s2"))?;
    let r = reference(&format!("{}/docker/app:multi", reg.host()));
    let mut o = opts(&[reg.host()], &env.no_config());
    o.platforms = vec![
        "linux/amd64".parse().unwrap(),
        "linux/arm64".parse().unwrap(),
    ];
    let p = pull(&r, &o, &env.cache)?;
    assert_eq!(
        p.root.media_type,
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(p.platforms, vec!["linux/amd64", "linux/arm64/v8"]);
    let manifests: Vec<_> = p
        .blobs
        .iter()
        .filter(|b| b.media_type == "application/vnd.docker.distribution.manifest.v2+json")
        .collect();
    assert_eq!(manifests.len(), 2);

    // A single-platform image asked for another platform explicitly.
    let single = ImageBuilder::new("one")
        .platform("linux/amd64")
        .build(&env.dir.path().join("l2"))?;
    single.push(reg.host(), "single/app:v1", None)?;
    o.platforms = vec!["linux/arm64".parse().unwrap()];
    let r = reference(&format!("{}/single/app:v1", reg.host()));
    let err = pull(&r, &o, &env.cache).unwrap_err();
    assert!(matches!(err, PullError::PlatformMismatch { .. }), "{err}");
    Ok(())
}

#[test]
fn plain_http_is_only_used_when_listed() -> Result<()> {
    let reg = Registry::start()?;
    let env = Env::new()?;
    let r = reference(&format!("{}/any/app:v1", reg.host()));
    let mut o = opts(&[], &env.no_config());
    o.attempts = 1;
    let err = pull(&r, &o, &env.cache).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, PullError::Connect { .. }), "{msg}");
    assert!(
        msg.contains(&format!("--insecure-registry {}", reg.host())),
        "{msg}"
    );
    Ok(())
}

#[test]
fn docker_archive_helper_writes_a_docker_save_tar() -> Result<()> {
    let env = Env::new()?;
    let img = ImageBuilder::new("v1").build(&env.layout())?;
    let out = env.dir.path().join("img.tar");
    img.to_docker_archive(&out, "example.com/app:1")?;
    let mut names = Vec::new();
    for entry in tar::Archive::new(std::fs::File::open(&out)?).entries()? {
        names.push(entry?.path()?.to_string_lossy().into_owned());
    }
    assert!(names.iter().any(|n| n == "manifest.json"), "{names:?}");
    Ok(())
}

/// Peak resident memory of this process, from `/proc/self/status`.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
#[ignore = "slow (256 MiB layer) and needs the process to itself: run alone with --ignored"]
fn memory_stays_flat_whatever_the_layer_size() -> Result<()> {
    let reg = Registry::start()?;
    let env = Env::new()?;
    let img = ImageBuilder::new("big")
        .random_layer_mib(256)
        .build(&env.layout())?;
    img.push(reg.host(), "big/app:v1", None)?;
    let before = peak_rss_kib();
    let r = reference(&format!("{}/big/app:v1", reg.host()));
    let p = pull(&r, &opts(&[reg.host()], &env.no_config()), &env.cache)?;
    let grew = peak_rss_kib().saturating_sub(before);
    eprintln!(
        "pulled {} bytes; peak RSS grew by {grew} KiB",
        p.stats.bytes_fetched
    );
    assert!(p.stats.bytes_fetched > 256 << 20);
    assert!(grew < 64 << 10, "peak RSS grew by {grew} KiB");
    Ok(())
}
