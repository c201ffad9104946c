//! The `packages` phase: the bundle's OS packages (`PACKAGE deb` and their dependency
//! closure, resolved by the builder for one release) installed with the host's own dpkg.
//!
//! Why dpkg and not an unpacker of ferry's own: maintainer scripts (users, alternatives,
//! conffiles, triggers) are part of a package, and dpkg's database is what the host's
//! apt, `dpkg -s` and the next upgrade trust. The phase is planned against the host's
//! dpkg database (`<root>/var/lib/dpkg/status`):
//!
//! - a package the host has at the carried version or newer is skipped;
//! - one the host lacks is installed, and journaled (before dpkg runs) as ferry's, so
//!   `reset` removes it (`dpkg -r`: configuration files stay, as with `apt remove`);
//! - one the host has at an older version is upgraded, and stays on `reset` (it was the
//!   host's; the older version is not carried).
//!
//! Steps: the needed `.deb`s are written through the transaction to a spool directory
//! under the data directory (verified against bundle.json as they stream), then one
//! `dpkg -i` per install group of the builder's closure, in its order — every group's
//! dependencies are configured before it. `--root` is honoured through `dpkg --root`,
//! which also runs maintainer scripts chrooted there. dpkg never asks: the environment
//! is non-interactive and conffile questions keep the host's version.
//!
//! A failing `dpkg -i` (a maintainer script that exits non-zero, say) fails the phase
//! with dpkg's output; the packages it did configure stay (and stay journaled), so the
//! next run re-plans from the database and resumes with what is still missing.

use super::preflight::{Check, Status as CheckStatus};
use super::{entry_ref, file, PlanError};
use crate::engine::{
    CommandSpec, Content, DpkgStep, EntryRef, Journal, Phase, PhaseName, Step, StepError, System,
};
use crate::host::{Host, HostPath};
use ferry_bundle::packages::{OsRecord, PackageRecord};
use ferry_bundle::{Bundle, BundleManifest};
use ferry_deb::Version;
use std::collections::BTreeMap;

/// Where the `.deb`s are spooled for dpkg.
pub fn spool(host: &Host) -> HostPath {
    host.data_dir.join("packages").expect("fixed name")
}

/// `dpkg`, with `--root` when the root is not `/`, and a non-interactive environment.
fn dpkg(host: &Host, args: impl IntoIterator<Item = String>) -> CommandSpec {
    let mut argv = vec!["dpkg".to_string()];
    if !host.is_real_root() {
        argv.push("--root".into());
        argv.push(host.root.display().to_string());
    }
    argv.extend(args);
    CommandSpec {
        argv,
        env: [
            ("DEBIAN_FRONTEND", "noninteractive"),
            ("DEBCONF_NONINTERACTIVE_SEEN", "true"),
            ("LC_ALL", "C"),
            (
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    }
}

/// What the host has of a carried package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Not there (or only its configuration files): installed, and ferry's.
    Install,
    /// There at an older version (or half-installed): upgraded, stays the host's.
    Upgrade(String),
    /// There at this version or newer.
    Have(String),
}

/// Compares a carried package with the host's database.
pub fn need(rec: &PackageRecord, status: &ferry_deb::Status, journal: &Journal) -> Need {
    let Some(have) = status.packages.get(&rec.name) else {
        return Need::Install;
    };
    let version = have
        .version
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default();
    if have.is_installed() && newer_or_same(have.version.as_ref(), &rec.version) {
        Need::Have(version)
    } else if gone(have) || journal.packages.contains(&rec.name) {
        Need::Install
    } else {
        Need::Upgrade(format!("{version} ({})", have.status))
    }
}

/// Known to dpkg but not installed: removed, or never unpacked.
fn gone(i: &ferry_deb::Installed) -> bool {
    matches!(
        i.status.rsplit(' ').next(),
        Some("not-installed") | Some("config-files")
    )
}

fn newer_or_same(have: Option<&Version>, carried: &str) -> bool {
    match (have, Version::parse(carried)) {
        (Some(h), Ok(c)) => *h >= c,
        _ => false,
    }
}

/// The packages phase of `b` on this host, and notes for the plan; `None` when the bundle
/// carries no packages.
pub fn phase(
    host: &Host,
    journal: &Journal,
    b: &Bundle,
) -> Result<Option<(Phase, Vec<String>)>, PlanError> {
    let m = &b.manifest;
    phase_of(host, journal, m.os.as_ref(), &m.packages, |rec| {
        entry_ref(
            b,
            &rec.entry,
            &format!("package {} {}", rec.name, rec.version),
        )
    })
}

/// The packages phase for `packages` (of release `os`), whose `.deb`s `entry` locates —
/// in the staged bundle on the first node, on the master for a joined one.
pub fn phase_of(
    host: &Host,
    journal: &Journal,
    os: Option<&OsRecord>,
    packages: &[PackageRecord],
    entry: impl Fn(&PackageRecord) -> Result<EntryRef, PlanError>,
) -> Result<Option<(Phase, Vec<String>)>, PlanError> {
    if packages.is_empty() {
        return Ok(None);
    }
    let status = ferry_deb::Status::read(&host.root).map_err(|e| {
        PlanError::Other(format!(
            "this bundle carries OS packages for {} and this host has no dpkg database ({e}); \
             install it on a {} host",
            os_name(os),
            os_name(os)
        ))
    })?;
    let mut phase = Phase::new(PhaseName::Packages);
    let mut have = Vec::new();
    // Per install group: the spooled .debs, and which packages are new or upgrades.
    #[derive(Default)]
    struct Group {
        debs: Vec<String>,
        install: Vec<String>,
        upgrade: Vec<String>,
    }
    let mut groups: BTreeMap<u32, Group> = BTreeMap::new();
    for rec in packages {
        let n = need(rec, &status, journal);
        let g = groups.entry(rec.group).or_default();
        match n {
            Need::Have(v) => {
                have.push(format!("{} {v}", rec.name));
                continue;
            }
            Need::Install => g.install.push(rec.name.clone()),
            Need::Upgrade(_) => g.upgrade.push(rec.name.clone()),
        }
        let e = entry(rec)?;
        let base = rec.entry.rsplit('/').next().unwrap_or(&rec.entry);
        let dest = spool(host).join(base)?;
        g.debs.push(host.path(&dest).display().to_string());
        phase
            .steps
            .push(file(host, journal, dest, 0o644, Content::Entry(e)));
    }
    for g in groups.into_values().filter(|g| !g.debs.is_empty()) {
        let mut args: Vec<String> = ["--force-confdef", "--force-confold", "-i"]
            .map(String::from)
            .to_vec();
        args.extend(g.debs);
        phase.steps.push(Step::Dpkg(DpkgStep {
            command: dpkg(host, args),
            install: g.install,
            upgrade: g.upgrade,
        }));
    }
    let mut notes = Vec::new();
    if !have.is_empty() {
        notes.push(format!(
            "packages: this host already has {} of the {} carried at the same or a newer version (not installed again): {}",
            have.len(),
            packages.len(),
            have.join(", ")
        ));
    }
    Ok(Some((phase, notes)))
}

fn os_name(os: Option<&OsRecord>) -> String {
    os.map(|o| format!("{} {} {}", o.distribution, o.release, o.architecture))
        .unwrap_or_else(|| "its release".into())
}

/// The error of a failed `dpkg -i`: what was being installed, dpkg's own words (with any
/// maintainer script's output), and that a re-run resumes.
pub fn dpkg_failed(d: &DpkgStep, e: StepError) -> StepError {
    let names: Vec<&str> = d
        .install
        .iter()
        .chain(&d.upgrade)
        .map(String::as_str)
        .collect();
    StepError::Packages(format!(
        "dpkg could not install {}: {e}\n  the packages dpkg did install stay (and `reset` removes \
         those ferry installed); fix the cause above and run the install again: it resumes \
         with the packages still missing",
        names.join(" ")
    ))
}

/// Preflight checks for a bundle with packages: a dpkg host of the bundle's release and
/// architecture. Empty when the bundle carries no packages.
pub fn preflight(host: &Host, m: &BundleManifest) -> Vec<Check> {
    preflight_of(host, m.os.as_ref(), &m.packages)
}

/// [`preflight`] for `packages` of release `os` (a joined node has them from its master).
pub fn preflight_of(host: &Host, os: Option<&OsRecord>, packages: &[PackageRecord]) -> Vec<Check> {
    if packages.is_empty() {
        return Vec::new();
    }
    let fix = format!(
        "the bundle's packages are .debs for {}: install it on such a host (or rebuild with this host's release in OS)",
        os_name(os)
    );
    let os = os.cloned().unwrap_or_default();
    let mut out = Vec::new();
    let db = host.root.join("var/lib/dpkg/status");
    let arch = std::process::Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let (ok, detail) = match (&arch, db.is_file()) {
        (None, _) => (false, "no dpkg on this host".to_string()),
        (Some(_), false) => (false, format!("no dpkg database at {}", db.display())),
        (Some(a), true) if *a != os.architecture => (
            false,
            format!(
                "dpkg architecture {a}, the packages are {}",
                os.architecture
            ),
        ),
        (Some(a), true) => (true, format!("dpkg ({a}), {}", db.display())),
    };
    out.push(Check {
        name: "dpkg",
        status: if ok {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        detail,
        fix: if ok { String::new() } else { fix.clone() },
    });
    let (id, codename) = os_release(host);
    let ok = id == os.distribution && codename == os.release;
    out.push(Check {
        name: "os_release",
        status: if ok {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        detail: format!(
            "host {} {}, packages for {} {}",
            if id.is_empty() { "?" } else { &id },
            if codename.is_empty() { "?" } else { &codename },
            os.distribution,
            os.release
        ),
        fix: if ok { String::new() } else { fix },
    });
    out
}

/// `ID` and `VERSION_CODENAME` of `<root>/etc/os-release` (or `/usr/lib/os-release`).
pub fn os_release(host: &Host) -> (String, String) {
    let text = std::fs::read_to_string(host.root.join("etc/os-release"))
        .or_else(|_| std::fs::read_to_string(host.root.join("usr/lib/os-release")))
        .unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (get("ID"), get("VERSION_CODENAME"))
}

/// `reset`: removes the packages ferry installed (newest first) that dpkg still has;
/// returns their names. What dpkg refuses (another package now depends on one) is
/// reported, not forced.
pub fn remove(
    host: &Host,
    sys: &dyn System,
    journal: &Journal,
    failures: &mut Vec<String>,
) -> Vec<String> {
    if journal.packages.is_empty() {
        return Vec::new();
    }
    let status = match ferry_deb::Status::read(&host.root) {
        Ok(s) => s,
        Err(e) => {
            failures.push(format!("removing packages {:?}: {e}", journal.packages));
            return Vec::new();
        }
    };
    let present: Vec<String> = journal
        .packages
        .iter()
        .rev()
        .filter(|p| status.packages.get(*p).is_some_and(|i| !gone(i)))
        .cloned()
        .collect();
    if present.is_empty() {
        return Vec::new();
    }
    let cmd = dpkg(
        host,
        std::iter::once("-r".to_string()).chain(present.clone()),
    );
    match sys.run(&cmd) {
        Ok(o) if o.success => present,
        Ok(o) => {
            failures.push(format!(
                "`{}` failed ({}): {}",
                cmd.argv.join(" "),
                o.status,
                o.stderr.trim()
            ));
            Vec::new()
        }
        Err(e) => {
            failures.push(format!("removing packages: {e}"));
            Vec::new()
        }
    }
}
