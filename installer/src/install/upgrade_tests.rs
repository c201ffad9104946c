//! Upgrades and rollbacks through the engine with the recording `System`: what changes,
//! what is restarted, what a failure leaves (the old version, running), and convergence
//! after a crash at every step.

use super::tests::{
    install_with, journal, noise, settings, site_hosts, tree, write_bundle, write_bundle_on,
    Fixture, Version,
};
use super::upgrade;
use crate::engine::fake::{Call, RecordingSystem};
use crate::engine::{JournalFile, Reporter, System};
use ferry_bundle::Bundle;
use std::path::{Path, PathBuf};

/// v2 of the test bundle: /etc/hosts changes, /etc/motd is added, the runtime binaries
/// change; v1 additionally had /opt/demo/old.sh, which v2 no longer carries.
fn versions() -> (Version, Version) {
    let v1 = Version {
        copies: vec![
            ("/etc/hosts", "10.0.0.1 site\n"),
            ("/opt/demo/old.sh", "#!/bin/sh\necho old\n"),
        ],
        ..Default::default()
    };
    let v2 = Version {
        copies: vec![
            ("/etc/hosts", "10.0.0.2 site v2\n"),
            ("/etc/motd", "welcome to v2\n"),
        ],
        bin_seed: 7,
        ..Default::default()
    };
    (v1, v2)
}

struct Two {
    f: Fixture,
    v2: PathBuf,
}

/// v1 installed under a root whose /etc/hosts is the site's own.
fn installed_v1() -> Two {
    let (v1, v2) = versions();
    let dir = tempfile::tempdir().unwrap();
    let b1 = dir.path().join("v1.run");
    let b2 = dir.path().join("v2.run");
    write_bundle(&b1, &v1);
    write_bundle(&b2, &v2);
    let f = Fixture {
        bundle: b1,
        root: dir.path().join("root"),
        _dir: dir,
    };
    site_hosts(&f.root);
    install_with(&f, &RecordingSystem::new()).unwrap();
    Two { f, v2: b2 }
}

fn upgrade_with(
    root: &Path,
    to: &Path,
    sys: &dyn System,
) -> Result<upgrade::Upgraded, upgrade::UpgradeError> {
    let s = settings(root);
    let mut new = Bundle::open(to).unwrap();
    let (mut jf, _) = JournalFile::open(s.host.path(&s.host.journal())).unwrap();
    if new.is_delta() {
        new.attach_base(upgrade::installed(&s, &jf)?).unwrap();
    }
    upgrade::run(&s, &new, &mut jf, sys, &Reporter::console(true))
}

fn read(root: &Path, p: &str) -> Option<String> {
    std::fs::read_to_string(root.join(p.trim_start_matches('/'))).ok()
}

#[test]
fn an_upgrade_rewrites_what_changed_removes_what_went_and_restarts_what_changed() {
    let t = installed_v1();
    let root = &t.f.root;
    let old_containerd = std::fs::read(root.join("opt/ferry/bin/containerd")).unwrap();
    // A "running" host: the fake knows the v1 services as running.
    let sys = RecordingSystem::new();
    install_with(&t.f, &sys).unwrap();

    let d = upgrade::diff(
        &Bundle::open(&t.f.bundle).unwrap(),
        &Bundle::open(&t.v2).unwrap(),
    );
    assert_eq!(d.files_added, ["/etc/motd"]);
    assert_eq!(d.files_removed, ["/opt/demo/old.sh"]);
    assert_eq!(d.files_changed, ["/etc/hosts"]);
    assert!(
        d.payload_changed
            .iter()
            .any(|r| r.ends_with("bin/containerd")),
        "{d:?}"
    );

    upgrade_with(root, &t.v2, &sys).unwrap();
    assert_eq!(
        read(root, "/etc/hosts").as_deref(),
        Some("10.0.0.2 site v2\n")
    );
    assert_eq!(read(root, "/etc/motd").as_deref(), Some("welcome to v2\n"));
    assert_eq!(read(root, "/opt/demo/old.sh"), None);
    assert_ne!(
        std::fs::read(root.join("opt/ferry/bin/containerd")).unwrap(),
        old_containerd
    );
    let calls = sys.calls();
    assert!(
        calls.contains(&Call::Restart("containerd".into())),
        "{calls:?}"
    );
    // The registry restarts to serve both versions, then again to serve only v2.
    let registry_restarts = calls
        .iter()
        .filter(|c| **c == Call::Restart("registry".into()))
        .count();
    assert_eq!(registry_restarts, 2, "{calls:?}");
    let j = journal(root);
    let v2 = Bundle::open(&t.v2).unwrap();
    assert_eq!(j.bundle_sha256, v2.footer.payload_sha256.to_string());
    assert!(j.upgrade.is_none() && j.pending.is_none());
    assert!(
        j.previous.contains("bundles/") && root.join(j.previous.trim_start_matches('/')).exists()
    );
    // The site's own /etc/hosts is still kept for reset, under v2 as under v1.
    let kept = j.replaced.get("/etc/hosts").unwrap();
    assert_eq!(
        read(root, kept).as_deref(),
        Some("127.0.0.1 localhost # the site's own\n")
    );

    // rollback: v1 again, on purpose.
    let s = settings(root);
    let (jf, _) = JournalFile::open(s.host.path(&s.host.journal())).unwrap();
    let prev = upgrade::previous(&s, &jf).unwrap();
    drop(jf);
    upgrade_with(root, &prev.path, &sys).unwrap();
    assert_eq!(read(root, "/etc/hosts").as_deref(), Some("10.0.0.1 site\n"));
    assert_eq!(read(root, "/etc/motd"), None);
    assert_eq!(
        read(root, "/opt/demo/old.sh").as_deref(),
        Some("#!/bin/sh\necho old\n")
    );
    assert_eq!(
        std::fs::read(root.join("opt/ferry/bin/containerd")).unwrap(),
        old_containerd
    );
}

#[test]
fn a_failed_upgrade_leaves_the_old_version_running() {
    let t = installed_v1();
    let root = &t.f.root;
    let before = tree(root);
    let sys = RecordingSystem::new().broken_after_restart(
        "containerd",
        "containerd",
        "v2 containerd will not start",
    );
    install_with(&t.f, &sys).unwrap();
    let e = upgrade_with(root, &t.v2, &sys).unwrap_err().to_string();
    assert!(
        e.contains("upgrade failed")
            && e.contains("v2 containerd will not start")
            && e.contains("running again"),
        "{e}"
    );
    // Every file as it was (the v2 staged copy aside), v1's services converged back.
    let mut after = tree(root);
    after.retain(|k, _| !k.contains("bundles/") || before.contains_key(k));
    let mut before = before;
    before.retain(|k, _| !k.contains("journal"));
    after.retain(|k, _| !k.contains("journal"));
    assert_eq!(after, before);
    let j = journal(root);
    let v1 = Bundle::open(&t.f.bundle).unwrap();
    assert_eq!(j.bundle_sha256, v1.footer.payload_sha256.to_string());
    assert!(j.upgrade.is_none() && j.pending.is_none());
    assert!(sys.running().contains("registry") && sys.running().contains("containerd"));
}

#[test]
fn an_upgrade_killed_at_any_step_converges_when_run_again() {
    let reference = installed_v1();
    upgrade_with(&reference.f.root, &reference.v2, &RecordingSystem::new()).unwrap();
    let want = tree(&reference.f.root);
    let sys = RecordingSystem::new();
    let t = installed_v1();
    upgrade_with(&t.f.root, &t.v2, &sys).unwrap();
    let steps = sys.checkpoints().len();
    assert!(steps > 10);
    for k in 0..steps {
        let t = installed_v1();
        let r = upgrade_with(&t.f.root, &t.v2, &RecordingSystem::new().crash_at(k));
        assert!(
            matches!(
                r,
                Err(upgrade::UpgradeError::Engine(
                    crate::engine::EngineError::Crashed(_)
                ))
            ),
            "crash at {k}: {:?}",
            r.err().map(|e| e.to_string())
        );
        upgrade_with(&t.f.root, &t.v2, &RecordingSystem::new())
            .unwrap_or_else(|e| panic!("re-run after a crash at {k}: {e}"));
        let got = tree(&t.f.root);
        assert_eq!(got, want, "crash at {k}");
        let j = journal(&t.f.root);
        assert!(j.upgrade.is_none() && j.pending.is_none(), "crash at {k}");
    }
    let _ = noise(1, 1);
}

#[test]
fn a_delta_upgrade_ends_where_the_full_one_does() {
    // v2 with v1's runtime binaries: a delta carries only the files that changed.
    let (_, v2) = versions();
    let v2 = Version { bin_seed: 0, ..v2 };
    let full = installed_v1();
    let full_v2 = full.f.bundle.with_file_name("v2-full.run");
    write_bundle(&full_v2, &v2);
    upgrade_with(&full.f.root, &full_v2, &RecordingSystem::new()).unwrap();
    let mut want = tree(&full.f.root);

    let t = installed_v1();
    let delta = t.f.bundle.with_file_name("v2-delta.run");
    write_bundle_on(&delta, &v2, Some(&t.f.bundle));
    let d = Bundle::open(&delta).unwrap();
    let full_size = std::fs::metadata(&full_v2).unwrap().len();
    assert!(
        d.file_len + 15_000 <= full_size,
        "delta {} vs full {full_size}",
        d.file_len
    );
    // On a fresh host a delta is refused, naming its base.
    let fresh = settings(&t.f.root.with_file_name("fresh"));
    let e = super::plan(&fresh, &d, &crate::engine::Journal::default()).unwrap_err();
    assert!(
        e.to_string().contains("delta") && e.to_string().contains("demo"),
        "{e}"
    );

    upgrade_with(&t.f.root, &delta, &RecordingSystem::new()).unwrap();
    let mut got = tree(&t.f.root);
    // The staged copies differ (a delta is staged, not the full v2); all else is the same.
    want.retain(|k, _| !k.contains("bundles/") && k != "var/lib/ferry/bundle.run");
    got.retain(|k, _| !k.contains("bundles/") && k != "var/lib/ferry/bundle.run");
    assert_eq!(got, want);
    // The base stays: the delta reads from it.
    let j = journal(&t.f.root);
    assert!(t.f.root.join(j.previous.trim_start_matches('/')).exists());
}
