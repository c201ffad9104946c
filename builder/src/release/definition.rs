//! `payloads/<name>/payload.toml`, compiled into `ferry`: a payload's default versions and
//! optional sha256 pins.
//!
//! The release layout of each project is code ([`super::k3s`], [`super::containerd`]); the
//! *data* that changes with time lives here so that a version bump is a one-line edit
//! (or no edit: the Kubefile names the version). A pin maps an upstream asset URL to the
//! sha256 someone vetted; the published checksum file must say the same, or the build
//! stops naming both — a pin can add assurance but never override upstream.

use super::ReleaseError;
use ferry_bundle::Sha256Digest;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    /// Default version (containerd: used when `RUNTIME` names none).
    #[serde(default)]
    pub version: Option<String>,
    /// containerd only: default runc and CNI plugins versions.
    #[serde(default)]
    pub runc: Option<String>,
    #[serde(default)]
    pub cni: Option<String>,
    /// Upstream asset URL → sha256 (64 lowercase hex).
    #[serde(default)]
    pub pins: BTreeMap<String, String>,
}

impl Definition {
    /// The definition shipped with this `ferry` for payload `name`.
    pub fn builtin(name: &str) -> Result<Definition, ReleaseError> {
        let text = match name {
            ferry_bundle::roles::PAYLOAD_CONTAINERD => {
                include_str!("../../../payloads/containerd/payload.toml")
            }
            ferry_bundle::roles::PAYLOAD_K3S => include_str!("../../../payloads/k3s/payload.toml"),
            other => {
                return Err(ReleaseError::Definition(format!(
                    "ferry has no payload definition named {other:?} (it knows containerd and k3s)"
                )))
            }
        };
        Self::parse(name, text)
    }

    pub fn parse(name: &str, text: &str) -> Result<Definition, ReleaseError> {
        let def: Definition = toml::from_str(text)
            .map_err(|e| ReleaseError::Definition(format!("payloads/{name}/payload.toml: {e}")))?;
        for url in def.pins.keys() {
            def.pin(url)?;
        }
        Ok(def)
    }

    /// The pin for `url`, if any.
    pub fn pin(&self, url: &str) -> Result<Option<Sha256Digest>, ReleaseError> {
        let Some(hex) = self.pins.get(url) else {
            return Ok(None);
        };
        Sha256Digest::from_hex(hex).map(Some).ok_or_else(|| {
            ReleaseError::Definition(format!(
                "payloads/{}/payload.toml: the pin for {url} is {hex:?}, not 64 lowercase hex characters",
                self.name
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_definitions_parse_and_name_the_defaults() {
        let c = Definition::builtin("containerd").unwrap();
        assert_eq!(c.name, "containerd");
        assert!(c.version.is_some() && c.runc.is_some() && c.cni.is_some());
        let k = Definition::builtin("k3s").unwrap();
        assert_eq!(k.name, "k3s");
        assert!(Definition::builtin("rke2").is_err());
    }

    #[test]
    fn malformed_pins_are_refused_naming_the_url() {
        let e = Definition::parse(
            "k3s",
            "name = \"k3s\"\n[pins]\n\"https://x/k3s\" = \"TO-BE-FILLED\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("https://x/k3s") && e.contains("TO-BE-FILLED"),
            "{e}"
        );
        let ok = Definition::parse(
            "k3s",
            &format!(
                "name = \"k3s\"\n[pins]\n\"https://x/k3s\" = \"{}\"\n",
                "a".repeat(64)
            ),
        )
        .unwrap();
        assert_eq!(
            ok.pin("https://x/k3s").unwrap().unwrap().hex(),
            "a".repeat(64)
        );
        assert_eq!(ok.pin("https://x/other").unwrap(), None);
    }
}
