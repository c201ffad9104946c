//! The k3s release layout: `CLUSTER k3s <version>` on a connected builder.
//!
//! A k3s release (`https://github.com/k3s-io/k3s/releases/download/<tag>/…`) holds one
//! binary per architecture (`k3s`, `k3s-arm64`, `k3s-armhf`), a checksum file per
//! architecture (`sha256sum-amd64.txt`, `-arm64`, `-arm`) and `k3s-images.txt`, the list
//! of images k3s itself runs (pause, coredns, local-path-provisioner, klipper-helm,
//! traefik, metrics-server, …). The binary is verified against the checksum file exactly
//! as k3s's `install.sh` does (the line for `k3s<suffix>`).
//!
//! The images are *not* taken from the release's airgap tarball (hundreds of MB, one
//! `docker save` per architecture): they are returned as references and the build pulls
//! them like any `IMAGE` — through `--registry-mirror`, from the content cache,
//! deduplicated with the apps' images, verified by digest and locked in `ferry.lock` —
//! and ferry's registry serves them under their original names, which is where k3s's
//! containerd looks for them (registries.yaml mirrors). `--payload k3s=<dir>` with an
//! airgap tarball still works for builders with no route to a registry.

use super::download::Downloader;
use super::{
    arch_name, check_version, definition::Definition, published, verified_asset, FetchedPayload,
    GithubRelease, ReleaseError,
};
use crate::build::payload::PayloadFile;
use crate::lock::LockedAsset;
use ferry_bundle::reference::Reference;
use ferry_bundle::roles;

pub const REPO: &str = "k3s-io/k3s";
/// The list of k3s's own images in every release.
pub const IMAGES_LIST: &str = "k3s-images.txt";
/// OCI architecture → k3s's binary asset.
const BINARIES: [(&str, &str); 3] = [
    ("amd64", "k3s"),
    ("arm64", "k3s-arm64"),
    ("arm", "k3s-armhf"),
];

/// The release tag of a version as written in the Kubefile (`v` added if missing).
pub fn tag(version: &str) -> String {
    if version.starts_with('v') {
        version.to_string()
    } else {
        format!("v{version}")
    }
}

/// Downloads and verifies k3s `version` for `arch` and reads its image list.
pub fn fetch(version: &str, arch: &str, dl: &Downloader) -> Result<FetchedPayload, ReleaseError> {
    check_version("k3s", version)?;
    let def = Definition::builtin(roles::PAYLOAD_K3S)?;
    let release = GithubRelease {
        repo: REPO,
        tag: tag(version),
    };
    let binary = arch_name("k3s", arch, &BINARIES)?;
    let sums = published(
        dl,
        "k3s",
        version,
        &release,
        &format!("sha256sum-{arch}.txt"),
    )?;
    let (path, binary_lock) = verified_asset(dl, &def, &release, binary, &sums)?;

    let list_url = release.url(IMAGES_LIST);
    let list = dl.text(&list_url)?;
    let published_sha = sums.sums.find(IMAGES_LIST);
    for (want, from) in [
        (published_sha, sums.url.clone()),
        (def.pin(&list_url)?, "payloads/k3s/payload.toml".to_string()),
    ] {
        if let Some(want) = want.filter(|w| *w != list.sha256) {
            return Err(ReleaseError::Mismatch {
                asset: IMAGES_LIST.into(),
                url: list_url,
                expected: want.hex(),
                actual: list.sha256.hex(),
                published_in: from,
            });
        }
    }
    if published_sha.is_none() {
        tracing::info!("{IMAGES_LIST} is not listed in {}; its images are checked by digest as they are pulled", sums.url);
    }
    let images = parse_images(&list.text, &list_url)?;
    let size = std::fs::metadata(&path)
        .map_err(|source| ReleaseError::Io {
            path: path.clone(),
            source,
        })?
        .len();
    Ok(FetchedPayload {
        name: roles::PAYLOAD_K3S.into(),
        version: version.into(),
        files: vec![PayloadFile {
            role: roles::K3S.into(),
            src: path,
            size,
            mode: 0o755,
            url: Some(binary_lock.url.clone()),
        }],
        assets: vec![
            binary_lock,
            LockedAsset {
                url: list_url,
                sha256: list.sha256.hex(),
            },
        ],
        images,
        scratch: None,
    })
}

/// The references of `k3s-images.txt` (one per line; blank lines and `#` comments
/// skipped), in file order without repeats.
pub fn parse_images(text: &str, url: &str) -> Result<Vec<Reference>, ReleaseError> {
    let mut out: Vec<Reference> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let s = line.trim();
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        let r = Reference::parse(s).map_err(|e| ReleaseError::Archive {
            archive: format!("{url} line {}", i + 1),
            problem: format!("{s:?} is not an image reference: {e}"),
        })?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_lists_parse_to_normalised_references() {
        let text = "docker.io/rancher/mirrored-pause:3.6\n\n# x\nrancher/klipper-helm:v0.9.4\ndocker.io/rancher/mirrored-pause:3.6\n";
        let got: Vec<String> = parse_images(text, "u")
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "docker.io/rancher/mirrored-pause:3.6",
                "docker.io/rancher/klipper-helm:v0.9.4"
            ]
        );
        let e = parse_images("ok:1\nBad Ref\n", "u")
            .unwrap_err()
            .to_string();
        assert!(e.contains("u line 2") && e.contains("Bad Ref"), "{e}");
    }

    #[test]
    fn tags_and_binaries_per_architecture() {
        assert_eq!(tag("1.32.3+k3s1"), "v1.32.3+k3s1");
        assert_eq!(tag("v1.32.3+k3s1"), "v1.32.3+k3s1");
        assert_eq!(arch_name("k3s", "arm64", &BINARIES).unwrap(), "k3s-arm64");
        let e = arch_name("k3s", "s390x", &BINARIES)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("s390x") && e.contains("amd64, arm64, arm"),
            "{e}"
        );
    }
}
