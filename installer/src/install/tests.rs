//! The install engine end to end, without root and without a single real process: a
//! bundle written by the real bundle writer, installed under a temporary `--root` with
//! the recording `System`. Covers crash-and-resume at every step, rollback of a failing
//! phase, reset, and host files that ferry replaces.

use super::*;
use crate::engine::fake::{Call, RecordingSystem};
use crate::engine::{JournalFile, Reporter, System};
use ferry_bundle::manifest::{AppRecord, ClusterRecord, FileRecord, PayloadRecord};
use ferry_bundle::writer::BundleWriter;
use ferry_bundle::BundleManifest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod packages;

/// Incompressible, non-UTF-8 bytes (a real gzip stream is like that).
pub(super) fn noise(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 3) as u8
        })
        .collect()
}

pub(super) struct Fixture {
    pub(super) _dir: tempfile::TempDir,
    pub(super) bundle: PathBuf,
    pub(super) root: PathBuf,
}

/// What a test bundle holds: COPY files, the containerd payload made from `bin_seed`
/// (or, with `chart`, k3s and a chart app of that many bytes).
#[derive(Clone)]
pub(super) struct Version {
    pub(super) copies: Vec<(&'static str, &'static str)>,
    pub(super) bin_seed: u8,
    pub(super) chart: Option<usize>,
    /// Images (full names), each a manifest with its own config and a layer they share.
    pub(super) images: Vec<&'static str>,
}

impl Default for Version {
    fn default() -> Self {
        Version {
            copies: vec![("/etc/hosts", "10.0.0.1 site\n")],
            bin_seed: 0,
            chart: None,
            images: Vec::new(),
        }
    }
}

/// Writes bundle `demo` of version `v` to `out`.
pub(super) fn write_bundle(out: &Path, v: &Version) {
    write_bundle_on(out, v, None)
}

/// Like [`write_bundle`]; with `base`, a delta of that bundle.
pub(super) fn write_bundle_on(out: &Path, v: &Version, base: Option<&Path>) {
    let mut w = BundleWriter::create(out, &b"#!stub installer\n"[..]).unwrap();
    if let Some(b) = base {
        w.set_base(Bundle::open(b).unwrap());
    }
    let mut m = BundleManifest {
        name: "demo".into(),
        platform: "linux/amd64".into(),
        ..Default::default()
    };
    for (dest, text) in &v.copies {
        let e = w
            .add_entry(
                &format!("files/rootfs{dest}"),
                text.len() as u64,
                0o644,
                text.as_bytes(),
            )
            .unwrap();
        m.files.push(FileRecord {
            entry: e.path,
            dest: dest.parse().unwrap(),
            mode: 0o644,
            inherited: false,
        });
    }
    add_images(&mut w, &mut m, &v.images);
    let mut files = BTreeMap::new();
    match v.chart {
        None => {
            for role in [
                "bin/containerd",
                "bin/containerd-shim-runc-v2",
                "bin/ctr",
                "bin/runc",
                "cni/bridge",
            ] {
                let data = noise(3000, role.len() as u8 ^ v.bin_seed);
                let e = w
                    .add_entry(
                        &format!("files/payloads/containerd/{role}"),
                        data.len() as u64,
                        0o755,
                        &data[..],
                    )
                    .unwrap();
                files.insert(role.to_string(), e.path);
            }
            m.payloads.push(PayloadRecord {
                name: "containerd".into(),
                platform: String::new(),
                version: String::new(),
                files,
                inherited: false,
            });
        }
        Some(len) => {
            let k3s = noise(5000, 1);
            let e = w
                .add_entry("files/payloads/k3s/bin/k3s", 5000, 0o755, &k3s[..])
                .unwrap();
            files.insert("bin/k3s".to_string(), e.path);
            m.payloads.push(PayloadRecord {
                name: "k3s".into(),
                platform: String::new(),
                version: "v1.31.4+k3s1".into(),
                files,
                inherited: false,
            });
            m.cluster = Some(ClusterRecord {
                distribution: "k3s".into(),
                version: "v1.31.4+k3s1".into(),
            });
            let tgz = noise(len, 2);
            let e = w
                .add_entry("files/apps/web/chart.tgz", len as u64, 0o644, &tgz[..])
                .unwrap();
            m.apps.push(AppRecord {
                name: "web".into(),
                kind: "chart".into(),
                path: e.path,
                values: vec![],
                set: vec!["replicas=2".into()],
                images: vec![],
                inherited: false,
            });
        }
    }
    w.finish(m).unwrap();
}

/// Adds `names` as images (see [`Version::images`]).
fn add_images(w: &mut BundleWriter, m: &mut BundleManifest, names: &[&str]) {
    use ferry_bundle::oci::{Descriptor, Manifest, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
    let mut blob = |bytes: &[u8], mt: &str| {
        let d = ferry_bundle::Sha256Digest::of(bytes);
        w.add_blob(&d, bytes.len() as u64, bytes).unwrap();
        Descriptor::new(mt, d, bytes.len() as u64)
    };
    let layer = blob(&noise(2000, 7), OCI_LAYER_GZIP);
    for name in names {
        let config = blob(
            format!(r#"{{"os":"linux","architecture":"amd64","name":"{name}"}}"#).as_bytes(),
            OCI_CONFIG,
        );
        let man = Manifest::image(config, vec![layer.clone()]).to_json();
        let root = blob(&man, OCI_MANIFEST);
        m.images.push(ferry_bundle::ImageRecord {
            name: ferry_bundle::Reference::parse(name).unwrap(),
            digest: root.digest,
            media_type: OCI_MANIFEST.into(),
            size: root.size + 2000,
            source: (*name).into(),
            platforms: vec!["linux/amd64".into()],
            inherited: false,
        });
    }
}

/// A bundle of the default version (k3s with a chart of `chart` bytes, if given).
pub(super) fn fixture(chart: Option<usize>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("delivery.run");
    write_bundle(
        &out,
        &Version {
            chart,
            ..Default::default()
        },
    );
    Fixture {
        bundle: out,
        root: dir.path().join("root"),
        _dir: dir,
    }
}

pub(super) fn settings(root: &Path) -> InstallSettings {
    InstallSettings {
        wait_timeout: std::time::Duration::from_millis(300),
        ..InstallSettings::example(Host::new(root, None).unwrap())
    }
}

/// The journal as `install` opens it for `b`: the host claimed, ferry's trees too.
pub(super) fn open_journal(s: &InstallSettings, b: &Bundle) -> JournalFile {
    let host = &s.host;
    let (mut jf, _) = JournalFile::open(host.path(&host.journal())).unwrap();
    claim(&mut jf.journal, s, b);
    crate::engine::claim_trees(host, &mut jf).unwrap();
    jf
}

/// One install run, as the `install` command does it (minus preflight and the lock).
pub(super) fn install_with(
    f: &Fixture,
    sys: &dyn System,
) -> Result<(), crate::engine::EngineError> {
    install_as(&settings(&f.root), f, sys)
}

/// [`install_with`] with these settings.
pub(super) fn install_as(
    s: &InstallSettings,
    f: &Fixture,
    sys: &dyn System,
) -> Result<(), crate::engine::EngineError> {
    let b = Bundle::open(&f.bundle).unwrap();
    let mut jf = open_journal(s, &b);
    let plan = plan(s, &b, &jf.journal).unwrap();
    run(s, &b, &plan, &mut jf, sys, &Reporter::console(true))
}

/// Every file under `root` (relative path → sha256 of its bytes, with the root's own
/// path replaced), without the contents that differ between runs by nature: the journal
/// and the secrets (made with a fresh key each time).
pub(super) fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_symlink() {
                out.insert(rel, std::fs::read_link(&p).unwrap().display().to_string());
            } else {
                let secret = rel.contains("pki/")
                    || rel.ends_with("token")
                    || rel.ends_with("cluster-secret");
                let digest = if secret || rel.contains("journal.json") {
                    String::new()
                } else {
                    let bytes = std::fs::read(&p).unwrap();
                    let text = String::from_utf8_lossy(&bytes)
                        .replace(&root.display().to_string(), "<root>");
                    ferry_bundle::Sha256Digest::of(text.as_bytes()).to_string()
                };
                out.insert(rel, digest);
            }
        }
    }
    out
}

pub(super) fn journal(root: &Path) -> crate::engine::Journal {
    let h = Host::new(root, None).unwrap();
    crate::engine::Journal::load(&h.path(&h.journal()))
        .unwrap()
        .unwrap()
}

pub(super) fn site_hosts(root: &Path) {
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/hosts"),
        "127.0.0.1 localhost # the site's own\n",
    )
    .unwrap();
}

#[test]
fn a_crash_at_any_step_resumes_and_converges() {
    let reference = fixture(None);
    site_hosts(&reference.root);
    let sys = RecordingSystem::new();
    install_with(&reference, &sys).unwrap();
    let want = tree(&reference.root);
    let steps = sys.checkpoints().len();
    assert!(steps > 10, "{:?}", sys.checkpoints());
    assert!(sys.running().contains("registry") && sys.running().contains("containerd"));

    for k in 0..steps {
        let f = fixture(None);
        site_hosts(&f.root);
        let crashed = install_with(&f, &RecordingSystem::new().crash_at(k));
        assert!(
            matches!(crashed, Err(crate::engine::EngineError::Crashed(_))),
            "checkpoint {k}: {crashed:?}"
        );
        // The next run (a new process) undoes the interrupted phase and finishes.
        let sys = RecordingSystem::new();
        install_with(&f, &sys).unwrap_or_else(|e| panic!("resume after crash at {k}: {e}"));
        let got = tree(&f.root);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "crash at {k} ({})",
            sys.checkpoints().first().cloned().unwrap_or_default()
        );
        assert_eq!(got, want, "crash at {k}: contents differ");
        let j = journal(&f.root);
        assert!(j.pending.is_none());
        for p in ["stage", "files", "registry", "runtime", "health"] {
            assert!(j.is_done(p), "crash at {k}: {p} not done");
        }
        // The site's own /etc/hosts is kept whatever the moment of the crash.
        let kept = j.replaced.get("/etc/hosts").expect("original kept");
        assert_eq!(
            std::fs::read_to_string(f.root.join(kept.trim_start_matches('/'))).unwrap(),
            "127.0.0.1 localhost # the site's own\n",
            "crash at {k}"
        );
    }
}

/// A power cut that leaves the staged bundle short (a disk losing data it had
/// acknowledged): the re-run notices although the journal says "staged", stages again and
/// converges; the services start from the new copy.
#[test]
fn a_staged_bundle_cut_short_is_staged_again() {
    let f = fixture(None);
    install_with(&f, &RecordingSystem::new()).unwrap();
    let want = tree(&f.root);
    // The versioned copy the `bundle.run` link points at.
    let staged = std::fs::canonicalize(f.root.join("var/lib/ferry/bundle.run")).unwrap();
    let len = std::fs::metadata(&staged).unwrap().len();
    for cut in [len / 2, len - 1, 0] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&staged)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let sys = RecordingSystem::new();
        install_with(&f, &sys).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(tree(&f.root), want, "cut at {cut}");
        assert!(journal(&f.root).is_done("stage"));
    }
    // Gone altogether: the same.
    std::fs::remove_file(&staged).unwrap();
    install_with(&f, &RecordingSystem::new()).unwrap();
    assert_eq!(tree(&f.root), want);
}

/// Found by the upgrade kill -9 trials (tests/e2e/crash.rs): a run killed after
/// restarting the registry with an upgrade's command line but before saving the journal
/// left it running that command line (serving a staged file the recovery then removed)
/// while the journal still held the old revision, so nothing restarted it. A service whose
/// process runs another command line than planned is restarted.
#[test]
fn a_service_running_another_command_line_than_planned_is_restarted() {
    let f = fixture(None);
    install_with(&f, &RecordingSystem::new()).unwrap();
    // Same journal, same revisions; only the process differs.
    let sys = RecordingSystem::new()
        .running_stale("registry")
        .running_stale("containerd");
    install_with(&f, &sys).unwrap();
    let calls = sys.calls();
    for svc in ["registry", "containerd"] {
        assert!(
            calls.contains(&crate::engine::fake::Call::Restart(svc.into())),
            "{svc} not restarted: {calls:?}"
        );
    }
    // Running as planned: left alone.
    let sys = RecordingSystem::new();
    install_with(&f, &sys).unwrap();
    install_with(&f, &sys).unwrap();
    assert!(!sys
        .calls()
        .iter()
        .any(|c| matches!(c, crate::engine::fake::Call::Restart(_))));
}

/// Found by the kill -9 trials (tests/e2e/crash.rs): a run killed right after the
/// journal's first save (which creates the data directory) left that directory unclaimed,
/// so reset kept it and everything the runtime later wrote into it.
#[test]
fn a_run_killed_after_the_first_journal_save_still_owns_the_data_directory() {
    let f = fixture(None);
    let host = Host::new(&f.root, None).unwrap();
    let (jf, _) = JournalFile::open(host.path(&host.journal())).unwrap();
    jf.save().unwrap();
    // ... killed here; the next run:
    let sys = RecordingSystem::new();
    install_with(&f, &sys).unwrap();
    let j = journal(&f.root);
    for d in ["/var", "/var/lib", "/var/lib/ferry"] {
        assert!(j.dirs.contains(d), "{d} not claimed: {:?}", j.dirs);
    }
    // What the runtime puts in the data directory goes with it.
    std::fs::create_dir_all(f.root.join("var/lib/ferry/containerd/x")).unwrap();
    std::fs::write(f.root.join("var/lib/ferry/containerd/x/meta.db"), "state").unwrap();
    let r = reset::reset(&host, &sys).unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert!(!f.root.join("var").exists(), "{:?}", tree(&f.root));
}

/// What preflight's disk check sums: every file the plan writes, at the size it lands.
#[test]
fn the_plan_says_how_many_bytes_each_file_it_writes_takes() {
    let f = fixture(None);
    let s = settings(&f.root);
    let b = Bundle::open(&f.bundle).unwrap();
    let p = plan(&s, &b, &crate::engine::Journal::default()).unwrap();
    let w = p.written(0, false);
    let get = |path: &str| w.iter().find(|x| x.path.as_str() == path).map(|x| x.bytes);
    let staged = s.host.staged_version(&b.footer.payload_sha256).to_string();
    assert_eq!(get(&staged), Some(b.file_len));
    assert_eq!(get("/etc/hosts"), Some(14));
    assert_eq!(
        get("/etc/ferry/pki/ca.key"),
        Some(crate::engine::plan::SECRET_BYTES)
    );
    assert_eq!(get("/opt/ferry/bin/containerd"), Some(3000));
    // Every written file of the plan is counted, and nothing else.
    assert_eq!(w.len(), p.files().count() + 1);
    assert!(p.written(0, true).iter().all(|x| x.path.as_str() != staged));
}

/// Found by the kill -9 trials: a run killed while claiming ferry's directories left
/// them recorded as pending; the next claim looked for missing directories *before*
/// undoing that, so the log directory, made again later outside any transaction, was
/// never ferry's and outlived reset.
#[test]
fn a_claim_interrupted_half_way_is_undone_before_claiming_again() {
    let f = fixture(None);
    let host = Host::new(&f.root, None).unwrap();
    let (mut jf, _) = JournalFile::open(host.path(&host.journal())).unwrap();
    jf.save().unwrap();
    let mut tx = crate::engine::transaction::Transaction::begin(&host, &mut jf, "prepare").unwrap();
    let log_dir = HostPath::new("/var/log/ferry").unwrap();
    tx.adopt_dirs(&[HostPath::new("/var/log").unwrap(), log_dir.clone()])
        .unwrap();
    tx.abandon(); // killed here
    let sys = RecordingSystem::new();
    install_with(&f, &sys).unwrap();
    let j = journal(&f.root);
    assert!(j.dirs.contains("/var/log/ferry"), "{:?}", j.dirs);
    std::fs::write(host.path(&log_dir).join("ferry.log"), "log").unwrap();
    reset::reset(&host, &sys).unwrap();
    assert!(!host.path(&log_dir).exists());
}

#[test]
fn a_failing_phase_is_rolled_back_and_journaled_with_its_cause() {
    let f = fixture(None);
    let sys = RecordingSystem::new().fail_probe("containerd", usize::MAX, "socket refused");
    let e = install_with(&f, &sys).unwrap_err().to_string();
    assert!(
        e.contains("phase health")
            && e.contains("containerd not healthy")
            && e.contains("socket refused"),
        "{e}"
    );
    let j = journal(&f.root);
    assert!(j.is_done("runtime"));
    let rec = j.phases.iter().find(|p| p.name == "health").unwrap();
    assert_eq!(rec.state, "failed");
    assert!(rec.error.contains("socket refused"));

    // A phase whose file cannot be written leaves none of its files behind.
    let f = fixture(None);
    std::fs::create_dir_all(f.root.join("etc/ferry/containerd/config.toml")).unwrap();
    let e = install_with(&f, &RecordingSystem::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("phase runtime") && e.contains("is a directory"),
        "{e}"
    );
    assert!(!f.root.join("opt/ferry/bin/containerd").exists());
    assert!(
        f.root.join("etc/ferry/token").exists(),
        "earlier phases stay"
    );
    assert!(journal(&f.root).pending.is_none());
}

#[test]
fn reset_removes_what_ferry_made_and_restores_what_it_replaced() {
    let f = fixture(None);
    site_hosts(&f.root);
    std::fs::write(f.root.join("etc/motd"), "not ferry's").unwrap();
    let sys = RecordingSystem::new();
    install_with(&f, &sys).unwrap();
    assert_eq!(
        std::fs::read_to_string(f.root.join("etc/hosts")).unwrap(),
        "10.0.0.1 site\n"
    );
    let host = Host::new(&f.root, None).unwrap();
    let r = reset::reset(&host, &sys).unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(r.restored, ["/etc/hosts"]);
    assert!(sys.calls().contains(&Call::Stop("registry".into())));
    assert!(sys.running().is_empty());
    let left = tree(&f.root);
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        ["etc/hosts", "etc/motd"],
        "reset left {left:?}"
    );
    assert_eq!(
        std::fs::read_to_string(f.root.join("etc/hosts")).unwrap(),
        "127.0.0.1 localhost # the site's own\n"
    );
}

#[test]
fn plan_says_a_host_file_will_be_replaced() {
    let f = fixture(None);
    site_hosts(&f.root);
    let s = settings(&f.root);
    let b = Bundle::open(&f.bundle).unwrap();
    let p = plan(&s, &b, &crate::engine::Journal::default()).unwrap();
    let text = crate::engine::print::plan_text(&p);
    assert!(
        text.contains("write /etc/hosts (mode 644) (REPLACES an existing host file"),
        "{text}"
    );
}

#[test]
fn a_chart_over_128_kib_lands_byte_for_byte_in_the_static_directory() {
    let len = 300 * 1024;
    let f = fixture(Some(len));
    let sys = RecordingSystem::new();
    install_with(&f, &sys).unwrap();
    let chart = f
        .root
        .join("var/lib/rancher/k3s/server/static/charts/ferry-web.tgz");
    assert_eq!(std::fs::read(&chart).unwrap(), noise(len, 2));
    let hc = std::fs::read_to_string(
        f.root
            .join("var/lib/rancher/k3s/server/manifests/web-chart.yaml"),
    )
    .unwrap();
    assert!(
        hc.contains("https://%{KUBERNETES_API}%/static/charts/ferry-web.tgz"),
        "{hc}"
    );
    assert!(!hc.contains("chartContent"));
    let cfg = std::fs::read_to_string(f.root.join("etc/rancher/k3s/config.yaml")).unwrap();
    assert!(
        cfg.contains("token-file:") && cfg.contains("etc/ferry/cluster-secret"),
        "{cfg}"
    );
    let secret = std::fs::read_to_string(f.root.join("etc/ferry/cluster-secret")).unwrap();
    let token = std::fs::read_to_string(f.root.join("etc/ferry/token")).unwrap();
    assert!(
        token.ends_with(&format!("::{secret}")),
        "{token} / {secret}"
    );
    assert!(sys.running().contains("k3s"));
    assert_eq!(
        std::fs::read(f.root.join("opt/ferry/bin/k3s")).unwrap(),
        noise(5000, 1)
    );
}

#[test]
fn a_damaged_entry_is_refused_while_it_streams() {
    let f = fixture(None);
    let s = settings(&f.root);
    let b = Bundle::open(&f.bundle).unwrap();
    let mut p = plan(&s, &b, &crate::engine::Journal::default()).unwrap();
    // A plan that expects other bytes than the bundle holds (as a lying master would send).
    for ph in &mut p.phases {
        for st in &mut ph.steps {
            if let crate::engine::Step::WriteFile(fs) = st {
                if let crate::engine::Content::Entry(e) = &mut fs.content {
                    e.sha256 = ferry_bundle::Sha256Digest::of(b"something else");
                }
            }
        }
    }
    let host = &s.host;
    let (mut jf, _) = JournalFile::open(host.path(&host.journal())).unwrap();
    let sys = RecordingSystem::new();
    let e = run(&s, &b, &p, &mut jf, &sys, &Reporter::console(true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("phase files") && e.contains("refusing it"),
        "{e}"
    );
    assert!(!f.root.join("etc/hosts").exists());
}
