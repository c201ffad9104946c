//! The containerd runtime from its projects' releases: `RUNTIME containerd [<version>]`.
//!
//! A runtime-only bundle carries containerd, runc and the CNI plugins ferry configures,
//! each from its own project's GitHub release and each verified against the checksum file
//! that project publishes:
//!
//! | project | asset | checksum file |
//! |---|---|---|
//! | containerd/containerd | `containerd-static-<v>-linux-<arch>.tar.gz` (no glibc dependency) | `<asset>.sha256sum` |
//! | opencontainers/runc | `runc.<arch>` (static) | `runc.sha256sum` |
//! | containernetworking/plugins | `cni-plugins-linux-<arch>-v<v>.tgz` | `<asset>.sha256` |
//!
//! Default versions come from `payloads/containerd/payload.toml`; `RUNTIME containerd
//! 2.1.1 runc=1.3.0 cni=1.7.1` overrides any of them. From the archives only the members
//! the installer uses are unpacked (streamed, regular files only) into a scratch
//! directory that lives until the bundle is written.

use super::download::Downloader;
use super::{
    arch_name, check_version, definition::Definition, published, verified_asset, FetchedPayload,
    GithubRelease, ReleaseError,
};
use crate::build::payload::PayloadFile;
use ferry_bundle::roles;
use std::collections::BTreeMap;
use std::path::Path;

/// OCI architecture → the name the three projects use (the same for all three).
const ARCHES: [(&str, &str); 2] = [("amd64", "amd64"), ("arm64", "arm64")];
/// The CNI plugins ferry's containerd configuration uses.
pub const CNI_PLUGINS: [&str; 4] = ["bridge", "host-local", "loopback", "portmap"];

/// The three versions of a containerd runtime, without a leading `v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    pub containerd: String,
    pub runc: String,
    pub cni: String,
}

impl Versions {
    /// The Kubefile's versions where given, else `def`'s defaults.
    pub fn resolve(
        def: &Definition,
        containerd: Option<&str>,
        runc: Option<&str>,
        cni: Option<&str>,
    ) -> Result<Versions, ReleaseError> {
        let pick = |project: &str, given: Option<&str>, default: &Option<String>| {
            let v = given
                .or(default.as_deref())
                .ok_or_else(|| {
                    ReleaseError::Definition(format!(
                        "payloads/containerd/payload.toml names no default {project} version; name one in the Kubefile"
                    ))
                })?
                .trim_start_matches('v')
                .to_string();
            check_version(project, &v)?;
            Ok::<_, ReleaseError>(v)
        };
        Ok(Versions {
            containerd: pick("containerd", containerd, &def.version)?,
            runc: pick("runc", runc, &def.runc)?,
            cni: pick("cni", cni, &def.cni)?,
        })
    }
}

/// Downloads, verifies and unpacks the runtime for `arch`; scratch space goes under
/// `scratch_in`.
pub fn fetch(
    v: &Versions,
    arch: &str,
    dl: &Downloader,
    scratch_in: &Path,
) -> Result<FetchedPayload, ReleaseError> {
    let def = Definition::builtin(roles::PAYLOAD_CONTAINERD)?;
    let a = arch_name("containerd", arch, &ARCHES)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReleaseError::Io { path, source }
    };
    std::fs::create_dir_all(scratch_in).map_err(io(scratch_in))?;
    let scratch = tempfile::Builder::new()
        .prefix("ferry-containerd-")
        .tempdir_in(scratch_in)
        .map_err(io(scratch_in))?;
    let mut files = Vec::new();
    let mut assets = Vec::new();

    let containerd = GithubRelease {
        repo: "containerd/containerd",
        tag: format!("v{}", v.containerd),
    };
    let asset = format!("containerd-static-{}-linux-{a}.tar.gz", v.containerd);
    let sums = published(
        dl,
        "containerd",
        &v.containerd,
        &containerd,
        &format!("{asset}.sha256sum"),
    )?;
    let (tgz, lock) = verified_asset(dl, &def, &containerd, &asset, &sums)?;
    let members: BTreeMap<String, String> = [
        roles::CONTAINERD,
        roles::CONTAINERD_SHIM_RUNC_V2,
        roles::CTR,
    ]
    .iter()
    .map(|r| (r.to_string(), r.to_string()))
    .collect();
    files.extend(unpack(&tgz, &asset, &lock.url, &members, scratch.path())?);
    assets.push(lock);

    let runc = GithubRelease {
        repo: "opencontainers/runc",
        tag: format!("v{}", v.runc),
    };
    let asset = format!("runc.{a}");
    let sums = published(dl, "runc", &v.runc, &runc, "runc.sha256sum")?;
    let (bin, lock) = verified_asset(dl, &def, &runc, &asset, &sums)?;
    files.push(payload_file(roles::RUNC, &bin, &lock.url)?);
    assets.push(lock);

    let cni = GithubRelease {
        repo: "containernetworking/plugins",
        tag: format!("v{}", v.cni),
    };
    let asset = format!("cni-plugins-linux-{a}-v{}.tgz", v.cni);
    let sums = published(dl, "CNI plugins", &v.cni, &cni, &format!("{asset}.sha256"))?;
    let (tgz, lock) = verified_asset(dl, &def, &cni, &asset, &sums)?;
    let members: BTreeMap<String, String> = CNI_PLUGINS
        .iter()
        .map(|p| (p.to_string(), roles::cni(p)))
        .collect();
    files.extend(unpack(&tgz, &asset, &lock.url, &members, scratch.path())?);
    assets.push(lock);

    files.sort_by(|x, y| x.role.cmp(&y.role));
    Ok(FetchedPayload {
        name: roles::PAYLOAD_CONTAINERD.into(),
        version: v.containerd.clone(),
        files,
        assets,
        images: Vec::new(),
        scratch: Some(scratch),
    })
}

/// A payload file of `role` at `src`, downloaded from `url` (itself or its archive).
fn payload_file(role: &str, src: &Path, url: &str) -> Result<PayloadFile, ReleaseError> {
    let size = std::fs::metadata(src)
        .map_err(|source| ReleaseError::Io {
            path: src.to_path_buf(),
            source,
        })?
        .len();
    Ok(PayloadFile {
        role: role.into(),
        src: src.to_path_buf(),
        size,
        mode: 0o755,
        url: Some(url.to_string()),
    })
}

/// Streams the gzip tarball `tgz` once and writes the members named in `members`
/// (archive path without `./` → role) to `dir/<role>`. Every member must be there, as a
/// regular file.
fn unpack(
    tgz: &Path,
    asset: &str,
    url: &str,
    members: &BTreeMap<String, String>,
    dir: &Path,
) -> Result<Vec<PayloadFile>, ReleaseError> {
    let bad = |problem: String| ReleaseError::Archive {
        archive: asset.to_string(),
        problem,
    };
    let file = std::fs::File::open(tgz).map_err(|source| ReleaseError::Io {
        path: tgz.to_path_buf(),
        source,
    })?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let mut out = Vec::new();
    for e in ar.entries().map_err(|e| bad(e.to_string()))? {
        let mut e = e.map_err(|e| bad(e.to_string()))?;
        let name = e.path().map_err(|e| bad(e.to_string()))?;
        let name = name.to_string_lossy();
        let Some(role) = members.get(name.trim_start_matches("./")) else {
            continue;
        };
        if !e.header().entry_type().is_file() {
            return Err(bad(format!("member {name} is not a regular file")));
        }
        let dest = dir.join(role);
        let io = |source| ReleaseError::Io {
            path: dest.clone(),
            source,
        };
        std::fs::create_dir_all(dest.parent().unwrap_or(dir)).map_err(io)?;
        let mut f = std::fs::File::create(&dest).map_err(io)?;
        std::io::copy(&mut e, &mut f).map_err(|e| bad(e.to_string()))?;
        out.push(payload_file(role, &dest, url)?);
    }
    let missing: Vec<&str> = members
        .keys()
        .filter(|m| !out.iter().any(|f| f.role == members[*m]))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!("has no {}", missing.join(", "))));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(text: &str) -> Definition {
        Definition::parse("containerd", text).unwrap()
    }

    #[test]
    fn versions_default_from_the_definition_and_are_overridable() {
        let d =
            def("name = \"containerd\"\nversion = \"2.0.5\"\nrunc = \"v1.2.6\"\ncni = \"1.6.2\"\n");
        let v = Versions::resolve(&d, None, None, None).unwrap();
        assert_eq!(
            (v.containerd.as_str(), v.runc.as_str(), v.cni.as_str()),
            ("2.0.5", "1.2.6", "1.6.2")
        );
        let v = Versions::resolve(&d, Some("v2.1.1"), Some("1.3.0"), None).unwrap();
        assert_eq!((v.containerd.as_str(), v.runc.as_str()), ("2.1.1", "1.3.0"));
        let e = Versions::resolve(&d, Some("2/../x"), None, None).unwrap_err();
        assert!(e.to_string().starts_with("containerd version"), "{e}");
        let none = def("name = \"containerd\"\n");
        assert!(Versions::resolve(&none, None, None, None).is_err());
    }

    #[test]
    fn unpacks_only_the_wanted_members_and_names_missing_ones() {
        let d = tempfile::tempdir().unwrap();
        let tgz = d.path().join("a.tgz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&tgz).unwrap(),
            flate2::Compression::fast(),
        );
        let mut t = tar::Builder::new(gz);
        for (p, body) in [("./bridge", "b"), ("./dhcp", "d"), ("./loopback", "l")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o755);
            t.append_data(&mut h, p, body.as_bytes()).unwrap();
        }
        t.into_inner().unwrap().finish().unwrap();
        let want = |names: &[&str]| -> BTreeMap<String, String> {
            names
                .iter()
                .map(|n| (n.to_string(), roles::cni(n)))
                .collect()
        };
        let got = unpack(
            &tgz,
            "cni.tgz",
            "u",
            &want(&["bridge", "loopback"]),
            d.path(),
        )
        .unwrap();
        let roles: Vec<&str> = got.iter().map(|f| f.role.as_str()).collect();
        assert_eq!(roles, ["cni/bridge", "cni/loopback"]);
        assert_eq!(std::fs::read(d.path().join("cni/bridge")).unwrap(), b"b");
        assert!(!d.path().join("cni/dhcp").exists());
        let e = unpack(
            &tgz,
            "cni.tgz",
            "u",
            &want(&["bridge", "portmap"]),
            d.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cni.tgz") && e.contains("portmap"), "{e}");
    }
}
