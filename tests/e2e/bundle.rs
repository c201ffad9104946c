//! Bundle format end to end: `ferry build` → `delivery.run --check/--info/--list/--extract`,
//! and every kind of damaged or hostile bundle the installer must refuse.

use ferry_tests::bins::{build_kubefile, installer, run_fail, run_ok, workspace};
use ferry_tests::forge::{forge, Forged};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Two real images (umoci, busybox-static) sharing a 4 MiB layer, in `dir/layout`.
fn demo_images(dir: &Path) {
    run_ok(
        Command::new("bash")
            .arg(workspace().join("scripts/demo-images.sh"))
            .arg(dir),
    );
}

fn layout_digest(dir: &Path, tag: &str) -> String {
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("layout/index.json")).unwrap()).unwrap();
    idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .unwrap()
}

fn build(dir: &Path, kubefile: &str) -> PathBuf {
    build_kubefile(dir, kubefile, "delivery.run", &["--no-payload"])
}

fn info_json(bundle: &Path) -> serde_json::Value {
    serde_json::from_str(&run_ok(
        Command::new(bundle).args(["--info", "--output", "json"]),
    ))
    .unwrap()
}

const TWO_IMAGES: &str = "FROM scratch\nLABEL name=two\n\
    IMAGE oci:layout:a AS docker.io/library/app-a:1\n\
    IMAGE oci:layout:b AS quay.io/demo/app-b:1\n";

#[test]
fn shared_layer_is_stored_once_and_info_lists_both_images() {
    let t = tempfile::tempdir().unwrap();
    demo_images(t.path());
    let out = build(t.path(), TWO_IMAGES);
    run_ok(Command::new(&out).args(["--check", "-q"]));
    let info = info_json(&out);
    let images = info["images"].as_array().unwrap();
    let find = |n: &str| {
        images
            .iter()
            .find(|i| i["name"] == n)
            .unwrap_or_else(|| panic!("{n} not in {info}"))
    };
    assert_eq!(
        find("docker.io/library/app-a:1")["digest"],
        layout_digest(t.path(), "a")
    );
    assert_eq!(
        find("quay.io/demo/app-b:1")["digest"],
        layout_digest(t.path(), "b")
    );
    // The 4 MiB layer is the largest blob of both images: exactly one entry holds it.
    let list: Vec<serde_json::Value> = serde_json::from_str(&run_ok(
        Command::new(&out).args(["--list", "--output", "json"]),
    ))
    .unwrap();
    let big: Vec<_> = list
        .iter()
        .filter(|e| e["size"].as_u64().unwrap() > 4 << 20)
        .collect();
    assert_eq!(big.len(), 1, "shared layer stored {} times", big.len());
    let both = find("docker.io/library/app-a:1")["size"].as_u64().unwrap()
        + find("quay.io/demo/app-b:1")["size"].as_u64().unwrap();
    assert!(
        info["payload_size"].as_u64().unwrap() < both,
        "payload not smaller than the two images"
    );
    // Standard tools can read the payload.
    let off = info["installer_size"].as_u64().unwrap() + 1;
    let names = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("tail -c +{off} {} | tar -t", out.display())),
    );
    assert!(
        names.contains("oci/index.json") && names.contains("bundle.json"),
        "{names}"
    );
}

#[test]
fn docker_archive_sources_keep_their_repo_tag() {
    let t = tempfile::tempdir().unwrap();
    demo_images(t.path());
    let out = build(t.path(), "FROM scratch\nIMAGE docker-archive:b.tar\n");
    run_ok(Command::new(&out).args(["--check", "-q"]));
    let info = info_json(&out);
    assert_eq!(info["images"][0]["name"], "example.org/demo/b:1");
    // `ferry images` reads the Kubefile the same way and shows the same name.
    let listed = run_ok(
        Command::new(ferry_tests::bins::ferry())
            .args(["images", "-f"])
            .arg(t.path().join("Kubefile")),
    );
    assert!(
        listed.starts_with("example.org/demo/b:1\tIMAGE "),
        "{listed}"
    );
}

#[test]
fn any_flipped_byte_or_truncation_fails_check() {
    let t = tempfile::tempdir().unwrap();
    demo_images(t.path());
    let out = build(t.path(), TWO_IMAGES);
    let good = std::fs::read(&out).unwrap();
    let stub = info_json(&out)["installer_size"].as_u64().unwrap() as usize;
    let bad = t.path().join("bad.run");
    let mut positions: Vec<usize> = (stub..good.len())
        .step_by((good.len() - stub) / 40)
        .collect();
    positions.extend([good.len() - 1, good.len() - 100, good.len() - 160, 100]);
    for pos in positions {
        let mut b = good.clone();
        b[pos] ^= 0x04;
        std::fs::write(&bad, &b).unwrap();
        let msg = run_fail(
            Command::new(installer())
                .arg("--bundle")
                .arg(&bad)
                .arg("--check"),
        );
        assert!(
            msg.contains("FAILED") || msg.contains("error"),
            "flip at {pos}: {msg}"
        );
    }
    for cut in [1usize, 160, 4096, good.len() / 2] {
        std::fs::write(&bad, &good[..good.len() - cut]).unwrap();
        let msg = run_fail(
            Command::new(installer())
                .arg("--bundle")
                .arg(&bad)
                .arg("--check"),
        );
        assert!(
            msg.contains(&format!(
                "is cut short: it has {} of the bundle's {} bytes",
                good.len() - cut,
                good.len()
            )),
            "cut {cut}: {msg}"
        );
    }
}

#[test]
fn a_file_without_footer_is_named_as_such() {
    let msg = run_fail(
        Command::new(installer())
            .arg("--bundle")
            .arg(installer())
            .arg("--info"),
    );
    assert!(msg.contains("no ferry footer"), "{msg}");
    let msg = run_fail(Command::new(installer()).arg("--info"));
    assert!(msg.contains("carries no bundle"), "{msg}");
}

/// Writes a forged bundle, then requires --check and --extract to fail naming `needle`,
/// with nothing written outside (or inside) the target.
fn refused(name: &str, bytes: Vec<u8>, needle: &str) {
    let t = tempfile::tempdir().unwrap();
    let b = t.path().join(format!("{name}.run"));
    std::fs::write(&b, bytes).unwrap();
    let msg = run_fail(
        Command::new(installer())
            .arg("--bundle")
            .arg(&b)
            .arg("--check"),
    );
    assert!(msg.contains(needle), "{name}: --check said: {msg}");
    let target = t.path().join("x/target");
    std::fs::create_dir_all(&target).unwrap();
    let msg = run_fail(
        Command::new(installer())
            .arg("--bundle")
            .arg(&b)
            .arg("--extract")
            .arg(&target),
    );
    assert!(msg.contains(needle), "{name}: --extract said: {msg}");
    let left: Vec<_> = walk(t.path())
        .into_iter()
        .filter(|p| !p.ends_with(format!("{name}.run")))
        .collect();
    assert_eq!(
        left,
        vec![t.path().join("x"), target.clone()],
        "{name}: files written"
    );
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
    }
    out.sort();
    out
}

fn file(path: &str, data: &[u8]) -> Forged {
    Forged::File {
        path: path.into(),
        data: data.to_vec(),
    }
}

#[test]
fn hostile_bundles_are_refused_before_anything_is_written() {
    let stub = b"\x7fELF-not-really".to_vec();
    let ok = file("files/a.txt", b"fine");
    refused(
        "symlink",
        forge(
            &stub,
            &[
                Forged::Symlink {
                    path: "oci".into(),
                    target: "/etc".into(),
                },
                file("oci/x", b"x"),
            ],
            |_| {},
        ),
        "symbolic link",
    );
    refused(
        "hardlink",
        forge(
            &stub,
            &[Forged::HardLink {
                path: "h".into(),
                target: "/etc/passwd".into(),
            }],
            |_| {},
        ),
        "hard link",
    );
    refused(
        "device",
        forge(&stub, &[Forged::CharDevice { path: "dev".into() }], |_| {}),
        "device node",
    );
    refused(
        "dotdot",
        forge(
            &stub,
            &[Forged::RawName {
                name: b"../../escape".to_vec(),
                data: b"x".to_vec(),
            }],
            |_| {},
        ),
        "../../escape",
    );
    refused(
        "absolute",
        forge(
            &stub,
            &[Forged::RawName {
                name: b"/tmp/abs-escape".to_vec(),
                data: b"x".to_vec(),
            }],
            |_| {},
        ),
        "absolute path",
    );
    refused(
        "lying-size",
        forge(&stub, &[ok, file("files/b.txt", b"second")], |r| {
            r[0].size = 3
        }),
        "files/a.txt",
    );
    refused(
        "lying-offset",
        forge(
            &stub,
            &[file("files/a.txt", b"fine"), file("files/b.txt", b"second")],
            |r| r[1].offset += 512,
        ),
        "files/b.txt",
    );
    refused(
        "outside-payload",
        forge(&stub, &[file("files/a.txt", b"fine")], |r| {
            r[0].offset = 1 << 40
        }),
        "outside the payload",
    );
    refused(
        "unlisted",
        forge(&stub, &[file("files/a.txt", b"fine")], |r| r.clear()),
        "not listed in bundle.json",
    );
    refused(
        "lying-sha",
        forge(&stub, &[file("files/a.txt", b"fine")], |r| {
            r[0].sha256 = ferry_bundle::Sha256Digest([0; 32])
        }),
        "files/a.txt",
    );
}

#[test]
fn extract_never_follows_a_symlink_planted_in_the_target() {
    let t = tempfile::tempdir().unwrap();
    demo_images(t.path());
    let out = build(t.path(), TWO_IMAGES);
    let target = t.path().join("target");
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("oci")).unwrap();
    let msg = run_fail(Command::new(&out).arg("--extract").arg(&target));
    assert!(msg.contains("oci"), "{msg}");
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote through the symlink"
    );
    // A clean target works and yields the same files a tar would.
    let clean = t.path().join("clean");
    run_ok(Command::new(&out).arg("--extract").arg(&clean).arg("-q"));
    assert!(clean.join("oci/index.json").exists() && clean.join("bundle.json").exists());
}

/// A reader that stops early (`| head -1`) is not an error: exit 0, nothing on stderr.
#[test]
fn a_closed_pipe_ends_quietly() {
    let t = tempfile::tempdir().unwrap();
    // Enough entries that the listing is far larger than a pipe's buffer.
    let many = t.path().join("many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..2000 {
        std::fs::write(many.join(format!("file-{i:04}.txt")), format!("{i}\n")).unwrap();
    }
    let bundle = build(
        t.path(),
        "FROM scratch\nLABEL name=many\nCOPY many /opt/many\n",
    );
    for args in ["--list", "--info", "--list --output json"] {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("set -o pipefail; \"$0\" {args} | head -1"))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args}: stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    }
}
