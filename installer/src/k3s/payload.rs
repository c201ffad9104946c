//! The k3s payload's files, by role: how the installer finds them in a bundle.
//!
//! A bundle with `CLUSTER k3s …` carries the `k3s` payload (downloaded by the builder
//! from the k3s release, or given with `--payload k3s=<dir>`). bundle.json's `payloads[]`
//! maps each file's *role* to its entry, so the installer looks up [`BINARY_ROLE`] to
//! stage the binary it then names in [`super::K3sParams::k3s_binary`]. k3s's own images
//! are in the bundle's OCI layout like any other; an airgap image tarball is only used in
//! the fallback of [`super::K3sParams::airgap_images`].

/// Role of the k3s binary in the payload.
pub const BINARY_ROLE: &str = ferry_bundle::roles::K3S;

/// Role of k3s's airgap image tarball for `arch` (`amd64`, `arm64`, `arm`).
pub fn airgap_images_role(arch: &str) -> String {
    ferry_bundle::roles::k3s_airgap_images(arch)
}
