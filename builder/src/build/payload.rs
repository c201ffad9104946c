//! Runtime and cluster payloads (`payloads/<name>/`): the binaries a bare host needs.
//!
//! A bundle without `CLUSTER` carries the `containerd` payload; `CLUSTER k3s …` carries
//! `k3s`. `--payload <name>=<dir|.tar.gz>` supplies one from local files: customers with
//! vetted binaries, and CI, which has no internet. Each file becomes an entry under
//! `files/payloads/<name>/…` (zstd where it helps) and the bundle's `payloads[]` maps the
//! file's role (`bin/containerd`, `cni/bridge`) to its entry. Payload names, roles and
//! entry paths are the bundle crate's ([`ferry_bundle::roles`], [`ferry_bundle::paths`]):
//! the installer looks the files up by the same strings.

use anyhow::{bail, Context, Result};
use ferry_bundle::roles;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

#[derive(Debug, Clone)]
pub struct PayloadFile {
    /// Role inside the payload, e.g. `bin/containerd` ([`ferry_bundle::roles`]).
    pub role: String,
    pub src: PathBuf,
    pub size: u64,
    pub mode: u32,
}

/// `--payload <name>=<dir|file.tar.gz>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadSource {
    pub name: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected <name>=<dir|file.tar.gz>, e.g. containerd=./containerd-payload")]
pub struct PayloadSourceError(String);

impl FromStr for PayloadSource {
    type Err = PayloadSourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok(PayloadSource {
                name: n.to_string(),
                path: PathBuf::from(p),
            }),
            _ => Err(PayloadSourceError(s.to_string())),
        }
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
    if name == roles::PAYLOAD_K3S {
        // k3s's own release layout: the binary and the airgap image tarball side by side.
        let bin = dir.join("k3s");
        let m = std::fs::metadata(&bin).with_context(|| {
            format!("payload k3s from {}: no `k3s` binary there (it must hold k3s and k3s-airgap-images-<arch>.tar[.zst])", src.display())
        })?;
        use std::os::unix::fs::PermissionsExt;
        out.push(PayloadFile {
            role: roles::K3S.into(),
            src: bin,
            size: m.len(),
            mode: m.permissions().mode() & 0o777 | 0o755,
        });
        return Ok(out);
    }
    for sub in [roles::BIN, roles::CNI, roles::IMAGES] {
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
                    role: roles::in_dir(sub, &e.file_name().to_string_lossy()),
                    src: e.path(),
                    size: m.len(),
                    mode: m.permissions().mode() & 0o777,
                });
            }
        }
    }
    if name == roles::PAYLOAD_CONTAINERD {
        let have: BTreeSet<&str> = out.iter().map(|f| f.role.as_str()).collect();
        let missing: Vec<_> = roles::CONTAINERD_REQUIRED
            .iter()
            .filter(|r| !have.contains(*r))
            .collect();
        if !missing.is_empty() {
            bail!(
                "payload containerd from {}: missing {:?}; it must hold {} and cni/<plugins>",
                src.display(),
                missing,
                roles::CONTAINERD_REQUIRED.join(", ")
            );
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A tar.gz of `(name, type, link target or content)`; names are written raw, so
    /// hostile ones (`../x`, `/abs`) can be made.
    fn targz(dir: &Path, entries: &[(&str, tar::EntryType, &str)]) -> PathBuf {
        let out = dir.join("p.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&out).unwrap(),
            flate2::Compression::fast(),
        );
        let mut t = tar::Builder::new(gz);
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(*kind);
            h.set_mode(0o755);
            let body: &[u8] = if kind.is_symlink() || kind.is_hard_link() {
                h.as_old_mut().linkname[..data.len()].copy_from_slice(data.as_bytes());
                b""
            } else {
                data.as_bytes()
            };
            h.set_size(body.len() as u64);
            h.set_cksum();
            t.append(&h, body).unwrap();
        }
        t.into_inner().unwrap().finish().unwrap().flush().unwrap();
        out
    }

    use tar::EntryType as T;

    #[test]
    fn collect_names_roles_and_requires_containerd_files() {
        let d = tempfile::tempdir().unwrap();
        let a = targz(
            d.path(),
            &[
                ("bin/containerd", T::Regular, "1"),
                ("bin/containerd-shim-runc-v2", T::Regular, "2"),
                ("bin/ctr", T::Regular, "3"),
                ("bin/runc", T::Regular, "4"),
                ("cni/bridge", T::Regular, "5"),
            ],
        );
        let files = collect(roles::PAYLOAD_CONTAINERD, &a, &d.path().join("s")).unwrap();
        let got: Vec<&str> = files.iter().map(|f| f.role.as_str()).collect();
        assert_eq!(
            got,
            [
                roles::CONTAINERD,
                roles::CONTAINERD_SHIM_RUNC_V2,
                roles::CTR,
                roles::RUNC,
                "cni/bridge"
            ]
        );
        let partial = targz(d.path(), &[("bin/ctr", T::Regular, "3")]);
        let e = collect(roles::PAYLOAD_CONTAINERD, &partial, &d.path().join("s2"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bin/runc"), "{e}");
    }

    #[test]
    fn payload_sources_parse() {
        let p: PayloadSource = "k3s=./dir".parse().unwrap();
        assert_eq!(
            (p.name.as_str(), p.path.as_path()),
            ("k3s", Path::new("./dir"))
        );
        assert!("k3s".parse::<PayloadSource>().is_err());
        assert!("=x".parse::<PayloadSource>().is_err());
    }
}
