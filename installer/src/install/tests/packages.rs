//! The packages phase with the recording `System`: which `dpkg` runs the plan makes for
//! a host's dpkg database, in which order, what the journal keeps for `reset`, and what
//! a failing maintainer script leaves behind. (The real dpkg in a real Debian root is the
//! end-to-end test's, `tests/e2e/packages.rs`.)

use super::settings;
use crate::engine::fake::{Call, RecordingSystem};
use crate::engine::{Phase, PhaseName, Plan, PlanKind, Reporter, Step};
use crate::install::{packages, reset};
use ferry_bundle::packages::{deb_entry, OsRecord, PackageRecord};
use ferry_bundle::writer::BundleWriter;
use ferry_bundle::{Bundle, BundleManifest};
use std::path::{Path, PathBuf};

struct Fixture {
    _dir: tempfile::TempDir,
    bundle: PathBuf,
    root: PathBuf,
}

/// `name version group`: the carried packages, in install order.
const CARRIED: [(&str, &str, u32); 5] = [
    ("liba", "1.0-1", 0),
    ("libb", "2:1.0-1", 1),
    ("c1", "1.0", 2),
    ("c2", "1.0", 2),
    ("app", "1:2.6.2-4", 3),
];

fn deb_bytes(name: &str) -> Vec<u8> {
    format!("!<arch>\ndebian-binary of {name}\n").into_bytes()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("delivery.run");
    let mut w = BundleWriter::create(&out, &b"#!stub installer\n"[..]).unwrap();
    let mut m = BundleManifest {
        name: "pkgs".into(),
        platform: "linux/amd64".into(),
        os: Some(OsRecord {
            distribution: "debian".into(),
            release: "bookworm".into(),
            architecture: "amd64".into(),
        }),
        ..Default::default()
    };
    for (name, version, group) in CARRIED {
        let data = deb_bytes(name);
        let e = w
            .add_entry(
                &deb_entry(name, version, "amd64"),
                data.len() as u64,
                0o644,
                &data[..],
            )
            .unwrap();
        m.packages.push(PackageRecord {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            entry: e.path,
            size: e.size,
            sha256: e.sha256,
            group,
            depends: vec![],
            why: vec![],
        });
    }
    w.finish(m).unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_CODENAME=bookworm\n",
    )
    .unwrap();
    // The host has libc6 (not carried), liba at the carried version, libb older.
    dpkg_status(
        &root,
        &[
            ("libc6", "2.36-9", "installed"),
            ("liba", "1.0-1", "installed"),
            ("libb", "2:0.9-1", "installed"),
        ],
    );
    Fixture {
        bundle: out,
        root,
        _dir: dir,
    }
}

/// Writes `<root>/var/lib/dpkg/status` as dpkg would after installing these.
fn dpkg_status(root: &Path, pkgs: &[(&str, &str, &str)]) {
    let mut s = String::new();
    for (name, version, state) in pkgs {
        s.push_str(&format!(
            "Package: {name}\nStatus: install ok {state}\nArchitecture: amd64\nVersion: {version}\n\n"
        ));
    }
    std::fs::write(root.join("var/lib/dpkg/status"), s).unwrap();
}

/// The stage and packages phases of the install plan, run as `install` runs them.
fn install(f: &Fixture, sys: &RecordingSystem) -> (Result<(), crate::engine::EngineError>, Plan) {
    let s = settings(&f.root);
    let b = Bundle::open(&f.bundle).unwrap();
    let host = &s.host;
    let mut jf = super::open_journal(&s, &b);
    let mut stage = Phase::new(PhaseName::Stage);
    stage.steps.push(Step::Stage {
        dest: host.staged_version(&b.footer.payload_sha256),
        size: b.file_len,
        payload_sha256: b.footer.payload_sha256,
    });
    let (phase, notes) = packages::phase(host, &jf.journal, &b).unwrap().unwrap();
    let plan = Plan {
        kind: PlanKind::Install,
        bundle: "pkgs".into(),
        bundle_sha256: b.footer.payload_sha256,
        phases: vec![stage, phase],
        notes,
    };
    let r = crate::install::run(&s, &b, &plan, &mut jf, sys, &Reporter::console(true));
    (r, plan)
}

fn dpkg_runs(sys: &RecordingSystem) -> Vec<Vec<String>> {
    sys.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Run(argv) if argv[0] == "dpkg" => Some(argv),
            _ => None,
        })
        .collect()
}

fn spooled(f: &Fixture, name: &str, version: &str) -> String {
    let file = deb_entry(name, version, "amd64");
    f.root
        .join("var/lib/ferry/packages")
        .join(file.rsplit('/').next().unwrap())
        .display()
        .to_string()
}

fn dpkg_i(f: &Fixture, debs: &[(&str, &str)]) -> Vec<String> {
    let mut v: Vec<String> = [
        "dpkg",
        "--root",
        f.root.to_str().unwrap(),
        "--force-confdef",
        "--force-confold",
        "-i",
    ]
    .map(String::from)
    .to_vec();
    v.extend(debs.iter().map(|(n, ver)| spooled(f, n, ver)));
    v
}

fn journal(root: &Path) -> crate::engine::Journal {
    let h = crate::host::Host::new(root, None).unwrap();
    crate::engine::Journal::load(&h.path(&h.journal()))
        .unwrap()
        .unwrap()
}

#[test]
fn installs_what_the_host_lacks_group_by_group_and_journals_it() {
    let f = fixture();
    let sys = RecordingSystem::new();
    let (r, plan) = install(&f, &sys);
    r.unwrap();
    assert_eq!(
        dpkg_runs(&sys),
        [
            dpkg_i(&f, &[("libb", "2:1.0-1")]),
            dpkg_i(&f, &[("c1", "1.0"), ("c2", "1.0")]),
            dpkg_i(&f, &[("app", "1:2.6.2-4")]),
        ],
        "liba is there at the carried version; the rest in group order"
    );
    // The .debs dpkg reads are the bundle's bytes, spooled through the transaction.
    for (n, v) in [("libb", "2:1.0-1"), ("c1", "1.0"), ("app", "1:2.6.2-4")] {
        assert_eq!(std::fs::read(spooled(&f, n, v)).unwrap(), deb_bytes(n));
    }
    assert!(!Path::new(&spooled(&f, "liba", "1.0-1")).exists());
    let j = journal(&f.root);
    assert!(j.is_done("packages"));
    assert_eq!(
        j.packages,
        ["c1", "c2", "app"],
        "an upgrade stays the host's"
    );
    // dpkg runs without questions, and the plan says what happens to which package.
    let Step::Dpkg(d) = &plan.phases[1].steps.last().unwrap() else {
        panic!("{plan:?}")
    };
    assert!(d
        .command
        .env
        .contains(&("DEBIAN_FRONTEND".into(), "noninteractive".into())));
    let text = crate::engine::print::plan_text(&plan);
    assert!(
        text.contains("upgrade the host's libb (reset leaves them)"),
        "{text}"
    );
    assert!(text.contains("[packages] install c1 c2: run"), "{text}");
    assert!(
        text.contains("already has 1 of the 5 carried") && text.contains("liba 1.0-1"),
        "{text}"
    );

    // Run again: done phases are not redone.
    let again = RecordingSystem::new();
    install(&f, &again).0.unwrap();
    assert!(dpkg_runs(&again).is_empty());
}

#[test]
fn a_failing_maintainer_script_is_reported_and_a_rerun_resumes() {
    let f = fixture();
    let script = "dpkg: error processing package app (--install):\n installed app package \
                  post-installation script subprocess returned error exit status 1\n\
                  adduser: cannot create user statd";
    let sys = RecordingSystem::new().fail_command("/app_", script);
    let e = install(&f, &sys).0.unwrap_err().to_string();
    for want in [
        "phase packages",
        "dpkg could not install app:",
        "post-installation script subprocess returned error exit status 1",
        "adduser: cannot create user statd",
        "run the install again",
    ] {
        assert!(e.contains(want), "{want:?} in {e}");
    }
    let j = journal(&f.root);
    assert_eq!(
        j.phases
            .iter()
            .find(|p| p.name == "packages")
            .unwrap()
            .state,
        "failed"
    );
    assert!(
        j.pending.is_none(),
        "the phase's spool files were rolled back"
    );
    assert!(!Path::new(&spooled(&f, "app", "1:2.6.2-4")).exists());
    assert_eq!(j.packages, ["c1", "c2", "app"], "journaled before dpkg ran");

    // dpkg configured c1 and c2 before app's script failed (as the status file says).
    dpkg_status(
        &f.root,
        &[
            ("liba", "1.0-1", "installed"),
            ("libb", "2:1.0-1", "installed"),
            ("c1", "1.0", "installed"),
            ("c2", "1.0", "installed"),
            ("app", "1:2.6.2-4", "half-configured"),
        ],
    );
    let sys = RecordingSystem::new();
    install(&f, &sys).0.unwrap();
    assert_eq!(
        dpkg_runs(&sys),
        [dpkg_i(&f, &[("app", "1:2.6.2-4")])],
        "only what is still missing"
    );
    let j = journal(&f.root);
    assert!(j.is_done("packages"));
    assert_eq!(j.packages, ["c1", "c2", "app"]);
}

#[test]
fn reset_removes_only_the_packages_ferry_installed_newest_first() {
    let f = fixture();
    let sys = RecordingSystem::new();
    install(&f, &sys).0.unwrap();
    let mut all = vec![("libc6", "2.36-9", "installed")];
    all.extend(CARRIED.iter().map(|(n, v, _)| (*n, *v, "installed")));
    dpkg_status(&f.root, &all);
    let host = crate::host::Host::new(&f.root, None).unwrap();
    let r = reset::reset(&host, &sys).unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(r.packages_removed, ["app", "c2", "c1"]);
    assert_eq!(
        dpkg_runs(&sys).last().unwrap(),
        &[
            "dpkg",
            "--root",
            f.root.to_str().unwrap(),
            "-r",
            "app",
            "c2",
            "c1"
        ]
    );
    assert!(!f.root.join("var/lib/ferry/packages").exists());
    assert!(f.root.join("var/lib/dpkg/status").exists(), "dpkg's own");

    // A package removed by hand since is not removed again; dpkg's refusal is reported.
    let f = fixture();
    install(&f, &RecordingSystem::new()).0.unwrap();
    dpkg_status(
        &f.root,
        &[
            ("c1", "1.0", "installed"),
            ("app", "1:2.6.2-4", "config-files"),
        ],
    );
    let sys = RecordingSystem::new()
        .fail_command("dpkg", "dpkg: dependency problems prevent removal of c1");
    let r = reset::reset(&host_of(&f), &sys).unwrap();
    assert_eq!(dpkg_runs(&sys).last().unwrap()[4..], ["c1"]);
    assert!(
        r.failures
            .iter()
            .any(|x| x.contains("dependency problems prevent removal of c1")),
        "{:?}",
        r.failures
    );
}

fn host_of(f: &Fixture) -> crate::host::Host {
    crate::host::Host::new(&f.root, None).unwrap()
}

#[test]
fn preflight_refuses_a_host_of_another_release_or_without_dpkg() {
    let f = fixture();
    let b = Bundle::open(&f.bundle).unwrap();
    let host = host_of(&f);
    let checks = packages::preflight(&host, &b.manifest);
    let get = |cs: &[crate::install::preflight::Check], n: &str| {
        cs.iter().find(|c| c.name == n).unwrap().clone()
    };
    use crate::install::preflight::Status;
    assert_eq!(get(&checks, "os_release").status, Status::Pass);
    std::fs::write(
        f.root.join("etc/os-release"),
        "ID=debian\nVERSION_CODENAME=trixie\n",
    )
    .unwrap();
    let c = get(&packages::preflight(&host, &b.manifest), "os_release");
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.detail
            .contains("host debian trixie, packages for debian bookworm")
            && c.fix.contains(".debs for debian bookworm amd64"),
        "{c:?}"
    );
    std::fs::remove_file(f.root.join("var/lib/dpkg/status")).unwrap();
    let mut cs = packages::preflight(&host, &b.manifest);
    let c = get(&cs, "dpkg");
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("no dpkg database"), "{c:?}");
    crate::install::preflight::skip(&mut cs, &["dpkg".into()]);
    assert_eq!(get(&cs, "dpkg").status, Status::Skipped);
    // A bundle without packages has no such checks.
    assert!(packages::preflight(&host, &BundleManifest::default()).is_empty());
}

#[test]
fn a_crash_at_any_step_resumes_and_converges() {
    let reference = fixture();
    let sys = RecordingSystem::new();
    install(&reference, &sys).0.unwrap();
    let steps = sys.checkpoints().len();
    assert!(steps >= 8, "{:?}", sys.checkpoints());
    for k in 0..steps {
        let f = fixture();
        let crashed = install(&f, &RecordingSystem::new().crash_at(k)).0;
        assert!(
            matches!(crashed, Err(crate::engine::EngineError::Crashed(_))),
            "checkpoint {k}: {crashed:?}"
        );
        install(&f, &RecordingSystem::new())
            .0
            .unwrap_or_else(|e| panic!("resume after a crash at {k}: {e}"));
        let j = journal(&f.root);
        assert!(j.is_done("packages") && j.pending.is_none(), "crash at {k}");
        assert_eq!(j.packages, ["c1", "c2", "app"], "crash at {k}");
        for (n, v) in [("libb", "2:1.0-1"), ("c2", "1.0"), ("app", "1:2.6.2-4")] {
            assert_eq!(
                std::fs::read(spooled(&f, n, v)).unwrap(),
                deb_bytes(n),
                "crash at {k}"
            );
        }
    }
}

#[test]
fn a_joined_node_plans_the_same_packages_from_its_master() {
    let f = fixture();
    let b = Bundle::open(&f.bundle).unwrap();
    let info = crate::join::protocol::join_info(&b, "https://10.0.0.1:5443", None).unwrap();
    // The master hands out the .debs (and only the bundle's entries for them).
    for p in &b.manifest.packages {
        let jf = info
            .files
            .iter()
            .find(|jf| jf.role == format!("package/{}", p.name))
            .unwrap_or_else(|| panic!("{} not handed out: {:?}", p.name, info.files));
        assert_eq!((jf.entry.as_str(), jf.sha256), (p.entry.as_str(), p.sha256));
    }
    assert_eq!(info.os, b.manifest.os);
    // Through JSON, as the node receives it.
    let info: crate::join::protocol::JoinInfo =
        serde_json::from_str(&serde_json::to_string(&info).unwrap()).unwrap();
    let s = crate::join::node::JoinSettings {
        master: "10.0.0.1:5443".into(),
        token: crate::join::token::Token::parse(&format!(
            "K10{}::{}",
            "a".repeat(64),
            "b".repeat(32)
        ))
        .unwrap(),
        control_plane: false,
        node_ip: "10.0.0.2".parse().unwrap(),
        wait_timeout: std::time::Duration::from_secs(1),
        systemd: false,
    };
    let plan = crate::join::node::plan(&host_of(&f), &crate::engine::Journal::default(), &info, &s)
        .unwrap();
    assert_eq!(plan.phases[0].name, PhaseName::Packages);
    let text = crate::engine::print::plan_text(&plan);
    assert!(
        text.contains("[packages] install c1 c2: run") && text.contains("upgrade the host's libb"),
        "{text}"
    );
    // A master whose bundle has no packages plans none.
    let mut bare = info.clone();
    bare.packages.clear();
    let plan = crate::join::node::plan(&host_of(&f), &crate::engine::Journal::default(), &bare, &s)
        .unwrap();
    assert!(plan.phases.iter().all(|p| p.name != PhaseName::Packages));
}
