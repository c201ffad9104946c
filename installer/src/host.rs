//! Where things live on a host. Every path ferry writes is an absolute host path
//! (`/var/lib/ferry/…`) mapped under `--root`, so tests can run several "hosts" on one
//! machine and `plan` can show real paths. ferry keeps to its own directories (never
//! `/etc/containerd`), so it cannot clobber a runtime the host already has, and `reset`
//! knows exactly what to remove.

use std::path::{Path, PathBuf};

/// Host paths are the bundle crate's: the same type checks a bundle's `files[].dest` and
/// every path an install plan writes.
pub use ferry_bundle::paths::{HostPath, HostPathError};

pub const DATA_DIR: &str = "/var/lib/ferry";
pub const ETC_DIR: &str = "/etc/ferry";
pub const RUN_DIR: &str = "/run/ferry";
pub const LOG_DIR: &str = "/var/log/ferry";
pub const OPT_DIR: &str = "/opt/ferry";

#[derive(Debug, Clone)]
pub struct Host {
    /// Prefix of every host path (`/` on a real host).
    pub root: PathBuf,
    /// Data directory as a host path (default `/var/lib/ferry`).
    pub data_dir: HostPath,
}

fn fixed(p: &str) -> HostPath {
    HostPath::new(p).expect("ferry's own paths are valid host paths")
}

impl Host {
    /// `data_dir` comes from `--data-dir`: an absolute path on the host.
    pub fn new(root: &Path, data_dir: Option<&str>) -> Result<Host, HostPathError> {
        let data_dir = match data_dir {
            Some(d) if d.len() > 1 => HostPath::new(d.trim_end_matches('/'))?,
            Some(d) => HostPath::new(d)?,
            None => fixed(DATA_DIR),
        };
        Ok(Host {
            root: root.to_path_buf(),
            data_dir,
        })
    }

    /// Maps a host path under the root.
    pub fn path(&self, host_path: &HostPath) -> PathBuf {
        self.root.join(host_path.as_str().trim_start_matches('/'))
    }

    /// True when this is the real `/`, where systemd may be used.
    pub fn is_real_root(&self) -> bool {
        self.root == Path::new("/")
    }

    fn data(&self, name: &str) -> HostPath {
        self.data_dir.join(name).expect("fixed names")
    }
    /// The installed version's staged bundle, as a link to its versioned file: what
    /// `status` and `reset` are run from later.
    pub fn staged_bundle(&self) -> HostPath {
        self.data("bundle.run")
    }
    /// Where a bundle with payload sha256 `id` is staged: versions live side by side, so
    /// an upgrade can serve both and a rollback finds the previous one.
    pub fn staged_version(&self, id: &ferry_bundle::Sha256Digest) -> HostPath {
        self.data(&format!("bundles/{}.run", &id.hex()[..16]))
    }
    pub fn journal(&self) -> HostPath {
        self.data("journal.json")
    }
    /// The registry's record of requests for images the bundle lacks (read by `status`).
    pub fn registry_misses(&self) -> HostPath {
        self.data("registry-misses.json")
    }
    /// Where originals of host files that ferry replaced are kept until `reset`.
    pub fn backups(&self) -> HostPath {
        self.data("backups")
    }
    /// The lock that keeps two ferry runs on one host apart.
    pub fn lock_file(&self) -> HostPath {
        fixed(&format!("{RUN_DIR}.lock"))
    }
    pub fn bin(&self, name: &str) -> HostPath {
        fixed(&format!("{OPT_DIR}/bin/{name}"))
    }
    pub fn bin_dir(&self) -> HostPath {
        fixed(&format!("{OPT_DIR}/bin"))
    }
    pub fn cni_dir(&self) -> HostPath {
        fixed(&format!("{OPT_DIR}/cni"))
    }
    pub fn cni_conf_dir(&self) -> HostPath {
        fixed(&format!("{ETC_DIR}/cni/net.d"))
    }
    pub fn pid_file(&self, service: &str) -> HostPath {
        fixed(&format!("{RUN_DIR}/{service}.pid"))
    }
    pub fn log_file(&self, service: &str) -> HostPath {
        fixed(&format!("{LOG_DIR}/{service}.log"))
    }
    /// The plain-text log of every install/join/reset run.
    pub fn run_log(&self) -> HostPath {
        fixed(&format!("{LOG_DIR}/ferry.log"))
    }
    pub fn containerd_config(&self) -> HostPath {
        fixed(&format!("{ETC_DIR}/containerd/config.toml"))
    }
    pub fn hosts_dir(&self) -> HostPath {
        fixed(&format!("{ETC_DIR}/containerd/certs.d"))
    }
    pub fn containerd_root(&self) -> HostPath {
        self.data("containerd")
    }
    pub fn containerd_state(&self) -> HostPath {
        fixed(&format!("{RUN_DIR}/containerd"))
    }
    pub fn containerd_socket(&self) -> HostPath {
        fixed(&format!("{RUN_DIR}/containerd/containerd.sock"))
    }
    pub fn token_file(&self) -> HostPath {
        fixed(&format!("{ETC_DIR}/token"))
    }
    /// The join token's secret alone: k3s's `token-file`.
    pub fn cluster_secret_file(&self) -> HostPath {
        fixed(&format!("{ETC_DIR}/cluster-secret"))
    }
    /// The cluster CA, server certificate and keys (`ca.pem`, `ca.key`, `server.pem`, `server.key`).
    pub fn pki(&self, name: &str) -> HostPath {
        fixed(&format!("{ETC_DIR}/pki/{name}"))
    }
    /// The site's trust directory: public keys (`*.pem`) of the signers this host accepts.
    pub fn trust_dir(&self) -> HostPath {
        fixed(&format!("{ETC_DIR}/trust"))
    }
    /// A bare copy of the installer (no payload) that joined nodes run services with.
    pub fn installer_copy(&self) -> HostPath {
        self.data("ferry-installer")
    }

    /// Every directory tree ferry owns on the host; `reset` removes these whole when ferry
    /// created them.
    pub fn owned_trees(&self) -> Vec<HostPath> {
        vec![
            self.data_dir.clone(),
            fixed(ETC_DIR),
            fixed(RUN_DIR),
            fixed(LOG_DIR),
            fixed(OPT_DIR),
        ]
    }
    /// True when `p` lies inside one of ferry's own trees.
    pub fn is_owned(&self, p: &HostPath) -> bool {
        self.owned_trees().iter().any(|t| p.starts_with(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_under_root() {
        let h = Host::new(Path::new("/tmp/r"), None).unwrap();
        assert_eq!(
            h.path(&h.staged_bundle()),
            Path::new("/tmp/r/var/lib/ferry/bundle.run")
        );
        assert!(!h.is_real_root());
        assert!(Host::new(Path::new("/"), None).unwrap().is_real_root());
        assert!(Host::new(Path::new("/"), Some("relative")).is_err());
        assert!(Host::new(Path::new("/"), Some("/a/../b")).is_err());
    }

    #[test]
    fn host_paths_cannot_escape_the_root() {
        for bad in ["", "etc", "/a/../../etc", "/a//b", "/a/./b", "/a/", "/a\0b"] {
            assert!(HostPath::new(bad).is_err(), "{bad:?}");
        }
        let p = HostPath::new("/etc/ferry/token").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "/etc/ferry");
        assert_eq!(
            HostPath::new("/etc").unwrap().parent().unwrap().as_str(),
            "/"
        );
        assert!(p.starts_with(&HostPath::new("/etc").unwrap()));
        assert!(!HostPath::new("/etcx")
            .unwrap()
            .starts_with(&HostPath::new("/etc").unwrap()));
    }
}
