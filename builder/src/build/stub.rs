//! Finds the installer stub that goes in front of the payload, and checks that it can run
//! where the bundle goes.
//!
//! Order: `--installer FILE`, `$FERRY_INSTALLER`, then the stub next to the running
//! `ferry` (where `scripts/build.sh` and a release archive put them):
//! `ferry-installer` for amd64, `ferry-installer-aarch64` for arm64. The stub must
//! already be stripped (`strip` after appending would cut the payload off), and built
//! for the bundle's architecture: an amd64 stub in an arm64 bundle would only fail on the
//! site, at the first command. A build for several platforms writes one bundle per
//! platform; `--installer` then serves the platform it runs on and the others take the
//! stub beside `ferry` ([`locate_among`]).

use ferry_bundle::oci::Platform;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StubError {
    #[error("installer stub {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("installer stub {0} is not an ELF executable")]
    NotElf(PathBuf),
    #[error("installer stub {path} runs on {found}, but the bundle is for {platform}; pass the {want} stub with --installer (scripts/build.sh leaves it at target/dist/{file})")]
    WrongArch {
        path: PathBuf,
        found: String,
        platform: String,
        want: String,
        file: String,
    },
    #[error("no installer stub for {platform} is built into this ferry (amd64 and arm64 are)")]
    Unsupported { platform: String },
    #[error("cannot find ferry's own executable: {0}")]
    OwnExe(std::io::Error),
}

/// The stub's file name beside `ferry`, and its ELF machine, for a platform.
fn stub_for(platform: &Platform) -> Option<(&'static str, u16, &'static str)> {
    match platform.architecture.as_str() {
        "amd64" => Some(("ferry-installer", 0x3e, "x86-64")),
        "arm64" => Some(("ferry-installer-aarch64", 0xb7, "aarch64")),
        _ => None,
    }
}

/// The stub for `platform` in a build for several platforms (one bundle each):
/// `explicit` (or `$FERRY_INSTALLER`) for the platform it runs on, the stub beside `ferry`
/// for the others.
pub fn locate_among(explicit: Option<&Path>, platform: &Platform) -> Result<PathBuf, StubError> {
    let given = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("FERRY_INSTALLER").map(PathBuf::from));
    if let Some(g) = given {
        match locate(Some(&g), platform) {
            Err(StubError::WrongArch { .. }) => {}
            r => return r,
        }
    }
    let (file, _, _) = stub_for(platform).ok_or_else(|| StubError::Unsupported {
        platform: platform.to_string(),
    })?;
    let beside = std::env::current_exe()
        .map_err(StubError::OwnExe)?
        .with_file_name(file);
    locate(Some(&beside), platform)
}

pub fn locate(explicit: Option<&Path>, platform: &Platform) -> Result<PathBuf, StubError> {
    let (file, machine, want) = stub_for(platform).ok_or_else(|| StubError::Unsupported {
        platform: platform.to_string(),
    })?;
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("FERRY_INSTALLER") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()
                .map_err(StubError::OwnExe)?
                .with_file_name(file),
        },
    };
    check(&path, machine).map_err(|e| match e {
        StubError::WrongArch { path, found, .. } => StubError::WrongArch {
            path,
            found,
            platform: platform.to_string(),
            want: want.to_string(),
            file: file.to_string(),
        },
        e => e,
    })?;
    Ok(path)
}

/// Checks the ELF magic and machine (`e_machine`, offset 18, little-endian).
fn check(p: &Path, machine: u16) -> Result<(), StubError> {
    let io = |source| StubError::Io {
        path: p.to_path_buf(),
        source,
    };
    let mut head = [0u8; 20];
    let f = std::fs::File::open(p).map_err(io)?;
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut head, 0).map_err(io)?;
    if &head[..4] != b"\x7fELF" {
        return Err(StubError::NotElf(p.to_path_buf()));
    }
    let found = u16::from_le_bytes([head[18], head[19]]);
    if found != machine {
        return Err(StubError::WrongArch {
            path: p.to_path_buf(),
            found: match found {
                0x3e => "x86-64".into(),
                0xb7 => "aarch64".into(),
                m => format!("ELF machine {m:#x}"),
            },
            platform: String::new(),
            want: String::new(),
            file: String::new(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(machine: u16) -> tempfile::NamedTempFile {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b).unwrap();
        f
    }

    #[test]
    fn a_stub_of_another_architecture_is_refused_by_name() {
        let amd = elf(0x3e);
        let arm: Platform = "linux/arm64".parse().unwrap();
        let e = locate(Some(amd.path()), &arm).unwrap_err().to_string();
        assert!(
            e.contains("runs on x86-64")
                && e.contains("linux/arm64")
                && e.contains("ferry-installer-aarch64"),
            "{e}"
        );
        assert!(locate(Some(amd.path()), &"linux/amd64".parse().unwrap()).is_ok());
        assert!(locate(Some(elf(0xb7).path()), &arm).is_ok());
        let e = locate(Some(amd.path()), &"linux/s390x".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("linux/s390x"), "{e}");
    }

    #[test]
    fn among_several_platforms_the_given_stub_serves_its_own() {
        let arm = elf(0xb7);
        let p: Platform = "linux/arm64".parse().unwrap();
        assert_eq!(locate_among(Some(arm.path()), &p).unwrap(), arm.path());
        // For amd64 the arm64 stub is passed over for the one beside the running binary
        // (the test executable's directory has none: the error names that file).
        let e = locate_among(Some(arm.path()), &"linux/amd64".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ferry-installer") && !e.contains(&arm.path().display().to_string()),
            "{e}"
        );
    }
}
