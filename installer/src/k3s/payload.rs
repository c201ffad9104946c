//! The k3s payload's files, by role: how the installer finds them in a bundle.
//!
//! A bundle with `CLUSTER k3s …` carries the `k3s` payload (`payloads/k3s/payload.toml`
//! pins its sources). bundle.json's `payloads[]` maps each file's *role* to its entry, so
//! the installer looks up [`BINARY_ROLE`] to stage the binary it then names in
//! [`super::K3sParams::k3s_binary`]. The airgap image tarball is there for the builder,
//! which resolves its images into the bundle; the installer only needs it in the
//! fallback of [`super::K3sParams::airgap_images`].

/// Role of the k3s binary in the payload.
pub const BINARY_ROLE: &str = ferry_bundle::roles::K3S;

/// Role of k3s's airgap image tarball for `arch` (`amd64`, `arm64`, `arm`).
pub fn airgap_images_role(arch: &str) -> String {
    ferry_bundle::roles::k3s_airgap_images(arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &str = include_str!("../../../payloads/k3s/payload.toml");

    /// `key = "value"` pairs of each `[[file]]` table (the subset of TOML the file uses).
    fn file_tables(toml: &str) -> Vec<Vec<(String, String)>> {
        let mut out: Vec<Vec<(String, String)>> = Vec::new();
        for line in toml.lines().map(str::trim) {
            if line == "[[file]]" {
                out.push(Vec::new());
            } else if let (Some(t), Some((k, v))) = (out.last_mut(), line.split_once(" = ")) {
                if !line.starts_with('#') {
                    t.push((k.to_string(), v.trim_matches('"').to_string()));
                }
            }
        }
        out
    }

    #[test]
    fn payload_definition_holds_the_roles_the_installer_looks_up() {
        let tables = file_tables(PAYLOAD);
        let get = |t: &Vec<(String, String)>, k: &str| {
            t.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("[[file]] without {k}: {t:?}"))
        };
        let roles: Vec<String> = tables.iter().map(|t| get(t, "role")).collect();
        assert_eq!(
            roles,
            [BINARY_ROLE.to_string(), airgap_images_role("amd64")]
        );
        assert!(PAYLOAD.contains("\nversion = \"v1.31.10+k3s1\"\n"));
        for t in &tables {
            let url = get(t, "url");
            let asset = get(t, "role").rsplit('/').next().unwrap().to_string();
            assert_eq!(
                url,
                format!("https://github.com/k3s-io/k3s/releases/download/v1.31.10%2Bk3s1/{asset}")
            );
            let sha = get(t, "sha256");
            assert!(
                sha == "TO-BE-FILLED"
                    || (sha.len() == 64
                        && sha
                            .bytes()
                            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())),
                "{sha}"
            );
        }
    }
}
