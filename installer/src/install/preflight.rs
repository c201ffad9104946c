//! Preflight: everything that would make an install fail half-way, checked before
//! anything is written. Printed as a table (check, result, how to fix), or JSON.
//! A failing check stops the install unless named in `--skip-preflight`.

use crate::host::Host;
use serde::Serialize;
use std::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: String,
}

pub struct Inputs<'a> {
    pub host: &'a Host,
    /// Every file the plan writes, with its size ([`crate::engine::Plan::written`]).
    pub writes: Vec<crate::engine::plan::Written>,
    pub platform: &'a str,
    pub ports: Vec<u16>,
    /// k3s needs more memory, a default route and br_netfilter; containerd alone does not.
    pub cluster: bool,
    /// The payload sha256 of the bundle (`sha256:<hex>`); an install of another bundle
    /// is "earlier install".
    pub bundle_sha256: &'a str,
    /// Its name: another version of the same bundle is an upgrade, not an install.
    pub bundle_name: &'a str,
    /// What this run would make of the host: a server (install) or a joined node.
    pub role: crate::engine::NodeRole,
    /// How the operator runs this program, for the hints (`./delivery.run reset`).
    pub invocation: &'a str,
    pub skip: &'a [String],
}

/// Every check's name, as `--skip-preflight` takes it.
pub const CHECKS: [&str; 14] = [
    "root",
    "arch",
    "kernel",
    "cgroups",
    "overlayfs",
    "br_netfilter",
    "ip_forward",
    "disk",
    "memory",
    "ports",
    "default_route",
    "earlier_install",
    // Only for bundles with OS packages (`super::packages::preflight`).
    "dpkg",
    "os_release",
];

fn check(name: &'static str, ok: bool, fail_status: Status, detail: String, fix: &str) -> Check {
    Check {
        name,
        status: if ok { Status::Pass } else { fail_status },
        detail,
        fix: if ok { String::new() } else { fix.to_string() },
    }
}

pub fn run(i: &Inputs) -> Vec<Check> {
    let mut out = Vec::new();
    let euid = nix::unistd::geteuid();
    out.push(check(
        "root",
        euid.is_root(),
        Status::Fail,
        format!("euid {euid}"),
        "run as root (sudo ./delivery.run)",
    ));

    let uname = nix::sys::utsname::uname().ok();
    let machine = uname
        .as_ref()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_default();
    let arch = match machine.as_str() {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        m => m,
    };
    let want = i.platform.split('/').nth(1).unwrap_or("amd64");
    out.push(check(
        "arch",
        arch == want,
        Status::Fail,
        format!("host {machine}, bundle {}", i.platform),
        "use the bundle built for this host's architecture",
    ));

    let release = uname
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let ver: Vec<u32> = release
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .filter_map(|s| s.parse().ok())
        .collect();
    let kernel_ok = ver.len() == 2 && (ver[0], ver[1]) >= (4, 15);
    out.push(check(
        "kernel",
        kernel_ok,
        Status::Fail,
        release.clone(),
        "containerd needs Linux ≥ 4.15",
    ));

    let cg2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let cg1 = std::path::Path::new("/sys/fs/cgroup/memory").exists();
    out.push(check(
        "cgroups",
        cg2 || cg1,
        Status::Fail,
        if cg2 {
            "v2".into()
        } else if cg1 {
            "v1".into()
        } else {
            "none mounted".into()
        },
        "mount cgroups (cgroup2 on /sys/fs/cgroup)",
    ));

    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    out.push(check(
        "overlayfs",
        fs.contains("overlay"),
        Status::Fail,
        "overlay in /proc/filesystems".into(),
        "modprobe overlay",
    ));
    let modules = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    let br =
        modules.contains("br_netfilter") || std::path::Path::new("/proc/sys/net/bridge").exists();
    out.push(check(
        "br_netfilter",
        br,
        if i.cluster {
            Status::Fail
        } else {
            Status::Warn
        },
        "bridge netfilter for pod networking".into(),
        "modprobe br_netfilter; echo br_netfilter > /etc/modules-load.d/ferry.conf",
    ));
    let fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    out.push(check(
        "ip_forward",
        fwd,
        if i.cluster {
            Status::Fail
        } else {
            Status::Warn
        },
        "net.ipv4.ip_forward".into(),
        "sysctl -w net.ipv4.ip_forward=1 (and persist in /etc/sysctl.d/)",
    ));

    out.extend(disk_checks(i.host, &i.writes));

    let mem = meminfo_available();
    let need_mem: u64 = if i.cluster { 2 << 30 } else { 512 << 20 };
    out.push(check(
        "memory",
        mem >= need_mem,
        Status::Warn,
        format!("{} available, want {}", gib(mem), gib(need_mem)),
        "add memory or stop other workloads",
    ));

    let mut seen = Vec::new();
    for &port in &i.ports {
        if seen.contains(&port) {
            out.push(check(
                "ports",
                false,
                Status::Fail,
                format!("tcp {port} is given for two services"),
                "give --registry-port and --join-port different ports",
            ));
            continue;
        }
        seen.push(port);
        let free = TcpListener::bind(("0.0.0.0", port)).is_ok();
        let ours = crate::service::running_pid(i.host, "registry").is_some();
        out.push(check(
            "ports",
            free || ours,
            Status::Fail,
            format!(
                "tcp {port} {}",
                if free {
                    "free"
                } else if ours {
                    "used by ferry"
                } else {
                    "in use"
                }
            ),
            "stop what listens there, or choose another --registry-port / --join-port",
        ));
    }

    let route = has_default_route();
    out.push(check(
        "default_route",
        route,
        if i.cluster { Status::Fail } else { Status::Warn },
        if route { "present".into() } else { "none".into() },
        "add one even on an isolated network (k3s refuses to start without it): ip route add default via <gw>",
    ));

    let earlier = crate::engine::Journal::load(&i.host.path(&i.host.journal()))
        .ok()
        .flatten();
    let reset = format!("{} reset", i.invocation);
    let (ok, detail, fix) = match &earlier {
        None => (true, "none".to_string(), String::new()),
        Some(j) if j.role != i.role => (
            false,
            format!(
                "this host is already a {} node of bundle {}",
                j.role.as_str(),
                j.bundle_name
            ),
            match j.role {
                crate::engine::NodeRole::Join => format!(
                    "this host was joined to a master: to make it a master instead, run `{reset}` first"
                ),
                crate::engine::NodeRole::Server => format!(
                    "this host is a master: join other hosts to it; to join it elsewhere, run `{reset}` first"
                ),
            },
        ),
        Some(j) if j.bundle_sha256 == i.bundle_sha256 || j.bundle_sha256.is_empty() => (
            true,
            format!("{} (same bundle: resuming)", j.bundle_name),
            String::new(),
        ),
        Some(j) if j.bundle_name == i.bundle_name && i.role == crate::engine::NodeRole::Server => (
            false,
            format!("another version of {} is installed", j.bundle_name),
            format!("run `{} upgrade` to upgrade it (it shows what changes first)", i.invocation),
        ),
        Some(j) => (
            false,
            format!("bundle {} is installed", j.bundle_name),
            format!("run `{reset}` first to replace it with another bundle"),
        ),
    };
    out.push(Check {
        name: "earlier_install",
        status: if ok { Status::Pass } else { Status::Fail },
        detail,
        fix,
    });

    skip(&mut out, i.skip);
    out
}

/// Turns the failing checks named in `--skip-preflight` into skipped ones.
pub fn skip(checks: &mut [Check], names: &[String]) {
    for c in checks {
        if c.status == Status::Fail && names.iter().any(|s| s == c.name) {
            c.status = Status::Skipped;
        }
    }
}

/// Room the runtime needs in the data directory beyond what the plan writes: its image
/// store (content and unpacked snapshots) grows as images are pulled.
pub const RUNTIME_HEADROOM: u64 = 512 << 20;

/// One `disk` check per file system the plan writes to: free space against the exact sum
/// of what lands there (each file rounded up to the file system's blocks). The data
/// directory's file system also wants [`RUNTIME_HEADROOM`] (a warning only).
fn disk_checks(host: &Host, writes: &[crate::engine::plan::Written]) -> Vec<Check> {
    use std::os::unix::fs::MetadataExt;
    struct Fs {
        probe: std::path::PathBuf,
        free: u64,
        need: u64,
        files: usize,
        data_dir: bool,
    }
    let mut by_dev: std::collections::BTreeMap<u64, Fs> = Default::default();
    let data = host.data_dir.join("journal.json").expect("fixed name");
    let targets = writes
        .iter()
        .map(|w| (&w.path, w.bytes, false))
        .chain(std::iter::once((&data, 0, true)));
    for (path, bytes, is_data) in targets {
        let mut probe = host.path(path);
        while std::fs::symlink_metadata(&probe).is_err() {
            match probe.parent() {
                Some(p) => probe = p.to_path_buf(),
                None => break,
            }
        }
        let dev = std::fs::metadata(&probe).map(|m| m.dev()).unwrap_or(0);
        let fs = by_dev.entry(dev).or_insert_with(|| {
            let (free, _) = space(&probe);
            Fs {
                probe: probe.clone(),
                free,
                need: 0,
                files: 0,
                data_dir: false,
            }
        });
        let (_, block) = space(&probe);
        fs.need += bytes.div_ceil(block) * block;
        fs.files += usize::from(!is_data);
        fs.data_dir |= is_data;
    }
    let mut out = Vec::new();
    for fs in by_dev.values() {
        let mut c = check(
            "disk",
            fs.free >= fs.need,
            Status::Fail,
            format!(
                "{} free at {}, need {} for {} file(s)",
                size(fs.free),
                fs.probe.display(),
                size(fs.need),
                fs.files
            ),
            "free space there (or give --data-dir / --root on a larger disk)",
        );
        if c.status == Status::Pass && fs.data_dir && fs.free < fs.need + RUNTIME_HEADROOM {
            c.status = Status::Warn;
            c.detail.push_str(&format!(
                ", and the runtime's images want {}",
                size(RUNTIME_HEADROOM)
            ));
            c.fix = "free space for the images the runtime unpacks".into();
        }
        out.push(c);
    }
    out
}

/// Free bytes (for an unprivileged writer: what root gets is a little more) and the block
/// size of the file system holding `p`.
fn space(p: &std::path::Path) -> (u64, u64) {
    nix::sys::statvfs::statvfs(p)
        .map(|s| {
            (
                s.blocks_available() * s.fragment_size(),
                s.fragment_size().max(512),
            )
        })
        .unwrap_or((0, 4096))
}

/// Bytes for people: exact below 1 MiB, else MiB or GiB with one decimal.
pub fn size(n: u64) -> String {
    if n < 1 << 20 {
        format!("{n} bytes")
    } else if n < 1 << 30 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else {
        gib(n)
    }
}

pub fn failed(checks: &[Check]) -> Vec<&Check> {
    checks.iter().filter(|c| c.status == Status::Fail).collect()
}

pub fn table(checks: &[Check]) -> String {
    let mut s = format!(
        "{:<16} {:<8} {:<48} {}\n",
        "CHECK", "RESULT", "DETAIL", "HOW TO FIX"
    );
    for c in checks {
        let r = match c.status {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skipped => "skipped",
        };
        s.push_str(&format!(
            "{:<16} {:<8} {:<48} {}\n",
            c.name, r, c.detail, c.fix
        ));
    }
    s
}

fn gib(n: u64) -> String {
    format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64)
}

fn meminfo_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

pub fn has_default_route() -> bool {
    std::fs::read_to_string("/proc/net/route")
        .map(|s| {
            s.lines()
                .skip(1)
                .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
        })
        .unwrap_or(false)
}
