//! Payloads and the roles of their files, defined once.
//!
//! bundle.json's `payloads[]` maps each file of a runtime or cluster payload to its entry
//! by *role* (`bin/containerd`, `cni/bridge`, `bin/k3s`). The builder names files by role
//! when it collects a payload, the installer looks them up by role when it installs one,
//! and the join channel hands them to nodes by role: the strings must be the same in all
//! three, so they are spelled here and nowhere else. The directory part of a role says
//! where the installer puts the file ([`BIN`], [`CNI`], [`IMAGES`]).

/// Payload of a runtime-only bundle (no `CLUSTER`).
pub const PAYLOAD_CONTAINERD: &str = "containerd";
/// Payload of a `CLUSTER k3s …` bundle.
pub const PAYLOAD_K3S: &str = "k3s";

/// Role directory of executables.
pub const BIN: &str = "bin";
/// Role directory of CNI plugins.
pub const CNI: &str = "cni";
/// Role directory of image tarballs.
pub const IMAGES: &str = "images";

pub const CONTAINERD: &str = "bin/containerd";
pub const CONTAINERD_SHIM_RUNC_V2: &str = "bin/containerd-shim-runc-v2";
pub const CTR: &str = "bin/ctr";
pub const RUNC: &str = "bin/runc";
pub const K3S: &str = "bin/k3s";

/// Files a containerd payload must hold (plus its CNI plugins).
pub const CONTAINERD_REQUIRED: [&str; 4] = [CONTAINERD, CONTAINERD_SHIM_RUNC_V2, CTR, RUNC];

/// The role of file `name` in role directory `dir` ([`BIN`], [`CNI`], [`IMAGES`]).
pub fn in_dir(dir: &str, name: &str) -> String {
    format!("{dir}/{name}")
}

/// Role of a CNI plugin: `cni/<plugin>`.
pub fn cni(plugin: &str) -> String {
    in_dir(CNI, plugin)
}

/// Role of k3s's airgap image tarball for `arch` (`amd64`, `arm64`, `arm`):
/// `images/k3s-airgap-images-<arch>.tar.zst`.
pub fn k3s_airgap_images(arch: &str) -> String {
    in_dir(IMAGES, &format!("k3s-airgap-images-{arch}.tar.zst"))
}

/// A role's directory and file name: `bin/ctr` → `("bin", "ctr")`.
pub fn split(role: &str) -> Option<(&str, &str)> {
    role.split_once('/')
        .filter(|(dir, name)| !dir.is_empty() && !name.is_empty() && !name.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_spelled_once() {
        assert_eq!(cni("bridge"), "cni/bridge");
        assert_eq!(
            k3s_airgap_images("amd64"),
            "images/k3s-airgap-images-amd64.tar.zst"
        );
        assert_eq!(split(CTR), Some((BIN, "ctr")));
        assert_eq!(split("bin/"), None);
        assert_eq!(split("bin/a/b"), None);
        assert!(CONTAINERD_REQUIRED.iter().all(|r| r.starts_with("bin/")));
    }
}
