//! Runtime and cluster payloads (`payloads/<name>/`): the binaries a bare host needs.
//!
//! A bundle without `CLUSTER` carries the `containerd` payload; `CLUSTER k3s …` carries
//! `k3s`. `--payload <name>=<dir|.tar.gz>` supplies one from local files: customers with
//! vetted binaries, and CI, which has no internet. Each file becomes an entry under
//! `files/payloads/<name>/…` (zstd where it helps) and the bundle's `payloads[]` maps the
//! file's role (`bin/containerd`, `cni/bridge`) to its entry.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Files a containerd payload must hold (role → why).
pub const CONTAINERD_REQUIRED: [&str; 4] = [
    "bin/containerd",
    "bin/containerd-shim-runc-v2",
    "bin/ctr",
    "bin/runc",
];

#[derive(Debug, Clone)]
pub struct PayloadFile {
    /// Role inside the payload, e.g. `bin/containerd`.
    pub role: String,
    pub src: PathBuf,
    pub size: u64,
    pub mode: u32,
}

/// Parses `name=path` as given to `--payload`.
pub fn parse_arg(s: &str) -> Result<(String, PathBuf)> {
    match s.split_once('=') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok((n.to_string(), PathBuf::from(p))),
        _ => bail!("--payload {s:?}: expected <name>=<dir|file.tar.gz>, e.g. containerd=./containerd-payload"),
    }
}

/// Lists a payload's files. A `.tar.gz`/`.tgz` is unpacked into `scratch` first.
pub fn collect(name: &str, src: &Path, scratch: &Path) -> Result<Vec<PayloadFile>> {
    let dir = if src.is_dir() {
        src.to_path_buf()
    } else {
        let d = scratch.join(format!("payload-{name}"));
        std::fs::create_dir_all(&d)?;
        let st = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(src)
            .arg("-C")
            .arg(&d)
            .status()
            .with_context(|| format!("unpacking payload {name} from {}", src.display()))?;
        if !st.success() {
            bail!(
                "payload {name}: cannot unpack {} (expected a directory or .tar.gz)",
                src.display()
            );
        }
        d
    };
    let mut out = Vec::new();
    if name == "k3s" {
        // k3s's own release layout: the binary and the airgap image tarball side by side.
        let bin = dir.join("k3s");
        let m = std::fs::metadata(&bin).with_context(|| {
            format!("payload k3s from {}: no `k3s` binary there (it must hold k3s and k3s-airgap-images-<arch>.tar[.zst])", src.display())
        })?;
        use std::os::unix::fs::PermissionsExt;
        out.push(PayloadFile {
            role: "bin/k3s".into(),
            src: bin,
            size: m.len(),
            mode: m.permissions().mode() & 0o777 | 0o755,
        });
        return Ok(out);
    }
    for sub in ["bin", "cni", "images"] {
        let d = dir.join(sub);
        if !d.is_dir() {
            continue;
        }
        let mut names: Vec<_> = std::fs::read_dir(&d)?.collect::<Result<_, _>>()?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let m = std::fs::metadata(e.path())?;
            if m.is_file() {
                use std::os::unix::fs::PermissionsExt;
                out.push(PayloadFile {
                    role: format!("{sub}/{}", e.file_name().to_string_lossy()),
                    src: e.path(),
                    size: m.len(),
                    mode: m.permissions().mode() & 0o777,
                });
            }
        }
    }
    if name == "containerd" {
        let have: BTreeMap<_, _> = out.iter().map(|f| (f.role.as_str(), ())).collect();
        let missing: Vec<_> = CONTAINERD_REQUIRED
            .iter()
            .filter(|r| !have.contains_key(*r))
            .collect();
        if !missing.is_empty() {
            bail!(
                "payload containerd from {}: missing {:?}; it must hold bin/containerd, bin/containerd-shim-runc-v2, bin/ctr, bin/runc and cni/<plugins>",
                src.display(),
                missing
            );
        }
    }
    Ok(out)
}

/// Entry path of a payload file.
pub fn entry_for(name: &str, role: &str) -> String {
    format!("{}/payloads/{name}/{role}", ferry_bundle::FILES_DIR)
}

/// k3s's airgap image tarball in a k3s payload directory, if any
/// (`k3s-airgap-images-<arch>.tar` or `.tar.zst`).
pub fn k3s_airgap_tarball(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            n.starts_with("k3s-airgap-images-") && (n.ends_with(".tar") || n.ends_with(".tar.zst"))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}
