#![allow(dead_code)]
//! What several targets share: a host under a temporary root, and the installer's
//! interpretation of a bundle.json (the install plan, the plan text, the join info and a
//! joining node's plan from it), with the oracle that every file a plan writes stays under
//! the root.

use ferry_bundle::Bundle;
use ferry_installer::engine::{print::plan_text, Journal, Plan};
use ferry_installer::host::Host;
use ferry_installer::install::{plan, InstallSettings};
use ferry_installer::join::{node, protocol, token::Token};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// A host rooted in a temporary directory that lives as long as the process.
pub fn host() -> &'static Host {
    static H: OnceLock<(tempfile::TempDir, Host)> = OnceLock::new();
    &H.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let h = Host::new(d.path(), None).unwrap();
        (d, h)
    })
    .1
}

pub fn check_plan(p: &Plan, root: &Path) {
    let _ = plan_text(p);
    let written = p.written(6 << 20, false);
    assert_eq!(
        written.len(),
        p.files().count()
            + usize::from(p.phases.iter().any(|ph| {
                ph.steps
                    .iter()
                    .any(|s| matches!(s, ferry_installer::engine::Step::Stage { .. }))
            }))
    );
    let _ = serde_json::to_vec(p).unwrap();
    for (_, f) in p.files() {
        assert!(host().path(&f.path).starts_with(root), "{}", f.path);
    }
}

/// Plans an install of `b` and a join to it; checks both plans.
pub fn plan_everything(b: &Bundle, control_plane: bool) {
    let h = host();
    let s = InstallSettings::example(h.clone());
    if let Ok(p) = plan(&s, b, &Journal::default()) {
        check_plan(&p, &h.root);
    }
    if let Ok(info) = protocol::join_info(b, "https://10.0.0.1:5443", None) {
        plan_join(&info, control_plane);
    }
}

/// Plans a join from join info as a master hands it out.
pub fn plan_join(info: &protocol::JoinInfo, control_plane: bool) {
    let h = host();
    let s = node::JoinSettings {
        master: "10.0.0.1:5443".into(),
        token: Token::parse(&format!("K10{}::{}", "a".repeat(64), "b".repeat(64))).unwrap(),
        control_plane,
        node_ip: "10.0.0.2".parse().unwrap(),
        wait_timeout: Duration::from_secs(1),
        systemd: false,
    };
    if let Ok(p) = node::plan(h, &Journal::default(), info, &s) {
        check_plan(&p, &h.root);
    }
}

/// A scratch directory for one input: emptied before each use, kept for the process
/// (creating a temporary directory per input costs more than the code under test).
pub fn scratch() -> &'static Path {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    let d = D.get_or_init(|| tempfile::tempdir().unwrap()).path();
    for e in std::fs::read_dir(d).unwrap().flatten() {
        let p = e.path();
        let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
    }
    d
}
