//! Which signers a host accepts, and the one decision made with them.
//!
//! A site pins keys with `--trust-key <pub.pem>`, `--trust-fingerprint sha256:…`, or by
//! dropping public keys into its trust directory (`/etc/ferry/trust/*.pem`). When any key
//! is pinned, a bundle must be signed by one of them, or it is refused — unsigned and
//! foreign-signed alike — before the installer stages or writes anything. When none is,
//! a signed bundle is still checked against its own signer (a bundle whose signature does
//! not verify is refused everywhere) and its key fingerprint is shown for the operator to
//! compare with the one the supplier gave. Nothing but the bundle and the pinned keys is
//! consulted: no network, no gpg, no cosign.

use crate::error::BundleError;
use crate::reader::{Bundle, Signature};
use crate::signature::{Fingerprint, PublicKey};
use std::path::Path;

/// One pinned key and where it was pinned (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    pub fingerprint: Fingerprint,
    /// `--trust-key vendor.pem`, `--trust-fingerprint`, `/etc/ferry/trust/vendor.pem`.
    pub source: String,
}

/// The keys a host trusts; empty = no policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustPolicy {
    keys: Vec<TrustedKey>,
}

/// What [`TrustPolicy::admit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// No key is pinned: the bundle is unsigned, or signed (and its signature verifies)
    /// by a key nobody vouched for — show its fingerprint.
    Unchecked(Signature),
    /// Signed by a pinned key.
    Trusted { key: PublicKey, source: String },
}

impl TrustPolicy {
    pub fn add_key(&mut self, key: &PublicKey, source: impl Into<String>) {
        self.add_fingerprint(key.fingerprint(), source);
    }

    pub fn add_fingerprint(&mut self, fingerprint: Fingerprint, source: impl Into<String>) {
        self.keys.push(TrustedKey {
            fingerprint,
            source: source.into(),
        });
    }

    /// Reads a public key PEM file; the error names the file and says what it must be.
    pub fn add_key_file(&mut self, path: &Path, source: impl Into<String>) -> Result<(), String> {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let key = PublicKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
        self.add_key(&key, source);
        Ok(())
    }

    /// Pins every `*.pem` in `dir` (a site trust directory); a missing directory pins
    /// nothing. A file that is not a P-256 public key is an error naming it: a broken
    /// trust directory must not quietly loosen the policy.
    pub fn add_dir(&mut self, dir: &Path) -> Result<(), String> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("trust directory {}: {e}", dir.display())),
        };
        let mut files: Vec<_> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pem"))
            .collect();
        files.sort();
        for f in files {
            let shown = f.display().to_string();
            self.add_key_file(&f, shown).map_err(|e| {
                format!("{e} (every *.pem in the trust directory must be a signer's public key)")
            })?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// Where this host's trust comes from, for messages: `sha256:… (source)`, ….
    pub fn describe(&self) -> String {
        self.keys
            .iter()
            .map(|k| format!("{} ({})", k.fingerprint, k.source))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether `b` may be used on this host. Its signature is always checked against the
    /// signer bundle.json names; with pinned keys, that signer must be one of them.
    pub fn admit(&self, b: &Bundle) -> Result<Admission, BundleError> {
        let sig = b.signature()?;
        if self.keys.is_empty() {
            return Ok(Admission::Unchecked(sig));
        }
        match sig {
            Signature::Unsigned => Err(BundleError::Signature(format!(
                "{} is not signed, and this host accepts only bundles signed by {}: nothing was changed. \
                 Ask the supplier for a signed bundle (ferry build --sign)",
                b.path.display(),
                self.describe()
            ))),
            Signature::Signed(key) => {
                let fp = key.fingerprint();
                match self.keys.iter().find(|k| k.fingerprint == fp) {
                    Some(k) => Ok(Admission::Trusted {
                        key,
                        source: k.source.clone(),
                    }),
                    None => Err(BundleError::Signature(format!(
                        "{} is signed by key {fp}, which this host does not trust (it accepts {}): nothing was changed. \
                         Check that this is the bundle you expect; to accept that signer, pin its public key \
                         (--trust-key <pub.pem>, or a .pem in the trust directory)",
                        b.path.display(),
                        self.describe()
                    ))),
                }
            }
        }
    }
}
