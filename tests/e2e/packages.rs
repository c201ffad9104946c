//! `PACKAGE deb` against the real Debian archive this machine's apt uses, and a real
//! `debootstrap --variant=minbase bookworm` root as the host: the closure is resolved
//! (signatures and hashes checked), carried, installed with the real dpkg under
//! `--root`, and removed by `reset` — only what ferry installed.

use crate::install::Sandbox;
use ferry_builder::kubefile::{Kubefile, Recipe};
use ferry_builder::packages::{self, gpgv, AptOptions, Spec};
use ferry_tests::bins::{build_kubefile, ferry, run_fail, run_ok, workspace};
use ferry_tests::debian::{cache_dir, dpkg_arch, dpkg_status, minbase_root, mirror};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

fn kubefile(packages: &str) -> String {
    format!(
        "FROM scratch\nLABEL name=nfs\nOS debian bookworm {}\nAPT {} bookworm main\nPACKAGE deb {packages}\n",
        dpkg_arch(),
        mirror("bookworm")
    )
}

/// `Package` → `Status` of a dpkg status file.
fn status_of(root: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    ferry_deb::Paragraphs::new(text.as_bytes())
        .map(|p| p.unwrap())
        .map(|p| {
            (
                p.get("Package").unwrap().to_string(),
                format!(
                    "{} {}",
                    p.get("Status").unwrap(),
                    p.get("Version").unwrap_or("")
                ),
            )
        })
        .collect()
}

#[test]
fn the_nfs_common_closure_from_the_real_archive_fits_a_minbase_root() {
    let t = tempfile::tempdir().unwrap();
    let kf = Kubefile::parse(&kubefile("nfs-common"), Path::new("Kubefile")).unwrap();
    let spec = Spec::from_recipe(&Recipe::interpret(&kf, t.path()).unwrap()).unwrap();
    let cache = ferry_builder::pull::ContentCache::open(cache_dir()).unwrap();
    let started = std::time::Instant::now();
    let res = packages::resolve_spec(&spec, &AptOptions::default(), &cache)
        .unwrap()
        .unwrap();
    let c = &res.closure;
    eprintln!(
        "nfs-common closure: {} packages, {} bytes, resolved from {} in {:.1}s",
        c.packages.len(),
        c.packages.iter().map(|p| p.package.size).sum::<u64>(),
        res.indexed,
        started.elapsed().as_secs_f64()
    );
    let names: Vec<&str> = c.packages.iter().map(|p| p.package.name.as_str()).collect();
    for want in [
        "nfs-common",
        "rpcbind",
        "libtirpc3",
        "libnfsidmap1",
        "keyutils",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // Install order: every dependency in an earlier group (or the same, for a cycle).
    let group: BTreeMap<&str, usize> = c
        .packages
        .iter()
        .map(|p| (p.package.name.as_str(), p.group))
        .collect();
    for p in &c.packages {
        for d in &p.depends {
            assert!(
                group[d.as_str()] <= p.group,
                "{} before its dependency {d}",
                p.package.name
            );
        }
        assert!(!p.why.is_empty());
    }
    assert_eq!(*names.last().unwrap(), "nfs-common");

    // What the resolver calls the base is exactly what a minbase root has: nothing
    // carried is already there, everything relied upon is.
    let root = t.path().join("root");
    minbase_root("bookworm", &root);
    let base = status_of(&root);
    for n in &names {
        assert!(
            !base.contains_key(*n),
            "{n} is carried but every minbase root has it"
        );
    }
    for n in c.base.keys() {
        assert!(
            base.contains_key(n),
            "{n} is assumed present but minbase lacks it"
        );
    }

    // Downloaded into the content cache, each checked against the signed index.
    let got = packages::download(&res, &cache, true).unwrap();
    assert_eq!(got.len(), c.packages.len());
    for g in &got {
        let (sha, size) =
            ferry_bundle::digest::hash_reader(std::fs::File::open(&g.path).unwrap()).unwrap();
        assert_eq!(sha, g.record.sha256, "{}", g.record.name);
        assert_eq!(size, g.record.size);
    }
}

#[test]
fn a_changed_or_foreign_inrelease_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let url = format!("{}/dists/bookworm/InRelease", mirror("bookworm"));
    let file = t.path().join("InRelease");
    run_ok(
        Command::new("curl")
            .args(["-fsS", "-o"])
            .arg(&file)
            .arg(&url),
    );
    let ok = gpgv::verify(&file, Path::new(KEYRING), &url).unwrap();
    assert!(!ok.signers.is_empty());
    let text = String::from_utf8(ok.text).unwrap();
    assert!(
        text.starts_with("Origin: Debian") && !text.contains("BEGIN PGP"),
        "only the signed text"
    );

    // One byte of the signed text changed.
    let body = std::fs::read_to_string(&file).unwrap();
    let changed = t.path().join("InRelease.changed");
    std::fs::write(
        &changed,
        body.replacen("Codename: bookworm", "Codename: bookwurm", 1),
    )
    .unwrap();
    let e = gpgv::verify(&changed, Path::new(KEYRING), "changed")
        .unwrap_err()
        .to_string();
    assert!(e.contains("BAD signature"), "{e}");

    // A keyring without the archive's keys.
    let empty = t.path().join("empty.gpg");
    std::fs::write(&empty, b"").unwrap();
    let e = gpgv::verify(&file, &empty, "foreign")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no good signature by a key in") && e.contains("KEYRING"),
        "{e}"
    );
}

#[test]
fn ferry_packages_lists_the_closure_with_why_and_names_what_cannot_be_satisfied() {
    let t = tempfile::tempdir().unwrap();
    let kf = t.path().join("Kubefile");
    std::fs::write(&kf, kubefile("nfs-common")).unwrap();
    let cache = cache_dir();
    let packages = |extra: &[&str]| {
        let mut c = Command::new(ferry());
        c.arg("packages")
            .args(extra)
            .arg("-f")
            .arg(&kf)
            .arg("--cache-dir")
            .arg(&cache);
        c
    };
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(packages(&["--output", "json"]))).unwrap();
    let pkgs = json["packages"].as_array().unwrap();
    let nfs = pkgs.iter().find(|p| p["name"] == "nfs-common").unwrap();
    assert_eq!(nfs["why"][0]["kind"], "requested");
    assert!(nfs["why"][0]["at"]
        .as_str()
        .unwrap()
        .ends_with("Kubefile:5"));
    let rpcbind = pkgs.iter().find(|p| p["name"] == "rpcbind").unwrap();
    assert_eq!(rpcbind["why"][0]["of"], "nfs-common");
    assert_eq!(rpcbind["why"][0]["field"], "Depends");
    assert_eq!(json["os"]["release"], "bookworm");
    assert!(json["base"]["libc6"].is_string());
    let text = run_ok(packages(&[]));
    assert!(
        text.contains("rpcbind ") && text.contains("nfs-common Depends: rpcbind"),
        "{text}"
    );

    std::fs::write(&kf, kubefile("nfs-common=0.1-1")).unwrap();
    let e = run_fail(packages(&[]));
    assert!(
        e.contains(
            "Kubefile:5: PACKAGE deb nfs-common=0.1-1: the repositories have nfs-common 1:2.6"
        ),
        "{e}"
    );
    std::fs::write(&kf, kubefile("no-such-package-ferry")).unwrap();
    let e = run_fail(packages(&[]));
    assert!(
        e.contains("no-such-package-ferry: no package of that name"),
        "{e}"
    );
}

#[test]
fn nfs_common_installs_into_a_minbase_root_with_its_closure_and_reset_removes_only_it() {
    let t = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("bash")
            .arg(workspace().join("scripts/containerd-payload.sh"))
            .arg(t.path().join("payload")),
    );
    let payload = format!("containerd={}", t.path().join("payload").display());
    let cache = cache_dir();
    let started = std::time::Instant::now();
    let bundle = build_kubefile(
        t.path(),
        &kubefile("nfs-common"),
        "delivery.run",
        &[
            "--payload",
            &payload,
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    eprintln!("build: {:.1}s", started.elapsed().as_secs_f64());

    // --info lists every carried .deb with its version and sha256.
    let info: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new(&bundle).args(["--info", "--output", "json"]),
    ))
    .unwrap();
    let carried = info["packages"].as_array().unwrap().clone();
    assert!(carried.len() > 10, "{info}");
    let text = run_ok(Command::new(&bundle).arg("--info"));
    for p in &carried {
        let line = format!(
            "  {} {} {}  sha256:{}",
            p["name"].as_str().unwrap(),
            p["version"].as_str().unwrap(),
            p["architecture"].as_str().unwrap(),
            p["sha256"].as_str().unwrap()
        );
        assert!(text.contains(&line), "{line} not in --info:\n{text}");
    }
    assert!(
        text.contains(&format!("packages ({} for debian bookworm", carried.len())),
        "{text}"
    );
    // The SBOM names every carried .deb too, as a Debian purl with its checksum.
    let sbom = run_ok(Command::new(&bundle).arg("--sbom"));
    for p in &carried {
        let purl = format!(
            "pkg:deb/debian/{}@",
            p["name"].as_str().unwrap().replace('+', "%2B")
        );
        assert!(sbom.contains(&purl), "{purl} not in the SBOM");
        assert!(
            sbom.contains(p["sha256"].as_str().unwrap()),
            "{p} sha256 not in the SBOM"
        );
    }

    let root = t.path().join("root");
    minbase_root("bookworm", &root);
    let before = status_of(&root);
    assert_eq!(dpkg_status(&root, "nfs-common"), None);
    let sb = Sandbox::new(&bundle, root.clone());
    let plan = run_ok(sb.cmd().arg("plan"));
    assert!(
        plan.contains("[packages] install") && plan.contains("dpkg --root"),
        "{plan}"
    );

    let started = std::time::Instant::now();
    let out = sb.cmd().output().unwrap();
    assert!(
        out.status.success(),
        "install failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("install: {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(
        dpkg_status(&root, "nfs-common").as_deref(),
        Some("install ok installed")
    );
    let after = status_of(&root);
    for p in &carried {
        let n = p["name"].as_str().unwrap();
        assert!(
            after[n].starts_with("install ok installed"),
            "{n}: {}",
            after[n]
        );
    }
    let journal: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("var/lib/ferry/journal.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(journal["packages"].as_array().unwrap().len(), carried.len());
    // A second run has nothing left to install.
    run_ok(sb.cmd().arg("-q"));

    run_ok(sb.cmd().args(["reset", "--yes"]));
    let reset = status_of(&root);
    for p in &carried {
        let n = p["name"].as_str().unwrap();
        // Gone from the database, or only its configuration files left (dpkg -r).
        assert!(
            reset
                .get(n)
                .is_none_or(|s| s.starts_with("deinstall ok config-files")),
            "{n} still installed after reset: {:?}",
            reset.get(n)
        );
    }
    assert!(
        dpkg_status(&root, "nfs-common").is_none_or(|s| s.contains("config-files")),
        "{:?}",
        dpkg_status(&root, "nfs-common")
    );
    // Everything the root had before is as it was.
    for (n, s) in &before {
        assert_eq!(reset.get(n), Some(s), "{n} changed");
    }

    // Preflight refuses a host of another release, and one without dpkg, before any change.
    let os_release = root.join("etc/os-release");
    let real = std::fs::read_to_string(&os_release).unwrap();
    std::fs::remove_file(&os_release).unwrap(); // a link into usr/lib in Debian
    std::fs::write(&os_release, real.replace("bookworm", "trixie")).unwrap();
    let check = |root: &Path, name: &str| -> serde_json::Value {
        let out = Sandbox::new(&bundle, root.to_path_buf())
            .cmd()
            .args(["preflight", "--output", "json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "preflight must fail");
        let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} check: {checks}"))
    };
    let c = check(&root, "os_release");
    assert_eq!(c["status"], "fail");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("host debian trixie, packages for debian bookworm"),
        "{c}"
    );
    let bare = t.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    let c = check(&bare, "dpkg");
    assert_eq!(c["status"], "fail");
    assert!(
        c["detail"].as_str().unwrap().contains("no dpkg database"),
        "{c}"
    );
    let out = Sandbox::new(&bundle, bare.clone()).cmd().output().unwrap();
    assert!(!out.status.success());
    assert!(
        !bare.join("var/lib/ferry").exists(),
        "a refused install changes nothing"
    );
}
