//! `--site-registry` installs through the engine, without root or a network: the plan
//! (push steps before the runtime, containerd and k3s pointed at the site, the login
//! never printed) and its run with the recording `System`, crash and resume included.

use super::tests::{fixture, install_as, journal, settings, write_bundle, Fixture, Version};
use super::*;
use crate::engine::fake::{Call, RecordingSystem};
use crate::engine::print::plan_text;
use crate::site::{Login, SiteConfig};

const PASSWORD: &str = "s3cr\"et pw";

fn site(login: bool) -> SiteConfig {
    SiteConfig {
        ca_pem: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
        login: login.then(|| Login {
            username: "robot".into(),
            password: PASSWORD.into(),
        }),
        ..SiteConfig::parse("harbor.site:8443/proj/ferry").unwrap()
    }
}

fn with_images(chart: Option<usize>) -> Fixture {
    let f = fixture(None);
    write_bundle(
        &f.bundle,
        &Version {
            chart,
            images: vec!["docker.io/library/app:1", "registry.local:5000/team/api:2"],
            ..Default::default()
        },
    );
    f
}

fn site_settings(f: &Fixture, login: bool) -> InstallSettings {
    InstallSettings {
        site: Some(site(login)),
        ..settings(&f.root)
    }
}

fn file_text<'a>(p: &'a Plan, path: &str) -> &'a Content {
    &p.files()
        .find(|(_, f)| f.path.as_str() == path)
        .unwrap_or_else(|| panic!("no {path} in the plan"))
        .1
        .content
}

#[test]
fn the_plan_pushes_every_image_then_points_containerd_at_the_site() {
    let f = with_images(None);
    let s = site_settings(&f, true);
    let b = Bundle::open(&f.bundle).unwrap();
    let p = plan(&s, &b, &Default::default()).unwrap();
    let names: Vec<&str> = p.phases.iter().map(|ph| ph.name.as_str()).collect();
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(
        at("registry") < at("site_registry") && at("site_registry") < at("runtime"),
        "{names:?}"
    );
    let pushes: Vec<&crate::engine::PushStep> = p
        .phase(PhaseName::SiteRegistry)
        .unwrap()
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Push(p) => Some(p),
            _ => None,
        })
        .collect();
    let targets: Vec<(&str, &str)> = pushes
        .iter()
        .map(|p| (p.repository.as_str(), p.tag.as_deref().unwrap()))
        .collect();
    assert_eq!(
        targets,
        [
            ("proj/ferry/docker.io/library/app", "1"),
            ("proj/ferry/registry.local_5000/team/api", "2")
        ]
    );
    assert!(
        pushes.iter().all(|p| p.site.login.is_none()),
        "no login in a step"
    );
    // The layer both images share is mounted by the second push, not sent twice.
    assert_eq!(
        pushes[0]
            .blobs
            .iter()
            .filter(|b| b.mount_from.is_some())
            .count(),
        0
    );
    assert_eq!(
        pushes[1]
            .blobs
            .iter()
            .filter_map(|b| b.mount_from.as_deref())
            .collect::<Vec<_>>(),
        ["proj/ferry/docker.io/library/app"]
    );
    assert_eq!(pushes[0].manifests.len(), 1);
    assert_eq!(pushes[0].digest, b.manifest.images[0].digest);

    let hosts = match file_text(
        &p,
        "/etc/ferry/containerd/certs.d/registry.local:5000/hosts.toml",
    ) {
        Content::Bytes { bytes } => String::from_utf8(bytes.clone()).unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(
        hosts.contains("[host.\"https://harbor.site:8443/v2/proj/ferry/registry.local_5000\"]")
            && hosts.contains("override_path = true")
            && hosts.contains("site-registry/ca.pem"),
        "{hosts}"
    );
    assert!(matches!(
        file_text(&p, "/etc/ferry/containerd/site-registry-auth.toml"),
        Content::Private { .. }
    ));
    // The registry service hands the site to joining nodes.
    let registry = p.services().find(|s| s.name == "registry").unwrap();
    assert!(registry
        .argv
        .iter()
        .any(|a| a.starts_with("--site-registry-config=")));
    // Neither the text nor the JSON plan shows the password.
    let text = plan_text(&p);
    let json = serde_json::to_string(&p).unwrap();
    for shown in [&text, &json] {
        assert!(!shown.contains("s3cr"), "{shown}");
    }
    assert!(text.contains("<the site registry password>"), "{text}");
    assert!(
        text.contains(
            "push docker.io/library/app:1 to harbor.site:8443/proj/ferry/docker.io/library/app:1"
        ),
        "{text}"
    );
}

#[test]
fn the_install_pushes_before_containerd_starts_and_a_crash_resumes() {
    let f = with_images(None);
    let s = site_settings(&f, true);
    let sys = RecordingSystem::new();
    install_as(&s, &f, &sys).unwrap();
    let calls = sys.calls();
    let pushed: Vec<&Call> = calls
        .iter()
        .filter(|c| matches!(c, Call::Push(..)))
        .collect();
    assert_eq!(
        pushed,
        [
            &Call::Push("docker.io/library/app:1".into(), true),
            &Call::Push("registry.local:5000/team/api:2".into(), true)
        ]
    );
    let last_push = calls
        .iter()
        .rposition(|c| matches!(c, Call::Push(..)))
        .unwrap();
    let containerd = calls
        .iter()
        .position(|c| *c == Call::Start("containerd".into()))
        .unwrap();
    assert!(last_push < containerd, "{calls:?}");
    let j = journal(&f.root);
    assert!(j.is_done("site_registry"));
    assert_eq!(j.site_registry, "https://harbor.site:8443/proj/ferry");
    // The login is on disk for the join channel, root only; the auth file too.
    use std::os::unix::fs::PermissionsExt;
    for p in [
        "etc/ferry/site-registry/site.json",
        "etc/ferry/containerd/site-registry-auth.toml",
    ] {
        let path = f.root.join(p);
        assert!(
            std::fs::read_to_string(&path).unwrap().contains("robot"),
            "{p}"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600,
            "{p}"
        );
    }
    let saved: SiteConfig = serde_json::from_slice(
        &std::fs::read(f.root.join("etc/ferry/site-registry/site.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved, site(true));

    // A crash in the middle of the pushes: the next run pushes again (the real push
    // then skips what the site has) and finishes.
    let g = with_images(None);
    let s = site_settings(&g, true);
    let probe = RecordingSystem::new();
    install_as(&s, &g, &probe).unwrap();
    let at = probe
        .checkpoints()
        .iter()
        .position(|c| c == "site_registry/1")
        .expect("a checkpoint in the site phase");
    let h = with_images(None);
    let s = site_settings(&h, true);
    let crashed = install_as(&s, &h, &RecordingSystem::new().crash_at(at));
    assert!(matches!(
        crashed,
        Err(crate::engine::EngineError::Crashed(_))
    ));
    assert!(!journal(&h.root).is_done("site_registry"));
    let again = RecordingSystem::new();
    install_as(&s, &h, &again).unwrap();
    assert_eq!(
        again
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Push(..)))
            .count(),
        2
    );
    assert!(journal(&h.root).is_done("runtime"));
}

#[test]
fn k3s_pulls_through_the_site_with_a_rewrite_and_its_login_unprinted() {
    let f = with_images(Some(300));
    let s = site_settings(&f, true);
    let b = Bundle::open(&f.bundle).unwrap();
    let p = plan(&s, &b, &Default::default()).unwrap();
    let (shown, bytes) = match file_text(&p, crate::k3s::REGISTRIES_PATH) {
        Content::Private { shown, bytes } => {
            (shown.clone(), String::from_utf8(bytes.clone()).unwrap())
        }
        other => panic!("{other:?}"),
    };
    assert!(bytes.contains("s3cr") && !shown.contains("s3cr"), "{shown}");
    assert!(
        shown.contains("\"^(.*)$\": \"proj/ferry/docker.io/$1\""),
        "{shown}"
    );
    assert!(shown.contains("- \"https://harbor.site:8443\""), "{shown}");
    assert!(shown.contains("ca_file:"), "{shown}");
    let mode = p
        .files()
        .find(|(_, f)| f.path.as_str() == crate::k3s::REGISTRIES_PATH)
        .unwrap()
        .1
        .mode;
    assert_eq!(mode, 0o600, "it holds the login");
    // Without a login registries.yaml is an ordinary, printable file.
    let s = site_settings(&f, false);
    let p = plan(&s, &b, &Default::default()).unwrap();
    assert!(matches!(
        file_text(&p, crate::k3s::REGISTRIES_PATH),
        Content::Bytes { .. }
    ));
    assert!(p
        .files()
        .all(|(_, f)| f.path.as_str() != "/etc/ferry/containerd/site-registry-auth.toml"));
}

#[test]
fn an_index_with_platforms_the_bundle_lacks_goes_as_an_index_of_the_carried_ones() {
    use ferry_bundle::oci::{Descriptor, LayoutIndex, OCI_INDEX, OCI_MANIFEST};
    let f = with_images(None);
    // Rewrite the bundle: the image's root is an index listing its manifest and one more.
    let b = Bundle::open(&f.bundle).unwrap();
    let img = b.manifest.images[0].clone();
    let man_size = b.blob_entry(&img.digest).unwrap().size;
    let mut absent = Descriptor::new(OCI_MANIFEST, ferry_bundle::Sha256Digest::of(b"arm64"), 9);
    absent.platform = Some("linux/arm64".parse().unwrap());
    let mut carried = Descriptor::new(OCI_MANIFEST, img.digest, man_size);
    carried.platform = Some("linux/amd64".parse().unwrap());
    let idx = LayoutIndex::of(vec![carried, absent]).to_json();
    let out = f.root.parent().unwrap().join("multi.run");
    let mut w = ferry_bundle::writer::BundleWriter::create(&out, &b"stub"[..]).unwrap();
    for (d, e) in b.blobs() {
        w.add_blob(&d, e.size, b.open_entry(e)).unwrap();
    }
    let d = ferry_bundle::Sha256Digest::of(&idx);
    w.add_blob(&d, idx.len() as u64, &idx[..]).unwrap();
    let mut m = b.manifest.clone();
    m.images = vec![ferry_bundle::ImageRecord {
        digest: d,
        media_type: OCI_INDEX.into(),
        ..img
    }];
    m.entries.clear();
    m.payloads.clear();
    m.files.clear();
    w.finish(m).unwrap();
    let multi = Bundle::open(&out).unwrap();
    let s = InstallSettings {
        host_containerd: Some(runtime::HostContainerd {
            ctr: "/usr/bin/ctr".parse().unwrap(),
            socket: "/run/containerd/containerd.sock".parse().unwrap(),
            certs_dir: "/etc/containerd/certs.d".parse().unwrap(),
        }),
        ..site_settings(&f, false)
    };
    let p = plan(&s, &multi, &Default::default()).unwrap();
    let push = p
        .phase(PhaseName::SiteRegistry)
        .unwrap()
        .steps
        .iter()
        .find_map(|s| match s {
            Step::Push(p) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        push.manifests.len(),
        2,
        "the carried manifest, then the reduced index"
    );
    let reduced: LayoutIndex = serde_json::from_slice(&push.manifests[1].bytes).unwrap();
    assert_eq!(reduced.manifests.len(), 1);
    assert_eq!(reduced.manifests[0].digest, img.digest);
    assert_eq!(push.digest, push.manifests[1].digest);
    assert!(
        p.notes.iter().any(|n| n.contains("will not resolve")),
        "{:?}",
        p.notes
    );
}

#[test]
fn a_joined_node_pulls_from_the_site_its_master_names() {
    use crate::join::node::{plan as node_plan, JoinSettings};
    let f = with_images(None);
    let b = Bundle::open(&f.bundle).unwrap();
    let mut info = crate::join::protocol::join_info(&b, "https://10.0.0.1:5443", None).unwrap();
    info.site_registry = Some(site(true));
    let js = JoinSettings {
        master: "10.0.0.1:5443".into(),
        token: crate::join::token::Token {
            ca_hash: "0".repeat(64),
            secret: "s".into(),
        },
        control_plane: false,
        node_ip: "10.0.0.2".parse().unwrap(),
        wait_timeout: std::time::Duration::from_secs(1),
        systemd: false,
    };
    let host = crate::host::Host::new(&f.root, None).unwrap();
    let p = node_plan(&host, &Default::default(), &info, &js).unwrap();
    let hosts = match file_text(&p, "/etc/ferry/containerd/certs.d/docker.io/hosts.toml") {
        Content::Bytes { bytes } => String::from_utf8(bytes.clone()).unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(
        hosts.contains("https://harbor.site:8443/v2/proj/ferry/docker.io")
            && !hosts.contains("10.0.0.1:5443"),
        "{hosts}"
    );
    assert!(matches!(
        file_text(&p, "/etc/ferry/site-registry/site.json"),
        Content::Private { .. }
    ));
    assert!(matches!(
        file_text(&p, "/etc/ferry/site-registry/ca.pem"),
        Content::Bytes { .. }
    ));
    assert!(matches!(
        file_text(&p, "/etc/ferry/containerd/site-registry-auth.toml"),
        Content::Private { .. }
    ));
    assert!(!plan_text(&p).contains("s3cr"));
}
