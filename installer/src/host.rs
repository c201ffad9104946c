//! Where things live on a host. Every path ferry writes is an absolute host path
//! (`/var/lib/ferry/…`) mapped under `--root`, so tests can run several "hosts" on one
//! machine and `plan` can show real paths. ferry keeps to its own directories (never
//! `/etc/containerd`), so it cannot clobber a runtime the host already has, and `reset`
//! knows exactly what to remove.

use std::path::{Path, PathBuf};

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
    pub data_dir: String,
}

impl Host {
    pub fn new(root: &Path, data_dir: Option<&str>) -> Host {
        Host {
            root: root.to_path_buf(),
            data_dir: data_dir
                .unwrap_or(DATA_DIR)
                .trim_end_matches('/')
                .to_string(),
        }
    }

    /// Maps an absolute host path under the root.
    pub fn path(&self, host_path: &str) -> PathBuf {
        self.root.join(host_path.trim_start_matches('/'))
    }

    /// True when this is the real `/`, where systemd may be used.
    pub fn is_real_root(&self) -> bool {
        self.root == Path::new("/")
    }

    pub fn staged_bundle(&self) -> String {
        format!("{}/bundle.run", self.data_dir)
    }
    pub fn journal(&self) -> String {
        format!("{}/journal.json", self.data_dir)
    }
    pub fn bin(&self, name: &str) -> String {
        format!("{OPT_DIR}/bin/{name}")
    }
    pub fn cni_dir(&self) -> String {
        format!("{OPT_DIR}/cni")
    }
    pub fn pid_file(&self, service: &str) -> String {
        format!("{RUN_DIR}/{service}.pid")
    }
    pub fn log_file(&self, service: &str) -> String {
        format!("{LOG_DIR}/{service}.log")
    }
    pub fn containerd_config(&self) -> String {
        format!("{ETC_DIR}/containerd/config.toml")
    }
    pub fn hosts_dir(&self) -> String {
        format!("{ETC_DIR}/containerd/certs.d")
    }
    pub fn containerd_root(&self) -> String {
        format!("{}/containerd", self.data_dir)
    }
    pub fn containerd_state(&self) -> String {
        format!("{RUN_DIR}/containerd")
    }
    pub fn containerd_socket(&self) -> String {
        format!("{RUN_DIR}/containerd/containerd.sock")
    }
    pub fn token_file(&self) -> String {
        format!("{ETC_DIR}/token")
    }
    /// The cluster CA, server certificate and keys (`ca.pem`, `ca.key`, `server.pem`, `server.key`).
    pub fn pki(&self, name: &str) -> String {
        format!("{ETC_DIR}/pki/{name}")
    }
    /// A bare copy of the installer (no payload) that joined nodes run services with.
    pub fn installer_copy(&self) -> String {
        format!("{}/ferry-installer", self.data_dir)
    }

    /// Every directory tree ferry owns on the host; `reset` removes these whole.
    pub fn owned_trees(&self) -> Vec<String> {
        vec![
            self.data_dir.clone(),
            ETC_DIR.into(),
            RUN_DIR.into(),
            LOG_DIR.into(),
            OPT_DIR.into(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_under_root() {
        let h = Host::new(Path::new("/tmp/r"), None);
        assert_eq!(
            h.path("/var/lib/ferry/bundle.run"),
            Path::new("/tmp/r/var/lib/ferry/bundle.run")
        );
        assert!(!h.is_real_root());
        assert!(Host::new(Path::new("/"), None).is_real_root());
    }
}
