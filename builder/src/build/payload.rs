//! Runtime and cluster payloads (`payloads/<name>/`): the binaries a bare host needs.
//!
//! A bundle without `CLUSTER` carries the `containerd` payload; `CLUSTER k3s …` carries
//! `k3s`. `--payload <name>=<dir|.tar.gz>` supplies one from local files: customers with
//! vetted binaries, and CI, which has no internet. A build for several platforms carries
//! the payload of each (a master hands joining nodes of another architecture theirs), so
//! local files are given per platform, `--payload <name>@<os/arch>=…`, for every one of
//! them ([`for_platform`]). Each file becomes an entry under
//! `files/payloads/<name>/…` (zstd where it helps) and the bundle's `payloads[]` maps the
//! file's role (`bin/containerd`, `cni/bridge`) to its entry. Payload names, roles and
//! entry paths are the bundle crate's ([`ferry_bundle::roles`], [`ferry_bundle::paths`]):
//! the installer looks the files up by the same strings.
//!
//! A `.tar.gz` is unpacked with the `tar` and `flate2` crates rather than the host's
//! `tar` command (whose flags and safety differ between GNU, BSD and busybox): only
//! regular files, directories and links that stay inside the target are accepted, and an
//! entry that would land or point outside it (absolute, `..`, a link to `/` or above the
//! target) is refused by name.

use anyhow::{bail, Context, Result};
use ferry_bundle::roles;
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

#[derive(Debug, Clone)]
pub struct PayloadFile {
    /// Role inside the payload, e.g. `bin/containerd` ([`ferry_bundle::roles`]).
    pub role: String,
    pub src: PathBuf,
    pub size: u64,
    pub mode: u32,
    /// Where it was downloaded from (for the SBOM); `None` for `--payload` files.
    pub url: Option<String>,
}

/// `--payload <name>[@<platform>]=<dir|file.tar.gz>`. Without `@<platform>` the files are
/// for the one `--platform` of the build; a build for several platforms needs one
/// `--payload <name>@<platform>=…` per platform (see [`for_platform`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadSource {
    pub name: String,
    /// `@linux/arm64`: the platform whose hosts run these files.
    pub platform: Option<ferry_bundle::oci::Platform>,
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected <name>[@<os/arch>]=<dir|file.tar.gz>, e.g. containerd=./containerd-payload or containerd@linux/arm64=./containerd-arm64")]
pub struct PayloadSourceError(String);

impl FromStr for PayloadSource {
    type Err = PayloadSourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PayloadSourceError(s.to_string());
        let (n, p) = s.split_once('=').ok_or_else(bad)?;
        let (name, platform) = match n.split_once('@') {
            Some((name, pf)) => (name, Some(pf.parse().map_err(|_| bad())?)),
            None => (n, None),
        };
        if name.is_empty() || p.is_empty() {
            return Err(bad());
        }
        Ok(PayloadSource {
            name: name.to_string(),
            platform,
            path: PathBuf::from(p),
        })
    }
}

/// Why `--payload` does not fit the build's platforms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    #[error("--payload {name}={path}: this build is for several platforms ({platforms}); say whose files these are, one flag per platform: {hint}")]
    Unqualified {
        name: String,
        path: String,
        platforms: String,
        hint: String,
    },
    #[error("--payload {name}@{platform}: the build is not for {platform} (--platform {platforms}); add it to --platform or drop this --payload")]
    NotBuilt {
        name: String,
        platform: String,
        platforms: String,
    },
    #[error("--payload gives {name} for {given} but not for {missing}; add --payload {name}@{missing}=<dir> (or drop every --payload to download them all)")]
    Missing {
        name: String,
        given: String,
        missing: String,
    },
    #[error(
        "--payload {name}@{platform} is given twice; give one directory or archive per platform"
    )]
    Twice { name: String, platform: String },
}

/// Matches the `--payload` sources to the build's `platforms`: the source of each, in
/// order, or all `None` without `--payload`. One platform: `name=` or `name@<it>=`. Several:
/// every source must name its platform, and every platform must have one.
pub fn for_platform<'a>(
    sources: &'a [PayloadSource],
    platforms: &[ferry_bundle::oci::Platform],
) -> Result<Vec<Option<&'a PayloadSource>>, PlatformError> {
    let list = |ps: &mut dyn Iterator<Item = &ferry_bundle::oci::Platform>| {
        ps.map(|p| p.to_string()).collect::<Vec<_>>().join(",")
    };
    let all = list(&mut platforms.iter());
    let mut out: Vec<Option<&PayloadSource>> = vec![None; platforms.len()];
    for s in sources {
        let i = match &s.platform {
            None if platforms.len() == 1 => 0,
            None => {
                return Err(PlatformError::Unqualified {
                    name: s.name.clone(),
                    path: s.path.display().to_string(),
                    platforms: all,
                    hint: platforms
                        .iter()
                        .map(|p| format!("--payload {}@{p}=<dir>", s.name))
                        .collect::<Vec<_>>()
                        .join(" "),
                })
            }
            Some(want) => platforms
                .iter()
                .position(|p| p.matches(want) || want.matches(p))
                .ok_or_else(|| PlatformError::NotBuilt {
                    name: s.name.clone(),
                    platform: want.to_string(),
                    platforms: all.clone(),
                })?,
        };
        if out[i].is_some() {
            return Err(PlatformError::Twice {
                name: s.name.clone(),
                platform: platforms[i].to_string(),
            });
        }
        out[i] = Some(s);
    }
    if let Some(given) = out.iter().flatten().next() {
        if let Some(i) = out.iter().position(Option::is_none) {
            return Err(PlatformError::Missing {
                name: given.name.clone(),
                given: list(
                    &mut platforms
                        .iter()
                        .zip(&out)
                        .filter(|(_, s)| s.is_some())
                        .map(|(p, _)| p),
                ),
                missing: platforms[i].to_string(),
            });
        }
    }
    Ok(out)
}

/// Why a payload archive was not unpacked; each names the archive and, where it applies,
/// the entry.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{archive}: {error} (expected a .tar.gz)")]
    Read {
        archive: PathBuf,
        error: std::io::Error,
    },
    #[error("{archive}: entry {entry:?} {problem}; refusing to unpack it")]
    Unsafe {
        archive: PathBuf,
        entry: String,
        problem: &'static str,
    },
    #[error("{archive}: entry {entry:?}: {error}")]
    Write {
        archive: PathBuf,
        entry: String,
        error: std::io::Error,
    },
}

/// The components of a relative path with `.` dropped; `None` if it is absolute or has
/// a `..` component.
fn plain_components(p: &Path) -> Option<Vec<&std::ffi::OsStr>> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => return None,
        }
    }
    Some(out)
}

/// Whether a symlink at `entry` (relative to the target) with `target` stays inside:
/// not absolute, and its `..` never climb above the target's root.
fn link_stays_inside(entry: &Path, target: &Path) -> bool {
    let Some(at) = plain_components(entry) else {
        return false;
    };
    let mut depth = at.len().saturating_sub(1) as i64; // the link's directory
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Unpacks the gzip tarball `archive` into `dest` (created if needed).
pub fn unpack_tar_gz(archive: &Path, dest: &Path) -> Result<(), UnpackError> {
    let read = |error| UnpackError::Read {
        archive: archive.to_path_buf(),
        error,
    };
    let unsafe_entry = |entry: &Path, problem| UnpackError::Unsafe {
        archive: archive.to_path_buf(),
        entry: entry.display().to_string(),
        problem,
    };
    std::fs::create_dir_all(dest).map_err(|error| UnpackError::Write {
        archive: archive.to_path_buf(),
        entry: String::new(),
        error,
    })?;
    let file = std::fs::File::open(archive).map_err(read)?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    ar.set_preserve_permissions(true);
    ar.set_overwrite(true);
    for entry in ar.entries().map_err(read)? {
        let mut entry = entry.map_err(read)?;
        let path = entry.path().map_err(read)?.into_owned();
        if plain_components(&path).is_none() {
            return Err(unsafe_entry(&path, "is absolute or contains '..'"));
        }
        use tar::EntryType as T;
        match entry.header().entry_type() {
            T::Regular | T::Continuous | T::Directory => {}
            T::Symlink => {
                let target = entry.link_name().map_err(read)?.unwrap_or_default();
                if !link_stays_inside(&path, &target) {
                    return Err(unsafe_entry(
                        &path,
                        "is a symlink pointing outside the payload",
                    ));
                }
            }
            T::Link => {
                let target = entry.link_name().map_err(read)?.unwrap_or_default();
                if plain_components(&target).is_none_or(|c| c.is_empty()) {
                    return Err(unsafe_entry(
                        &path,
                        "is a hard link to a file outside the payload",
                    ));
                }
            }
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => continue,
            _ => {
                return Err(unsafe_entry(
                    &path,
                    "is a device, fifo or other special file",
                ))
            }
        }
        let unpacked = entry.unpack_in(dest).map_err(|error| UnpackError::Write {
            archive: archive.to_path_buf(),
            entry: path.display().to_string(),
            error,
        })?;
        if !unpacked {
            return Err(unsafe_entry(&path, "would be written outside the payload"));
        }
    }
    Ok(())
}

/// Lists a payload's files. A `.tar.gz`/`.tgz` is unpacked into `scratch` first.
pub fn collect(name: &str, src: &Path, scratch: &Path) -> Result<Vec<PayloadFile>> {
    let dir = if src.is_dir() {
        src.to_path_buf()
    } else {
        let d = scratch.join(format!("payload-{name}"));
        if d.exists() {
            std::fs::remove_dir_all(&d)
                .with_context(|| format!("clearing {} before unpacking", d.display()))?;
        }
        unpack_tar_gz(src, &d).with_context(|| format!("payload {name}"))?;
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
            url: None,
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
                    url: None,
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
    fn unpacks_files_dirs_and_inner_links() {
        let d = tempfile::tempdir().unwrap();
        let a = targz(
            d.path(),
            &[
                ("bin/", T::Directory, ""),
                ("bin/ctr", T::Regular, "#!ctr"),
                ("./cni/bridge", T::Regular, "bridge"),
                ("bin/ctr-link", T::Symlink, "ctr"),
                ("cni/up", T::Symlink, "../bin/ctr"),
                ("bin/hard", T::Link, "bin/ctr"),
            ],
        );
        let out = d.path().join("out");
        unpack_tar_gz(&a, &out).unwrap();
        assert_eq!(std::fs::read(out.join("bin/ctr")).unwrap(), b"#!ctr");
        assert_eq!(std::fs::read(out.join("cni/up")).unwrap(), b"#!ctr");
        assert_eq!(std::fs::read(out.join("bin/hard")).unwrap(), b"#!ctr");
        assert_eq!(std::fs::read(out.join("cni/bridge")).unwrap(), b"bridge");
    }

    #[test]
    fn refuses_entries_escaping_the_target_naming_them() {
        let d = tempfile::tempdir().unwrap();
        for (entries, named) in [
            (vec![("../x", T::Regular, "evil")], "../x"),
            (vec![("bin/../../x", T::Regular, "evil")], "bin/../../x"),
            (vec![("/etc/x", T::Regular, "evil")], "/etc/x"),
            (vec![("bin/sh", T::Symlink, "/bin/sh")], "bin/sh"),
            (vec![("bin/up", T::Symlink, "../../etc")], "bin/up"),
            (vec![("up", T::Symlink, "..")], "up"),
            (vec![("bin/h", T::Link, "../etc/passwd")], "bin/h"),
            (vec![("bin/h", T::Link, "/etc/passwd")], "bin/h"),
            (vec![("dev", T::Char, "")], "dev"),
            (vec![("fifo", T::Fifo, "")], "fifo"),
        ] {
            let a = targz(d.path(), &entries);
            let out = d.path().join("out");
            let e = unpack_tar_gz(&a, &out).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{named:?}")) && e.contains("refusing"),
                "{named}: {e}"
            );
            assert!(!d.path().join("x").exists());
            let _ = std::fs::remove_dir_all(&out);
        }
    }

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
        let e = collect(roles::PAYLOAD_CONTAINERD, &partial, &d.path().join("s"))
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
        assert!("k3s@=x".parse::<PayloadSource>().is_err());
        assert!("k3s@linux=x".parse::<PayloadSource>().is_err());
        let p: PayloadSource = "containerd@linux/arm64=./arm".parse().unwrap();
        assert_eq!(p.name, "containerd");
        assert_eq!(p.platform.unwrap().to_string(), "linux/arm64");
    }

    fn platforms(s: &[&str]) -> Vec<ferry_bundle::oci::Platform> {
        s.iter().map(|p| p.parse().unwrap()).collect()
    }

    fn sources(s: &[&str]) -> Vec<PayloadSource> {
        s.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn one_platform_takes_an_unqualified_payload_as_before() {
        let one = platforms(&["linux/amd64"]);
        let src = sources(&["containerd=./d"]);
        assert_eq!(for_platform(&src, &one).unwrap(), [Some(&src[0])]);
        let src = sources(&["containerd@linux/amd64=./d"]);
        assert_eq!(for_platform(&src, &one).unwrap(), [Some(&src[0])]);
        assert_eq!(for_platform(&[], &one).unwrap(), [None]);
    }

    #[test]
    fn several_platforms_need_one_qualified_payload_each() {
        let two = platforms(&["linux/amd64", "linux/arm64"]);
        let src = sources(&[
            "containerd@linux/arm64=./arm",
            "containerd@linux/amd64=./amd",
        ]);
        assert_eq!(
            for_platform(&src, &two).unwrap(),
            [Some(&src[1]), Some(&src[0])]
        );
        assert_eq!(for_platform(&[], &two).unwrap(), [None, None]);
        let e = for_platform(&sources(&["containerd=./d"]), &two)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--payload containerd=./d")
                && e.contains("--payload containerd@linux/arm64=<dir>"),
            "{e}"
        );
        let e = for_platform(&sources(&["containerd@linux/amd64=./d"]), &two)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not for linux/arm64") && e.contains("--payload containerd@linux/arm64="),
            "{e}"
        );
        let e = for_platform(&sources(&["containerd@linux/s390x=./d"]), &two)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not for linux/s390x"), "{e}");
        let e = for_platform(
            &sources(&["containerd@linux/arm64=./a", "containerd@linux/arm64=./b"]),
            &two,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
